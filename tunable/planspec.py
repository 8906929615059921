"""The one definition of the compiled-plan format, shared by the Python writer and the C loader.

Everything the two sides must agree on (magic, version, record sizes, section ids, dtypes, opcodes, the
meaning of each op's parameter slots, counter names, error codes) is written here once.
`python -m tunable.planspec` regenerates runtime_c/include/tunable_format.h from it, and a test checks that the
committed header is what this module generates.
"""
from __future__ import annotations

import sys
from pathlib import Path

MAGIC = b"TNPL"
VERSION = 1
HEADER_BYTES = 32
SECTION_RECORD_BYTES = 16
TENSOR_RECORD_BYTES = 48
MAX_DIMS = 6
MAX_OP_INPUTS = 10
MAX_OP_OUTPUTS = 2
OP_PARAMS = 24
# u16 opcode, u8 n_in, u8 n_out, u32 name, i32 in[], i32 out[], i32 params[]
OP_RECORD_BYTES = 8 + 4 * (MAX_OP_INPUTS + MAX_OP_OUTPUTS + OP_PARAMS)
CONST_ALIGN = 64
ARENA_ALIGN = 64

SECTIONS = {"TENSORS": 1, "OPS": 2, "CONST": 3, "STRINGS": 4, "IO": 5}

DTYPES = {"INT8": 1, "UINT8": 2, "INT16": 3, "INT32": 4, "FLOAT32": 5}
DTYPE_SIZE = {"INT8": 1, "UINT8": 1, "INT16": 2, "INT32": 4, "FLOAT32": 4}
STORAGE = {"ARENA": 0, "CONST": 1}

# Op inputs and parameter slots, by opcode. Inputs name tensor slots (-1 = absent); params are int32.
# Float-valued quantities never reach C: the compiler turns them into multipliers and shifts.
_CONV_PARAMS = ["stride_h", "stride_w", "dil_h", "dil_w", "pad_top", "pad_left", "act_min", "act_max",
                "in_zp", "out_zp", "w_zp", "depth_mult", "residual_add"]
# rank_*: drowsy importance ranks; artefacts: a uint8 blob of compile-time knob artefacts for the layer
# (look-up tables, sorted and sign-ordered weights, preview orders; format in runtime_c/src/artefacts.h)
# residual (CONV_2D only, optional): the conv's output feeds only the ADD at op index `residual_add` (later
# in the plan), whose activation clamps; `residual` is that ADD's other input, computed before the conv. The
# sign knobs (conv_preview, sign_exact) then skip the conv elements whose ADD output clamps to its act_min
# and write the conv's act_min there (ADD is monotone in each input, so the ADD output is unchanged).
_CONV_INPUTS = ["x", "w", "bias", "mult", "shift", "bias_folded", "rank_channel", "rank_row", "artefacts",
                "residual"]
OPS: dict[str, dict] = {
    # weights [Cout, KH, KW, Cin]; bias int32 [Cout]; mult/shift int32 [Cout];
    # bias_folded[c] = bias[c] - in_zp * sum(w[c]) (used by the fast path)
    # rank_channel: int32 [Cout], rank of each output channel by calibration importance (0 = least important);
    # rank_row: int32 [OH * Cout], the same per (output row, channel). Optional (-1), used by drowsy importance.
    "CONV_2D": dict(code=1, inputs=_CONV_INPUTS, params=_CONV_PARAMS),
    # weights [1, KH, KW, Cout]; Cout = Cin * depth_mult
    "DEPTHWISE_CONV_2D": dict(code=2, inputs=_CONV_INPUTS, params=_CONV_PARAMS),
    # weights [N, K]; x viewed as [batch, K]
    # aip_perm: int32 [K] column order by importance; when present, w is stored column-permuted
    # (w[:, j] = original w[:, perm[j]]). role: 0 plain, 1 followed by ReLU, 2 classifier (feeds softmax/argmax)
    # requant_f64 = 1 in legacy uint8 models (their oracle is LiteRT's reference uint8 FC): the output is
    # round((double)acc * in_scale * w_scale / out_scale) from the tensors' float32 scales, not mult/shift
    "FULLY_CONNECTED": dict(code=3, inputs=["x", "w", "bias", "mult", "shift", "bias_folded", "aip_perm",
                                            "artefacts"],
                            params=["act_min", "act_max", "in_zp", "out_zp", "w_zp", "role", "requant_f64"]),
    "ADD": dict(code=4, inputs=["a", "b"],
                params=["a_zp", "b_zp", "out_zp", "left_shift", "a_mult", "a_shift", "b_mult", "b_shift",
                        "out_mult", "out_shift", "act_min", "act_max"]),
    "MUL": dict(code=5, inputs=["a", "b"],
                params=["a_zp", "b_zp", "out_zp", "out_mult", "out_shift", "act_min", "act_max"]),
    # acc_offset: 128 in legacy uint8 models, where TFLite rounds the uint8 window sum (always >= 0): the
    # kernel adds acc_offset * count to the int8 sum before rounding and subtracts acc_offset after
    "AVERAGE_POOL_2D": dict(code=6, inputs=["x"],
                            params=["filter_h", "filter_w", "stride_h", "stride_w", "pad_top", "pad_left",
                                    "act_min", "act_max", "acc_offset"]),
    "MAX_POOL_2D": dict(code=7, inputs=["x"],
                        params=["filter_h", "filter_w", "stride_h", "stride_w", "pad_top", "pad_left",
                                "act_min", "act_max"]),
    # mean over the axes set in the bit mask `axes` (bit i = axis i of the input extended to 4-D with leading
    # 1s), TFLM's QuantizedMeanOrSum; mult/shift quantize in_scale / out_scale, the kernel folds in 1/count
    "MEAN": dict(code=8, inputs=["x"], params=["in_zp", "out_zp", "mult", "shift", "axes"]),
    # paddings before/after for up to 4 dims, pad value
    "PAD": dict(code=9, inputs=["x"],
                params=["b0", "a0", "b1", "a1", "b2", "a2", "b3", "a3", "pad_value"]),
    # RESHAPE and SQUEEZE: same bytes, new shape
    "COPY": dict(code=10, inputs=["x"], params=[]),
    "CONCATENATION": dict(code=11, inputs=[f"x{i}" for i in range(MAX_OP_INPUTS)],
                          params=["axis", "act_min", "act_max"]),
    # over the last axis, int8 -> int8 (output scale 1/256, zero point -128); TFLM's PreprocessSoftmaxScaling
    "SOFTMAX": dict(code=12, inputs=["x"], params=["in_mult", "in_left_shift", "diff_min"]),
    "LOGISTIC": dict(code=13, inputs=["x"],
                     params=["in_zp", "in_range_radius", "in_mult", "in_left_shift"]),
    # RELU / RELU_N1_TO_1 (and legacy-uint8 RELU6 with differing scales): requantize then clamp, TFLM's
    # ReluQuantized / TFLite's QuantizedReluX
    "RELU": dict(code=14, inputs=["x"], params=["in_zp", "out_zp", "mult", "shift", "act_min", "act_max"]),
    # RELU6 in TFLM int8 is a plain clamp on the input's scale
    "CLAMP": dict(code=15, inputs=["x"], params=["lo", "hi"]),
    # HardSwishParams: int16 fixed-point multipliers and their exponents
    "HARD_SWISH": dict(code=16, inputs=["x"],
                       params=["in_zp", "out_zp", "reluish_mult", "reluish_exp", "out_mult", "out_exp"]),
    # float32 -> int8/uint8: round(x / scale) + out_zp with the output scale's float32 bits in scale_bits;
    # int8/uint8 -> int8/uint8: requantize with mult/shift of in_scale / out_scale
    # DEQUANTIZE: (double)scale * (x - in_zp) rounded to float32, scale_bits = the input scale's float32 bits
    "QUANTIZE": dict(code=17, inputs=["x"], params=["in_zp", "out_zp", "mult", "shift", "scale_bits"]),
    "DEQUANTIZE": dict(code=18, inputs=["x"], params=["in_zp", "scale_bits"]),
}

# Per-layer counters, in the order of the C struct tn_counters (uint64 each).
COUNTERS = ["macs", "mults", "adds", "lut_lookups", "weight_bytes", "act_bytes_in", "act_bytes_out",
            "outputs_skipped", "requant_ops", "lut_hits", "lut_misses"]

ERRORS = {
    "OK": 0,
    "BAD_MAGIC": 1,
    "BAD_VERSION": 2,
    "TRUNCATED": 3,
    "BAD_CHECKSUM": 4,
    "BAD_SECTION": 5,
    "BAD_TENSOR": 6,
    "BAD_OP": 7,
    "UNSUPPORTED": 8,
    "NO_MEMORY": 9,
    "BAD_ARGUMENT": 10,
    "ARENA_TOO_SMALL": 11,
    "BAD_KNOB": 12,
}

ACT_OPS = {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"}


def header_text() -> str:
    out = ["/* Generated by `python -m tunable.planspec` from tunable/planspec.py. Do not edit. */",
           "#ifndef TN_PLAN_FORMAT_H", "#define TN_PLAN_FORMAT_H", ""]
    d = out.append
    d(f'#define TN_PLAN_MAGIC "{MAGIC.decode()}"')
    for name, val in [("VERSION", VERSION), ("HEADER_BYTES", HEADER_BYTES),
                      ("SECTION_RECORD_BYTES", SECTION_RECORD_BYTES),
                      ("TENSOR_RECORD_BYTES", TENSOR_RECORD_BYTES), ("MAX_DIMS", MAX_DIMS),
                      ("MAX_OP_INPUTS", MAX_OP_INPUTS), ("MAX_OP_OUTPUTS", MAX_OP_OUTPUTS),
                      ("OP_PARAMS", OP_PARAMS), ("OP_RECORD_BYTES", OP_RECORD_BYTES),
                      ("CONST_ALIGN", CONST_ALIGN), ("ARENA_ALIGN", ARENA_ALIGN)]:
        d(f"#define TN_PLAN_{name} {val}")
    d("")
    for k, v in SECTIONS.items():
        d(f"#define TN_SECTION_{k} {v}")
    d("")
    for k, v in DTYPES.items():
        d(f"#define TN_DTYPE_{k} {v}")
    for k, v in STORAGE.items():
        d(f"#define TN_STORAGE_{k} {v}")
    d("")
    for name, spec in OPS.items():
        d(f"#define TN_OP_{name} {spec['code']}")
    d(f"#define TN_OP_COUNT {max(s['code'] for s in OPS.values()) + 1}")
    d("")
    for name, spec in OPS.items():
        for i, inp in enumerate(spec["inputs"]):
            if name == "CONCATENATION":
                break
            d(f"#define TN_IN_{name}_{inp.upper()} {i}")
        for i, p in enumerate(spec["params"]):
            d(f"#define TN_P_{name}_{p.upper()} {i}")
    d("")
    d(f"#define TN_NUM_COUNTERS {len(COUNTERS)}")
    d("#define TN_COUNTER_FIELDS(X) \\")
    d(" \\\n".join(f"    X({c})" for c in COUNTERS))
    d("")
    for k, v in ERRORS.items():
        d(f"#define TN_ERR_{k} {v}")
    d("")
    d("#endif")
    return "\n".join(out) + "\n"


HEADER_PATH = Path(__file__).resolve().parent.parent / "runtime_c" / "include" / "tunable_format.h"

if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else HEADER_PATH
    target.write_text(header_text())
    print(f"wrote {target}")
