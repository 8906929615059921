"""tunable.evaluate: the evaluation loop against a plain per-input loop over the session (accuracy, counters,
seeds, agreement, modeled energy), and the preprocessing it applies from the manifest."""
from __future__ import annotations

import numpy as np
import pytest

import tunable
from tunable.data import open_dataset
from tunable.energy import EnergyModel, load_profile
from tunable.errors import InputError, KnobError
from tunable.evaluate import Evaluator, prepare_inputs, preprocess_options_for, try_knobs
from tunable.knobs import Knobs
from tunable.paths import shared_dir
from tunable.planspec import COUNTERS

RESNET = shared_dir() / "models" / "mlperf-tiny" / "pretrainedResnet_quant.tflite"
KWS = shared_dir() / "models" / "mlperf-tiny" / "kws_ref_model.tflite"
CIFAR_TEST = shared_dir() / "data" / "cifar10" / "test_first1000.npz"
N = 120


@pytest.fixture(scope="module")
def resnet():
    m = tunable.load(RESNET)
    x, y = prepare_inputs(m, open_dataset(f"npz:{CIFAR_TEST}"), preprocess_options_for(RESNET), limit=N)
    return m, x, y


def _manual(m, x, y, knobs, per_input_seed=True):
    """The reference: one session, one input at a time, counters through RunStats."""
    s = m.session()
    s.set_knobs(knobs)
    preds, tot = [], dict.fromkeys(COUNTERS, 0)
    for i in range(len(x)):
        if per_input_seed:
            s.set_seed(knobs.seed + i)
        out = s.run(x[i])
        preds.append(int(np.argmax(out.reshape(-1))))
        for c, v in s.stats.totals.items():
            tot[c] += v
    return np.array(preds), {c: v / len(x) for c, v in tot.items()}


def test_resnet8_input_is_pixel_minus_128(resnet):
    m, x, y = resnet
    raw = np.load(CIFAR_TEST)
    assert x.dtype == np.int8 and x.shape == (N, 32, 32, 3)
    np.testing.assert_array_equal(x.astype(np.int16), raw["x"][:N].astype(np.int16) - 128)
    np.testing.assert_array_equal(y, raw["y"][:N])


def test_knobs_off_matches_a_plain_loop(resnet):
    m, x, y = resnet
    prof = load_profile("horowitz45")
    ev = Evaluator(m, x, y, profile=prof)
    r = ev.evaluate()
    preds, tot = _manual(m, x, y, Knobs())
    np.testing.assert_array_equal(r.predictions, preds)
    assert r.top1 == pytest.approx(np.mean(preds == y))
    assert r.agreement == 1.0
    assert r.top5 >= r.top1
    for c in COUNTERS:
        assert r.totals[c] == pytest.approx(tot[c])
    assert r.totals["macs"] == m.macs                 # analytic with knobs off
    assert r.conv_macs == r.conv_macs_off and r.conv_macs_saved == 0.0
    assert r.energy_j == pytest.approx(EnergyModel(prof, m).joules(r.totals, r.latency_s))
    assert r.energy_j > 0 and r.latency_s > 0
    assert r.profile == "horowitz45" and "not fitted" in r.profile_label


def test_drowsy_counters_and_seeds_match_a_plain_loop(resnet):
    m, x, y = resnet
    ev = Evaluator(m, x, y, profile=load_profile("horowitz45"))
    k = Knobs(drowsy=0.3, drowsy_granularity="row", seed=7)
    r = ev.evaluate(k)
    preds, tot = _manual(m, x, y, k, per_input_seed=True)
    np.testing.assert_array_equal(r.predictions, preds)
    assert r.totals["macs"] == pytest.approx(tot["macs"])
    assert 0.2 < r.conv_macs_saved < 0.4
    ref = ev.reference()
    assert r.agreement == pytest.approx(np.mean(preds == ref.predictions))
    assert r.energy_j < ref.energy_j
    # one fixed mask for every input
    ev_fixed = Evaluator(m, x, y, profile=load_profile("horowitz45"), per_input_seed=False)
    rf = ev_fixed.evaluate(k)
    preds_f, tot_f = _manual(m, x, y, k, per_input_seed=False)
    np.testing.assert_array_equal(rf.predictions, preds_f)
    assert rf.totals["macs"] == pytest.approx(tot_f["macs"])


def test_subsets_and_layers(resnet):
    m, x, y = resnet
    ev = Evaluator(m, x, y, profile=load_profile("horowitz45"))
    idx = [3, 1, 4, 1, 5]
    r = ev.evaluate(Knobs(drowsy=0.5, drowsy_granularity="channel"), indices=idx)
    assert r.n == 5
    assert set(r.layers) == {l.name for l in m.layers}
    assert sum(v["macs"] for v in r.layers.values()) == pytest.approx(r.totals["macs"])
    assert r.layers["fc_1"]["macs"] == 640      # drowsy touches conv layers only


def test_input_checks(resnet):
    m, x, y = resnet
    with pytest.raises(InputError, match="int8"):
        Evaluator(m, x.astype(np.float32), y)
    with pytest.raises(InputError, match="labels"):
        Evaluator(m, x, y[:-1])


def test_try_knobs_reports_why(resnet):
    m, _, _ = resnet
    assert try_knobs(m, Knobs(drowsy=0.2)) is None
    why = try_knobs(m, Knobs(drowsy=0.2, drowsy_granularity="channel", drowsy_select="importance"))
    assert why is not None and "calibration" in why     # no ranks without calibration data


def test_preprocess_options_merge():
    base = preprocess_options_for(RESNET)
    assert base.get("color") == "rgb"
    over = preprocess_options_for(RESNET, {"int8": "pixel-128"})
    assert over["int8"] == "pixel-128" and "scale" not in over and "offset" not in over
    assert over.get("color") == "rgb"
    assert preprocess_options_for("/nowhere/unknown.tflite", {"scale": 2.0}) == {"scale": 2.0}


def test_synthetic_gray_inputs_on_kws(tmp_path):
    """A labelled npz of 49x10 gray 'images' through the KWS DS-CNN (depthwise convs count as conv MACs)."""
    m = tunable.load(KWS)
    rng = np.random.default_rng(0)
    path = tmp_path / "kws.npz"
    np.savez(path, x=rng.integers(0, 256, (24, 49, 10, 1), dtype=np.uint8), y=rng.integers(0, 12, 24))
    x, y = prepare_inputs(m, open_dataset(f"npz:{path}"), preprocess_options_for(KWS, {"int8": "pixel-128"}))
    ev = Evaluator(m, x, y, profile=load_profile("horowitz45"))
    r = ev.evaluate(Knobs(drowsy=0.5, drowsy_granularity="channel"))
    assert r.n == 24 and 0.0 <= r.top1 <= 1.0
    assert r.conv_macs_off == sum(l.macs for l in m.layers if l.op in ("CONV_2D", "DEPTHWISE_CONV_2D"))
    assert 0.3 < r.conv_macs_saved < 0.7
