"""Measured energy per inference: idle power first, then inferences batched into windows the sensor can
resolve.

A sensor's refresh or averaging time bounds how short a window can be attributed, so inferences run in
windows several times longer than it (the batching is reported, never hidden). Gross energy is what the
sensor saw over the windows divided by the inferences; dynamic energy subtracts the idle power measured just
before, times each window's duration.
"""
from __future__ import annotations

import math
import statistics
import time
from dataclasses import dataclass, field
from typing import Callable

from ..units import format_time
from .sampler import Sampler, Window
from .sensor import Sensor


@dataclass(frozen=True)
class WindowPlan:
    per_window: int
    windows: int
    note: str

    @property
    def inferences(self) -> int:
        return self.per_window * self.windows


def default_window_s(sensor: Sensor) -> float:
    return max(1.0, sensor.min_window_s)


def plan_windows(n: int, latency_s: float, window_s: float, sensor: Sensor) -> WindowPlan:
    """How many inferences per window (so each window lasts about window_s) and how many windows (so at
    least n inferences run)."""
    if n < 1:
        raise ValueError("need at least one inference")
    per_window = max(1, math.ceil(window_s / max(latency_s, 1e-9)))
    why = (f"{sensor.name} refreshes every {format_time(sensor.refresh_interval_s)}, so energy is attributed "
           f"over windows of about {format_time(window_s)}")
    if n <= per_window:
        note = (f"{why}: the {n} inference(s) asked for would last {format_time(n * latency_s)}, so "
                f"{per_window} were run in one window" if n < per_window else f"{why}: one window of {n}")
        return WindowPlan(per_window, 1, note)
    windows = n // per_window
    per_window = math.ceil(n / windows)
    return WindowPlan(per_window, windows, f"{why}: {windows} windows of {per_window} inferences")


@dataclass(frozen=True)
class MeasuredEnergy:
    sensor: str
    label: str                       # 'measured by rapl:package-0 (CPU package 0)'
    kind: str                        # measured or estimated
    idle_watts: float | None
    idle_s: float
    plan: WindowPlan
    windows: list[Window] = field(default_factory=list)
    inferences: int = 0              # inferences inside complete windows
    gross_joules: float = float("nan")    # per inference
    dynamic_joules: float = float("nan")  # per inference, idle power x time subtracted
    mean_watts: float = float("nan")
    spread_joules: float = 0.0       # standard deviation of the per-window gross per inference
    complete: bool = True
    error: str | None = None


def measure_inferences(run_one: Callable[[], object], sensor: Sensor, n: int, latency_s: float, *,
                       window_s: float | None = None, idle_s: float | None = None,
                       sampler: Sampler | None = None, sleep: Callable[[float], None] = time.sleep
                       ) -> MeasuredEnergy:
    """Measures idle power for idle_s, then runs at least n inferences in windows of about window_s."""
    window_s = window_s if window_s is not None else default_window_s(sensor)
    idle_s = idle_s if idle_s is not None else default_window_s(sensor)
    plan = plan_windows(n, latency_s, window_s, sensor)
    own = sampler is None
    sampler = sampler or Sampler(sensor)
    if own:
        sampler.start()
    try:
        with sampler.window() as idle:
            sleep(idle_s)
        if not idle.complete:
            return MeasuredEnergy(sensor.name, sensor.label(), sensor.kind, None, idle_s, plan,
                                  complete=False, error=idle.error)
        idle_w = idle.mean_watts
        wins: list[Window] = []
        error = None
        for _ in range(plan.windows):
            m = sampler.mark()
            for _ in range(plan.per_window):
                run_one()
            w = sampler.since(m)
            if not w.complete:
                error = w.error
                break
            wins.append(w)
    finally:
        if own:
            sampler.stop()
    count = plan.per_window * len(wins)
    if not wins:
        return MeasuredEnergy(sensor.name, sensor.label(), sensor.kind, idle_w, idle_s, plan, complete=False,
                              error=error or "no complete window")
    joules = sum(w.joules for w in wins)
    seconds = sum(w.seconds for w in wins)
    per_window = [w.joules / plan.per_window for w in wins]
    return MeasuredEnergy(
        sensor.name, sensor.label(), sensor.kind, idle_w, idle_s, plan, wins, count,
        gross_joules=joules / count,
        dynamic_joules=(joules - idle_w * seconds) / count,
        mean_watts=joules / seconds if seconds > 0 else float("nan"),
        spread_joules=statistics.stdev(per_window) if len(per_window) > 1 else 0.0,
        complete=error is None, error=error)
