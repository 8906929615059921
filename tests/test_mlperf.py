"""The four MLPerf Tiny models: bit-exact with TFLite Micro, top-1 equal to LiteRT, ResNet-8's accuracy."""
from __future__ import annotations

import numpy as np
import pytest
from conftest import random_input

import tunable
from tunable.peers import Peer

N_RANDOM = 100


@pytest.fixture(scope="module", params=["resnet8", "vww", "kws", "ad01"])
def case(request, mlperf):
    path = mlperf[request.param]
    return request.param, path, tunable.load(path)


def test_bit_exact_with_tflm_on_random_inputs(case):
    name, path, model = case
    tflm = Peer("tflm", path)
    s = model.session()
    rng = np.random.default_rng(1234)
    differing = 0
    for _ in range(N_RANDOM):
        x = random_input(model.inputs[0], rng)
        differing += int(np.count_nonzero(s.run(x) != tflm.run(x)))
    assert differing == 0, f"{name}: {differing} output elements differ from TFLite Micro over {N_RANDOM} inputs"


def test_reference_kernels_bit_exact_with_tflm(case, reference_kernels):
    name, path, model = case
    tflm = Peer("tflm", path)
    s = model.session()
    rng = np.random.default_rng(99)
    for _ in range(10):
        x = random_input(model.inputs[0], rng)
        np.testing.assert_array_equal(s.run(x), tflm.run(x))


def test_top1_agrees_with_litert(case):
    """LiteRT's BUILTIN_REF kernels round as TFLM does (bar per-channel FC in float64): top-1 must agree on
    every input. LiteRT's optimized builtin kernels round negative ties differently (int8-arithmetic.md);
    on ResNet-8 those +-1 steps compound to different classes on about 1 % of inputs, so for them the test
    holds agreement to >= 95 % and the README reports the measured figure."""
    name, path, model = case
    s = model.session()
    ref, builtin = Peer("litert-ref", path), Peer("litert-builtin", path)
    rng = np.random.default_rng(7)
    agree_builtin = 0
    for i in range(N_RANDOM):
        x = random_input(model.inputs[0], rng)
        ours = s.run(x).reshape(-1)
        if name == "ad01":  # an autoencoder: no class. BUILTIN_REF rounds per-channel FC in float64 (+-1 per
            # layer), which compounds over its ten FC layers: measured at most 3 over 300 random inputs
            assert np.max(np.abs(ours.astype(int) - ref.run(x).reshape(-1).astype(int))) <= 4
            continue
        theirs = ref.run(x).reshape(-1)
        assert ours[np.argmax(theirs)] == ours.max(), f"{name}: input {i}: top-1 differs from LiteRT BUILTIN_REF"
        b = builtin.run(x).reshape(-1)
        agree_builtin += int(ours[np.argmax(b)] == ours.max())
    if name != "ad01":
        assert agree_builtin >= 0.95 * N_RANDOM, f"{name}: top-1 agrees with LiteRT builtin on {agree_builtin}"


def test_counters_equal_analytic_counts(case):
    name, path, model = case
    s = model.session()
    s.run(np.zeros(model.inputs[0].shape, model.inputs[0].dtype))
    for layer, st in zip(model.layers, s.stats.layers):
        assert st.counters["macs"] == layer.macs, layer.name
        if layer.op in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"):
            out = int(np.prod(layer.output_shape))
            assert st.counters["requant_ops"] == out
            assert st.counters["outputs_skipped"] == 0
            assert st.counters["weight_bytes"] == layer.param_bytes - 4 * int(layer.output_shape[-1])


def test_resnet8_cifar10_accuracy(mlperf, shared):
    """Bit-exact with TFLM, so the same accuracy as TFLM: 88.0 % on test_first1000; LiteRT's default path
    (87.8 %, the figure in shared/README.md) and its builtin kernels (87.7 %) round differently."""
    data = np.load(shared / "data" / "cifar10" / "test_first1000.npz")
    x = (data["x"].astype(np.int16) - 128).astype(np.int8)  # int8 = pixel - 128 (scale 1, zero point -128)
    y = data["y"].astype(int)
    model = tunable.load(mlperf["resnet8"])
    s = model.session()
    tflm, litert = Peer("tflm", mlperf["resnet8"]), Peer("litert-default", mlperf["resnet8"])
    ours = np.stack([s.run(xi[None])[0] for xi in x])
    np.testing.assert_array_equal(ours, np.stack([tflm.run(xi[None])[0] for xi in x]))
    acc = float(np.mean(ours.argmax(1) == y))
    acc_litert = float(np.mean(np.array([np.argmax(litert.run(xi[None])) for xi in x]) == y))
    assert acc == pytest.approx(0.880, abs=1e-9)
    assert acc_litert == pytest.approx(0.878, abs=1e-9)
