"""Compiles a .tflite graph to a plan: uint8 -> int8 shift, multipliers, bias folding, arena planning.

Each TFLite op is lowered by a function registered with @lowering(NAME); lowerings for the activation and
reduction ops live in lower_activations.py. The plan holds everything that does not depend on the input.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from . import planspec as ps
from .errors import UnsupportedModelError
from .graph import Graph, Op, Tensor
from .plan import PlanOp, PlanTensor, plan_arena, serialize
from .quant import activation_range, quantize_multipliers

COMPILER_VERSION = "6"

LOWERINGS: dict[str, Callable[["Lowering", Op], None]] = {}

# layer-name prefixes; the n-th op of a kind is PREFIX_n (stable for a given model, shown by inspect)
LAYER_PREFIX = {"CONV_2D": "conv", "DEPTHWISE_CONV_2D": "dw", "FULLY_CONNECTED": "fc", "ADD": "add", "MUL": "mul",
                "AVERAGE_POOL_2D": "avgpool", "MAX_POOL_2D": "maxpool", "MEAN": "mean", "PAD": "pad",
                "PADV2": "pad", "RESHAPE": "reshape", "SQUEEZE": "squeeze", "CONCATENATION": "concat",
                "SOFTMAX": "softmax", "LOGISTIC": "logistic", "RELU": "relu", "RELU6": "relu6",
                "RELU_N1_TO_1": "relu1", "HARD_SWISH": "hardswish", "QUANTIZE": "quantize",
                "DEQUANTIZE": "dequantize"}


def lowering(*names: str):
    def deco(fn):
        for n in names:
            LOWERINGS[n] = fn
        return fn
    return deco


@dataclass
class CompileOptions:
    # per conv layer name -> (rank_channel, rank_row) int32 arrays, made by calibration (knobs)
    conv_ranks: dict | None = None
    # per FC layer name -> column order (most important first); default: by ||W[:, j]||_1 (AIP)
    aip_order: dict | None = None
    # knob artefacts on or off (off reproduces the plain plan, e.g. for size comparisons)
    artefacts: bool = True
    # approximate knobs (tunable/artefacts.py). Look-up-table configurations: None (none), "default"
    # (artefacts.DEFAULT_LUT on every conv/dw/fc layer), a list of (K_w, K_a) for every such layer, or
    # {layer: [(K_w, K_a), ...]}; weight codebooks per "layer" or per output "channel"
    lut: object = None
    lut_codebook: str = "layer"
    lut_bias_correction: bool = True     # correct each row's bias for the codebooks' mean error
    lut_weighting: str = "activation"    # weight k-means weighted by E[(x - zp)^2] of each input ("uniform": not)
    # per conv/dw/fc layer: input value histograms [C, 256] from calibration (artefacts.collect_stats)
    approx_stats: dict | None = None
    # per conv/dw/fc layer: input second moments (artefacts.collect_gram); with lut_assign = "gram" the LUT
    # weight indices and levels are refined by output error ("nearest": plain k-means assignment)
    approx_gram: dict | None = None
    lut_assign: str = "gram"
    # conv preview: estimator tables at this many fractions of the reduction (the preview checks at each one
    # from the knob's fraction on). The remainder estimate: with calibration receptive fields (approx_patches,
    # per CONV_2D layer, centred [N, K], artefacts.collect_patches) the preview_quantile of the remainder's sum
    # over them (a float, or {layer: float}; larger: fewer, safer skips; 0.995 chosen on the training split by
    # the rate of wrongly skipped elements); without them, the remainder's mean plus preview_sigma standard
    # deviations of independent inputs (from the input histograms)
    preview_steps: int = 32
    preview_sigma: float = 1.0
    approx_patches: dict | None = None
    preview_quantile: object = 0.995

    def key(self) -> str:
        """A stable digest of the options, for the plan cache."""
        import hashlib
        h = hashlib.sha256(repr(self.artefacts).encode())
        h.update(repr((self.lut if not isinstance(self.lut, dict) else sorted(self.lut.items()), self.lut_codebook,
                       self.lut_bias_correction, self.lut_weighting, self.preview_steps, self.preview_sigma)).encode())
        q = self.preview_quantile
        h.update(repr(sorted(q.items()) if isinstance(q, dict) else q).encode())
        for name in sorted(self.approx_patches or {}):
            h.update(name.encode() + np.ascontiguousarray(self.approx_patches[name], dtype=np.int16).tobytes())
        for name in sorted(self.approx_stats or {}):
            h.update(name.encode() + np.ascontiguousarray(self.approx_stats[name], dtype=np.int64).tobytes())
        h.update(self.lut_assign.encode())
        for name in sorted(self.approx_gram or {}):
            for a in self.approx_gram[name]:
                h.update(name.encode() + np.ascontiguousarray(a, dtype=np.float64).tobytes())
        for d in (self.conv_ranks, self.aip_order):
            for name in sorted(d or {}):
                h.update(name.encode())
                for a in (d[name] if isinstance(d[name], tuple) else (d[name],)):
                    h.update(np.ascontiguousarray(a, dtype=np.int32).tobytes())
        return h.hexdigest()[:16]


class Lowering:
    """State of one compilation: plan tensors and ops, and the map from graph tensors to plan tensors."""

    def __init__(self, graph: Graph, options: CompileOptions | None = None):
        self.g = graph
        self.options = options or CompileOptions()
        self.tensors: list[PlanTensor] = []
        self.ops: list[PlanOp] = []
        self.map: dict[int, int] = {}
        self._counts: dict[str, int] = {}

    # ---- errors ----
    def fail(self, op: Op, msg: str) -> UnsupportedModelError:
        return UnsupportedModelError(f"{op.where(self.g.path)}: {msg}")

    # ---- tensors ----
    def gt(self, i: int) -> Tensor:
        return self.g.tensors[i]

    def t(self, gi: int) -> int:
        """Plan tensor for graph tensor gi (made on first use)."""
        if gi in self.map:
            return self.map[gi]
        src = self.g.tensors[gi]
        if src.dtype not in ("int8", "uint8", "int16", "int32", "float32"):
            raise UnsupportedModelError(f"{self.g.path}: tensor {gi} '{src.name}' has type {src.dtype}")
        scale = float(src.scale[0]) if src.scale is not None and len(src.scale) else 0.0
        pt = PlanTensor(src.name or f"t{gi}", src.dtype, tuple(src.shape) or (1,), scale, src.zp,
                        None if src.data is None else np.asarray(src.data).reshape(tuple(src.shape) or (1,)))
        self.map[gi] = len(self.tensors)
        self.tensors.append(pt)
        return self.map[gi]

    def const(self, arr: np.ndarray, name: str) -> int:
        arr = np.ascontiguousarray(arr)
        self.tensors.append(PlanTensor(name, arr.dtype.name, tuple(arr.shape) or (1,), 0.0, 0,
                                       arr.reshape(tuple(arr.shape) or (1,))))
        return len(self.tensors) - 1

    def arena(self, name: str, dtype: str, shape, scale: float = 0.0, zp: int = 0) -> int:
        self.tensors.append(PlanTensor(name, dtype, tuple(shape), scale, zp))
        return len(self.tensors) - 1

    def layer_name(self, opname: str) -> str:
        prefix = LAYER_PREFIX.get(opname, opname.lower())
        self._counts[prefix] = self._counts.get(prefix, 0) + 1
        return f"{prefix}_{self._counts[prefix]}"

    def emit(self, opname: str, inputs: list[int], outputs: list[int], params: dict[str, int], src: Op,
             name: str | None = None) -> PlanOp:
        op = PlanOp(opname, list(inputs), list(outputs), {k: int(v) for k, v in params.items()},
                    name or self.layer_name(src.opname), src.index)
        self.ops.append(op)
        return op

    # ---- common checks ----
    def require_int8(self, op: Op, *gis: int) -> None:
        for gi in gis:
            t = self.g.tensors[gi]
            if t.dtype != "int8":
                raise self.fail(op, f"tensor {gi} '{t.name}' is {t.dtype}, expected int8")
            if t.scale is None:
                raise self.fail(op, f"tensor {gi} '{t.name}' has no quantization parameters")

    def act_range(self, op: Op, out: Tensor) -> tuple[int, int]:
        fused = op.options.get("fused_activation_function", "NONE")
        try:
            return activation_range(fused, out.s, out.zp)
        except ValueError as e:
            raise self.fail(op, str(e)) from None


# ------------------------------------------------------------------ passes over the graph

def _check_quantized(g: Graph) -> None:
    float_ops = [o for o in g.ops if o.opname not in ("QUANTIZE", "DEQUANTIZE")
                 and any(g.tensors[i].dtype == "float32" for i in o.inputs + o.outputs if i >= 0)]
    if float_ops:
        o = float_ops[0]
        raise UnsupportedModelError(
            f"{g.path}: float32 model (node {o.index} {o.opname} computes in float). tunable runs full-integer "
            "int8 models: convert with tf.lite.TFLiteConverter, optimizations=[tf.lite.Optimize.DEFAULT], a "
            "representative_dataset, and target_spec.supported_ops=[tf.lite.OpsSet.TFLITE_BUILTINS_INT8]")
    for t in g.tensors:
        if t.dtype == "int16" and t.data is None:
            raise UnsupportedModelError(f"{g.path}: tensor {t.index} '{t.name}': int16 activations (16x8 "
                                        "quantization) are not supported")


def shift_uint8(g: Graph) -> tuple[dict[int, int], dict[int, int]]:
    """Legacy uint8 models: every uint8 tensor becomes int8 with value - 128 and zero point - 128, which is
    the same arithmetic. Graph inputs/outputs keep a uint8 twin at the boundary; returns {int8: uint8 twin}
    for inputs and for outputs."""
    in_twins: dict[int, int] = {}
    out_twins: dict[int, int] = {}
    for t in list(g.tensors):
        if t.dtype != "uint8":
            continue
        if t.index in g.inputs or t.index in g.outputs:
            twin = Tensor(len(g.tensors), t.name, t.shape, "uint8", t.scale, t.zero_point, t.quant_axis, None)
            g.tensors.append(twin)
            if t.index in g.inputs:
                in_twins[t.index] = twin.index
            else:
                out_twins[t.index] = twin.index
        if t.data is not None:
            t.data = (t.data.astype(np.int16) - 128).astype(np.int8)
        if t.zero_point is not None:
            t.zero_point = t.zero_point - 128
        t.dtype = "int8"
    return in_twins, out_twins


def compile_graph(g: Graph, options: CompileOptions | None = None) -> bytes:
    from . import lower_activations  # noqa: F401  (registers the activation lowerings)

    _check_quantized(g)
    # a legacy uint8 model has uint8 tensors inside the graph, not only at its boundary (an int8 model with
    # uint8 inputs converts them with QUANTIZE); a few of its ops round as uint8 (see _pool)
    legacy_uint8 = any(t.dtype == "uint8" and t.index not in g.inputs and t.index not in g.outputs
                       for t in g.tensors)
    in_twins, out_twins = shift_uint8(g)
    lw = Lowering(g, options)
    lw.legacy_uint8 = legacy_uint8
    for gi, twin in in_twins.items():
        src = Op(-1, "QUANTIZE", [twin], [gi])
        LOWERINGS["QUANTIZE"](lw, src)
        lw.ops[-1].name = f"input_to_int8_{len(lw.ops)}"
    for op in g.ops:
        fn = LOWERINGS.get(op.opname)
        if fn is None:
            raise UnsupportedModelError(f"{op.where(g.path)}: op {op.opname} is not supported "
                                        f"(supported: {', '.join(sorted(LOWERINGS))})")
        try:
            with np.errstate(all="raise"):
                fn(lw, op)
        except UnsupportedModelError:
            raise
        except (ValueError, OverflowError, ZeroDivisionError, FloatingPointError, KeyError, IndexError,
                TypeError) as e:
            # quantization parameters or shapes that make no sense (corrupt file, or beyond TFLite's limits)
            raise UnsupportedModelError(f"{op.where(g.path)}: invalid parameters ({type(e).__name__}: {e})") from None
    for gi, twin in out_twins.items():
        src = Op(-1, "QUANTIZE", [gi], [twin])
        LOWERINGS["QUANTIZE"](lw, src)
        lw.ops[-1].name = f"output_to_uint8_{len(lw.ops)}"
    _link_residuals(lw)
    inputs = [lw.t(in_twins.get(i, i)) for i in g.inputs]
    outputs = [lw.t(out_twins.get(o, o)) for o in g.outputs]
    plan_arena(lw.tensors, lw.ops, inputs, outputs)
    return serialize(lw.tensors, lw.ops, inputs, outputs)


# ------------------------------------------------------------------ CONV_2D -> ADD(activation) links

def _residual_link(g: Graph, op: Op) -> tuple[int, int, int] | None:
    """(ADD node, residual tensor, its producer node or -1) when this CONV_2D's output feeds only an ADD whose
    fused activation clamps, with the same shape on both inputs and the output, and the ADD's other input can
    be computed before the conv (already is, or its producer depends only on what precedes the conv and can
    move there). The sign knobs then predict the ADD's clamp from the conv's partial sums plus the residual."""
    y = op.outputs[0]
    if y in g.outputs:
        return None
    users = [o for o in g.ops if y in o.inputs]
    if len(users) != 1 or users[0].opname != "ADD" or len(users[0].inputs) != 2:
        return None
    add = users[0]
    if add.options.get("fused_activation_function", "NONE") not in ("RELU", "RELU6", "RELU_N1_TO_1"):
        return None
    others = [i for i in add.inputs if i != y]
    if len(others) != 1 or add.inputs.count(y) != 1:
        return None
    r = others[0]
    tr, ty, to = g.tensors[r], g.tensors[y], g.tensors[add.outputs[0]]
    if tr.data is not None or tr.dtype not in ("int8", "uint8") or not (tuple(tr.shape) == tuple(ty.shape) ==
                                                                       tuple(to.shape)):
        return None
    pos = {o.index: i for i, o in enumerate(g.ops)}
    prod = [o for o in g.ops if r in o.outputs]
    # two convs meeting at the ADD are each other's residual: link the one with more MACs (ties: the first)
    if prod and prod[0].opname == "CONV_2D" and [o for o in g.ops if r in o.inputs] == [add] and r not in g.outputs:
        def macs(o: Op) -> int:
            return int(np.prod(g.tensors[o.inputs[1]].shape)) * int(np.prod(g.tensors[o.outputs[0]].shape[1:3]))
        if (macs(prod[0]), -pos[prod[0].index]) > (macs(op), -pos[op.index]):
            return None
    if not prod:
        return (add.index, r, -1) if r in g.inputs else None
    p = prod[0]
    if pos[p.index] < pos[op.index]:
        return add.index, r, p.index
    if pos[p.index] > pos[add.index]:
        return None
    # movable before the conv: every input of the producer is a constant, a graph input or made before the conv
    made_before = {t for o in g.ops[:pos[op.index]] for t in o.outputs} | set(g.inputs)
    if all(i < 0 or g.tensors[i].data is not None or i in made_before for i in p.inputs):
        return add.index, r, p.index
    return None


def _link_residuals(lw: "Lowering") -> None:
    """Moves each linked residual's producer before its conv (see _residual_link) and fills the conv's
    `residual` input and `residual_add` parameter (the ADD's plan op index). One conv per ADD: the one with
    the most MACs (of two convs that meet at an ADD, each is the other's residual). Links whose ops did not
    lower to exactly one plan op each are dropped; if the moved order is not a valid schedule, the original
    order is kept with only the links that need no move."""
    links = dict(getattr(lw, "residual_links", {}))
    if not links:
        return
    count: dict[int, int] = {}
    for o in lw.ops:
        count[o.node] = count.get(o.node, 0) + 1
    links = {c: v for c, v in links.items()
             if all(count.get(n, 0) == 1 for n in (c, v[0]) + ((v[2],) if v[2] >= 0 else ()))}

    def at(node: int) -> int:
        return next(i for i, o in enumerate(lw.ops) if o.node == node)

    def macs(node: int) -> int:
        op = lw.ops[at(node)]
        return int(np.prod(lw.tensors[op.inputs[1]].shape)) * int(np.prod(lw.tensors[op.outputs[0]].shape[1:3]))

    best: dict[int, int] = {}
    for c, v in links.items():
        if v[0] not in best or macs(c) > macs(best[v[0]]):
            best[v[0]] = c
    links = {c: links[c] for c in best.values()}

    def valid() -> bool:
        made: set[int] = set()
        producers = {t for o in lw.ops for t in o.outputs}
        for o in lw.ops:
            if any(t in producers and t not in made for t in o.inputs if t >= 0):
                return False
            made.update(o.outputs)
        return True

    def apply(chosen: dict) -> None:
        for conv_node, (add_node, r, prod_node) in chosen.items():
            c = at(conv_node)
            if prod_node >= 0 and at(prod_node) > c:
                lw.ops.insert(c, lw.ops.pop(at(prod_node)))
        for conv_node, (add_node, r, prod_node) in chosen.items():
            op = lw.ops[at(conv_node)]
            op.inputs[:] = op.inputs[:9] + [-1] * (9 - len(op.inputs)) + [lw.t(r)]
            op.params["residual_add"] = at(add_node)

    original = list(lw.ops)
    saved = {c: (list(lw.ops[at(c)].inputs), dict(lw.ops[at(c)].params)) for c in links}
    apply(links)
    if not valid():
        lw.ops[:] = original
        for c, (ins, params) in saved.items():
            op = lw.ops[at(c)]
            op.inputs[:], op.params = ins, params
        apply({c: v for c, v in links.items() if v[2] < 0 or at(v[2]) < at(c)})


# ------------------------------------------------------------------ core lowerings

def _same_padding(in_size: int, k: int, stride: int, dil: int, out_size: int) -> int:
    eff = (k - 1) * dil + 1
    total = max((out_size - 1) * stride + eff - in_size, 0)
    return total // 2


def _conv_like(lw: Lowering, op: Op, depthwise: bool) -> None:
    o = op.options
    xi, wi = op.inputs[0], op.inputs[1]
    bi = op.inputs[2] if len(op.inputs) > 2 else -1
    yi = op.outputs[0]
    lw.require_int8(op, xi, wi, yi)
    x, w, y = lw.gt(xi), lw.gt(wi), lw.gt(yi)
    if w.data is None:
        raise lw.fail(op, f"weights '{w.name}' are not constant")
    if len(x.shape) != 4 or len(w.shape) != 4 or len(y.shape) != 4:
        raise lw.fail(op, "expects 4-D NHWC input, weights and output")
    cout = y.shape[3]
    wscale = np.asarray(w.scale, dtype=np.float64)
    wzp = np.asarray(w.zero_point if w.zero_point is not None else [0])
    q_axis = 3 if depthwise else 0
    if len(wscale) > 1 and (w.quant_axis != q_axis or len(wscale) != cout):
        raise lw.fail(op, f"weights '{w.name}' are quantized per axis {w.quant_axis} with {len(wscale)} scales; "
                          f"expected axis {q_axis} with {cout}")
    if np.any(wzp != wzp.flat[0]):
        raise lw.fail(op, f"weights '{w.name}' have per-channel zero points")
    w_zp = int(wzp.flat[0])
    if len(wscale) == 1:
        wscale = np.full(cout, wscale[0])
    eff = x.s * wscale / y.s
    mult, shift = quantize_multipliers(eff)
    if bi >= 0:
        b = lw.gt(bi)
        if b.data is None or b.dtype != "int32":
            raise lw.fail(op, f"bias '{b.name}' must be a constant int32 tensor")
        bias = b.data.astype(np.int64).reshape(-1)
    else:
        bias = np.zeros(cout, dtype=np.int64)
    wd = w.data.astype(np.int64)
    if depthwise:
        wsum = (wd - w_zp).reshape(-1, cout).sum(axis=0)
    else:
        wsum = (wd - w_zp).reshape(cout, -1).sum(axis=1)
    # acc = bias + sum (w - wzp)(x - xzp); with wzp = 0 this is bias - xzp*sum(w) + sum(w*x)
    folded = bias - x.zp * wsum
    if np.any(np.abs(folded) >= 2**31):
        raise lw.fail(op, "folded bias overflows int32")
    stride_h, stride_w = int(o.get("stride_h", 1)), int(o.get("stride_w", 1))
    dil_h, dil_w = int(o.get("dilation_h_factor", 1)), int(o.get("dilation_w_factor", 1))
    kh, kw = w.shape[1], w.shape[2]
    if o.get("padding") == "SAME":
        pt = _same_padding(x.shape[1], kh, stride_h, dil_h, y.shape[1])
        pl = _same_padding(x.shape[2], kw, stride_w, dil_w, y.shape[2])
    else:
        pt = pl = 0
    lo, hi = lw.act_range(op, y)
    name = lw.layer_name(op.opname)
    ins = [lw.t(xi), lw.t(wi), lw.const(bias.astype(np.int32), f"{name}/bias"),
           lw.const(mult, f"{name}/mult"), lw.const(shift, f"{name}/shift"),
           lw.const(folded.astype(np.int32), f"{name}/bias_folded")]
    ranks = (lw.options.conv_ranks or {}).get(name)
    if ranks is not None:
        rc, rr = ranks
        ins += [lw.const(np.asarray(rc, np.int32), f"{name}/rank_channel"),
                lw.const(np.asarray(rr, np.int32), f"{name}/rank_row")]
    link = None
    if lw.options.artefacts and w_zp == 0 and not depthwise:
        link = _residual_link(lw.g, op)
        if link is not None:
            lw.__dict__.setdefault("residual_links", {})[op.index] = link
    if lw.options.artefacts and w_zp == 0:  # approximate knobs' artefacts (tunable/artefacts.py)
        from .artefacts import conv_geom, layer_artefacts
        blob = layer_artefacts(conv_geom(w.data, depthwise, bias, x.zp, lo >= y.zp or link is not None, x.shape, y.shape,
                                         (stride_h, stride_w), (dil_h, dil_w), (pt, pl)), name, lw.options)
        if blob is not None:
            ins += [-1] * (8 - len(ins)) + [lw.const(blob, f"{name}/artefacts")]
    params = dict(stride_h=stride_h, stride_w=stride_w, dil_h=dil_h, dil_w=dil_w, pad_top=pt, pad_left=pl,
                  act_min=lo, act_max=hi, in_zp=x.zp, out_zp=y.zp, w_zp=w_zp,
                  depth_mult=int(o.get("depth_multiplier", 1)) if depthwise else 1)
    if depthwise:
        params["depth_mult"] = cout // x.shape[3]
    lw.emit("DEPTHWISE_CONV_2D" if depthwise else "CONV_2D", ins, [lw.t(yi)], params, op, name)


@lowering("CONV_2D")
def _conv(lw: Lowering, op: Op) -> None:
    _conv_like(lw, op, False)


@lowering("DEPTHWISE_CONV_2D")
def _dw(lw: Lowering, op: Op) -> None:
    _conv_like(lw, op, True)


@lowering("FULLY_CONNECTED")
def _fc(lw: Lowering, op: Op) -> None:
    xi, wi = op.inputs[0], op.inputs[1]
    bi = op.inputs[2] if len(op.inputs) > 2 else -1
    yi = op.outputs[0]
    lw.require_int8(op, xi, wi, yi)
    x, w, y = lw.gt(xi), lw.gt(wi), lw.gt(yi)
    if w.data is None:
        raise lw.fail(op, f"weights '{w.name}' are not constant")
    if len(w.shape) != 2:
        raise lw.fail(op, f"weights '{w.name}' have rank {len(w.shape)}, expected 2")
    if op.options.get("weights_format", 0) != 0:
        raise lw.fail(op, "shuffled FC weights are not supported")
    n, k = w.shape
    wscale = np.asarray(w.scale, dtype=np.float64)
    if len(wscale) > 1 and (w.quant_axis != 0 or len(wscale) != n):
        raise lw.fail(op, f"weights '{w.name}' are quantized per axis {w.quant_axis}; expected axis 0 with {n} scales")
    wzp = np.asarray(w.zero_point if w.zero_point is not None else [0])
    if np.any(wzp != wzp.flat[0]):
        raise lw.fail(op, f"weights '{w.name}' have per-channel zero points")
    w_zp = int(wzp.flat[0])
    if len(wscale) == 1:
        wscale = np.full(n, wscale[0])
    mult, shift = quantize_multipliers(x.s * wscale / y.s)
    bias = lw.gt(bi).data.astype(np.int64).reshape(-1) if bi >= 0 else np.zeros(n, np.int64)
    folded = bias - x.zp * (w.data.astype(np.int64) - w_zp).sum(axis=1)
    lo, hi = lw.act_range(op, y)
    name = lw.layer_name(op.opname)
    wi_plan = lw.t(wi)
    extra = []
    if lw.options.artefacts and w_zp == 0:
        # AIP: columns ordered by importance so that every preview fraction is a prefix
        order = (lw.options.aip_order or {}).get(name)
        if order is None:
            order = np.argsort(-np.abs(w.data.astype(np.int64)).sum(axis=0), kind="stable")
        order = np.asarray(order, dtype=np.int32)
        if sorted(order.tolist()) != list(range(k)):
            raise lw.fail(op, f"AIP column order for {name} is not a permutation of {k} columns")
        wi_plan = lw.const(np.ascontiguousarray(w.data[:, order]), f"{name}/weights_aip_order")
        extra = [lw.const(order, f"{name}/aip_perm")]
        from .artefacts import LayerGeom, layer_artefacts  # approximate knobs' artefacts
        blob = layer_artefacts(LayerGeom("FULLY_CONNECTED", np.ascontiguousarray(w.data[:, order]), bias, x.zp,
                                         lo >= y.zp, col_order=order), name, lw.options)
        if blob is not None:
            extra.append(lw.const(blob, f"{name}/artefacts"))
    ins = [lw.t(xi), wi_plan, lw.const(bias.astype(np.int32), f"{name}/bias"),
           lw.const(mult, f"{name}/mult"), lw.const(shift, f"{name}/shift"),
           lw.const(folded.astype(np.int32), f"{name}/bias_folded")] + extra
    params = dict(act_min=lo, act_max=hi, in_zp=x.zp, out_zp=y.zp, w_zp=w_zp, role=_fc_role(lw, op))
    if getattr(lw, "legacy_uint8", False) and len(w.scale) == 1:
        params["requant_f64"] = 1  # LiteRT's reference uint8 FC rounds acc * scale in double
    lw.emit("FULLY_CONNECTED", ins, [lw.t(yi)], params, op, name)


def _fc_role(lw: Lowering, op: Op) -> int:
    """1: followed by ReLU (fused or next op); 2: a classifier (feeds SOFTMAX or ARG_MAX). A bare graph output
    is plain: it may be a regression (an autoencoder's reconstruction), where top-m would be wrong."""
    fused = op.options.get("fused_activation_function", "NONE")
    if fused in ("RELU", "RELU6", "RELU_N1_TO_1"):
        return 1
    t = op.outputs[0]
    for _ in range(4):  # look through reshapes
        users = [o for o in lw.g.ops if t in o.inputs]
        if len(users) != 1:
            return 0
        u = users[0]
        if u.opname in ("SOFTMAX", "ARG_MAX", "LOG_SOFTMAX"):
            return 2
        if u.opname in ("RELU", "RELU6"):
            return 1
        if u.opname not in ("RESHAPE", "SQUEEZE"):
            return 0
        t = u.outputs[0]
    return 0


@lowering("ADD")
def _add(lw: Lowering, op: Op) -> None:
    ai, bi = op.inputs[0], op.inputs[1]
    yi = op.outputs[0]
    lw.require_int8(op, ai, bi, yi)
    a, b, y = lw.gt(ai), lw.gt(bi), lw.gt(yi)
    left_shift = 20
    twice_max = 2 * max(a.s, b.s)
    am, ash = quantize_multipliers([a.s / twice_max])
    bm, bsh = quantize_multipliers([b.s / twice_max])
    om, osh = quantize_multipliers([twice_max / ((1 << left_shift) * y.s)])
    lo, hi = lw.act_range(op, y)
    for t in (a, b):
        if len(t.shape) > 4:
            raise lw.fail(op, f"tensor '{t.name}' has rank {len(t.shape)} > 4")
    lw.emit("ADD", [lw.t(ai), lw.t(bi)], [lw.t(yi)],
            dict(a_zp=a.zp, b_zp=b.zp, out_zp=y.zp, left_shift=left_shift, a_mult=am[0], a_shift=ash[0],
                 b_mult=bm[0], b_shift=bsh[0], out_mult=om[0], out_shift=osh[0], act_min=lo, act_max=hi), op)


def _pool(lw: Lowering, op: Op, kind: str) -> None:
    o = op.options
    xi, yi = op.inputs[0], op.outputs[0]
    lw.require_int8(op, xi, yi)
    x, y = lw.gt(xi), lw.gt(yi)
    if kind == "AVERAGE_POOL_2D" or kind == "MAX_POOL_2D":
        if abs(x.s - y.s) > 0 or x.zp != y.zp:
            raise lw.fail(op, "input and output quantization differ (TFLite requires them equal)")
    fh, fw = int(o["filter_height"]), int(o["filter_width"])
    sh, sw = int(o.get("stride_h", 1)), int(o.get("stride_w", 1))
    if o.get("padding") == "SAME":
        pt = _same_padding(x.shape[1], fh, sh, 1, y.shape[1])
        pl = _same_padding(x.shape[2], fw, sw, 1, y.shape[2])
    else:
        pt = pl = 0
    lo, hi = lw.act_range(op, y)
    params = dict(filter_h=fh, filter_w=fw, stride_h=sh, stride_w=sw, pad_top=pt, pad_left=pl, act_min=lo,
                  act_max=hi)
    if kind == "AVERAGE_POOL_2D" and getattr(lw, "legacy_uint8", False):
        params["acc_offset"] = 128  # LiteRT rounds the uint8 sum: (acc + n/2) / n with acc >= 0
    lw.emit(kind, [lw.t(xi)], [lw.t(yi)], params, op)


@lowering("AVERAGE_POOL_2D")
def _avgpool(lw: Lowering, op: Op) -> None:
    _pool(lw, op, "AVERAGE_POOL_2D")


@lowering("MAX_POOL_2D")
def _maxpool(lw: Lowering, op: Op) -> None:
    _pool(lw, op, "MAX_POOL_2D")


@lowering("RESHAPE", "SQUEEZE", "EXPAND_DIMS")
def _reshape(lw: Lowering, op: Op) -> None:
    xi, yi = op.inputs[0], op.outputs[0]
    x, y = lw.gt(xi), lw.gt(yi)
    if x.dtype != y.dtype or int(np.prod(x.shape)) != int(np.prod(y.shape)):
        raise lw.fail(op, f"cannot reshape {x.dtype}{list(x.shape)} to {y.dtype}{list(y.shape)}")
    if x.scale is not None and y.scale is not None and (x.s != y.s or x.zp != y.zp):
        raise lw.fail(op, "input and output quantization differ")
    lw.emit("COPY", [lw.t(xi)], [lw.t(yi)], {}, op)


@lowering("PAD", "PADV2")
def _pad(lw: Lowering, op: Op) -> None:
    xi, pi, yi = op.inputs[0], op.inputs[1], op.outputs[0]
    x, y = lw.gt(xi), lw.gt(yi)
    lw.require_int8(op, xi, yi)
    p = lw.gt(pi)
    if p.data is None:
        raise lw.fail(op, "paddings must be constant")
    pads = np.asarray(p.data, dtype=np.int64).reshape(-1, 2)
    if len(pads) != len(x.shape) or len(x.shape) > 4 or np.any(pads < 0):
        raise lw.fail(op, f"paddings {pads.tolist()} do not fit a rank-{len(x.shape)} input")
    if x.s != y.s or x.zp != y.zp:
        raise lw.fail(op, "input and output quantization differ")
    pad_value = y.zp
    if op.opname == "PADV2" and len(op.inputs) > 2 and op.inputs[2] >= 0:
        cv = lw.gt(op.inputs[2])
        if cv.data is None:
            raise lw.fail(op, "constant_values must be constant")
        pad_value = int(np.asarray(cv.data).reshape(-1)[0])
    full = np.zeros((4, 2), np.int64)
    full[4 - len(pads):] = pads
    params = {f"{k}{d}": int(full[d, j]) for d in range(4) for j, k in enumerate("ba")}
    params["pad_value"] = pad_value
    lw.emit("PAD", [lw.t(xi)], [lw.t(yi)], params, op)


@lowering("CONCATENATION")
def _concat(lw: Lowering, op: Op) -> None:
    yi = op.outputs[0]
    y = lw.gt(yi)
    if len(op.inputs) > ps.MAX_OP_INPUTS:
        raise lw.fail(op, f"{len(op.inputs)} inputs; at most {ps.MAX_OP_INPUTS} are supported")
    for i in op.inputs:
        t = lw.gt(i)
        if t.dtype != y.dtype:
            raise lw.fail(op, f"input '{t.name}' is {t.dtype}, output is {y.dtype}")
        if y.scale is not None and (t.s != y.s or t.zp != y.zp):
            raise lw.fail(op, f"input '{t.name}' has different quantization than the output (TFLite Micro "
                              "requires them equal)")
    axis = int(op.options.get("axis", 0))
    if axis < 0:
        axis += len(y.shape)
    lo, hi = (-128, 127)
    if y.dtype == "int8":
        lo, hi = lw.act_range(op, y)
    lw.emit("CONCATENATION", [lw.t(i) for i in op.inputs], [lw.t(yi)], dict(axis=axis, act_min=lo, act_max=hi), op)
