"""Calibration: fit a device profile by regressing measured energy on time and counters.

Each window of the sweep runs one (model, knob setting) at one duty cycle (bursts of inferences separated by
idle gaps) and yields: measured joules, the window's wall time, the time spent inside inferences, and the
counters summed over its inferences. The model fitted is

    E_window = base_watts * window_s + active_watts * busy_s + sum_c pj_c * 1e-12 * counter_c

by least squares on relative error (rows divided by the measured energy, so long and short windows count
alike). Varying the duty cycle separates base from active power; varying models and knobs is what makes
counter coefficients identifiable. A feature that the sweep cannot tell apart from those already kept
(nearly collinear), or that fits below zero, is left out and reported: its energy is then carried by the
features it is collinear with, and its coefficient in the saved profile is zero. "Nearly collinear" means
less than 10 % of the column lies outside the span of the features already kept: latency jitter alone must
not pass for independent variation of the counters.
"""
from __future__ import annotations

import platform
import socket
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Callable, Mapping, Sequence

import numpy as np

from .. import planspec
from ..units import PICO
from .profiles import Profile
from .sampler import Sampler
from .sysfs import SensorError

# Time features first: they exist in every sweep. Then counters, most energetic first, so that of two
# collinear counters the one that matters more is kept.
FEATURES = ("window_s", "busy_s", "macs", "weight_bytes", "act_bytes", "requant_ops", "lut_lookups",
            "mults", "adds")
_POWER_TERMS = {"window_s": "base_watts (drawn over the whole window)",
                "busy_s": "active_watts (extra while inferring)"}


@dataclass(frozen=True)
class CalibrationWindow:
    joules: float
    window_s: float
    busy_s: float
    counters: Mapping[str, float]
    label: str = ""

    def feature(self, name: str) -> float:
        if name == "window_s":
            return self.window_s
        if name == "busy_s":
            return self.busy_s
        if name == "act_bytes":
            return float(self.counters.get("act_bytes_in", 0) + self.counters.get("act_bytes_out", 0))
        return float(self.counters.get(name, 0))


@dataclass
class FitResult:
    coefficients: dict[str, float]          # feature -> watts (time features) or joules per count
    unidentified: dict[str, str]            # feature -> why it was left out
    rms_relative_error: float
    max_relative_error: float
    r2: float
    measured: list[float] = field(default_factory=list)
    predicted: list[float] = field(default_factory=list)

    @property
    def windows(self) -> int:
        return len(self.measured)

    def describe(self) -> list[str]:
        lines = []
        for f, v in self.coefficients.items():
            lines.append(f"{f:14s} {v:.4g} W: {_POWER_TERMS[f]}" if f in _POWER_TERMS
                         else f"{f:14s} {v / PICO:.4g} pJ per count")
        for f, why in self.unidentified.items():
            lines.append(f"{f:14s} not identified: {why}")
        return lines

    def to_profile(self, name: str, base: Profile, sensor: str, models: Sequence[str] = (),
                   fitted_on: str | None = None) -> Profile:
        c = self.coefficients
        pj = {k: 0.0 for k in planspec.COUNTERS}
        for f, v in c.items():
            if f == "act_bytes":
                pj["act_bytes_in"] = pj["act_bytes_out"] = v / PICO
            elif f in pj:
                pj[f] = v / PICO
        host = fitted_on or f"{socket.gethostname()} ({platform.machine()})"
        fit = {"sensor": sensor, "windows": self.windows, "rms_relative_error": self.rms_relative_error,
               "max_relative_error": self.max_relative_error, "r2": self.r2,
               "unidentified": [f"{f}: {w}" for f, w in self.unidentified.items()],
               "models": list(models), "base_profile": base.name,
               "date": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")}
        return Profile(
            name=name, description=f"fitted on {host} with {sensor}",
            source=(f"tunable calibrate: least squares of energy measured by {sensor} on window time, busy time "
                    f"and counters over {self.windows} windows"),
            fitted_on=f"{host}, sensor {sensor}", base_watts=c.get("window_s", 0.0),
            active_watts=c.get("busy_s", 0.0), cache_bytes=base.cache_bytes, weight_bytes_dram_pj=None,
            pj_per_count=pj, fit=fit)


def _select(X: np.ndarray, names: list[str], tol: float) -> tuple[list[int], dict[str, str]]:
    """Columns in priority order, each kept only if it adds more than `tol` of new direction."""
    kept: list[int] = []
    why: dict[str, str] = {}
    for j, name in enumerate(names):
        col = X[:, j]
        norm = np.linalg.norm(col)
        if norm == 0:
            why[name] = "zero in every window"
            continue
        u = col / norm
        if kept:
            Q, _ = np.linalg.qr(X[:, kept] / np.linalg.norm(X[:, kept], axis=0))
            r = u - Q @ (Q.T @ u)
            if np.linalg.norm(r) < tol:
                coef = np.linalg.lstsq(X[:, kept], col, rcond=None)[0]
                main = max(range(len(kept)), key=lambda i: abs(coef[i]) * np.linalg.norm(X[:, kept[i]]))
                why[name] = (f"collinear with {names[kept[main]]} in this sweep (vary models or knobs to "
                             "separate them); its energy is carried by the features kept")
                continue
        kept.append(j)
    return kept, why


def fit_windows(windows: Sequence[CalibrationWindow], features: Sequence[str] = FEATURES,
                collinear_tol: float = 0.1) -> FitResult:
    if not windows:
        raise ValueError("no calibration windows")
    names = list(features)
    X = np.array([[w.feature(f) for f in names] for w in windows], dtype=np.float64)
    y = np.array([w.joules for w in windows], dtype=np.float64)
    if np.any(y <= 0):
        raise ValueError("every window needs a positive measured energy")
    # Relative least squares: each row divided by its measured energy.
    Xr, yr = X / y[:, None], np.ones_like(y)
    kept, why = _select(Xr, names, collinear_tol)
    while True:
        if len(windows) <= len(kept):
            raise ValueError(f"{len(windows)} windows cannot fit {len(kept)} coefficients "
                             f"({', '.join(names[j] for j in kept)}): run more windows")
        scale = np.linalg.norm(Xr[:, kept], axis=0)
        beta = np.linalg.lstsq(Xr[:, kept] / scale, yr, rcond=None)[0] / scale
        neg = [i for i, b in enumerate(beta) if b < 0]
        if not neg or len(kept) == 1:
            break
        worst = min(neg, key=lambda i: beta[i] * scale[i])
        why[names[kept[worst]]] = "fitted below zero (noise, or collinear with others); left out"
        kept.pop(worst)
    pred = X[:, kept] @ beta
    rel = (pred - y) / y
    ss_tot = float(np.sum((y - y.mean()) ** 2))
    r2 = 1.0 - float(np.sum((pred - y) ** 2)) / ss_tot if ss_tot > 0 else float("nan")
    coefs = {names[j]: float(b) for j, b in zip(kept, beta)}
    return FitResult(coefs, {n: why[n] for n in names if n in why},
                     float(np.sqrt(np.mean(rel ** 2))), float(np.max(np.abs(rel))), r2,
                     [float(v) for v in y], [float(v) for v in pred])


@dataclass
class SweepPoint:
    """One operating point of the sweep: a model with a knob setting."""
    label: str
    run_one: Callable[[], float]            # runs one inference, returns its latency in seconds
    counters: Mapping[str, float]           # counter totals of one inference at this setting
    prepare: Callable[[], None] = lambda: None  # applies the knob setting


def run_sweep(points: Sequence[SweepPoint], sampler: Sampler, window_s: float,
              duties: Sequence[float] = (1.0, 0.5), repeats: int = 1, burst_s: float = 0.02,
              clock: Callable[[], float] = time.perf_counter, sleep: Callable[[float], None] = time.sleep,
              progress: Callable[[str], None] | None = None) -> list[CalibrationWindow]:
    """Runs every point at every duty cycle for window_s each; bursts of inferences alternate with sleeps so
    that busy time and wall time vary independently."""
    out: list[CalibrationWindow] = []
    for rep in range(repeats):
        for p in points:
            p.prepare()
            for duty in duties:
                m = sampler.mark()
                busy, n, t0 = 0.0, 0, clock()
                while clock() - t0 < window_s:
                    b0 = clock()
                    while True:
                        busy += p.run_one()
                        n += 1
                        if clock() - b0 >= burst_s * duty:
                            break
                    if duty < 1.0:
                        sleep(burst_s * (1.0 - duty))
                w = sampler.since(m)
                if not w.complete:
                    raise SensorError(f"calibration stopped: {w.error}")
                label = f"{p.label} duty {duty:g}"
                out.append(CalibrationWindow(w.joules, w.seconds, busy, {c: n * v for c, v in p.counters.items()},
                                             label))
                if progress:
                    progress(f"{label}: {n} inferences, {w.seconds:.2f} s, {w.joules:.4g} J")
    return out
