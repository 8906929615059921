"""Governor overhead per inference against the latency of one inference of a real model.

    python bench/governor_overhead.py [--model PATH] [--n 50000]

Overhead: a loop of choose() + observe() on a 16-point front with 5 % log-normal noise on both costs (so
the controller re-plans and time-divides as it would in use), minus the same loop with a stub controller
(choose returns a fixed point, observe does nothing): what remains is the governor's own work. Times are the
thread's CPU time (time.thread_time), the best of several repetitions, so that other processes on a shared
machine do not count; reported next to the model's per-inference latency through
tunable.load(...).session().run measured in the same process, and as a ratio. The default model is the
bundled LeNet-5 when it exists, else MLPerf Tiny's ad01 autoencoder from the shared folder.
"""
from __future__ import annotations

import argparse
import math
import random
import sys
import time
import warnings
from pathlib import Path

import numpy as np

import tunable
from governor.budgets import parse_budgets
from governor.controller import Controller
from governor.points import OperatingPoint
from tunable.paths import shared_dir


def bench_front() -> list[OperatingPoint]:
    acc = np.linspace(0.990, 0.900, 16)
    energy = np.geomspace(0.100, 0.030, 16)
    latency = np.geomspace(0.020, 0.0075, 16)
    return [OperatingPoint(f"p{i}", {"level": i}, float(a), float(e), float(l), 1000)
            for i, (a, e, l) in enumerate(zip(acc, energy, latency))]


class _Stub:
    def __init__(self, p):
        self.p = p

    def choose(self):
        return self.p

    def observe(self, point, latency_s, energy_j=None, energy_source="modeled", battery=None):
        pass


# CPU time of this thread: on a shared machine, wall time also counts the time other processes run
_clock = time.thread_time


def _loop(ctl, n: int, noise: list[float]) -> float:
    t = _clock()
    for k in range(n):
        p = ctl.choose()
        ctl.observe(p, p.latency_s * noise[2 * k], p.energy_j * noise[2 * k + 1], "measured")
    return (_clock() - t) / n


def governor_overhead_s(n: int, budgets: str, reps: int) -> tuple[float, dict]:
    rng = random.Random(1)
    noise = [math.exp(rng.gauss(0.0, 0.05)) for _ in range(2 * n)]
    front = bench_front()
    best = math.inf
    summary = None
    for _ in range(reps):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ctl = Controller(front, parse_budgets(budgets))
        t_gov = _loop(ctl, n, noise)
        t_stub = _loop(_Stub(front[8]), n, noise)
        best = min(best, t_gov - t_stub)
        summary = ctl.summary()
    return best, {"switches/100": round(summary.switches_per_100(), 2), "upgrades": summary.upgrades,
                  "downgrades": summary.downgrades}


def model_latency_s(path: Path, reps: int) -> float:
    m = tunable.load(path)
    s = m.session()
    x = np.zeros(m.inputs[0].shape, dtype=m.inputs[0].dtype)
    for _ in range(20):
        s.run(x)
    best = math.inf
    for _ in range(reps):
        t = _clock()
        for _ in range(200):
            s.run(x)
        best = min(best, (_clock() - t) / 200)
    return best


def default_model() -> Path:
    bundled = Path(tunable.__file__).parent / "data" / "lenet5_int8.tflite"
    if bundled.exists():
        return bundled
    return shared_dir() / "models" / "mlperf-tiny" / "ad01_int8.tflite"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, default=None)
    ap.add_argument("--n", type=int, default=50000, help="inferences simulated per repetition")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--budget", action="append", default=None,
                    help="budget set(s) to time (default: 57mJ, which time-divides, and 57mJ,15ms)")
    args = ap.parse_args(argv)
    model = args.model or default_model()
    budgets = args.budget or ["57mJ", "57mJ,15ms"]
    lat = model_latency_s(model, args.reps)
    print(f"model {model.name}: {lat * 1e6:.1f} us per inference (session.run, thread CPU time, best of "
          f"{args.reps} x 200)")
    worst = 0.0
    for b in budgets:
        ovh, info = governor_overhead_s(args.n, b, args.reps)
        worst = max(worst, ovh)
        print(f"budget {b:>12}: governor {ovh * 1e6:.2f} us per choose+observe = {100 * ovh / lat:.2f} % of "
              f"an inference  {info}")
    print(f"worst: {100 * worst / lat:.2f} % (target < 2 %)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
