"""Calibration recovers known coefficients from synthetic measurements."""
from __future__ import annotations

import numpy as np
import pytest

from tunable.energy import (ENERGY, CalibrationWindow, Sampler, Sensor, SweepPoint, fit_windows, load_profile,
                            run_sweep, save_profile)

TRUE = {"window_s": 2.5, "busy_s": 1.8, "macs": 40e-12, "weight_bytes": 150e-12, "act_bytes": 12e-12,
        "requant_ops": 20e-12}


def synthetic_windows(n: int, noise: float, seed: int = 1) -> list[CalibrationWindow]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        window_s = rng.uniform(1.0, 3.0)
        busy_s = window_s * rng.uniform(0.2, 1.0)
        c = {"macs": rng.uniform(1e9, 5e10), "weight_bytes": rng.uniform(1e7, 4e8),
             "act_bytes_in": rng.uniform(1e7, 2e8), "requant_ops": rng.uniform(1e7, 1e9)}
        c["act_bytes_out"] = c["act_bytes_in"] * rng.uniform(0.5, 1.5)
        w = CalibrationWindow(0.0, window_s, busy_s, c)
        e = sum(TRUE[f] * w.feature(f) for f in TRUE)
        out.append(CalibrationWindow(e * (1 + noise * rng.standard_normal()), window_s, busy_s, c))
    return out


def test_exact_recovery_without_noise():
    fit = fit_windows(synthetic_windows(30, 0.0))
    assert set(fit.coefficients) == set(TRUE)
    for f, v in TRUE.items():
        assert fit.coefficients[f] == pytest.approx(v, rel=1e-6)
    assert fit.rms_relative_error < 1e-9 and fit.r2 == pytest.approx(1.0)
    assert fit.unidentified == {"mults": "zero in every window", "adds": "zero in every window",
                                "lut_lookups": "zero in every window"}


def test_recovery_with_measurement_noise():
    fit = fit_windows(synthetic_windows(60, 0.002))
    for f in ("window_s", "busy_s", "macs", "weight_bytes"):
        assert fit.coefficients[f] == pytest.approx(TRUE[f], rel=0.03)
    assert 0.001 < fit.rms_relative_error < 0.004     # the noise put in, seen back as fit error
    assert fit.r2 > 0.999


def test_collinear_counters_are_reported_and_their_energy_carried():
    wins = []
    for w in synthetic_windows(20, 0.0):
        c = dict(w.counters, mults=w.counters["macs"], adds=w.counters["macs"])
        e = w.joules + 0.2e-12 * c["mults"] + 0.1e-12 * c["adds"]
        wins.append(CalibrationWindow(e, w.window_s, w.busy_s, c))
    fit = fit_windows(wins)
    assert "collinear with macs" in fit.unidentified["mults"] and "collinear with macs" in fit.unidentified["adds"]
    assert fit.coefficients["macs"] == pytest.approx(40e-12 + 0.3e-12, rel=1e-6)
    assert fit.rms_relative_error < 1e-9


def test_negative_fit_is_left_out():
    rng = np.random.default_rng(3)
    wins = []
    for _ in range(20):
        window_s, busy_s = rng.uniform(1, 2), rng.uniform(0.1, 0.9)
        c = {"macs": rng.uniform(1e9, 2e9), "requant_ops": rng.uniform(1e6, 2e6)}
        wins.append(CalibrationWindow(2.0 * window_s + 1.0 * busy_s + 1e-11 * c["macs"] - 1e-9 * c["requant_ops"]
                                      + 1e-3 * rng.standard_normal(), window_s, busy_s, c))
    fit = fit_windows(wins)
    assert "requant_ops" not in fit.coefficients and "below zero" in fit.unidentified["requant_ops"]
    assert all(v >= 0 for v in fit.coefficients.values())


def test_too_few_windows():
    with pytest.raises(ValueError, match="run more windows"):
        fit_windows(synthetic_windows(3, 0.0))


def test_fitted_profile_round_trip(tmp_path, monkeypatch):
    monkeypatch.setenv("TUNABLE_CONFIG_DIR", str(tmp_path))
    fit = fit_windows(synthetic_windows(30, 0.0))
    prof = fit.to_profile("bench-box", load_profile("generic-x86"), "rapl:package-0", ["a.tflite knobs off"],
                          fitted_on="bench-box (x86_64)")
    save_profile(prof)
    back = load_profile("bench-box")
    assert back.fitted and back.fitted_on == "bench-box (x86_64), sensor rapl:package-0"
    assert back.base_watts == pytest.approx(2.5) and back.active_watts == pytest.approx(1.8)
    assert back.pj_per_count["macs"] == pytest.approx(40.0) and back.pj_per_count["weight_bytes"] == pytest.approx(150)
    assert back.pj_per_count["act_bytes_in"] == back.pj_per_count["act_bytes_out"] == pytest.approx(12.0)
    assert back.pj_per_count["adds"] == 0.0
    assert back.fit["sensor"] == "rapl:package-0" and back.fit["windows"] == 30
    assert back.weight_bytes_dram_pj is None
    assert any("zero in every window" in u for u in back.fit["unidentified"])
    assert "\n".join(fit.describe()).count("pJ per count") == 4


class SyntheticBoard(Sensor):
    """An energy counter of a board drawing BASE W always, ACTIVE W more while busy, and PJ_MAC per MAC."""
    quantity = ENERGY
    name = "board"
    BASE, ACTIVE, PJ_MAC = 3.0, 2.0, 50e-12

    def __init__(self):
        self.t = 0.0
        self.dynamic = 0.0

    def clock(self) -> float:
        return self.t

    def sleep(self, s: float) -> None:
        self.t += s

    def infer(self, latency_s: float, macs: float) -> float:
        self.t += latency_s
        self.dynamic += self.ACTIVE * latency_s + self.PJ_MAC * macs
        return latency_s

    def read_joules(self) -> float:
        return self.BASE * self.t + self.dynamic


def test_sweep_then_fit_recovers_the_board():
    board = SyntheticBoard()
    points = [SweepPoint(f"m{i}", lambda lat=lat, macs=macs: board.infer(lat, macs), {"macs": macs})
              for i, (lat, macs) in enumerate([(0.001, 1e6), (0.003, 2e6), (0.002, 5e6)])]
    smp = Sampler(board, clock=board.clock)
    windows = run_sweep(points, smp, window_s=0.1, duties=(1.0, 0.5), repeats=2, clock=board.clock,
                        sleep=board.sleep)
    assert len(windows) == 12 and all(w.busy_s < w.window_s for w in windows if "duty 0.5" in w.label)
    fit = fit_windows(windows)
    assert fit.coefficients["window_s"] == pytest.approx(3.0, rel=1e-6)
    assert fit.coefficients["busy_s"] == pytest.approx(2.0, rel=1e-6)
    assert fit.coefficients["macs"] == pytest.approx(50e-12, rel=1e-6)
