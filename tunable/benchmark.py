"""Latency measurement shared by `tunable bench` and bench/: single thread, pinned to one core, the median
of several runs, each the median of a window of calls after warm-up. Compare ratios taken in one run."""
from __future__ import annotations

import os
import statistics
import time
from typing import Callable


def pin_to_one_core() -> int | None:
    """Pins this process to the last allowed CPU; returns it (None where affinity is not supported)."""
    try:
        cpus = sorted(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {cpus[-1]})
        return cpus[-1]
    except (AttributeError, OSError):
        return None


def window_median(fn: Callable[[], object], window_s: float) -> float:
    """The median call time in seconds over a window of about window_s of calls."""
    times = []
    end = time.perf_counter() + window_s
    while True:
        t0 = time.perf_counter()
        fn()
        t1 = time.perf_counter()
        times.append(t1 - t0)
        if t1 >= end:
            return statistics.median(times)


def measure(fn: Callable[[], object], window_s: float = 0.3, repeats: int = 5, warmup: int = 3) -> float:
    """Median over `repeats` windows of the median call time in seconds."""
    for _ in range(warmup):
        fn()
    return statistics.median(window_median(fn, window_s) for _ in range(repeats))


def fmt_us(seconds: float) -> str:
    us = seconds * 1e6
    return f"{us:,.1f} µs" if us < 10_000 else f"{us / 1000:,.2f} ms"
