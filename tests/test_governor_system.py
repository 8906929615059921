"""System knobs and the Governor facade: cpufreq caps on a fake tree, thread count, batteries by name, and
modes switching as a fake battery drains."""
from __future__ import annotations

import os

import pytest

from governor import system
from governor.budgets import parse_budgets
from governor.engine import Governor, SystemKnobs
from governor.modes import write_manual_mode
from governor.points import OperatingPoint
from governor.policy import parse_policy
from governor.system import CpuFreqLimit, ThreadLimit, open_battery, parse_frequency
from tunable.energy.testing import FakeSysfs
from tunable.errors import TunableError

CPUFREQ = "/sys/devices/system/cpu/cpufreq"


def cpufreq_tree(root) -> FakeSysfs:
    tree = FakeSysfs(root)
    for n in (0, 4):
        d = f"{CPUFREQ}/policy{n}"
        tree.write(f"{d}/cpuinfo_min_freq", 600000)
        tree.write(f"{d}/cpuinfo_max_freq", 2400000)
        tree.write(f"{d}/scaling_max_freq", 2400000)
        tree.write(f"{d}/scaling_available_frequencies", "600000 1200000 1800000 2400000")
    return tree


def test_cpufreq_cap_and_restore(tmp_path):
    tree = cpufreq_tree(tmp_path)
    cap = CpuFreqLimit(tmp_path)
    assert cap.writable() == (True, "")
    msg = cap.set("60%")          # 1.44 GHz, rounded down to an offered step
    assert msg == "cpufreq max policy0=1200 MHz, policy4=1200 MHz"
    assert tree.path(f"{CPUFREQ}/policy0/scaling_max_freq").read_text() == "1200000\n"
    cap.set("min")
    assert tree.path(f"{CPUFREQ}/policy4/scaling_max_freq").read_text() == "600000\n"
    cap.restore()
    assert tree.path(f"{CPUFREQ}/policy0/scaling_max_freq").read_text() == "2400000\n"


def test_cpufreq_is_never_required(tmp_path, monkeypatch):
    assert CpuFreqLimit(tmp_path).set("max") == "cpufreq limit 'max' not applied: no cpufreq policies on this machine"
    cpufreq_tree(tmp_path)
    monkeypatch.setattr(system.os, "access", lambda path, mode: False)
    msg = CpuFreqLimit(tmp_path).set("1.2GHz")
    assert msg.startswith("cpufreq limit '1.2GHz' not applied: ") and "is not writable (needs root" in msg


@pytest.mark.parametrize("spec, khz", [("1.2GHz", 1200000), ("1200MHz", 1200000), ("800000kHz", 800000),
                                       (1500000, 1500000), ("50%", 1200000), ("max", 2400000), ("min", 600000)])
def test_frequencies(spec, khz):
    assert parse_frequency(spec, 600000, 2400000) == khz


@pytest.mark.parametrize("spec", ["fast", "0%", "150%", "-1GHz", 0])
def test_bad_frequencies(spec):
    with pytest.raises(TunableError, match="cpufreq_max"):
        parse_frequency(spec, 600000, 2400000)


def test_thread_count_by_affinity():
    limit = ThreadLimit()
    before = os.sched_getaffinity(0)
    try:
        msg = limit.set(1)
        assert msg.startswith("threads=1 (CPUs ") and len(os.sched_getaffinity(0)) == 1
    finally:
        limit.restore()
    assert os.sched_getaffinity(0) == before


def test_batteries_by_name(tmp_path):
    tree = FakeSysfs(tmp_path)
    tree.battery("BAT1", capacity=40, energy_now=20_000_000)
    tree.mains("AC")
    assert open_battery("BAT1", tmp_path).read().energy_joules == pytest.approx(72000.0)
    with pytest.raises(TunableError, match=r"no battery 'BAT0' under .*power_supply \(batteries here: BAT1\)"):
        open_battery("BAT0", tmp_path)


# ---- the Governor facade -------------------------------------------------------------------------------
FRONT = [OperatingPoint(f"p{i}", {"drowsy": round(0.1 * i, 1)}, 0.99 - 0.01 * i, 0.050 - 0.004 * i, 0.010 - 0.0005 * i)
         for i in range(8)][::-1]   # cheapest first

POLICY = """
default_mode = "normal"
hold = "0s"
[modes.normal]
budget = "45mJ"
[modes.eco]
budget = "30mJ"
threads = 1
cpufreq_max = "min"
[modes.max]
knobs = {}
[[rules]]
when = "battery < 20% and discharging"
release = "battery > 30%"
mode = "eco"
[[rules]]
when = "on_ac"
mode = "max"
"""


class Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def run(gov: Governor, clock: Clock, n: int) -> list[OperatingPoint]:
    out = []
    for _ in range(n):
        p = gov.choose()
        clock.t += 0.1
        gov.observe(p, p.latency_s, p.energy_j, "modeled")
        out.append(p)
    return out


def test_governor_follows_the_battery_through_its_modes(tmp_path, monkeypatch):
    monkeypatch.setenv("TUNABLE_CONFIG_DIR", str(tmp_path / "cfg"))
    tree = cpufreq_tree(tmp_path)
    tree.battery("BAT0", status="Discharging", capacity=50, energy_now=10_000_000)
    clock = Clock()
    knobs = SystemKnobs(tmp_path)
    knobs.threads = _FakeThreads()
    gov = Governor(FRONT, policy=parse_policy(POLICY), battery="BAT0", sysfs_root=tmp_path, system=knobs,
                   clock=clock, poll_s=1.0)
    pts = run(gov, clock, 50)
    assert gov.mode.name == "normal" and pts[-1].energy_j <= 0.045
    tree.battery("BAT0", status="Discharging", capacity=15, energy_now=3_000_000)
    pts = run(gov, clock, 50)
    assert gov.mode.name == "eco" and pts[-1].energy_j <= 0.030
    assert knobs.threads.n == 1
    assert tree.path(f"{CPUFREQ}/policy0/scaling_max_freq").read_text() == "600000\n"
    assert "mode 'eco' (rule 1 (battery < 20% and discharging) is active)" in gov.explain()
    tree.battery("BAT0", status="Charging", capacity=16, energy_now=3_100_000)
    pts = run(gov, clock, 50)
    assert gov.mode.name == "max" and pts[-1].knobs == {} and pts[-1].name == "mode:max"
    assert knobs.threads.n is None                                         # back to all CPUs
    assert tree.path(f"{CPUFREQ}/policy0/scaling_max_freq").read_text() == "2400000\n"
    s = gov.summary()
    assert s["inferences"] == 150 and set(s["inferences_per_mode"]) == {"normal", "eco", "max"}
    # a mode set by hand in another shell is picked up at the next poll
    write_manual_mode("eco", gov.policy)
    run(gov, clock, 30)
    assert gov.mode.name == "eco" and "set manually" in gov.explain()
    gov.close()


def test_budgets_from_the_command_line_replace_the_policys(tmp_path, monkeypatch):
    monkeypatch.setenv("TUNABLE_CONFIG_DIR", str(tmp_path / "cfg"))
    clock = Clock()
    gov = Governor(FRONT, policy=parse_policy(POLICY), budgets=parse_budgets("25mJ"), clock=clock,
                   sysfs_root=tmp_path)
    pts = run(gov, clock, 50)
    assert gov.mode.name == "normal" and max(p.energy_j for p in pts[-20:]) <= 0.025


def test_governor_without_a_policy(tmp_path):
    clock = Clock()
    gov = Governor(FRONT, budgets=parse_budgets("40mJ"), clock=clock, sysfs_root=tmp_path)
    pts = run(gov, clock, 40)
    assert gov.mode.name == "auto" and pts[-1].energy_j <= 0.040
    assert gov.explain().startswith("mode 'auto' (no policy): ")


class _FakeThreads:
    """ThreadLimit without touching this process's affinity."""

    def __init__(self):
        self.n = None

    def set(self, n: int) -> str:
        self.n = n
        return f"threads={n}"

    def restore(self) -> None:
        self.n = None
