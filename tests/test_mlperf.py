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


def test_top1_agrees_with_litert_builtin(case):
    name, path, model = case
    if name == "ad01":  # an autoencoder: no class to agree on; compare values within LiteRT's rounding
        litert = Peer("litert-builtin", path)
        s = model.session()
        rng = np.random.default_rng(5)
        for _ in range(20):
            x = random_input(model.inputs[0], rng)
            assert np.max(np.abs(s.run(x).astype(int) - litert.run(x).astype(int))) <= 1
        return
    litert = Peer("litert-builtin", path)
    s = model.session()
    rng = np.random.default_rng(7)
    for i in range(N_RANDOM):
        x = random_input(model.inputs[0], rng)
        ours, theirs = s.run(x), litert.run(x)
        assert np.argmax(ours) == np.argmax(theirs) or ours.max() == ours.reshape(-1)[np.argmax(theirs)], \
            f"{name}: input {i}: top-1 {np.argmax(ours)} vs LiteRT {np.argmax(theirs)}"


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


def test_resnet8_cifar10_accuracy_equals_litert(mlperf, shared):
    data = np.load(shared / "data" / "cifar10" / "test_first1000.npz")
    x = (data["x"].astype(np.int16) - 128).astype(np.int8)  # int8 = pixel - 128 (scale 1, zero point -128)
    y = data["y"].astype(int)
    model = tunable.load(mlperf["resnet8"])
    s = model.session()
    litert = Peer("litert-builtin", mlperf["resnet8"])
    ours = np.array([np.argmax(s.run(xi[None])) for xi in x])
    theirs = np.array([np.argmax(litert.run(xi[None])) for xi in x])
    acc = float(np.mean(ours == y))
    assert acc == pytest.approx(0.878, abs=1e-9), f"top-1 {acc:.3f}"
    assert float(np.mean(theirs == y)) == acc
