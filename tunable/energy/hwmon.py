"""Current/power monitors on I2C through hwmon: TI INA2xx (INA219/226/230/231/238/260...) and INA3221.

Chips are found by the `name` attribute of /sys/class/hwmon/hwmonN, never by N (the numbering changes
between boots). Units per the hwmon ABI: power µW, current mA, voltage mV, update_interval ms. INA2xx has
one channel (`power1_input`, or bus voltage `in1_input` x `curr1_input` when there is no power file); INA3221
has three rails with labels in `in[1-3]_label` (on Jetson Orin: VDD_IN is the module's total input) and no
power file, so P = V x I per rail.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

from ..units import MILLI, MICRO
from .sensor import MEASURED, POWER, Sensor
from .sysfs import SensorError, host_path, read_int, read_optional_int, read_optional_text

HWMON = "/sys/class/hwmon"
_INA2XX = re.compile(r"ina2\d\d")
_TOTAL_RAILS = {"VDD_IN": "module input (total)", "POM_5V_IN": "module input (total)",
                "VIN_SYS_5V0": "system 5 V input"}


def _attr_dir(hwmon: Path, probe: str) -> Path:
    # Older drivers put the attributes in hwmonN/device/ instead of hwmonN/.
    if (hwmon / probe).exists() or not (hwmon / "device" / probe).exists():
        return hwmon
    return hwmon / "device"


def _device_id(hwmon: Path) -> str:
    dev = hwmon / "device"
    try:
        return os.path.basename(os.path.realpath(dev)) if dev.exists() else ""
    except OSError:
        return ""


def _refresh_s(d: Path, default_s: float) -> float:
    try:
        ms = read_optional_int(d / "update_interval")
    except SensorError:
        ms = None
    return ms * MILLI if ms and ms > 0 else default_s


class _HwmonPower(Sensor):
    kind = MEASURED
    quantity = POWER

    def _volts_amps_watts(self, d: Path, ch: int) -> float:
        mv = read_int(d / f"in{ch}_input")
        ma = read_int(d / f"curr{ch}_input")
        volts = mv * MILLI
        self.resolution = abs(volts) * MILLI  # one mA at the rail voltage (plus 1 mV x I, negligible)
        # The shunt may be wired either way round; the load current's sign carries no energy meaning here.
        return abs(volts * ma * MILLI)


class Ina2xxSensor(_HwmonPower):
    """An INA2xx: power1_input (µW) when the driver has it, else bus voltage x current."""

    def __init__(self, hwmon: Path, chip: str, name: str):
        self.hwmon = hwmon
        self.dir = _attr_dir(hwmon, "in1_input")
        self.chip = chip
        self.name = name
        self.scope = f"{chip} monitor on its shunt's supply (see its wiring)"
        self.has_power_file = (self.dir / "power1_input").exists()
        if self.has_power_file:
            self.unit, self.resolution, self.source = "µW", MICRO, str(self.dir / "power1_input")
        else:
            self.unit, self.source = "mV x mA", f"{self.dir}/in1_input x curr1_input"
        self.refresh_interval_s = _refresh_s(self.dir, 0.01)

    def read_watts(self) -> float:
        if self.has_power_file:
            return read_int(self.dir / "power1_input") * MICRO
        return self._volts_amps_watts(self.dir, 1)


class Ina3221Sensor(_HwmonPower):
    """One INA3221 rail: in{n}_input (mV) x curr{n}_input (mA)."""
    unit = "mV x mA"

    def __init__(self, hwmon: Path, channel: int, label: str, name: str):
        self.hwmon = hwmon
        self.dir = _attr_dir(hwmon, f"in{channel}_input")
        self.channel = channel
        self.label_text = label
        self.name = name
        self.scope = f"rail {label}" + (f", {_TOTAL_RAILS[label]}" if label in _TOTAL_RAILS else "")
        self.source = f"{self.dir}/in{channel}_input x curr{channel}_input"
        self.refresh_interval_s = _refresh_s(self.dir, 0.01)
        self.is_total = label in _TOTAL_RAILS

    def read_watts(self) -> float:
        return self._volts_amps_watts(self.dir, self.channel)


def discover(root: str | os.PathLike | None = None) -> tuple[list[Sensor], list[str]]:
    base = host_path(HWMON, root)
    if not base.is_dir():
        return [], [f"hwmon: {HWMON} does not exist"]
    sensors: list[Sensor] = []
    notes: list[str] = []
    seen_chips: list[str] = []
    for hw in sorted(base.iterdir(), key=lambda p: p.name):
        try:
            chip = read_optional_text(hw / "name") or read_optional_text(hw / "device" / "name") or ""
        except SensorError as e:
            notes.append(f"hwmon: {hw.name}: {e}")
            continue
        seen_chips.append(chip)
        dev = _device_id(hw) or hw.name
        if _INA2XX.fullmatch(chip):
            d = _attr_dir(hw, "in1_input")
            try:
                label = read_optional_text(d / "label")
            except SensorError:
                label = None
            name = f"hwmon:{label}" if label else f"hwmon:{chip}@{dev}"
            sensors.append(Ina2xxSensor(hw, chip, name))
        elif chip == "ina3221":
            for ch in (1, 2, 3):
                d = _attr_dir(hw, f"in{ch}_input")
                if not (d / f"in{ch}_input").exists() or not (d / f"curr{ch}_input").exists():
                    continue
                try:
                    if read_optional_int(d / f"in{ch}_enable") == 0:
                        notes.append(f"ina3221@{dev}: channel {ch} is disabled (in{ch}_enable = 0)")
                        continue
                    label = read_optional_text(d / f"in{ch}_label") or f"channel{ch}"
                except SensorError as e:
                    notes.append(f"ina3221@{dev}: channel {ch}: {e}")
                    continue
                sensors.append(Ina3221Sensor(hw, ch, label, f"ina3221:{label}"))
    # Names must be unique: a second chip with the same rail labels gets its device id appended.
    counts: dict[str, int] = {}
    for s in sensors:
        counts[s.name] = counts.get(s.name, 0) + 1
    for s in sensors:
        if counts[s.name] > 1:
            s.name = f"{s.name}@{_device_id(s.hwmon) or s.hwmon.name}"
    if not sensors:
        chips = ", ".join(c for c in seen_chips if c) or "none"
        notes.append(f"hwmon: no INA2xx or INA3221 power monitor (chips present: {chips})")
    return sensors, notes
