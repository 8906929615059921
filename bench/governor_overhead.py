"""Governor overhead per inference against the latency of one inference of a real model.

    python bench/governor_overhead.py [--model PATH] [--n 50000]

Overhead: a loop of choose() + observe() on a 16-point front with 5 % log-normal noise on both costs (so
the controller re-plans and time-divides as it would in use), minus the same loop with a stub controller
(choose returns a fixed point, observe does nothing): what remains is the governor's own work. It is set
against the model's per-inference latency through tunable.load(...).session().run, measured in the same
repetition; times are the thread's CPU time (time.thread_time), so that other processes on a shared machine
count less. Reported: the median ratio over the repetitions, and the best times. The default model is the
one `tunable run` uses by default, the manifest's bundled LeNet-5.
"""
from __future__ import annotations

import argparse
import math
import random
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np

import tunable
from governor.budgets import parse_budgets
from governor.controller import Controller
from governor.points import OperatingPoint
from tunable.models import default_model as default_bundled, locate


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


def measure(model: Path, budgets: str, n: int, reps: int) -> tuple[float, float, list[float], dict]:
    """Per repetition, back to back: the model's latency, the governor loop, the stub loop; so that a load
    change on a shared machine moves both sides of a ratio together. Returns the best model latency, the
    best overhead, the ratio of each repetition and the controller's statistics."""
    rng = random.Random(1)
    noise = [math.exp(rng.gauss(0.0, 0.05)) for _ in range(2 * n)]
    front = bench_front()
    m = tunable.load(model)
    sess = m.session()
    x = np.zeros(m.inputs[0].shape, dtype=m.inputs[0].dtype)
    for _ in range(20):
        sess.run(x)
    lats, ovhs, ratios = [], [], []
    summary = None
    for _ in range(reps):
        t = _clock()
        for _ in range(200):
            sess.run(x)
        lat = (_clock() - t) / 200
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ctl = Controller(front, parse_budgets(budgets))
        ovh = _loop(ctl, n, noise) - _loop(_Stub(front[8]), n, noise)
        lats.append(lat)
        ovhs.append(ovh)
        ratios.append(ovh / lat)
        summary = ctl.summary()
    return min(lats), min(ovhs), ratios, {"switches/100": round(summary.switches_per_100(), 2),
                                          "upgrades": summary.upgrades, "downgrades": summary.downgrades}


def default_model() -> Path:
    """The model `tunable run` uses by default: the manifest's first bundled one (LeNet-5)."""
    path, _ = locate(default_bundled())
    return path


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
    print(f"model {model.name}; thread CPU time; {args.reps} repetitions of 200 inferences and {args.n} "
          "governor steps")
    worst = 0.0
    for b in budgets:
        lat, ovh, ratios, info = measure(model, b, args.n, args.reps)
        med = statistics.median(ratios)
        worst = max(worst, med)
        print(f"budget {b:>10}: model {lat * 1e6:.1f} us/inference, governor {ovh * 1e6:.2f} us per "
              f"choose+observe (best of each); ratio median {100 * med:.2f} % (range {100 * min(ratios):.2f}-"
              f"{100 * max(ratios):.2f} %)  {info}")
    print(f"worst median ratio: {100 * worst:.2f} % (target < 2 %)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
