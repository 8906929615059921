"""What the governor reads from and sets on the OS: battery, thermal zones, cpufreq limit, thread count.

Batteries are read by tunable.energy's power_supply backend. Every path goes through tunable.energy.sysfs's
root (TUNABLE_SYSFS_ROOT, or set_sysfs_root), so tests run against fake trees. System knobs are never required: when the OS does not allow a change, the setter says
why and the governor goes on with the model's own knobs.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Protocol

from tunable.energy.battery import POWER_SUPPLY, Battery, BatteryState, list_batteries
from tunable.energy.sysfs import SensorError, host_path, read_optional_int, read_optional_text
from tunable.errors import TunableError

THERMAL = "/sys/class/thermal"
CPUFREQ = "/sys/devices/system/cpu/cpufreq"


class BatterySource(Protocol):
    """What the governor needs of a battery: tunable.energy.Battery, or a stub in tests. read() returns a
    tunable.energy.BatteryState (name, status, capacity_percent, energy_joules, power_watts, ...)."""
    name: str

    def read(self) -> BatteryState: ...


def open_battery(name: str, root: str | os.PathLike | None = None) -> Battery:
    """The battery /sys/class/power_supply/<name> (under the sysfs root), or an error naming those there are."""
    for b in list_batteries(root):
        if b.name == name:
            return b
    found = [b.name for b in list_batteries(root)]
    raise TunableError(f"no battery '{name}' under {host_path(POWER_SUPPLY, root)} "
                       f"(batteries here: {', '.join(found) or 'none'})")


def read_thermal(root: str | os.PathLike | None = None) -> dict[str, float]:
    """Temperatures in °C by zone: each zone appears as 'thermal_zoneN' and under its type (e.g.
    'cpu-thermal', 'x86_pkg_temp'). Empty when the machine exposes no thermal zones."""
    base = host_path(THERMAL, root)
    temps: dict[str, float] = {}
    if not base.is_dir():
        return temps
    for d in sorted(base.glob("thermal_zone*")):
        try:
            milli = read_optional_int(d / "temp")
        except SensorError:
            continue  # a zone whose sensor errors (some return EINVAL when off) is not a reading
        if milli is None:
            continue
        c = milli / 1000.0
        temps[d.name] = c
        kind = read_optional_text(d / "type")
        if kind:
            temps[kind] = max(c, temps.get(kind, -273.0))
    return temps


class CpuFreqLimit:
    """The cpufreq maximum frequency of every policy, when writable. set() remembers the original values
    and restore() puts them back."""

    def __init__(self, root: str | os.PathLike | None = None):
        base = host_path(CPUFREQ, root)
        self.policies = sorted(base.glob("policy*")) if base.is_dir() else []
        self._saved: dict[Path, str] = {}

    def writable(self) -> tuple[bool, str]:
        if not self.policies:
            return False, "no cpufreq policies on this machine"
        for p in self.policies:
            f = p / "scaling_max_freq"
            if not f.exists():
                return False, f"{f} does not exist"
            if not os.access(f, os.W_OK):
                return False, f"{f} is not writable (needs root, or a udev rule granting write access)"
        return True, ""

    def _target_khz(self, policy: Path, spec: str) -> int:
        lo = read_optional_int(policy / "cpuinfo_min_freq")
        hi = read_optional_int(policy / "cpuinfo_max_freq")
        if lo is None or hi is None:
            raise TunableError(f"{policy}: cpuinfo_min_freq/cpuinfo_max_freq missing")
        khz = parse_frequency(spec, lo, hi)
        avail = read_optional_text(policy / "scaling_available_frequencies")
        if avail:  # round down to a frequency the driver offers, so the cap is never exceeded
            steps = sorted(int(x) for x in avail.split())
            below = [s for s in steps if s <= khz]
            khz = below[-1] if below else steps[0]
        return max(lo, min(hi, khz))

    def set(self, spec: str) -> str:
        """Caps every policy at `spec` ('max', 'min', '60%', '1.2GHz', '1200MHz', '1200000kHz').
        Returns what was done, or why nothing was (never raises for a read-only cpufreq)."""
        ok, why = self.writable()
        if not ok:
            return f"cpufreq limit {spec!r} not applied: {why}"
        done = []
        for p in self.policies:
            f = p / "scaling_max_freq"
            khz = self._target_khz(p, spec)
            if f not in self._saved:
                self._saved[f] = read_optional_text(f) or ""
            try:
                f.write_text(f"{khz}\n")
            except OSError as e:
                return f"cpufreq limit {spec!r} not applied to {f}: {e.strerror or e}"
            done.append(f"{p.name}={khz / 1000:.0f} MHz")
        return "cpufreq max " + ", ".join(done)

    def restore(self) -> None:
        for f, value in self._saved.items():
            if value:
                try:
                    f.write_text(value + "\n")
                except OSError:
                    pass  # best effort on exit; the kernel keeps the cap until changed again
        self._saved.clear()


_FREQ = re.compile(r"\s*(\d+(?:\.\d*)?)\s*(%|GHz|MHz|kHz)?\s*$", re.IGNORECASE)


def parse_frequency(spec: str | int, lo_khz: int | None = None, hi_khz: int | None = None) -> int:
    """A cpufreq cap in kHz from 'max', 'min', '60%' (of max), '1.2GHz', '1200MHz', '1200000kHz' or an
    integer (kHz, as sysfs writes it). 'max'/'min'/'%' need the policy's range."""
    if isinstance(spec, int) and not isinstance(spec, bool):
        if spec <= 0:
            raise TunableError(f"cpufreq_max {spec}: must be positive (kHz)")
        return spec
    s = str(spec).strip().lower()
    if s in ("max", "min"):
        if lo_khz is None or hi_khz is None:
            return 0
        return hi_khz if s == "max" else lo_khz
    m = _FREQ.fullmatch(s)
    if not m:
        raise TunableError(f"cpufreq_max {spec!r}: expected max, min, a percentage (60%) or a frequency "
                           "(1.2GHz, 1200MHz)")
    v, unit = float(m.group(1)), (m.group(2) or "khz").lower()
    if unit == "%":
        if not 0 < v <= 100:
            raise TunableError(f"cpufreq_max {spec!r}: a percentage must lie in (0, 100]")
        return int(v / 100.0 * hi_khz) if hi_khz is not None else 0
    khz = int(v * {"ghz": 1e6, "mhz": 1e3, "khz": 1.0}[unit])
    if khz <= 0:
        raise TunableError(f"cpufreq_max {spec!r}: must be positive")
    return khz


class ThreadLimit:
    """Thread count as the OS sees it: the process may run on its first n allowed CPUs (sched affinity).
    The runtime is single-threaded today; fewer CPUs lets the others idle and, with a session that gains a
    thread-count setting, the caller passes the same n to it."""

    def __init__(self):
        self._original = set(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None

    def set(self, n: int) -> str:
        if self._original is None:
            return f"threads={n} not applied: this OS has no CPU affinity"
        cpus = sorted(self._original)[:max(1, n)]
        try:
            os.sched_setaffinity(0, cpus)
        except OSError as e:
            return f"threads={n} not applied: {e.strerror or e}"
        return f"threads={len(cpus)} (CPUs {','.join(map(str, cpus))})"

    def restore(self) -> None:
        if self._original is not None:
            try:
                os.sched_setaffinity(0, self._original)
            except OSError:
                pass
