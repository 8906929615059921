"""Every sensor backend against fake sysfs trees and recorded tool output: values and units, counter wrap,
missing files, permission denied, a sensor disappearing mid-run. No hardware is touched."""
from __future__ import annotations

import pytest

from tunable.energy import (Battery, SensorError, SensorGone, SensorPermissionError, discover, list_batteries,
                            parse_pmic_read_adc, parse_tegrastats_line, set_sysfs_root, sysfs_root)
from tunable.energy import battery, hwmon, jetson, rapl, rpi
from tunable.energy.sampler import Sampler
from tunable.energy.testing import FakeRunner, FakeStream, FakeSysfs, deny_reads

# A Raspberry Pi 5's `vcgencmd pmic_read_adc`, in the firmware's layout (currents, then voltages; the
# numbers are a plausible idle board, written for this test).
PMIC_OUTPUT = """\
     3V7_WL_SW_A current(0)=0.00390372A
       3V3_SYS_A current(1)=0.05172063A
       1V8_SYS_A current(2)=0.15713500A
      DDR_VDD2_A current(3)=0.02537778A
      DDR_VDDQ_A current(4)=0.00000000A
       1V1_SYS_A current(5)=0.18932550A
       0V8_SYS_A current(6)=0.33175480A
      VDD_CORE_A current(7)=0.66000000A
       3V3_DAC_A current(17)=0.00048840A
       3V3_ADC_A current(18)=0.00048840A
       0V8_AON_A current(16)=0.00384615A
          HDMI_A current(22)=0.02074480A
     3V7_WL_SW_V volt(8)=3.71561300V
       3V3_SYS_V volt(9)=3.31367300V
       1V8_SYS_V volt(10)=1.80073200V
      DDR_VDD2_V volt(11)=1.11196500V
      DDR_VDDQ_V volt(12)=0.60439560V
       1V1_SYS_V volt(13)=1.11355400V
       0V8_SYS_V volt(14)=0.80073250V
      VDD_CORE_V volt(15)=0.72079600V
       3V3_DAC_V volt(20)=3.30329700V
       3V3_ADC_V volt(21)=3.30940200V
       0V8_AON_V volt(19)=0.80073250V
          HDMI_V volt(23)=5.14505400V
        EXT5V_V volt(24)=5.12366600V
         BATT_V volt(25)=0.00000000V
"""

# tegrastats lines: Jetson Orin Nano on JetPack 6 (mW units) and a Jetson Nano on JetPack 4 (no units).
ORIN_LINES = [
    "03-14-2025 10:12:01 RAM 2391/7620MB (lfb 2x4MB) SWAP 0/3810MB (cached 0MB) CPU [2%@729,1%@729,0%@729,"
    "0%@729,off,off] EMC_FREQ 0%@2133 GR3D_FREQ 0%@[305] VIC_FREQ 729 APE 200 CV0@-256C CPU@47.5C "
    "SOC2@45.968C SOC0@46.5C CV1@-256C GPU@-256C tj@47.5C SOC1@45.375C CV2@-256C VDD_IN 4102mW/4102mW "
    "VDD_CPU_GPU_CV 480mW/480mW VDD_SOC 1200mW/1200mW",
    "03-14-2025 10:12:01 RAM 2391/7620MB (lfb 2x4MB) SWAP 0/3810MB (cached 0MB) CPU [64%@1510,3%@1510,1%@1510,"
    "0%@1510,off,off] EMC_FREQ 0%@2133 GR3D_FREQ 0%@[305] VIC_FREQ 729 APE 200 CV0@-256C CPU@48.1C "
    "SOC2@46.0C SOC0@46.6C CV1@-256C GPU@-256C tj@48.1C SOC1@45.4C CV2@-256C VDD_IN 5310mW/4706mW "
    "VDD_CPU_GPU_CV 1452mW/966mW VDD_SOC 1288mW/1244mW",
]
NANO_LINE = ("RAM 1530/3964MB (lfb 91x4MB) SWAP 0/1982MB (cached 0MB) IRAM 0/252kB(lfb 252kB) CPU "
             "[9%@1479,4%@1479,5%@1479,3%@1479] EMC_FREQ 3%@1600 GR3D_FREQ 0%@921 APE 25 PLL@34C CPU@36.5C "
             "PMIC@100C GPU@35C AO@42.5C thermal@35.75C POM_5V_IN 2440/2440 POM_5V_GPU 0/0 POM_5V_CPU 366/366")


@pytest.fixture
def tree(tmp_path):
    return FakeSysfs(tmp_path)


# ------------------------------------------------------------------ sysfs root

def test_sysfs_root_from_env_and_override(monkeypatch, tmp_path):
    monkeypatch.delenv("TUNABLE_SYSFS_ROOT", raising=False)
    set_sysfs_root(None)
    assert str(sysfs_root()) == "/"
    monkeypatch.setenv("TUNABLE_SYSFS_ROOT", str(tmp_path))
    assert sysfs_root() == tmp_path
    set_sysfs_root(tmp_path / "other")
    try:
        assert sysfs_root() == tmp_path / "other"
    finally:
        set_sysfs_root(None)


def test_discovery_uses_env_root(monkeypatch, tree):
    tree.rapl_zone("0", "package-0", 5_000_000)
    monkeypatch.setenv("TUNABLE_SYSFS_ROOT", str(tree.root))
    d = discover(runner=FakeRunner())
    assert d.names() == ["rapl:package-0"]


def test_empty_tree_has_no_sensor_and_says_why(tree):
    d = discover(root=tree.root, runner=FakeRunner())
    assert d.sensors == [] and d.best() is None
    text = " ".join(d.notes)
    for source in ("/sys/class/powercap", "/sys/class/hwmon", "power_supply", "vcgencmd", "tegrastats"):
        assert source in text


# ------------------------------------------------------------------ RAPL

def test_rapl_every_zone_values_and_units(tree):
    tree.rapl_zone("0", "package-0", 12_345_678)
    tree.rapl_zone("0:0", "core", 2_000_000)
    tree.rapl_zone("0:1", "uncore", 30)
    tree.rapl_zone("0:2", "dram", 400)
    tree.rapl_zone("1", "psys", 9_000_000)
    tree.rapl_zone("0", "package-0", 77, control="intel-rapl-mmio")
    sensors, notes = rapl.discover(tree.root)
    byname = {s.name: s for s in sensors}
    assert set(byname) == {"rapl:package-0", "rapl:package-0:core", "rapl:package-0:uncore",
                           "rapl:package-0:dram", "rapl:psys", "rapl-mmio:package-0"}
    assert byname["rapl:package-0"].read_joules() == pytest.approx(12.345678)  # µJ -> J
    assert byname["rapl:package-0:core"].read_joules() == pytest.approx(2.0)
    assert byname["rapl:package-0"].wrap_joules == pytest.approx(262143.328850)
    assert byname["rapl:package-0"].quantity == "energy" and byname["rapl:package-0"].unit == "µJ"
    assert "DRAM" in byname["rapl:package-0:dram"].scope
    # psys (the whole platform) is preferred when nothing is named
    assert discover(root=tree.root, runner=FakeRunner()).best().name == "rapl:psys"


def test_rapl_counter_wrap_through_sampler(tree):
    zone = tree.rapl_zone("0", "package-0", 999_000_000, max_energy_range_uj=1_000_000_000)  # wraps at 1000 J
    (s,), _ = rapl.discover(tree.root)
    clock = iter(range(100)).__next__
    smp = Sampler(s, clock=clock)
    m = smp.mark()                                   # 999 J
    (zone / "energy_uj").write_text("999500000\n")   # 999.5 J, just below the wrap
    smp.sample()
    (zone / "energy_uj").write_text("2000000\n")     # wrapped: 1000 J + 2 J
    w = smp.since(m)
    assert w.complete and smp.wraps == 1
    assert w.joules == pytest.approx(3.0)            # 1000 - 999 + 2


def test_rapl_backwards_without_range_stops_with_reason(tree):
    zone = tree.rapl_zone("0", "package-0", 5_000_000, max_energy_range_uj=None)
    (s,), _ = rapl.discover(tree.root)
    assert s.wrap_joules is None
    smp = Sampler(s, clock=iter(range(100)).__next__)
    m = smp.mark()
    (zone / "energy_uj").write_text("1000\n")
    w = smp.since(m)
    assert not w.complete and "wrap range is unknown" in w.error


def test_rapl_permission_denied_explains_fixes(tree, monkeypatch):
    zone = tree.rapl_zone("0", "package-0", 5_000_000)
    deny_reads(monkeypatch, zone / "energy_uj")
    (s,), _ = rapl.discover(tree.root)
    with pytest.raises(SensorPermissionError) as e:
        s.read_joules()
    msg = str(e.value)
    for fix in ("CVE-2020-8694", "root", "chmod o+r", "udev"):
        assert fix in msg
    p = s.probe()
    assert not p.readable and "CVE-2020-8694" in p.reason
    d = discover(root=tree.root, runner=FakeRunner())
    assert d.best() is None and "CVE-2020-8694" in d.why_none()


def test_rapl_zone_without_counter_and_missing_dir(tree):
    tree.write("/sys/class/powercap/dtpm:0/name", "dtpm")  # a zone with no energy_uj
    sensors, notes = rapl.discover(tree.root)
    assert sensors == [] and "no zone with an energy_uj" in notes[0]


def test_rapl_zone_disappears_mid_run(tree):
    tree.rapl_zone("0", "package-0", 5_000_000)
    (s,), _ = rapl.discover(tree.root)
    smp = Sampler(s, clock=iter(range(100)).__next__)
    m = smp.mark()
    tree.remove("/sys/class/powercap/intel-rapl:0")
    w = smp.since(m)          # no exception into the caller
    assert not w.complete and "disappeared" in w.error and not smp.alive
    with pytest.raises(SensorGone):
        s.read_joules()


# ------------------------------------------------------------------ hwmon INA2xx

def test_ina219_power_file_by_name_not_number(tree):
    tree.write("/sys/class/hwmon/hwmon0/name", "coretemp")
    tree.ina2xx(3, "ina219", power_uw=2_150_000, bus_mv=5080, curr_ma=423, device="1-0040")
    sensors, _ = hwmon.discover(tree.root)
    (s,) = sensors
    assert s.name == "hwmon:ina219@1-0040"
    assert s.read_watts() == pytest.approx(2.15)         # µW -> W, from power1_input
    assert s.unit == "µW" and s.resolution == pytest.approx(1e-6)


def test_ina226_volts_times_amps_without_power_file(tree):
    tree.ina2xx(1, "ina226", bus_mv=5000, curr_ma=-600, update_interval_ms=35)
    (s,), _ = hwmon.discover(tree.root)
    assert s.read_watts() == pytest.approx(3.0)          # 5 V x 0.6 A (shunt sign ignored)
    assert s.refresh_interval_s == pytest.approx(0.035)
    assert s.resolution == pytest.approx(5e-3)           # 1 mA at 5 V


def test_ina2xx_attributes_under_device_dir(tree):
    # Older kernels put the attributes in hwmonN/device/.
    tree.write("/sys/class/hwmon/hwmon2/name", "ina230")
    tree.write("/sys/class/hwmon/hwmon2/device/in1_input", 3300)
    tree.write("/sys/class/hwmon/hwmon2/device/curr1_input", 1000)
    (s,), _ = hwmon.discover(tree.root)
    assert s.read_watts() == pytest.approx(3.3)


def test_ina2xx_missing_current_file_is_an_error_not_a_number(tree):
    d = tree.ina2xx(0, "ina219", bus_mv=5000, curr_ma=100)
    (d / "curr1_input").unlink()
    (s,), _ = hwmon.discover(tree.root)
    with pytest.raises(SensorGone):
        s.read_watts()
    assert not s.probe().readable


def test_ina2xx_permission_denied(tree, monkeypatch):
    d = tree.ina2xx(0, "ina219", power_uw=1_000_000)
    deny_reads(monkeypatch, d / "power1_input")
    (s,), _ = hwmon.discover(tree.root)
    with pytest.raises(SensorPermissionError, match="permission denied"):
        s.read_watts()


def test_ina2xx_disappears_mid_run(tree):
    tree.ina2xx(0, "ina219", power_uw=2_000_000)
    (s,), _ = hwmon.discover(tree.root)
    t = iter([0.0, 0.0, 1.0, 1.0, 2.0, 2.0, 3.0, 3.0]).__next__
    smp = Sampler(s, clock=t)
    m = smp.mark()                      # t = 0, 2 W
    smp.sample()                        # t = 1
    tree.remove("/sys/class/hwmon/hwmon0")  # driver unbound
    w = smp.since(m)
    assert not w.complete and "disappeared" in w.error
    assert w.joules == pytest.approx(2.0) and w.seconds == pytest.approx(1.0)  # what was seen before it went


def test_non_ina_chips_are_listed_in_the_note(tree):
    tree.write("/sys/class/hwmon/hwmon0/name", "coretemp")
    tree.write("/sys/class/hwmon/hwmon1/name", "nvme")
    sensors, notes = hwmon.discover(tree.root)
    assert sensors == [] and "coretemp" in notes[0] and "nvme" in notes[0]


# ------------------------------------------------------------------ hwmon INA3221

def test_ina3221_rails_by_label_v_times_i(tree):
    tree.ina3221(1, {"VDD_IN": (5080, 806), "VDD_CPU_GPU_CV": (5072, 95), "VDD_SOC": (5076, 237)},
                 update_interval_ms=8)
    sensors, _ = hwmon.discover(tree.root)
    byname = {s.name: s for s in sensors}
    assert set(byname) == {"ina3221:VDD_IN", "ina3221:VDD_CPU_GPU_CV", "ina3221:VDD_SOC"}
    assert byname["ina3221:VDD_IN"].read_watts() == pytest.approx(5.080 * 0.806)
    assert byname["ina3221:VDD_SOC"].read_watts() == pytest.approx(5.076 * 0.237)
    assert byname["ina3221:VDD_IN"].is_total and "total" in byname["ina3221:VDD_IN"].scope
    assert byname["ina3221:VDD_IN"].refresh_interval_s == pytest.approx(0.008)
    # the module total is what is used by default, not a sub-rail
    assert discover(root=tree.root, runner=FakeRunner()).best().name == "ina3221:VDD_IN"


def test_ina3221_disabled_channel_and_two_chips(tree):
    tree.ina3221(0, {"VDD_IN": (5000, 800), "VDD_SOC": (5000, 200), "NC": (0, 0)}, disabled=[3], device="1-0040")
    tree.ina3221(1, {"VDD_IN": (12000, 100)}, device="1-0041")
    sensors, notes = hwmon.discover(tree.root)
    names = sorted(s.name for s in sensors)
    assert names == ["ina3221:VDD_IN@1-0040", "ina3221:VDD_IN@1-0041", "ina3221:VDD_SOC"]
    assert any("channel 3 is disabled" in n for n in notes)


def test_ina3221_missing_voltage_and_permission(tree, monkeypatch):
    d = tree.ina3221(0, {"VDD_IN": (5000, 800), "VDD_SOC": (5000, 200)})
    (d / "in2_input").unlink()                   # a rail without its voltage file is not offered
    sensors, _ = hwmon.discover(tree.root)
    assert [s.name for s in sensors] == ["ina3221:VDD_IN"]
    deny_reads(monkeypatch, d / "curr1_input")
    assert not sensors[0].probe().readable
    with pytest.raises(SensorPermissionError):
        sensors[0].read_watts()


def test_ina3221_disappears_mid_run_in_sampler_thread(tree):
    tree.ina3221(0, {"VDD_IN": (5000, 800)})
    (s,), _ = hwmon.discover(tree.root)
    smp = Sampler(s, interval_s=0.005).start()
    tree.remove("/sys/class/hwmon/hwmon0")
    smp._thread.join(10)                         # the thread ends by itself; nothing raised
    assert not smp.alive and "disappeared" in smp.error
    smp.stop()


# ------------------------------------------------------------------ batteries

def test_battery_energy_family(tree):
    tree.battery("BAT0", status="Discharging", capacity=73, energy_now=41_500_000, energy_full=57_000_000,
                 power_now=-8_250_000, voltage_now=12_100_000)
    tree.mains("AC", online=0)
    tree.write("/sys/class/power_supply/hidpp_battery_0/type", "Battery")
    tree.write("/sys/class/power_supply/hidpp_battery_0/scope", "Device")   # a mouse: not the system's
    (b,) = list_batteries(tree.root)
    st = b.read()
    assert st.name == "BAT0" and st.status == "Discharging" and st.discharging
    assert st.capacity_percent == 73
    assert st.energy_joules == pytest.approx(41.5 * 3600)       # µWh -> J
    assert st.energy_full_joules == pytest.approx(57 * 3600)
    assert st.power_watts == pytest.approx(8.25)                # sign dropped: status gives the direction
    assert st.hours_left == pytest.approx(41.5 / 8.25)


def test_battery_charge_family_and_v_times_i(tree):
    tree.battery("BAT1", status="Discharging", capacity=None, charge_now=2_000_000, charge_full=4_000_000,
                 voltage_now=7_400_000, current_now=500_000)
    (b,) = list_batteries(tree.root)
    assert b.energy_joules() == pytest.approx(2.0 * 7.4 * 3600)   # Ah x V -> Wh -> J
    assert b.power_watts() == pytest.approx(7.4 * 0.5)
    assert b.capacity_percent() == pytest.approx(50.0)           # from charge_now / charge_full


def test_battery_sensor_only_while_discharging(tree):
    d = tree.battery("BAT0", status="Charging", power_now=15_000_000)
    (s,), _ = battery.discover(tree.root)
    p = s.probe()
    assert not p.readable and "Charging" in p.reason
    (d / "status").write_text("Discharging\n")
    assert s.read_watts() == pytest.approx(15.0)
    assert s.probe().readable


def test_battery_missing_files_and_permission(tree, monkeypatch):
    d = tree.battery("BAT0", status="Discharging", capacity=None)
    (b,) = list_batteries(tree.root)
    st = b.read()
    assert st.capacity_percent is None and st.energy_joules is None and st.power_watts is None
    (s,), _ = battery.discover(tree.root)
    assert not s.probe().readable
    tree.write("/sys/class/power_supply/BAT0/capacity", 50)
    deny_reads(monkeypatch, d / "capacity")
    with pytest.raises(SensorPermissionError):
        b.capacity_percent()


def test_battery_removed_mid_run(tree):
    tree.battery("BAT0", status="Discharging", power_now=10_000_000)
    (s,), _ = battery.discover(tree.root)
    smp = Sampler(s, clock=iter([0.0, 0.0, 5.0, 5.0, 9.0, 9.0]).__next__)
    m = smp.mark()
    smp.sample()
    tree.remove("/sys/class/power_supply/BAT0")
    w = smp.since(m)
    assert not w.complete and "no longer present" in w.error and not smp.alive
    assert w.joules == pytest.approx(50.0)          # 10 W over the 5 s seen before it went


def test_no_battery_under_power_supply(tree):
    tree.mains("AC")
    assert list_batteries(tree.root) == []
    sensors, notes = battery.discover(tree.root)
    assert sensors == [] and "no battery" in notes[0]


# ------------------------------------------------------------------ Raspberry Pi 5 PMIC

def test_pmic_parse_pairs_rails():
    rails = parse_pmic_read_adc(PMIC_OUTPUT)
    assert len(rails) == 12                     # EXT5V_V and BATT_V have no current: not paired
    assert rails["VDD_CORE"] == pytest.approx((0.72079600, 0.66))
    assert "EXT5V" not in rails


def test_pmic_sensor_is_estimated_with_the_public_fit(tree):
    tree.device_model("Raspberry Pi 5 Model B Rev 1.0")
    runner = FakeRunner({"vcgencmd": PMIC_OUTPUT})
    (s,), notes = rpi.discover(runner, tree.root)
    raw = sum(v * a for v, a in parse_pmic_read_adc(PMIC_OUTPUT).values())
    assert s.kind == "estimated" and "estimated" in s.label()
    assert s.read_watts() == pytest.approx(1.1451 * raw + 0.5879)
    assert s.min_window_s >= 1.0
    assert runner.calls[-1] == ["vcgencmd", "pmic_read_adc"]


def test_pmic_absent_on_pi4_and_without_vcgencmd(tree):
    tree.device_model("Raspberry Pi 4 Model B Rev 1.5")
    sensors, notes = rpi.discover(FakeRunner({"vcgencmd": "error=1 error_msg=\"Command not registered\""}),
                                  tree.root)
    assert sensors == [] and "Pi 5 only" in notes[0] and "INA219" in notes[0]
    sensors, notes = rpi.discover(FakeRunner(), tree.root)
    assert sensors == [] and "not on PATH" in notes[0]


def test_pmic_unparseable_output_and_permission(tree):
    runner = FakeRunner({"vcgencmd": "error=1 error_msg=\"Command not registered\""})
    sensors, notes = rpi.discover(runner, tree.root)
    assert sensors == [] and "no paired rail" in notes[0]
    runner = FakeRunner({"vcgencmd": SensorError("vcgencmd exited with 255: VCHI initialization failed")})
    s = rpi.Pi5PmicSensor(runner)
    with pytest.raises(SensorPermissionError, match="video"):
        s.read_watts()


def test_pmic_failing_mid_run_stops_the_sampler_after_repeated_errors():
    outputs = [PMIC_OUTPUT, PMIC_OUTPUT]
    runner = FakeRunner({"vcgencmd": lambda: outputs.pop(0) if outputs else SensorError("vcgencmd: exited 1")})
    s = rpi.Pi5PmicSensor(runner)
    smp = Sampler(s, clock=iter(float(i) for i in range(100)).__next__, max_consecutive_errors=3)
    m = smp.mark()
    smp.sample()
    for _ in range(3):
        smp.sample()
    w = smp.since(m)
    assert not smp.alive and "3 reads failed in a row" in smp.error and not w.complete
    assert w.joules > 0


# ------------------------------------------------------------------ Jetson tegrastats

def test_tegrastats_line_parsing_both_formats():
    orin = parse_tegrastats_line(ORIN_LINES[1])
    assert orin == pytest.approx({"VDD_IN": 5.310, "VDD_CPU_GPU_CV": 1.452, "VDD_SOC": 1.288})
    nano = parse_tegrastats_line(NANO_LINE)
    assert nano == pytest.approx({"POM_5V_IN": 2.440, "POM_5V_GPU": 0.0, "POM_5V_CPU": 0.366})
    assert parse_tegrastats_line("RAM 2391/7620MB SWAP 0/3810MB IRAM 0/252kB") == {}


def test_tegrastats_sensors_from_a_stream():
    stream = FakeStream(ORIN_LINES, keep_running=True)
    runner = FakeRunner(streams={"tegrastats": stream})
    sensors, notes = jetson.discover(runner)
    try:
        assert [s.name for s in sensors] == ["tegrastats:VDD_IN", "tegrastats:VDD_CPU_GPU_CV", "tegrastats:VDD_SOC"]
        assert runner.calls[0][:3] == ["tegrastats", "--interval", str(jetson.INTERVAL_MS)]
        assert sensors[0].feed.wait_lines(len(ORIN_LINES))
        assert sensors[0].read_watts() == pytest.approx(5.310)   # the latest line's value
        assert sensors[2].read_watts() == pytest.approx(1.288)
        assert sensors[0].kind == "measured" and "total" in sensors[0].scope
    finally:
        sensors[0].close()


def test_tegrastats_exits_mid_run():
    runner = FakeRunner(streams={"tegrastats": FakeStream([NANO_LINE], keep_running=False)})
    feed = jetson.TegrastatsFeed(runner)
    s = jetson.TegrastatsSensor(feed, "POM_5V_IN")
    feed.start()
    feed.join()
    with pytest.raises(SensorGone, match="exited"):
        s.read_watts()
    smp = Sampler(s, clock=iter(float(i) for i in range(10)).__next__)
    w = smp.since(smp.mark())
    assert not w.complete and "disappeared" in w.error


def test_tegrastats_absent():
    sensors, notes = jetson.discover(FakeRunner())
    assert sensors == [] and "not on PATH" in notes[0]
    sensors, notes = jetson.discover(FakeRunner(streams={"tegrastats": FakeStream([], keep_running=False)}))
    assert sensors == [] and "before printing" in notes[0]


# ------------------------------------------------------------------ discovery

def test_discovery_get_by_short_name_and_unknown(tree):
    tree.ina3221(0, {"VDD_IN": (5000, 800)})
    d = discover(root=tree.root, runner=FakeRunner())
    assert d.get("VDD_IN").name == "ina3221:VDD_IN"
    assert d.get("ina3221:VDD_IN").name == "ina3221:VDD_IN"
    with pytest.raises(SensorError, match="no sensor named 'rapl:package-0'"):
        d.get("rapl:package-0")


def test_battery_module_object_api(tree):
    tree.battery("BAT0", status="Full", capacity=100, energy_now=50_000_000, power_now=0)
    b = Battery(tree.path("/sys/class/power_supply/BAT0"))
    assert b.status() == "Full" and b.capacity_percent() == 100 and b.read().hours_left is None
