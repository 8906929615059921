"""`tunable sensors`, `tunable energy` and `tunable calibrate` against fake trees and an empty one (this
project's machines have no energy sensor): measured numbers appear only where a sensor exists."""
from __future__ import annotations

import json
import sys

import numpy as np
import pytest
from click.testing import CliRunner

import tunable
from tunable.cli import main
from tunable.energy import load_profile, sysfs_root
from tunable.energy.sensor import CommandRunner
from tunable.energy.testing import FakeSysfs, deny_reads
from tunable.paths import shared_dir

AD01 = str(shared_dir() / "models" / "mlperf-tiny" / "ad01_int8.tflite")


@pytest.fixture(autouse=True)
def hermetic(monkeypatch, tmp_path):
    """No real tools (vcgencmd, tegrastats), no real /sys, profiles saved under tmp."""
    monkeypatch.setattr(CommandRunner, "which", lambda self, name: None)
    monkeypatch.setenv("TUNABLE_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("TUNABLE_PROFILE", "horowitz45")
    monkeypatch.setenv("TUNABLE_SYSFS_ROOT", str(tmp_path / "empty"))
    (tmp_path / "empty").mkdir()


def run(*args):
    r = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return r


def test_sensors_on_a_machine_without_any(tmp_path):
    r = run("sensors")
    assert r.exit_code == 0, r.output
    assert "No readable energy sensor: measured energy is unavailable" in r.output
    assert "model:horowitz45" in r.output and "modeled" in r.output
    assert "/sys/class/powercap does not exist" in r.output


def test_sensors_lists_units_readability_and_why(tmp_path, monkeypatch):
    tree = FakeSysfs(tmp_path / "board")
    zone = tree.rapl_zone("0", "package-0", 1_000_000)
    tree.ina3221(0, {"VDD_IN": (5000, 900), "VDD_SOC": (5000, 200)})
    tree.battery("BAT0", status="Charging", power_now=12_000_000)
    deny_reads(monkeypatch, zone / "energy_uj")
    r = run("sensors", "--sysfs-root", str(tree.root), "--json")
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    rows = {s["name"]: s for s in out["sensors"]}
    assert not rows["rapl:package-0"]["readable"] and "CVE-2020-8694" in rows["rapl:package-0"]["reason"]
    assert rows["rapl:package-0"]["unit"] == "µJ" and rows["rapl:package-0"]["quantity"] == "energy"
    assert rows["ina3221:VDD_IN"]["readable"] and rows["ina3221:VDD_IN"]["reading"] == "4.5 W"
    assert rows["ina3221:VDD_IN"]["unit"] == "mV x mA"
    assert not rows["battery:BAT0"]["readable"] and "Charging" in rows["battery:BAT0"]["reason"]
    assert rows["model:horowitz45"]["kind"] == "modeled"
    assert out["default"] == "ina3221:VDD_IN"
    # the option holds for the command only
    assert sysfs_root() == tmp_path / "empty"
    text = run("sensors", "--sysfs-root", str(tree.root)).output
    assert "not readable" in text and "sudo chmod o+r" in text and "will use ina3221:VDD_IN" in text


def model_counters():
    m = tunable.load(AD01)
    s = m.session()
    t = m.inputs[0]
    s.run(np.random.default_rng(0).integers(-128, 128, t.shape).astype(t.dtype))
    return s.stats.totals


def test_energy_without_a_sensor_shows_modeled_only():
    r = run("energy", AD01, "-n", "20", "--json")
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    assert out["measured"] is None and out["ratio_measured_over_modeled"] is None
    assert "no readable energy sensor" in out["measured_unavailable"]
    mod = out["modeled"]
    assert mod["kind"] == "modeled" and mod["profile"] == "horowitz45" and mod["fitted"] is False
    totals = model_counters()
    p = load_profile("horowitz45")
    assert mod["weights_in"] == "dram"
    assert mod["terms_joules"]["mults"] == pytest.approx(totals["mults"] * 0.2e-12)
    assert mod["terms_joules"]["weight_bytes"] == pytest.approx(totals["weight_bytes"] * p.weight_bytes_dram_pj * 1e-12)
    assert mod["gross_joules"] == pytest.approx(sum(mod["terms_joules"].values()))

    text = run("energy", AD01, "-n", "5").output
    assert "measured  unavailable: no readable energy sensor on this machine" in text
    assert "no measured number exists for this run" in text
    assert "profile horowitz45, not fitted on a device" in text and "source: M. Horowitz" in text


def test_energy_with_a_power_sensor_measures_gross_and_dynamic(tmp_path):
    tree = FakeSysfs(tmp_path / "board")
    tree.ina2xx(0, "ina226", power_uw=3_000_000, update_interval_ms=2)   # a constant 3 W board
    r = run("energy", AD01, "-n", "10", "--sysfs-root", str(tree.root), "--window-s", "0.05", "--idle-s", "0.05",
            "--json", "--profile", "rpi4")
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    meas = out["measured"]
    assert meas["kind"] == "measured" and meas["sensor"] == "hwmon:ina226@1-0040"
    assert meas["idle_watts"] == pytest.approx(3.0) and meas["mean_watts"] == pytest.approx(3.0)
    # constant power: everything is idle power, nothing is dynamic
    assert abs(meas["dynamic_joules"]) < 1e-9 * meas["gross_joules"]
    assert meas["inferences"] >= 10 and "windows of about 50 ms" in meas["batching"]
    assert out["modeled"]["profile"] == "rpi4"
    assert out["ratio_measured_over_modeled"]["gross"] == pytest.approx(
        meas["gross_joules"] / out["modeled"]["gross_joules"])


def test_energy_named_sensor_that_cannot_be_read(tmp_path, monkeypatch):
    tree = FakeSysfs(tmp_path / "board")
    zone = tree.rapl_zone("0", "package-0", 1_000_000)
    deny_reads(monkeypatch, zone / "energy_uj")
    r = CliRunner().invoke(main, ["energy", AD01, "--sensor", "rapl:package-0", "--sysfs-root", str(tree.root)])
    assert r.exit_code != 0 and "cannot be read" in r.output and "udev" in r.output
    r = CliRunner().invoke(main, ["energy", AD01, "--sensor", "ina3221:VDD_IN", "--sysfs-root", str(tree.root)])
    assert r.exit_code != 0 and "no sensor named 'ina3221:VDD_IN'" in r.output


def test_energy_knobs_need_the_knobs_module(monkeypatch):
    monkeypatch.setitem(sys.modules, "tunable.knobs", None)   # as if tunable.knobs did not exist
    r = CliRunner().invoke(main, ["energy", AD01, "--knobs", "drowsy=0.1"])
    assert r.exit_code != 0 and "knobs are not available" in r.output


def test_energy_with_knobs_changes_the_modeled_counters():
    off = json.loads(run("energy", AD01, "-n", "5", "--json", "--knobs", "off").output)["modeled"]
    aip = json.loads(run("energy", AD01, "-n", "5", "--json", "--knobs", "aip=0.25").output)
    assert aip["knobs"] == "aip=0.25"
    # AIP fetches fewer FC weight bytes: the modeled weight term shrinks, by whatever the counters say
    assert aip["modeled"]["terms_joules"]["weight_bytes"] < off["terms_joules"]["weight_bytes"]
    r = CliRunner().invoke(main, ["energy", AD01, "--knobs", "aip=7"])
    assert r.exit_code != 0 and "aip" in r.output


def test_calibrate_default_sweep_uses_knobs_that_apply(tmp_path):
    tree = FakeSysfs(tmp_path / "board")
    tree.ina2xx(0, "ina226", power_uw=2_000_000, update_interval_ms=2)
    r = run("calibrate", "--sensor", "ina226@1-0040", AD01, "--sysfs-root", str(tree.root),
            "--window-s", "0.03", "--repeats", "1", "--name", "sweep")
    assert r.exit_code == 0, r.output
    models = load_profile("sweep").fit["models"]
    # ad01 has no conv layer: drowsy settings change nothing and are not swept
    assert models == ["ad01_int8.tflite knobs off", "ad01_int8.tflite knobs aip=0.5",
                      "ad01_int8.tflite knobs aip=0.125"]


def test_calibrate_without_a_sensor_says_so():
    r = CliRunner().invoke(main, ["calibrate", "--sensor", "rapl:package-0", AD01])
    assert r.exit_code != 0 and "no sensor named 'rapl:package-0'" in r.output


def test_calibrate_against_a_fake_board(tmp_path):
    tree = FakeSysfs(tmp_path / "board")
    tree.ina2xx(0, "ina226", power_uw=3_000_000, update_interval_ms=2)
    r = run("calibrate", "--sensor", "hwmon:ina226@1-0040", AD01, "--sysfs-root", str(tree.root),
            "--window-s", "0.05", "--repeats", "3", "--name", "fake-board", "--base", "rpi4", "--knobs", "off")
    assert r.exit_code == 0, r.output
    assert "fitted fake-board" in r.output and "fit error:" in r.output
    assert "window_s       3 W: base_watts" in r.output
    p = load_profile("fake-board")
    assert p.fitted and "hwmon:ina226@1-0040" in p.fitted_on
    assert p.base_watts == pytest.approx(3.0, rel=1e-6)       # a constant 3 W board is all base power
    assert p.fit["rms_relative_error"] < 1e-6 and p.fit["windows"] == 6
    assert p.cache_bytes == load_profile("rpi4").cache_bytes
