"""The approximate knobs in the C hot path (lut, prune, weight_lsb_drop, conv_preview, sign_exact): bit-identity
where they must be exact, outputs and counters equal to an independent numpy model of each path (reading only
the plan's constants and artefacts), drowsy on the same layer, and artefacts blobs checked byte by byte at
load (runtime_c/src/artefacts.h)."""
from __future__ import annotations

import math
import re
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from conftest import random_input

import tunable
from tunable import artefacts
from tunable.compiler import CompileOptions
from tunable.errors import KnobError, PlanError
from tunable.knobs import Knobs

OPS = Path(__file__).parent / "models" / "ops"
SMALL = ["conv_7x9_cin3_k3_same_relu", "conv_9x9_cin17_k3_dil2_same_relu6", "conv_13x11_cin3_k5_s2_same",
         "conv_8x9_cin3_k3x2_s2x1_valid_relu", "dw_10x10_c4_k3_dil2_same_relu", "dw_9x7_c3_k3_s2_valid_m2",
         "fc_37_to_13", "fc_batch3_20_to_7_relu"]
MASK64 = (1 << 64) - 1
COUNTED = ("macs", "mults", "adds", "lut_lookups", "weight_bytes", "requant_ops", "outputs_skipped")


# ================================================================ an independent numpy model of the paths

def requant(acc, mult, shift, zp, lo, hi):
    """TFLite's MultiplyByQuantizedMultiplier + zero point + clamp, on int64 arrays (no wrap-around here)."""
    acc = np.asarray(acc, np.int64)
    left, right = np.maximum(shift, 0), np.maximum(-shift, 0)
    x = acc << left
    ab = x * mult
    v = ab + np.where(ab >= 0, 1 << 30, 1 - (1 << 30))
    high = np.where(v >= 0, v >> 31, -((-v) >> 31))
    mask = (np.int64(1) << right) - 1
    out = (high >> right) + ((high & mask) > ((mask >> 1) + (high < 0))) + zp
    return np.clip(out, lo, hi)


def unit_hash(seed: int, layer: int, unit: int) -> int:
    z = (seed ^ ((layer * 0x9E3779B97F4A7C15) & MASK64) ^ ((unit * 0xD1B54A32D192ED03) & MASK64)) & MASK64
    z = (z + 0x9E3779B97F4A7C15) & MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
    return (z ^ (z >> 31)) >> 32


class Ref:
    """One conv/dw/fc layer of a loaded plan, read through a session (constants only)."""

    def __init__(self, model, layer):
        s = model.session()
        self.model, self.layer, self.kind, p = model, layer, layer.op, layer.params
        self.params = p
        w = s.tensor(layer.in_tensors[1]).astype(np.int64)
        self.bias = s.tensor(layer.in_tensors[2]).astype(np.int64)
        self.mult = s.tensor(layer.in_tensors[3]).astype(np.int64)
        self.shift = s.tensor(layer.in_tensors[4]).astype(np.int64)
        self.zp, self.out_zp = p["in_zp"], p["out_zp"]
        self.lo, self.hi = p["act_min"], p["act_max"]
        self.perm = None
        if self.kind == "CONV_2D":
            self.W = w.reshape(w.shape[0], -1)
            self.kh, self.kw = w.shape[1], w.shape[2]
        elif self.kind == "DEPTHWISE_CONV_2D":
            self.W = w.reshape(-1, w.shape[3]).T
            self.kh, self.kw = w.shape[1], w.shape[2]
        else:
            self.W = w
            if "aip_perm" in layer.has_inputs:
                self.perm = s.tensor(layer.in_tensors[6]).astype(np.int64)
        self.R, self.K = self.W.shape
        self.blob = artefacts.layer_blob(model, layer)
        self.sections = {(k, a): pl for k, a, pl in artefacts.parse_sections(self.blob)} if self.blob else {}

    def gather(self, x):
        """[M, R or 1, K] input values per output element (padding = the zero point) and [M, R or 1, K] in-image
        flags; M = output pixels (conv/dw) or batch rows (fc)."""
        if self.kind == "FULLY_CONNECTED":
            xs = x.reshape(-1, self.K).astype(np.int64)
            if self.perm is not None:
                xs = xs[:, self.perm]
            return xs[:, None, :], np.ones_like(xs[:, None, :], bool)
        p = self.params
        n, h, w, cin = x.shape
        oh, ow = self.layer.output_shape[1], self.layer.output_shape[2]
        cols = np.full((n, oh, ow, self.kh, self.kw, cin), self.zp, np.int64)
        inside = np.zeros((n, oh, ow, self.kh, self.kw, cin), bool)
        for ky in range(self.kh):
            for kx in range(self.kw):
                iy = np.arange(oh) * p["stride_h"] - p["pad_top"] + ky * p["dil_h"]
                ix = np.arange(ow) * p["stride_w"] - p["pad_left"] + kx * p["dil_w"]
                oky, okx = (iy >= 0) & (iy < h), (ix >= 0) & (ix < w)
                sub = x[:, iy[oky]][:, :, ix[okx]].astype(np.int64)
                cols[:, np.nonzero(oky)[0][:, None], np.nonzero(okx)[0][None, :], ky, kx] = sub
                inside[:, np.nonzero(oky)[0][:, None], np.nonzero(okx)[0][None, :], ky, kx] = True
        M = n * oh * ow
        if self.kind == "CONV_2D":
            return cols.reshape(M, 1, -1), inside.reshape(M, 1, -1)
        dm = self.R // cin
        ch = np.arange(self.R) // dm
        c = cols.reshape(M, self.kh * self.kw, cin)[:, :, ch].transpose(0, 2, 1)
        i = inside.reshape(M, self.kh * self.kw, cin)[:, :, ch].transpose(0, 2, 1)
        return c, i

    def threshold(self, level=None):
        """Per row: the largest accumulator that requantizes to at most `level` (default act_min; None: none
        does), by bisection."""
        level = self.lo if level is None else level
        span = self.K * 255 * 128
        A, B = self.bias - span, self.bias + span
        out = lambda a: requant(a, self.mult, self.shift, self.out_zp, -10**9, 10**9)  # noqa: E731
        ok = out(A) <= level
        a, b = A.copy(), B.copy()
        top = out(B) <= level
        a[top] = B[top]
        for _ in range(40):
            mid = a + (b - a) // 2
            good = out(mid) <= level
            a = np.where(good & (b - a > 1), mid, a)
            b = np.where(~good & (b - a > 1), mid, b)
        return np.where(ok, a, np.iinfo(np.int64).min)


def add_numpy(p: dict, a, b):
    """The plan's ADD (TFLite's integer kernel) on int64 arrays."""
    big = 10**12
    ls = p["left_shift"]
    sa = requant((np.asarray(a, np.int64) - p["a_zp"]) << ls, p["a_mult"], p["a_shift"], 0, -big, big)
    sb = requant((np.asarray(b, np.int64) - p["b_zp"]) << ls, p["b_mult"], p["b_shift"], 0, -big, big)
    return requant(sa + sb, p["out_mult"], p["out_shift"], p["out_zp"], p["act_min"], p["act_max"])


def link_thresholds(ref: Ref, add_params: dict, conv_is_a: bool, res):
    """[M, R] thresholds of a conv linked to an ADD (approx.c's header): per residual value v the largest conv
    output Y[v] whose ADD output is act_min (by brute force over the conv's range), then the largest
    accumulator that requantizes to at most Y[v]; int64 min where the element may not stop early."""
    ys = np.arange(ref.lo, ref.hi + 1)
    none = np.iinfo(np.int64).min
    T = np.full(res.shape, none, np.int64)
    cache = {}
    for v in np.unique(res):
        out = add_numpy(add_params, ys, v) if conv_is_a else add_numpy(add_params, v, ys)
        ok = ys[out <= add_params["act_min"]]
        if not len(ok):
            continue
        lvl = int(ok.max())
        if lvl not in cache:
            cache[lvl] = ref.threshold(lvl)
        T = np.where(res == v, cache[lvl][None, :], T)
    return T


def reference(ref: Ref, x, knobs: dict, drop=None, T=None):
    """Outputs [M, R] and counters of the approximate path for knobs (dict of: lsb, tau, sign_exact, preview_p,
    lut_id); drop: bool [M, R] of drowsy-dropped elements; T: [M, R] early-exit thresholds (a residual link),
    default the rows' own act_min thresholds."""
    X, inside = ref.gather(x)
    M, R, K = X.shape[0], ref.R, ref.K
    Xc = X - ref.zp
    drop = np.zeros((M, R), bool) if drop is None else drop
    keep = ~drop
    t = knobs.get("lsb", 0)
    weff = ref.W & ~((1 << t) - 1)
    tau = knobs.get("tau", 0)
    kept = np.abs(ref.W) > tau if tau else np.ones_like(ref.W, bool)
    ctr = dict.fromkeys(COUNTED, 0)
    y = np.full((M, R), np.clip(ref.out_zp, ref.lo, ref.hi), np.int64)
    idx_bytes = 2 if K > 256 else 1
    if "lut_id" in knobs:
        kw, ka, pc, wbits, book, amap, cw, widx, lbias, P = parse_lut(ref.sections[(artefacts.LUT, knobs["lut_id"])], R, K)
        a = (X + 128) if amap is None else amap[X + 128]
        b = np.arange(R) if pc else np.zeros(R, np.int64)
        prod = P[b[None, :, None], a, widx[None, :, :]]  # [M, R, K]
        acc = lbias[None, :] + prod.sum(axis=2)
        y = np.where(keep, requant(acc, ref.mult, ref.shift, ref.out_zp, ref.lo, ref.hi), y)
        n = int(keep.sum())
        ctr.update(macs=n * K, mults=0, adds=n * K, requant_ops=n, outputs_skipped=int(drop.sum()))
        maps = 0
        if amap is not None:
            if ref.kind == "DEPTHWISE_CONV_2D":
                maps = int((inside & keep[:, :, None]).sum())
            elif ref.kind == "CONV_2D":
                maps = int(inside[:, 0, :].sum(axis=1)[keep.any(axis=1)].sum())
            else:
                maps = M * K
        ctr["lut_lookups"] = n * K + maps
        used = keep.any(axis=0)
        ctr["weight_bytes"] = math.ceil(int(used.sum()) * K * artefacts.weight_bits(kw) / 8)
        return y, ctr
    T = np.broadcast_to(ref.threshold()[None, :], (M, R)) if T is None else T
    touched = np.zeros(R, np.int64)
    macs = 0
    skipped = 0
    computed = 0
    full = (Xc * (weff * kept)[None]).sum(axis=2) + ref.bias[None]
    if knobs.get("preview_p"):
        Pn = knobs["preview_p"]
        plen, rest, order = parse_preview(ref.sections[(artefacts.PREVIEW, 0)], R, K)
        q = plen.index(Pn)
        # checks at every tabulated prefix length from q on, below K; the first that passes skips
        skip = np.zeros((M, R), bool)
        stop = np.zeros((M, R), np.int64)      # the prefix length at which a skipped element stopped
        macs_skip = np.zeros((M, R), np.int64)
        for j in range(q, len(plen)):
            Pj = plen[j]
            if Pj >= K:
                break
            pre = order[:, :Pj]
            wk = np.take_along_axis(weff * kept, pre, axis=1)
            part = (np.take_along_axis(Xc, np.broadcast_to(pre[None], (M, R, Pj)), axis=2) * wk[None]).sum(axis=2)
            est = ref.bias[None] + part + rest[None, :, j]
            now = keep & ~skip & (T != np.iinfo(np.int64).min) & (est <= T)
            stop = np.where(now, Pj, stop)
            macs_skip = np.where(now, np.take_along_axis(kept, pre, axis=1).sum(axis=1)[None], macs_skip)
            skip |= now
        done = keep & ~skip
        macs = int(macs_skip.sum() + (done * kept.sum(axis=1)[None]).sum())
        y = np.where(done, requant(full, ref.mult, ref.shift, ref.out_zp, ref.lo, ref.hi), y)
        y = np.where(skip, ref.lo, y)
        touched = np.where(done.any(axis=0), K, stop.max(axis=0))
        skipped, computed = int(skip.sum()), int(done.sum())
        wb = math.ceil(int(touched.sum()) * (8 - t) / 8) + int(touched.sum()) * idx_bytes
    elif tau or knobs.get("sign_exact"):
        # positives then negatives, each by |w| descending: computed independently of the artefact
        y = np.where(keep, requant(full, ref.mult, ref.shift, ref.out_zp, ref.lo, ref.hi), y)
        nonneg = (X >= ref.zp).all(axis=2)  # [M, 1 or R]
        for r in range(R):
            w = ref.W[r]
            pos = [j for j in sorted(range(K), key=lambda j: (-abs(w[j]), j)) if w[j] > tau]
            neg = [j for j in sorted(range(K), key=lambda j: (-abs(w[j]), j)) if w[j] < -tau]
            xr = Xc[:, min(r, Xc.shape[1] - 1)]
            acc0 = ref.bias[r] + (xr[:, pos] * weff[r, pos]).sum(axis=1)
            terms = xr[:, neg] * weff[r, neg]
            for m in np.nonzero(keep[:, r])[0]:
                nn = len(neg)
                if knobs.get("sign_exact") and nonneg[m, min(r, nonneg.shape[1] - 1)] and T[m, r] != np.iinfo(np.int64).min:
                    acc, j = acc0[m], 0
                    while j < nn and acc > T[m, r]:
                        acc += terms[m, j]
                        j += 1
                    if j < nn:  # stopped early
                        y[m, r] = ref.lo
                        skipped += 1
                        macs += len(pos) + j
                        touched[r] = max(touched[r], len(pos) + j)
                        continue
                    nn = j
                macs += len(pos) + nn
                computed += 1
                touched[r] = max(touched[r], len(pos) + nn)
        wb = math.ceil(int(touched.sum()) * (8 - t) / 8) + int(touched.sum()) * idx_bytes
    else:
        y = np.where(keep, requant(full, ref.mult, ref.shift, ref.out_zp, ref.lo, ref.hi), y)
        computed = int(keep.sum())
        macs = computed * K
        wb = math.ceil(int(keep.any(axis=0).sum()) * K * (8 - t) / 8)
    ctr.update(macs=macs, mults=macs, adds=macs, requant_ops=computed, outputs_skipped=skipped + int(drop.sum()),
               weight_bytes=wb)
    return y, ctr


def parse_preview(payload: bytes, R: int, K: int):
    nq = struct.unpack_from("<H", payload, 0)[0]
    plen = list(struct.unpack_from(f"<{nq}H", payload, 4))
    o = (4 + 2 * nq + 3) // 4 * 4
    rest = np.frombuffer(payload, "<i4", R * nq, o).reshape(R, nq).astype(np.int64)
    o += 4 * R * nq
    order = np.frombuffer(payload, "<u2" if K > 256 else np.uint8, R * K, o).reshape(R, K).astype(np.int64)
    return plen, rest, order


def parse_lut(payload: bytes, R: int, K: int):
    kw, ka, pc, wbits, _, zp, _ = struct.unpack_from("<HHBBHiI", payload, 0)
    B = R if pc else 1
    o = 16
    amap = None
    if ka < 256:
        amap = np.frombuffer(payload, np.uint8, 256, o + ka).astype(np.int64)
        o = (o + ka + 256 + 3) // 4 * 4
    cw = np.frombuffer(payload, np.int8, B * kw, o).reshape(B, kw)
    o = (o + B * kw + 3) // 4 * 4
    rb = K if wbits == 8 else (K + 1) // 2
    raw = np.frombuffer(payload, np.uint8, R * rb, o).reshape(R, rb).astype(np.int64)
    widx = raw if wbits == 8 else np.stack([raw & 15, raw >> 4], axis=2).reshape(R, -1)[:, :K]
    o = (o + R * rb + 3) // 4 * 4
    lbias = np.frombuffer(payload, "<i4", R, o).astype(np.int64)
    o += 4 * R
    P = np.frombuffer(payload, "<i2", B * ka * kw, o).reshape(B, ka, kw).astype(np.int64)
    return kw, ka, pc, wbits, B, amap, cw, widx, lbias, P


def c_run(model, layer, x, knobs: Knobs, seed=0):
    s = model.session()
    s.set_knobs(knobs)
    s.set_seed(seed)
    y = s.run(x)
    ctr = s.stats.layer(layer.name).counters
    return y, {k: ctr[k] for k in COUNTED}


def as_rows(ref: Ref, y):
    return np.asarray(y).reshape(-1, ref.R).astype(np.int64)


# ================================================================ fixtures

def _calibrated(path, rng, n=16, lut=None, **kw):
    m0 = tunable.load(path, cache=False)
    xs = np.stack([random_input(m0.inputs[0], rng) for _ in range(n)])
    opts = artefacts.calibrate(path, xs, CompileOptions(lut=lut, **kw))
    return tunable.load(path, compile_options=opts, cache=False)


@pytest.fixture(scope="module", params=SMALL)
def small(request):
    rng = np.random.default_rng(5)
    path = OPS / f"{request.param}.tflite"
    model = _calibrated(path, rng, lut=[(4, 256), (16, 256), (32, 256), (256, 256), (8, 16)], lut_codebook="channel")
    layer = next(l for l in model.layers if l.op in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"))
    return request.param, model, layer, Ref(model, layer)


@pytest.fixture(scope="module")
def resnet(mlperf):
    return tunable.load(mlperf["resnet8"])


@pytest.fixture(scope="module")
def cifar(shared):
    d = np.load(shared / "data" / "cifar10" / "test_first1000.npz")
    return (d["x"][:12].astype(np.int16) - 128).astype(np.int8)


# ================================================================ exactness

def test_all_off_and_zero_knobs_are_bit_identical(resnet, cifar):
    plain = tunable.load(resnet.source, compile_options=CompileOptions(artefacts=False), cache=False)
    s0, s = plain.session(), resnet.session()
    rng = np.random.default_rng(3)
    xs = [cifar[i:i + 1] for i in range(4)] + [random_input(resnet.inputs[0], rng) for _ in range(4)]
    for k in (Knobs(), Knobs(prune=0), Knobs(weight_lsb_drop=0), Knobs(prune=0, weight_lsb_drop=0)):
        s.set_knobs(k)
        for x in xs:
            np.testing.assert_array_equal(s.run(x), s0.run(x))
        assert s.stats.totals["macs"] == sum(l.macs for l in resnet.layers)


def test_sign_exact_is_bit_identical_with_fewer_macs(resnet, cifar, reference_kernels):
    s0, s = resnet.session(), resnet.session()
    s.set_knobs(sign_exact=True)
    rng = np.random.default_rng(11)
    xs = [cifar[i:i + 1] for i in range(len(cifar))] + [random_input(resnet.inputs[0], rng) for _ in range(8)]
    for x in xs:
        np.testing.assert_array_equal(s.run(x), s0.run(x))
        assert s.stats.totals["macs"] < s0.stats.totals["macs"]


def test_sign_exact_matches_the_default_kernels_on_every_conv(resnet, cifar):
    """Named per layer, sign_exact runs on the non-ReLU convs too; the plain engine here takes its SIMD paths."""
    s0, s = resnet.session(), resnet.session()
    s.set_knobs(Knobs(sign_exact={l.name: True for l in resnet.layers if l.op == "CONV_2D"}))  # every conv
    for i in range(4):
        np.testing.assert_array_equal(s.run(cifar[i:i + 1]), s0.run(cifar[i:i + 1]))


def test_identity_lut_is_bit_identical(mlperf, cifar):
    path = mlperf["resnet8"]
    model = tunable.load(path, compile_options=CompileOptions(lut=[(256, 256)]), cache=False)
    names = [l.name for l in model.layers if l.op in ("CONV_2D", "FULLY_CONNECTED")]
    s0, s = model.session(), model.session()
    s.set_knobs(Knobs(lut={n: (256, 256) for n in names}))
    rng = np.random.default_rng(8)
    for x in [cifar[i:i + 1] for i in range(3)] + [random_input(model.inputs[0], rng) for _ in range(3)]:
        np.testing.assert_array_equal(s.run(x), s0.run(x))
    t = s.stats.totals
    assert t["lut_lookups"] == t["macs"] == sum(l.macs for l in model.layers)
    assert sum(l.counters["mults"] for l in s.stats.layers if l.name in names) == 0


# ================================================================ outputs and counters = the numpy model

def _knob_cases(ref: Ref, layer):
    name = layer.name
    cases = [(Knobs(weight_lsb_drop={name: 2}), dict(lsb=2)),
             (Knobs(weight_lsb_drop={name: 7}), dict(lsb=7)),
             (Knobs(prune={name: 3}), dict(tau=3)),
             (Knobs(prune={name: 40}, weight_lsb_drop={name: 3}), dict(tau=40, lsb=3))]
    for (kw, ka), i in artefacts.lut_configs(ref.model, layer).items():
        cases.append((Knobs(lut={name: (kw, ka)}), dict(lut_id=i)))
    if layer.op == "CONV_2D":
        cases += [(Knobs(sign_exact={name: True}), dict(sign_exact=True)),
                  (Knobs(sign_exact={name: True}, prune={name: 5}, weight_lsb_drop={name: 1}),
                   dict(sign_exact=True, tau=5, lsb=1))]
        plens = artefacts.layer_info(ref.model, layer)["preview"]
        for f in (0.1, 0.5, 1.0):
            if plens:
                p = artefacts.preview_length(ref.model, layer, f, ref.K)
                cases.append((Knobs(conv_preview={name: f}), dict(preview_p=p)))
        if plens:
            p = artefacts.preview_length(ref.model, layer, 0.3, ref.K)
            cases.append((Knobs(conv_preview={name: 0.3}, prune={name: 4}), dict(preview_p=p, tau=4)))
    return cases


def test_outputs_and_counters_match_numpy(small, reference_kernels):
    name, model, layer, ref = small
    rng = np.random.default_rng(17)
    cases = _knob_cases(ref, layer)
    assert len(cases) >= 8
    early = 0
    for knobs, kd in cases:
        for trial in range(3):
            x = random_input(model.inputs[0], rng)
            if trial == 2:  # inputs at or above the zero point: sign_exact may stop early
                x = np.maximum(x, ref.zp).astype(x.dtype)
            y, ctr = c_run(model, layer, x, knobs)
            y_ref, ctr_ref = reference(ref, x, kd)
            np.testing.assert_array_equal(as_rows(ref, y), y_ref, err_msg=f"{name} {knobs}")
            assert ctr == ctr_ref, f"{name} {knobs}: {ctr} != {ctr_ref}"
            early += ctr["outputs_skipped"] if ("sign_exact" in kd or "preview_p" in kd) else 0
    if layer.op == "CONV_2D" and layer.params["act_min"] >= layer.params["out_zp"]:
        assert early > 0, "the early-exit paths were not exercised"


def test_counters_match_numpy_on_a_resnet_layer_with_wide_indices(mlperf, shared):
    """conv_8 of ResNet-8 reduces over 576 positions (u16 indices); its input is captured from a real image."""
    from tunable.compiler import compile_graph
    from tunable.session import Model
    from tunable.tflite_reader import read_tflite
    path = mlperf["resnet8"]
    g = read_tflite(path)
    g.outputs = list(dict.fromkeys(g.outputs + [o for op in g.ops for o in op.outputs]))
    full = Model(compile_graph(g), str(path))
    d = np.load(shared / "data" / "cifar10" / "test_first1000.npz")
    s = full.session()
    s.run((d["x"][:1].astype(np.int16) - 128).astype(np.int8))
    conv8 = full.layer("conv_8")
    x = s.tensor(conv8.in_tensors[0])
    ref = Ref(full, conv8)
    assert ref.K == 576
    for knobs, kd in [(Knobs(prune={"conv_8": 6}), dict(tau=6)),
                      (Knobs(sign_exact={"conv_8": True}), dict(sign_exact=True)),
                      (Knobs(weight_lsb_drop={"conv_8": 4}), dict(lsb=4))]:
        s.set_knobs(knobs)
        s.run((d["x"][:1].astype(np.int16) - 128).astype(np.int8))
        y = s.tensor(conv8.out_tensor)
        ctr = {k: s.stats.layer("conv_8").counters[k] for k in COUNTED}
        y_ref, ctr_ref = reference(ref, x, kd)
        np.testing.assert_array_equal(as_rows(ref, y), y_ref)
        assert ctr == ctr_ref


@pytest.mark.parametrize("case", ["conv_7x9_cin3_k3_same_relu", "dw_10x10_c4_k3_dil2_same_relu"])
def test_drowsy_is_honoured_first(case, reference_kernels):
    rng = np.random.default_rng(23)
    path = OPS / f"{case}.tflite"
    model = _calibrated(path, rng, lut=[(8, 16)])
    layer = model.layers[0]
    ref = Ref(model, layer)
    x = random_input(model.inputs[0], rng)
    oh, ow = layer.output_shape[1], layer.output_shape[2]
    p = 0.4
    drop = np.array([[unit_hash(9, layer.index, (m * ref.R) + r) < int(p * 2**32) for r in range(ref.R)]
                     for m in range(oh * ow)])
    assert 0 < drop.sum() < drop.size
    cases = [(dict(weight_lsb_drop={layer.name: 2}), dict(lsb=2)), (dict(prune={layer.name: 8}), dict(tau=8)),
             (dict(lut={layer.name: (8, 16)}), dict(lut_id=1))]
    if layer.op == "CONV_2D":
        cases.append((dict(sign_exact={layer.name: True}), dict(sign_exact=True)))
        cases.append((dict(conv_preview={layer.name: 0.5}),
                      dict(preview_p=artefacts.preview_length(model, layer, 0.5, ref.K))))
    for kn, kd in cases:
        y, ctr = c_run(model, layer, x, Knobs(drowsy={layer.name: p}, seed=9, **kn), seed=9)
        y_ref, ctr_ref = reference(ref, x, kd, drop=drop)
        np.testing.assert_array_equal(as_rows(ref, y), y_ref, err_msg=str(kn))
        assert ctr == ctr_ref, f"{kn}: {ctr} != {ctr_ref}"


# ================================================================ the writer

def test_kmeans_levels_are_optimal_and_exact_when_few_values():
    counts = np.zeros(256)
    counts[[0, 1, 2, 200, 201, 255]] = [5, 1, 5, 3, 3, 1]
    lv = artefacts.kmeans_levels(counts, 6)
    assert sorted(lv.tolist()) == [-128, -127, -126, 72, 73, 127]
    lv2 = artefacts.kmeans_levels(counts, 3)
    assert sorted(lv2.tolist()) == [-127, 73, 127]
    levels, amap = artefacts.activation_codebook(np.ones(256), 4, zp=-7)
    assert -7 in levels.tolist() and levels[amap[-7 + 128]] == -7


def test_default_plan_holds_orders_but_no_tables(mlperf):
    m = tunable.load(mlperf["resnet8"])
    for l in m.layers:
        if l.op in ("CONV_2D", "FULLY_CONNECTED"):
            info = artefacts.layer_info(m, l)
            assert info["sorted"] and not info["luts"]
            # CONV_2D followed by ReLU, or linked to an ADD with ReLU (conv_3, conv_5, conv_8)
            relu = l.params.get("act_min", -128) >= l.params.get("out_zp", 0) or "residual" in l.has_inputs
            assert bool(info["preview"]) == (l.op == "CONV_2D" and relu)


def test_knob_errors_name_the_layer(resnet):
    s = resnet.session()
    with pytest.raises(KnobError, match="conv_2.*16x256 is not in this plan"):
        s.set_knobs(lut={"conv_2": (16, 256)})
    with pytest.raises(KnobError, match="cannot be combined"):
        s.set_knobs(conv_preview={"conv_2": 0.5}, sign_exact={"conv_2": True})
    bare = tunable.load(resnet.source, compile_options=CompileOptions(artefacts=False), cache=False)
    with pytest.raises(KnobError, match="conv_1.*sorted weights"):
        bare.session().set_knobs(prune=2)
    with pytest.raises(KnobError, match="no preview artefacts"):
        bare.session().set_knobs(conv_preview=0.5)
    bare.session().set_knobs(weight_lsb_drop=1)  # needs no artefact


# ================================================================ artefacts blobs are checked at load

def _blob_plan(path, rng):
    model = _calibrated(path, rng, lut=[(4, 256), (8, 16)])
    layer = model.layers[0]
    blob = artefacts.layer_blob(model, layer)
    return model.plan, blob


def _patched(plan: bytes, blob: bytes, new: bytes) -> bytes:
    assert len(new) == len(blob)
    at = plan.find(blob)
    assert at > 0 and plan.find(blob, at + 1) < 0
    out = bytearray(plan)
    out[at:at + len(blob)] = new
    out[12:16] = struct.pack("<I", zlib.crc32(bytes(out[16:])) & 0xFFFFFFFF)
    return bytes(out)


def _sections(blob: bytes):
    n = struct.unpack_from("<H", blob, 6)[0]
    return [struct.unpack_from("<IIII", blob, 16 + 16 * i) for i in range(n)]


@pytest.fixture(scope="module")
def conv_blob():
    return _blob_plan(OPS / "conv_7x9_cin3_k3_same_relu.tflite", np.random.default_rng(31))


def _mutations(blob: bytes):
    secs = _sections(blob)
    kinds = {k: (off, size) for k, off, size, arg in secs}
    so, _ = kinds[artefacts.SORTED]
    lut4 = next((off, size) for k, off, size, arg in secs if k == artefacts.LUT and arg == 1)
    lut8 = next((off, size) for k, off, size, arg in secs if k == artefacts.LUT and arg == 2)

    def put(b, at, fmt, *v):
        b = bytearray(b)
        struct.pack_into(fmt, b, at, *v)
        return bytes(b)
    R = struct.unpack_from("<I", blob, 8)[0]
    K = struct.unpack_from("<I", blob, 12)[0]
    sorted_first = so + 4 * R
    return [
        ("magic", put(blob, 0, "4s", b"XXXX"), "not an artefacts blob"),
        ("version", put(blob, 4, "<H", 9), "version 9"),
        ("sections", put(blob, 6, "<H", 0), "sections do not fit"),
        ("rows", put(blob, 8, "<I", R + 1), "made for"),
        ("kind", put(blob, 16, "<I", 77), "unknown kind 77"),
        ("offset", put(blob, 20, "<I", len(blob)), "outside the blob"),
        ("unaligned", put(blob, 20, "<I", so + 2), "outside the blob"),
        ("overlap", put(blob, 16 + 16 + 4, "<I", so), "overlap"),
        ("npos", put(blob, so, "<H", K + 1), "signed weights"),
        ("perm", put(blob, sorted_first + 1, "B", blob[sorted_first]), "not a permutation"),
        ("lut kw", put(blob, lut4[0], "<H", 300), "outside [2, 256]"),
        ("lut bits", put(blob, lut4[0] + 5, "B", 8), "index width"),
        ("lut zp", put(blob, lut4[0] + 8, "<i", 5), "zero point"),
        ("lut table", put(blob, lut4[0] + lut4[1] - 2, "<h", 12345), "product table"),
        ("lut amap", put(blob, lut8[0] + 16 + 16 + 3, "B", 200), "activation map"),
        ("lut id", put(blob, 16 + 16 * (len(secs) - 1) + 12, "<I", 1), "repeated"),
    ]


@pytest.mark.parametrize("i", range(16))
def test_invalid_blobs_are_rejected_with_clear_errors(conv_blob, i):
    plan, blob = conv_blob
    what, bad, msg = _mutations(blob)[i]
    with pytest.raises(PlanError, match=re.escape(msg)):
        tunable.session.Model(_patched(plan, blob, bad), what)


def test_fuzzed_blobs_never_load_wrong(conv_blob, reference_kernels, monkeypatch):
    """Random byte changes: the plan loads only when the blob is still valid, and then runs every knob."""
    plan, blob = conv_blob
    rng = np.random.default_rng(99)
    rejected = 0
    x = np.zeros((1, 7, 9, 3), np.int8)
    for trial in range(150):
        bad = bytearray(blob)
        for _ in range(int(rng.integers(1, 4))):
            bad[int(rng.integers(0, len(bad)))] = int(rng.integers(0, 256))
        try:
            m = tunable.session.Model(_patched(plan, blob, bytes(bad)), "fuzz")
        except PlanError as e:
            assert "artefacts" in str(e)
            rejected += 1
            continue
        s = m.session()
        for k in (Knobs(prune=3), Knobs(sign_exact=True), Knobs(conv_preview=0.5), Knobs(lut={"conv_1": (4, 256)})):
            try:
                s.set_knobs(k)
            except KnobError:
                continue
            s.run(x)
    assert rejected > 50
    for cut in (3, 17, len(blob) // 2, len(blob) - 1):  # truncated blobs, written by the compiler
        monkeypatch.setattr(artefacts, "layer_artefacts", lambda *a, c=cut, **k: np.frombuffer(blob[:c], np.uint8).copy())
        with pytest.raises(PlanError, match="artefacts"):
            tunable.load(OPS / "conv_7x9_cin3_k3_same_relu.tflite", cache=False, compile_options=CompileOptions())


# ================================================================ residual links: CONV_2D -> ADD with ReLU

def _linked_resnet(path, calib):
    """ResNet-8 compiled with the linked convs' inputs, residuals and ADD outputs kept as graph outputs (the
    convs' own outputs are not, so the links stay), preview statistics from `calib`."""
    from tunable.compiler import compile_graph
    from tunable.session import Model
    from tunable.tflite_reader import read_tflite
    base = tunable.load(path)
    names = set()
    for l in base.layers:
        if "residual" in l.has_inputs:
            add = base.layers[l.params["residual_add"]]
            names |= {base.tensor_info(t).name for t in (l.in_tensors[0], l.in_tensors[9], add.out_tensor)}
    g = read_tflite(path)
    g.outputs = list(dict.fromkeys(g.outputs + [t.index for t in g.tensors if t.name in names]))
    opts = artefacts.calibrate(path, calib, CompileOptions(), gram_samples=0, patch_samples=4)
    return Model(compile_graph(g, opts), str(path))


@pytest.fixture(scope="module")
def linked(mlperf, cifar):
    return _linked_resnet(mlperf["resnet8"], cifar[8:12])


def test_resnet_plan_links_the_convs_before_an_add_with_relu(resnet):
    """conv_3/5/8 feed only an ADD with fused ReLU; the 1x1 shortcut convs (the ADDs' other inputs) move before
    them. Without artefacts the plan is the plain one: no links, the .tflite order."""
    order = [l.name for l in resnet.layers]
    linked = {l.name: l for l in resnet.layers if "residual" in l.has_inputs}
    assert sorted(linked) == ["conv_3", "conv_5", "conv_8"]
    for name, l in linked.items():
        add = resnet.layers[l.params["residual_add"]]
        assert add.op == "ADD" and sorted(add.in_tensors) == sorted([l.out_tensor, l.in_tensors[9]])
        made = [p.name for p in resnet.layers if p.out_tensor == l.in_tensors[9]]
        assert order.index(made[0]) < order.index(name) < order.index(add.name)
    assert order.index("conv_6") < order.index("conv_5") and order.index("conv_9") < order.index("conv_8")
    plain = tunable.load(resnet.source, compile_options=CompileOptions(artefacts=False), cache=False)
    assert not any("residual" in l.has_inputs for l in plain.layers)
    p_order = [l.name for l in plain.layers]
    assert p_order.index("conv_5") < p_order.index("conv_6") and p_order.index("conv_8") < p_order.index("conv_9")


def test_linked_convs_match_numpy(linked, cifar, reference_kernels):
    """The ADD's output and the conv's counters equal the numpy model of the linked rule (thresholds from the
    residual per element); sign_exact leaves the ADD's output bit-identical."""
    m = linked
    s = m.session()
    early = 0
    for name in ("conv_3", "conv_8"):
        layer = m.layer(name)
        assert "residual" in layer.has_inputs
        ref = Ref(m, layer)
        add = m.layers[layer.params["residual_add"]]
        conv_is_a = add.in_tensors[0] == layer.out_tensor
        cases = [(Knobs(sign_exact={name: True}), dict(sign_exact=True)),
                 (Knobs(sign_exact={name: True}, prune={name: 3}), dict(sign_exact=True, tau=3))]
        for f in (0.125, 0.5):
            cases.append((Knobs(conv_preview={name: f}), dict(preview_p=artefacts.preview_length(m, layer, f, ref.K))))
        for knobs, kd in cases:
            for i in range(2):
                x0 = cifar[i:i + 1]
                s.set_knobs(Knobs())
                s.run(x0)
                x, res = s.tensor(layer.in_tensors[0]), s.tensor(layer.in_tensors[9]).reshape(-1, ref.R).astype(np.int64)
                exact = s.tensor(add.out_tensor).copy()
                s.set_knobs(knobs)
                s.run(x0)
                ctr = {k: s.stats.layer(name).counters[k] for k in COUNTED}
                got = s.tensor(add.out_tensor).reshape(-1, ref.R)
                y_ref, ctr_ref = reference(ref, x, kd, T=link_thresholds(ref, add.params, conv_is_a, res))
                a_ref = add_numpy(add.params, y_ref, res) if conv_is_a else add_numpy(add.params, res, y_ref)
                np.testing.assert_array_equal(got, a_ref, err_msg=f"{name} {knobs}")
                assert ctr == ctr_ref, f"{name} {knobs}: {ctr} != {ctr_ref}"
                if kd == dict(sign_exact=True):
                    np.testing.assert_array_equal(got, exact.reshape(-1, ref.R))
                    early += ctr["outputs_skipped"]
    assert early > 0


def _op_record(plan: bytes, i: int) -> int:
    from tunable import planspec as ps
    n = struct.unpack_from("<I", plan, 16)[0]
    for k in range(n):
        sid, off, size, count = struct.unpack_from("<IIII", plan, ps.HEADER_BYTES + 16 * k)
        if sid == ps.SECTIONS["OPS"]:
            return off + i * ps.OP_RECORD_BYTES
    raise AssertionError("no OPS section")


def _patch_op(plan: bytes, i: int, *, inp=None, param=None, value=0) -> bytes:
    from tunable import planspec as ps
    out = bytearray(plan)
    rec = _op_record(plan, i)
    if inp is not None:
        struct.pack_into("<i", out, rec + 8 + 4 * inp, value)
    if param is not None:
        struct.pack_into("<i", out, rec + 8 + 4 * (ps.MAX_OP_INPUTS + ps.MAX_OP_OUTPUTS) + 4 * param, value)
    out[12:16] = struct.pack("<I", zlib.crc32(bytes(out[16:])) & 0xFFFFFFFF)
    return bytes(out)


def test_bad_residual_links_are_rejected(resnet):
    from tunable import planspec as ps
    names = [l.name for l in resnet.layers]
    i8, l8 = names.index("conv_8"), resnet.layer("conv_8")
    a3, pool = l8.params["residual_add"], names.index("avgpool_1")
    RES, RADD = ps.OPS["CONV_2D"]["inputs"].index("residual"), ps.OPS["CONV_2D"]["params"].index("residual_add")
    cases = [
        (dict(param=RADD, value=i8), "must come after this op"),
        (dict(param=RADD, value=len(names)), "must come after this op"),
        (dict(param=RADD, value=pool), "is not an ADD of this op's output"),
        (dict(inp=RES, value=l8.in_tensors[0]), "is not an ADD of this op's output"),
        (dict(inp=RES, value=resnet.layer("conv_7").in_tensors[0]), "shaped like the output"),
        (dict(inp=RES, value=l8.in_tensors[1]), "arena tensor"),
        (dict(inp=RES, value=l8.in_tensors[2]), "is int32, expected int8"),
    ]
    resnet.session()  # the unpatched plan loads
    for kw, msg in cases:
        with pytest.raises(PlanError, match=re.escape(msg)):
            tunable.session.Model(_patch_op(resnet.plan, i8, **kw), "bad link")
    # another reader of the conv's output (the pool reads it instead of the ADD's output)
    with pytest.raises(PlanError, match="also read by op"):
        tunable.session.Model(_patch_op(resnet.plan, pool, inp=0, value=l8.out_tensor), "bad link")
    # a residual written after the conv: the shortcut conv back after it (swap the two op records)
    i9 = names.index("conv_9")
    out = bytearray(resnet.plan)
    r8, r9 = _op_record(resnet.plan, i8), _op_record(resnet.plan, i9)
    rec8, rec9 = out[r8:r8 + ps.OP_RECORD_BYTES], out[r9:r9 + ps.OP_RECORD_BYTES]
    out[r8:r8 + ps.OP_RECORD_BYTES], out[r9:r9 + ps.OP_RECORD_BYTES] = rec9, rec8
    out[12:16] = struct.pack("<I", zlib.crc32(bytes(out[16:])) & 0xFFFFFFFF)
    with pytest.raises(PlanError, match="not before this op"):
        tunable.session.Model(bytes(out), "bad link")
