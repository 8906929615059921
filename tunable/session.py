"""The Python API over the C runtime: Model (a loaded plan) and Session (an arena and knob state)."""
from __future__ import annotations

import hashlib
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import planspec as ps
from .errors import InputError, KnobError, PlanError, RuntimeRunError
from .knob_resolve import resolve as resolve_knobs
from .knobs import OFF, Knobs
from .paths import cache_dir

_NP_DTYPE = {ps.DTYPES["INT8"]: np.int8, ps.DTYPES["UINT8"]: np.uint8, ps.DTYPES["INT16"]: np.int16,
             ps.DTYPES["INT32"]: np.int32, ps.DTYPES["FLOAT32"]: np.float32}
_OPNAME = {spec["code"]: name for name, spec in ps.OPS.items()}


def _lib():
    from ._tunable_c import ffi, lib
    return ffi, lib


@dataclass(frozen=True)
class TensorInfo:
    index: int
    name: str
    shape: tuple[int, ...]
    dtype: np.dtype
    scale: float
    zero_point: int

    def quantize(self, x) -> np.ndarray:
        """Float values to this tensor's integer type (round half away from zero, saturating)."""
        if self.dtype == np.float32:
            return np.asarray(x, np.float32)
        q = np.asarray(x, np.float64) / self.scale
        q = np.sign(q) * np.floor(np.abs(q) + 0.5) + self.zero_point
        info = np.iinfo(self.dtype)
        return np.clip(q, info.min, info.max).astype(self.dtype)

    def dequantize(self, q) -> np.ndarray:
        if self.dtype == np.float32:
            return np.asarray(q, np.float32)
        return ((np.asarray(q, np.int64) - self.zero_point) * self.scale).astype(np.float32)


@dataclass(frozen=True)
class LayerInfo:
    index: int
    name: str
    op: str
    input_shapes: tuple[tuple[int, ...], ...]
    output_shape: tuple[int, ...]
    macs: int
    param_bytes: int
    params: dict = field(default_factory=dict, compare=False)   # the plan's op parameters, by name
    has_inputs: frozenset = field(default_factory=frozenset, compare=False)  # optional input slots present
    in_tensors: tuple[int, ...] = ()    # plan tensor indices of the inputs (-1 absent)
    out_tensor: int = -1


@dataclass
class LayerStats:
    name: str
    op: str
    counters: dict[str, int]
    time_s: float = 0.0


@dataclass
class RunStats:
    """Counters of the last run, per layer and in total, and its wall time."""
    layers: list[LayerStats] = field(default_factory=list)
    latency_s: float = 0.0

    @property
    def totals(self) -> dict[str, int]:
        tot = dict.fromkeys(ps.COUNTERS, 0)
        for layer in self.layers:
            for k, v in layer.counters.items():
                tot[k] += v
        return tot

    def layer(self, name: str) -> LayerStats:
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise KeyError(name)


class Model:
    """A compiled plan loaded into the runtime. Read-only; any number of sessions may share it."""

    def __init__(self, plan: bytes, source: str = "<plan>"):
        ffi, lib = _lib()
        self.plan = bytes(plan)
        self.source = source
        err = ffi.new("char[512]")
        out = ffi.new("tn_model **")
        rc = lib.tn_model_load(self.plan, len(self.plan), out, err, 512)
        if rc != 0:
            name = ffi.string(lib.tn_error_name(rc)).decode()
            raise PlanError(f"{source}: {ffi.string(err).decode()} [{name}]", rc, name)
        self._m = ffi.gc(out[0], lib.tn_model_free)
        self._ffi, self._lib = ffi, lib
        self._tinfo: dict[int, TensorInfo] = {}
        self.inputs = [self.tensor_info(lib.tn_model_input(self._m, i)) for i in range(lib.tn_model_num_inputs(self._m))]
        self.outputs = [self.tensor_info(lib.tn_model_output(self._m, i))
                        for i in range(lib.tn_model_num_outputs(self._m))]
        self.layers = self._read_layers()
        self.arena_bytes = int(lib.tn_model_arena_bytes(self._m))

    def tensor_info(self, i: int) -> TensorInfo:
        if i not in self._tinfo:
            info = self._ffi.new("tn_tensor_info *")
            if self._lib.tn_model_tensor_info(self._m, i, info) != 0:
                raise IndexError(f"tensor {i} out of range")
            self._tinfo[i] = TensorInfo(i, self._ffi.string(info.name).decode(), tuple(info.dims[0:info.ndim]),
                                        np.dtype(_NP_DTYPE[info.dtype]), float(info.scale), int(info.zero_point))
        return self._tinfo[i]

    def _read_layers(self) -> list[LayerInfo]:
        ffi, lib = self._ffi, self._lib
        out = []
        info = ffi.new("tn_op_info *")
        tinfo = ffi.new("tn_tensor_info *")
        for k in range(lib.tn_model_num_ops(self._m)):
            lib.tn_model_op_info(self._m, k, info)
            shapes, pbytes = [], 0
            for j in range(info.n_in):
                t = getattr(info, "in")[j]
                if t < 0:
                    continue
                lib.tn_model_tensor_info(self._m, t, tinfo)
                if tinfo.storage == ps.STORAGE["CONST"]:
                    if j == 1:  # the weights
                        pbytes += tinfo.nbytes
                    elif j == 2:  # the bias
                        pbytes += tinfo.nbytes
                else:
                    shapes.append(tuple(tinfo.dims[0:tinfo.ndim]))
            lib.tn_model_tensor_info(self._m, info.out[0], tinfo)
            opname = _OPNAME.get(info.opcode, str(info.opcode))
            spec = ps.OPS.get(opname, {"params": [], "inputs": []})
            params = {n: int(info.params[i]) for i, n in enumerate(spec["params"])}
            present = frozenset(n for i, n in enumerate(spec["inputs"])
                                if i < info.n_in and getattr(info, "in")[i] >= 0)
            out.append(LayerInfo(k, ffi.string(info.name).decode(), opname, tuple(shapes),
                                 tuple(tinfo.dims[0:tinfo.ndim]), int(info.analytic_macs), pbytes, params, present,
                                 tuple(int(getattr(info, "in")[j]) for j in range(info.n_in)), int(info.out[0])))
        return out

    @property
    def macs(self) -> int:
        return sum(layer.macs for layer in self.layers)

    def layer(self, name: str) -> LayerInfo:
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise KeyError(f"no layer named '{name}' (layers: {', '.join(x.name for x in self.layers)})")

    def quantize_input(self, x, i: int = 0) -> np.ndarray:
        return self.inputs[i].quantize(x)

    def dequantize_output(self, y, i: int = 0) -> np.ndarray:
        return self.outputs[i].dequantize(y)

    def session(self, arena: bytearray | None = None, threads: int = 1) -> "Session":
        return Session(self, arena, threads)


class Session:
    """Owns an arena and knob state; runs inferences one at a time (not thread-safe)."""

    def __init__(self, model: Model, arena: bytearray | None = None, threads: int = 1):
        ffi, lib = model._ffi, model._lib
        self.model = model
        self._ffi, self._lib = ffi, lib
        err = ffi.new("char[512]")
        out = ffi.new("tn_session **")
        if arena is not None:
            self._arena_buf = ffi.from_buffer(arena)
            rc = lib.tn_session_create(model._m, self._arena_buf, len(arena), out, err, 512)
        else:
            rc = lib.tn_session_create(model._m, ffi.NULL, 0, out, err, 512)
        if rc != 0:
            raise PlanError(f"{model.source}: {ffi.string(err).decode()}", rc)
        self._s = ffi.gc(out[0], lib.tn_session_free)
        if threads != 1:
            self.set_threads(threads)
        self._knobs = None
        self._knob_cache: dict = {}
        self._totals_buf = ffi.new("tn_counters *")
        self._in_views = [self._view(t) for t in model.inputs]
        self._out_views = [self._view(t) for t in model.outputs]
        self.last_latency_s = 0.0

    def _view(self, t: TensorInfo) -> np.ndarray:
        ptr = self._lib.tn_session_tensor(self._s, t.index)
        n = int(np.prod(t.shape, dtype=np.int64)) * t.dtype.itemsize
        return np.frombuffer(self._ffi.buffer(ptr, n), dtype=t.dtype).reshape(t.shape)

    def tensor(self, index: int) -> np.ndarray:
        """A copy of any tensor's current contents (intermediates are overwritten as the arena is reused)."""
        return self._view(self.model.tensor_info(index)).copy()

    def set_input(self, x, i: int = 0) -> None:
        t = self.model.inputs[i]
        a = np.asarray(x)
        if a.dtype != t.dtype:
            if a.dtype.kind == "f" and t.dtype != np.float32:
                raise InputError(f"input {i} '{t.name}' is {t.dtype} (scale {t.scale:g}, zero point "
                                 f"{t.zero_point}); quantize float data with model.quantize_input(x)")
            raise InputError(f"input {i} '{t.name}' expects {t.dtype}, got {a.dtype}")
        if a.size != self._in_views[i].size:
            raise InputError(f"input {i} '{t.name}' expects shape {list(t.shape)}, got {list(a.shape)}")
        self._in_views[i][...] = a.reshape(t.shape)

    def invoke(self) -> None:
        t0 = time.perf_counter()
        rc = self._lib.tn_session_run(self._s)
        self.last_latency_s = time.perf_counter() - t0
        if rc != 0:
            raise RuntimeRunError(self._ffi.string(self._lib.tn_session_error(self._s)).decode())

    def run(self, x=None, *more):
        """Runs one inference. One input array (or several, in order); returns the output (a list when the
        model has several). Arrays must have the input's dtype and size."""
        if x is not None:
            for i, a in enumerate((x,) + more):
                self.set_input(a, i)
        self.invoke()
        outs = [v.copy() for v in self._out_views]
        return outs[0] if len(outs) == 1 else outs

    @property
    def knobs(self) -> Knobs:
        return self._knobs or OFF

    def set_knobs(self, knobs: Knobs | None = None, **kw) -> None:
        """Sets the power knobs for the next inferences, without reloading: a Knobs value, or its fields as
        keyword arguments (`set_knobs(drowsy=0.3)`, `set_knobs(aip=1/16)`, `set_knobs()` for all off).
        Switching among a few Knobs values (as the governor does) costs one C call each."""
        if knobs is None:
            knobs = Knobs(**kw)
        elif kw:
            knobs = knobs.replace(**kw)
        hit = self._knob_cache.get(id(knobs))
        if hit is not None and hit[0] is knobs:
            arr = hit[1]
        else:
            arr = resolve_knobs(self.model, knobs, self._ffi)
            if len(self._knob_cache) > 64:
                self._knob_cache.clear()
            self._knob_cache[id(knobs)] = (knobs, arr)
        if self._lib.tn_session_set_all_knobs(self._s, arr) != 0:
            raise KnobError(self._ffi.string(self._lib.tn_session_error(self._s)).decode())
        self._lib.tn_session_set_seed(self._s, knobs.seed)
        self._knobs = knobs

    @property
    def threads(self) -> int:
        return int(self._lib.tn_session_threads(self._s))

    def set_threads(self, threads: int) -> None:
        """Worker threads for the large ops (1: the calling thread only). Outputs and counters do not depend on
        the count; latency and power do, which makes it a knob for the governor."""
        if isinstance(threads, bool) or not isinstance(threads, int):
            raise KnobError(f"threads = {threads!r}: must be an integer")
        if self._lib.tn_session_set_threads(self._s, threads) != 0:
            raise KnobError(self._ffi.string(self._lib.tn_session_error(self._s)).decode())

    def set_seed(self, seed: int) -> None:
        """Changes the drowsy random seed alone (e.g. per inference)."""
        self._lib.tn_session_set_seed(self._s, seed)

    @property
    def stats(self) -> RunStats:
        """Per-layer counters and wall time of the last run."""
        c = self._lib.tn_session_counters(self._s)
        ns = self._lib.tn_session_op_ns(self._s)
        layers = []
        for k, info in enumerate(self.model.layers):
            layers.append(LayerStats(info.name, info.op, {n: int(getattr(c[k], n)) for n in ps.COUNTERS},
                                     ns[k] * 1e-9))
        return RunStats(layers, self.last_latency_s)

    def totals(self) -> dict[str, int]:
        """The last run's counters summed over layers: one C call, cheap enough for every inference."""
        t = self._totals_buf
        self._lib.tn_session_totals(self._s, t)
        return {n: getattr(t, n) for n in ps.COUNTERS}


def compile_model(source, compile_options=None) -> bytes:
    from .compiler import compile_graph
    from .tflite_reader import read_tflite
    return compile_graph(read_tflite(source), compile_options)


def load(path: str | os.PathLike, *, cache: bool = True, calibration=None, compile_options=None) -> Model:
    """Loads a .tflite model (compiled to a plan, cached by content hash) or a compiled .plan file.

    calibration: input samples (stacked on axis 0, the model's input dtype) from a calibration split; the
    plan then carries importance ranks for drowsy and AIP column orders measured on them."""
    from .compiler import COMPILER_VERSION
    from .errors import ModelFormatError
    p = Path(path)
    try:
        data = p.read_bytes()
    except FileNotFoundError:
        raise ModelFormatError(f"{p}: no such file") from None
    except IsADirectoryError:
        raise ModelFormatError(f"{p}: is a directory, not a model file") from None
    except OSError as e:
        raise ModelFormatError(f"{p}: cannot read ({e.strerror})") from None
    if data[:4] == ps.MAGIC:
        return Model(data, str(p))
    h = hashlib.sha256(data)
    h.update(f"compiler={COMPILER_VERSION};plan={ps.VERSION}".encode())
    if calibration is not None:
        h.update(b"calibration")
        h.update(np.ascontiguousarray(calibration).tobytes())
    if compile_options is not None:
        h.update(compile_options.key().encode())
    key = cache_dir() / "plans" / f"{h.hexdigest()}.plan" if cache else None
    if key is not None and key.exists():
        try:
            return Model(key.read_bytes(), str(p))
        except PlanError:
            pass  # a stale or damaged cache entry: recompile
    from .compiler import compile_graph
    from .tflite_reader import read_tflite
    if calibration is not None and compile_options is None:
        from .calibration import calibrate
        compile_options = calibrate(p, calibration)
    plan = compile_graph(read_tflite(data, name=str(p)), compile_options)
    model = Model(plan, str(p))
    if key is not None:
        try:
            key.parent.mkdir(parents=True, exist_ok=True)
            tmp = key.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_bytes(plan)
            os.replace(tmp, key)
        except OSError:
            pass  # a read-only cache is not an error
    return model
