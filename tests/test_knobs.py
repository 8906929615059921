"""The Knobs value type, Session.set_knobs, drowsy and AIP in the runtime: validation, bit-identity when off,
reproducible masks, counters that equal what was computed."""
from __future__ import annotations

import numpy as np
import pytest
from conftest import random_input

import tunable
from tunable._tunable_c import lib
from tunable.errors import KnobError
from tunable.knobs import Knobs

MASK64 = (1 << 64) - 1


def unit_hash(seed: int, layer: int, unit: int) -> int:
    """The runtime's counter-based hash (runtime_c/src/drowsy.h), reimplemented to check the masks."""
    z = (seed ^ ((layer * 0x9E3779B97F4A7C15) & MASK64) ^ ((unit * 0xD1B54A32D192ED03) & MASK64)) & MASK64
    z = (z + 0x9E3779B97F4A7C15) & MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
    z ^= z >> 31
    return z >> 32


@pytest.fixture(scope="module")
def resnet(mlperf):
    return tunable.load(mlperf["resnet8"])


# ---------------------------------------------------------------- the value type

def test_round_trips_and_compact_text():
    k = Knobs(drowsy={"conv_3": 0.5, "*": 0.1}, drowsy_granularity="channel", drowsy_select="importance",
              seed=7, aip=1 / 16, lut={"conv_2": (16, 64)}, prune=3, weight_lsb_drop=2)
    assert Knobs.from_json(k.to_json()) == k
    assert Knobs.from_toml(k.to_toml()) == k
    assert Knobs.parse(str(k)) == k
    assert hash(Knobs.parse(str(k))) == hash(k)
    assert str(Knobs()) == "off" and Knobs().is_off
    assert Knobs.parse("drowsy=0.3 drowsy.conv_1=0.1").layer_value("drowsy", "conv_2") == 0.3


@pytest.mark.parametrize("kw, match", [
    (dict(drowsy=1.5), "drowsy"), (dict(aip=0), "aip"), (dict(drowsy_granularity="pixel"), "granularity"),
    (dict(drowsy_select="importance"), "row"), (dict(prune=-1), "prune"), (dict(weight_lsb_drop=9), "lsb"),
    (dict(lut={"conv_1": (1, 300)}), "lut"), (dict(seed=-1), "seed")])
def test_out_of_range_values(kw, match):
    with pytest.raises(KnobError, match=match):
        Knobs(**kw)


def test_unknown_knob_and_bad_text():
    with pytest.raises(KnobError, match="unknown knob"):
        Knobs.parse("turbo=1")
    with pytest.raises(KnobError, match="not a number"):
        Knobs.parse("drowsy=lots")


def test_unknown_layer_and_wrong_kind(resnet):
    s = resnet.session()
    with pytest.raises(KnobError, match="no layer named 'conv_99'"):
        s.set_knobs(drowsy={"conv_99": 0.5})
    with pytest.raises(KnobError, match="fc_1 is FULLY_CONNECTED|layer 'fc_1' is FULLY_CONNECTED"):
        s.set_knobs(drowsy={"fc_1": 0.5})
    with pytest.raises(KnobError, match="calibration"):
        s.set_knobs(drowsy=0.5, drowsy_granularity="channel", drowsy_select="importance")


# ---------------------------------------------------------------- off = the plain engine

@pytest.mark.parametrize("name", ["resnet8", "vww", "kws", "ad01"])
def test_all_off_is_bit_identical(mlperf, name):
    m = tunable.load(mlperf[name])
    plain, s = m.session(), m.session()
    rng = np.random.default_rng(3)
    for _ in range(5):
        x = random_input(m.inputs[0], rng)
        s.set_knobs(drowsy=0.3, aip=0.25, seed=5)
        s.run(x)
        s.set_knobs()
        np.testing.assert_array_equal(s.run(x), plain.run(x))
        assert s.stats.totals == plain.stats.totals


# ---------------------------------------------------------------- drowsy

def _conv_outputs(m, s, layer):
    return s.tensor(m.layer(layer).out_tensor)


def test_channel_masks_follow_the_hash(resnet, monkeypatch):
    """Channel granularity drops exactly the channels whose hash is below p * 2^32, on every ISA. A conv skips
    the input channels that hold real zero: those a producer conv dropped, and through an ADD those both its
    operands dropped; its MACs are those of the kept inputs (TUNABLE_INSKIP=1: wherever exact, not only where
    the cost model expects a gain)."""
    monkeypatch.setenv("TUNABLE_INSKIP", "1")
    m, s = resnet, resnet.session()
    x = random_input(m.inputs[0], np.random.default_rng(0))
    p, seed = 0.4, 11
    s.set_knobs(drowsy=p, drowsy_granularity="channel", seed=seed)
    s.run(x)
    thr = round(p * 2**32)
    writer = {layer.out_tensor: layer for layer in m.layers}

    def zero(t, c):  # the channels of tensor t that hold its zero point (the runtime's zero_channels)
        w = writer.get(t)
        if w is None:
            return set()
        if w.op == "CONV_2D":
            return {i for i in range(c) if unit_hash(seed, w.index, i) < thr}
        if w.op == "ADD":
            return zero(w.in_tensors[0], c) & zero(w.in_tensors[1], c)
        return set()

    for layer in m.layers:
        if layer.op != "CONV_2D":
            continue
        cout = layer.output_shape[-1]
        dropped = [c for c in range(cout) if unit_hash(seed, layer.index, c) < thr]
        ctr = s.stats.layer(layer.name).counters
        pixels = layer.output_shape[1] * layer.output_shape[2]
        cin = layer.input_shapes[0][-1]
        taps = layer.macs // (cout * pixels * cin)
        kept_in = max(1, cin - len(zero(layer.in_tensors[0], cin))) if cin > 1 else cin
        assert ctr["outputs_skipped"] == len(dropped) * pixels, layer.name
        assert ctr["macs"] == (cout - len(dropped)) * pixels * taps * kept_in, layer.name
        assert ctr["weight_bytes"] == (cout - len(dropped)) * taps * kept_in, layer.name


@pytest.mark.parametrize("gran", ["element", "row", "channel"])
def test_masks_equal_on_every_kernel_variant_and_repeat(resnet, gran):
    m = resnet
    x = random_input(m.inputs[0], np.random.default_rng(1))
    outs = []
    for isa in (b"reference", b"generic", b"avx2", b"avx512vnni"):
        if lib.tn_force_isa(isa) != 0:
            continue  # a variant this CPU lacks
        s = m.session()
        s.set_knobs(drowsy=0.3, drowsy_granularity=gran, seed=42)
        outs.append((s.run(x), s.run(x), s.stats.totals))
    lib.tn_force_isa(b"auto")
    for y1, y2, tot in outs:
        np.testing.assert_array_equal(y1, y2)
        np.testing.assert_array_equal(y1, outs[0][0])
        assert tot == outs[0][2]


def test_seed_changes_the_mask(resnet):
    s = resnet.session()
    x = random_input(resnet.inputs[0], np.random.default_rng(2))
    s.set_knobs(drowsy=0.3, seed=1)
    a = s.run(x)
    s.set_seed(2)
    b = s.run(x)
    s.set_seed(1)
    assert not np.array_equal(a, b) and np.array_equal(s.run(x), a)


def test_importance_drops_the_least_active_units(mlperf, shared):
    data = np.load(shared / "data" / "cifar10" / "train_first4000.npz")
    calib = (data["x"][:64].astype(np.int16) - 128).astype(np.int8)[:, None]
    m = tunable.load(mlperf["resnet8"], calibration=calib)
    s = m.session()
    s.set_knobs(drowsy={"conv_2": 0.25}, drowsy_granularity="channel", drowsy_select="importance")
    s.run(calib[0])
    layer = m.layer("conv_2")
    ctr = s.stats.layer("conv_2").counters
    assert ctr["outputs_skipped"] == 4 * 32 * 32  # floor(0.25 * 16) channels of 32x32
    assert ctr["macs"] == 12 * 32 * 32 * layer.macs // (16 * 32 * 32)


def test_rescale_is_deterministic_and_changes_kept_outputs(resnet):
    s = resnet.session()
    x = random_input(resnet.inputs[0], np.random.default_rng(4))
    s.set_knobs(drowsy=0.3, drowsy_granularity="channel")
    a = s.run(x)
    s.set_knobs(drowsy=0.3, drowsy_granularity="channel", drowsy_rescale=True)
    b1, b2 = s.run(x), s.run(x)
    np.testing.assert_array_equal(b1, b2)
    assert not np.array_equal(a, b1)
    lib.tn_force_isa(b"reference")
    try:
        np.testing.assert_array_equal(s.run(x), b1)
    finally:
        lib.tn_force_isa(b"auto")


# ---------------------------------------------------------------- AIP

def _preserved(path) -> tunable.Model:
    """The model compiled with every op output kept alive, so intermediate tensors can be read after a run."""
    from tunable.compiler import compile_graph
    from tunable.tflite_reader import read_tflite
    g = read_tflite(path)
    g.outputs = list(dict.fromkeys(g.outputs + [o for op in g.ops for o in op.outputs]))
    return tunable.Model(compile_graph(g), str(path))


def test_aip_relu_skip_counts_and_exact_rows(mlperf):
    m = _preserved(mlperf["ad01"])  # ten FC layers, nine followed by ReLU
    s, plain = m.session(), m.session()
    x = random_input(m.inputs[0], np.random.default_rng(5))
    plain.run(x)
    s.set_knobs(aip=0.25)
    s.run(x)
    st = s.stats
    for layer in m.layers:
        c = st.layer(layer.name).counters
        k = layer.macs // int(np.prod(layer.output_shape))
        n = int(np.prod(layer.output_shape))
        cols = int(np.ceil(0.25 * k))
        if layer.params["role"] == 1:
            completed = n - c["outputs_skipped"]
            assert c["weight_bytes"] == n * cols + completed * (k - cols)
            assert c["macs"] == n * cols + completed * (k - cols)
        else:
            assert c["outputs_skipped"] == 0
    # the first layer sees the same input in both sessions: rows it completed are exact, the others clamp
    first = m.layers[0]
    y, y0 = s.tensor(first.out_tensor)[0], plain.tensor(first.out_tensor)[0]
    lo = first.params["act_min"]
    assert np.all((y == y0) | (y == lo))


def test_aip_classifier_completes_the_top_rows(mlperf):
    m = tunable.load(mlperf["resnet8"])
    s, plain = m.session(), m.session()
    rng = np.random.default_rng(6)
    for _ in range(10):
        x = random_input(m.inputs[0], rng)
        # ten classes and the default m = 10: every row completed, the exact layer
        s.set_knobs(aip=1 / 16)
        np.testing.assert_array_equal(s.run(x), plain.run(x))
        s.set_knobs(aip=1 / 16, aip_topm=3)
        y = s.run(x).reshape(-1)
        fc = s.stats.layer("fc_1").counters
        assert fc["outputs_skipped"] == 7
        assert fc["weight_bytes"] == 10 * 4 + 3 * 60  # 64 columns: 4 previewed, the 3 completed rows in full
