"""Lowerings of the activation, reduction and conversion ops (SOFTMAX, LOGISTIC, HARD_SWISH, MEAN, MUL,
RELU, RELU6, RELU_N1_TO_1, QUANTIZE, DEQUANTIZE).

Each one replicates the Prepare step of TFLite Micro's kernel of the same name, with TFLite's arithmetic:
scales are float32 values, promoted to double where the C++ code promotes them and divided in float32 where
it divides floats. The C kernels (runtime_c/src/softmax.c, elementwise.c, reduce.c) then only run the
integer arithmetic.
"""
from __future__ import annotations

import math
import struct

import numpy as np

from .compiler import Lowering, lowering
from .graph import Op
from .quant import INT8_MAX, INT8_MIN, quantize_multiplier, round_half_away

F32 = np.float32


def _f32_bits(x: float) -> int:
    """The bits of a float32 as a signed int32 (plan params are int32)."""
    return struct.unpack("<i", struct.pack("<f", float(x)))[0]


def _quantize_multiplier(lw: Lowering, op: Op, real: float, what: str) -> tuple[int, int]:
    try:
        return quantize_multiplier(real)
    except OverflowError:
        raise lw.fail(op, f"{what} multiplier {real:g} is too large to represent") from None


def _io(lw: Lowering, op: Op) -> tuple[int, int]:
    if not op.inputs or not op.outputs:
        raise lw.fail(op, "needs one input and one output")
    return op.inputs[0], op.outputs[0]


def _same_shape(lw: Lowering, op: Op, xi: int, yi: int) -> None:
    x, y = lw.gt(xi), lw.gt(yi)
    if int(np.prod(x.shape, dtype=np.int64)) != int(np.prod(y.shape, dtype=np.int64)):
        raise lw.fail(op, f"input '{x.name}' {list(x.shape)} and output '{y.name}' {list(y.shape)} differ in size")


def _round_f32_div(value: float, scale: float) -> int:
    """roundf(value / scale) with a float32 division, as TFLite's activation ranges compute it."""
    return round_half_away(float(F32(value) / F32(scale)))


def _legacy_uint8(lw: Lowering) -> bool:
    """True for a legacy uint8 model (compile_graph marks it before shifting it to int8). Its oracle is
    LiteRT's reference kernels rather than TFLite Micro, which refuses such models."""
    return bool(getattr(lw, "legacy_uint8", False))


# ------------------------------------------------------------------ SOFTMAX, LOGISTIC

@lowering("SOFTMAX")
def _softmax(lw: Lowering, op: Op) -> None:
    xi, yi = _io(lw, op)
    lw.require_int8(op, xi, yi)
    x, y = lw.gt(xi), lw.gt(yi)
    _same_shape(lw, op, xi, yi)
    # TFLM's int8 -> int8 softmax requires exactly this output quantization (SoftmaxPrepare)
    if y.zp != -128 or F32(y.s) != F32(1.0 / 256):
        raise lw.fail(op, f"output '{y.name}' has scale {y.s:g} and zero point {y.zp}; int8 SOFTMAX needs scale "
                          "1/256 and zero point -128")
    beta = float(op.options.get("beta", 1.0))
    # PreprocessSoftmaxScaling(beta, input_scale, kScaledDiffIntegerBits = 5), all in double
    kbits = 5
    real = min(beta * x.s * float(1 << (31 - kbits)), float((1 << 31) - 1))
    if not real > 1.0:
        raise lw.fail(op, f"beta * input scale = {beta * x.s:g} is too small (TFLite needs it above 2^-26)")
    mult, left_shift = _quantize_multiplier(lw, op, real, "softmax input")
    # CalculateInputRadius(5, left_shift, 31) in double, floored; diff_min is its negation
    radius = math.floor(1.0 * ((1 << kbits) - 1) * float(1 << (31 - kbits)) / float(1 << left_shift))
    lw.emit("SOFTMAX", [lw.t(xi)], [lw.t(yi)], dict(in_mult=mult, in_left_shift=left_shift, diff_min=-radius), op)


@lowering("LOGISTIC")
def _logistic(lw: Lowering, op: Op) -> None:
    xi, yi = _io(lw, op)
    lw.require_int8(op, xi, yi)
    x, y = lw.gt(xi), lw.gt(yi)
    _same_shape(lw, op, xi, yi)
    if y.zp != -128:
        raise lw.fail(op, f"output '{y.name}' has zero point {y.zp}; int8 LOGISTIC needs -128")
    # CalculateArithmeticOpDataLogistic: frexp of input_scale * 2^(31 - 4), rounded without the usual
    # 2^31 correction (a multiplier of 2^31 wraps to INT32_MIN in the C++ cast)
    kbits = 4
    q, shift = math.frexp(x.s * float(1 << (31 - kbits)))
    mult = round_half_away(q * float(1 << 31))
    if mult == 1 << 31:
        mult = -(1 << 31)
    if not 0 <= shift <= 30:
        raise lw.fail(op, f"input scale {x.s:g} is outside the range TFLite's int8 LOGISTIC handles")
    radius = math.floor(1.0 * ((1 << kbits) - 1) * float(1 << (31 - kbits)) / float(1 << shift))
    lw.emit("LOGISTIC", [lw.t(xi)], [lw.t(yi)],
            dict(in_zp=x.zp, in_range_radius=radius, in_mult=mult, in_left_shift=shift), op)


# ------------------------------------------------------------------ RELU family, HARD_SWISH

def _relu_requant(lw: Lowering, op: Op, act_min: float, act_max: float | None) -> None:
    """QuantizedReluX / TFLM's CalculateReluOpData: requantize to the output scale and clamp to the
    quantized [act_min, act_max] computed with roundf(act / output_scale)."""
    xi, yi = _io(lw, op)
    lw.require_int8(op, xi, yi)
    x, y = lw.gt(xi), lw.gt(yi)
    _same_shape(lw, op, xi, yi)
    mult, shift = _quantize_multiplier(lw, op, x.s / y.s, "input/output")
    lo = max(INT8_MIN, y.zp + _round_f32_div(act_min, y.s))
    hi = INT8_MAX if act_max is None else min(INT8_MAX, y.zp + _round_f32_div(act_max, y.s))
    if lo > hi:
        raise lw.fail(op, f"the activation range [{lo}, {hi}] of output '{y.name}' is empty")
    lw.emit("RELU", [lw.t(xi)], [lw.t(yi)],
            dict(in_zp=x.zp, out_zp=y.zp, mult=mult, shift=shift, act_min=lo, act_max=hi), op)


@lowering("RELU")
def _relu(lw: Lowering, op: Op) -> None:
    _relu_requant(lw, op, 0.0, None)


@lowering("RELU_N1_TO_1")
def _relu_n1_to_1(lw: Lowering, op: Op) -> None:
    # TFLite Micro has no RELU_N1_TO_1 kernel; this is LiteRT's (QuantizedReluX with [-1, 1])
    _relu_requant(lw, op, -1.0, 1.0)


@lowering("RELU6")
def _relu6(lw: Lowering, op: Op) -> None:
    xi, yi = _io(lw, op)
    lw.require_int8(op, xi, yi)
    x, y = lw.gt(xi), lw.gt(yi)
    _same_shape(lw, op, xi, yi)
    if (x.s != y.s or x.zp != y.zp) and _legacy_uint8(lw):
        # LiteRT (the oracle of legacy uint8 models) requantizes RELU6 to the output scale
        _relu_requant(lw, op, 0.0, 6.0)
        return
    # TFLM's Relu6Prepare: clamp to [input zero point, FloatToQuantizedType(6.0f)] on the input's scale and
    # copy (the output quantization is assumed equal; TFLM ignores it, and so do we, to stay bit-exact)
    six = min(INT8_MAX, max(INT8_MIN, _round_f32_div(6.0, x.s) + x.zp))
    lw.emit("CLAMP", [lw.t(xi)], [lw.t(yi)], dict(lo=x.zp, hi=six), op)


@lowering("HARD_SWISH")
def _hard_swish(lw: Lowering, op: Op) -> None:
    xi, yi = _io(lw, op)
    lw.require_int8(op, xi, yi)
    x, y = lw.gt(xi), lw.gt(yi)
    _same_shape(lw, op, xi, yi)
    # HardSwishPrepare: the scales are combined in float32, then promoted to double for QuantizeMultiplier
    hires_input_scale = F32(1.0 / 128.0) * F32(x.s)
    reluish_scale = F32(3.0) / F32(32768.0)
    out_mult32, out_exp = _quantize_multiplier(lw, op, float(hires_input_scale / F32(y.s)), "hard-swish output")
    if out_exp > 0:
        raise lw.fail(op, f"input scale {x.s:g} / output scale {y.s:g} is too large for int8 HARD_SWISH")
    rel_mult32, rel_exp = _quantize_multiplier(lw, op, float(hires_input_scale / reluish_scale), "hard-swish reluish")
    lw.emit("HARD_SWISH", [lw.t(xi)], [lw.t(yi)],
            dict(in_zp=x.zp, out_zp=y.zp, reluish_mult=_downscale_int16(rel_mult32), reluish_exp=rel_exp,
                 out_mult=_downscale_int16(out_mult32), out_exp=out_exp), op)


def _downscale_int16(m: int) -> int:
    """DownScaleInt32ToInt16Multiplier: round a Q31 multiplier to Q15."""
    if m >= (1 << 31) - 1 - (1 << 15):
        return (1 << 15) - 1
    return (m + (1 << 15)) >> 16


# ------------------------------------------------------------------ MUL, MEAN

@lowering("MUL")
def _mul(lw: Lowering, op: Op) -> None:
    if len(op.inputs) != 2:
        raise lw.fail(op, f"{len(op.inputs)} inputs, expected 2")
    ai, bi = op.inputs
    yi = op.outputs[0]
    lw.require_int8(op, ai, bi, yi)
    a, b, y = lw.gt(ai), lw.gt(bi), lw.gt(yi)
    for t in (a, b, y):
        if len(t.shape) > 4:
            raise lw.fail(op, f"tensor '{t.name}' has rank {len(t.shape)} > 4")
    mult, shift = _quantize_multiplier(lw, op, a.s * b.s / y.s, "mul output")
    lo, hi = lw.act_range(op, y)
    lw.emit("MUL", [lw.t(ai), lw.t(bi)], [lw.t(yi)],
            dict(a_zp=a.zp, b_zp=b.zp, out_zp=y.zp, out_mult=mult, out_shift=shift, act_min=lo, act_max=hi), op)


@lowering("MEAN")
def _mean(lw: Lowering, op: Op) -> None:
    if len(op.inputs) != 2:
        raise lw.fail(op, f"{len(op.inputs)} inputs, expected the input and the axes")
    xi, ai = op.inputs
    yi = op.outputs[0]
    lw.require_int8(op, xi, yi)
    x, y = lw.gt(xi), lw.gt(yi)
    axes_t = lw.gt(ai)
    if axes_t.data is None:
        raise lw.fail(op, "the axes must be constant")
    rank = len(x.shape)
    if not 1 <= rank <= 4:
        raise lw.fail(op, f"input '{x.name}' has rank {rank}; MEAN supports ranks 1 to 4")
    mask = 0
    for a in np.asarray(axes_t.data).reshape(-1).tolist():
        a = int(a)
        if not -rank <= a < rank:
            raise lw.fail(op, f"axis {a} is outside a rank-{rank} input")
        mask |= 1 << ((a % rank) + 4 - rank)
    if mask == 0:
        raise lw.fail(op, "no axes to reduce")
    kept = [d for i, d in enumerate(x.shape) if not (mask >> (i + 4 - rank)) & 1]
    if int(np.prod(kept, dtype=np.int64)) != int(np.prod(y.shape, dtype=np.int64)):
        raise lw.fail(op, f"output '{y.name}' {list(y.shape)} does not match the reduction of {list(x.shape)}")
    mult, shift = _quantize_multiplier(lw, op, x.s / y.s, "mean input/output")
    lw.emit("MEAN", [lw.t(xi)], [lw.t(yi)], dict(in_zp=x.zp, out_zp=y.zp, mult=mult, shift=shift, axes=mask), op)


# ------------------------------------------------------------------ QUANTIZE, DEQUANTIZE

_QRANGE = {"int8": (-128, 127), "uint8": (0, 255)}


@lowering("QUANTIZE")
def _quantize(lw: Lowering, op: Op) -> None:
    xi, yi = _io(lw, op)
    x, y = lw.gt(xi), lw.gt(yi)
    _same_shape(lw, op, xi, yi)
    if y.dtype not in _QRANGE:
        raise lw.fail(op, f"output '{y.name}' is {y.dtype}; QUANTIZE supports int8 and uint8 outputs")
    if y.scale is None or len(y.scale) != 1:
        raise lw.fail(op, f"output '{y.name}' needs one (per-tensor) scale")
    if x.dtype == "float32":
        # AffineQuantize: round(x / (float)scale) + zero_point
        lw.emit("QUANTIZE", [lw.t(xi)], [lw.t(yi)], dict(out_zp=y.zp, scale_bits=_f32_bits(y.s)), op)
        return
    if x.dtype not in _QRANGE:
        raise lw.fail(op, f"input '{x.name}' is {x.dtype}; QUANTIZE supports float32, int8 and uint8 inputs")
    if x.scale is None:
        raise lw.fail(op, f"input '{x.name}' has no quantization parameters")
    # Requantize with QuantizeMultiplier(in_scale / out_scale) in double
    mult, shift = _quantize_multiplier(lw, op, x.s / y.s, "requantize")
    lw.emit("QUANTIZE", [lw.t(xi)], [lw.t(yi)], dict(in_zp=x.zp, out_zp=y.zp, mult=mult, shift=shift), op)


@lowering("DEQUANTIZE")
def _dequantize(lw: Lowering, op: Op) -> None:
    xi, yi = _io(lw, op)
    x, y = lw.gt(xi), lw.gt(yi)
    _same_shape(lw, op, xi, yi)
    if y.dtype != "float32":
        raise lw.fail(op, f"output '{y.name}' is {y.dtype}; DEQUANTIZE produces float32")
    if x.dtype not in _QRANGE or x.scale is None:
        raise lw.fail(op, f"input '{x.name}' must be a quantized int8 or uint8 tensor (it is {x.dtype})")
    if len(x.scale) != 1:
        raise lw.fail(op, f"input '{x.name}' is quantized per channel; only per-tensor DEQUANTIZE is supported")
    lw.emit("DEQUANTIZE", [lw.t(xi)], [lw.t(yi)], dict(in_zp=x.zp, scale_bits=_f32_bits(x.s)), op)
