"""Turn camera frames / dataset images (uint8 pixels) into a model's input tensor.

A :class:`Preprocessor` is built from the model input's :class:`~tunable.TensorInfo` (shape ``(1, H, W, C)``
NHWC, dtype, scale, zero_point) plus an optional *options* mapping, normally the ``"preprocess"`` object of a
model manifest (or ``--preprocess`` on the command line, see :func:`parse_options`). Steps, in this order:

1. **crop**  -- ``"center"`` (default): cut the largest centred region with the model's aspect ratio, so
   nothing is stretched; ``"none"``: stretch the whole frame; a number ``f`` in (0, 1]: keep the central
   fraction ``f`` of each side first (like ``tf.image.central_crop``), then the aspect crop.
2. **resize** -- ``"auto"`` (default: ``"area"`` when shrinking by 2x or more along a side, else ``"bilinear"``),
   ``"area"`` (box average; no aliasing when shrinking), ``"bilinear"`` (half-pixel centres, edge clamped, as
   OpenCV ``INTER_LINEAR``), ``"nearest"`` (the pixel under each output centre, exact integer arithmetic).
   ``"resize_backend"``: ``"auto"`` (default: OpenCV's ``cv2.resize`` for area/bilinear when ``cv2`` imports,
   4-10x faster on camera frames, else numpy), ``"numpy"`` (vectorised, no dependency) or ``"opencv"``. The
   two agree to within one pixel level (OpenCV rounds in fixed point); pin ``"numpy"`` where bit-identical
   results across machines matter. Resized images are rounded back to uint8 pixels.
3. **color** -- ``"rgb"`` / ``"gray"`` (default: from C, 1 -> gray, 3 -> rgb) or ``"bgr"`` (models trained on
   OpenCV frames). Gray = ITU-R BT.601 luma ``0.299 R + 0.587 G + 0.114 B``; gray -> RGB repeats the channel;
   an alpha channel is dropped.
4. **value mapping** -- exactly one of:

   * ``"quantized": "pixel-128"`` (also ``"int8": ...`` / ``"uint8": ...`` checked against the input dtype):
     the integer the model sees is the pixel plus a constant, no rounding at all. ``"pixel"``, ``"pixel+K"``,
     ``"pixel-K"`` are accepted. MLPerf Tiny ResNet-8 documents its input this way.
   * ``"scale": s`` and optional ``"offset": o``: real = pixel * s + o (``{"scale": 1/255}`` is the usual
     [0, 1] input), then :meth:`TensorInfo.quantize`. ``s``/``o`` may be per-channel lists.
   * ``"mean": m`` and ``"std": d``: real = (pixel - m) / d (per-channel lists allowed), then quantize.
   * ``"norm": "pixel/255" | "pixel" | "(pixel-127.5)/127.5" | "auto"`` -- named shorthands for the above.
   * nothing / ``"auto"``: recognised from the input's quantization only when its representable real range
     is [0, 1], [0, 255] or [-1, 1] (within 2 %), the three conventions TFLite image models are calibrated
     on; anything else raises :class:`~tunable.errors.InputError` asking for explicit options.

   The mapping is evaluated once per pixel value (a 256-entry table per channel, built with
   :meth:`TensorInfo.quantize`), so applying it is one table look-up per pixel.

Example manifest entry: ``"preprocess": {"crop": "center", "resize": "area", "quantized": "pixel-128"}``.

Inputs accepted by :meth:`Preprocessor.__call__`: one image ``(H, W)`` or ``(H, W, C)``; a batch
``(N, H, W, C)``; a 3-D array whose last axis is not 1/3/4 is read as a gray batch ``(N, H, W)``; or a
sequence of images of different sizes. Output: ``(N, H, W, C)`` with the model's dtype (N = 1 for one image).
"""
from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .errors import InputError

__all__ = ["Preprocessor", "parse_options", "resize", "center_crop_box", "to_color", "OPTION_KEYS"]

OPTION_KEYS = ("crop", "resize", "resize_backend", "color", "quantized", "int8", "uint8", "scale", "offset", "mean", "std", "norm")
RESIZE_MODES = ("auto", "area", "bilinear", "nearest")
RESIZE_BACKENDS = ("auto", "numpy", "opencv")
COLORS = ("rgb", "bgr", "gray")
_LUMA = np.array([0.299, 0.587, 0.114], np.float32)
_NORMS = {"pixel/255": (1.0 / 255.0, 0.0), "pixel": (1.0, 0.0), "(pixel-127.5)/127.5": (1.0 / 127.5, -1.0),
          "pixel/127.5-1": (1.0 / 127.5, -1.0)}
# representable real range of the input -> (scale, offset) of real = pixel * scale + offset
_AUTO_RANGES = (((0.0, 1.0), (1.0 / 255.0, 0.0)), ((0.0, 255.0), (1.0, 0.0)), ((-1.0, 1.0), (1.0 / 127.5, -1.0)))


# ---------------------------------------------------------------------------------------------- geometry

def center_crop_box(h: int, w: int, out_h: int, out_w: int, fraction: float = 1.0) -> tuple[int, int, int, int]:
    """(top, left, height, width) of the centred region of an h x w image keeping `fraction` of each side and
    then the largest part of it with aspect ratio out_h : out_w."""
    ch = max(1, int(round(h * fraction)))
    cw = max(1, int(round(w * fraction)))
    # compare ch/cw with out_h/out_w in integers to avoid float ties
    if ch * out_w > cw * out_h:          # too tall
        ch = max(1, int(round(cw * out_h / out_w)))
    elif ch * out_w < cw * out_h:        # too wide
        cw = max(1, int(round(ch * out_w / out_h)))
    return (h - ch) // 2, (w - cw) // 2, ch, cw


def _area_axis(a: np.ndarray, axis: int, n_out: int) -> np.ndarray:
    """Box average along one axis: output cell i averages the input interval [i*r, (i+1)*r), r = n_in/n_out,
    partial pixels weighted by overlap. Uses the running sum, so the cost is O(input) whatever the ratio."""
    n_in = a.shape[axis]
    r = n_in / n_out
    acc = np.int64 if a.dtype.kind in "iu" else np.float64      # integer sums of pixels are exact
    if n_in % n_out == 0:               # whole blocks: a reshape and a sum
        k = n_in // n_out
        shape = a.shape[:axis] + (n_out, k) + a.shape[axis + 1:]
        return a.reshape(shape).sum(axis=axis + 1, dtype=acc) / float(k)
    c = np.cumsum(a, axis=axis, dtype=acc)                        # c[j] = sum of a[:j + 1]
    edges = np.arange(n_out + 1, dtype=np.float64) * r
    i = np.minimum(np.floor(edges).astype(np.intp), n_in - 1)
    shape = [1] * a.ndim
    shape[axis] = n_out + 1
    frac = (edges - i).reshape(shape)
    before = np.take(c, np.maximum(i - 1, 0), axis=axis).astype(np.float64)   # sum of a[:i]
    before *= (i > 0).reshape(shape)
    f = before + frac * np.take(a, i, axis=axis)                  # running sum at each (fractional) edge
    return np.diff(f, axis=axis) / r


def _linear_taps(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Half-pixel-centre bilinear source indices i0, i1 and weight of i1 along one axis."""
    pos = (np.arange(n_out, dtype=np.float64) + 0.5) * (n_in / n_out) - 0.5
    pos = np.clip(pos, 0.0, n_in - 1)
    i0 = np.floor(pos).astype(np.intp)
    i1 = np.minimum(i0 + 1, n_in - 1)
    return i0, i1, (pos - i0).astype(np.float32)


def _round_u8(v: np.ndarray) -> np.ndarray:
    return np.clip(np.floor(v + 0.5), 0, 255).astype(np.uint8)


def _opencv():
    try:
        import cv2
        return cv2
    except ImportError:
        return None


def resize(batch: np.ndarray, out_h: int, out_w: int, mode: str = "auto", backend: str = "numpy") -> np.ndarray:
    """Resizes a uint8 batch (N, H, W, C) to (N, out_h, out_w, C). The numpy backend is vectorised over the
    whole batch; backend 'opencv' (or 'auto' with cv2 importable) uses cv2.resize for area and bilinear."""
    if batch.ndim != 4:
        raise InputError(f"resize: expected a (N, H, W, C) batch, got shape {batch.shape}")
    n, h, w, c = batch.shape
    if (h, w) == (out_h, out_w):
        return batch
    if mode == "auto":
        mode = "area" if (h >= 2 * out_h or w >= 2 * out_w) else "bilinear"
    if backend not in RESIZE_BACKENDS:
        raise InputError(f"resize: unknown backend {backend!r} (choose one of {', '.join(RESIZE_BACKENDS)})")
    if mode in ("area", "bilinear") and backend != "numpy":
        cv2 = _opencv()
        if cv2 is None and backend == "opencv":
            from .data import MissingDependencyError
            raise MissingDependencyError("resize_backend 'opencv' needs `pip install opencv-python-headless`")
        if cv2 is not None and c <= 4:
            flag = cv2.INTER_AREA if mode == "area" else cv2.INTER_LINEAR
            out = np.empty((n, out_h, out_w, c), np.uint8)
            for k in range(n):
                r = cv2.resize(np.ascontiguousarray(batch[k]), (out_w, out_h), interpolation=flag)
                out[k] = r.reshape(out_h, out_w, c)
            return out
    if mode == "nearest":
        # source pixel whose area contains the output pixel centre (OpenCV INTER_NEAREST_EXACT rule)
        # in integers: floor((i + 0.5) * h / out_h) without float ties at exact boundaries
        ys = np.minimum((2 * np.arange(out_h, dtype=np.int64) + 1) * h // (2 * out_h), h - 1)
        xs = np.minimum((2 * np.arange(out_w, dtype=np.int64) + 1) * w // (2 * out_w), w - 1)
        return batch[:, ys][:, :, xs]
    if mode == "bilinear":
        y0, y1, wy = _linear_taps(h, out_h)
        x0, x1, wx = _linear_taps(w, out_w)
        f = batch.astype(np.float32)
        rows = f[:, y0] * (1.0 - wy)[None, :, None, None] + f[:, y1] * wy[None, :, None, None]
        out = rows[:, :, x0] * (1.0 - wx)[None, None, :, None] + rows[:, :, x1] * wx[None, None, :, None]
        return _round_u8(out)
    if mode == "area":
        return _round_u8(_area_axis(_area_axis(batch, 1, out_h), 2, out_w))
    raise InputError(f"resize: unknown mode {mode!r} (choose one of {', '.join(RESIZE_MODES)})")


def to_color(batch: np.ndarray, color: str) -> np.ndarray:
    """Converts a uint8 (N, H, W, C) batch with C in {1, 3, 4} (gray, RGB, RGBA) to `color`."""
    c = batch.shape[-1]
    if c == 4:                       # RGBA: drop alpha (frames are opaque)
        batch, c = batch[..., :3], 3
    if c not in (1, 3):
        raise InputError(f"image has {c} channels; expected 1 (gray), 3 (RGB) or 4 (RGBA)")
    if color == "gray":
        if c == 1:
            return batch
        return _round_u8(np.tensordot(batch.astype(np.float32), _LUMA, axes=([-1], [0])))[..., None]
    if c == 1:
        batch = np.repeat(batch, 3, axis=-1)
    return batch[..., ::-1] if color == "bgr" else batch


# ---------------------------------------------------------------------------------------------- options

def _number(text: str) -> float:
    """'0.5', '1/255', '-1' -> float."""
    t = text.strip()
    if "/" in t:
        a, _, b = t.partition("/")
        return float(a) / float(b)
    return float(t)


def parse_options(text: str | None) -> dict[str, Any]:
    """Command-line form of the options: a JSON object, or ``key=value,key=value`` where numbers may be
    fractions (``scale=1/255``) and per-channel lists are written with ``;`` (``mean=123.7;116.3;103.5``)."""
    if text is None or not text.strip():
        return {}
    t = text.strip()
    if t.startswith("{"):
        try:
            value = json.loads(t)
        except json.JSONDecodeError as e:
            raise InputError(f"preprocess options: not valid JSON ({e})") from None
        if not isinstance(value, dict):
            raise InputError("preprocess options: the JSON must be an object")
        return value
    out: dict[str, Any] = {}
    for part in t.split(","):
        if not part.strip():
            continue
        key, sep, val = part.partition("=")
        if not sep:
            raise InputError(f"preprocess options: {part!r} is not key=value")
        key, val = key.strip(), val.strip()
        if key in ("scale", "offset", "mean", "std"):
            try:
                nums = [_number(v) for v in val.split(";")]
            except (ValueError, ZeroDivisionError):
                raise InputError(f"preprocess options: {key}={val!r} is not a number or list of numbers") from None
            out[key] = nums[0] if len(nums) == 1 else nums
        elif key == "crop" and re.fullmatch(r"[0-9.]+", val):
            out[key] = float(val)
        else:
            out[key] = val
    return out


def _channel_vector(name: str, value: Any, channels: int) -> np.ndarray:
    arr = np.asarray(value, np.float64).reshape(-1)
    if arr.size not in (1, channels) or not np.all(np.isfinite(arr)):
        raise InputError(f"preprocess option {name}={value!r}: expected a finite number or a list of "
                         f"{channels} (one per channel)")
    return arr


@dataclass(frozen=True)
class _Mapping:
    kind: str                              # "integer" or "affine"
    add: int = 0                           # integer: q = pixel + add
    scale: np.ndarray | None = None        # affine: real = pixel * scale + offset
    offset: np.ndarray | None = None
    text: str = ""


class Preprocessor:
    """Callable turning uint8 images into the model input (see the module docstring for the options)."""

    def __init__(self, info: Any, options: Mapping[str, Any] | None = None, *, where: str = ""):
        self.info = info
        self.where = where or f"input {getattr(info, 'name', '?')!r}"
        opts = dict(options or {})
        unknown = sorted(set(opts) - set(OPTION_KEYS))
        if unknown:
            raise InputError(f"{self.where}: unknown preprocess option(s) {', '.join(unknown)} "
                             f"(known: {', '.join(OPTION_KEYS)})")
        shape = tuple(int(d) for d in info.shape)
        if len(shape) != 4 or shape[3] not in (1, 3) or shape[1] < 1 or shape[2] < 1:
            raise InputError(f"{self.where}: shape {shape} is not an image input (expected NHWC with C = 1 or 3)")
        self.height, self.width, self.channels = shape[1], shape[2], shape[3]
        self.dtype = np.dtype(info.dtype)

        crop = opts.get("crop", "center")
        if isinstance(crop, (int, float)) and not isinstance(crop, bool):
            if not 0.0 < float(crop) <= 1.0:
                raise InputError(f"{self.where}: crop fraction {crop} must be in (0, 1]")
            self.crop, self.crop_fraction = "center", float(crop)
        elif crop in ("center", "none"):
            self.crop, self.crop_fraction = crop, 1.0
        else:
            raise InputError(f"{self.where}: crop={crop!r}; use 'center', 'none' or a fraction in (0, 1]")

        self.resize_mode = opts.get("resize", "auto")
        if self.resize_mode not in RESIZE_MODES:
            raise InputError(f"{self.where}: resize={self.resize_mode!r}; use one of {', '.join(RESIZE_MODES)}")
        self.resize_backend = opts.get("resize_backend", "auto")
        if self.resize_backend not in RESIZE_BACKENDS:
            raise InputError(f"{self.where}: resize_backend={self.resize_backend!r}; use one of "
                             f"{', '.join(RESIZE_BACKENDS)}")
        if self.resize_backend == "auto":
            self.resize_backend = "opencv" if _opencv() is not None else "numpy"

        default_color = "gray" if self.channels == 1 else "rgb"
        self.color = opts.get("color", default_color)
        if self.color not in COLORS:
            raise InputError(f"{self.where}: color={self.color!r}; use one of {', '.join(COLORS)}")
        if (self.color == "gray") != (self.channels == 1):
            raise InputError(f"{self.where}: color={self.color!r} does not fit an input with {self.channels} "
                             f"channel(s)")
        self.mapping = self._value_mapping(opts)
        self._lut = self._table()

    @classmethod
    def from_model(cls, model: Any, options: Mapping[str, Any] | None = None, input_index: int = 0) -> Preprocessor:
        info = model.inputs[input_index]
        name = getattr(model, "source", None) or getattr(model, "path", None) or "model"
        return cls(info, options, where=f"{name}: input {info.name!r}")

    # -- value mapping ---------------------------------------------------------------------------------------
    def _value_mapping(self, opts: dict[str, Any]) -> _Mapping:
        groups = [k for k in ("quantized", "int8", "uint8") if k in opts]
        affine = [k for k in ("scale", "offset") if k in opts]
        stats = [k for k in ("mean", "std") if k in opts]
        norm = opts.get("norm", "auto")
        chosen = [g for g in (groups, affine, stats, ["norm"] if norm != "auto" else []) if g]
        if len(chosen) > 1 or len(groups) > 1:
            raise InputError(f"{self.where}: preprocess options {', '.join(sum(chosen, []))} conflict; give one "
                             f"of quantized/int8/uint8, scale(+offset), mean+std, norm")
        if groups:
            key = groups[0]
            if key != "quantized" and np.dtype(key) != self.dtype:
                raise InputError(f"{self.where}: option {key!r} given but the input is {self.dtype.name}")
            return self._integer_mapping(str(opts[key]))
        if self.dtype.kind not in "iuf":
            raise InputError(f"{self.where}: unsupported input dtype {self.dtype}")
        if affine:
            if "scale" not in opts:
                raise InputError(f"{self.where}: 'offset' needs 'scale' (real = pixel * scale + offset)")
            s = _channel_vector("scale", opts["scale"], self.channels)
            o = _channel_vector("offset", opts.get("offset", 0.0), self.channels)
            return _Mapping("affine", scale=s, offset=o, text=f"real = pixel * {_fmt(s)} + {_fmt(o)}")
        if stats:
            if len(stats) != 2:
                raise InputError(f"{self.where}: 'mean' and 'std' go together (real = (pixel - mean) / std)")
            m = _channel_vector("mean", opts["mean"], self.channels)
            d = _channel_vector("std", opts["std"], self.channels)
            if np.any(d == 0):
                raise InputError(f"{self.where}: std must not be 0")
            return _Mapping("affine", scale=1.0 / d, offset=-m / d, text=f"real = (pixel - {_fmt(m)}) / {_fmt(d)}")
        if norm != "auto":
            key = str(norm).replace(" ", "")
            if key not in _NORMS:
                raise InputError(f"{self.where}: norm={norm!r}; use one of {', '.join(_NORMS)} or auto")
            s, o = _NORMS[key]
            return _Mapping("affine", scale=np.array([s]), offset=np.array([o]), text=f"real = {key}")
        return self._auto_mapping()

    def _integer_mapping(self, text: str) -> _Mapping:
        m = re.fullmatch(r"\s*pixel\s*(?:([+-])\s*(\d+))?\s*", text)
        if not m or self.dtype.kind not in "iu":
            raise InputError(f"{self.where}: quantized={text!r}: expected 'pixel', 'pixel+K' or 'pixel-K' for an "
                             f"integer input (input is {self.dtype.name})")
        add = int(m.group(2) or 0) * (-1 if m.group(1) == "-" else 1)
        lim = np.iinfo(self.dtype)
        if add < lim.min or 255 + add > lim.max:
            raise InputError(f"{self.where}: quantized={text!r} maps pixels 0..255 to {add}..{255 + add}, outside "
                             f"{self.dtype.name} [{lim.min}, {lim.max}]")
        return _Mapping("integer", add=add, text=f"{self.dtype.name} = pixel {'-' if add < 0 else '+'} {abs(add)}")

    def _auto_mapping(self) -> _Mapping:
        if self.dtype.kind == "f":
            raise InputError(f"{self.where}: float input has no quantization to infer the pixel mapping from; "
                             f"give preprocess options, e.g. scale=1/255")
        lim = np.iinfo(self.dtype)
        scale, zp = float(self.info.scale), int(self.info.zero_point)
        lo, hi = (lim.min - zp) * scale, (lim.max - zp) * scale
        for (a, b), (s, o) in _AUTO_RANGES:
            tol = 0.02 * (b - a)
            if abs(lo - a) <= tol and abs(hi - b) <= tol:
                return _Mapping("affine", scale=np.array([s]), offset=np.array([o]),
                                text=f"real = pixel * {s:.6g} + {o:g} (auto: input covers [{a:g}, {b:g}])")
        raise InputError(f"{self.where}: cannot infer the pixel mapping: {self.dtype.name} scale {scale:.6g} "
                         f"zero_point {zp} represents [{lo:.4g}, {hi:.4g}], not [0, 1], [0, 255] or [-1, 1]; "
                         f"give preprocess options (scale/offset, mean/std or quantized)")

    # -- application ------------------------------------------------------------------------------------------
    def _as_batch(self, images: Any) -> np.ndarray:
        if isinstance(images, np.ndarray):
            a = images
        elif isinstance(images, Sequence) and images and all(isinstance(i, np.ndarray) for i in images):
            shapes = {i.shape for i in images}
            if len(shapes) > 1:   # different sizes: geometry per image, then one batch
                return np.concatenate([self.pixels(i) for i in images], axis=0)
            a = np.stack(images)
        else:
            a = np.asarray(images)
        if a.dtype != np.uint8:
            raise InputError(f"{self.where}: images must be uint8 pixels, got {a.dtype}")
        if a.ndim == 2:
            a = a[None, :, :, None]
        elif a.ndim == 3:
            a = a[None] if a.shape[-1] in (1, 3, 4) else a[..., None]
        if a.ndim != 4 or a.shape[-1] not in (1, 3, 4) or 0 in a.shape[1:3]:
            raise InputError(f"{self.where}: cannot read an image batch from shape {images.shape if hasattr(images, 'shape') else a.shape}")
        return a

    def pixels(self, images: Any) -> np.ndarray:
        """Crop, resize and colour conversion only: uint8 (N, H, W, C) at the model's size."""
        a = self._as_batch(images)
        if a.shape[1:3] != (self.height, self.width):
            if self.crop == "center":
                top, left, ch, cw = center_crop_box(a.shape[1], a.shape[2], self.height, self.width,
                                                    self.crop_fraction)
                a = a[:, top:top + ch, left:left + cw]
            a = resize(a, self.height, self.width, self.resize_mode, self.resize_backend)
        return to_color(a, self.color)

    def _table(self) -> np.ndarray:
        """(C, 256) model values of each pixel value per channel: the mapping computed once."""
        mp = self.mapping
        px = np.arange(256, dtype=np.float64)
        if mp.kind == "integer":
            row = (px.astype(np.int64) + mp.add).astype(self.dtype)
            return np.tile(row, (self.channels, 1))
        scale = np.broadcast_to(mp.scale, (self.channels,))[:, None]
        offset = np.broadcast_to(mp.offset, (self.channels,))[:, None]
        # float64 like TensorInfo.quantize, so rounding does not depend on float32 noise
        return np.ascontiguousarray(self.info.quantize(px[None, :] * scale + offset))

    def table(self) -> np.ndarray:
        """The (C, 256) look-up table pixel value -> model value (read-only copy)."""
        t = self._lut.copy()
        t.flags.writeable = False
        return t

    def quantize(self, pixels: np.ndarray) -> np.ndarray:
        """Value mapping of uint8 pixels already at the model's size and colour."""
        if self.channels == 1:
            return self._lut[0][pixels]
        # flat index pixel + 256 * channel into the (C, 256) table
        idx = pixels.astype(np.intp) + np.arange(self.channels, dtype=np.intp) * 256
        return self._lut.reshape(-1)[idx]

    def __call__(self, images: Any) -> np.ndarray:
        return self.quantize(self.pixels(images))

    def describe(self, frame_shape: tuple[int, ...] | None = None) -> str:
        """One line: what happens to a frame (of `frame_shape` when given)."""
        parts = []
        if frame_shape is not None:
            h, w = frame_shape[0], frame_shape[1]
            if (h, w) != (self.height, self.width):
                if self.crop == "center":
                    top, left, ch, cw = center_crop_box(h, w, self.height, self.width, self.crop_fraction)
                    if (ch, cw) != (h, w):
                        parts.append(f"center crop {cw}x{ch}")
                mode = self.resize_mode
                if mode == "auto":
                    mode = "area" if (h >= 2 * self.height or w >= 2 * self.width) else "bilinear"
                impl = f", {self.resize_backend}" if mode != "nearest" else ""
                parts.append(f"resize {w}x{h} -> {self.width}x{self.height} ({mode}{impl})")
        else:
            parts.append(f"to {self.width}x{self.height} (crop {self.crop}, resize {self.resize_mode})")
        parts.append(self.color)
        parts.append(self.mapping.text)
        return ", ".join(parts)


def _fmt(v: np.ndarray) -> str:
    return f"{v[0]:.6g}" if v.size == 1 else "[" + ", ".join(f"{x:.6g}" for x in v) + "]"
