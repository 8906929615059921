"""Shared helpers for the project's own model recipes (models/lenet5/train.py, models/cifar10/train.py).

Two halves, kept apart so that evaluation never needs TensorFlow:
- data loading, the engine/TFLM evaluation and a tiny .tflite op lister: numpy (+ tflite_micro, tunable) only;
- training helpers (knob-aware dropout, the rate controller callback, the int8 exporter): import TensorFlow
  lazily, inside the functions, so `python models/<name>/train.py eval` runs in the project's own environment.

Training runs in the `train` extra's environment (TensorFlow, Pillow), single-threaded by default because the
development and CI machines are small and shared.
"""
from __future__ import annotations

import gzip
import hashlib
import json
import os
import struct
import sys
import tarfile
import time
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

REPO = Path(__file__).resolve().parents[1]

CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
MNIST_CLASSES = [str(d) for d in range(10)]

# The ops the engine (and the bundled-model contract) accepts in an exported model.
ALLOWED_OPS = {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "ADD", "MAX_POOL_2D", "AVERAGE_POOL_2D", "MEAN",
               "RESHAPE", "SOFTMAX"}


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


# ----------------------------------------------------------------------------------------------- data

# The training environment (the `train` extra) need not have the project installed, so the shared-folder
# lookup and the MNIST reader are small local twins of tunable.paths.shared_dir and tunable.data.read_mnist.
def shared_dir() -> Path:
    """$TUNABLE_SHARED, else ../shared beside the repository (the project's convention)."""
    env = os.environ.get("TUNABLE_SHARED")
    return Path(env) if env else (REPO.parent / "shared")


def _read_idx(path: Path) -> np.ndarray:
    with gzip.open(path, "rb") as f:
        data = f.read()
    zero, dtype_code, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or dtype_code != 0x08:
        raise ValueError(f"{path}: not an unsigned-byte IDX file (magic {data[:4].hex()})")
    dims = struct.unpack(">" + "I" * ndim, data[4:4 + 4 * ndim])
    arr = np.frombuffer(data, np.uint8, offset=4 + 4 * ndim)
    if arr.size != int(np.prod(dims)):
        raise ValueError(f"{path}: {arr.size} bytes of data for dims {dims}")
    return arr.reshape(dims)


def load_mnist(split: str, root: Path | None = None) -> tuple[np.ndarray, np.ndarray]:
    """MNIST as (x uint8 (N,28,28), y uint8 (N,)); split is 'train' or 'test'."""
    root = root or shared_dir() / "data" / "mnist"
    prefix = {"train": "train", "test": "t10k"}[split]
    x = _read_idx(root / f"{prefix}-images-idx3-ubyte.gz")
    y = _read_idx(root / f"{prefix}-labels-idx1-ubyte.gz")
    if len(x) != len(y):
        raise ValueError(f"{root}: {len(x)} {split} images but {len(y)} labels")
    return x, y


def load_cifar10_test(root: Path | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The lossless first 1000 CIFAR-10 test images: x uint8 (1000,32,32,3) RGB, y uint8."""
    root = root or shared_dir() / "data" / "cifar10"
    with np.load(root / "test_first1000.npz") as z:
        return z["x"], z["y"]


def load_cifar10_train_jpeg(root: Path | None = None, cache_dir: Path | None = None
                            ) -> tuple[np.ndarray, np.ndarray]:
    """All 50,000 training images from train_jpeg50k.tar.gz (`train/<class>/NNNN.jpg`), decoded with Pillow,
    ordered by (class, NNNN). Decoding takes ~1 min on one core, so the arrays are cached outside the
    repository (default /tmp/tunable_train_cache), keyed by the tarball's size and mtime."""
    from PIL import Image  # the `train` extra

    tar_path = (root or shared_dir() / "data" / "cifar10") / "train_jpeg50k.tar.gz"
    st = tar_path.stat()
    cache_dir = cache_dir or Path(os.environ.get("TUNABLE_TRAIN_CACHE", "/tmp/tunable_train_cache"))
    cache = cache_dir / f"cifar10_train_jpeg_{st.st_size}_{int(st.st_mtime)}.npz"
    if cache.exists():
        with np.load(cache) as z:
            return z["x"], z["y"]
    log(f"decoding {tar_path} ...")
    items = []
    with tarfile.open(tar_path, "r:gz") as tf:
        for m in tf:
            if not m.isfile() or not m.name.endswith(".jpg"):
                continue
            parts = Path(m.name).parts
            cls = CIFAR10_CLASSES.index(parts[-2])
            rank = int(Path(parts[-1]).stem)
            img = Image.open(tf.extractfile(m))
            img.load()
            items.append((cls, rank, np.asarray(img.convert("RGB"), np.uint8)))
    items.sort(key=lambda t: (t[0], t[1]))
    x = np.stack([t[2] for t in items])
    y = np.array([t[0] for t in items], np.uint8)
    if x.shape != (50000, 32, 32, 3):
        raise ValueError(f"{tar_path}: decoded {x.shape}, expected (50000, 32, 32, 3)")
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_suffix(".tmp.npz")
    np.savez(tmp, x=x, y=y)
    tmp.replace(cache)
    return x, y


def sha256_file(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


# ------------------------------------------------------------------------------ int8 model evaluation

def tflite_ops(path: Path) -> list[str]:
    """The builtin op names of a .tflite file, in execution order (via the `tflite` schema package)."""
    import tflite  # project dependency
    buf = Path(path).read_bytes()
    m = tflite.Model.GetRootAsModel(buf, 0)
    names = {v: k for k, v in tflite.BuiltinOperator.__dict__.items() if not k.startswith("_")}
    g = m.Subgraphs(0)
    out = []
    for i in range(g.OperatorsLength()):
        oc = m.OperatorCodes(g.Operators(i).OpcodeIndex())
        code = max(oc.BuiltinCode(), oc.DeprecatedBuiltinCode())
        out.append(names.get(code, str(code)))
    return out


def quantize(x_float: np.ndarray, scale: float, zp: int) -> np.ndarray:
    q = np.round(np.asarray(x_float, np.float64) / scale) + zp
    return np.clip(q, -128, 127).astype(np.int8)


def run_tflm(path: Path, xq: np.ndarray, arena_size: int = 1 << 20) -> np.ndarray:
    """int8 inputs (N, ...) -> int8 outputs (N, classes) with TFLite Micro (the oracle)."""
    from tflite_micro import runtime
    it = runtime.Interpreter.from_file(str(path), arena_size=arena_size)
    shape = tuple(it.get_input_details(0)["shape"])
    out = []
    for x in xq:
        it.set_input(x.reshape(shape), 0)
        it.invoke()
        out.append(it.get_output(0).reshape(-1).copy())
    return np.stack(out)


def run_engine(path: Path, xq: np.ndarray) -> np.ndarray:
    """int8 inputs (N, ...) -> int8 outputs (N, classes) with this project's engine."""
    import tunable
    m = tunable.load(path)
    s = m.session()
    shape = m.inputs[0].shape
    return np.stack([np.asarray(s.run(x.reshape(shape))).reshape(-1).copy() for x in xq])


def evaluate_int8(path: Path, x_float: np.ndarray, y: np.ndarray, engines: Iterable[str] = ("tflm", "engine")
                  ) -> dict:
    """Top-1 accuracy of an int8 .tflite on float-preprocessed data, per engine, plus their agreement."""
    from tflite_micro import runtime
    it = runtime.Interpreter.from_file(str(path), arena_size=1 << 20)
    q = it.get_input_details(0)["quantization_parameters"]
    scale, zp = float(q["scales"][0]), int(q["zero_points"][0])
    xq = quantize(x_float, scale, zp)
    res: dict = {"n": int(len(y)), "input_scale": scale, "input_zero_point": zp}
    outs = {}
    for eng in engines:
        try:
            outs[eng] = run_tflm(path, xq) if eng == "tflm" else run_engine(path, xq)
        except Exception as e:  # the engine may not support every op yet; report, don't hide
            res[f"{eng}_error"] = f"{type(e).__name__}: {e}"
            continue
        res[f"{eng}_top1"] = float(np.mean(np.argmax(outs[eng], axis=1) == y))
    if len(outs) == 2:
        a, b = outs.values()
        res["bit_identical"] = bool(np.array_equal(a, b))
        res["rows_differing"] = int(np.sum(np.any(a != b, axis=1)))
    return res


# ------------------------------------------------------------------- training helpers (TensorFlow)

def setup_tf(seed: int, threads: int = 1):
    """Imports TensorFlow limited to `threads` threads, seeds Python/numpy/TF and asks for deterministic
    kernels, so a recipe run twice gives the same weights."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("TF_NUM_INTRAOP_THREADS", str(threads))
    os.environ.setdefault("TF_NUM_INTEROP_THREADS", str(threads))
    os.environ.setdefault("OMP_NUM_THREADS", str(threads))
    import tensorflow as tf
    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)
    import keras
    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()
    return tf, keras


GRANULARITIES = ("element", "row", "channel")


_KNOB_DROPOUT = None


def knob_dropout_class():
    """The KnobDropout Keras layer class (built lazily so this module imports without TensorFlow).

    Inference-stage dropout of conv outputs as the engine's `drowsy` knob does it: a dropped output takes the
    value real zero; kept outputs are not rescaled (rescale=False, the engine's default drowsy_rescale=False) or
    multiplied by 1/(1-p) (rescale=True, inverted dropout, for drowsy_rescale=True), so training and inference
    see the same scale. The rate and the granularity are tf.Variables set per batch by
    KnobDropoutController (from outside the compiled train step), so one network sees many operating points:
    - granularity 0 `element`: one Bernoulli draw per output element (DrowsyNet);
    - granularity 1 `row`: one draw per (sample, output row, channel);
    - granularity 2 `channel`: one draw per (sample, channel): whole planes, SpatialDropout2D without rescale.
    At inference (training=False) the layer is the identity unless `simulate` is set, in which case it applies
    the mask with its current rate/granularity: a float simulation of the knob, used for evaluation only.
    The exporter asserts simulate is off, so no mask can leak into a .tflite file."""
    global _KNOB_DROPOUT
    if _KNOB_DROPOUT is not None:  # one class per process: `simulate` is a class attribute
        return _KNOB_DROPOUT
    import keras
    import tensorflow as tf

    @keras.saving.register_keras_serializable(package="tunable")
    class KnobDropout(keras.layers.Layer):
        simulate = False  # class-wide switch for float knob simulation at inference
        # class-wide switch for self-distillation: in training, the first half of the batch is left clean (the
        # teacher: the knob off) and only the second half is masked (the student). Read when the train step is
        # traced, so it must be set before the first step.
        split_clean = False

        def __init__(self, seed: int = 0, rescale: bool = False, **kw):
            super().__init__(**kw)
            self.seed = int(seed)
            self.rescale = bool(rescale)  # inverted dropout, for the engine's drowsy_rescale=True
            self.seed_gen = keras.random.SeedGenerator(seed)

        def build(self, input_shape):
            self.rate = self.add_weight(name="rate", shape=(), initializer="zeros", trainable=False)
            self.granularity = self.add_weight(name="granularity", shape=(), dtype="int32",
                                               initializer="zeros", trainable=False)

        def _mask(self, x, split: bool = False):
            s = tf.shape(x)
            g = self.granularity
            full = tf.stack([s[0], s[1], s[2], s[3]])
            rows = tf.stack([s[0], s[1], 1, s[3]])
            chans = tf.stack([s[0], 1, 1, s[3]])
            u_shape = tf.where(tf.equal(g, 0), full, tf.where(tf.equal(g, 1), rows, chans))
            u = keras.random.uniform(u_shape, seed=self.seed_gen)
            keep = tf.cast(u >= self.rate, x.dtype)  # broadcasts against x
            if self.rescale:
                keep = keep / (1.0 - self.rate)
            if split:  # the first half of the batch keeps everything, unscaled (the clean teacher)
                clean = tf.range(s[0]) < s[0] // 2
                keep = tf.where(tf.reshape(clean, [-1, 1, 1, 1]), tf.ones_like(keep), keep)
            return keep

        def call(self, x, training=None):
            if training:
                return x * self._mask(x, split=KnobDropout.split_clean)
            if KnobDropout.simulate:
                return x * self._mask(x)
            return x

        def get_config(self):
            cfg = super().get_config()
            cfg.update(seed=self.seed, rescale=self.rescale)
            return cfg

    _KNOB_DROPOUT = KnobDropout
    return KnobDropout


class KnobDropoutController:
    """Draws, before every training batch, the drop rate and granularity of every KnobDropout layer of a model:
    - with probability p_off no dropout at all (the knob off must stay the best operating point);
    - else a level L ~ U[0, max_rate]; with probability p_shared every layer uses L (the engine's uniform
      schedule), otherwise each layer draws its own rate U[0, max_rate] (non-uniform schedules);
    - the granularity (element/row/channel) is drawn once per batch with probabilities gran_probs, for all layers
      (the engine's granularity is one setting per run).
    max_rate ramps up linearly over the first ramp_steps steps so early training converges. The draws happen in
    Python, outside the compiled train step, which reads the layers' rate/granularity variables."""

    def __init__(self, model, *, max_rate: float, p_off: float = 0.15, p_shared: float = 0.5,
                 gran_probs=(0.4, 0.2, 0.4), ramp_steps: int = 0, seed: int = 0,
                 profile=None, p_profile: float = 0.0, profile_level=(0.5, 1.2), profile_jitter: float = 0.1,
                 profile_max: float = 0.9):
        self.drops = [l for l in model._flatten_layers() if type(l).__name__ == "KnobDropout"]
        self.max_rate, self.p_off, self.p_shared, self.ramp_steps, self.seed = max_rate, p_off, p_shared, ramp_steps, seed
        self.gran_p = np.asarray(gran_probs, np.float64) / np.sum(gran_probs)
        # schedule-shaped draws (concentrated around the deployment region): with probability p_profile (of
        # the batches with dropout) layer k gets clip(L * profile[k] + U[-jitter, jitter], 0, profile_max) with
        # one level L ~ U[profile_level] per batch, so a non-uniform schedule of that shape is seen at many
        # strengths around L = 1
        self.profile = None if profile is None else np.asarray(profile, np.float64)
        if self.profile is not None and len(self.profile) != len(self.drops):
            raise ValueError(f"KnobDropoutController: profile has {len(self.profile)} rates for "
                             f"{len(self.drops)} KnobDropout layers")
        self.p_profile, self.profile_level = p_profile, tuple(profile_level)
        self.profile_jitter, self.profile_max = profile_jitter, profile_max
        self.step = 0
        self.set_epoch_rng(0)

    def set_epoch_rng(self, epoch: int) -> None:
        # re-seeded per epoch so a run resumed from a checkpoint draws what an unbroken run would
        self.rng = np.random.default_rng([self.seed, epoch])

    def before_batch(self) -> None:
        ramp = min(1.0, (self.step + 1) / self.ramp_steps) if self.ramp_steps > 0 else 1.0
        mr = self.max_rate * ramp
        self.step += 1
        r, n = self.rng, len(self.drops)
        if r.random() < self.p_off:
            rates = np.zeros(n)
        elif self.profile is not None and self.p_profile > 0 and r.random() < self.p_profile:
            level = r.uniform(*self.profile_level) * ramp
            jit = r.uniform(-self.profile_jitter, self.profile_jitter, n)
            rates = np.clip(level * self.profile + jit, 0.0, self.profile_max)
        elif r.random() < self.p_shared:
            rates = np.full(n, r.uniform(0, mr))
        else:
            rates = r.uniform(0, mr, n)
        g = int(r.choice(3, p=self.gran_p))
        for layer, p in zip(self.drops, rates):
            layer.rate.assign(float(p))
            layer.granularity.assign(g)


def set_knob_dropout(model, rate, granularity: str = "element") -> None:
    """Sets every KnobDropout layer's rate (a float or one per layer) and granularity (for simulation)."""
    drops = [l for l in model._flatten_layers() if type(l).__name__ == "KnobDropout"]
    rates = np.broadcast_to(np.asarray(rate, np.float32), (len(drops),))
    for layer, p in zip(drops, rates):
        layer.rate.assign(float(p))
        layer.granularity.assign(GRANULARITIES.index(granularity))


def simulate_drowsy(model, x: np.ndarray, y: np.ndarray, rate, granularity: str, batch: int = 500,
                    seed: int = 1234) -> float:
    """Float top-1 of `model` with the knob dropout applied at inference (rescaled or not, as each layer was
    built)."""
    KD = knob_dropout_class()
    set_knob_dropout(model, rate, granularity)
    for k, l in enumerate(model._flatten_layers()):
        if type(l).__name__ == "KnobDropout":  # reproducible masks for every simulation call
            st = l.seed_gen.state
            st.assign(np.array([seed, k], dtype=st.dtype.name if hasattr(st.dtype, "name") else st.dtype))
    KD.simulate = True
    try:
        correct = 0
        for i in range(0, len(x), batch):
            p = model(x[i:i + batch], training=False)
            correct += int(np.sum(np.argmax(np.asarray(p), 1) == y[i:i + batch]))
    finally:
        KD.simulate = False
        set_knob_dropout(model, 0.0, "element")
    return correct / len(x)


def export_int8(model, representative: np.ndarray, out_path: Path, n_calib: int = 500) -> dict:
    """Full-int8 export (int8 input and output, int8 builtins only) through the TFLite converter, calibrated
    on `representative` (float, preprocessed as the model expects); checks the op set."""
    import tensorflow as tf
    KD = knob_dropout_class()
    if KD.simulate:
        raise RuntimeError("export_int8: KnobDropout.simulate is on; the exported model would contain masks")
    set_knob_dropout(model, 0.0, "element")
    calib = representative[:n_calib].astype(np.float32)

    def gen():
        for i in range(len(calib)):
            yield [calib[i:i + 1]]

    in_shape = [1] + list(model.inputs[0].shape[1:])

    @tf.function(input_signature=[tf.TensorSpec(in_shape, tf.float32)])
    def serve(x):
        return model(x, training=False)

    # Without the trackable object the converter freezes the graph's variables itself (the KnobDropout rate
    # variables would otherwise survive as READ_VARIABLE nodes), and the batch dimension is static, so
    # Flatten needs no SHAPE/STRIDED_SLICE/PACK ops (from_keras_model produces those).
    conv = tf.lite.TFLiteConverter.from_concrete_functions([serve.get_concrete_function()])
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = gen
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = tf.int8
    conv.inference_output_type = tf.int8
    data = conv.convert()
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_bytes(data)
    it = tf.lite.Interpreter(model_content=data)
    ops = [d["op_name"] for d in it._get_ops_details()]
    bad = sorted(set(ops) - ALLOWED_OPS)
    if bad:
        raise RuntimeError(f"export_int8: {out_path}: converter produced ops outside the allowed set: {bad}")
    inp, outp = it.get_input_details()[0], it.get_output_details()[0]
    return {"ops": ops, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest(),
            "input": {"shape": [int(v) for v in inp["shape"]], "dtype": str(np.dtype(inp["dtype"])),
                      "scale": float(inp["quantization"][0]), "zero_point": int(inp["quantization"][1])},
            "output": {"shape": [int(v) for v in outp["shape"]], "dtype": str(np.dtype(outp["dtype"])),
                       "scale": float(outp["quantization"][0]), "zero_point": int(outp["quantization"][1])}}


def tflite_interp_top1(path: Path, x_float: np.ndarray, y: np.ndarray) -> float:
    """Top-1 with TensorFlow's own TFLite interpreter (available in the training env; TFLM is the oracle)."""
    import tensorflow as tf
    it = tf.lite.Interpreter(model_path=str(path), num_threads=1)
    it.allocate_tensors()
    inp, outp = it.get_input_details()[0], it.get_output_details()[0]
    scale, zp = inp["quantization"]
    xq = quantize(x_float, scale, zp)
    correct = 0
    for i in range(len(xq)):
        it.set_tensor(inp["index"], xq[i:i + 1].reshape(inp["shape"]))
        it.invoke()
        correct += int(np.argmax(it.get_tensor(outp["index"])) == y[i])
    return correct / len(xq)


def write_json(path: Path, obj) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n")


# ----------------------------------------------------------------- knob sweeps with this engine

def engine_knob_sweep(path: Path, xq: np.ndarray, y: np.ndarray, settings: list[dict], calib_xq: np.ndarray,
                      ) -> list[dict]:
    """Top-1 and counter savings of this engine's knobs on an int8 model. settings: keyword dicts for
    Session.set_knobs (e.g. {"aip": 1/16}, {"drowsy": 0.5, "drowsy_granularity": "channel"}); the plan is
    compiled with `calib_xq` (training images) so importance ranks and AIP column orders exist. Savings are
    counter deltas against the knob-off run of the same inputs: conv MACs and FC weight bytes."""
    import tunable
    m = tunable.load(path, calibration=calib_xq)
    s = m.session()
    shape = m.inputs[0].shape
    conv = {l.name for l in m.layers if l.op in ("CONV_2D", "DEPTHWISE_CONV_2D")}
    fc = {l.name for l in m.layers if l.op == "FULLY_CONNECTED"}
    out = []
    for kw in [{}] + list(settings):
        s.set_knobs(**kw)
        correct, conv_macs, fc_wb = 0, 0, 0
        for i, x in enumerate(xq):
            if "drowsy" in kw:
                s.set_seed(int(kw.get("seed", 0)) * 1_000_003 + i)  # fresh masks per inference
            pred = np.asarray(s.run(x.reshape(shape))).reshape(-1)
            correct += int(np.argmax(pred) == y[i])
            st = s.stats
            conv_macs += sum(l.counters["macs"] for l in st.layers if l.name in conv)
            fc_wb += sum(l.counters["weight_bytes"] for l in st.layers if l.name in fc)
        out.append({"knobs": kw, "top1": correct / len(y), "conv_macs": conv_macs / len(y),
                    "fc_weight_bytes": fc_wb / len(y)})
    base = out[0]
    for r in out:
        r["conv_macs_saved"] = 1 - r["conv_macs"] / base["conv_macs"] if base["conv_macs"] else 0.0
        r["fc_weight_bytes_saved"] = 1 - r["fc_weight_bytes"] / base["fc_weight_bytes"] if base["fc_weight_bytes"] else 0.0
        r["delta_top1_points"] = 100 * (r["top1"] - base["top1"])
    s.set_knobs()
    return out


def print_sweep(rows: list[dict]) -> None:
    for r in rows:
        print(f"{json.dumps(r['knobs']):70s} top1 {r['top1']:.4f} ({r['delta_top1_points']:+.2f} pt)  "
              f"conv MACs saved {r['conv_macs_saved']:6.1%}  FC weight bytes saved {r['fc_weight_bytes_saved']:6.1%}",
              flush=True)


def greedy_drowsy_schedule(path: Path, xq: np.ndarray, y: np.ndarray, calib_xq: np.ndarray, *, target: float = 0.5,
                           granularity: str = "element", select: str = "random", step: float = 0.1,
                           max_rate: float = 0.9, rescale: bool = False, log_fn=log) -> dict[str, float]:
    """DrowsyNet's non-uniform schedule by profiling: starting from all rates 0, repeatedly raise by `step` the
    rate of the conv layer whose raise loses the least top-1 per conv MAC saved, until `target` of the conv
    MACs are saved. (xq, y) must be a profiling split (training images), never the test set."""
    import tunable
    m = tunable.load(path, calibration=calib_xq)
    s = m.session()
    shape = m.inputs[0].shape
    convs = [l for l in m.layers if l.op in ("CONV_2D", "DEPTHWISE_CONV_2D")]
    total = sum(l.macs for l in convs)

    def acc(rates: dict[str, float]) -> float:
        s.set_knobs(drowsy={k: v for k, v in rates.items() if v > 0} or 0.0, drowsy_granularity=granularity,
                    drowsy_select=select, drowsy_rescale=rescale)
        ok = 0
        for i, x in enumerate(xq):
            s.set_seed(i)
            ok += int(np.argmax(np.asarray(s.run(x.reshape(shape))).reshape(-1)) == y[i])
        return ok / len(y)

    rates = {l.name: 0.0 for l in convs}
    cur = acc(rates)
    saved = 0.0
    while saved < target:
        best = None
        for l in convs:
            r = round(rates[l.name] + step, 6)
            if r > max_rate:
                continue
            trial = dict(rates, **{l.name: r})
            a = acc(trial)
            cost = (cur - a) / (step * l.macs / total)
            if best is None or cost < best[0]:
                best = (cost, l.name, r, a)
        if best is None:
            break
        _, name, r, cur = best
        rates[name] = r
        saved = sum(rates[l.name] * l.macs for l in convs) / total
        log_fn(f"greedy: {name} -> {r:.2f}; profiling top-1 {cur:.4f}; conv MACs saved {saved:.3f}")
    s.set_knobs()
    return rates
