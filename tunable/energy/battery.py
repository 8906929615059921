"""Batteries through /sys/class/power_supply: the state the governor's battery policy reads, and a slow
power sensor (the whole system's draw while it runs on battery).

Attributes (power_supply ABI): capacity %, status (Charging, Discharging, Full, Not charging, Unknown),
energy_now / energy_full µWh, charge_now / charge_full µAh, power_now µW, voltage_now µV, current_now µA.
Drivers report either the energy_* or the charge_* family; the sign of current_now and power_now varies by
driver, so `status` decides the direction and magnitudes are used. Values refresh every few seconds: fit for
a battery-level policy and long windows, not for attributing a single inference.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ..units import MICRO, SECONDS_PER_HOUR, format_power
from .sensor import MEASURED, POWER, Probe, Sensor
from .sysfs import SensorError, SensorGone, host_path, read_optional_int, read_optional_text, read_text

POWER_SUPPLY = "/sys/class/power_supply"
_MICROWATT_HOURS = MICRO * SECONDS_PER_HOUR      # µWh -> J
_MICROAMP_HOUR_MICROVOLTS = MICRO * MICRO * SECONDS_PER_HOUR  # µAh x µV -> J


@dataclass(frozen=True)
class BatteryState:
    name: str
    status: str                      # as the driver says it: Charging, Discharging, Full, Not charging, ...
    capacity_percent: float | None
    energy_joules: float | None      # energy_now, or charge_now x voltage_now
    energy_full_joules: float | None
    power_watts: float | None        # power_now, or |voltage_now x current_now|
    voltage_volts: float | None
    current_amps: float | None

    @property
    def discharging(self) -> bool:
        return self.status == "Discharging"

    @property
    def hours_left(self) -> float | None:
        """Time to empty at the present draw, when discharging and both numbers are known."""
        if not self.discharging or not self.energy_joules or not self.power_watts:
            return None
        return self.energy_joules / self.power_watts / SECONDS_PER_HOUR


class Battery:
    """One battery (a power_supply of type Battery). Every read goes to sysfs; nothing is cached."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.name = self.path.name

    def _opt(self, attr: str) -> int | None:
        return read_optional_int(self.path / attr)

    def status(self) -> str:
        return read_optional_text(self.path / "status") or "Unknown"

    def capacity_percent(self) -> float | None:
        cap = self._opt("capacity")
        if cap is not None:
            return float(cap)
        now, full = self._opt("energy_now"), self._opt("energy_full")
        if now is None or not full:
            now, full = self._opt("charge_now"), self._opt("charge_full")
        return 100.0 * now / full if now is not None and full else None

    def voltage_volts(self) -> float | None:
        uv = self._opt("voltage_now")
        return uv * MICRO if uv is not None else None

    def current_amps(self) -> float | None:
        ua = self._opt("current_now")
        return abs(ua) * MICRO if ua is not None else None

    def _energy(self, energy_attr: str, charge_attr: str) -> float | None:
        uwh = self._opt(energy_attr)
        if uwh is not None:
            return uwh * _MICROWATT_HOURS
        uah, uv = self._opt(charge_attr), self._opt("voltage_now")
        if uah is not None and uv is not None:
            return uah * uv * _MICROAMP_HOUR_MICROVOLTS  # at the present voltage, not the nominal one
        return None

    def energy_joules(self) -> float | None:
        """Energy left: energy_now, else charge_now x voltage_now."""
        return self._energy("energy_now", "charge_now")

    def energy_full_joules(self) -> float | None:
        return self._energy("energy_full", "charge_full")

    def power_watts(self) -> float | None:
        """Power flowing in or out (see status() for which): power_now, else |voltage_now x current_now|."""
        uw = self._opt("power_now")
        if uw is not None:
            return abs(uw) * MICRO
        v, a = self.voltage_volts(), self.current_amps()
        return v * a if v is not None and a is not None else None

    def read(self) -> BatteryState:
        return BatteryState(self.name, self.status(), self.capacity_percent(), self.energy_joules(),
                            self.energy_full_joules(), self.power_watts(), self.voltage_volts(),
                            self.current_amps())

    def __repr__(self) -> str:
        return f"<Battery {self.name} at {self.path}>"


def list_batteries(root: str | os.PathLike | None = None) -> list[Battery]:
    """The system's batteries (power supplies of type Battery; peripheral batteries of mice and headsets,
    scope Device, are left out)."""
    base = host_path(POWER_SUPPLY, root)
    if not base.is_dir():
        return []
    out = []
    for p in sorted(base.iterdir(), key=lambda p: p.name):
        try:
            if read_text(p / "type") != "Battery" or read_optional_text(p / "scope") == "Device":
                continue
        except SensorError:
            continue
        out.append(Battery(p))
    return out


class BatterySensor(Sensor):
    """The system's draw from its battery; readable only while discharging (on a charger the battery's flow
    is not what the system consumes)."""
    kind = MEASURED
    quantity = POWER
    refresh_interval_s = 5.0  # drivers refresh every few seconds; none says exactly

    def __init__(self, battery: Battery):
        self.battery = battery
        self.name = f"battery:{battery.name}"
        self.scope = f"whole system while on battery {battery.name}"
        has_power = (battery.path / "power_now").exists()
        self.unit = "µW" if has_power else "µV x µA"
        self.source = str(battery.path / ("power_now" if has_power else "voltage_now x current_now"))
        self.resolution = MICRO if has_power else None

    def read_watts(self) -> float:
        if not self.battery.path.exists():
            raise SensorGone(f"{self.battery.path}: the battery is no longer present")
        status = self.battery.status()
        if status != "Discharging":
            raise SensorError(f"{self.name} is {status}: on a charger its power is not the system's draw; "
                              "unplug the charger to measure with it")
        w = self.battery.power_watts()
        if w is None:
            raise SensorError(f"{self.battery.path}: neither power_now nor voltage_now and current_now")
        return w

    def probe(self) -> Probe:
        p = super().probe()
        if not p.readable:
            return p
        st = self.battery.read()
        cap = f", {st.capacity_percent:.0f} %" if st.capacity_percent is not None else ""
        return Probe(True, f"slow: refreshes every few seconds{cap}", format_power(self.read_watts()))


def discover(root: str | os.PathLike | None = None) -> tuple[list[Sensor], list[str]]:
    bats = list_batteries(root)
    if not bats:
        where = host_path(POWER_SUPPLY, root)
        return [], [f"battery: no battery under {POWER_SUPPLY}" + ("" if where.is_dir() else " (absent)")]
    return [BatterySensor(b) for b in bats], []
