"""Frame sources: cameras, video files, image folders, labelled datasets and synthetic frames.

``open_source(spec)`` accepts

==========================  =============================================================================
``camN``                    camera N. Where ``import picamera2`` works (Raspberry Pi OS, CSI cameras through
                            libcamera) it is libcamera camera index N -- *not* the board connector named CAM0
                            or CAM1: ``describe()`` prints the camera's model and libcamera id so it is clear
                            which one opened. Elsewhere ``/dev/videoN`` through OpenCV (V4L2, USB webcams).
``/dev/videoN``             a V4L2 device through OpenCV (PyAV's v4l2 input when OpenCV is missing).
a video file path           decoded with PyAV (OpenCV when PyAV is missing); ``video:PATH`` forces it.
an image folder path        images directly inside it (unlabelled, by name), else one subfolder per class.
an image file path          one frame.
``mnist:PATH``, ``cifar10:PATH``, ``npz:PATH``, ``folder:PATH``
                            a labelled dataset (see :mod:`tunable.data`) streamed as frames, so accuracy can
                            be measured live.
``synthetic[:WxH[xC]][,classes=N][,seed=S][,unlabelled]``
                            deterministic generated frames (no dependencies; default 64x64x3, 10 classes,
                            labelled with the class that drew the pattern), endless unless ``max_frames``.
``default``                 the sample the package embeds (``tunable/data/default_frames.npz``) when installed,
                            else ``synthetic``.
==========================  =============================================================================

A :class:`FrameSource` iterates :class:`Frame` objects (``image`` uint8 (H, W, 3) RGB or (H, W, 1) gray,
``label`` int or None, ``index`` 0, 1, ..., ``timestamp`` seconds: the stream's presentation time for video
files, else time since the source was opened), has ``describe()`` (one line: what was opened and how),
``close()`` and works as a context manager. ``fps`` paces frames to at most that rate (and asks cameras for
it), ``max_frames`` stops after that many, ``loop`` restarts finite sources. Unknown specs, missing files and
unreadable videos raise :class:`SourceError` (an :class:`~tunable.errors.InputError`) naming the source;
a missing optional package raises :class:`~tunable.data.MissingDependencyError` naming what to install.
"""
from __future__ import annotations

import importlib
import logging
import os
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from . import data as _data
from .data import IMAGE_EXTENSIONS, MissingDependencyError, decode_image, list_images, require
from .errors import InputError

__all__ = ["Frame", "FrameSource", "SourceError", "open_source", "SyntheticSource", "DatasetSource",
           "ImageFilesSource", "VideoFileSource", "V4L2Source", "PiCamera2Source", "DEFAULT_FRAMES"]

log = logging.getLogger(__name__)

DEFAULT_FRAMES = Path(__file__).resolve().parent / "data" / "default_frames.npz"
_FORMS = ("camN, /dev/videoN, a video file, an image folder or file, mnist:PATH, cifar10:PATH, npz:PATH, "
          "folder:PATH, synthetic[:WxH[xC]], default")


class SourceError(InputError):
    """A frame source that cannot be opened or read: unknown spec, missing file/device, bad video."""


@dataclass(frozen=True)
class Frame:
    image: np.ndarray          # uint8 (H, W, 3) RGB or (H, W, 1) gray
    label: int | None          # class id for labelled sources
    index: int                 # 0, 1, ... in delivery order
    timestamp: float           # seconds: video presentation time, else since the source was opened


class FrameSource:
    """Base class: subclasses yield (image, label, timestamp or None) from ``_frames()``."""

    kind = "source"
    class_names: tuple[str, ...] | None = None

    def __init__(self, spec: str, *, fps: float | None = None, max_frames: int | None = None, loop: bool = False):
        if fps is not None and not fps > 0:
            raise SourceError(f"{spec}: fps must be > 0, got {fps}")
        if max_frames is not None and max_frames < 0:
            raise SourceError(f"{spec}: max_frames must be >= 0, got {max_frames}")
        self.spec = spec
        self.fps = fps
        self.max_frames = max_frames
        self.loop = loop
        self.closed = False
        self._t0 = time.monotonic()

    # subclasses -------------------------------------------------------------------------------------------
    def _frames(self) -> Iterator[tuple[np.ndarray, int | None, float | None]]:
        raise NotImplementedError

    def _describe(self) -> str:
        return self.spec

    def _length(self) -> int | None:
        """Frames in one pass (None: endless or unknown)."""
        return None

    def _close(self) -> None:
        pass

    # public -----------------------------------------------------------------------------------------------
    @property
    def labelled(self) -> bool:
        return self.class_names is not None

    def __len__(self) -> int:
        n = self.length
        if n is None:
            raise TypeError(f"{self.spec}: endless or unknown number of frames")
        return n

    @property
    def length(self) -> int | None:
        """Frames this source will deliver (None when endless or unknown)."""
        n = self._length()
        if self.loop and n:
            n = None
        if self.max_frames is not None:
            n = self.max_frames if n is None else min(n, self.max_frames)
        return n

    def describe(self) -> str:
        extra = []
        if self.fps:
            extra.append(f"paced to {self.fps:g} fps")
        if self.max_frames is not None:
            extra.append(f"max {self.max_frames} frames")
        if self.loop:
            extra.append("looping")
        return self._describe() + (f" ({', '.join(extra)})" if extra else "")

    def __iter__(self) -> Iterator[Frame]:
        if self.closed:
            raise SourceError(f"{self.spec}: source is closed")
        index = 0
        period = 1.0 / self.fps if self.fps else 0.0
        t_next = time.monotonic()
        while True:
            produced = 0
            frames = self._frames()
            try:
                while self.max_frames is None or index < self.max_frames:   # never capture a frame too many
                    if period:      # wait before capturing, so a camera frame is fresh when delivered
                        now = time.monotonic()
                        if now < t_next:
                            time.sleep(t_next - now)
                            t_next += period
                        else:       # running late: do not burst to catch up
                            t_next = now + period
                    try:
                        image, label, ts = next(frames)
                    except StopIteration:
                        break
                    stamp = ts if ts is not None else time.monotonic() - self._t0
                    yield Frame(image, label, index, stamp)
                    index += 1
                    produced += 1
            finally:
                frames.close()      # releases a decoder the consumer walked away from
            if not self.loop or produced == 0 or (self.max_frames is not None and index >= self.max_frames):
                return

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._close()

    def __enter__(self) -> FrameSource:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.describe()}>"


# --------------------------------------------------------------------------------------------- synthetic

class SyntheticSource(FrameSource):
    """Deterministic frames: frame k shows a grating whose angle and tint encode class k % classes, drifting
    with k, plus seeded noise. The same (size, seed) always gives the same frames."""

    kind = "synthetic"

    def __init__(self, spec: str = "synthetic", *, width: int = 64, height: int = 64, channels: int = 3,
                 classes: int = 10, seed: int = 0, labelled: bool = True, **kw: Any):
        super().__init__(spec, **kw)
        if width < 1 or height < 1 or channels not in (1, 3) or classes < 1:
            raise SourceError(f"{spec}: need width, height >= 1, channels 1 or 3, classes >= 1")
        self.width, self.height, self.channels, self.classes, self.seed = width, height, channels, classes, seed
        self.class_names = tuple(f"pattern{i}" for i in range(classes)) if labelled else None
        yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
        self._yy, self._xx = yy / max(height, width), xx / max(height, width)
        hues = np.linspace(0.0, 2 * np.pi, classes, endpoint=False)
        self._tints = 0.6 + 0.4 * np.cos(hues[:, None] + np.array([0.0, 2.1, 4.2])[None, :])   # (classes, 3)

    def frame(self, k: int) -> tuple[np.ndarray, int]:
        label = k % self.classes
        theta = np.pi * label / self.classes
        phase = 0.35 * k
        g = 0.5 + 0.5 * np.sin(2 * np.pi * 4.0 * (self._xx * np.cos(theta) + self._yy * np.sin(theta)) + phase)
        rgb = g[..., None] * self._tints[label][None, None, :] * 255.0
        noise = np.random.default_rng((self.seed, k)).normal(0.0, 8.0, rgb.shape[:2])[..., None]
        img = np.clip(np.floor(rgb + noise + 0.5), 0, 255).astype(np.uint8)
        if self.channels == 1:
            from .preprocess import to_color
            img = to_color(img[None], "gray")[0]
        return img, label

    def _frames(self):
        k = 0
        while True:
            img, label = self.frame(k)
            yield img, (label if self.labelled else None), None
            k += 1

    def _describe(self) -> str:
        lab = f"labelled, {self.classes} classes" if self.labelled else "unlabelled"
        return (f"{self.spec}: synthetic {self.width}x{self.height}x{self.channels} frames ({lab}, seed "
                f"{self.seed})")


_SYNTH = re.compile(r"synthetic(?::(\d+)x(\d+)(?:x([13]))?)?((?:,[a-z]+(?:=\d+)?)*)")


def _open_synthetic(spec: str, resolution: tuple[int, int] | None, **kw: Any) -> SyntheticSource:
    m = _SYNTH.fullmatch(spec)
    if not m:
        raise SourceError(f"{spec}: expected synthetic[:WxH[xC]][,classes=N][,seed=S][,unlabelled]")
    width, height = (int(m.group(1)), int(m.group(2))) if m.group(1) else (resolution or (64, 64))
    opts: dict[str, Any] = {"width": width, "height": height, "channels": int(m.group(3) or 3)}
    for item in filter(None, m.group(4).split(",")):
        key, _, val = item.partition("=")
        if key in ("classes", "seed") and val:
            opts[key] = int(val)
        elif key == "unlabelled" and not val:
            opts["labelled"] = False
        else:
            raise SourceError(f"{spec}: unknown synthetic option {item!r} (classes=N, seed=S, unlabelled)")
    return SyntheticSource(spec, **opts, **kw)


# --------------------------------------------------------------------------------------------- datasets

class DatasetSource(FrameSource):
    """A labelled dataset streamed frame by frame (views of the dataset's read-only arrays)."""

    kind = "dataset"

    def __init__(self, spec: str, dataset: _data.Dataset, **kw: Any):
        super().__init__(spec, **kw)
        self.dataset = dataset
        self.class_names = dataset.class_names

    def _frames(self):
        ds = self.dataset
        if isinstance(ds, _data.ArrayDataset):
            stop = len(ds) if self.max_frames is None else min(len(ds), self.max_frames)
            for x, y in ds.batches(256, stop=stop):
                for img, label in zip(x, y.tolist()):
                    yield img, label, None
        else:
            for i in range(len(ds)):
                img, label = ds[i]
                yield img, label, None

    def _length(self) -> int:
        return len(self.dataset)

    def _describe(self) -> str:
        return f"{self.spec}: dataset {self.dataset.describe()}"


class ImageFilesSource(FrameSource):
    """Unlabelled image files in name order (a folder's images, or one image file)."""

    kind = "images"

    def __init__(self, spec: str, files: list[Path], where: Path, **kw: Any):
        super().__init__(spec, **kw)
        self.files, self.where = files, where

    def _frames(self):
        for f in self.files:
            yield decode_image(f), None, None

    def _length(self) -> int:
        return len(self.files)

    def _describe(self) -> str:
        if len(self.files) == 1 and self.where.is_file():
            return f"{self.spec}: image file {self.where}"
        return f"{self.spec}: image folder {self.where} ({len(self.files)} unlabelled images)"


# --------------------------------------------------------------------------------------------- video files

def _video_backend(backend: str, what: str) -> str:
    """'av' or 'opencv' for reading `what`: the one asked for, else PyAV, else OpenCV."""
    if backend not in ("auto", "av", "opencv"):
        raise SourceError(f"{what}: backend must be auto, av or opencv, got {backend!r}")
    if backend != "auto":
        return backend
    for name, mod in (("av", "av"), ("opencv", "cv2")):
        try:
            importlib.import_module(mod)
            return name
        except ImportError:
            continue
    raise MissingDependencyError(f"{what} needs PyAV or OpenCV: `pip install av` or "
                                 f"`pip install opencv-python-headless` (both: `pip install 'tunable[camera]'`)")


class VideoFileSource(FrameSource):
    """A video file decoded to RGB frames; timestamps are presentation times in seconds."""

    kind = "video"

    def __init__(self, spec: str, path: Path, *, backend: str = "auto", **kw: Any):
        super().__init__(spec, **kw)
        self.path = path
        if not path.exists():
            raise SourceError(f"{spec}: no such file {path}")
        if not path.is_file():
            raise SourceError(f"{spec}: {path} is not a file")
        self.backend = _video_backend(backend, f"video file {path}")
        self._cap: Any = None
        self._info = self._probe()

    def _probe(self) -> dict[str, Any]:
        if self.backend == "av":
            av = require("av", "av", f"reading video file {self.path}")
            try:
                with av.open(str(self.path)) as c:
                    if not c.streams.video:
                        raise SourceError(f"{self.spec}: {self.path} has no video stream")
                    s = c.streams.video[0]
                    rate = float(s.average_rate) if s.average_rate else None
                    return {"codec": s.codec_context.name, "width": s.width, "height": s.height, "fps": rate,
                            "frames": s.frames or None, "lib": f"PyAV {av.__version__}"}
            except SourceError:
                raise
            except (av.error.FFmpegError, OSError, ValueError) as e:
                raise SourceError(f"{self.spec}: {self.path} is not a readable video ({e})") from None
        cv2 = require("cv2", "opencv-python-headless", f"reading video file {self.path}")
        cap = cv2.VideoCapture(str(self.path))
        try:
            if not cap.isOpened():
                raise SourceError(f"{self.spec}: {self.path} is not a readable video (OpenCV cannot open it)")
            ok, first = cap.read()
            if not ok:
                raise SourceError(f"{self.spec}: {self.path} is not a readable video (no frame decodes)")
            n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
            fourcc = int(cap.get(cv2.CAP_PROP_FOURCC))
            codec = "".join(chr((fourcc >> (8 * i)) & 0xFF) for i in range(4)).strip("\0 ") or "?"
            return {"codec": codec, "width": first.shape[1], "height": first.shape[0],
                    "fps": cap.get(cv2.CAP_PROP_FPS) or None, "frames": n if n > 0 else None,
                    "lib": f"OpenCV {cv2.__version__}"}
        finally:
            cap.release()

    def _frames(self):
        if self.backend == "av":
            av = require("av", "av", f"reading video file {self.path}")
            try:
                container = av.open(str(self.path))
            except (av.error.FFmpegError, OSError) as e:
                raise SourceError(f"{self.spec}: cannot open {self.path} ({e})") from None
            self._cap = container
            try:
                stream = container.streams.video[0]
                stream.thread_type = "AUTO"
                i = 0
                it = container.decode(stream)
                while True:
                    try:
                        frame = next(it)
                    except StopIteration:
                        break
                    except (av.error.FFmpegError, OSError) as e:
                        raise SourceError(f"{self.spec}: decoding {self.path} failed after {i} frames ({e})") from None
                    ts = float(frame.time) if frame.time is not None else None
                    yield frame.to_ndarray(format="rgb24"), None, ts
                    i += 1
            finally:
                container.close()
                self._cap = None
            return
        cv2 = require("cv2", "opencv-python-headless", f"reading video file {self.path}")
        cap = cv2.VideoCapture(str(self.path))
        self._cap = cap
        try:
            while True:
                ok, bgr = cap.read()
                if not ok:
                    break
                # after read(), OpenCV's FFmpeg backend reports the presentation time of the frame just read
                yield _bgr_to_frame(bgr), None, cap.get(cv2.CAP_PROP_POS_MSEC) / 1000.0
        finally:
            cap.release()
            self._cap = None

    def _length(self) -> int | None:
        return self._info["frames"]

    def _describe(self) -> str:
        i = self._info
        rate = f" @ {i['fps']:.4g} fps" if i["fps"] else ""
        frames = f", {i['frames']} frames" if i["frames"] else ""
        return f"{self.spec}: video file {self.path}, {i['codec']} {i['width']}x{i['height']}{rate}{frames} ({i['lib']})"

    def _close(self) -> None:
        if self._cap is not None:
            (self._cap.release if hasattr(self._cap, "release") else self._cap.close)()
            self._cap = None


def _bgr_to_frame(a: np.ndarray) -> np.ndarray:
    if a.ndim == 2:
        return a[..., None]
    if a.shape[2] == 4:
        a = a[..., :3]
    return np.ascontiguousarray(a[..., ::-1])


# --------------------------------------------------------------------------------------------- cameras

def _device_exists(path: str) -> bool:
    """Separate so tests can pretend a /dev/videoN exists."""
    return os.path.exists(path)


class V4L2Source(FrameSource):
    """A V4L2 camera (USB webcam) through OpenCV, or PyAV's v4l2 input when OpenCV is not installed."""

    kind = "v4l2"

    def __init__(self, spec: str, device: str, *, resolution: tuple[int, int] | None = None,
                 backend: str = "auto", note: str = "", **kw: Any):
        super().__init__(spec, **kw)
        self.device, self.note = device, note
        if not _device_exists(device):
            raise SourceError(f"{spec}: {note + '; ' if note else ''}no camera device {device}")
        if backend == "auto":
            try:
                importlib.import_module("cv2")
                backend = "opencv"
            except ImportError:
                backend = _video_backend("auto", f"camera {device}")
        self.backend = backend
        self._cap: Any = None
        self._av_frames: Any = None
        if backend == "opencv":
            cv2 = require("cv2", "opencv-python-headless", f"camera {device}")
            # /dev/videoN (also through a /dev/v4l/by-id link) opens by index, OpenCV's best-trodden path
            m = re.fullmatch(r"/dev/video(\d+)", os.path.realpath(device))
            cap = cv2.VideoCapture(int(m.group(1)) if m else device, cv2.CAP_V4L2)
            if not cap.isOpened():
                cap.release()
                raise SourceError(f"{spec}: OpenCV cannot open {device} (busy, no permission, or not a capture "
                                  f"device)")
            if resolution:
                cap.set(cv2.CAP_PROP_FRAME_WIDTH, resolution[0])
                cap.set(cv2.CAP_PROP_FRAME_HEIGHT, resolution[1])
            if self.fps:
                cap.set(cv2.CAP_PROP_FPS, self.fps)
            self._cap = cap
            self.width = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH))
            self.height = int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
            self.device_fps = cap.get(cv2.CAP_PROP_FPS) or None
            self.lib = f"OpenCV {cv2.__version__}"
        elif backend == "av":
            av = require("av", "av", f"camera {device}")
            opts = {}
            if resolution:
                opts["video_size"] = f"{resolution[0]}x{resolution[1]}"
            if self.fps:
                opts["framerate"] = f"{self.fps:g}"
            try:
                self._cap = av.open(device, format="v4l2", options=opts)
            except (av.error.FFmpegError, OSError) as e:
                raise SourceError(f"{spec}: PyAV cannot open {device} ({e})") from None
            s = self._cap.streams.video[0]
            self.width, self.height = s.width, s.height
            self.device_fps = float(s.average_rate) if s.average_rate else None
            self.lib = f"PyAV {av.__version__}"
        else:
            raise SourceError(f"{spec}: backend must be auto, opencv or av, got {backend!r}")

    def _frames(self):
        if self.backend == "opencv":
            failures = 0
            while self._cap is not None:
                ok, bgr = self._cap.read()
                if not ok:
                    failures += 1
                    if failures >= 10:      # a camera that stops delivering is an error, not the end of a stream
                        raise SourceError(f"{self.spec}: {self.device} stopped delivering frames")
                    continue
                failures = 0
                yield _bgr_to_frame(bgr), None, None
        else:
            for frame in self._cap.decode(video=0):
                yield frame.to_ndarray(format="rgb24"), None, None

    def _describe(self) -> str:
        rate = f" @ {self.device_fps:g} fps" if self.device_fps else ""
        note = f"{self.note} -> " if self.note else ""
        return f"{self.spec}: {note}USB/V4L2 camera {self.device} via {self.lib}, {self.width}x{self.height}{rate}"

    def _close(self) -> None:
        if self._cap is not None:
            (self._cap.release if hasattr(self._cap, "release") else self._cap.close)()
            self._cap = None


class PiCamera2Source(FrameSource):
    """A camera through picamera2 / libcamera (Raspberry Pi CSI cameras, also UVC cameras libcamera sees).
    `num` is libcamera's camera index (the order of Picamera2.global_camera_info()), not a connector name."""

    kind = "picamera2"

    def __init__(self, spec: str, num: int, *, resolution: tuple[int, int] | None = None, **kw: Any):
        super().__init__(spec, **kw)
        mod = importlib.import_module("picamera2")
        Picamera2 = mod.Picamera2
        cams = list(Picamera2.global_camera_info())
        if num >= len(cams):
            listing = "; ".join(f"{i}: {c.get('Model', '?')} ({c.get('Id', '?')})" for i, c in enumerate(cams))
            raise SourceError(f"{spec}: picamera2 sees {len(cams)} camera(s){': ' + listing if listing else ''}; "
                              f"no camera {num} (a USB webcam can be opened as /dev/videoN)")
        self.num, self.info = num, dict(cams[num])
        try:
            cam = Picamera2(camera_num=num)
        except Exception as e:    # picamera2 raises RuntimeError/IndexError for busy or missing cameras
            raise SourceError(f"{spec}: picamera2 cannot open camera {num} ({type(e).__name__}: {e})") from None
        self._cam = cam
        self.width, self.height = resolution or (640, 480)
        # picamera2 names formats after libcamera/DRM fourcc, so "BGR888" arrays are R, G, B in memory
        main = {"size": (self.width, self.height), "format": "BGR888"}
        controls = {"FrameRate": float(self.fps)} if self.fps else {}
        try:
            cam.configure(cam.create_video_configuration(main=main, controls=controls))
            cam.start()
        except Exception as e:
            cam.close()
            raise SourceError(f"{spec}: picamera2 cannot start camera {num} at {self.width}x{self.height} "
                              f"({type(e).__name__}: {e})") from None

    def _frames(self):
        while self._cam is not None:
            a = self._cam.capture_array("main")
            if a.ndim != 3 or a.shape[2] < 3:
                raise SourceError(f"{self.spec}: picamera2 returned an array of shape {a.shape}, expected HxWx3")
            yield np.ascontiguousarray(a[:, :, :3]), None, None

    def _describe(self) -> str:
        model = self.info.get("Model", "?")
        where = self.info.get("Id") or self.info.get("Location", "?")
        return (f"{self.spec}: camera {self.num} via picamera2/libcamera (CSI), {model} [{where}], "
                f"{self.width}x{self.height} RGB")

    def _close(self) -> None:
        if self._cam is not None:
            try:
                self._cam.stop()
            finally:
                self._cam.close()
                self._cam = None


def _picamera2_importable() -> tuple[bool, str]:
    try:
        importlib.import_module("picamera2")
        return True, ""
    except Exception as e:    # ImportError off the Pi; broken libcamera bindings raise others
        return False, f"{type(e).__name__}: {e}"


# --------------------------------------------------------------------------------------------- open_source

def open_source(spec: str, *, fps: float | None = None, max_frames: int | None = None, loop: bool = False,
                resolution: tuple[int, int] | None = None, backend: str = "auto") -> FrameSource:
    """Opens a frame source (forms in the module docstring). `resolution` (width, height) is asked of
    cameras (on a Pi the ISP scales for free: ask for something near the model's input) and sizes synthetic
    frames; `backend` ('auto', 'av', 'opencv') picks the video/V4L2 library. What was opened is logged at
    INFO level on the 'tunable.sources' logger and returned by ``describe()`` for the caller to print."""
    src = _open(spec.strip(), fps=fps, max_frames=max_frames, loop=loop, resolution=resolution, backend=backend)
    log.info("opened %s", src.describe())
    return src


def _open(spec: str, *, fps, max_frames, loop, resolution, backend) -> FrameSource:
    kw: dict[str, Any] = {"fps": fps, "max_frames": max_frames, "loop": loop}
    if spec in ("", "default"):
        if DEFAULT_FRAMES.is_file():
            return DatasetSource(spec or "default", _data.open_dataset(f"npz:{DEFAULT_FRAMES}"), **kw)
        src = _open_synthetic("synthetic", resolution, **kw)
        src.spec = spec or "default"
        return src
    if spec.startswith("synthetic"):
        return _open_synthetic(spec, resolution, **kw)
    m = re.fullmatch(r"cam(\d+)", spec)
    if m:
        num = int(m.group(1))
        ok, why = _picamera2_importable()
        if ok:
            return PiCamera2Source(spec, num, resolution=resolution, **kw)
        return V4L2Source(spec, f"/dev/video{num}", resolution=resolution, backend=backend,
                          note=f"picamera2 not importable ({why})", **kw)
    if spec.startswith("/dev/"):
        return V4L2Source(spec, spec, resolution=resolution, backend=backend, **kw)
    kind, sep, rest = spec.partition(":")
    if sep and kind in _data.DATASET_KINDS:
        return DatasetSource(spec, _data.open_dataset(spec), **kw)
    if sep and kind == "video":
        return VideoFileSource(spec, Path(rest).expanduser(), backend=backend, **kw)
    path = Path(spec).expanduser()
    if path.is_dir():
        files = list_images(path)
        if files:
            return ImageFilesSource(spec, files, path, **kw)
        try:
            return DatasetSource(spec, _data.FolderDataset(path), **kw)
        except _data.DatasetError:
            raise SourceError(f"{spec}: folder has no images and no class subfolders with images") from None
    if path.is_file():
        if path.suffix.lower() == ".npz":
            return DatasetSource(spec, _data.open_dataset(f"npz:{path}"), **kw)
        if path.suffix.lower() in IMAGE_EXTENSIONS:
            return ImageFilesSource(spec, [path], path, **kw)
        return VideoFileSource(spec, path, backend=backend, **kw)
    if sep and len(kind) > 1 and "/" not in kind:
        raise SourceError(f"{spec}: unknown source kind {kind!r}; use {_FORMS}")
    if "/" in spec or "." in spec:
        raise SourceError(f"{spec}: no such file or directory")
    raise SourceError(f"{spec}: unknown source; use {_FORMS}")
