"""RAPL energy counters through the Linux powercap interface: every zone, wrap-safe.

/sys/class/powercap/intel-rapl:N[:M]/ holds `name` (package-0, core, uncore, dram, psys), `energy_uj`
(a cumulative counter in µJ that wraps at `max_energy_range_uj`). AMD Zen CPUs appear under the same
intel-rapl names; `intel-rapl-mmio:N` zones are the MMIO twin of a package. The counter updates about every
millisecond; its true step is the CPU's energy unit (15-61 µJ on most parts), coarser than the µJ it is
written in. Wraps are undone by Sampler (a negative delta plus the range), which reads counters every
0.25 s, far inside one wrap period (minutes to hours).
"""
from __future__ import annotations

import os
from pathlib import Path

from ..units import MICRO
from .sensor import ENERGY, MEASURED, Sensor
from .sysfs import SensorError, host_path, read_int, read_optional_int, read_optional_text

POWERCAP = "/sys/class/powercap"

PERMISSION_HELP = (
    "RAPL energy counters are readable by root only since the PLATYPUS fix (CVE-2020-8694, kernels patched "
    "from November 2020), because fine-grained energy readings leak what other processes compute. To read "
    "them: run as root (sudo tunable ...); or, until the next boot, "
    "`sudo chmod o+r /sys/class/powercap/intel-rapl:*/energy_uj /sys/class/powercap/intel-rapl:*:*/energy_uj`; "
    "or permanently with a udev rule, e.g. /etc/udev/rules.d/99-rapl.rules containing "
    "`SUBSYSTEM==\"powercap\", ACTION==\"add\", RUN+=\"/bin/chmod o+r /sys%p/energy_uj\"` followed by "
    "`sudo udevadm trigger --subsystem-match=powercap`. Either re-opens the side channel to local users: do "
    "it only on machines you control.")

_SCOPES = {"core": "CPU cores", "uncore": "uncore / integrated GPU", "dram": "DRAM", "psys": "platform (psys)"}


class RaplSensor(Sensor):
    """One powercap zone's energy counter."""
    kind = MEASURED
    quantity = ENERGY
    unit = "µJ"
    resolution = 1e-6  # the sysfs unit; the hardware step is the CPU's RAPL energy unit, typically 15-61 µJ
    refresh_interval_s = 0.001

    def __init__(self, zone_dir: Path, name: str, scope: str):
        self.zone_dir = Path(zone_dir)
        self.name = name
        self.scope = scope
        self.source = str(self.zone_dir / "energy_uj")
        try:
            rng = read_optional_int(self.zone_dir / "max_energy_range_uj")
        except SensorError:
            rng = None  # unknown range: Sampler then refuses to guess across a backwards step
        self.wrap_joules = rng * MICRO if rng else None

    def read_joules(self) -> float:
        return read_int(self.zone_dir / "energy_uj", permission_help=PERMISSION_HELP) * MICRO


def _zone_name(zone_dir: Path) -> str:
    return read_optional_text(zone_dir / "name") or zone_dir.name


def discover(root: str | os.PathLike | None = None) -> tuple[list[RaplSensor], list[str]]:
    """All powercap zones with an energy counter, and notes on what was not found."""
    base = host_path(POWERCAP, root)
    if not base.is_dir():
        return [], [f"RAPL: {POWERCAP} does not exist (no powercap driver: RAPL is absent inside most VMs and "
                    "on ARM boards)"]
    sensors: list[RaplSensor] = []
    notes: list[str] = []
    for zone in sorted(base.iterdir(), key=lambda p: p.name):
        if ":" not in zone.name or not (zone / "energy_uj").exists():
            continue  # a control type directory (intel-rapl) or a zone without a counter (dtpm)
        control, _, index = zone.name.partition(":")
        prefix = control.removeprefix("intel-")
        parts = index.split(":")
        parent = base / f"{control}:{parts[0]}"
        try:
            zname = _zone_name(zone)
            pname = _zone_name(parent) if parent.is_dir() else f"zone-{parts[0]}"
        except SensorError as e:
            notes.append(f"RAPL: {zone.name}: {e}")
            continue
        if len(parts) > 1:  # a subzone: name it after its package, 'rapl:package-0:core'
            name, scope = f"{prefix}:{pname}:{zname}", f"{_SCOPES.get(zname, zname)} of {pname}"
        else:
            name = f"{prefix}:{zname}"
            scope = _SCOPES.get(zname, f"CPU {zname.replace('-', ' ')}" if zname.startswith("package")
                                else zname)
        if any(s.name == name for s in sensors):
            name = f"{name}@{zone.name}"
        sensors.append(RaplSensor(zone, name, scope))
    if not sensors and not notes:
        notes.append(f"RAPL: {base} has no zone with an energy_uj counter")
    return sensors, notes
