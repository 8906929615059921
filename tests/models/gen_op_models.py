"""Generates the per-op test models in tests/models/ops/ (small full-integer .tflite files).

Run with the TensorFlow environment (TensorFlow is a generation-time tool only, never a test dependency):

    /work/tfenv/bin/python tests/models/gen_op_models.py            # all cases
    /work/tfenv/bin/python tests/models/gen_op_models.py conv_ mul  # cases whose name starts with these

Each case is a small TensorFlow function with seeded random weights, converted with TFLiteConverter
(optimizations=DEFAULT, a seeded representative dataset, TFLITE_BUILTINS_INT8, int8 inputs/outputs unless the
case is about float inputs/outputs). The legacy "TF1 quant" uint8 cases are made with a tf.compat.v1 graph of
fake-quant ops and inference_type=uint8. A manifest (ops.json) records, per model, the ops it contains, so
the tests can check that every case still exercises the op it is named for.
"""
from __future__ import annotations

import json
import os
import sys
import zlib
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

OUT = Path(__file__).resolve().parent / "ops"
N_CALIB = 64
CASES: dict[str, dict] = {}


def case(name: str, shapes, *, expect: str, io_in: str = "int8", io_out: str = "int8",
         per_tensor: bool = False, calib_range: float = 1.0, post=None, oracle: str = "tflm"):
    """Registers fn(rng, *inputs) -> output(s); `expect` is the TFLite op the model must contain; io_in/io_out
    the model's input/output type (int8, uint8 or float32); post(model_bytes) -> bytes edits the result;
    oracle: "tflm", or "litert-ref" (LiteRT's reference kernels) for ops TFLite Micro does not have."""
    def deco(fn):
        CASES[name] = dict(fn=fn, shapes=[tuple(s) for s in shapes], expect=expect, io_in=io_in, io_out=io_out,
                           per_tensor=per_tensor, calib_range=calib_range, post=post, oracle=oracle)
        return fn
    return deco


def _rng(name: str) -> np.random.Generator:
    return np.random.default_rng(zlib.crc32(name.encode()))


def w(rng, *shape, scale=None):
    fan_in = int(np.prod(shape[:-1])) or 1
    s = scale if scale is not None else 1.0 / np.sqrt(fan_in)
    return tf.constant(rng.normal(0.0, s, size=shape).astype(np.float32))


def act(y, kind):
    if kind == "RELU":
        return tf.nn.relu(y)
    if kind == "RELU6":
        return tf.nn.relu6(y)
    return y


def conv(rng, x, cout, k, stride=1, padding="SAME", dil=1, fused="NONE", bias=True):
    kh, kw = (k, k) if isinstance(k, int) else k
    sh, sw = (stride, stride) if isinstance(stride, int) else stride
    cin = x.shape[-1]
    y = tf.nn.conv2d(x, w(rng, kh, kw, cin, cout), strides=[1, sh, sw, 1], padding=padding, dilations=[1, dil, dil, 1])
    if bias:
        y = y + w(rng, cout, scale=0.3)
    return act(y, fused)


def dwconv(rng, x, k, mult=1, stride=1, padding="SAME", dil=1, fused="NONE"):
    cin = x.shape[-1]
    y = tf.nn.depthwise_conv2d(x, w(rng, k, k, cin, mult, scale=0.5), strides=[1, stride, stride, 1],
                               padding=padding, dilations=[dil, dil])
    y = y + w(rng, cin * mult, scale=0.3)
    return act(y, fused)


# ------------------------------------------------------------------ CONV_2D

@case("conv_7x9_cin3_k3_same_relu", [(1, 7, 9, 3)], expect="CONV_2D")
def _(rng, x):
    return conv(rng, x, 8, 3, fused="RELU")


@case("conv_11x10_cin1_k3_s2_valid", [(1, 11, 10, 1)], expect="CONV_2D")
def _(rng, x):
    return conv(rng, x, 4, 3, stride=2, padding="VALID")


@case("conv_9x9_cin17_k3_dil2_same_relu6", [(1, 9, 9, 17)], expect="CONV_2D")
def _(rng, x):
    return conv(rng, x, 6, 3, dil=2, fused="RELU6")


@case("conv_5x7_cin17_k1", [(1, 5, 7, 17)], expect="CONV_2D")
def _(rng, x):
    return conv(rng, x, 6, 1)


@case("conv_13x11_cin3_k5_s2_same", [(1, 13, 11, 3)], expect="CONV_2D")
def _(rng, x):
    return conv(rng, x, 5, 5, stride=2)


@case("conv_8x9_cin3_k3x2_s2x1_valid_relu", [(1, 8, 9, 3)], expect="CONV_2D")
def _(rng, x):
    return conv(rng, x, 7, (3, 2), stride=(2, 1), padding="VALID", fused="RELU")


@case("conv_6x6_cin4_k3_same_per_tensor", [(1, 6, 6, 4)], expect="CONV_2D", per_tensor=True)
def _(rng, x):
    return conv(rng, x, 5, 3)


@case("conv_7x7_cin2_k3_dil2_valid_nobias", [(1, 7, 7, 2)], expect="CONV_2D")
def _(rng, x):
    return conv(rng, x, 3, 3, padding="VALID", dil=2, bias=False)


# ------------------------------------------------------------------ DEPTHWISE_CONV_2D

@case("dw_8x8_c5_k3_same_m1", [(1, 8, 8, 5)], expect="DEPTHWISE_CONV_2D")
def _(rng, x):
    return dwconv(rng, x, 3)


@case("dw_9x7_c3_k3_s2_valid_m2", [(1, 9, 7, 3)], expect="DEPTHWISE_CONV_2D")
def _(rng, x):
    return dwconv(rng, x, 3, mult=2, stride=2, padding="VALID")


@case("dw_10x10_c4_k3_dil2_same_relu", [(1, 10, 10, 4)], expect="DEPTHWISE_CONV_2D")
def _(rng, x):
    return dwconv(rng, x, 3, dil=2, fused="RELU")


@case("dw_11x11_c6_k5_s2_same_relu6", [(1, 11, 11, 6)], expect="DEPTHWISE_CONV_2D")
def _(rng, x):
    return dwconv(rng, x, 5, stride=2, fused="RELU6")


@case("dw_6x5_c1_k3_same_m2", [(1, 6, 5, 1)], expect="DEPTHWISE_CONV_2D")
def _(rng, x):
    return dwconv(rng, x, 3, mult=2)


# ------------------------------------------------------------------ FULLY_CONNECTED

@case("fc_37_to_13", [(1, 37)], expect="FULLY_CONNECTED")
def _(rng, x):
    return tf.matmul(x, w(rng, 37, 13)) + w(rng, 13, scale=0.3)


@case("fc_batch3_20_to_7_relu", [(3, 20)], expect="FULLY_CONNECTED")
def _(rng, x):
    return tf.nn.relu(tf.matmul(x, w(rng, 20, 7)) + w(rng, 7, scale=0.3))


@case("fc_nobias_16_to_5", [(1, 16)], expect="FULLY_CONNECTED")
def _(rng, x):
    return tf.matmul(x, w(rng, 16, 5))


@case("fc_keep_num_dims_4x10_to_6", [(1, 4, 10)], expect="FULLY_CONNECTED")
def _(rng, x):
    # a dense layer on a rank-3 input: TFLite keeps the leading dims (keep_num_dims)
    return tf.einsum("bsk,kn->bsn", x, w(rng, 10, 6)) + w(rng, 6, scale=0.3)


@case("fc_from_4d_2x3x4_to_9", [(1, 2, 3, 4)], expect="FULLY_CONNECTED")
def _(rng, x):
    return tf.matmul(tf.reshape(x, [1, 24]), w(rng, 24, 9)) + w(rng, 9, scale=0.3)


# ------------------------------------------------------------------ ADD, MUL

@case("add_same_shape", [(1, 5, 6, 7), (1, 5, 6, 7)], expect="ADD")
def _(rng, a, b):
    return a + 2.0 * b


@case("add_broadcast_channel", [(1, 4, 5, 6), (1, 1, 1, 6)], expect="ADD")
def _(rng, a, b):
    return a + b


@case("add_broadcast_rows_relu", [(1, 4, 5, 3), (1, 4, 1, 3)], expect="ADD")
def _(rng, a, b):
    return tf.nn.relu(a + b)


@case("add_const_vector", [(1, 3, 3, 8)], expect="ADD")
def _(rng, x):
    return x + w(rng, 8, scale=1.0)


@case("mul_same_shape", [(1, 5, 6, 7), (1, 5, 6, 7)], expect="MUL")
def _(rng, a, b):
    return a * b


@case("mul_broadcast_channel", [(1, 4, 5, 6), (1, 1, 1, 6)], expect="MUL")
def _(rng, a, b):
    return a * b


@case("mul_broadcast_2d", [(3, 1, 7), (1, 5, 1)], expect="MUL")
def _(rng, a, b):
    return a * b


@case("mul_const_relu", [(1, 6, 6, 4)], expect="MUL")
def _(rng, x):
    return tf.nn.relu(x * w(rng, 4, scale=2.0))


# ------------------------------------------------------------------ pooling, MEAN

def _pool(x, kind, k, s, padding):
    fn = tf.nn.avg_pool2d if kind == "avg" else tf.nn.max_pool2d
    return fn(x, ksize=k, strides=s, padding=padding)


@case("avgpool_8x8_k2_s2_valid", [(1, 8, 8, 3)], expect="AVERAGE_POOL_2D")
def _(rng, x):
    return _pool(x, "avg", 2, 2, "VALID")


@case("avgpool_9x7_k3_s2_same", [(1, 9, 7, 4)], expect="AVERAGE_POOL_2D")
def _(rng, x):
    return _pool(x, "avg", 3, 2, "SAME")


@case("avgpool_7x9_k2x3_s1x2_same", [(1, 7, 9, 2)], expect="AVERAGE_POOL_2D")
def _(rng, x):
    return _pool(x, "avg", [2, 3], [1, 2], "SAME")


@case("avgpool_global_5x6", [(1, 5, 6, 8)], expect="AVERAGE_POOL_2D")
def _(rng, x):
    return _pool(x, "avg", [5, 6], [5, 6], "VALID")


@case("maxpool_8x8_k2_s2_valid", [(1, 8, 8, 3)], expect="MAX_POOL_2D")
def _(rng, x):
    return _pool(x, "max", 2, 2, "VALID")


@case("maxpool_9x7_k3_s2_same", [(1, 9, 7, 4)], expect="MAX_POOL_2D")
def _(rng, x):
    return _pool(x, "max", 3, 2, "SAME")


@case("maxpool_7x9_k3x2_s2x1_same", [(1, 7, 9, 2)], expect="MAX_POOL_2D")
def _(rng, x):
    return _pool(x, "max", [3, 2], [2, 1], "SAME")


@case("mean_hw", [(1, 5, 7, 6)], expect="MEAN")
def _(rng, x):
    return tf.reduce_mean(x, axis=[1, 2])


@case("mean_hw_keepdims", [(1, 6, 4, 5)], expect="MEAN")
def _(rng, x):
    return tf.reduce_mean(x, axis=[1, 2], keepdims=True)


@case("mean_hw_after_relu", [(1, 8, 8, 3)], expect="MEAN")
def _(rng, x):
    # a different output scale than the input's (the usual case after a conv)
    return tf.reduce_mean(conv(rng, x, 10, 3, fused="RELU"), axis=[1, 2])


@case("mean_channels", [(1, 4, 5, 9)], expect="MEAN")
def _(rng, x):
    return tf.reduce_mean(x, axis=[3])


# ------------------------------------------------------------------ data movement

@case("pad_hw", [(1, 5, 4, 3)], expect="PAD")
def _(rng, x):
    return tf.pad(conv(rng, x, 3, 1), [[0, 0], [1, 2], [2, 1], [0, 0]])


@case("reshape_to_2d", [(1, 4, 3, 5)], expect="RESHAPE")
def _(rng, x):
    return tf.reshape(conv(rng, x, 4, 1), [1, 48])


def _reshape_to_squeeze(buf: bytes) -> bytes:
    """The converter canonicalises tf.squeeze to RESHAPE; rewrite that RESHAPE as the SQUEEZE TFLite also
    defines (squeeze_dims from the shapes), so the engine's SQUEEZE path is exercised."""
    import flatbuffers
    from tensorflow.lite.python import schema_py_generated as S
    m = S.ModelT.InitFromObj(S.Model.GetRootAsModel(buf, 0))
    sg = m.subgraphs[0]
    for op in sg.operators:
        code = m.operatorCodes[op.opcodeIndex]
        if max(code.builtinCode, code.deprecatedBuiltinCode) != S.BuiltinOperator.RESHAPE:
            continue
        src = list(sg.tensors[op.inputs[0]].shape)
        dst = list(sg.tensors[op.outputs[0]].shape)
        dims, j = [], 0
        for i, d in enumerate(src):
            if j < len(dst) and dst[j] == d:
                j += 1
            else:
                assert d == 1, (src, dst)
                dims.append(i)
        new = S.OperatorCodeT()
        new.builtinCode = new.deprecatedBuiltinCode = S.BuiltinOperator.SQUEEZE
        new.version = 1
        m.operatorCodes.append(new)
        op.opcodeIndex = len(m.operatorCodes) - 1
        op.inputs = [op.inputs[0]]
        op.builtinOptionsType = S.BuiltinOptions.SqueezeOptions
        op.builtinOptions = S.SqueezeOptionsT()
        op.builtinOptions.squeezeDims = dims
    b = flatbuffers.Builder(1024)
    b.Finish(m.Pack(b), file_identifier=b"TFL3")
    return bytes(b.Output())


@case("squeeze_hw", [(1, 1, 1, 12)], expect="SQUEEZE", post=_reshape_to_squeeze)
def _(rng, x):
    return tf.squeeze(conv(rng, x, 7, 1), axis=[1, 2])


@case("concat_channels", [(1, 4, 5, 3), (1, 4, 5, 6)], expect="CONCATENATION")
def _(rng, a, b):
    return tf.concat([a, b], axis=3)


@case("concat_three_after_convs", [(1, 5, 5, 4)], expect="CONCATENATION")
def _(rng, x):
    return tf.concat([conv(rng, x, 3, 1), conv(rng, x, 2, 3), x], axis=3)


def _retype_op(src: str, dst: str):
    """A post-edit turning every `src` op into a `dst` op that takes the same single input and has no
    options (e.g. RELU -> QUANTIZE: an int8 -> int8 requantize between RELU's differing scales)."""
    def edit(buf: bytes) -> bytes:
        import flatbuffers
        from tensorflow.lite.python import schema_py_generated as S
        m = S.ModelT.InitFromObj(S.Model.GetRootAsModel(buf, 0))
        new = S.OperatorCodeT()
        new.builtinCode = new.deprecatedBuiltinCode = getattr(S.BuiltinOperator, dst)
        new.version = 1
        m.operatorCodes.append(new)
        for op in m.subgraphs[0].operators:
            code = m.operatorCodes[op.opcodeIndex]
            if max(code.builtinCode, code.deprecatedBuiltinCode) == getattr(S.BuiltinOperator, src):
                op.opcodeIndex = len(m.operatorCodes) - 1
                op.builtinOptionsType, op.builtinOptions = 0, None
        b = flatbuffers.Builder(1024)
        b.Finish(m.Pack(b), file_identifier=b"TFL3")
        return bytes(b.Output())
    return edit


# ------------------------------------------------------------------ activations

@case("softmax_10", [(1, 10)], expect="SOFTMAX", calib_range=4.0)
def _(rng, x):
    return tf.nn.softmax(x)


@case("softmax_batch2_37", [(2, 37)], expect="SOFTMAX", calib_range=8.0)
def _(rng, x):
    return tf.nn.softmax(x)


@case("softmax_4d_channels", [(1, 3, 4, 6)], expect="SOFTMAX", calib_range=2.0)
def _(rng, x):
    return tf.nn.softmax(x, axis=-1)


def _softmax_beta(beta: float):
    """A post-edit setting SOFTMAX's beta (TF folds a scaled softmax into other ops, never into beta)."""
    def edit(buf: bytes) -> bytes:
        import flatbuffers
        from tensorflow.lite.python import schema_py_generated as S
        m = S.ModelT.InitFromObj(S.Model.GetRootAsModel(buf, 0))
        for op in m.subgraphs[0].operators:
            if isinstance(op.builtinOptions, S.SoftmaxOptionsT):
                op.builtinOptions.beta = beta
        b = flatbuffers.Builder(1024)
        b.Finish(m.Pack(b), file_identifier=b"TFL3")
        return bytes(b.Output())
    return edit


@case("softmax_beta_0p37", [(1, 16)], expect="SOFTMAX", calib_range=6.0, post=_softmax_beta(0.37))
def _(rng, x):
    return tf.nn.softmax(x)


@case("softmax_after_fc", [(1, 24)], expect="SOFTMAX")
def _(rng, x):
    return tf.nn.softmax(tf.matmul(x, w(rng, 24, 11, scale=1.0)))


@case("logistic", [(1, 6, 7)], expect="LOGISTIC", calib_range=6.0)
def _(rng, x):
    return tf.sigmoid(x)


@case("logistic_narrow", [(1, 40)], expect="LOGISTIC", calib_range=0.5)
def _(rng, x):
    return tf.sigmoid(x)


@case("relu", [(1, 5, 6, 4)], expect="RELU")
def _(rng, x):
    return tf.nn.relu(x)


@case("relu_after_add", [(1, 5, 6, 4), (1, 5, 6, 4)], expect="RELU")
def _(rng, a, b):
    # a RELU the converter cannot fuse (its input has two consumers)
    s = a + b
    return tf.concat([tf.nn.relu(s), s], axis=3)


@case("relu6", [(1, 5, 6, 4)], expect="RELU6", calib_range=8.0)
def _(rng, x):
    return tf.nn.relu6(x)


@case("relu6_unfused", [(1, 4, 4, 3), (1, 4, 4, 3)], expect="RELU6", calib_range=8.0)
def _(rng, a, b):
    s = a + b
    return tf.concat([tf.nn.relu6(s), s], axis=3)


@case("relu_n1_to_1", [(1, 5, 6, 4)], expect="RELU_N1_TO_1", calib_range=3.0, post=_retype_op("RELU", "RELU_N1_TO_1"),
      oracle="litert-ref")
def _(rng, x):
    # TF does not emit RELU_N1_TO_1 from int8 graphs and TFLite Micro has no kernel for it: retype a RELU
    # (input and output scales differ) and check against LiteRT's reference kernel
    return tf.nn.relu(x)


@case("hard_swish", [(1, 6, 5, 4)], expect="HARD_SWISH", calib_range=5.0)
def _(rng, x):
    return x * tf.nn.relu6(x + 3.0) * (1.0 / 6.0)


@case("hard_swish_after_conv", [(1, 6, 6, 3)], expect="HARD_SWISH")
def _(rng, x):
    y = conv(rng, x, 8, 3)
    return y * tf.nn.relu6(y + 3.0) * (1.0 / 6.0)


# ------------------------------------------------------------------ float boundaries

@case("quantize_float_input_conv", [(1, 6, 5, 3)], expect="QUANTIZE", io_in="float32")
def _(rng, x):
    return conv(rng, x, 4, 3)


@case("quantize_float_input_fc", [(1, 19)], expect="QUANTIZE", io_in="float32", calib_range=3.0)
def _(rng, x):
    return tf.matmul(x, w(rng, 19, 5)) + w(rng, 5, scale=0.3)


@case("dequantize_float_output_conv", [(1, 6, 5, 3)], expect="DEQUANTIZE", io_out="float32")
def _(rng, x):
    return conv(rng, x, 4, 3, fused="RELU")


@case("dequantize_float_output_softmax", [(1, 12)], expect="DEQUANTIZE", io_out="float32", calib_range=3.0)
def _(rng, x):
    return tf.nn.softmax(x)


@case("quantize_float_in_out", [(1, 4, 4, 2)], expect="QUANTIZE", io_in="float32", io_out="float32")
def _(rng, x):
    return conv(rng, x, 3, 3)


@case("quantize_uint8_input", [(1, 5, 5, 2)], expect="QUANTIZE", io_in="uint8")
def _(rng, x):
    return conv(rng, x, 3, 3)


@case("quantize_uint8_output", [(1, 5, 5, 2)], expect="QUANTIZE", io_out="uint8")
def _(rng, x):
    return conv(rng, x, 3, 3, fused="RELU")


@case("quantize_requant_int8", [(1, 4, 5, 3)], expect="QUANTIZE", post=_retype_op("RELU", "QUANTIZE"))
def _(rng, x):
    # TF only emits int8 -> int8 QUANTIZE where scales must be reconciled, which its quantizer avoids in
    # small graphs; RELU's input and output scales differ, so retyping it gives a requantize between them
    return tf.nn.relu(x)


# ------------------------------------------------------------------ conversion

def convert(name: str, spec: dict) -> bytes:
    fn, shapes = spec["fn"], spec["shapes"]

    @tf.function(input_signature=[tf.TensorSpec(s, tf.float32) for s in shapes])
    def model(*xs):
        return fn(_rng(name), *xs)

    conc = model.get_concrete_function()
    calib = np.random.default_rng(zlib.crc32(name.encode()) + 2)

    def rep():
        for _ in range(N_CALIB):
            yield [(calib.normal(0.0, 1.0, size=s) * spec["calib_range"] / 2).clip(-spec["calib_range"],
                                                                                spec["calib_range"]).astype(np.float32)
                   for s in shapes]

    conv_ = tf.lite.TFLiteConverter.from_concrete_functions([conc], model)
    conv_.optimizations = [tf.lite.Optimize.DEFAULT]
    conv_.representative_dataset = rep
    conv_.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    types = {"int8": tf.int8, "uint8": tf.uint8, "float32": tf.float32}
    conv_.inference_input_type = types[spec["io_in"]]
    conv_.inference_output_type = types[spec["io_out"]]
    if spec["per_tensor"]:
        conv_._experimental_disable_per_channel = True
    buf = conv_.convert()
    return spec["post"](buf) if spec["post"] else buf


# ------------------------------------------------------------------ legacy uint8 ("TF1 quant") models

def _fq(x, lo, hi):
    return tf.compat.v1.quantization.fake_quant_with_min_max_args(x, min=lo, max=hi, num_bits=8)


def _legacy_conv_dw_pool_fc_softmax(g_rng):
    v1 = tf.compat.v1
    x = v1.placeholder(tf.float32, [1, 8, 8, 3], name="input")
    xq = _fq(x, -1.0, 1.0)
    wv = g_rng.normal(0, 0.4, size=(3, 3, 3, 6)).astype(np.float32)
    wq = _fq(tf.constant(wv), float(wv.min()), float(wv.max()))
    y = tf.nn.conv2d(xq, wq, strides=[1, 1, 1, 1], padding="SAME")
    y = y + tf.constant(g_rng.normal(0, 0.2, size=6).astype(np.float32))
    y = _fq(tf.nn.relu6(y), 0.0, 6.0)
    dw = g_rng.normal(0, 0.4, size=(3, 3, 6, 1)).astype(np.float32)
    dwq = _fq(tf.constant(dw), float(dw.min()), float(dw.max()))
    z = tf.nn.depthwise_conv2d(y, dwq, strides=[1, 2, 2, 1], padding="SAME")
    z = _fq(z + tf.constant(g_rng.normal(0, 0.2, size=6).astype(np.float32)), -4.0, 4.0)
    p = _fq(tf.nn.avg_pool2d(z, 2, 2, "VALID"), -4.0, 4.0)
    f = tf.reshape(p, [1, 24])
    fw = g_rng.normal(0, 0.3, size=(24, 5)).astype(np.float32)
    fwq = _fq(tf.constant(fw), float(fw.min()), float(fw.max()))
    logits = _fq(tf.matmul(f, fwq) + tf.constant(g_rng.normal(0, 0.2, size=5).astype(np.float32)), -6.0, 6.0)
    out = _fq(tf.nn.softmax(logits), 0.0, 1.0)
    return x, out


def _legacy_add_relu_maxpool_logistic(g_rng):
    v1 = tf.compat.v1
    x = v1.placeholder(tf.float32, [1, 6, 6, 4], name="input")
    xq = _fq(x, -2.0, 2.0)
    wv = g_rng.normal(0, 0.4, size=(1, 1, 4, 4)).astype(np.float32)
    wq = _fq(tf.constant(wv), float(wv.min()), float(wv.max()))
    y = _fq(tf.nn.conv2d(xq, wq, strides=[1, 1, 1, 1], padding="SAME"), -3.0, 3.0)
    s = _fq(y + xq, -4.0, 4.0)
    r = _fq(tf.nn.relu(s), 0.0, 4.0)
    m = _fq(tf.nn.max_pool2d(r, 2, 2, "SAME"), 0.0, 4.0)
    out = _fq(tf.sigmoid(m), 0.0, 1.0)
    return x, out


def _legacy_relu6_mean_mul(g_rng):
    v1 = tf.compat.v1
    x = v1.placeholder(tf.float32, [1, 5, 6, 3], name="input")
    xq = _fq(x, -1.0, 1.0)
    wv = g_rng.normal(0, 0.5, size=(1, 1, 3, 4)).astype(np.float32)
    wq = _fq(tf.constant(wv), float(wv.min()), float(wv.max()))
    a = _fq(tf.nn.conv2d(xq, wq, strides=[1, 1, 1, 1], padding="SAME"), -3.0, 3.0)
    r6 = _fq(tf.nn.relu6(a), 0.0, 6.0)      # a second consumer of `a` keeps the RELU6 unfused
    both = _fq(r6 + _fq(a * 2.0, -6.0, 6.0), -8.0, 8.0)
    mean = _fq(tf.reduce_mean(both, axis=[1, 2]), -3.0, 3.0)
    cv = g_rng.normal(0, 1.0, size=4).astype(np.float32)
    out = _fq(mean * _fq(tf.constant(cv), float(cv.min()), float(cv.max())), -4.0, 4.0)
    return x, out


LEGACY = {"legacy_uint8_relu6_add_mean_mul": _legacy_relu6_mean_mul,
"legacy_uint8_conv_dw_pool_fc_softmax": _legacy_conv_dw_pool_fc_softmax,
          "legacy_uint8_add_relu_maxpool_logistic": _legacy_add_relu_maxpool_logistic}


def convert_legacy(name: str) -> bytes:
    g_rng = np.random.default_rng(zlib.crc32(name.encode()))
    graph = tf.Graph()
    with graph.as_default():
        x, out = LEGACY[name](g_rng)
        with tf.compat.v1.Session(graph=graph) as sess:
            conv_ = tf.compat.v1.lite.TFLiteConverter.from_session(sess, [x], [out])
            conv_.inference_type = tf.uint8
            conv_.quantized_input_stats = {"input": (127.5, 127.5)}  # (mean, std): real = (q - mean) / std
            return conv_.convert()


# ------------------------------------------------------------------ driver

def ops_of(buf: bytes) -> list[str]:
    interp = tf.lite.Interpreter(model_content=buf)
    return sorted({d["op_name"] for d in interp._get_ops_details()})


def main(prefixes: list[str]) -> int:
    OUT.mkdir(parents=True, exist_ok=True)
    manifest_path = OUT / "ops.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
    failed = []
    todo = [(n, False) for n in CASES] + [(n, True) for n in LEGACY]
    for name, legacy in todo:
        if prefixes and not any(name.startswith(p) for p in prefixes):
            continue
        try:
            buf = convert_legacy(name) if legacy else convert(name, CASES[name])
        except Exception as e:  # report and go on: one unsupported case must not hide the others
            print(f"FAILED {name}: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}")
            failed.append(name)
            continue
        ops = ops_of(buf)
        expect = "CONV_2D" if legacy else CASES[name]["expect"]
        if expect not in ops:
            print(f"FAILED {name}: expected op {expect}, the model has {ops}")
            failed.append(name)
            continue
        (OUT / f"{name}.tflite").write_bytes(buf)
        manifest[name] = dict(ops=ops, expect=expect, oracle="litert-ref" if legacy else CASES[name]["oracle"])
        print(f"{name}: {len(buf)} bytes, ops {ops}")
    manifest = {k: manifest[k] for k in sorted(manifest)}
    manifest_path.write_text(json.dumps(manifest, indent=1) + "\n")
    total = sum(p.stat().st_size for p in OUT.glob("*.tflite"))
    print(f"{len(list(OUT.glob('*.tflite')))} models, {total} bytes in {OUT}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
