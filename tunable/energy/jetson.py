"""NVIDIA Jetson: rail power from `tegrastats`.

tegrastats streams one line per interval; its power fields are `RAIL current/average`, in mW with a unit on
JetPack 5/6 (`VDD_IN 4102mW/4102mW VDD_CPU_GPU_CV 480mW/480mW VDD_SOC 1200mW/1200mW`) and without one on
JetPack 4 (`POM_5V_IN 2440/2440 POM_5V_GPU 0/0 POM_5V_CPU 366/366`). VDD_IN / POM_5V_IN is the module's
input; the other rails are parts of it and must not be added to it. One tegrastats process feeds every rail
sensor; it runs until the sensors are closed. Where the INA3221 is visible in hwmon, the hwmon backend reads
the same rails faster and without a child process.
"""
from __future__ import annotations

import atexit
import re
import threading
import time

from ..units import MILLI
from .sensor import MEASURED, POWER, CommandRunner, LineStream, Sensor
from .sysfs import SensorError, SensorGone

INTERVAL_MS = 200
_RAIL = re.compile(r"(?<![\w@])([A-Z][A-Z0-9_]*) (\d+)(?:mW)?/(\d+)(?:mW)?(?=\s|$)")
TOTAL_RAILS = ("VDD_IN", "POM_5V_IN")


def parse_tegrastats_line(line: str) -> dict[str, float]:
    """Rail -> instantaneous watts (the first of tegrastats' 'current/average' pair)."""
    return {m.group(1): int(m.group(2)) * MILLI for m in _RAIL.finditer(line)}


class TegrastatsFeed:
    """One running tegrastats and the latest rails it printed, updated by a reader thread."""

    def __init__(self, runner: CommandRunner | None = None, interval_ms: int = INTERVAL_MS):
        self.runner = runner or CommandRunner()
        self.interval_ms = interval_ms
        self.argv = ["tegrastats", "--interval", str(interval_ms)]
        self._lock = threading.Lock()
        self._new_line = threading.Condition(self._lock)
        self._stream: LineStream | None = None
        self._thread: threading.Thread | None = None
        self.latest: dict[str, float] = {}
        self.lines = 0
        self.ended: str | None = None  # why the feed stopped, once it has
        self._atexit = False

    def start(self) -> None:
        """Starts tegrastats unless it already runs. A tool that exited by itself stays ended (its sensors are
        gone) until close() is called."""
        with self._lock:
            if self._thread is not None:
                return
            self.latest, self.lines, self.ended = {}, 0, None
            self._stream = self.runner.stream(self.argv)
            self._thread = threading.Thread(target=self._reader, args=(self._stream,), daemon=True,
                                            name="tunable-tegrastats")
            self._thread.start()
            if not self._atexit:
                atexit.register(self.close)
                self._atexit = True

    def _reader(self, stream: LineStream) -> None:
        try:
            for line in stream:
                rails = parse_tegrastats_line(line)
                if rails:
                    with self._lock:
                        self.latest, self.lines = rails, self.lines + 1
                        self._new_line.notify_all()
            reason = "tegrastats exited"
        except (OSError, ValueError) as e:
            reason = f"tegrastats output unreadable: {e}"
        with self._lock:
            self.ended = reason
            self._new_line.notify_all()

    def wait_first(self, timeout_s: float | None = None) -> dict[str, float]:
        """Starts the tool if needed and returns the latest rails (waiting for the first line)."""
        self.start()
        limit = timeout_s if timeout_s is not None else 2.0 + 3 * self.interval_ms * MILLI
        deadline = time.monotonic() + limit
        with self._lock:
            while self.lines == 0 and self.ended is None:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise SensorError(f"{' '.join(self.argv)}: no power line within {limit:g} s")
                self._new_line.wait(left)
            if self.lines == 0:
                raise SensorGone(f"{' '.join(self.argv)}: {self.ended} before printing any power rail")
            if self.ended is not None:
                raise SensorGone(f"{' '.join(self.argv)}: {self.ended}")
            return dict(self.latest)

    def wait_lines(self, n: int, timeout_s: float = 5.0) -> bool:
        """Waits until n power lines have been read (or the tool ended); whether they were."""
        deadline = time.monotonic() + timeout_s
        with self._lock:
            while self.lines < n and self.ended is None and time.monotonic() < deadline:
                self._new_line.wait(deadline - time.monotonic())
            return self.lines >= n

    def join(self, timeout_s: float = 5.0) -> None:
        if self._thread is not None:
            self._thread.join(timeout_s)

    def close(self) -> None:
        stream = self._stream
        if stream is not None:
            stream.close()
        self.join(2.0)
        with self._lock:
            self._thread, self._stream = None, None


class TegrastatsSensor(Sensor):
    kind = MEASURED
    quantity = POWER
    unit = "mW"
    resolution = MILLI

    def __init__(self, feed: TegrastatsFeed, rail: str):
        self.feed = feed
        self.rail = rail
        self.name = f"tegrastats:{rail}"
        self.scope = f"rail {rail}" + (", module input (total)" if rail in TOTAL_RAILS else "")
        self.source = " ".join(feed.argv)
        self.refresh_interval_s = feed.interval_ms * MILLI

    def read_watts(self) -> float:
        rails = self.feed.wait_first()
        if self.rail not in rails:
            raise SensorGone(f"{self.source}: rail {self.rail} is no longer in its output")
        return rails[self.rail]

    def close(self) -> None:
        self.feed.close()


def discover(runner: CommandRunner | None = None) -> tuple[list[Sensor], list[str]]:
    runner = runner or CommandRunner()
    if not runner.which("tegrastats"):
        return [], ["Jetson: tegrastats is not on PATH (not a Jetson)"]
    feed = TegrastatsFeed(runner)
    try:
        rails = feed.wait_first()
    except SensorError as e:
        feed.close()
        return [], [f"Jetson: {e}"]
    if not rails:
        feed.close()
        return [], ["Jetson: tegrastats prints no power rails on this module"]
    order = sorted(rails, key=lambda r: (r not in TOTAL_RAILS, r))
    return [TegrastatsSensor(feed, r) for r in order], []
