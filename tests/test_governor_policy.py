"""Policies: validation with line-precise errors, rule hysteresis on fake battery and thermal trees, manual
modes, and the `tunable policy check` / `tunable mode list|set` commands."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from governor.modes import ModeSelector, default_policy_path, read_manual_mode, write_manual_mode
from governor.policy import PolicyError, SystemState, load_policy, parse_condition, parse_policy
from governor.system import read_thermal
from tunable.cli import main
from tunable.energy import BatteryState
from tunable.energy.testing import FakeSysfs

EXAMPLE = Path(__file__).resolve().parent.parent / "governor" / "examples" / "default.toml"


def test_the_bundled_example_is_valid():
    p = load_policy(EXAMPLE)
    assert list(p.modes) == ["max", "balanced", "eco", "cool"]
    assert p.default_mode == "balanced" and p.hold_s == 10.0
    assert p.modes["max"].knobs == {} and not p.modes["max"].governed
    eco = p.modes["eco"]
    assert [b.text for b in eco.budgets] == ["20mJ", "1W"] and eco.threads == 1 and eco.cpufreq_max == "60%"
    assert [r.mode for r in p.rules] == ["cool", "eco", "max"] and p.rules[0].force


def errors(text: str) -> list[tuple[int, str, str]]:
    with pytest.raises(PolicyError) as e:
        parse_policy(text, "p.toml")
    return e.value.problems


def test_toml_syntax_error_has_line_and_column():
    with pytest.raises(PolicyError, match=r"^p.toml:3: column 10: TOML syntax error: Invalid initial character"):
        parse_policy('version = 1\n[modes.a]\nknobs = {\n', "p.toml")


def test_semantic_errors_name_line_and_key():
    text = """version = 1
default_mode = "fast"

[budgets]
saver = ["20mJ", "-3mJ"]

[modes.a]
budget = "50 mJ/s"
threads = 0

[modes.b]
knobs = {}
budjet = "3mJ"

[modes.c]
knobs = { drowsy = 0.3 }
budget = "10mJ"

[[rules]]
when = "battery < 20%"
release = "battery > 15%"
mode = "eco"

[[rules]]
when = "battery below 20"
mode = "a"
"""
    probs = errors(text)
    got = {(line, key) for line, key, _ in probs}
    assert (2, "default_mode") in got
    assert (5, "budgets.saver") in got
    assert (8, "modes.a.budget") in got
    assert (9, "modes.a.threads") in got
    assert (13, "modes.b.budjet") in got
    assert (15, "modes.c") in got
    assert (21, "rules[0].release") in got
    assert (22, "rules[0].mode") in got
    assert (25, "rules[1].when") in got
    msg = {key: m for _, key, m in probs}
    assert "'-3mJ' is negative" in msg["budgets.saver"]
    assert "is energy per time, i.e. a power" in msg["modes.a.budget"]
    assert "did you mean 'budget'" in msg["modes.b.budjet"]
    assert "set one of knobs" in msg["modes.c"] and "found knobs and budget/goal" in msg["modes.c"]
    assert "the rule would flap" in msg["rules[0].release"]
    assert "no mode 'eco'" in msg["rules[0].mode"]
    assert "cannot read 'battery below 20'" in msg["rules[1].when"]
    assert "'fast' is not one of the modes" in msg["default_mode"]
    # the whole message, as `tunable policy check` prints it, is one line per problem, in line order
    with pytest.raises(PolicyError) as e:
        parse_policy(text, "p.toml")
    lines = str(e.value).splitlines()
    assert lines[0].startswith("p.toml:2: default_mode: ") and len(lines) == len(probs)


@pytest.mark.parametrize("text, line, key, message", [
    ('version = 2\n[modes.a]\nknobs = {}\n', 1, "version", "unsupported policy version 2"),
    ('[modes]\n', 1, "modes", "expected tables"),
    ('hold = 10\n[modes.a]\nknobs = {}\n', 1, "hold", 'expected a time such as "10s"'),
    ('hold = "10"\n[modes.a]\nknobs = {}\n', 1, "hold", "has no unit"),
    ('[modes.a]\ngoal = { battery = "BAT0" }\n', 2, "modes.a.goal", "give one of hours"),
    ('[modes.a]\ngoal = { battery = "BAT0", until = "25:00" }\n', 2, "modes.a.goal.until", "HH:MM"),
    ('[modes.a]\nknobs = {}\ncpufreq_max = "fast"\n', 3, "modes.a.cpufreq_max", "expected max, min"),
    ('[modes.auto]\nknobs = {}\n', 1, "modes.auto", "'auto' is reserved"),
    ('[modes.a]\nknobs = {}\n[[rules]]\nmode = "a"\n', 3, "rules[0].when", "a rule needs when"),
    ('[modes.a]\nknobs = {}\n[[rules]]\nwhen = "thermal > 80%"\nmode = "a"\n', 4, "rules[0].when",
     "temperatures are in degrees C"),
    ('[modes.a]\nknobs = {}\n[[rules]]\nwhen = "battery < 20%"\nrelease = "battery < 10%"\nmode = "a"\n', 5,
     "rules[0].release", "points the same way"),
    ('[modes.a]\nknobs = {}\n[hysteresis]\nbattery = -1\n', 4, "hysteresis.battery", "expected a number in 0..50"),
    ('[modes.a]\nknobs = {}\n[budgets]\nx = ["1mJ", "2mJ"]\n', 4, "budgets.x", "two energy budgets"),
])
def test_more_bad_policies(text, line, key, message):
    probs = errors(text)
    assert any(l == line and k == key and message in m for l, k, m in probs), probs


def test_unreadable_policy_file(tmp_path):
    with pytest.raises(PolicyError, match="cannot read policy file"):
        load_policy(tmp_path / "missing.toml")


# ---- rules ---------------------------------------------------------------------------------------------
def bat(capacity: float, status: str = "Discharging") -> BatteryState:
    return BatteryState("BAT0", status, capacity, 1000.0, 5000.0, 3.0, 12.0, 0.25)


POLICY = """
default_mode = "normal"
hold = "10s"
[modes.normal]
budget = "50mJ"
[modes.eco]
budget = "20mJ"
[modes.max]
knobs = {}
[modes.cool]
knobs = { drowsy = 0.5 }
[[rules]]
when = "thermal > 80C"
release = "thermal < 70C"
mode = "cool"
force = true
[[rules]]
when = "battery < 20% and discharging"
mode = "eco"
[[rules]]
when = "charging"
mode = "max"
"""


def test_battery_band_with_hysteresis():
    sel = ModeSelector(parse_policy(POLICY))
    t = 0.0
    seq = []
    for cap in (30, 21, 19, 18, 22, 24, 26, 30, 19):
        t += 20.0   # longer than hold between reports
        seq.append(sel.select(SystemState(bat(cap)), t).mode)
    # enters eco below 20 %, stays until 25 % (default hysteresis 5 points), enters again below 20 %
    assert seq == ["normal", "normal", "eco", "eco", "eco", "eco", "normal", "normal", "eco"]
    assert sel.select(SystemState(bat(50, "Charging")), t + 20).mode == "max"
    # with no battery at all (a desktop), no battery rule can hold
    assert sel.select(SystemState(None), t + 40).mode == "normal"


def test_hold_rate_limits_rule_changes_but_not_forced_rules():
    sel = ModeSelector(parse_policy(POLICY))
    assert sel.select(SystemState(bat(50)), 0.0).mode == "normal"
    assert sel.select(SystemState(bat(10)), 3.0).mode == "normal"      # within hold: not yet
    assert sel.select(SystemState(bat(10)), 11.0).mode == "eco"
    hot = SystemState(bat(10), {"thermal_zone0": 85.0})
    assert sel.select(hot, 12.0).mode == "cool"                          # forced: at once


def test_thermal_rule_from_a_fake_tree(tmp_path):
    tree = FakeSysfs(tmp_path)
    tree.write("/sys/class/thermal/thermal_zone0/type", "cpu-thermal")
    tree.write("/sys/class/thermal/thermal_zone0/temp", 45000)
    tree.write("/sys/class/thermal/thermal_zone1/type", "gpu-thermal")
    tree.write("/sys/class/thermal/thermal_zone1/temp", 52500)
    temps = read_thermal(tmp_path)
    assert temps == {"thermal_zone0": 45.0, "cpu-thermal": 45.0, "thermal_zone1": 52.5, "gpu-thermal": 52.5}
    sel = ModeSelector(parse_policy(POLICY))
    t = 0.0
    modes = []
    for milli in (45000, 81000, 75000, 69000):
        tree.write("/sys/class/thermal/thermal_zone0/temp", milli)
        t += 20
        modes.append(sel.select(SystemState(bat(50), read_thermal(tmp_path)), t).mode)
    assert modes == ["normal", "cool", "cool", "normal"]      # released below 70 C only
    # a zone by type
    c = parse_condition("thermal:gpu-thermal >= 52.5C")
    assert c.holds(SystemState(None, read_thermal(tmp_path)))


def test_manual_mode_overrides_rules_except_forced_ones():
    sel = ModeSelector(parse_policy(POLICY), manual="max")
    assert sel.select(SystemState(bat(10)), 0.0).mode == "max"                     # the battery rule waits
    assert sel.select(SystemState(bat(10), {"x": 90.0}), 1.0).mode == "cool"      # thermal is forced
    assert sel.select(SystemState(bat(10), {"x": 60.0}), 2.0).mode == "max"       # back at once
    sel.set_manual(None)
    assert sel.select(SystemState(bat(10)), 20.0).mode == "eco"
    with pytest.raises(PolicyError, match="no mode 'turbo'"):
        sel.set_manual("turbo")


def test_manual_mode_state_file(tmp_path, monkeypatch):
    monkeypatch.setenv("TUNABLE_CONFIG_DIR", str(tmp_path))
    policy = load_policy(EXAMPLE)
    assert read_manual_mode() is None
    path = write_manual_mode("eco", policy)
    assert json.loads(path.read_text())["mode"] == "eco" and read_manual_mode() == "eco"
    write_manual_mode("auto", policy)
    assert read_manual_mode() is None and not path.exists()
    path.write_text("{not json")
    assert read_manual_mode() is None          # a damaged file counts as auto
    assert default_policy_path() == EXAMPLE
    (tmp_path / "policy.toml").write_text(EXAMPLE.read_text())
    assert default_policy_path() == tmp_path / "policy.toml"


# ---- commands ------------------------------------------------------------------------------------------
def test_policy_check_command(tmp_path):
    r = CliRunner().invoke(main, ["policy", "check", str(EXAMPLE), "--sysfs-root", str(tmp_path)])
    assert r.exit_code == 0, r.output
    assert "OK: 4 modes, 3 rules, default mode 'balanced'" in r.output
    assert "note: no battery on this machine" in r.output
    bad = tmp_path / "bad.toml"
    bad.write_text('[modes.a]\nbudget = "-3mJ"\n')
    r = CliRunner().invoke(main, ["policy", "check", str(bad)])
    assert r.exit_code == 1
    assert f"{bad}:2: modes.a.budget: budget '-3mJ' is negative" in r.output
    assert "Traceback" not in r.output


def test_mode_commands(tmp_path, monkeypatch):
    monkeypatch.setenv("TUNABLE_CONFIG_DIR", str(tmp_path / "cfg"))
    tree = FakeSysfs(tmp_path / "sys")
    tree.battery("BAT0", status="Discharging", capacity=15, energy_now=5_000_000)
    run = CliRunner().invoke
    r = run(main, ["mode", "list", "--sysfs-root", str(tmp_path / "sys")])
    assert r.exit_code == 0, r.output
    assert "* eco" in r.output and "now: eco (rule 2 (battery < 20% and discharging) is active)" in r.output
    r = run(main, ["mode", "set", "max"])
    assert r.exit_code == 0 and "mode: max (saved in" in r.output and "force = true still override" in r.output
    r = run(main, ["mode", "list", "--sysfs-root", str(tmp_path / "sys")])
    assert "* max" in r.output and "now: max (set manually" in r.output
    r = run(main, ["mode", "set", "turbo"])
    assert r.exit_code == 1 and "no mode 'turbo'" in r.output and "max, balanced, eco, cool (or auto)" in r.output
    r = run(main, ["mode", "set", "auto"])
    assert r.exit_code == 0 and read_manual_mode() is None
