"""Greedy per-layer schedules (on a synthetic separable problem and on ResNet-8), fitted on the calibration
split only; `tunable profile` end to end: exit codes, --json, the file, the plot."""
from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import tunable
from tunable.cli import main
from tunable.data import open_dataset
from tunable.energy import load_profile
from tunable.evaluate import Evaluator, prepare_inputs, preprocess_options_for
from tunable.knobs import Knobs
from tunable.paths import shared_dir
from tunable.profiling import (FamilySpec, Ladder, greedy_schedule, parse_families, profile_model,
                               read_profile)

RESNET = shared_dir() / "models" / "mlperf-tiny" / "pretrainedResnet_quant.tflite"
CIFAR = shared_dir() / "data" / "cifar10"


# ---------------------------------------------------------------------------------------------- synthetic

@dataclass
class FakeResult:
    top1: float
    true_prob: np.ndarray
    energy_j: float
    macs: float
    conv_macs: float
    weight_bytes: float


class FakeEvaluator:
    """Loss of layer l at rate p: a_l * p^2; cost: 1 - sum_l c_l * p (separable, increasing marginal loss)."""

    def __init__(self, a, c):
        self.a, self.c, self.calls = a, c, 0

    def evaluate(self, knobs, indices=None, agreement=True):
        self.calls += 1
        loss = sum(self.a[l] * knobs.layer_value("drowsy", l) ** 2 for l in self.a)
        cost = 1.0 - sum(self.c[l] * knobs.layer_value("drowsy", l) for l in self.c)
        return FakeResult(0.9 - loss, np.full(4, 0.5), cost, cost, cost, cost)


DROWSY_LADDER = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
A = {"l1": 0.05, "l2": 0.5, "l3": 0.01}
C = {"l1": 0.3, "l2": 0.3, "l3": 0.05}


@pytest.mark.parametrize("lazy", [True, False])
def test_greedy_follows_the_least_loss_per_saving(lazy):
    ev = FakeEvaluator(A, C)
    lad = [Ladder("drowsy", tuple(A), DROWSY_LADDER)]
    traj = greedy_schedule(ev, Knobs(), lad, cost="energy", max_loss=0.2, beta=0.0, lazy=lazy)
    assert traj[0].move is None and traj[0].loss == pytest.approx(0.0)
    # the first move: least a_l * 0.01 / (c_l * 0.1): l1 (0.0167) before l3 (0.02) before l2 (0.167)
    assert traj[1].move == ("drowsy", "l1", 0.1)
    # loss never exceeds the limit and rises, cost falls
    assert all(s.loss <= 0.2 + 1e-12 for s in traj)
    assert all(b.cost < a.cost for a, b in zip(traj, traj[1:]))
    # the walk stopped because the next cheapest move would cross the limit (or every ladder is exhausted)
    final = traj[-1].knobs
    rates = {l: final.layer_value("drowsy", l) for l in A}
    assert rates["l2"] < rates["l1"]
    # exact marginal ratios at each step: the chosen one is the minimum over available moves
    for prev, step in zip(traj, traj[1:]):
        cand = {}
        for l in A:
            p = prev.knobs.layer_value("drowsy", l)
            i = DROWSY_LADDER.index(p)
            if i + 1 < len(DROWSY_LADDER):
                q = DROWSY_LADDER[i + 1]
                cand[l] = A[l] * (q * q - p * p) / (C[l] * (q - p))
        best = min(cand.values())
        assert cand[step.move[1]] == pytest.approx(best)


def test_lazy_and_exhaustive_agree_and_lazy_is_cheaper():
    lad = [Ladder("drowsy", tuple(A), DROWSY_LADDER)]
    e1, e2 = FakeEvaluator(A, C), FakeEvaluator(A, C)
    t1 = greedy_schedule(e1, Knobs(), lad, max_loss=0.3, beta=0.0, lazy=True)
    t2 = greedy_schedule(e2, Knobs(), lad, max_loss=0.3, beta=0.0, lazy=False)
    assert [s.knobs for s in t1] == [s.knobs for s in t2]
    assert e1.calls < e2.calls


def test_moves_that_save_nothing_are_never_taken():
    ev = FakeEvaluator({"l1": 0.0, "l2": 0.01}, {"l1": 0.0, "l2": 0.1})   # l1 costs nothing, saves nothing
    traj = greedy_schedule(ev, Knobs(), [Ladder("drowsy", ("l1", "l2"), DROWSY_LADDER)], max_loss=1.0, beta=0)
    assert all(s.move[1] == "l2" for s in traj[1:])
    assert traj[-1].knobs.layer_value("drowsy", "l2") == DROWSY_LADDER[-1]   # ladder exhausted


def test_parse_families():
    names = [f.name for f in parse_families("drowsy/channel,aip/uniform,combined")]
    assert names == ["drowsy/channel/random/uniform", "drowsy/channel/random/greedy",
                     "drowsy/channel/importance/uniform", "drowsy/channel/importance/greedy", "aip/uniform",
                     "combined"]
    f = parse_families("drowsy/row/importance/greedy/cost=conv_macs")
    assert f == [FamilySpec("drowsy", "greedy", "row", "importance", False, "conv_macs")]
    assert len(parse_families("all")) > 10
    with pytest.raises(tunable.TunableError, match="unknown knob"):
        parse_families("dropout")
    with pytest.raises(tunable.TunableError, match="importance"):
        parse_families("drowsy/element/importance")
    f = parse_families("combined/loss=0.5,aip/greedy/cost=weight_bytes/loss=0.02")
    assert f == [FamilySpec("combined", "greedy", max_loss=0.5),
                 FamilySpec("aip", "greedy", cost="weight_bytes", max_loss=0.02)]
    assert [x.name for x in f] == ["combined/loss=0.5", "aip/greedy/cost=weight_bytes/loss=0.02"]
    for bad in ("combined/loss=2", "combined/loss=x"):
        with pytest.raises(tunable.TunableError, match="loss must be a fraction"):
            parse_families(bad)


# ---------------------------------------------------------------------------------------------- ResNet-8

def _split(n_eval=60, n_cal=60, permute=False):
    m0 = tunable.load(RESNET)
    opts = preprocess_options_for(RESNET)
    xc, yc = prepare_inputs(m0, open_dataset(f"npz:{CIFAR / 'train_first4000.npz'}"), opts, limit=n_cal)
    x, y = prepare_inputs(m0, open_dataset(f"npz:{CIFAR / 'test_first1000.npz'}"), opts, limit=n_eval)
    if permute:   # other evaluation data and labels entirely
        x, y = x[::-1].copy(), np.roll(y, 7)
    m = tunable.load(RESNET, calibration=xc)
    prof = load_profile("horowitz45")
    return m, Evaluator(m, x, y, profile=prof), Evaluator(m, xc, yc, profile=prof)


def test_schedules_depend_on_the_calibration_split_only():
    fams = parse_families("drowsy/row/importance/greedy/cost=conv_macs,combined")
    runs = []
    for permute in (False, True):
        m, ev, cal = _split(permute=permute)
        calls = []
        orig = ev.evaluate
        ev.evaluate = lambda k=None, **kw: (calls.append(k), orig(k, **kw))[1]
        prof = profile_model(m, ev, cal, families=fams, cost="energy", max_loss=0.08, max_points=50)
        # the evaluation split only measured the points that were kept (plus the knobs-off reference)
        assert len([c for c in calls if c is not None and not c.is_off]) == len(prof.points) - 1
        runs.append(prof)
    a, b = runs
    assert a.meta["greedy"] == b.meta["greedy"]
    ka = [(p.name, p.knobs, p.extra.get("calib_accuracy")) for p in a.points]
    kb = [(p.name, p.knobs, p.extra.get("calib_accuracy")) for p in b.points]
    assert ka == kb
    assert a.meta["greedy"]["drowsy/row/importance/greedy/cost=conv_macs"]["steps"] >= 1
    greedy_pts = a.family("drowsy/row/importance/greedy/cost=conv_macs")
    assert greedy_pts and all("calib_accuracy" in p.extra and p.extra["step"] >= 1 for p in greedy_pts)
    assert all(p.extra["conv_macs_saved"] > 0 for p in greedy_pts)
    assert a.front == sorted(a.front, key=lambda n: a.point(n).energy_j)


def test_a_family_loss_overrides_the_profile_max_loss():
    """'combined/loss=0': the combined walk stops before any move that loses calibration accuracy, whatever
    the profile's max_loss (bench/knobs.py carries the combined walk further than the single knobs this way)."""
    lenet = Path(__file__).resolve().parents[1] / "models" / "lenet5_mnist_int8.tflite"
    m0, opts = tunable.load(lenet), preprocess_options_for(lenet)
    mnist = shared_dir() / "data" / "mnist"
    xc, yc = prepare_inputs(m0, open_dataset(f"mnist:{mnist}:train"), opts, limit=60)
    x, y = prepare_inputs(m0, open_dataset(f"mnist:{mnist}:test"), opts, limit=30)
    m = tunable.load(lenet, calibration=xc)
    ev, cal = Evaluator(m, x, y, profile=load_profile("horowitz45")), Evaluator(m, xc, yc, profile=load_profile("horowitz45"))
    prof = profile_model(m, ev, cal, families=parse_families("combined/loss=0"), cost="energy", max_loss=0.5,
                         max_points=50)
    g = prof.meta["greedy"]["combined"]
    assert g["max_loss"] == 0.0
    assert all(p.extra["calib_loss"] <= 1e-12 for p in prof.family("combined"))


# ---------------------------------------------------------------------------------------------- CLI

@pytest.fixture(scope="module")
def small(tmp_path_factory):
    d = tmp_path_factory.mktemp("data")
    for name, n in (("test_first1000", 50), ("train_first4000", 50)):
        z = np.load(CIFAR / f"{name}.npz")
        np.savez(d / f"{name[:5]}.npz", x=z["x"][:n], y=z["y"][:n])
    return d


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def test_profile_cli_writes_points_front_and_plot(small, tmp_path):
    out, png = tmp_path / "p.json", tmp_path / "p.png"
    r = run("profile", RESNET, "--data", f"npz:{small / 'test_.npz'}", "--calib", f"npz:{small / 'train.npz'}",
            "--families", "drowsy/channel/importance,aip/uniform", "--calib-eval", 30, "--profile", "horowitz45",
            "-o", out, "--plot", png, "--json")
    assert r.exit_code == 0, r.output
    d = json.loads(r.output)
    prof = read_profile(out)
    assert d["front"] == prof.front and d["points"] == len(prof.points)
    assert prof.profile == "horowitz45" and prof.meta["n_eval"] == 50 and prof.meta["n_calib"] == 30
    assert prof.calibration.endswith("train.npz") and prof.dataset.endswith("test_.npz")
    fams = {p.family for p in prof.points}
    assert {"off", "drowsy/channel/importance/uniform", "aip/uniform"} <= fams
    assert d["plot"] == str(png) and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_profile_cli_without_matplotlib_says_so(small, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    r = run("profile", RESNET, "--data", f"npz:{small / 'test_.npz'}", "--families", "aip/uniform",
            "--profile", "horowitz45", "-o", tmp_path / "p.json", "--plot", tmp_path / "p.png")
    assert r.exit_code == 0, r.output
    assert "pip install matplotlib" in r.output
    assert not (tmp_path / "p.png").exists() and (tmp_path / "p.json").exists()


def test_profile_cli_greedy_without_calibration_is_reported(small, tmp_path):
    r = run("profile", RESNET, "--data", f"npz:{small / 'test_.npz'}", "--families", "drowsy/row/random/greedy",
            "--profile", "horowitz45", "-o", tmp_path / "p.json")
    assert r.exit_code == 0, r.output
    assert "need calibration data" in r.output
    assert "drowsy/row/random/greedy" in read_profile(tmp_path / "p.json").meta["unavailable"]


def test_profile_cli_errors(small, tmp_path):
    r = run("profile", RESNET, "--data", f"npz:{small / 'test_.npz'}", "-o", tmp_path / "p.json",
            "--families", "dropout")
    assert r.exit_code == 1 and "unknown knob" in r.output
    r = run("profile", RESNET, "--data", f"npz:{small / 'test_.npz'}")
    assert r.exit_code == 2 and "--output" in r.output
