"""Quantization arithmetic done at compile time, in float64 exactly as TFLite does it."""
from __future__ import annotations

import math

import numpy as np

INT8_MIN, INT8_MAX = -128, 127


def round_half_away(x: float) -> int:
    return int(math.floor(abs(x) + 0.5)) * (1 if x >= 0 else -1)


def quantize_multiplier(real: float) -> tuple[int, int]:
    """TFLite QuantizeMultiplier: real = M * 2^(shift - 31), M in [2^30, 2^31)."""
    if real == 0.0:
        return 0, 0
    q, shift = math.frexp(real)
    m = round_half_away(q * (1 << 31))
    if m == (1 << 31):
        m //= 2
        shift += 1
    if shift < -31:
        return 0, 0
    if shift > 30:
        raise OverflowError(f"multiplier {real} is too large to quantize")
    return int(m), int(shift)


def quantize_multipliers(reals) -> tuple[np.ndarray, np.ndarray]:
    pairs = [quantize_multiplier(float(r)) for r in np.asarray(reals, dtype=np.float64).ravel()]
    return (np.array([p[0] for p in pairs], dtype=np.int32), np.array([p[1] for p in pairs], dtype=np.int32))


def quantize_value(x: float, scale: float, zp: int) -> int:
    # TFLite divides in float32 (both operands are float there)
    return zp + round_half_away(float(np.float32(x) / np.float32(scale)))


def activation_range(fused: str, scale: float, zp: int, qmin: int = INT8_MIN, qmax: int = INT8_MAX) -> tuple[int, int]:
    """CalculateActivationRangeQuantized for a fused activation name (NONE, RELU, RELU6, RELU_N1_TO_1)."""
    if fused in ("NONE", None):
        return qmin, qmax
    if fused == "RELU":
        return max(qmin, zp), qmax
    if fused == "RELU6":
        return max(qmin, zp), min(qmax, quantize_value(6.0, scale, zp))
    if fused == "RELU_N1_TO_1":
        return max(qmin, quantize_value(-1.0, scale, zp)), min(qmax, quantize_value(1.0, scale, zp))
    raise ValueError(f"fused activation {fused} is not supported")
