"""Per-op oracle tests: every model in tests/models/ops/ (made by tests/models/gen_op_models.py) gives
exactly the oracle's output on seeded random inputs, with the automatic kernels and with the portable
reference kernels. The oracle is TFLite Micro, or LiteRT's reference kernels (BUILTIN_REF) for the legacy
uint8 models TFLite Micro refuses. Also: broken op parameters give a typed tunable error, not a crash."""
from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from tflite_edit import edit

import tunable
from tunable import planspec as ps
from tunable.errors import PlanError, UnsupportedModelError
from tunable.plan import PlanOp, PlanTensor, plan_arena, serialize
from tunable.tflite_reader import read_tflite

OPS_DIR = Path(__file__).resolve().parent / "models" / "ops"
MANIFEST = json.loads((OPS_DIR / "ops.json").read_text())
N_INPUTS = 10


def _random(info, rng: np.random.Generator) -> np.ndarray:
    if info.dtype == np.float32:
        # beyond the calibration range too, so QUANTIZE saturates on some elements
        return rng.normal(0.0, 1.5, size=info.shape).astype(np.float32)
    ii = np.iinfo(info.dtype)
    return rng.integers(ii.min, ii.max + 1, size=info.shape).astype(info.dtype)


class Oracle:
    """TFLite Micro, or LiteRT with its reference kernels; any number of inputs and outputs."""

    def __init__(self, kind: str, path: Path):
        if kind == "tflm":
            from tflite_micro import runtime
            self._it = runtime.Interpreter.from_file(str(path), arena_size=1 << 20)
        else:
            from ai_edge_litert.interpreter import Interpreter, OpResolverType
            self._it = Interpreter(model_path=str(path), experimental_op_resolver_type=OpResolverType.BUILTIN_REF)
            self._it.allocate_tensors()
        self.kind = kind

    def run(self, xs: list[np.ndarray], n_out: int) -> list[np.ndarray]:
        it = self._it
        if self.kind == "tflm":
            for i, x in enumerate(xs):
                it.set_input(x, i)
            it.invoke()
            return [np.array(it.get_output(i)) for i in range(n_out)]
        for d, x in zip(it.get_input_details(), xs):
            it.set_tensor(d["index"], x)
        it.invoke()
        return [np.array(it.get_tensor(d["index"])) for d in it.get_output_details()[:n_out]]


def _differing(ours: np.ndarray, theirs: np.ndarray) -> int:
    assert ours.dtype == theirs.dtype and ours.size == theirs.size, (ours.dtype, theirs.dtype, ours.shape, theirs.shape)
    if ours.dtype == np.float32:  # DEQUANTIZE outputs: the same float bits
        return int(np.count_nonzero(ours.reshape(-1).view(np.int32) != theirs.reshape(-1).view(np.int32)))
    return int(np.count_nonzero(ours.reshape(-1) != theirs.reshape(-1)))


def _check_model(name: str) -> None:
    meta = MANIFEST[name]
    path = OPS_DIR / f"{name}.tflite"
    model = tunable.load(path)
    oracle = Oracle(meta["oracle"], path)
    s = model.session()
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    differing = total = 0
    for _ in range(N_INPUTS):
        xs = [_random(t, rng) for t in model.inputs]
        ours = s.run(*xs)
        ours = ours if isinstance(ours, list) else [ours]
        theirs = oracle.run(xs, len(ours))
        for o, t in zip(ours, theirs):
            differing += _differing(o, t)
            total += o.size
    assert differing == 0, f"{name}: {differing} of {total} output elements differ from {meta['oracle']}"


@pytest.mark.parametrize("name", sorted(MANIFEST))
def test_op_model_bit_exact(name):
    _check_model(name)


@pytest.mark.parametrize("name", sorted(MANIFEST))
def test_op_model_bit_exact_reference_kernels(name, reference_kernels):
    _check_model(name)


def test_models_present_and_small():
    files = sorted(p.stem for p in OPS_DIR.glob("*.tflite"))
    assert files == sorted(MANIFEST), "tests/models/ops/ and its ops.json disagree: rerun gen_op_models.py"
    assert sum(p.stat().st_size for p in OPS_DIR.glob("*.tflite")) < 2_000_000


@pytest.mark.parametrize("name", sorted(MANIFEST))
def test_op_model_contains_its_op(name):
    ops = {o.opname for o in read_tflite(OPS_DIR / f"{name}.tflite").ops}
    assert MANIFEST[name]["expect"] in ops, f"{name} no longer contains {MANIFEST[name]['expect']}: {sorted(ops)}"


def test_every_engine_op_is_covered():
    """Each op the plan format defines runs in at least one oracle-checked model."""
    seen = set()
    for name in MANIFEST:
        seen |= {layer.op for layer in tunable.load(OPS_DIR / f"{name}.tflite").layers}
    assert set(ps.OPS) <= seen, f"no op model exercises {sorted(set(ps.OPS) - seen)}"


def test_every_tflite_op_is_covered():
    wanted = {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "ADD", "MUL", "AVERAGE_POOL_2D", "MAX_POOL_2D",
              "MEAN", "PAD", "RESHAPE", "SQUEEZE", "CONCATENATION", "SOFTMAX", "LOGISTIC", "RELU", "RELU6",
              "HARD_SWISH", "QUANTIZE", "DEQUANTIZE", "RELU_N1_TO_1"}
    seen = set()
    for meta in MANIFEST.values():
        seen |= set(meta["ops"])
    assert wanted <= seen, f"missing {sorted(wanted - seen)}"
    assert any(m["oracle"] == "litert-ref" for m in MANIFEST.values()), "no legacy uint8 model"


# ------------------------------------------------------------------ broken parameters: typed errors

def _plan_with(opname: str, params: dict, x=("int8", (1, 4, 4, 3)), y=("int8", (1, 4, 4, 3)), extra_inputs=()):
    tensors = [PlanTensor("x", x[0], x[1], 0.05, 0), PlanTensor("y", y[0], y[1], 0.05, 0)]
    ins = [0]
    for dtype, shape in extra_inputs:
        tensors.append(PlanTensor(f"in{len(tensors)}", dtype, shape, 0.05, 0))
        ins.append(len(tensors) - 1)
    ops = [PlanOp(opname, ins, [1], params, f"{opname.lower()}_1", 0)]
    inputs = [0] + ins[1:]
    plan_arena(tensors, ops, inputs, [1])
    return serialize(tensors, ops, inputs, [1])


GOOD = {
    "SOFTMAX": dict(in_mult=1 << 30, in_left_shift=20, diff_min=-(31 << 6)),
    "LOGISTIC": dict(in_zp=0, in_range_radius=100, in_mult=1 << 30, in_left_shift=20),
    "RELU": dict(in_zp=0, out_zp=0, mult=1 << 30, shift=1, act_min=0, act_max=127),
    "CLAMP": dict(lo=0, hi=100),
    "HARD_SWISH": dict(in_zp=0, out_zp=0, reluish_mult=20000, reluish_exp=2, out_mult=16384, out_exp=-6),
    "MEAN": dict(in_zp=0, out_zp=0, mult=1 << 30, shift=0, axes=0b0110),
    "MUL": dict(a_zp=0, b_zp=0, out_zp=0, out_mult=1 << 30, out_shift=-3, act_min=-128, act_max=127),
}


def _shapes(opname):
    if opname == "MEAN":
        return dict(y=("int8", (1, 3)))
    if opname == "MUL":
        return dict(extra_inputs=[("int8", (1, 1, 1, 3))])
    return {}


@pytest.mark.parametrize("opname", sorted(GOOD))
def test_good_params_load_and_run(opname):
    m = tunable.session.Model(_plan_with(opname, GOOD[opname], **_shapes(opname)), f"<{opname}>")
    xs = [np.zeros(t.shape, t.dtype) for t in m.inputs]
    m.session().run(*xs)


BAD = [
    ("SOFTMAX", dict(in_left_shift=40), "in_left_shift"),
    ("SOFTMAX", dict(in_mult=5), "in_mult"),
    ("SOFTMAX", dict(diff_min=-(1 << 30)), "diff_min"),
    ("LOGISTIC", dict(in_range_radius=1 << 30), "in_range_radius"),
    ("LOGISTIC", dict(in_left_shift=-3), "in_left_shift"),
    ("RELU", dict(act_min=50, act_max=10), "activation range"),
    ("RELU", dict(shift=45), "shift"),
    ("CLAMP", dict(lo=-200), "activation range"),
    ("HARD_SWISH", dict(out_exp=3), "out_exp"),
    ("HARD_SWISH", dict(reluish_mult=70000), "reluish_mult"),
    ("MEAN", dict(axes=0), "axes"),
    ("MEAN", dict(axes=0b0001, in_zp=0), "elements"),
    ("MUL", dict(out_shift=40), "out_shift"),
    ("MUL", dict(a_zp=300), "a zero point"),
]


@pytest.mark.parametrize("opname,change,what", BAD, ids=[f"{o}-{w}" for o, _, w in BAD])
def test_bad_params_raise_plan_error(opname, change, what):
    params = dict(GOOD[opname], **change)
    with pytest.raises(PlanError, match=rf"op 0 \({opname.lower()}_1\): .*{what}"):
        tunable.session.Model(_plan_with(opname, params, **_shapes(opname)), f"<{opname}>")


def test_bad_quantize_dequantize_plans():
    nan_bits = struct.unpack("<i", struct.pack("<f", float("nan")))[0]
    with pytest.raises(PlanError, match="quantize_1.*output scale"):
        tunable.session.Model(_plan_with("QUANTIZE", dict(out_zp=0, scale_bits=nan_bits), x=("float32", (1, 8)),
                                         y=("int8", (1, 8))))
    with pytest.raises(PlanError, match="quantize_1.*out_zp"):
        tunable.session.Model(_plan_with("QUANTIZE", dict(out_zp=-5, scale_bits=0x3D4CCCCD), x=("float32", (1, 8)),
                                         y=("uint8", (1, 8))))
    with pytest.raises(PlanError, match="dequantize_1.*float32"):
        tunable.session.Model(_plan_with("DEQUANTIZE", dict(in_zp=0, scale_bits=0x3D4CCCCD)))
    with pytest.raises(PlanError, match="softmax_1.*float32, expected int8"):
        tunable.session.Model(_plan_with("SOFTMAX", GOOD["SOFTMAX"], x=("float32", (1, 4, 4, 3))))


def _load_edited(tmp_path, name, fn):
    p = tmp_path / f"{name}.tflite"
    p.write_bytes(edit(OPS_DIR / f"{name}.tflite", fn))
    return tunable.load(p, cache=False)


def _op_output(m, opname):
    import tflite_micro.tensorflow.lite.micro.python.schema_py_generated as S
    code = getattr(S.BuiltinOperator, opname)
    for op in m.subgraphs[0].operators:
        c = m.operatorCodes[op.opcodeIndex]
        if max(c.builtinCode, c.deprecatedBuiltinCode) == code:
            return m.subgraphs[0].tensors[op.outputs[0]]
    raise AssertionError(opname)


def test_softmax_output_quantization_checked(tmp_path):
    def zp0(m):
        _op_output(m, "SOFTMAX").quantization.zeroPoint = [0]
    with pytest.raises(UnsupportedModelError, match=r"node 0 \(SOFTMAX\).*scale 1/256 and zero point -128"):
        _load_edited(tmp_path, "softmax_10", zp0)


def test_logistic_output_zero_point_checked(tmp_path):
    def zp5(m):
        _op_output(m, "LOGISTIC").quantization.zeroPoint = [5]
    with pytest.raises(UnsupportedModelError, match=r"\(LOGISTIC\).*zero point 5"):
        _load_edited(tmp_path, "logistic", zp5)


def test_mean_axis_out_of_range(tmp_path):
    def bad_axis(m):
        sg = m.subgraphs[0]
        axes = sg.tensors[sg.operators[0].inputs[1]]
        m.buffers[axes.buffer].data = np.array([1, 7], "<i4").view(np.uint8)
    with pytest.raises(UnsupportedModelError, match=r"\(MEAN\).*axis 7"):
        _load_edited(tmp_path, "mean_hw", bad_axis)


def test_hard_swish_scale_ratio_checked(tmp_path):
    def tiny_out_scale(m):
        _op_output(m, "HARD_SWISH").quantization.scale = [1e-6]
    with pytest.raises(UnsupportedModelError, match=r"\(HARD_SWISH\)"):
        _load_edited(tmp_path, "hard_swish", tiny_out_scale)
