"""Every kernel variant the CPU runs (generic, avx2, avx512vnni; neon on ARM) equals the portable reference
kernels with zero tolerance, outputs and counters, over edge shapes: odd sizes, strides, dilations, padding,
channel counts that are not multiples of 4 or 16, batches, activations, multipliers with left shifts, and the
drowsy knob at each granularity and selection, with and without rescaling.

The layers are built directly as graphs (tunable.graph) with random weights and quantization, compiled, and
run once per variant on the same input."""
from __future__ import annotations

import math
import zlib

import numpy as np
import pytest

import tunable
from tunable.compiler import CompileOptions, compile_graph
from tunable.graph import Graph, Op, Tensor
from tunable.knobs import Knobs

CANDIDATES = ("generic", "avx2", "avx512vnni", "neon", "neon-dotprod")


def _variants() -> list[str]:
    from tunable._tunable_c import lib
    out = [v for v in CANDIDATES if lib.tn_force_isa(v.encode()) == 0]
    assert lib.tn_force_isa(b"auto") == 0
    return out


VARIANTS = _variants()


def _seed(obj) -> int:
    return zlib.crc32(repr(obj).encode()) % 100000


def _t(i, name, shape, dtype="int8", scale=None, zp=None, data=None, axis=0):
    return Tensor(i, name, tuple(shape), dtype, None if scale is None else np.atleast_1d(np.asarray(scale, np.float64)),
                  None if zp is None else np.atleast_1d(np.asarray(zp, np.int64)), axis, data)


def _out_size(size, k, stride, dil, padding):
    eff = (k - 1) * dil + 1
    return math.ceil(size / stride) if padding == "SAME" else (size - eff) // stride + 1


def conv_model(seed, n, h, w, cin, cout, k, stride, dil, padding, act="NONE", depthwise=False, dm=1,
               left_shift=False, ranks=False):
    """A one-op CONV_2D / DEPTHWISE_CONV_2D model with random int8 weights, per-channel scales and zero points."""
    rng = np.random.default_rng(seed)
    kh, kw = k
    oh, ow = _out_size(h, kh, stride[0], dil[0], padding), _out_size(w, kw, stride[1], dil[1], padding)
    assert oh >= 1 and ow >= 1
    if depthwise:
        cout = cin * dm
        wshape, K = (1, kh, kw, cout), kh * kw
    else:
        wshape, K = (cout, kh, kw, cin), kh * kw * cin
    sx, zx = float(rng.uniform(0.01, 0.05)), int(rng.integers(-128, 128))
    sw = rng.uniform(0.002, 0.02, cout)
    wd = rng.integers(-127, 128, wshape).astype(np.int8)
    wd.flat[rng.integers(0, wd.size)] = -128  # the one value TFLite never produces, which a plan may hold
    bias = rng.integers(-20000, 20000, cout).astype(np.int32)
    # output scale so that outputs spread over the int8 range; tiny for multipliers above 1 (left shifts)
    sy = sx * float(np.mean(sw)) * (0.05 if left_shift else math.sqrt(K) * 74 * 73 / 50)
    zy = int(rng.integers(-100, 100))
    tensors = [_t(0, "x", (n, h, w, cin), scale=sx, zp=zx),
               _t(1, "w", wshape, scale=sw, zp=np.zeros(cout, np.int64), data=wd, axis=3 if depthwise else 0),
               _t(2, "b", (cout,), "int32", scale=sx * sw, zp=np.zeros(cout, np.int64), data=bias),
               _t(3, "y", (n, oh, ow, cout), scale=sy, zp=zy)]
    opts = {"padding": padding, "stride_h": stride[0], "stride_w": stride[1], "dilation_h_factor": dil[0],
            "dilation_w_factor": dil[1], "fused_activation_function": act}
    if depthwise:
        opts["depth_multiplier"] = dm
    g = Graph(tensors, [Op(0, "DEPTHWISE_CONV_2D" if depthwise else "CONV_2D", [0, 1, 2], [3], opts)], [0], [3])
    name = "dw_1" if depthwise else "conv_1"
    co = CompileOptions(artefacts=False)
    if ranks:  # importance ranks as calibration would give them (any permutation is valid)
        co.conv_ranks = {name: (rng.permutation(cout).astype(np.int32), rng.permutation(oh * cout).astype(np.int32))}
    return tunable.Model(compile_graph(g, co), f"{name} {n}x{h}x{w}x{cin}->{cout} k{k} s{stride} d{dil} {padding}")


def fc_model(seed, batch, k, n, act="NONE", classifier=False, artefacts=False, fine=False):
    """A FULLY_CONNECTED model (then a SOFTMAX when classifier); artefacts: with the AIP column order; fine:
    weights in {-1, 0, 1} and an output step of 4 accumulator units, so that an accumulator off by one shows"""
    rng = np.random.default_rng(seed)
    sx, zx = float(rng.uniform(0.01, 0.05)), int(rng.integers(-128, 128))
    sw = float(rng.uniform(0.002, 0.02))
    wd = rng.integers(-1, 2, (n, k)).astype(np.int8) if fine else rng.integers(-127, 128, (n, k)).astype(np.int8)
    bias = rng.integers(-50, 50, n).astype(np.int32) if fine else rng.integers(-20000, 20000, n).astype(np.int32)
    sy = sx * sw * (4 if fine else math.sqrt(k) * 74 * 73 / 50)
    tensors = [_t(0, "x", (batch, k), scale=sx, zp=zx), _t(1, "w", (n, k), scale=sw, zp=0, data=wd),
               _t(2, "b", (n,), "int32", scale=sx * sw, zp=0, data=bias),
               _t(3, "y", (batch, n), scale=sy, zp=int(rng.integers(-100, 100)))]
    ops = [Op(0, "FULLY_CONNECTED", [0, 1, 2], [3], {"fused_activation_function": act})]
    outputs = [3]
    if classifier:
        tensors.append(_t(4, "p", (batch, n), scale=1 / 256, zp=-128))
        ops.append(Op(1, "SOFTMAX", [3], [4], {"beta": 1.0}))
        outputs = [4]
    g = Graph(tensors, ops, [0], outputs)
    return tunable.Model(compile_graph(g, CompileOptions(artefacts=artefacts)), f"fc {batch}x{k}->{n}")


def run_all(model, knobs=Knobs(), seeds=(0, 1)):
    """{variant: (outputs, counters)} with "reference" first"""
    from tunable._tunable_c import lib
    info = model.inputs[0]
    xs = [np.random.default_rng(100 + s).integers(-128, 128, info.shape).astype(np.int8) for s in seeds]
    out = {}
    try:
        for v in ("reference",) + tuple(VARIANTS):
            assert lib.tn_force_isa(v.encode()) == 0
            s = model.session()
            s.set_knobs(knobs)
            ys = [s.run(x) for x in xs]
            out[v] = (ys, s.stats.totals)
    finally:
        assert lib.tn_force_isa(b"auto") == 0
    return out


def assert_all_equal(model, knobs=Knobs()):
    res = run_all(model, knobs)
    ref_y, ref_c = res["reference"]
    for v, (ys, counters) in res.items():
        for i, (a, b) in enumerate(zip(ref_y, ys)):
            if not np.array_equal(a, b):
                bad = np.argwhere(a != b)
                raise AssertionError(f"{model.source} knobs {knobs}: variant {v} differs from the reference on input "
                                     f"{i} at {len(bad)} outputs, first {bad[0].tolist()}: {b[tuple(bad[0])]} != "
                                     f"{a[tuple(bad[0])]}")
        assert counters == ref_c, f"{model.source} knobs {knobs}: variant {v} counters {counters} != {ref_c}"


def test_variants_found():
    import platform
    if platform.machine() in ("x86_64", "AMD64"):
        assert "generic" in VARIANTS and "avx2" in VARIANTS  # every x86-64 CI machine has AVX2


# (n, h, w, cin, cout, kernel, stride, dilation, padding)
CONV_SHAPES = [
    (1, 8, 8, 16, 16, (3, 3), (1, 1), (1, 1), "SAME"),
    (1, 9, 7, 3, 16, (3, 3), (1, 1), (1, 1), "SAME"),       # first-layer Cin = 3
    (1, 17, 13, 1, 8, (5, 3), (2, 2), (1, 1), "SAME"),      # Cin = 1, odd sizes
    (1, 12, 10, 5, 17, (3, 3), (2, 1), (1, 1), "VALID"),    # Cin, Cout not multiples of 4
    (1, 11, 11, 8, 33, (1, 1), (1, 1), (1, 1), "VALID"),    # 1x1
    (1, 15, 9, 12, 20, (1, 1), (2, 2), (1, 1), "SAME"),     # 1x1 stride 2
    (1, 10, 12, 16, 15, (3, 3), (1, 1), (2, 2), "SAME"),    # dilation
    (1, 13, 14, 20, 4, (2, 5), (3, 2), (2, 1), "SAME"),     # rectangular kernel, mixed stride and dilation
    (1, 6, 6, 64, 36, (3, 3), (1, 1), (1, 1), "SAME"),      # narrow rows, wide channels
    (1, 3, 3, 32, 70, (3, 3), (1, 1), (1, 1), "SAME"),
    (1, 1, 1, 7, 5, (1, 1), (1, 1), (1, 1), "VALID"),       # one pixel
    (1, 33, 2, 4, 6, (3, 1), (1, 1), (1, 1), "SAME"),
    (2, 7, 9, 6, 10, (3, 3), (2, 2), (1, 1), "SAME"),       # batch of 2
    (1, 20, 20, 16, 32, (3, 3), (2, 2), (1, 1), "SAME"),
    (1, 5, 40, 48, 64, (1, 1), (1, 1), (1, 1), "VALID"),
    (1, 4, 41, 1, 8, (3, 3), (1, 1), (1, 1), "SAME"),       # wide rows of 1, 2 and 3 channels (vector fills)
    (1, 5, 70, 1, 16, (3, 4), (2, 2), (1, 1), "SAME"),
    (1, 4, 53, 3, 8, (3, 3), (1, 1), (1, 1), "SAME"),
    (1, 5, 67, 3, 16, (3, 3), (2, 2), (1, 1), "SAME"),
    (1, 3, 37, 2, 5, (1, 3), (1, 1), (1, 1), "VALID"),
]


@pytest.mark.parametrize("shape", CONV_SHAPES, ids=lambda s: "x".join(map(str, s[:5])) + f"k{s[5][0]}{s[5][1]}s{s[6][0]}{s[6][1]}d{s[7][0]}{s[7][1]}{s[8][0]}")
@pytest.mark.parametrize("act", ["NONE", "RELU"])
def test_conv_variants_equal_reference(shape, act):
    assert_all_equal(conv_model(_seed(shape), *shape, act=act))


def test_conv_left_shift_multipliers():
    assert_all_equal(conv_model(7, 1, 6, 5, 4, 9, (1, 1), (1, 1), (1, 1), "VALID", left_shift=True))
    assert_all_equal(conv_model(8, 1, 9, 9, 3, 16, (3, 3), (1, 1), (1, 1), "SAME", act="RELU6", left_shift=True))


# drowsy at every granularity, random and importance selection, rescale, on shapes of each kernel path
DROWSY = [Knobs(drowsy=p, drowsy_granularity=g, seed=s, drowsy_rescale=r)
          for (p, g, s, r) in [(0.3, "element", 1, False), (0.5, "element", 2, True), (0.5, "row", 3, False),
                               (0.8, "row", 4, True), (0.5, "channel", 5, False), (0.25, "channel", 6, True),
                               (0.95, "channel", 7, False), (0.95, "row", 8, False)]]
DROWSY += [Knobs(drowsy=p, drowsy_granularity=g, drowsy_select="importance", drowsy_rescale=r)
           for (p, g, r) in [(0.5, "row", False), (0.3, "channel", True), (0.9, "channel", False)]]
DROWSY_SHAPES = [CONV_SHAPES[i] for i in (0, 1, 3, 5, 6, 8, 9, 12, 14)]


@pytest.mark.parametrize("shape", DROWSY_SHAPES, ids=lambda s: "x".join(map(str, s[:5])))
@pytest.mark.parametrize("knobs", DROWSY, ids=str)
@pytest.mark.parametrize("strategy", ["auto", "mask", "subsets"])
def test_conv_drowsy_variants_equal_reference(shape, knobs, strategy, monkeypatch):
    """strategy: the kernels' own choice, or forced: every channel then the dropped ones zeroed, or the
    subsets computed alone (TUNABLE_DROWSY, read when knobs are set)"""
    if strategy != "auto":
        monkeypatch.setenv("TUNABLE_DROWSY", strategy)
    assert_all_equal(conv_model(_seed(shape), *shape, act="RELU", ranks=True), knobs)


# (n, h, w, channels, multiplier, kernel, stride, dilation, padding)
DW_SHAPES = [
    (1, 12, 12, 8, 1, (3, 3), (1, 1), (1, 1), "SAME"),
    (1, 13, 11, 16, 1, (3, 3), (2, 2), (1, 1), "SAME"),
    (1, 9, 10, 3, 1, (3, 3), (1, 1), (1, 1), "VALID"),      # 3 channels: lane period 48
    (1, 7, 9, 17, 1, (5, 3), (2, 1), (1, 2), "SAME"),
    (1, 6, 6, 64, 1, (3, 3), (1, 1), (1, 1), "SAME"),
    (1, 25, 5, 64, 1, (3, 3), (1, 1), (1, 1), "SAME"),
    (1, 3, 3, 256, 1, (3, 3), (1, 1), (1, 1), "SAME"),
    (1, 10, 10, 5, 2, (3, 3), (1, 1), (1, 1), "SAME"),      # depth multiplier 2 (portable path)
    (2, 8, 7, 12, 1, (3, 3), (2, 2), (1, 1), "SAME"),
    (1, 1, 1, 40, 1, (1, 1), (1, 1), (1, 1), "VALID"),
    (1, 16, 4, 1, 1, (3, 3), (3, 3), (1, 1), "SAME"),
]


@pytest.mark.parametrize("shape", DW_SHAPES, ids=lambda s: "x".join(map(str, s[:5])) + f"s{s[6][0]}{s[6][1]}")
@pytest.mark.parametrize("act", ["NONE", "RELU6"])
def test_depthwise_variants_equal_reference(shape, act):
    n, h, w, c, dm, k, st, dil, pad = shape
    assert_all_equal(conv_model(_seed(shape), n, h, w, c, c * dm, k, st, dil, pad, act=act, depthwise=True,
                                dm=dm))


@pytest.mark.parametrize("shape", [DW_SHAPES[i] for i in (0, 1, 3, 4, 8)], ids=lambda s: "x".join(map(str, s[:4])))
@pytest.mark.parametrize("knobs", DROWSY, ids=str)
@pytest.mark.parametrize("strategy", ["auto", "mask", "subsets"])
def test_depthwise_drowsy_variants_equal_reference(shape, knobs, strategy, monkeypatch):
    if strategy != "auto":
        monkeypatch.setenv("TUNABLE_DROWSY", strategy)
    n, h, w, c, dm, k, st, dil, pad = shape
    assert_all_equal(conv_model(_seed(shape), n, h, w, c, c, k, st, dil, pad, act="RELU", depthwise=True,
                                ranks=True), knobs)


@pytest.mark.parametrize("batch,k,n", [(1, 64, 10), (1, 640, 128), (1, 65, 17), (3, 128, 8), (1, 1, 1),
                                       (2, 7, 33), (1, 256, 2)])
@pytest.mark.parametrize("act", ["NONE", "RELU"])
def test_fc_variants_equal_reference(batch, k, n, act):
    assert_all_equal(fc_model(batch * 1000 + k + n, batch, k, n, act))


def test_seed_change_rebuilds_subsets():
    """The packed drowsy subsets follow the seed (set_seed between runs), on every variant."""
    m = conv_model(3, 1, 10, 10, 8, 24, (3, 3), (1, 1), (1, 1), "SAME", act="RELU")
    from tunable._tunable_c import lib
    x = np.random.default_rng(0).integers(-128, 128, m.inputs[0].shape).astype(np.int8)
    for v in ("reference",) + tuple(VARIANTS):
        assert lib.tn_force_isa(v.encode()) == 0
        try:
            s = m.session()
            s.set_knobs(Knobs(drowsy=0.5, drowsy_granularity="channel", seed=1))
            a = s.run(x)
            s.set_seed(2)
            b = s.run(x)
            s.set_seed(1)
            assert np.array_equal(s.run(x), a)
            assert not np.array_equal(a, b)
        finally:
            assert lib.tn_force_isa(b"auto") == 0


def test_mlperf_layers_every_variant(mlperf):
    """The MLPerf Tiny models end to end on every variant, with knobs of each granularity."""
    for name, path in mlperf.items():
        m = tunable.load(path)
        for kn in (Knobs(), Knobs(drowsy=0.4, drowsy_granularity="channel", seed=3),
                   Knobs(drowsy=0.3, drowsy_granularity="row", seed=4, drowsy_rescale=True)):
            if kn.drowsy and not any(layer.op in ("CONV_2D", "DEPTHWISE_CONV_2D") for layer in m.layers):
                continue
            assert_all_equal(m, kn)


@pytest.mark.parametrize("threads", [2, 3])
@pytest.mark.parametrize("case", [
    ("conv", CONV_SHAPES[0]), ("conv", CONV_SHAPES[3]), ("conv", CONV_SHAPES[12]), ("conv", CONV_SHAPES[14]),
    ("dw", DW_SHAPES[1]), ("dw", DW_SHAPES[5]), ("dw", DW_SHAPES[8]), ("fc", (1, 640, 128)), ("fc", (3, 65, 17))],
    ids=lambda c: c[0] + "x".join(map(str, c[1][:4])))
def test_threads_equal_one_thread(case, threads, monkeypatch):
    """The threads option splits the work; outputs and counters equal one thread's, on every variant (the
    small test layers split too: no minimum work per op)."""
    monkeypatch.setenv("TUNABLE_PARALLEL_MIN_WORK", "0")
    kind, shape = case
    if kind == "conv":
        m = conv_model(_seed(shape), *shape, act="RELU", ranks=True)
    elif kind == "dw":
        n, h, w, c, dm, k, st, dil, pad = shape
        m = conv_model(_seed(shape), n, h, w, c, c * dm, k, st, dil, pad, act="RELU", depthwise=True, dm=dm, ranks=True)
    else:
        m = fc_model(_seed(shape), *shape)
    from tunable._tunable_c import lib
    x = np.random.default_rng(9).integers(-128, 128, m.inputs[0].shape).astype(np.int8)
    knob_sets = [Knobs()] if kind == "fc" else [Knobs()] + DROWSY[::2]
    try:
        for v in VARIANTS:
            assert lib.tn_force_isa(v.encode()) == 0
            for kn in knob_sets:
                one = m.session()
                one.set_knobs(kn)
                many = m.session(threads=threads)
                assert many.threads == threads
                many.set_knobs(kn)
                assert np.array_equal(one.run(x), many.run(x)), f"{m.source} {v} {kn} threads={threads}"
                assert one.stats.totals == many.stats.totals
    finally:
        assert lib.tn_force_isa(b"auto") == 0


def test_threads_option_errors():
    from tunable.errors import KnobError
    m = fc_model(1, 1, 8, 4)
    with pytest.raises(KnobError, match="threads"):
        m.session(threads=0)
    s = m.session(threads=4)
    s.set_threads(1)
    assert s.threads == 1


@pytest.mark.parametrize("batch,k,n", [(1, 640, 128), (1, 65, 17), (3, 128, 40), (1, 258, 10), (1, 16, 40),
                                       (2, 30, 33)])
@pytest.mark.parametrize("role", ["relu", "classifier"])
@pytest.mark.parametrize("aip", [1 / 2, 1 / 5, 1 / 16])
def test_fc_aip_variants_equal_reference(batch, k, n, role, aip):
    """AIP previews (packed VNNI partial sums where the CPU has them, preview widths not multiples of 4) and
    completions (ReLU skip, top-m of a classifier) equal the reference's, outputs and counters"""
    for fine in (False, True):
        m = fc_model(batch * 1000 + k + n, batch, k, n, "RELU" if role == "relu" else "NONE",
                     classifier=role == "classifier", artefacts=True, fine=fine)
        assert_all_equal(m, Knobs(aip=aip))
        assert_all_equal(m, Knobs(aip=aip, aip_margin=-3, aip_topm=3))
        assert_all_equal(m, Knobs())


# ---------------------------------------------------------------- input channels a producer conv dropped

def chain_model(seed, n, h, w, c0, c1, c2, k, stride, dil, padding, act_a="RELU", act_b="RELU", add=False,
                ranks=False, after_add=False):
    """conv_1 (3x3, c0 -> c1, SAME) then conv_2 (c1 -> c2, the given geometry); add: conv_1's output also feeds
    an ADD with conv_2's (a residual, shapes permitting), so that it has a second reader; after_add: conv_3
    (3x3, c1 -> 5) reads the ADD's output"""
    rng = np.random.default_rng(seed)
    kh, kw = k
    oh, ow = _out_size(h, kh, stride[0], dil[0], padding), _out_size(w, kw, stride[1], dil[1], padding)
    sx, zx = float(rng.uniform(0.01, 0.05)), int(rng.integers(-128, 128))
    s1, z1 = float(rng.uniform(0.02, 0.1)), int(rng.integers(-100, 100))
    sw1, sw2 = rng.uniform(0.002, 0.02, c1), rng.uniform(0.002, 0.02, c2)
    w1 = rng.integers(-127, 128, (c1, 3, 3, c0)).astype(np.int8)
    w2 = rng.integers(-127, 128, (c2, kh, kw, c1)).astype(np.int8)
    s2 = s1 * float(np.mean(sw2)) * math.sqrt(kh * kw * c1) * 74 * 73 / 50
    s1 = sx * float(np.mean(sw1)) * math.sqrt(9 * c0) * 74 * 73 / 50
    tensors = [_t(0, "x", (n, h, w, c0), scale=sx, zp=zx),
               _t(1, "w1", w1.shape, scale=sw1, zp=np.zeros(c1, np.int64), data=w1),
               _t(2, "b1", (c1,), "int32", scale=sx * sw1, zp=np.zeros(c1, np.int64),
                  data=rng.integers(-20000, 20000, c1).astype(np.int32)),
               _t(3, "y1", (n, h, w, c1), scale=s1, zp=z1),
               _t(4, "w2", w2.shape, scale=sw2, zp=np.zeros(c2, np.int64), data=w2),
               _t(5, "b2", (c2,), "int32", scale=s1 * sw2, zp=np.zeros(c2, np.int64),
                  data=rng.integers(-20000, 20000, c2).astype(np.int32)),
               _t(6, "y2", (n, oh, ow, c2), scale=s2, zp=int(rng.integers(-100, 100)))]
    conv = {"padding": "SAME", "stride_h": 1, "stride_w": 1, "dilation_h_factor": 1, "dilation_w_factor": 1,
            "fused_activation_function": act_a}
    conv2 = {"padding": padding, "stride_h": stride[0], "stride_w": stride[1], "dilation_h_factor": dil[0],
             "dilation_w_factor": dil[1], "fused_activation_function": act_b}
    ops = [Op(0, "CONV_2D", [0, 1, 2], [3], conv), Op(1, "CONV_2D", [3, 4, 5], [6], conv2)]
    out = 6
    if add:
        assert (oh, ow, c2) == (h, w, c1)
        tensors.append(_t(7, "y3", (n, h, w, c1), scale=s1 * 1.5, zp=int(rng.integers(-50, 50))))
        ops.append(Op(2, "ADD", [3, 6], [7], {"fused_activation_function": "RELU"}))
        out = 7
        if after_add:
            w3 = rng.integers(-127, 128, (5, 3, 3, c1)).astype(np.int8)
            sw3 = rng.uniform(0.002, 0.02, 5)
            tensors += [_t(8, "w3", w3.shape, scale=sw3, zp=np.zeros(5, np.int64), data=w3),
                        _t(9, "b3", (5,), "int32", scale=s1 * 1.5 * sw3, zp=np.zeros(5, np.int64),
                           data=rng.integers(-20000, 20000, 5).astype(np.int32)),
                        _t(10, "y4", (n, h, w, 5), scale=s1 * 1.5 * float(np.mean(sw3)) * math.sqrt(9 * c1) * 40,
                           zp=int(rng.integers(-100, 100)))]
            ops.append(Op(3, "CONV_2D", [7, 8, 9], [10], conv))
            out = 10
    co = CompileOptions(artefacts=False)
    if ranks:
        co.conv_ranks = {"conv_1": (rng.permutation(c1).astype(np.int32), rng.permutation(h * c1).astype(np.int32)),
                         "conv_2": (rng.permutation(c2).astype(np.int32), rng.permutation(oh * c2).astype(np.int32)),
                         "conv_3": (rng.permutation(5).astype(np.int32), rng.permutation(h * 5).astype(np.int32))}
    g = Graph(tensors, ops, [0], [out])
    return tunable.Model(compile_graph(g, co), f"chain {n}x{h}x{w}x{c0}->{c1}->{c2} k{k} s{stride} d{dil} {padding} "
                                               f"{act_a}/{act_b}{' +add' if add else ''}")


# (n, h, w, c0, c1, c2, kernel of conv_2, stride, dilation, padding, act_a, act_b, add)
CHAIN_SHAPES = [
    (1, 10, 10, 3, 16, 16, (3, 3), (1, 1), (1, 1), "SAME", "RELU", "RELU", False),
    (1, 9, 11, 5, 17, 33, (3, 3), (2, 2), (1, 1), "SAME", "RELU", "NONE", False),   # odd channel counts
    (1, 8, 8, 4, 64, 64, (3, 3), (1, 1), (1, 1), "SAME", "NONE", "RELU", False),    # producer without activation
    (1, 12, 7, 6, 8, 20, (1, 1), (2, 2), (1, 1), "SAME", "RELU", "RELU", False),    # 1x1 stride 2
    (1, 11, 11, 3, 12, 24, (1, 1), (1, 1), (1, 1), "VALID", "RELU6", "RELU", False),  # 1x1 direct, RELU6
    (1, 13, 10, 4, 20, 9, (2, 5), (3, 2), (2, 1), "SAME", "RELU", "RELU", False),
    (2, 7, 9, 3, 10, 10, (3, 3), (1, 1), (1, 1), "SAME", "RELU", "RELU", False),    # batch of 2
    (1, 8, 8, 3, 16, 16, (3, 3), (1, 1), (1, 1), "SAME", "RELU", "NONE", True),     # a second reader (ADD)
    (1, 4, 4, 2, 2, 3, (3, 3), (1, 1), (1, 1), "SAME", "RELU", "RELU", False),      # two channels: all may drop
]
CHAIN_KNOBS = [Knobs(drowsy=p, drowsy_granularity=g, seed=s, drowsy_rescale=r)
               for (p, g, s, r) in [(0.5, "channel", 1, False), (0.3, "channel", 2, True), (0.95, "channel", 3, False),
                                    (0.5, "row", 4, False), (0.5, "element", 5, False)]]
CHAIN_KNOBS += [Knobs(drowsy=0.5, drowsy_granularity="channel", drowsy_select="importance"),
                Knobs(drowsy={"conv_1": 0.5}, drowsy_granularity="channel", seed=6)]  # the consumer's knobs off


def _chain_id(s):
    return "x".join(map(str, s[:6])) + f"k{s[6][0]}{s[6][1]}s{s[7][0]}{s[7][1]}" + ("add" if s[12] else "")


@pytest.mark.parametrize("shape", CHAIN_SHAPES, ids=_chain_id)
@pytest.mark.parametrize("knobs", CHAIN_KNOBS, ids=str)
@pytest.mark.parametrize("strategy", ["auto", "subsets"])
def test_chain_input_skip_variants_equal_reference(shape, knobs, strategy, monkeypatch):
    """A conv after a channel-dropped conv skips the dropped input channels: outputs equal every channel
    computed (TUNABLE_INSKIP=0), bit for bit, on every variant; counters equal the reference's, and conv_2's
    MACs and weight bytes are those of the kept input channels exactly."""
    from tunable._tunable_c import lib
    if strategy != "auto":
        monkeypatch.setenv("TUNABLE_DROWSY", strategy)
    n, h, w, c0, c1, c2, k, st, dil, pad, aa, ab, add = shape
    m = chain_model(_seed(shape), n, h, w, c0, c1, c2, k, st, dil, pad, aa, ab, add, ranks=True)
    assert_all_equal(m, knobs)   # skipping where the cost model expects a gain
    monkeypatch.setenv("TUNABLE_INSKIP", "1")   # skipping wherever exact
    assert_all_equal(m, knobs)
    skipping = run_all(m, knobs)
    monkeypatch.setenv("TUNABLE_INSKIP", "0")
    full = run_all(m, knobs)
    monkeypatch.setenv("TUNABLE_INSKIP", "1")
    for v in skipping:
        for a, b in zip(skipping[v][0], full[v][0]):
            assert np.array_equal(a, b), f"{m.source} {knobs}: variant {v} with input skipping differs"
    # conv_2's counters against the producer's kept channels (the hash of drowsy.h, or the ranks)
    assert lib.tn_force_isa(b"reference") == 0
    try:
        s = m.session()
        s.set_knobs(knobs)
        s.run(np.random.default_rng(0).integers(-128, 128, m.inputs[0].shape).astype(np.int8))
        c_skip = s.stats.layer("conv_2").counters
        monkeypatch.setenv("TUNABLE_INSKIP", "0")
        s2 = m.session()
        s2.set_knobs(knobs)
        s2.run(np.random.default_rng(0).integers(-128, 128, m.inputs[0].shape).astype(np.int8))
        c_full = s2.stats.layer("conv_2").counters
    finally:
        assert lib.tn_force_isa(b"auto") == 0
    p1 = s.stats.layer("conv_1").counters
    kept1 = c1 - p1["outputs_skipped"] // (n * h * w)
    if knobs.drowsy_granularity != "channel":
        kept1 = c1
    kept_in = max(1, kept1)
    assert c_skip["macs"] * c1 == c_full["macs"] * kept_in
    assert c_skip["weight_bytes"] * c1 == c_full["weight_bytes"] * kept_in
    assert c_skip["outputs_skipped"] == c_full["outputs_skipped"]
    assert c_skip["act_bytes_in"] == c_full["act_bytes_in"]


def test_chain_input_skip_follows_the_producer(monkeypatch):
    """Knobs set on the producer alone (set_knobs per op, then back off) rebuild what its consumer skips."""
    monkeypatch.setenv("TUNABLE_INSKIP", "1")
    m = chain_model(9, 1, 8, 8, 3, 16, 16, (3, 3), (1, 1), (1, 1), "SAME")
    x = np.random.default_rng(0).integers(-128, 128, m.inputs[0].shape).astype(np.int8)
    plain = m.session()
    y0 = plain.run(x)
    s = m.session()
    s.set_knobs(Knobs(drowsy=0.5, drowsy_granularity="channel", seed=3))
    a = s.run(x)
    macs = s.stats.layer("conv_2").counters["macs"]
    assert macs < m.layer("conv_2").macs // 2   # both its inputs and its outputs halved, about
    s.set_knobs(Knobs())
    np.testing.assert_array_equal(s.run(x), y0)
    assert s.stats.layer("conv_2").counters["macs"] == m.layer("conv_2").macs
    s.set_knobs(Knobs(drowsy=0.5, drowsy_granularity="channel", seed=3))
    np.testing.assert_array_equal(s.run(x), a)


def test_element_mask_kept_across_inferences_and_seeds():
    """Element drowsy: the first inference with a seed runs the per-element paths, later ones the mask made
    from the seed (dense kernel, then the mask); outputs and counters equal the reference's on every run,
    also after the seed changes (the mask is made anew)."""
    from tunable._tunable_c import lib
    m = conv_model(5, 1, 12, 10, 8, 24, (3, 3), (1, 1), (1, 1), "SAME", act="RELU")
    xs = [np.random.default_rng(i).integers(-128, 128, m.inputs[0].shape).astype(np.int8) for i in range(3)]
    runs = {}
    try:
        for v in ("reference",) + tuple(VARIANTS):
            assert lib.tn_force_isa(v.encode()) == 0
            s = m.session()
            s.set_knobs(Knobs(drowsy=0.4, drowsy_granularity="element", seed=7))
            out = []
            for seed in (7, 8):
                s.set_seed(seed)
                for x in xs + xs[:1]:
                    out.append((s.run(x), s.stats.totals))
            runs[v] = out
    finally:
        assert lib.tn_force_isa(b"auto") == 0
    for v, out in runs.items():
        for i, ((y, c), (yr, cr)) in enumerate(zip(out, runs["reference"])):
            assert np.array_equal(y, yr), f"variant {v}, run {i}"
            assert c == cr, f"variant {v}, run {i}"
    assert not np.array_equal(runs["reference"][0][0], runs["reference"][4][0])  # the seed changed the mask


@pytest.mark.parametrize("knobs", CHAIN_KNOBS[:4] + CHAIN_KNOBS[5:6], ids=str)
def test_input_skip_through_add(knobs, monkeypatch):
    """A conv reading an ADD of two channel-dropped conv outputs skips the channels both dropped (0 + 0 is
    the ADD's zero point): outputs equal every channel computed and the reference on every variant; conv_3's
    MACs are those of the channels kept by either operand."""
    m = chain_model(11, 1, 9, 8, 3, 24, 24, (3, 3), (1, 1), (1, 1), "SAME", "RELU", "RELU", add=True,
                    ranks=True, after_add=True)
    assert_all_equal(m, knobs)
    monkeypatch.setenv("TUNABLE_INSKIP", "1")
    assert_all_equal(m, knobs)
    skipping = run_all(m, knobs)
    monkeypatch.setenv("TUNABLE_INSKIP", "0")
    full = run_all(m, knobs)
    for v in skipping:
        for a, b in zip(skipping[v][0], full[v][0]):
            assert np.array_equal(a, b), f"{knobs}: variant {v} with input skipping differs"
    s = m.session()
    s.set_knobs(knobs)
    s.run(np.zeros(m.inputs[0].shape, np.int8))
    c_full = s.stats.layer("conv_3").counters
    monkeypatch.setenv("TUNABLE_INSKIP", "1")
    s = m.session()
    s.set_knobs(knobs)
    s.run(np.zeros(m.inputs[0].shape, np.int8))
    c = s.stats.layer("conv_3").counters
    if knobs.drowsy_granularity == "channel":
        hw = 9 * 8
        d1 = s.stats.layer("conv_1").counters["outputs_skipped"] // hw
        d2 = s.stats.layer("conv_2").counters["outputs_skipped"] // hw
        assert c["macs"] * 24 >= c_full["macs"] * (24 - min(d1, d2))   # at most the channels both dropped
        assert c["macs"] * 24 <= c_full["macs"] * max(1, 24 - max(0, d1 + d2 - 24))
    else:
        assert c["macs"] == c_full["macs"]
