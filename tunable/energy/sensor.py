"""The one sensor interface every energy source implements, and the runner for command-line tools.

A sensor is either a cumulative energy counter (quantity ENERGY: RAPL, the modeled sensor) read with
`read_joules()`, or an instantaneous power source (quantity POWER: INA2xx/INA3221 rails, batteries, the Pi 5
PMIC, tegrastats) read with `read_watts()`. A `Sampler` turns either into cumulative joules over time, so
code that wants joules never cares which kind it has.

`kind` says how far to trust the number: MEASURED (a sensor on the path being reported), ESTIMATED (a
sensor plus a board-specific correction, e.g. the Pi 5 PMIC fit) or MODELED (counters x a profile).
"""
from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from typing import Iterator, Protocol

from ..units import format_energy, format_power
from .sysfs import SensorError, SensorGone, SensorUnavailable

MEASURED, ESTIMATED, MODELED = "measured", "estimated", "modeled"
ENERGY, POWER = "energy", "power"


@dataclass(frozen=True)
class Probe:
    """Whether a sensor can be read now, why not, and what it read."""
    readable: bool
    reason: str = ""      # why it is not readable, or a caveat when it is
    reading: str = ""     # e.g. '3.21 W' or '1234.5 J (counter)'


class Sensor:
    """Base class. Subclasses set the attributes and implement read_joules or read_watts."""

    name: str = "sensor"
    kind: str = MEASURED
    quantity: str = POWER
    scope: str = ""                 # what the number covers, in words ('CPU package 0', 'rail VDD_IN')
    source: str = ""                # where it is read (a sysfs path or a command)
    unit: str = ""                  # the source's native unit ('µJ', 'µW', 'mV x mA', 'mW')
    resolution: float | None = None  # smallest step, in J for energy counters, in W for power sources
    refresh_interval_s: float = 0.1  # how often the source's value changes
    wrap_joules: float | None = None  # energy counters: the value at which the counter wraps to 0

    @property
    def min_window_s(self) -> float:
        """The shortest window inferences may be attributed over: several refresh periods, at least 0.2 s."""
        return max(0.2, 4.0 * self.refresh_interval_s)

    @property
    def sample_interval_s(self) -> float:
        """How often a Sampler reads it: at the refresh rate (sampling faster only re-reads the same value),
        never faster than 10 ms (each sysfs read of an I2C sensor is a bus transaction), and for counters
        well inside one wrap period."""
        if self.quantity == ENERGY:
            return 0.25
        return max(0.01, self.refresh_interval_s)

    def read_joules(self) -> float:
        """Energy counters: the counter's current value in joules (it may wrap; see wrap_joules)."""
        raise SensorError(f"{self.name} is a power sensor: integrate read_watts() with a Sampler for joules")

    def read_watts(self) -> float:
        """Power sources: the instantaneous (or the source's short-average) power in watts."""
        raise SensorError(f"{self.name} is an energy counter with no instantaneous power: take the mean "
                          "power of a window with a Sampler")

    def probe(self) -> Probe:
        """Tries one read."""
        try:
            if self.quantity == ENERGY:
                return Probe(True, "", f"{format_energy(self.read_joules())} (counter)")
            return Probe(True, "", format_power(self.read_watts()))
        except SensorError as e:
            return Probe(False, str(e))

    def label(self) -> str:
        """'measured by rapl:package-0 (CPU package 0)': what every printed number is tagged with."""
        verb = {MEASURED: "measured by", ESTIMATED: "estimated from", MODELED: "modeled by"}[self.kind]
        return f"{verb} {self.name} ({self.scope})" if self.scope else f"{verb} {self.name}"

    def close(self) -> None:
        """Releases what the sensor holds (a child process); reading again reopens it."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} {self.kind} {self.quantity}>"


class LineStream(Protocol):
    def __iter__(self) -> Iterator[str]: ...
    def close(self) -> None: ...


class CommandRunner:
    """Runs the tools some boards expose power through (vcgencmd, tegrastats). Replaceable, so tests feed
    recorded output instead of running anything."""

    def which(self, name: str) -> str | None:
        return shutil.which(name)

    def run(self, argv: list[str], timeout_s: float = 5.0) -> str:
        try:
            p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s)
        except FileNotFoundError:
            raise SensorUnavailable(f"{argv[0]}: command not found") from None
        except subprocess.TimeoutExpired:
            raise SensorError(f"{' '.join(argv)}: no answer within {timeout_s:g} s") from None
        except OSError as e:
            raise SensorError(f"{' '.join(argv)}: {e.strerror or e}") from None
        if p.returncode != 0:
            raise SensorError(f"{' '.join(argv)} exited with {p.returncode}: "
                              f"{(p.stderr or p.stdout).strip()[:300]}")
        return p.stdout

    def stream(self, argv: list[str]) -> LineStream:
        """A long-running tool's output, line by line; close() stops the tool."""
        try:
            return _ProcessLines(subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                                  text=True, bufsize=1))
        except FileNotFoundError:
            raise SensorUnavailable(f"{argv[0]}: command not found") from None
        except OSError as e:
            raise SensorError(f"{' '.join(argv)}: {e.strerror or e}") from None


class _ProcessLines:
    def __init__(self, proc: subprocess.Popen):
        self.proc = proc

    def __iter__(self) -> Iterator[str]:
        assert self.proc.stdout is not None
        yield from self.proc.stdout

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=2)
            except subprocess.TimeoutExpired:
                self.proc.kill()


__all__ = ["Sensor", "Probe", "CommandRunner", "LineStream", "MEASURED", "ESTIMATED", "MODELED", "ENERGY",
           "POWER", "SensorError", "SensorGone", "SensorUnavailable"]
