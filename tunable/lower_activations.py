"""Lowerings of the activation, reduction and conversion ops (SOFTMAX, LOGISTIC, HARD_SWISH, MEAN, MUL,
RELU, RELU6, RELU_N1_TO_1, QUANTIZE, DEQUANTIZE). Placeholder: each raises until ported."""
from __future__ import annotations
