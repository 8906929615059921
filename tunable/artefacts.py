"""Compile-time artefacts of the approximate knobs (prune, sign_exact, conv_preview, lut): one uint8 blob per
CONV_2D / DEPTHWISE_CONV_2D / FULLY_CONNECTED layer in the plan. The format is documented (and validated
byte by byte at load) in runtime_c/src/artefacts.h; this module writes it, collects the calibration
statistics it uses, and reads back which look-up-table configurations a loaded plan holds.

A layer is seen as `rows` output rows (output channels, or FC rows) of K positions each, in the weights'
storage order (conv: ky, kx, ic; depthwise: the taps; FC: the plan's column order, AIP-permuted if it is).
What goes in a blob:
- SORTED (every layer): per row the positions ordered positives then negatives, each by |w| descending, so
  a prune threshold is a prefix cut and sign_exact can stop early.
- PREVIEW (CONV_2D whose output cannot go below real zero, act_min >= out_zp, or linked to an ADD with ReLU:
  compiler._residual_link): per row the positions by importance |w| * std(x) (calibration), or |w| without
  calibration data, and per tabulated prefix length a remainder estimate (a calibration quantile).
- LUT (the configurations CompileOptions.lut asks for): weight codebooks (optimal 1-D k-means over the int8
  levels, per layer or per output channel), an activation codebook (k-means on calibration activations with
  the zero point forced in; K_a = 256: the activations as they are), the weight indices, a bias corrected for
  the codebooks' mean error, and the int16 product table.
"""
from __future__ import annotations

import math
import struct
import weakref
from dataclasses import dataclass

import numpy as np

from . import planspec as ps
from .errors import KnobError, UnsupportedModelError

MAGIC = b"TNAF"
VERSION = 1
SORTED, PREVIEW, LUT = 1, 2, 3

# a default set of look-up-table configurations, used when CompileOptions.lut == "default"
DEFAULT_LUT = ((4, 256), (8, 256), (16, 256), (32, 256))


# ------------------------------------------------------------------ 1-D k-means over int8 levels

def kmeans_levels(counts: np.ndarray, k: int) -> np.ndarray:
    """Optimal (least squares) k-level codebook of the integer values -128..127 weighted by `counts`
    (length 256, index = value + 128), by dynamic programming over the sorted distinct values; centres are
    rounded to int8. Returns k int8 levels (padded by repeating the last one when fewer values exist)."""
    vals = np.nonzero(counts > 0)[0]
    if len(vals) == 0:
        return np.zeros(k, np.int8)
    v = (vals - 128).astype(np.float64)
    c = counts[vals].astype(np.float64)
    n = len(v)
    if n <= k:
        lv = v.astype(np.int64)
        return np.concatenate([lv, np.full(k - n, lv[-1])]).astype(np.int8)
    s0 = np.concatenate([[0.0], np.cumsum(c)])
    s1 = np.concatenate([[0.0], np.cumsum(c * v)])
    s2 = np.concatenate([[0.0], np.cumsum(c * v * v)])
    i = np.arange(n)[:, None]
    j = np.arange(n)[None, :]
    with np.errstate(divide="ignore", invalid="ignore"):
        w0 = s0[j + 1] - s0[i]
        cost = s2[j + 1] - s2[i] - (s1[j + 1] - s1[i]) ** 2 / w0
    cost = np.where(j >= i, np.maximum(cost, 0.0), np.inf)  # cost[i, j]: one cluster over values i..j
    d = cost[0].copy()                                         # d[j]: best with 1 cluster over 0..j
    back = np.zeros((k, n), np.int64)
    for m in range(1, k):
        prev = np.concatenate([[np.inf], d[:-1]])             # d_{m-1}[i - 1]
        tot = prev[:, None] + cost                             # start of the last cluster at i
        back[m] = np.argmin(tot, axis=0)
        d = tot[back[m], np.arange(n)]
    levels = []
    end = n - 1
    for m in range(k - 1, -1, -1):
        start = back[m][end] if m > 0 else 0
        w = s0[end + 1] - s0[start]
        levels.append(int(np.floor((s1[end + 1] - s1[start]) / w + 0.5)))
        end = start - 1
    return np.clip(np.array(levels[::-1]), -128, 127).astype(np.int8)


def nearest_index(levels: np.ndarray) -> np.ndarray:
    """For every value -128..127 the index of its nearest level (ties to the lower level)."""
    allv = np.arange(-128, 128)[:, None]
    return np.argmin(np.abs(allv - levels.astype(np.int64)[None, :]) * 2 + (levels[None, :] > allv), axis=1)


def activation_codebook(hist: np.ndarray, k: int, zp: int) -> tuple[np.ndarray, np.ndarray]:
    """K_a levels for a layer's input from its value histogram (length 256) with the zero point forced in:
    the centre of the cluster holding zp becomes zp, so ReLU zeros stay exact. Returns (levels, amap)."""
    h = hist.astype(np.float64).copy()
    h[zp + 128] += 1.0  # the zero point is always a level, even if calibration never saw it
    levels = kmeans_levels(h, k).astype(np.int64)
    near = int(np.argmin(np.abs(levels - zp)))
    levels[near] = zp
    levels = levels.astype(np.int8)
    return levels, nearest_index(levels).astype(np.uint8)


# ------------------------------------------------------------------ calibration statistics

def collect_stats(model_path, inputs: np.ndarray, max_samples: int = 512) -> dict[str, np.ndarray]:
    """Per conv/dw/fc layer, the histogram of its input values per input channel (conv, dw) or per input
    column (fc, in the model's own column order): int64 [C, 256], index = value + 128. Runs `inputs` (the
    model's input dtype, stacked on axis 0) through the plain model."""
    from .compiler import CompileOptions, compile_graph
    from .session import Model
    from .tflite_reader import read_tflite

    g = read_tflite(model_path)
    g.outputs = list(dict.fromkeys(g.outputs + [o for op in g.ops for o in op.outputs]))
    model = Model(compile_graph(g, CompileOptions(artefacts=False)), str(model_path))
    s = model.session()
    layers = [l for l in model.layers if l.op in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")]
    hists: dict[str, np.ndarray] = {}
    graph_in = {t.index for t in model.inputs}
    for x in np.asarray(inputs)[:max_samples]:
        x = x.reshape(model.inputs[0].shape)
        s.run(x)
        for l in layers:
            t = model.tensor_info(l.in_tensors[0])
            width = l.input_shapes[0][-1] if l.op != "FULLY_CONNECTED" else _fc_k(model, l)
            # every op output stays live (graph outputs), but the graph input's memory is reused after its
            # last reader: read what was fed instead
            v = x if l.in_tensors[0] in graph_in else s.tensor(l.in_tensors[0])
            a = v.astype(np.int64).reshape(-1, width) + (128 if t.dtype == np.int8 else 0)
            flat = (np.arange(width)[None, :] * 256 + a).reshape(-1)
            h = np.bincount(flat, minlength=width * 256).reshape(width, 256)
            hists[l.name] = h if l.name not in hists else hists[l.name] + h
    return hists


def _fc_k(model, layer) -> int:
    return model.tensor_info(layer.in_tensors[1]).shape[1]


def _windows(xc: np.ndarray, p: dict, kh: int, kw: int, oh: int, ow: int) -> np.ndarray:
    """[oh*ow, kh*kw, C] receptive fields of a centred [H, W, C] input (padding reads 0)."""
    H, W, C = xc.shape
    sh, sw, dh, dw, pt, pl = p["stride_h"], p["stride_w"], p["dil_h"], p["dil_w"], p["pad_top"], p["pad_left"]
    ph = max(0, (oh - 1) * sh + (kh - 1) * dh + 1 - pt - H)
    pw = max(0, (ow - 1) * sw + (kw - 1) * dw + 1 - pl - W)
    xp = np.pad(xc, ((pt, ph), (pl, pw), (0, 0)))
    taps = [xp[ky * dh:ky * dh + (oh - 1) * sh + 1:sh, kx * dw:kx * dw + (ow - 1) * sw + 1:sw]
            for ky in range(kh) for kx in range(kw)]
    return np.stack(taps, axis=2).reshape(oh * ow, kh * kw, C)


def collect_gram(model_path, inputs: np.ndarray, max_samples: int = 128, positions: int = 256) -> dict[str, tuple]:
    """Per conv/dw/fc layer, the second moments of its centred inputs x - zp as the layer's rows see them:
    (G, mu) with G = E[x x^T] and mu = E[x] over output positions: conv [K, K] and [K] in (ky, kx, ic) order
    (padding reads 0); depthwise [C, taps, taps] and [C, taps]; fc [K, K] and [K] in the model's own column
    order; at most `positions` output positions per input. Used to assign LUT weight indices by output error
    (make_lut)."""
    from .compiler import CompileOptions, compile_graph
    from .session import Model
    from .tflite_reader import read_tflite

    g = read_tflite(model_path)
    g.outputs = list(dict.fromkeys(g.outputs + [o for op in g.ops for o in op.outputs]))
    model = Model(compile_graph(g, CompileOptions(artefacts=False)), str(model_path))
    s = model.session()
    layers = [l for l in model.layers if l.op in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")]
    graph_in = {t.index for t in model.inputs}
    acc: dict[str, list] = {}
    for x in np.asarray(inputs)[:max_samples]:
        x = x.reshape(model.inputs[0].shape)
        s.run(x)
        for l in layers:  # noqa: B007
            t = model.tensor_info(l.in_tensors[0])
            v = (x if l.in_tensors[0] in graph_in else s.tensor(l.in_tensors[0])).astype(np.float32) - t.zero_point
            if l.op == "FULLY_CONNECTED":
                cols = v.reshape(-1, _fc_k(model, l))
                G, mu, n = cols.T @ cols, cols.sum(axis=0), cols.shape[0]
            else:
                wshape = model.tensor_info(l.in_tensors[1]).shape
                win = np.concatenate([_windows(b, l.params, wshape[1], wshape[2], l.output_shape[1], l.output_shape[2])
                                      for b in v])
                if win.shape[0] > positions:  # an even subset of the output positions: moments, not a census
                    win = win[np.linspace(0, win.shape[0] - 1, positions).astype(np.int64)]
                n = win.shape[0]
                if l.op == "CONV_2D":
                    cols = win.reshape(n, -1)
                    G, mu = cols.T @ cols, cols.sum(axis=0)
                else:
                    G, mu = np.einsum("mkc,mlc->ckl", win, win), win.sum(axis=0).T
            a = acc.setdefault(l.name, [0.0, 0.0, 0])
            a[0] = a[0] + G.astype(np.float64)
            a[1] = a[1] + mu.astype(np.float64)
            a[2] += n
    return {name: (G / n, mu / n) for name, (G, mu, n) in acc.items()}


def collect_patches(model_path, inputs: np.ndarray, max_samples: int = 256, positions: int = 32) -> dict[str, np.ndarray]:
    """Per CONV_2D layer, receptive fields of its centred inputs x - zp (padding reads 0), int16 [N, K] in
    (ky, kx, ic) order: an even subset of `positions` output positions from each of the first `max_samples`
    inputs. The conv preview's remainder tables are quantiles over them (preview_section)."""
    from .compiler import CompileOptions, compile_graph
    from .session import Model
    from .tflite_reader import read_tflite

    g = read_tflite(model_path)
    g.outputs = list(dict.fromkeys(g.outputs + [o for op in g.ops for o in op.outputs]))
    model = Model(compile_graph(g, CompileOptions(artefacts=False)), str(model_path))
    s = model.session()
    layers = [l for l in model.layers if l.op == "CONV_2D"]
    graph_in = {t.index for t in model.inputs}
    out: dict[str, list] = {l.name: [] for l in layers}
    for x in np.asarray(inputs)[:max_samples]:
        x = x.reshape(model.inputs[0].shape)
        s.run(x)
        for l in layers:
            t = model.tensor_info(l.in_tensors[0])
            v = (x if l.in_tensors[0] in graph_in else s.tensor(l.in_tensors[0])).astype(np.int16) - t.zero_point
            wshape = model.tensor_info(l.in_tensors[1]).shape
            win = np.concatenate([_windows(b, l.params, wshape[1], wshape[2], l.output_shape[1], l.output_shape[2])
                                  for b in v])
            if win.shape[0] > positions:
                win = win[np.linspace(0, win.shape[0] - 1, positions).astype(np.int64)]
            out[l.name].append(win.reshape(win.shape[0], -1).astype(np.int16))
    return {k: np.concatenate(v) for k, v in out.items() if v}


def calibrate(model_path, inputs: np.ndarray, options=None, max_samples: int = 512, gram_samples: int = 128,
              patch_samples: int = 256):
    """CompileOptions (a copy of `options`, else the defaults) carrying approx_stats (input histograms) and,
    when gram_samples > 0, approx_gram (input second moments), when patch_samples > 0 approx_patches (conv
    receptive fields, for the preview's remainder quantiles) from `inputs`."""
    from dataclasses import replace

    from .compiler import CompileOptions
    base = options if options is not None else CompileOptions()
    gram = collect_gram(model_path, inputs, gram_samples) if gram_samples > 0 else None
    patches = collect_patches(model_path, inputs, patch_samples) if patch_samples > 0 else None
    return replace(base, approx_stats=collect_stats(model_path, inputs, max_samples), approx_gram=gram,
                   approx_patches=patches)


def _refine(W: np.ndarray, Q: np.ndarray, idx: np.ndarray, LV: np.ndarray, C: np.ndarray, passes: int = 2):
    """Coordinate descent on the output error of rows W [n, K] quantized to Q = LV[row, idx] under the input
    covariance C [K, K] shared by the rows: each index may move to a neighbouring level when that lowers
    e^T C e, e = W - Q. Each row of LV (its levels) is sorted ascending. Updates Q and idx in place."""
    n, K = W.shape
    G = (W - Q) @ C
    rows = np.arange(n)
    top = LV.shape[1] - 1
    for _ in range(passes):
        changed = 0
        for j in range(K):
            best_d = np.zeros(n)
            best_gain = np.zeros(n)
            best_i = idx[:, j].copy()
            for step in (-1, 1):
                ni = np.clip(idx[:, j] + step, 0, top)
                d = LV[rows, ni] - Q[:, j]                # Q_j grows by d, e_j shrinks by d
                gain = 2 * d * G[:, j] - d * d * C[j, j]  # decrease of e^T C e
                better = gain > best_gain + 1e-9
                best_gain = np.where(better, gain, best_gain)
                best_d = np.where(better, d, best_d)
                best_i = np.where(better, ni, best_i)
            mv = best_d != 0
            if mv.any():
                changed += int(mv.sum())
                Q[mv, j] += best_d[mv]
                idx[mv, j] = best_i[mv]
                G[mv] -= best_d[mv][:, None] * C[j][None, :]
        if not changed:
            break


def _refit_levels(W: np.ndarray, idx: np.ndarray, kw: int, C: np.ndarray, lv: np.ndarray) -> np.ndarray:
    """Codebook levels minimising sum over rows of (w - A c)^T C (w - A c) for fixed indices (A: one-hot of
    idx), rounded to int8 (levels no index uses keep their value)."""
    K = W.shape[1]
    M = np.zeros(kw * kw)
    b = np.zeros(kw)
    for r in range(W.shape[0]):
        ix = idx[r]
        M += np.bincount((ix[:, None] * kw + ix[None, :]).reshape(-1), weights=C.reshape(-1), minlength=kw * kw)
        b += np.bincount(ix, weights=C @ W[r], minlength=kw)
    M = M.reshape(kw, kw)
    used = np.bincount(idx.reshape(-1), minlength=kw) > 0
    out = lv.astype(np.float64).copy()
    if used.any():
        out[used] = np.linalg.lstsq(M[np.ix_(used, used)], b[used], rcond=None)[0]
    del K
    return np.clip(np.floor(out + 0.5), -128, 127)


# ------------------------------------------------------------------ per-layer artefacts

@dataclass
class LayerGeom:
    """What the writer needs to know about a layer beside its weights."""
    kind: str                   # CONV_2D, DEPTHWISE_CONV_2D, FULLY_CONNECTED
    rows_w: np.ndarray          # int8 [rows, K], position order as in artefacts.h
    bias: np.ndarray            # int64 [rows]
    in_zp: int
    relu: bool                  # act_min >= out_zp: the output cannot go below real zero
    tap_valid: np.ndarray | None = None  # conv/dw: fraction of outputs for which tap (ky, kx) is inside
    cin: int = 1                # conv: input channels per tap; dw: depth multiplier in `dm`
    dm: int = 1
    col_order: np.ndarray | None = None  # fc: stored column j is original column col_order[j]


def tap_valid_fraction(h, w, oh, ow, kh, kw, sh, sw, dh, dw, pt, pl) -> np.ndarray:
    """[kh, kw]: the fraction of output positions whose tap (ky, kx) reads inside the input (not padding)."""
    fy = np.array([np.mean([0 <= oy * sh - pt + ky * dh < h for oy in range(oh)]) for ky in range(kh)])
    fx = np.array([np.mean([0 <= ox * sw - pl + kx * dw < w for ox in range(ow)]) for kx in range(kw)])
    return fy[:, None] * fx[None, :]


def _position_moments(geom: LayerGeom, hist: np.ndarray | None, zp: int, codes: np.ndarray | None = None):
    """Per row and position: E[v - zp] and E[(x - zp)^2] and E|x - zp| over calibration data, where v is
    the input value (or codes[value] when an activation codebook maps it). None without data."""
    if hist is None:
        return None
    vals = np.arange(-128, 128, dtype=np.float64)
    p = hist / np.maximum(hist.sum(axis=1, keepdims=True), 1)
    cv = vals if codes is None else codes.astype(np.float64)
    m1 = p @ (cv - zp)                     # per channel / column
    m2 = p @ ((vals - zp) ** 2)
    ma = p @ np.abs(vals - zp)
    R, K = geom.rows_w.shape
    if geom.kind == "CONV_2D":
        tv = geom.tap_valid.reshape(-1)
        f = np.repeat(tv, geom.cin)        # position (ky, kx, ic)
        def per(m): return np.broadcast_to((f * np.tile(m, len(tv)))[None, :], (R, K))
    elif geom.kind == "DEPTHWISE_CONV_2D":
        tv = geom.tap_valid.reshape(-1)
        ic = np.arange(R) // geom.dm
        def per(m): return m[ic][:, None] * tv[None, :]
    else:
        order = geom.col_order if geom.col_order is not None else np.arange(K)
        def per(m): return np.broadcast_to(m[order][None, :], (R, K))
    return per(m1), per(m2), per(ma)


def sorted_order(rows_w: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per row: positives by |w| descending, negatives by |w| descending, zeros (ties by position)."""
    R, K = rows_w.shape
    w = rows_w.astype(np.int64)
    group = np.where(w > 0, 0, np.where(w < 0, 1, 2))
    pos = np.broadcast_to(np.arange(K), (R, K))
    order = np.stack([np.lexsort((pos[r], -np.abs(w[r]), group[r])) for r in range(R)]) if R else np.zeros((0, K), np.int64)
    return order, (w > 0).sum(axis=1), (w < 0).sum(axis=1)


def preview_order(geom: LayerGeom, hist: np.ndarray | None) -> np.ndarray:
    """Per row: positions by importance |w| * std(x) (by |w| without data), most important first: the
    positions whose products vary most are seen first, the remainder's spread (the estimate's margin) is then
    smallest (measured on ResNet-8: more skips at a given error rate than |w| * E|x - zp|)."""
    w = np.abs(geom.rows_w.astype(np.float64))
    mom = _position_moments(geom, hist, geom.in_zp)
    imp = w * np.sqrt(np.maximum(mom[1] - mom[0] ** 2, 0.0)) if mom is not None else w
    R, K = w.shape
    pos = np.arange(K)
    return np.stack([np.lexsort((pos, -w[r], -imp[r])) for r in range(R)]) if R else np.zeros((0, K), np.int64)


def preview_lengths(K: int, steps: int) -> np.ndarray:
    """The tabulated preview prefix lengths: ceil(q * K / steps) for q = 1..steps, de-duplicated."""
    return np.unique(np.array([-(-q * K // steps) for q in range(1, steps + 1)], np.int64))


def preview_section(geom: LayerGeom, hist: np.ndarray | None, steps: int, sigma: float,
                    patches: np.ndarray | None = None, quantile: float = 0.995) -> bytes:
    """PREVIEW payload: prefix lengths, per row the estimate of each remainder and the importance orders.
    The estimate: with calibration receptive fields (`patches`, [N, K] centred), the `quantile` of the
    remainder's sum over them (empirical: the remainder's spread includes the inputs' correlations); else the
    calibration mean of the positions after the prefix plus `sigma` standard deviations of independent inputs;
    0 without data."""
    R, K = geom.rows_w.shape
    order = preview_order(geom, hist)
    plen = preview_lengths(K, max(1, min(int(steps), 64)))
    rest = np.zeros((R, len(plen)), np.int64)
    mom = _position_moments(geom, hist, geom.in_zp)
    if patches is not None and patches.shape[1] == K and len(patches):
        X = patches.astype(np.int32)
        for r in range(R):
            c = X[:, order[r]] * geom.rows_w[r, order[r]].astype(np.int32)[None, :]   # [N, K]
            tail = np.concatenate([np.cumsum(c[:, ::-1], axis=1)[:, ::-1], np.zeros((len(c), 1), np.int32)], axis=1)
            rest[r] = np.ceil(np.quantile(tail[:, plen], quantile, axis=0))
    elif mom is not None:
        w = np.take_along_axis(geom.rows_w.astype(np.float64), order, axis=1)
        m1 = np.take_along_axis(np.asarray(mom[0], np.float64), order, axis=1)
        var = np.maximum(np.take_along_axis(np.asarray(mom[1] - mom[0] ** 2, np.float64), order, axis=1), 0.0)
        # suffix sums: tail[:, j] = sum over positions j.. of the order
        tail_m = np.concatenate([np.cumsum((w * m1)[:, ::-1], axis=1)[:, ::-1], np.zeros((R, 1))], axis=1)
        tail_v = np.concatenate([np.cumsum((w * w * var)[:, ::-1], axis=1)[:, ::-1], np.zeros((R, 1))], axis=1)
        est = tail_m[:, plen] + sigma * np.sqrt(tail_v[:, plen])
        rest = np.clip(np.round(est), -2**31, 2**31 - 1).astype(np.int64)
    out = bytearray(struct.pack("<HH", len(plen), 0) + plen.astype("<u2").tobytes())
    _pad4(out)
    out += rest.astype("<i4").tobytes() + _idx_bytes(order, K)
    return bytes(out)


@dataclass
class LutConfig:
    kw: int
    ka: int
    per_channel: bool
    ca: np.ndarray | None       # int8 [K_a] (None for K_a = 256)
    amap: np.ndarray | None     # uint8 [256]
    cw: np.ndarray              # int8 [B, K_w]
    widx: np.ndarray            # uint8 [rows, K]
    bias: np.ndarray            # int32 [rows]


def make_lut(geom: LayerGeom, kw: int, ka: int, per_channel: bool, hist: np.ndarray | None,
             bias_correction: bool = True, weighting: str = "activation", where: str = "",
             gram: tuple | None = None) -> LutConfig:
    """One look-up-table configuration of a layer (see the module docstring). With `gram` (the layer's input
    second moments, collect_gram) the weight indices and levels are then refined by output error: a few rounds
    of coordinate descent on e^T Cov e and a least-squares refit of the levels."""
    R, K = geom.rows_w.shape
    zp = geom.in_zp
    if not (2 <= kw <= 256 and 2 <= ka <= 256):
        raise UnsupportedModelError(f"{where}: lut ({kw}, {ka}): K_w and K_a must be in [2, 256]")
    if ka < 256:
        if hist is None:
            raise UnsupportedModelError(f"{where}: lut ({kw}, {ka}): an activation codebook needs calibration data "
                                        "(CompileOptions.approx_stats, see tunable.artefacts.calibrate)")
        ca, amap = activation_codebook(hist.sum(axis=0), ka, zp)
        codes = ca[amap.astype(np.int64)]
    else:
        ca = amap = codes = None
    w = geom.rows_w.astype(np.int64)
    mom = _position_moments(geom, hist, zp)
    # importance of each weight for the codebook fit: E[(x - zp)^2] of its input (activation-aware k-means)
    wt = mom[1] if (mom is not None and weighting == "activation") else np.ones((R, K))
    books = []
    idx = np.zeros((R, K), np.uint8)
    for b in range(R if per_channel else 1):
        sel = w[b:b + 1] if per_channel else w
        ws = wt[b:b + 1] if per_channel else wt
        counts = np.bincount((sel + 128).reshape(-1), weights=ws.reshape(-1) + 1e-9, minlength=256)
        lv = kmeans_levels(counts, kw)
        near = nearest_index(lv)
        if per_channel:
            idx[b] = near[w[b] + 128]
        else:
            idx[:] = near[w + 128]
        books.append(lv)
    cw = np.stack(books).astype(np.int8)
    if gram is not None and kw < 256:
        cw, idx = _gram_refine(geom, w, cw, idx, per_channel, gram)
    bias = geom.bias.astype(np.int64).copy()
    if bias_correction and mom is not None:
        # E[exact] - E[lut] per row: sum_j w_j E[x_j - zp] - c_w(j) E[c_a(x_j) - zp]
        cwr = cw[np.arange(R) if per_channel else np.zeros(R, np.int64)]
        wq = np.take_along_axis(cwr.astype(np.int64), idx.astype(np.int64), axis=1)
        m_exact = mom[0]
        m_lut = _position_moments(geom, hist, zp, codes)[0] if codes is not None else m_exact
        bias += np.round((w * m_exact - wq * m_lut).sum(axis=1)).astype(np.int64)
    if np.any(np.abs(bias) >= 2**31):
        raise UnsupportedModelError(f"{where}: lut ({kw}, {ka}): corrected bias overflows int32")
    return LutConfig(kw, ka, per_channel, ca, amap, cw, idx, bias.astype(np.int32))


def _covariances(geom: LayerGeom, gram: tuple):
    """Per row the centred input covariance of its K positions (a shared [K, K] for conv/fc, else [R, K, K])."""
    G, mu = gram
    if geom.kind == "DEPTHWISE_CONV_2D":
        cov = G - mu[:, :, None] * mu[:, None, :]
        return cov[np.arange(geom.rows_w.shape[0]) // geom.dm]
    if geom.kind == "FULLY_CONNECTED" and geom.col_order is not None:
        o = geom.col_order
        G, mu = G[np.ix_(o, o)], mu[o]
    return G - np.outer(mu, mu)


def _gram_refine(geom: LayerGeom, w: np.ndarray, cw: np.ndarray, idx: np.ndarray, per_channel: bool, gram: tuple):
    R, K = w.shape
    cov = _covariances(geom, gram)
    ridge = lambda c: c + np.eye(K) * (1e-3 * max(float(np.trace(c)) / K, 1e-9))  # noqa: E731
    groups = [list(range(R))] if cov.ndim == 2 else [[r] for r in range(R)]  # rows sharing one covariance
    LV = (cw if per_channel else np.broadcast_to(cw[0], (R, cw.shape[1]))).astype(np.float64).copy()
    idx = idx.astype(np.int64)
    Wf = w.astype(np.float64)
    for _ in range(2):
        order = np.argsort(LV, axis=1, kind="stable")
        LV = np.take_along_axis(LV, order, axis=1)
        idx = np.take_along_axis(np.argsort(order, axis=1), idx, axis=1)
        for rows in groups:
            C = ridge(cov if cov.ndim == 2 else cov[rows[0]])
            Q = np.take_along_axis(LV[rows], idx[rows], axis=1)
            sub = idx[rows].copy()
            _refine(Wf[rows], Q, sub, LV[rows], C)
            idx[rows] = sub
            if per_channel:
                for r in rows:
                    LV[r] = _refit_levels(Wf[r:r + 1], idx[r:r + 1], LV.shape[1], C, LV[r])
        if not per_channel and cov.ndim == 2:  # one codebook for the layer, one covariance: refit jointly
            LV[:] = _refit_levels(Wf, idx, LV.shape[1], ridge(cov), LV[0])[None, :]
    books = LV if per_channel else LV[:1]
    return np.clip(books, -128, 127).astype(np.int8), idx.astype(np.uint8)


def _pad4(b: bytearray) -> None:
    b.extend(b"\0" * (-len(b) % 4))


def _idx_bytes(a: np.ndarray, K: int) -> bytes:
    return np.ascontiguousarray(a, dtype="<u2" if K > 256 else np.uint8).tobytes()


def lut_section(cfg: LutConfig, zp: int) -> bytes:
    R, K = cfg.widx.shape
    wbits = 4 if cfg.kw <= 16 else 8
    out = bytearray(struct.pack("<HHBBHiI", cfg.kw, cfg.ka, int(cfg.per_channel), wbits, 0, zp, 0))
    if cfg.ka < 256:
        out += cfg.ca.astype(np.int8).tobytes() + cfg.amap.astype(np.uint8).tobytes()
        _pad4(out)
    out += cfg.cw.astype(np.int8).tobytes()
    _pad4(out)
    if wbits == 8:
        out += cfg.widx.astype(np.uint8).tobytes()
    else:
        ix = cfg.widx.astype(np.uint8)
        if K % 2:
            ix = np.concatenate([ix, np.zeros((R, 1), np.uint8)], axis=1)
        out += (ix[:, 0::2] | (ix[:, 1::2] << 4)).astype(np.uint8).tobytes()
    _pad4(out)
    out += cfg.bias.astype("<i4").tobytes()
    ca = (np.arange(-128, 128) if cfg.ka == 256 else cfg.ca.astype(np.int64)) - zp
    P = ca[None, :, None] * cfg.cw.astype(np.int64)[:, None, :]   # [B][K_a][K_w]
    assert np.abs(P).max(initial=0) <= 32767
    out += P.astype("<i2").tobytes()
    return bytes(out)


def build_blob(rows_w: np.ndarray, sections: list[tuple[int, int, bytes]]) -> bytes:
    """Header, section table and the 4-aligned sections [(kind, arg, payload)]."""
    R, K = rows_w.shape
    head = bytearray(MAGIC + struct.pack("<HHII", VERSION, len(sections), R, K))
    start = len(head) + 16 * len(sections)
    body = bytearray()
    table = bytearray()
    for kind, arg, payload in sections:
        off = start + len(body)
        table += struct.pack("<IIII", kind, off, len(payload), arg)
        body += payload
        _pad4(body)
    return bytes(head + table + body)


def layer_artefacts(geom: LayerGeom, name: str, options) -> np.ndarray | None:
    """The uint8 blob of one layer for CompileOptions `options`, or None when it holds nothing."""
    R, K = geom.rows_w.shape
    if K > 65535:
        return None
    stats = (getattr(options, "approx_stats", None) or {}).get(name)
    if stats is not None and geom.kind == "FULLY_CONNECTED" and stats.shape[0] != K:
        stats = None
    if stats is not None and geom.kind != "FULLY_CONNECTED" and stats.shape[0] != _in_channels(geom):
        stats = None
    sections: list[tuple[int, int, bytes]] = []
    order, npos, nneg = sorted_order(geom.rows_w)
    sections.append((SORTED, 0, np.concatenate([npos, nneg]).astype("<u2").tobytes() + _idx_bytes(order, K)))
    if geom.kind == "CONV_2D" and geom.relu:
        patches = (getattr(options, "approx_patches", None) or {}).get(name)
        q = getattr(options, "preview_quantile", 0.995)
        if isinstance(q, dict):
            q = q.get(name, 0.995)
        sections.append((PREVIEW, 0, preview_section(geom, stats, getattr(options, "preview_steps", 32),
                                                      getattr(options, "preview_sigma", 1.0), patches, float(q))))
    for i, (kw, ka) in enumerate(lut_configs_for(options, name, geom.kind), start=1):
        gram = (getattr(options, "approx_gram", None) or {}).get(name)
        cfg = make_lut(geom, kw, ka, getattr(options, "lut_codebook", "layer") == "channel", stats,
                       getattr(options, "lut_bias_correction", True), getattr(options, "lut_weighting", "activation"),
                       where=name, gram=gram if getattr(options, "lut_assign", "gram") == "gram" else None)
        sections.append((LUT, i, lut_section(cfg, geom.in_zp)))
    return np.frombuffer(build_blob(geom.rows_w, sections), np.uint8).copy()


def _in_channels(geom: LayerGeom) -> int:
    return geom.cin if geom.kind == "CONV_2D" else geom.rows_w.shape[0] // geom.dm


def lut_configs_for(options, name: str, kind: str) -> list[tuple[int, int]]:
    """The (K_w, K_a) configurations CompileOptions.lut asks for on layer `name`, de-duplicated, in order."""
    spec = getattr(options, "lut", None)
    if spec is None:
        return []
    if isinstance(spec, str):
        if spec != "default":
            raise UnsupportedModelError(f"CompileOptions.lut = {spec!r}: expected 'default', a list of (K_w, K_a) "
                                        "or a {layer: [(K_w, K_a), ...]} mapping")
        cfgs = list(DEFAULT_LUT)
    elif isinstance(spec, dict):
        cfgs = list(spec.get(name, []))
    else:
        cfgs = list(spec)
    out = []
    for c in cfgs:
        t = (int(c[0]), int(c[1]))
        if t not in out:
            out.append(t)
    if len(out) > 255:
        raise UnsupportedModelError(f"{name}: {len(out)} lut configurations (at most 255)")
    return out


def conv_geom(w: np.ndarray, depthwise: bool, bias, in_zp: int, relu: bool, x_shape, y_shape, strides, dils,
              pads) -> LayerGeom:
    """LayerGeom of a conv/depthwise layer from its TFLite weights ([Cout,KH,KW,Cin] / [1,KH,KW,Cout])."""
    kh, kw = w.shape[1], w.shape[2]
    tv = tap_valid_fraction(x_shape[1], x_shape[2], y_shape[1], y_shape[2], kh, kw, *strides, *dils, *pads)
    if depthwise:
        cout = w.shape[3]
        return LayerGeom("DEPTHWISE_CONV_2D", np.ascontiguousarray(w.reshape(kh * kw, cout).T), np.asarray(bias),
                         in_zp, relu, tv, cin=x_shape[3], dm=cout // x_shape[3])
    return LayerGeom("CONV_2D", np.ascontiguousarray(w.reshape(w.shape[0], -1)), np.asarray(bias), in_zp, relu, tv,
                     cin=w.shape[3])


# ------------------------------------------------------------------ reading a loaded plan

_CONFIGS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def _const_bytes(plan: bytes, tensor: int) -> bytes:
    n_sections = struct.unpack_from("<I", plan, 16)[0]
    secs = {}
    for i in range(n_sections):
        sid, off, size, count = struct.unpack_from("<IIII", plan, ps.HEADER_BYTES + 16 * i)
        secs[sid] = (off, size)
    toff = secs[ps.SECTIONS["TENSORS"]][0] + tensor * ps.TENSOR_RECORD_BYTES
    rec = struct.unpack_from("<BBBB6iifIII", plan, toff)
    offset, nbytes = rec[12], rec[13]
    c0 = secs[ps.SECTIONS["CONST"]][0]
    return plan[c0 + offset:c0 + offset + nbytes]


def parse_sections(blob: bytes) -> list[tuple[int, int, bytes]]:
    """[(kind, arg, payload)] of a blob."""
    if blob[:4] != MAGIC:
        raise ValueError("not an artefacts blob")
    _, n, _, _ = struct.unpack_from("<HHII", blob, 4)
    out = []
    for i in range(n):
        kind, off, size, arg = struct.unpack_from("<IIII", blob, 16 + 16 * i)
        out.append((kind, arg, blob[off:off + size]))
    return out


def layer_blob(model, layer) -> bytes | None:
    """The artefacts blob of a loaded model's layer (a LayerInfo), or None."""
    slot = ps.OPS[layer.op]["inputs"].index("artefacts") if "artefacts" in ps.OPS.get(layer.op, {}).get("inputs", []) else -1
    if slot < 0 or slot >= len(layer.in_tensors) or layer.in_tensors[slot] < 0:
        return None
    return _const_bytes(model.plan, layer.in_tensors[slot])


def layer_info(model, layer) -> dict:
    """What a loaded model's layer holds: {"luts": {(K_w, K_a): id}, "preview": [prefix lengths],
    "sorted": bool}."""
    per_model = _CONFIGS.setdefault(model, {})
    if layer.name not in per_model:
        blob = layer_blob(model, layer)
        info = {"luts": {}, "preview": [], "sorted": False}
        if blob is not None:
            for kind, arg, payload in parse_sections(blob):
                if kind == LUT:
                    kw, ka = struct.unpack_from("<HH", payload, 0)
                    info["luts"][(kw, ka)] = arg
                elif kind == PREVIEW:
                    nq = struct.unpack_from("<H", payload, 0)[0]
                    info["preview"] = list(struct.unpack_from(f"<{nq}H", payload, 4))
                elif kind == SORTED:
                    info["sorted"] = True
        per_model[layer.name] = info
    return per_model[layer.name]


def lut_configs(model, layer) -> dict[tuple[int, int], int]:
    """{(K_w, K_a): configuration id} of a loaded model's layer."""
    return layer_info(model, layer)["luts"]


def preview_length(model, layer, fraction: float, K: int) -> int:
    """The preview prefix length for `fraction` of the reduction: the smallest tabulated length >=
    ceil(fraction * K) (the plan tabulates the estimator at CompileOptions.preview_steps fractions)."""
    plens = layer_info(model, layer)["preview"]
    if not plens:
        raise KnobError(f"conv_preview on {layer.name}: this plan has no preview artefacts (compile with artefacts on)")
    want = max(1, math.ceil(fraction * K - 1e-9))
    for p in plens:
        if p >= want:
            return p
    return plens[-1]


def lut_index(model, layer, kw_ka) -> int:
    """The runtime's lut_enable value for (K_w, K_a) on `layer`; KnobError when the plan lacks it."""
    cfgs = lut_configs(model, layer)
    key = (int(kw_ka[0]), int(kw_ka[1]))
    if key not in cfgs:
        have = ", ".join(f"{a}x{b}" for a, b in sorted(cfgs)) or "none"
        raise KnobError(f"lut on {layer.name}: configuration {key[0]}x{key[1]} is not in this plan (it has: {have}); "
                        "compile with CompileOptions(lut=...) to add it")
    return cfgs[key]


def weight_bits(kw: int) -> int:
    return max(1, math.ceil(math.log2(kw)))
