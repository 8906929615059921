"""Fakes for exercising the energy code without hardware: sysfs trees, recorded tool output, synthetic power.

    tree = FakeSysfs(tmp_path)
    tree.rapl_zone("0", "package-0", energy_uj=1_000_000)
    tree.ina3221(0, {"VDD_IN": (5000, 900), "VDD_CPU_GPU_CV": (5000, 120)})
    discover(root=tmp_path)   # or TUNABLE_SYSFS_ROOT=tmp_path tunable sensors

Trees follow the kernel's layout and units (µJ, µW, mV, mA, µWh, µAh, µV, µA). The values written are whatever
a test chooses; nothing here claims to be a measurement.
"""
from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Callable, Iterable, Iterator, Mapping

from . import sysfs
from .sensor import MEASURED, POWER, CommandRunner, Sensor
from .sysfs import SensorError, SensorUnavailable


class FakeSysfs:
    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)

    def path(self, absolute: str) -> Path:
        return self.root / absolute.lstrip("/")

    def write(self, absolute: str, value) -> Path:
        p = self.path(absolute)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(f"{value}\n")
        return p

    def remove(self, absolute: str) -> None:
        import shutil
        p = self.path(absolute)
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
        else:
            p.unlink()

    def device_model(self, model: str) -> None:
        self.write("/proc/device-tree/model", model + "\x00")

    def rapl_zone(self, index: str, name: str, energy_uj: int, max_energy_range_uj: int | None = 262143328850,
                  control: str = "intel-rapl") -> Path:
        """index '0' for a package, '0:1' for a subzone."""
        d = f"/sys/class/powercap/{control}:{index}"
        self.write(f"{d}/name", name)
        self.write(f"{d}/energy_uj", energy_uj)
        if max_energy_range_uj is not None:
            self.write(f"{d}/max_energy_range_uj", max_energy_range_uj)
        self.path(f"/sys/class/powercap/{control}").mkdir(parents=True, exist_ok=True)
        return self.path(d)

    def _hwmon(self, n: int, chip: str, device: str | None) -> str:
        d = f"/sys/class/hwmon/hwmon{n}"
        self.write(f"{d}/name", chip)
        if device:
            target = self.path(f"/sys/devices/platform/i2c/{device}")
            target.mkdir(parents=True, exist_ok=True)
            link = self.path(f"{d}/device")
            if not link.exists():
                link.symlink_to(target)
        return d

    def ina2xx(self, n: int, chip: str = "ina219", *, power_uw: int | None = None, bus_mv: int | None = None,
               curr_ma: int | None = None, update_interval_ms: int | None = None,
               device: str | None = "1-0040") -> Path:
        d = self._hwmon(n, chip, device)
        for attr, v in (("power1_input", power_uw), ("in1_input", bus_mv), ("curr1_input", curr_ma),
                        ("update_interval", update_interval_ms)):
            if v is not None:
                self.write(f"{d}/{attr}", v)
        self.write(f"{d}/in0_input", 1)  # shunt voltage, mV: present on real chips, unused
        return self.path(d)

    def ina3221(self, n: int, rails: Mapping[str, tuple[int, int]], *, device: str | None = "1-0040",
                disabled: Iterable[int] = (), update_interval_ms: int | None = None) -> Path:
        """rails: label -> (bus mV, mA), on channels 1, 2, 3 in order."""
        d = self._hwmon(n, "ina3221", device)
        off = set(disabled)
        for ch, (label, (mv, ma)) in enumerate(rails.items(), start=1):
            self.write(f"{d}/in{ch}_label", label)
            self.write(f"{d}/in{ch}_input", mv)
            self.write(f"{d}/curr{ch}_input", ma)
            self.write(f"{d}/in{ch}_enable", 0 if ch in off else 1)
            self.write(f"{d}/shunt{ch}_resistor", 5000)
        if update_interval_ms is not None:
            self.write(f"{d}/update_interval", update_interval_ms)
        return self.path(d)

    def battery(self, name: str = "BAT0", *, status: str = "Discharging", capacity: int | None = 80,
                **attrs: int) -> Path:
        """attrs: energy_now, energy_full (µWh), charge_now, charge_full (µAh), power_now (µW),
        voltage_now (µV), current_now (µA)."""
        d = f"/sys/class/power_supply/{name}"
        self.write(f"{d}/type", "Battery")
        self.write(f"{d}/status", status)
        if capacity is not None:
            self.write(f"{d}/capacity", capacity)
        for k, v in attrs.items():
            self.write(f"{d}/{k}", v)
        return self.path(d)

    def mains(self, name: str = "AC", online: int = 1) -> Path:
        d = f"/sys/class/power_supply/{name}"
        self.write(f"{d}/type", "Mains")
        self.write(f"{d}/online", online)
        return self.path(d)


def deny_reads(monkeypatch, *paths: str | os.PathLike) -> None:
    """Makes reads of these files fail with EACCES, as for a non-root user (chmod does not stop root)."""
    denied = {os.path.abspath(p) for p in paths}
    real = sysfs._read_bytes

    def fake(path):
        if os.path.abspath(path) in denied:
            raise PermissionError(13, "Permission denied", str(path))
        return real(path)

    monkeypatch.setattr(sysfs, "_read_bytes", fake)


class FakeStream:
    """Recorded lines of a streaming tool; after the last line it either waits for close() (the tool keeps
    running) or ends (the tool exited)."""

    def __init__(self, lines: Iterable[str], keep_running: bool = True):
        self.lines = list(lines)
        self.keep_running = keep_running
        self.closed = threading.Event()

    def __iter__(self) -> Iterator[str]:
        for line in self.lines:
            if self.closed.is_set():
                return
            yield line if line.endswith("\n") else line + "\n"
        if self.keep_running:
            self.closed.wait()

    def close(self) -> None:
        self.closed.set()


class FakeRunner(CommandRunner):
    """Answers commands from recorded output. outputs: command name -> text, an exception to raise, or a
    callable returning either; streams: command name -> FakeStream (or a list of lines)."""

    def __init__(self, outputs: Mapping[str, object] | None = None,
                 streams: Mapping[str, object] | None = None):
        self.outputs = dict(outputs or {})
        self.streams = dict(streams or {})
        self.calls: list[list[str]] = []

    def which(self, name: str) -> str | None:
        return f"/usr/bin/{name}" if name in self.outputs or name in self.streams else None

    def run(self, argv: list[str], timeout_s: float = 5.0) -> str:
        self.calls.append(list(argv))
        if argv[0] not in self.outputs:
            raise SensorUnavailable(f"{argv[0]}: command not found")
        out = self.outputs[argv[0]]
        if callable(out) and not isinstance(out, BaseException):
            out = out()
        if isinstance(out, BaseException):
            raise out
        return str(out)

    def stream(self, argv: list[str]):
        self.calls.append(list(argv))
        if argv[0] not in self.streams:
            raise SensorUnavailable(f"{argv[0]}: command not found")
        s = self.streams[argv[0]]
        return s if isinstance(s, FakeStream) else FakeStream(s)


class SyntheticPowerSensor(Sensor):
    """Power as a function of time (for testing integration); optionally vanishes after a given time."""
    kind = MEASURED
    quantity = POWER
    unit = "W"

    def __init__(self, watts: Callable[[float], float], clock: Callable[[], float],
                 refresh_interval_s: float = 0.001, name: str = "synthetic", gone_after: float | None = None):
        self.watts = watts
        self.clock = clock
        self.refresh_interval_s = refresh_interval_s
        self.name = name
        self.scope = "a synthetic trace"
        self.source = "a function of time"
        self.gone_after = gone_after

    def read_watts(self) -> float:
        t = self.clock()
        if self.gone_after is not None and t >= self.gone_after:
            raise sysfs.SensorGone(f"{self.name}: unplugged at t={self.gone_after:g}")
        return float(self.watts(t))


__all__ = ["FakeSysfs", "FakeRunner", "FakeStream", "SyntheticPowerSensor", "deny_reads", "SensorError"]
