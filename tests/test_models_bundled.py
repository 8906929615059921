"""The project's own trained int8 models (models/*.tflite, recipes in models/<name>/train.py): they load, run in
this engine bit-identically to TFLite Micro, and reach the accuracy their README and manifest entry state."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import tunable
from tunable.data import read_mnist

REPO = Path(__file__).resolve().parents[1]
LENET = REPO / "models" / "lenet5_mnist_int8.tflite"
RESNET = REPO / "models" / "resnet8_cifar10_drowsy_int8.tflite"
ALLOWED_OPS = {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "ADD", "MAX_POOL_2D", "AVERAGE_POOL_2D", "MEAN",
               "RESHAPE", "SOFTMAX"}

# Measured with this engine (models/lenet5/README.md, models/cifar10/README.md); the assertions allow a small
# margin so that a deliberate, documented change of rounding does not fail them, but a broken model does.
LENET_TOP1_FIRST1000 = 0.0  # filled in below from the README table; see _stated()
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


def _engine(m: tunable.Model, xq: np.ndarray) -> np.ndarray:
    s = m.session()
    return np.stack([np.asarray(s.run(x.reshape(m.inputs[0].shape))).reshape(-1) for x in xq])


@pytest.fixture(scope="module")
def mnist_first1000(shared):
    x, y = read_mnist(shared / "data" / "mnist", "test")
    return x[:1000], y[:1000]


@pytest.fixture(scope="module")
def cifar_first1000(shared):
    with np.load(shared / "data" / "cifar10" / "test_first1000.npz") as z:
        return z["x"], z["y"].astype(np.int64)
