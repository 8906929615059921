"""Sampler: turns any sensor into cumulative joules, on a background thread.

Power sources are read at their refresh interval and integrated with the trapezoid rule; energy counters
are read often enough never to miss a wrap (a negative step plus the counter's range). `mark()` and
`since(mark)` take a fresh sample at each end, so a window's integral starts and stops where the caller
says, not at the nearest tick. A sensor that disappears (SensorGone) or fails several reads in a row stops
the sampler; nothing raises into the caller's thread: windows that it cut short say so (`complete=False`)
and carry the reason.
"""
from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Iterator

from .sensor import ENERGY, Sensor
from .sysfs import SensorError, SensorGone


@dataclass(frozen=True)
class Mark:
    t: float
    joules: float
    samples: int


@dataclass(frozen=True)
class Window:
    """Energy between two marks."""
    seconds: float       # the time the integral covers (shorter than asked when the sensor died)
    joules: float
    samples: int         # sensor reads inside the window
    complete: bool
    error: str | None = None

    @property
    def mean_watts(self) -> float:
        return self.joules / self.seconds if self.seconds > 0 else float("nan")


class _WindowBox:
    """Filled when a `with sampler.window() as w:` block ends."""
    result: Window | None = None

    def __getattr__(self, name):
        if self.result is None:
            raise AttributeError(f"window still open: '{name}' is known when the with-block ends")
        return getattr(self.result, name)


class Sampler:
    def __init__(self, sensor: Sensor, interval_s: float | None = None,
                 clock: Callable[[], float] = time.monotonic, max_consecutive_errors: int = 3):
        self.sensor = sensor
        self.interval_s = interval_s if interval_s is not None else sensor.sample_interval_s
        self.clock = clock
        self.max_consecutive_errors = max_consecutive_errors
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._is_counter = sensor.quantity == ENERGY
        self._last_t: float | None = None
        self._last_value: float | None = None  # watts, or the raw counter in joules
        self._joules = 0.0
        self._samples = 0
        self._consecutive_errors = 0
        self.wraps = 0
        self.alive = True
        self.error: str | None = None
        self.last_transient_error: str | None = None

    # -- sampling --
    def sample(self) -> bool:
        """Reads the sensor once and integrates; False when the read failed or the sampler has stopped."""
        with self._lock:
            if not self.alive:
                return False
            t0 = self.clock()
            try:
                value = self.sensor.read_joules() if self._is_counter else self.sensor.read_watts()
            except SensorGone as e:
                self._die(f"{self.sensor.name} disappeared: {e}")
                return False
            except SensorError as e:
                self._consecutive_errors += 1
                self.last_transient_error = str(e)
                if self._consecutive_errors >= self.max_consecutive_errors:
                    self._die(f"{self.sensor.name}: {self._consecutive_errors} reads failed in a row: {e}")
                return False
            t = 0.5 * (t0 + self.clock())  # a slow read (a spawned tool) is stamped at its middle
            self._consecutive_errors = 0
            if self._last_t is not None:
                if self._is_counter:
                    delta = value - self._last_value
                    if delta < 0:
                        wrap = self.sensor.wrap_joules
                        if not wrap:
                            self._die(f"{self.sensor.name}: counter went backwards and its wrap range is "
                                      "unknown")
                            return False
                        delta += wrap
                        self.wraps += 1
                    self._joules += delta
                else:
                    self._joules += 0.5 * (self._last_value + value) * (t - self._last_t)
            self._last_t, self._last_value = t, value
            self._samples += 1
            return True

    def _die(self, reason: str) -> None:
        self.alive = False
        self.error = reason
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.sample()
            if not self.alive:
                break

    # -- lifecycle --
    def start(self) -> "Sampler":
        if self._thread is not None:
            return self
        self.sample()  # the first point of the integral
        self._stop.clear()
        if self.alive:
            self._thread = threading.Thread(target=self._run, daemon=True, name=f"tunable-sampler-{self.sensor.name}")
            self._thread.start()
        return self

    def stop(self) -> None:
        """Takes a last sample and joins the thread."""
        if self.alive:
            self.sample()
        self._stop.set()
        if self._thread is not None:
            self._thread.join(max(1.0, 3 * self.interval_s))
            self._thread = None

    def __enter__(self) -> "Sampler":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- reading --
    @property
    def joules(self) -> float:
        """Joules integrated since start (up to the last good sample)."""
        with self._lock:
            return self._joules

    @property
    def samples(self) -> int:
        return self._samples

    @property
    def last_sample_t(self) -> float | None:
        return self._last_t

    def mark(self) -> Mark:
        """A fresh sample now, and where the integral stands."""
        with self._lock:
            self.sample()
            return Mark(self._last_t if self._last_t is not None else self.clock(), self._joules, self._samples)

    def since(self, mark: Mark) -> Window:
        """Energy from `mark` to now (a fresh sample ends the window)."""
        with self._lock:
            self.sample()
            end = self._last_t if self._last_t is not None else mark.t
            complete = self.alive and self._samples > mark.samples
            return Window(max(0.0, end - mark.t), self._joules - mark.joules, self._samples - mark.samples,
                          complete, None if complete else (self.error or "no sample in the window"))

    @contextmanager
    def window(self) -> Iterator[_WindowBox]:
        box = _WindowBox()
        m = self.mark()
        try:
            yield box
        finally:
            box.result = self.since(m)
