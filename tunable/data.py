"""Labelled image datasets: MNIST IDX, CIFAR-10 (python pickle / binary batches, .npz), image folders, .npz.

``open_dataset(spec)`` parses

* ``mnist:PATH[:train|:test]`` -- PATH is a directory holding ``t10k-images-idx3-ubyte`` and
  ``t10k-labels-idx1-ubyte`` (``train-...`` for the train split; ``.gz`` or not; ``-idx3-`` or ``.idx3-``),
  or one ``*images*`` IDX file whose labels file sits beside it. Default split: test.
* ``cifar10:PATH[:train|:test]`` -- a directory, or one file: python pickle batches (``test_batch``,
  ``data_batch_1..5``, optionally inside ``cifar-10-batches-py/``), binary batches (``test_batch.bin``,
  ``data_batch_N.bin``, optionally inside ``cifar-10-batches-bin/``), the official ``.tar.gz`` archives of
  either, or a ``.npz`` with ``x`` (N, 32, 32, 3) and ``y`` (a directory with ``test*.npz`` / ``train*.npz``
  picks the one of the split).
* ``folder:PATH`` -- one subfolder per class (sorted names = class ids), images decoded lazily (Pillow, else
  OpenCV).
* ``npz:PATH[:train|:test]`` -- arrays ``x`` (N, H, W[, C]) uint8 and ``y`` (N,) integers (also accepted:
  ``images``/``labels``, or Keras' ``x_test``/``y_test``/``x_train``/``y_train``); optional ``names``
  (class names).

A :class:`Dataset` has ``len()``, ``class_names``, ``labels``, ``counts()``, indexing (``ds[i] -> (image,
label)``) and iteration in batches of ``(x, y)``: ``x`` uint8 (N, H, W, C) pixels (C = 1 gray or 3 RGB), ``y``
int64 labels. Everything read is validated; problems raise :class:`DatasetError` (an
:class:`~tunable.errors.InputError`) naming the file and what is wrong. Pickle batches are read through an
unpickler that only accepts plain containers and numpy arrays, so a hostile file cannot run code.
"""
from __future__ import annotations

import gzip
import importlib
import io
import os
import pickle
import re
import tarfile
import zlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .errors import InputError, TunableError

__all__ = ["Dataset", "ArrayDataset", "FolderDataset", "DatasetError", "MissingDependencyError", "open_dataset",
           "read_idx", "read_mnist", "read_cifar10", "read_npz", "decode_image", "IMAGE_EXTENSIONS",
           "CIFAR10_CLASSES", "DATASET_KINDS"]

DATASET_KINDS = ("mnist", "cifar10", "folder", "npz")
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".ppm", ".pgm", ".pnm",
                              ".tif", ".tiff"})
_CIFAR_RECORD = 1 + 32 * 32 * 3


class DatasetError(InputError):
    """A dataset file or folder that is missing, unreadable or not in the expected format."""


class MissingDependencyError(TunableError, ImportError):
    """An optional package needed for this input is not installed; the message says which to install."""


def require(module: str, pip_name: str, purpose: str):
    """Imports an optional dependency or raises MissingDependencyError telling what to install."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise MissingDependencyError(f"{purpose} needs the Python package {pip_name!r} (import {module} failed: "
                                     f"{e}); install it with `pip install {pip_name}` or "
                                     f"`pip install 'tunable[camera]'`") from None


# --------------------------------------------------------------------------------------------- raw files

def _read_bytes(path: Path, what: str) -> bytes:
    """Whole file, gunzipped when it starts with the gzip magic (whatever its name)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise DatasetError(f"{path}: no such file ({what})") from None
    except IsADirectoryError:
        raise DatasetError(f"{path}: is a directory, expected a {what} file") from None
    except OSError as e:
        raise DatasetError(f"{path}: cannot read ({e.strerror})") from None
    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as e:
            raise DatasetError(f"{path}: corrupt or truncated gzip data ({e})") from None
    return data


_IDX_TYPES = {0x08: np.dtype(np.uint8), 0x09: np.dtype(np.int8), 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"),
              0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}


def read_idx(path: str | os.PathLike, *, ndim: int | None = None) -> np.ndarray:
    """Reads an IDX file (LeCun's MNIST format; gzip or not): magic 0x0000 TT DD, DD big-endian uint32
    dimensions, then the data. Checks the magic, the dimension count and that the size is exact."""
    p = Path(path)
    data = _read_bytes(p, "IDX")
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_TYPES:
        raise DatasetError(f"{p}: not an IDX file (magic {data[:4].hex() or 'empty'}; expected 0000 TT DD with TT "
                           f"in {', '.join(f'{k:02x}' for k in _IDX_TYPES)})")
    dtype, nd = _IDX_TYPES[data[2]], data[3]
    if ndim is not None and nd != ndim:
        raise DatasetError(f"{p}: IDX file has {nd} dimension(s), expected {ndim}")
    header = 4 + 4 * nd
    if len(data) < header:
        raise DatasetError(f"{p}: truncated IDX header ({len(data)} bytes, need {header})")
    dims = tuple(int(d) for d in np.frombuffer(data, ">u4", nd, 4))
    expect = header + int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    if len(data) != expect:
        state = "truncated" if len(data) < expect else "has trailing bytes"
        raise DatasetError(f"{p}: IDX data {state}: {len(data)} bytes, dimensions {dims} need {expect}")
    return np.frombuffer(data, dtype, offset=header).reshape(dims)


def _find_one(folder: Path, names: Sequence[str]) -> Path | None:
    for n in names:
        for cand in (folder / n, folder / (n + ".gz")):
            if cand.is_file():
                return cand
    return None


def read_mnist(path: str | os.PathLike, split: str = "test") -> tuple[np.ndarray, np.ndarray]:
    """MNIST (or Fashion-MNIST, same layout) images (N, 28, 28, 1) uint8 and labels (N,) int64."""
    p = Path(path)
    prefix = {"test": "t10k", "train": "train"}[split]
    if p.is_dir():
        img = _find_one(p, [f"{prefix}-images-idx3-ubyte", f"{prefix}-images.idx3-ubyte"])
        lab = _find_one(p, [f"{prefix}-labels-idx1-ubyte", f"{prefix}-labels.idx1-ubyte"])
        if img is None or lab is None:
            missing = [n for n, f in ((f"{prefix}-images-idx3-ubyte[.gz]", img),
                                      (f"{prefix}-labels-idx1-ubyte[.gz]", lab)) if f is None]
            raise DatasetError(f"{p}: no MNIST {split} split here (missing {' and '.join(missing)})")
    elif p.is_file():
        if "images" not in p.name:
            raise DatasetError(f"{p}: give the MNIST directory or its *images* IDX file")
        img = p
        lab = p.with_name(p.name.replace("images", "labels").replace("idx3", "idx1"))
        if not lab.is_file():
            raise DatasetError(f"{p}: labels file {lab.name} not found beside it")
    else:
        raise DatasetError(f"{p}: no such file or directory (MNIST)")
    x = read_idx(img, ndim=3)
    y = read_idx(lab, ndim=1)
    if x.dtype != np.uint8 or y.dtype != np.uint8:
        raise DatasetError(f"{img}: MNIST images and labels must be unsigned bytes (IDX type 08)")
    if x.shape[0] != y.shape[0]:
        raise DatasetError(f"{img}: {x.shape[0]} images but {lab.name} has {y.shape[0]} labels")
    if y.size and int(y.max()) > 9:
        raise DatasetError(f"{lab}: label {int(y.max())} out of range 0..9")
    return x[..., None], y.astype(np.int64)


# --------------------------------------------------------------------------------------------- CIFAR-10

def _numpy_attr(modules: Sequence[str], name: str):
    for m in modules:
        try:
            return getattr(importlib.import_module(m), name)
        except (ImportError, AttributeError):
            continue
    raise AttributeError(name)


class _SafeUnpickler(pickle.Unpickler):
    """Unpickles only what CIFAR batches contain: dicts, lists, bytes, str, numbers and numpy arrays."""
    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"): (("numpy._core.multiarray", "numpy.core.multiarray"), "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"): (("numpy._core.multiarray", "numpy.core.multiarray"), "_reconstruct"),
        ("numpy.core.multiarray", "scalar"): (("numpy._core.multiarray", "numpy.core.multiarray"), "scalar"),
        ("numpy._core.multiarray", "scalar"): (("numpy._core.multiarray", "numpy.core.multiarray"), "scalar"),
        ("numpy.core.numeric", "_frombuffer"): (("numpy._core.numeric", "numpy.core.numeric"), "_frombuffer"),
        ("numpy._core.numeric", "_frombuffer"): (("numpy._core.numeric", "numpy.core.numeric"), "_frombuffer"),
        ("numpy", "ndarray"): (("numpy",), "ndarray"),
        ("numpy", "dtype"): (("numpy",), "dtype"),
        ("_codecs", "encode"): (("_codecs",), "encode"),      # bytes in protocol-2 pickles written by Python 3
    }

    def find_class(self, module: str, name: str):
        key = (module, name)
        if key not in self._ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name} (not part of a CIFAR batch)")
        mods, attr = self._ALLOWED[key]
        return _numpy_attr(mods, attr)


def _unpickle(data: bytes, where: str) -> Any:
    try:
        return _SafeUnpickler(io.BytesIO(data), encoding="bytes").load()
    except Exception as e:   # any malformed pickle raises one of many types; all mean "not a batch"
        raise DatasetError(f"{where}: not a readable CIFAR python batch ({type(e).__name__}: {e})") from None


def _get(d: dict, key: str) -> Any:
    for k in (key.encode(), key):
        if k in d:
            return d[k]
    return None


def _cifar_from_pickle(data: bytes, where: str) -> tuple[np.ndarray, np.ndarray]:
    d = _unpickle(data, where)
    if not isinstance(d, dict):
        raise DatasetError(f"{where}: CIFAR python batch must be a dict, got {type(d).__name__}")
    raw, labels = _get(d, "data"), _get(d, "labels")
    if raw is None or labels is None:
        raise DatasetError(f"{where}: CIFAR python batch lacks 'data' or 'labels' (keys: "
                           f"{', '.join(k.decode() if isinstance(k, bytes) else str(k) for k in d)})")
    if not isinstance(raw, np.ndarray) or raw.dtype != np.uint8 or raw.ndim != 2 or raw.shape[1] != 3072:
        desc = f"{raw.dtype} {raw.shape}" if isinstance(raw, np.ndarray) else type(raw).__name__
        raise DatasetError(f"{where}: 'data' must be uint8 (N, 3072), got {desc}")
    y = np.asarray(labels)
    if y.ndim != 1 or y.shape[0] != raw.shape[0] or y.dtype.kind not in "iu":
        raise DatasetError(f"{where}: 'labels' must be {raw.shape[0]} integers, got {y.dtype} {y.shape}")
    # rows are channel planes (1024 R, 1024 G, 1024 B) of a 32x32 image: CHW -> HWC
    x = np.ascontiguousarray(raw.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
    return x, _check_labels(y, 10, where)


def _cifar_from_bin(data: bytes, where: str) -> tuple[np.ndarray, np.ndarray]:
    if len(data) == 0 or len(data) % _CIFAR_RECORD:
        raise DatasetError(f"{where}: CIFAR binary batch of {len(data)} bytes is not a whole number of "
                           f"{_CIFAR_RECORD}-byte records (1 label + 3072 pixels)")
    rec = np.frombuffer(data, np.uint8).reshape(-1, _CIFAR_RECORD)
    x = np.ascontiguousarray(rec[:, 1:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
    return x, _check_labels(rec[:, 0], 10, where)


def _cifar_from_any(data: bytes, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Binary batch (.bin, or records of 3073 bytes starting with a label) or python pickle batch."""
    is_pickle = data[:1] == b"\x80"                 # pickle protocol 2+ opcode; CIFAR labels are < 10
    if name.endswith(".bin") or (not is_pickle and len(data) % _CIFAR_RECORD == 0):
        return _cifar_from_bin(data, name)
    return _cifar_from_pickle(data, name)


def _check_labels(y: np.ndarray, n_classes: int | None, where: str) -> np.ndarray:
    y = np.asarray(y)
    if y.size and (int(y.min()) < 0 or (n_classes is not None and int(y.max()) >= n_classes)):
        bad = int(y.min()) if int(y.min()) < 0 else int(y.max())
        rng = f"0..{n_classes - 1}" if n_classes is not None else ">= 0"
        raise DatasetError(f"{where}: label {bad} out of range {rng}")
    return y.astype(np.int64)


def _cifar_meta_names(data: bytes | None, text: str | None) -> tuple[str, ...]:
    names: list[str] = []
    if data is not None:
        try:
            d = _SafeUnpickler(io.BytesIO(data), encoding="bytes").load()
            raw = _get(d, "label_names") if isinstance(d, dict) else None
            names = [n.decode() if isinstance(n, bytes) else str(n) for n in (raw or [])]
        except Exception:    # a broken meta file only costs the names, never the data
            names = []
    elif text is not None:
        names = [line.strip() for line in text.splitlines() if line.strip()]
    return tuple(names) if len(names) == 10 else CIFAR10_CLASSES


def _batch_key(name: str, split: str) -> tuple[int, str] | None:
    """Orders batch file names of a split: test_batch; data_batch_1..N. None when not of this split."""
    base = name.rsplit("/", 1)[-1]
    stem = base[:-4] if base.endswith(".bin") else base
    if split == "test":
        return (0, base) if stem == "test_batch" else None
    m = re.fullmatch(r"data_batch_(\d+)", stem)
    return (int(m.group(1)), base) if m else None


def _one_format(keyed: list) -> list:
    """Sorted (key, item) batches of one format: python batches when both python and .bin copies are there."""
    keyed = sorted(keyed, key=lambda t: t[0])
    pickles = [t for t in keyed if not t[0][1].endswith(".bin")]
    return pickles if pickles else keyed


def _read_cifar_files(files: list[tuple[str, bytes]], meta: tuple[bytes | None, str | None], split: str,
                      where: str) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    xs, ys = [], []
    for name, data in files:
        x, y = _cifar_from_any(data, name)
        xs.append(x)
        ys.append(y)
    if not xs:
        raise DatasetError(f"{where}: no CIFAR-10 {split} batches")
    return np.concatenate(xs), np.concatenate(ys), _cifar_meta_names(*meta)


def read_cifar10(path: str | os.PathLike, split: str = "test") -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """CIFAR-10 images (N, 32, 32, 3) uint8 RGB, labels (N,) int64 and the 10 class names."""
    p = Path(path)
    if p.is_file():
        name = p.name
        if name.endswith(".npz"):
            x, y, names = read_npz(p, split=split)
            return _check_cifar_npz(x, y, names, p)
        if name.endswith((".tar.gz", ".tgz", ".tar")):
            return _read_cifar_tar(p, split)
        return _read_cifar_files([(str(p), _read_bytes(p, "CIFAR batch"))], (None, None), split, str(p))
    if not p.is_dir():
        raise DatasetError(f"{p}: no such file or directory (CIFAR-10)")
    for d in (p, p / "cifar-10-batches-py", p / "cifar-10-batches-bin"):
        if not d.is_dir():
            continue
        batches = _one_format([(k, f) for f in d.iterdir() if f.is_file() and (k := _batch_key(f.name, split))])
        if batches:
            files = [(str(f), _read_bytes(f, "CIFAR batch")) for _, f in batches]
            meta_p, meta_t = d / "batches.meta", d / "batches.meta.txt"
            meta = (meta_p.read_bytes() if meta_p.is_file() else None,
                    meta_t.read_text(errors="replace") if meta_t.is_file() else None)
            return _read_cifar_files(files, meta, split, str(d))
    npz = sorted(p.glob(f"{split}*.npz"))
    if len(npz) == 1:
        x, y, names = read_npz(npz[0])
        return _check_cifar_npz(x, y, names, npz[0])
    if len(npz) > 1:
        raise DatasetError(f"{p}: several {split}*.npz files ({', '.join(f.name for f in npz)}); name one")
    archives = sorted(p.glob("cifar-10-*.tar.gz"))
    if archives:
        return _read_cifar_tar(archives[0], split)
    raise DatasetError(f"{p}: no CIFAR-10 {split} data here (looked for "
                       f"{'test_batch' if split == 'test' else 'data_batch_N'}[.bin], cifar-10-batches-py/, "
                       f"cifar-10-batches-bin/, {split}*.npz, cifar-10-*.tar.gz)")


def _read_cifar_tar(p: Path, split: str) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    try:
        with tarfile.open(p, "r:*") as tar:
            members = _one_format([(k, m) for m in tar.getmembers()
                                   if m.isfile() and (k := _batch_key(m.name, split))])
            files = [(f"{p}!{m.name}", tar.extractfile(m).read()) for _, m in members]
            meta: list[Any] = [None, None]
            for m in tar.getmembers():
                if m.isfile() and m.name.endswith("/batches.meta"):
                    meta[0] = tar.extractfile(m).read()
                elif m.isfile() and m.name.endswith("/batches.meta.txt"):
                    meta[1] = tar.extractfile(m).read().decode(errors="replace")
    except (tarfile.TarError, OSError, EOFError, zlib.error) as e:
        raise DatasetError(f"{p}: unreadable tar archive ({e})") from None
    return _read_cifar_files(files, (meta[0], meta[1]), split, str(p))


def _check_cifar_npz(x, y, names, p) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    if x.shape[1:] != (32, 32, 3):
        raise DatasetError(f"{p}: CIFAR-10 images must be (N, 32, 32, 3), got {x.shape}")
    _check_labels(y, 10, str(p))
    return x, y, (names if names and len(names) == 10 else CIFAR10_CLASSES)


# --------------------------------------------------------------------------------------------- npz

_NPZ_KEYS = {"test": (("x", "y"), ("images", "labels"), ("x_test", "y_test")),
             "train": (("x", "y"), ("images", "labels"), ("x_train", "y_train"))}


def read_npz(path: str | os.PathLike, split: str = "test") -> tuple[np.ndarray, np.ndarray, tuple[str, ...] | None]:
    """Images (N, H, W, C) uint8, labels (N,) int64 and the class names if stored (``names``)."""
    p = Path(path)
    try:
        with np.load(p, allow_pickle=False) as z:
            keys = set(z.files)
            pair = next(((kx, ky) for kx, ky in _NPZ_KEYS[split] if kx in keys and ky in keys), None)
            if pair is None:
                raise DatasetError(f"{p}: .npz needs arrays x and y (or images/labels, x_{split}/y_{split}); "
                                   f"it has {', '.join(sorted(keys)) or 'none'}")
            x, y = z[pair[0]], z[pair[1]]
            names = tuple(str(n) for n in z["names"].reshape(-1)) if "names" in keys else None
    except FileNotFoundError:
        raise DatasetError(f"{p}: no such file (.npz)") from None
    except DatasetError:
        raise
    except Exception as e:    # BadZipFile, EOFError, zlib.error, ValueError (object arrays) from a bad archive
        raise DatasetError(f"{p}: not a readable .npz ({type(e).__name__}: {e})") from None
    if x.dtype != np.uint8:
        raise DatasetError(f"{p}: images {pair[0]} must be uint8 pixels, got {x.dtype}")
    if x.ndim == 3:
        x = x[..., None]
    if x.ndim != 4 or x.shape[-1] not in (1, 3) or 0 in x.shape[1:]:
        raise DatasetError(f"{p}: images {pair[0]} must be (N, H, W) or (N, H, W, C) with C = 1 or 3, got {x.shape}")
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1 or y.dtype.kind not in "iu" or y.shape[0] != x.shape[0]:
        raise DatasetError(f"{p}: labels {pair[1]} must be {x.shape[0]} integers, got {y.dtype} {y.shape}")
    y = _check_labels(y, len(names) if names else None, str(p))
    return x, y, names


# --------------------------------------------------------------------------------------------- images

def decode_image(path: str | os.PathLike) -> np.ndarray:
    """Decodes an image file to uint8 (H, W, 1) gray or (H, W, 3) RGB (alpha and palettes resolved).
    Uses Pillow when installed, else OpenCV."""
    p = Path(path)
    try:
        pil = importlib.import_module("PIL.Image")
    except ImportError:
        pil = None
    if pil is not None:
        try:
            with pil.open(p) as im:
                im.load()
                if im.mode in ("1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F"):
                    if im.mode in ("I", "I;16", "I;16B", "I;16L"):   # 16-bit gray: keep the top byte
                        a = np.asarray(im, np.uint32) >> 8
                        return np.clip(a, 0, 255).astype(np.uint8)[..., None]
                    return np.asarray(im.convert("L"), np.uint8)[..., None]
                return np.asarray(im.convert("RGB"), np.uint8)
        except FileNotFoundError:
            raise DatasetError(f"{p}: no such image file") from None
        except (OSError, ValueError, SyntaxError) as e:    # PIL.UnidentifiedImageError is an OSError
            raise DatasetError(f"{p}: cannot decode image ({e})") from None
    try:
        cv2 = importlib.import_module("cv2")    # Pillow missing: OpenCV is the other choice
    except ImportError:
        raise MissingDependencyError(f"decoding image {p} needs Pillow or OpenCV: `pip install pillow` or "
                                     f"`pip install opencv-python-headless`") from None
    try:
        buf = np.fromfile(p, np.uint8)
    except FileNotFoundError:
        raise DatasetError(f"{p}: no such image file") from None
    a = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
    if a is None:
        raise DatasetError(f"{p}: cannot decode image (OpenCV)")
    if a.dtype == np.uint16:
        a = (a >> 8).astype(np.uint8)
    if a.ndim == 2:
        return a[..., None]
    if a.shape[2] == 4:
        a = a[..., :3]
    return np.ascontiguousarray(a[..., ::-1])       # OpenCV decodes BGR


def list_images(folder: Path) -> list[Path]:
    """Image files directly inside `folder`, sorted by name (hidden files skipped)."""
    return sorted(f for f in folder.iterdir()
                  if f.is_file() and not f.name.startswith(".") and f.suffix.lower() in IMAGE_EXTENSIONS)


# --------------------------------------------------------------------------------------------- datasets

class Dataset:
    """A labelled image set. Subclasses implement ``_images(start, stop)``."""

    kind: str = ""

    def __init__(self, path: Path, labels: np.ndarray, class_names: Sequence[str], split: str | None = None):
        self.path = path
        self.split = split
        self.labels = labels.view()          # a read-only view: the caller's array stays writeable
        self.labels.flags.writeable = False
        self.class_names = tuple(class_names)
        if labels.size and int(labels.max()) >= len(self.class_names):
            raise DatasetError(f"{path}: label {int(labels.max())} but only {len(self.class_names)} class names")

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def image_shape(self) -> tuple[int, int, int] | None:
        """(H, W, C) when all images share it (None for a folder of mixed sizes not yet known)."""
        return None

    def counts(self) -> np.ndarray:
        """Images per class, (num_classes,) int64."""
        return np.bincount(self.labels, minlength=self.num_classes)

    def _images(self, start: int, stop: int) -> np.ndarray:
        raise NotImplementedError

    def __getitem__(self, i: int) -> tuple[np.ndarray, int]:
        n = len(self)
        if not -n <= i < n:
            raise IndexError(f"{self.describe()}: index {i} out of range")
        i %= n
        return self._images(i, i + 1)[0], int(self.labels[i])

    def batches(self, batch_size: int = 256, *, start: int = 0, stop: int | None = None
                ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(x, y) batches of images start..stop-1: x uint8 (B, H, W, C) and y int64 (B,)."""
        if batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        stop = len(self) if stop is None else min(stop, len(self))
        for s in range(max(0, start), stop, batch_size):
            e = min(s + batch_size, stop)
            yield self._images(s, e), self.labels[s:e]

    def __iter__(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        return self.batches()

    def describe(self) -> str:
        shape = self.image_shape
        dims = f"{shape[1]}x{shape[0]}x{shape[2]}" if shape else "images"
        split = f" {self.split}" if self.split else ""
        return f"{self.kind}{split} {self.path}: {len(self)} {dims}, {self.num_classes} classes"

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.describe()}>"


class ArrayDataset(Dataset):
    """Images held in memory (read-only), e.g. MNIST, CIFAR-10, .npz."""

    def __init__(self, x: np.ndarray, y: np.ndarray, class_names: Sequence[str] | None, *, kind: str, path: Path,
                 split: str | None = None):
        if x.dtype != np.uint8 or x.ndim != 4 or x.shape[-1] not in (1, 3) or x.shape[0] != y.shape[0]:
            raise DatasetError(f"{path}: images {x.dtype} {x.shape} / labels {y.shape} do not form a dataset")
        if class_names is None:
            class_names = [str(i) for i in range(int(y.max()) + 1 if y.size else 0)]
        self.kind = kind
        super().__init__(path, np.asarray(y, np.int64), class_names, split)
        self.x = x.view()
        self.x.flags.writeable = False    # frames handed out are views of this array: nobody may change them

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(int(d) for d in self.x.shape[1:])  # type: ignore[return-value]

    def _images(self, start: int, stop: int) -> np.ndarray:
        return self.x[start:stop]


class FolderDataset(Dataset):
    """``root/<class>/<image>``: classes are the sorted subfolder names; images decoded when read.
    Images of different sizes cannot share a batch: pass ``size=(H, W)`` to resize on decode."""

    kind = "folder"

    def __init__(self, root: Path, *, size: tuple[int, int] | None = None, color: str | None = None):
        if not root.is_dir():
            raise DatasetError(f"{root}: no such directory (image folder)")
        classes, files, labels = [], [], []
        for sub in sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith(".")):
            imgs = list_images(sub)
            if imgs:
                labels.extend([len(classes)] * len(imgs))
                files.extend(imgs)
                classes.append(sub.name)
        if not files:
            raise DatasetError(f"{root}: no class subfolders with images ({', '.join(sorted(IMAGE_EXTENSIONS))})")
        if color not in (None, "rgb", "gray"):
            raise DatasetError(f"{root}: color must be 'rgb' or 'gray', got {color!r}")
        self.files = files
        self.size = size
        self.color = color
        self._shape: tuple[int, int, int] | None = None
        super().__init__(root, np.asarray(labels, np.int64), classes)

    @property
    def image_shape(self) -> tuple[int, int, int] | None:
        if self._shape is None and self.size is None:
            self._images(0, 1)
        return self._shape

    def load(self, i: int) -> np.ndarray:
        """Decodes image i (converted to the folder's colour mode, resized when `size` was given)."""
        img = decode_image(self.files[i])
        if self.color is None:
            self.color = "gray" if img.shape[2] == 1 else "rgb"   # the first image decides
        if self.color == "gray" and img.shape[2] == 3:
            from .preprocess import to_color
            img = to_color(img[None], "gray")[0]
        elif self.color == "rgb" and img.shape[2] == 1:
            img = np.repeat(img, 3, axis=2)
        if self.size is not None and img.shape[:2] != tuple(self.size):
            from .preprocess import resize
            img = resize(img[None], self.size[0], self.size[1])[0]
        return img

    def _images(self, start: int, stop: int) -> np.ndarray:
        imgs = [self.load(i) for i in range(start, stop)]
        first = imgs[0].shape
        for i, im in enumerate(imgs):
            if im.shape != first:
                raise DatasetError(f"{self.files[start + i]}: image is {im.shape[1]}x{im.shape[0]} but "
                                   f"{self.files[start].name} is {first[1]}x{first[0]}; images of one batch must "
                                   f"share a size (open the folder with size=(H, W) to resize them)")
        if self._shape is None:
            self._shape = first
        return np.stack(imgs)

    def __getitem__(self, i: int) -> tuple[np.ndarray, int]:
        n = len(self)
        if not -n <= i < n:
            raise IndexError(f"{self.describe()}: index {i} out of range")
        i %= n
        return self.load(i), int(self.labels[i])


# --------------------------------------------------------------------------------------------- specs

def parse_spec(spec: str) -> tuple[str, Path, str | None]:
    """'kind:PATH[:split]' -> (kind, path, split or None)."""
    kind, sep, rest = spec.partition(":")
    if not sep or kind not in DATASET_KINDS:
        raise DatasetError(f"dataset {spec!r}: expected one of {', '.join(k + ':PATH' for k in DATASET_KINDS)}")
    split = None
    m = re.fullmatch(r"(.*):(train|test)", rest)
    if m and kind != "folder":
        rest, split = m.group(1), m.group(2)
    if not rest:
        raise DatasetError(f"dataset {spec!r}: no path after '{kind}:'")
    return kind, Path(rest).expanduser(), split


def open_dataset(spec: str, *, size: tuple[int, int] | None = None, color: str | None = None) -> Dataset:
    """Opens a dataset from its spec (see the module docstring). `size`/`color` apply to image folders."""
    kind, path, split = parse_spec(spec)
    if not path.exists():
        raise DatasetError(f"dataset {spec!r}: {path} does not exist")
    if kind == "mnist":
        x, y = read_mnist(path, split or "test")
        return ArrayDataset(x, y, [str(i) for i in range(10)], kind="mnist", path=path, split=split or "test")
    if kind == "cifar10":
        x, y, names = read_cifar10(path, split or "test")
        return ArrayDataset(x, y, names, kind="cifar10", path=path, split=split or "test")
    if kind == "npz":
        x, y, names = read_npz(path, split or "test")
        return ArrayDataset(x, y, names, kind="npz", path=path, split=split)
    return FolderDataset(path, size=size, color=color)
