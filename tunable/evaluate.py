"""The evaluation loop: accuracy, agreement with knobs off, counters, modeled energy and latency of a model
under one knob setting, on labelled inputs that are already the model's input type.

    ev = Evaluator(model, x, y, profile=load_profile("horowitz45"))
    r = ev.evaluate(Knobs(drowsy=0.3))          # EvalResult
    r.top1, r.agreement, r.totals["macs"], r.energy_j, r.latency_s

Used by `tunable eval`, by the profiler (tunable.profiling) and by the governor. The C session runs one input at
a time; everything around it is vectorised: inputs are preprocessed in batches up front (prepare_inputs), the
counters are read as one numpy view of the runtime's counter array and summed in place, and the accuracy
metrics are computed on the stacked outputs at the end.

Conventions:
- Counters, energy and latency are means per inference. Energy is modeled: EnergyModel(profile, model) over
  the mean counter totals and the mean measured latency (the model is linear in both, so this is the mean of
  the per-inference joules).
- Random drowsy draws: the seed of input i is `knobs.seed + i` (per_input_seed=True, the default), so the
  accuracy is an average over dropout masks rather than the luck of one mask, and reruns are reproducible.
- Agreement: the fraction of inputs whose top-1 class equals the one with all knobs off (computed once and
  cached per Evaluator).
- Top-1 / top-5 ties in int8 outputs: argmax takes the lowest class index (as numpy does).
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np

from . import planspec as ps
from .errors import InputError
from .knobs import OFF, Knobs

__all__ = ["EvalResult", "Evaluator", "prepare_inputs", "preprocess_options_for", "conv_layers", "fc_layers",
           "load_model", "lut_configs_of", "CONV_OPS", "FC_OPS"]

CONV_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D")
FC_OPS = ("FULLY_CONNECTED",)
_C = len(ps.COUNTERS)
_IDX = {c: i for i, c in enumerate(ps.COUNTERS)}


def conv_layers(model) -> list:
    return [l for l in model.layers if l.op in CONV_OPS]


def fc_layers(model) -> list:
    return [l for l in model.layers if l.op in FC_OPS]


# ---------------------------------------------------------------------------------------------- inputs

_MAPPING_KEYS = ("quantized", "int8", "uint8", "scale", "offset", "mean", "std", "norm")


def preprocess_options_for(model_path: str | Path | None, overrides: Mapping[str, Any] | None = None
                           ) -> dict[str, Any]:
    """The model manifest's "preprocess" options for this model file (matched by file name), with
    `overrides` on top. An override that sets the value mapping replaces the manifest's value mapping whole
    (scale/offset vs quantized vs mean/std cannot be mixed)."""
    from . import models as registry
    opts: dict[str, Any] = {}
    if model_path is not None:
        e = registry.entry_for_file(model_path)
        if e is not None:
            opts.update(e.preprocess or {})
    over = dict(overrides or {})
    if any(k in over for k in _MAPPING_KEYS):
        for k in _MAPPING_KEYS:
            opts.pop(k, None)
    opts.update(over)
    return opts


def prepare_inputs(model, dataset, options: Mapping[str, Any] | None = None, *, limit: int | None = None,
                   start: int = 0, batch_size: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """(x, y): the dataset's images start..start+limit-1 through the model's Preprocessor, stacked as the
    model input dtype (N, H, W, C), and their labels (N,) int64."""
    from .preprocess import Preprocessor
    pre = Preprocessor.from_model(model, options)
    stop = len(dataset) if limit is None else min(len(dataset), start + int(limit))
    xs, ys = [], []
    for xb, yb in dataset.batches(batch_size, start=start, stop=stop):
        xs.append(pre(xb))
        ys.append(np.asarray(yb, np.int64))
    if not xs:
        raise InputError(f"{dataset.describe()}: no images in [{start}, {stop})")
    return np.concatenate(xs), np.concatenate(ys)


def lut_configs_of(*knobs: Knobs) -> list[tuple[int, int]]:
    """The (K_w, K_a) look-up-table configurations some knob settings use (what the plan must carry)."""
    out: list[tuple[int, int]] = []
    for k in knobs:
        for _, cfg in (k.lut or ()):
            if tuple(cfg) not in out:
                out.append(tuple(cfg))
    return out


def load_model(path: str | Path, calibration: np.ndarray | None = None, *, lut=None, lut_codebook: str = "layer"):
    """A model compiled with the knob artefacts the evaluation needs. calibration: inputs from a calibration
    split (never the evaluation split) for drowsy importance ranks, AIP column orders and the activation
    statistics of look-up tables and previews; lut: the (K_w, K_a) table configurations to compile (a list,
    "default", or None for none). Plans are cached by content, so a second load is immediate."""
    import tunable
    if calibration is None and not lut:
        return tunable.load(path)
    from dataclasses import replace

    from .compiler import CompileOptions
    opts = CompileOptions()
    if calibration is not None:
        from . import artefacts
        from .calibration import calibrate
        opts = calibrate(path, calibration)
        opts = artefacts.calibrate(path, calibration, replace(opts, lut=lut or None, lut_codebook=lut_codebook))
    else:
        opts = replace(opts, lut=lut, lut_codebook=lut_codebook)
    return tunable.load(path, compile_options=opts)


# ---------------------------------------------------------------------------------------------- results

@dataclass
class EvalResult:
    """What one knob setting did on one set of inputs (means per inference)."""
    knobs: Knobs
    n: int
    top1: float
    top5: float
    agreement: float | None                # top-1 equal to knobs off; None when not computed
    totals: dict[str, float]               # counter -> mean per inference
    layers: dict[str, dict[str, float]]    # layer -> counter -> mean per inference
    latency_s: float                       # mean of the runtime call's wall time
    latency_median_s: float
    energy_j: float                        # modeled, mean per inference
    energy_terms: dict[str, float]         # modeled joules per term ('base', 'active', counters)
    profile: str                           # energy profile name
    profile_label: str                     # e.g. 'profile horowitz45, not fitted on a device'
    wall_s: float                          # whole loop, Python included
    predictions: np.ndarray = field(repr=False)  # (n,) top-1 class
    true_prob: np.ndarray = field(repr=False)    # (n,) probability given to the true class (softmax)
    conv_macs: float = 0.0                 # mean MACs executed in CONV_2D / DEPTHWISE_CONV_2D layers
    conv_macs_off: int = 0                 # the same with all knobs off (analytic)
    fc_weight_bytes: float = 0.0           # mean weight bytes fetched by FULLY_CONNECTED layers
    fc_weight_bytes_off: int = 0
    layer_time_s: dict[str, float] = field(default_factory=dict)   # layer -> mean wall time (runtime's clock)
    conv_time_s: float | None = None       # mean wall time of the conv layers (None: runtime does not time ops)
    conv_times_s: np.ndarray | None = field(default=None, repr=False)   # (n,) conv wall time of each inference
    latencies_s: np.ndarray | None = field(default=None, repr=False)    # (n,) wall time of each inference

    @property
    def macs(self) -> float:
        return self.totals.get("macs", 0.0)

    @property
    def weight_bytes(self) -> float:
        return self.totals.get("weight_bytes", 0.0)

    @property
    def conv_macs_saved(self) -> float:
        """Fraction of conv MACs not executed (0 with knobs off)."""
        return 1.0 - self.conv_macs / self.conv_macs_off if self.conv_macs_off else 0.0

    @property
    def fc_weight_bytes_saved(self) -> float:
        return 1.0 - self.fc_weight_bytes / self.fc_weight_bytes_off if self.fc_weight_bytes_off else 0.0

    def to_dict(self, *, per_layer: bool = True) -> dict[str, Any]:
        d = {"knobs": self.knobs.to_dict(), "knobs_text": str(self.knobs), "n": self.n, "top1": self.top1,
             "top5": self.top5, "agreement": self.agreement, "counters": self.totals,
             "latency_s": self.latency_s, "latency_median_s": self.latency_median_s,
             "energy_j": self.energy_j, "energy_terms": self.energy_terms, "profile": self.profile,
             "profile_label": self.profile_label, "wall_s": self.wall_s,
             "conv_macs": self.conv_macs, "conv_macs_off": self.conv_macs_off,
             "conv_macs_saved": self.conv_macs_saved, "fc_weight_bytes": self.fc_weight_bytes,
             "fc_weight_bytes_off": self.fc_weight_bytes_off, "fc_weight_bytes_saved": self.fc_weight_bytes_saved,
             "conv_time_s": self.conv_time_s}
        if per_layer:
            d["layers"] = self.layers
            d["layer_time_s"] = self.layer_time_s
        return d


# ---------------------------------------------------------------------------------------------- evaluator

def _counter_view(session, n_layers: int) -> np.ndarray | None:
    """A live (n_layers, n_counters) uint64 view of the session's counter array (the runtime rewrites it on
    every run), or None if this Session does not expose its C handle."""
    try:
        ffi, lib, handle = session._ffi, session._lib, session._s
    except AttributeError:
        return None
    ptr = lib.tn_session_counters(handle)
    if ffi.sizeof("tn_counters") != 8 * _C:
        return None
    buf = ffi.buffer(ptr, n_layers * 8 * _C)
    return np.frombuffer(buf, np.uint64).reshape(n_layers, _C)


def _time_view(session, n_layers: int) -> np.ndarray | None:
    """A live (n_layers,) uint64 view of the wall time (ns) of each op in the last run, or None when the
    runtime does not measure it."""
    try:
        ffi, lib, handle = session._ffi, session._lib, session._s
        ptr = lib.tn_session_op_ns(handle)
    except AttributeError:
        return None
    if ptr == ffi.NULL:
        return None
    return np.frombuffer(ffi.buffer(ptr, n_layers * 8), np.uint64)


def _softmax_rows(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


class Evaluator:
    """Runs a model over fixed labelled inputs under any knob setting.

    model: a loaded tunable Model; x: (N, ...) inputs in the model's input dtype; y: (N,) labels;
    profile: a tunable.energy Profile (default: the active profile, tunable.energy.active_profile()).
    One session is kept and reused; knob settings switch without reloading. threads: the session's worker
    threads (1, the default: the calling thread only)."""

    def __init__(self, model, x: np.ndarray, y: np.ndarray, *, profile=None, per_input_seed: bool = True,
                 threads: int = 1):
        from .energy import EnergyModel, active_profile
        self.model = model
        info = model.inputs[0]
        x = np.asarray(x)
        if x.dtype != info.dtype:
            raise InputError(f"{model.source}: inputs are {x.dtype}, the model wants {info.dtype} (preprocess "
                             f"them with tunable.evaluate.prepare_inputs)")
        per = int(np.prod(info.shape))
        if x.size % per or x.shape[0] * per != x.size:
            raise InputError(f"{model.source}: inputs of shape {x.shape} do not split into samples of shape "
                             f"{list(info.shape)}")
        self.x = np.ascontiguousarray(x).reshape((x.shape[0],) + tuple(info.shape))
        self.y = np.asarray(y, np.int64).reshape(-1)
        if self.y.shape[0] != self.x.shape[0]:
            raise InputError(f"{self.x.shape[0]} inputs but {self.y.shape[0]} labels")
        self.profile = profile if profile is not None else active_profile()
        self.energy_model = EnergyModel(self.profile, model)
        self.per_input_seed = per_input_seed
        self.session = model.session()
        if threads != 1:   # worker threads for the large ops; results and counters do not depend on them
            self.session.set_threads(threads)
        self.threads = threads
        self._layers = [l.name for l in model.layers]
        self._conv_mask = np.array([l.op in CONV_OPS for l in model.layers])
        self._fc_mask = np.array([l.op in FC_OPS for l in model.layers])
        self.conv_macs_off = int(sum(l.macs for l in model.layers if l.op in CONV_OPS))
        self.fc_weight_bytes_off = 0  # measured from the knobs-off run (the counter, not param_bytes: no bias)
        self._view = _counter_view(self.session, len(self._layers))
        self._tview = _time_view(self.session, len(self._layers))
        out = model.outputs[0]
        self._out_info = out
        self._probabilities = model.layers[-1].op in ("SOFTMAX",) if model.layers else False
        self._reference: EvalResult | None = None

    def __len__(self) -> int:
        return int(self.x.shape[0])

    # the per-input loop --------------------------------------------------------------------------------
    def _run(self, knobs: Knobs, idx: np.ndarray, progress: Callable[[int], None] | None):
        s = self.session
        s.set_knobs(knobs)
        random_drowsy = knobs.drowsy_select == "random" and knobs.drowsy != 0.0
        vary_seed = self.per_input_seed and random_drowsy
        n = len(idx)
        n_out = int(np.prod(self._out_info.shape))
        outs = np.empty((n, n_out), self._out_info.dtype)
        lat = np.empty(n, np.float64)
        acc = np.zeros((len(self._layers), _C), np.uint64)
        tacc = np.zeros(len(self._layers), np.uint64)
        ctime = np.zeros(n, np.float64)
        view, tview = self._view, self._tview
        cmask = self._conv_mask
        every = max(1, n // 100)
        t0 = time.perf_counter()
        for j, i in enumerate(idx):
            if vary_seed:
                s.set_seed((knobs.seed + int(i)) % 2**64)
            o = s.run(self.x[i])
            outs[j] = np.asarray(o[0] if isinstance(o, list) else o).reshape(-1)
            lat[j] = s.last_latency_s
            if view is not None:
                acc += view
            if tview is not None:
                tacc += tview
                ctime[j] = tview[cmask].sum()
            else:  # slow path: through RunStats
                for k, layer in enumerate(s.stats.layers):
                    acc[k] += np.array([layer.counters[c] for c in ps.COUNTERS], np.uint64)
            if progress is not None and (j + 1) % every == 0:
                progress(every)
        if progress is not None and n % every:
            progress(n % every)
        wall = time.perf_counter() - t0
        if vary_seed:
            s.set_seed(knobs.seed)
        return outs, lat, acc, tacc, ctime * 1e-9, wall

    def evaluate(self, knobs: Knobs | None = None, *, indices: Sequence[int] | np.ndarray | None = None,
                 agreement: bool = True, progress: Callable[[int], None] | None = None) -> EvalResult:
        """Runs every input (or `indices`) under `knobs` and returns the means. agreement=True also runs
        (once, cached) the knobs-off reference on all inputs."""
        knobs = knobs or OFF
        idx = np.arange(len(self)) if indices is None else np.asarray(indices, np.int64)
        outs, lat, acc, tacc, ctime, wall = self._run(knobs, idx, progress)
        n = len(idx)
        y = self.y[idx]
        scores = outs.astype(np.float64)
        k5 = min(5, scores.shape[1])
        # stable argsort on -score: among equal scores the lowest index ranks first, like argmax
        order = np.argsort(-scores, axis=1, kind="stable")
        pred = order[:, 0]
        top1 = float(np.mean(pred == y)) if n else 0.0
        top5 = float(np.mean((order[:, :k5] == y[:, None]).any(axis=1))) if n else 0.0
        real = self._out_info.dequantize(outs).astype(np.float64) if outs.dtype != np.float32 else scores
        prob = real if self._probabilities else _softmax_rows(real)
        true_prob = prob[np.arange(n), np.clip(y, 0, prob.shape[1] - 1)] if n else np.zeros(0)
        mean = acc.astype(np.float64) / max(1, n)
        totals = {c: float(mean[:, i].sum()) for i, c in enumerate(ps.COUNTERS)}
        layers = {name: {c: float(mean[k, i]) for i, c in enumerate(ps.COUNTERS)}
                  for k, name in enumerate(self._layers)}
        lat_mean = float(lat.mean()) if n else 0.0
        layer_time = tacc.astype(np.float64) * 1e-9 / max(1, n)
        bd = self.energy_model.breakdown(totals, lat_mean)
        res = EvalResult(
            knobs=knobs, n=n, top1=top1, top5=top5, agreement=None, totals=totals, layers=layers,
            latency_s=lat_mean, latency_median_s=float(np.median(lat)) if n else 0.0,
            energy_j=float(bd.total_joules), energy_terms={k: float(v) for k, v in bd.terms_joules.items()},
            profile=self.profile.name, profile_label=self.profile.label(), wall_s=wall, predictions=pred,
            true_prob=true_prob, conv_macs=float(mean[self._conv_mask, _IDX["macs"]].sum()),
            conv_macs_off=self.conv_macs_off,
            fc_weight_bytes=float(mean[self._fc_mask, _IDX["weight_bytes"]].sum()),
            layer_time_s={name: float(layer_time[k]) for k, name in enumerate(self._layers)}
            if self._tview is not None else {},
            conv_time_s=float(layer_time[self._conv_mask].sum()) if self._tview is not None else None,
            conv_times_s=ctime if self._tview is not None else None, latencies_s=lat)
        if knobs.is_off and indices is None and self._reference is None:
            self._reference = res
            self.fc_weight_bytes_off = int(round(res.fc_weight_bytes))
            res.agreement = 1.0
        if agreement and res.agreement is None:
            ref = self.reference(progress=None)
            res.agreement = float(np.mean(ref.predictions[idx] == pred)) if n else 0.0
        res.fc_weight_bytes_off = self.fc_weight_bytes_off
        return res

    def reference(self, progress: Callable[[int], None] | None = None) -> EvalResult:
        """The knobs-off result on all inputs (computed once)."""
        if self._reference is None:
            self.evaluate(OFF, agreement=False, progress=progress)
        assert self._reference is not None
        return self._reference


def try_knobs(model, knobs: Knobs) -> str | None:
    """None when the model accepts `knobs` (a session can set them and run), else the reason it cannot
    (e.g. a knob not implemented yet, or not compiled into this plan)."""
    from .errors import TunableError
    s = model.session()
    try:
        s.set_knobs(knobs)
        s.run(np.zeros(model.inputs[0].shape, model.inputs[0].dtype))
    except (TunableError, NotImplementedError) as e:
        return str(e)
    return None
