"""The project's own trained int8 models (models/*.tflite; recipes and measured numbers in models/<name>/):
they have the promised interface and op set, run in this engine bit-identically to TFLite Micro, reach the
accuracy their README and manifest entry state, and keep the knob savings they were trained for."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import tunable
from tunable.data import read_mnist

REPO = Path(__file__).resolve().parents[1]
LENET = REPO / "models" / "lenet5_mnist_int8.tflite"
ALLOWED_OPS = {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "ADD", "MAX_POOL_2D", "AVERAGE_POOL_2D", "MEAN",
               "RESHAPE", "SOFTMAX"}

# Measured with this engine (= TFLM) and stated in models/lenet5/README.md. The margin absorbs a deliberate,
# documented change of rounding, not a broken model or kernel.
LENET_TOP1_FIRST1000 = 0.986
LENET_TOP1_TEST10K = 0.9902
MARGIN = 0.005


def _ops(path: Path) -> list[str]:
    import tflite
    m = tflite.Model.GetRootAsModel(path.read_bytes(), 0)
    names = {v: k for k, v in tflite.BuiltinOperator.__dict__.items() if not k.startswith("_")}
    g = m.Subgraphs(0)
    out = []
    for i in range(g.OperatorsLength()):
        oc = m.OperatorCodes(g.Operators(i).OpcodeIndex())
        out.append(names[max(oc.BuiltinCode(), oc.DeprecatedBuiltinCode())])
    return out


def _tflm(path: Path, xq: np.ndarray) -> np.ndarray:
    from tflite_micro import runtime
    it = runtime.Interpreter.from_file(str(path), arena_size=1 << 20)
    shape = tuple(it.get_input_details(0)["shape"])
    out = []
    for x in xq:
        it.set_input(x.reshape(shape), 0)
        it.invoke()
        out.append(it.get_output(0).reshape(-1).copy())
    return np.stack(out)


def _engine(s: tunable.Session, xq: np.ndarray) -> np.ndarray:
    shape = s.model.inputs[0].shape
    return np.stack([np.asarray(s.run(x.reshape(shape))).reshape(-1) for x in xq])


@pytest.fixture(scope="module")
def mnist(shared):
    """First 1000 test images and labels, and the last 500 training images (calibration), as the model's int8
    input: float preprocessing pixel / 255, quantized with scale 1/255 and zero point -128."""
    m = tunable.load(LENET)
    x, y = read_mnist(shared / "data" / "mnist", "test")
    xt, _ = read_mnist(shared / "data" / "mnist", "train")
    q = m.inputs[0].quantize
    return q(x[:1000] / 255.0), y[:1000], q(xt[-500:] / 255.0)


def test_lenet5_interface_and_ops():
    assert LENET.exists(), f"bundled model missing: {LENET}"
    ops = _ops(LENET)
    assert set(ops) <= ALLOWED_OPS, f"ops outside the bundled-model contract: {set(ops) - ALLOWED_OPS}"
    assert ops.count("CONV_2D") == 2 and ops.count("FULLY_CONNECTED") == 3 and ops[-1] == "SOFTMAX"
    m = tunable.load(LENET)
    (inp,), (out,) = m.inputs, m.outputs
    assert inp.shape == (1, 28, 28, 1) and inp.dtype == np.int8
    assert inp.zero_point == -128 and inp.scale == pytest.approx(1 / 255, rel=1e-6)
    assert out.shape == (1, 10) and out.dtype == np.int8
    # preprocessing pixel/255 then quantization is exactly int8 = pixel - 128
    px = np.arange(256, dtype=np.uint8)
    assert np.array_equal(inp.quantize(px / 255.0), (px.astype(np.int16) - 128).astype(np.int8))


def test_lenet5_accuracy_and_bit_identical_to_tflm(mnist):
    xq, y, _ = mnist
    got = _engine(tunable.load(LENET).session(), xq)
    ref = _tflm(LENET, xq)
    assert np.array_equal(got, ref), f"{int(np.sum(np.any(got != ref, axis=1)))} of 1000 outputs differ from TFLM"
    top1 = float(np.mean(np.argmax(got, axis=1) == y))
    assert top1 >= LENET_TOP1_FIRST1000 - MARGIN, f"top-1 {top1:.4f} on the first 1000 MNIST test images"


def _fc_weight_bytes_and_top1(s: tunable.Session, xq, y) -> tuple[float, float]:
    shape = s.model.inputs[0].shape
    fcs = {l.name for l in s.model.layers if l.op == "FULLY_CONNECTED"}
    wb, ok = 0, 0
    for x, label in zip(xq, y):
        ok += int(np.argmax(np.asarray(s.run(x.reshape(shape)))) == label)
        wb += sum(l.counters["weight_bytes"] for l in s.stats.layers if l.name in fcs)
    return wb / len(y), ok / len(y)


def test_lenet5_aip_saves_fc_weight_bytes_within_one_point(mnist):
    """The model was trained for AIP (preview loss, preview-gated rows, sparse ReLU outputs): with a preview over
    1/8 of the input columns it must fetch at most 35 % of the FC weight bytes for at most 1 point of top-1
    (measured: 69.3 % saved, -0.5 point on these images; 70.3 %, -0.49 point on all 10k)."""
    xq, y, calib = mnist
    s = tunable.load(LENET, calibration=calib).session()
    wb0, top0 = _fc_weight_bytes_and_top1(s, xq, y)
    s.set_knobs(aip=1 / 8)
    wb, top = _fc_weight_bytes_and_top1(s, xq, y)
    saved = 1 - wb / wb0
    assert saved >= 0.65, f"AIP f=1/8 saved only {saved:.1%} of the FC weight bytes"
    assert top0 - top <= 0.01, f"AIP f=1/8 cost {100 * (top0 - top):.2f} points ({top0:.4f} -> {top:.4f})"


def test_lenet5_lut_kw8_within_one_point(mnist):
    """Every conv/FC layer on an 8-level weight codebook (K_w=8, activations as they are) costs at most 1 point
    (measured: -0.13 point on all 10k test images)."""
    from tunable.evaluate import load_model
    xq, y, calib = mnist
    m = load_model(LENET, calib, lut=[(8, 256)])
    s = m.session()
    layers = [l.name for l in m.layers if l.op in ("CONV_2D", "FULLY_CONNECTED")]
    top0 = float(np.mean(np.argmax(_engine(s, xq), axis=1) == y))
    s.set_knobs(lut={name: (8, 256) for name in layers})
    top = float(np.mean(np.argmax(_engine(s, xq), axis=1) == y))
    assert top0 - top <= 0.01, f"lut K_w=8 cost {100 * (top0 - top):.2f} points ({top0:.4f} -> {top:.4f})"


# ---------------------------------------------------------------------------------- ResNet-8, CIFAR-10

RESNET = REPO / "models" / "resnet8_cifar10_drowsy_int8.tflite"
RESNET_TOP1_TEST1000 = 0.704  # models/cifar10/README.md (TFLM = engine)


@pytest.fixture(scope="module")
def cifar(shared):
    """test_first1000 as the model's int8 input (float = raw pixel 0..255, scale 1, zero point -128), and 200
    calibration images from train_first4000."""
    with np.load(shared / "data" / "cifar10" / "test_first1000.npz") as z:
        x, y = z["x"], z["y"].astype(np.int64)
    with np.load(shared / "data" / "cifar10" / "train_first4000.npz") as z:
        cal = z["x"][:200]
    q = tunable.load(RESNET).inputs[0].quantize
    return q(x.astype(np.float64)), y, q(cal.astype(np.float64))


def test_resnet8_interface_and_ops():
    assert RESNET.exists(), f"bundled model missing: {RESNET}"
    ops = _ops(RESNET)
    assert set(ops) <= ALLOWED_OPS, f"ops outside the bundled-model contract: {set(ops) - ALLOWED_OPS}"
    assert ops.count("CONV_2D") == 9 and ops.count("ADD") == 3 and ops[-1] == "SOFTMAX"
    m = tunable.load(RESNET)
    (inp,), (out,) = m.inputs, m.outputs
    assert inp.shape == (1, 32, 32, 3) and inp.dtype == np.int8
    assert inp.scale == 1.0 and inp.zero_point == -128
    assert out.shape == (1, 10) and out.dtype == np.int8


def test_resnet8_accuracy_and_bit_identical_to_tflm(cifar):
    xq, y, _ = cifar
    got = _engine(tunable.load(RESNET).session(), xq)
    ref = _tflm(RESNET, xq[:200])  # TFLM is ~20x slower than the engine: 200 images suffice for bit-identity
    assert np.array_equal(got[:200], ref), f"{int(np.sum(np.any(got[:200] != ref, axis=1)))} of 200 outputs differ"
    top1 = float(np.mean(np.argmax(got, axis=1) == y))
    assert top1 >= RESNET_TOP1_TEST1000 - MARGIN, f"top-1 {top1:.4f} on CIFAR-10 test_first1000"


def test_resnet8_drowsy_degrades_gracefully(cifar):
    """Trained with inverted conv-output dropout: random element drowsy at 0.2 with rescale saves 20 % of the conv
    MACs for at most 2 points (measured: -1.0 point). The MLPerf ResNet-8 loses ~60 points there."""
    xq, y, calib = cifar
    s = tunable.load(RESNET, calibration=calib).session()
    shape = s.model.inputs[0].shape
    convs = {l.name for l in s.model.layers if l.op == "CONV_2D"}

    def run() -> tuple[float, float]:
        ok, macs = 0, 0
        for i, (x, label) in enumerate(zip(xq, y)):
            s.set_seed(i)
            ok += int(np.argmax(np.asarray(s.run(x.reshape(shape)))) == label)
            macs += sum(l.counters["macs"] for l in s.stats.layers if l.name in convs)
        return ok / len(y), macs / len(y)

    top0, macs0 = run()
    s.set_knobs(drowsy=0.2, drowsy_granularity="element", drowsy_rescale=True)
    top, macs = run()
    assert 1 - macs / macs0 >= 0.195, f"drowsy 0.2 saved {1 - macs / macs0:.1%} of conv MACs"
    assert top0 - top <= 0.02, f"drowsy 0.2 (rescaled) cost {100 * (top0 - top):.1f} points ({top0:.3f} -> {top:.3f})"
