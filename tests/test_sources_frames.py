"""Frame sources (tunable.sources): real video files written with PyAV and read back with PyAV and OpenCV,
image folders, datasets streamed as frames, synthetic frames, fps pacing on a fake clock, a faked picamera2
and a faked V4L2 camera, and the errors for bad sources."""
from __future__ import annotations

import os
import sys
import types
from pathlib import Path

import numpy as np
import pytest

import tunable.sources as sources
from tunable.data import DatasetError, MissingDependencyError
from tunable.errors import InputError
from tunable.sources import (DatasetSource, Frame, ImageFilesSource, PiCamera2Source, SourceError, SyntheticSource,
                             V4L2Source, VideoFileSource, open_source)


def shared_dir() -> Path:
    env = os.environ.get("TUNABLE_SHARED")
    return Path(env) if env else Path(__file__).resolve().parents[1].parent / "shared"


def _pattern(i: int, h: int = 48, w: int = 64) -> np.ndarray:
    img = np.zeros((h, w, 3), np.uint8)
    img[..., 0] = (i * 20) % 256
    img[:, : w // 2, 1] = 200
    img[(i % 4) * 10:(i % 4) * 10 + 8, :, 2] = 255
    return img


def write_video(path: Path, n: int, codec: str, pix_fmt: str, rate: int = 10) -> list[np.ndarray]:
    import av
    frames = [_pattern(i) for i in range(n)]
    with av.open(str(path), "w") as c:
        s = c.add_stream(codec, rate=rate)
        s.width, s.height, s.pix_fmt = 64, 48, pix_fmt
        for img in frames:
            for packet in s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                c.mux(packet)
        for packet in s.encode():
            c.mux(packet)
    return frames


@pytest.fixture(scope="module")
def lossless_video(tmp_path_factory):
    p = tmp_path_factory.mktemp("video") / "clip.mkv"
    return p, write_video(p, 12, "ffv1", "bgr0")      # FFV1 in RGB: decodes bit-exact


@pytest.fixture(scope="module")
def lossy_video(tmp_path_factory):
    p = tmp_path_factory.mktemp("video") / "clip.mp4"
    return p, write_video(p, 12, "mpeg4", "yuv420p")


# ------------------------------------------------------------------------------------------------ video files

@pytest.mark.parametrize("backend", ["av", "opencv"])
def test_lossless_video_round_trip(lossless_video, backend):
    path, frames = lossless_video
    with open_source(str(path), backend=backend) as src:
        assert isinstance(src, VideoFileSource)
        got = list(src)
    assert len(got) == 12
    for k, (f, ref) in enumerate(zip(got, frames)):
        assert isinstance(f, Frame) and f.index == k and f.label is None
        assert f.image.dtype == np.uint8 and f.image.shape == (48, 64, 3)
        assert np.array_equal(f.image, ref), k
        assert f.timestamp == pytest.approx(k / 10, abs=1e-3)     # presentation time at 10 fps


def test_video_describe_says_what_was_opened(lossless_video, lossy_video):
    with open_source(str(lossless_video[0])) as src:
        assert src.describe().startswith(f"{lossless_video[0]}: video file {lossless_video[0]}, ffv1 64x48 @ 10 fps")
        assert "(PyAV " in src.describe()
    with open_source(f"video:{lossy_video[0]}", backend="opencv") as src:
        assert "64x48 @ 10 fps, 12 frames (OpenCV " in src.describe()
        assert src.length == 12


@pytest.mark.parametrize("backend", ["av", "opencv"])
def test_lossy_video_close_to_source(lossy_video, backend):
    path, frames = lossy_video
    got = [f.image for f in open_source(str(path), backend=backend)]
    assert len(got) == 12
    err = np.mean([np.abs(a.astype(int) - b.astype(int)).mean() for a, b in zip(got, frames)])
    assert err < 6.0      # MPEG-4 part 2 at default bitrate on a 64x48 test card


def test_walking_away_from_a_video_closes_its_decoder(lossless_video):
    src = open_source(str(lossless_video[0]), backend="av")
    it = iter(src)
    next(it)
    assert src._cap is not None           # PyAV container open while frames are being read
    it.close()
    assert src._cap is None


def test_video_max_frames_and_loop(lossless_video):
    path, frames = lossless_video
    with open_source(str(path), max_frames=5) as src:
        assert src.length == 5
        assert [f.index for f in src] == [0, 1, 2, 3, 4]
    with open_source(str(path), max_frames=30, loop=True) as src:
        got = list(src)
    assert len(got) == 30 and [f.index for f in got] == list(range(30))
    assert np.array_equal(got[25].image, frames[25 - 24])
    assert got[12].timestamp == pytest.approx(0.0)        # second pass starts the stream again


@pytest.mark.parametrize("content", [b"", b"definitely not a video\n" * 100])
def test_unreadable_video(tmp_path, content):
    p = tmp_path / "broken.mp4"
    p.write_bytes(content)
    for backend in ("av", "opencv"):
        with pytest.raises(SourceError, match=r"broken\.mp4.* is not a readable video"):
            open_source(str(p), backend=backend)


def test_truncated_video_gives_what_decodes_or_a_clear_error(tmp_path, lossy_video, lossless_video):
    p = tmp_path / "cut.mp4"
    p.write_bytes(lossy_video[0].read_bytes()[:600])     # MP4 keeps its index (moov) at the end: unreadable
    for backend in ("av", "opencv"):
        with pytest.raises(SourceError, match=r"cut\.mp4: .*cut\.mp4 is not a readable video"):
            open_source(str(p), backend=backend)
    data = lossless_video[0].read_bytes()
    q = tmp_path / "cut.mkv"
    q.write_bytes(data[:len(data) * 6 // 10])            # Matroska streams: the frames before the cut decode
    for backend in ("av", "opencv"):
        got = [f.image for f in open_source(str(q), backend=backend)]
        assert 0 < len(got) < 12
        assert all(np.array_equal(a, b) for a, b in zip(got, lossless_video[1]))


def test_missing_file_and_missing_libraries(tmp_path, monkeypatch, lossless_video):
    with pytest.raises(SourceError, match=r"no such file or directory"):
        open_source(str(tmp_path / "nope.mp4"))
    with pytest.raises(SourceError, match=r"no such file"):
        open_source(f"video:{tmp_path / 'nope.mp4'}")
    monkeypatch.setitem(sys.modules, "av", None)        # import av -> ImportError
    monkeypatch.setitem(sys.modules, "cv2", None)
    with pytest.raises(MissingDependencyError, match=r"needs PyAV or OpenCV: `pip install av`"):
        open_source(str(lossless_video[0]))


# ------------------------------------------------------------------------------------------------ images

def _png(path: Path, arr: np.ndarray):
    from PIL import Image
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)


def test_image_folder_unlabelled_in_name_order(tmp_path):
    imgs = [_pattern(i, 20, 30) for i in range(3)]
    for name, img in zip(("b.png", "a.png", "c.png"), imgs):
        _png(tmp_path / name, img)
    (tmp_path / "readme.txt").write_text("x")
    with open_source(str(tmp_path)) as src:
        assert isinstance(src, ImageFilesSource) and not src.labelled
        assert src.describe() == f"{tmp_path}: image folder {tmp_path} (3 unlabelled images)"
        got = list(src)
    assert [f.label for f in got] == [None] * 3
    assert np.array_equal(got[0].image, imgs[1]) and np.array_equal(got[1].image, imgs[0])


def test_image_folder_with_classes_and_single_file(tmp_path):
    for cls, n in (("no", 2), ("yes", 3)):
        for i in range(n):
            _png(tmp_path / cls / f"{i}.png", _pattern(i + 10 * len(cls), 8, 8))
    for spec in (str(tmp_path), f"folder:{tmp_path}"):
        with open_source(spec) as src:
            assert isinstance(src, DatasetSource) and src.class_names == ("no", "yes")
            assert [f.label for f in src] == [0, 0, 1, 1, 1]
    single = open_source(str(tmp_path / "yes" / "1.png"))
    frames = list(single)
    assert len(frames) == 1 and np.array_equal(frames[0].image, _pattern(31, 8, 8))
    assert single.describe().endswith("image file " + str(tmp_path / "yes" / "1.png"))


def test_empty_folder(tmp_path):
    (tmp_path / "sub").mkdir()
    with pytest.raises(SourceError, match="folder has no images and no class subfolders"):
        open_source(str(tmp_path))


# ------------------------------------------------------------------------------------------------ datasets

def test_mnist_streamed_as_labelled_frames():
    path = shared_dir() / "data" / "mnist"
    with open_source(f"mnist:{path}", max_frames=100) as src:
        assert src.labelled and src.class_names[7] == "7" and src.length == 100
        assert src.describe().startswith(f"mnist:{path}: dataset mnist test {path}: 10000 28x28x1")
        got = list(src)
    assert len(got) == 100 and got[0].image.shape == (28, 28, 1)
    assert [f.label for f in got[:5]] == [7, 2, 1, 0, 4]


def test_cifar_streamed_and_npz_path():
    npz = shared_dir() / "data" / "cifar10" / "test_first1000.npz"
    with np.load(npz) as z:
        x, y = z["x"], z["y"]
    for spec in (f"cifar10:{npz.parent}", str(npz), f"npz:{npz}"):
        with open_source(spec) as src:
            assert src.length == 1000
            frames = list(src)
        assert len(frames) == 1000
        assert [f.label for f in frames] == y.tolist()
        assert np.array_equal(frames[999].image, x[999])
    counts = np.bincount([f.label for f in frames], minlength=10)
    assert counts.tolist() == [103, 89, 100, 103, 90, 86, 112, 102, 106, 109]


def test_dataset_spec_errors_are_typed(tmp_path):
    with pytest.raises(DatasetError, match="no MNIST test split here"):
        open_source(f"mnist:{tmp_path}")
    with pytest.raises(InputError, match="does not exist"):
        open_source("cifar10:/no/such/place")


# ------------------------------------------------------------------------------------------------ synthetic

def test_synthetic_deterministic_and_labelled():
    a = [f for f in open_source("synthetic", max_frames=12)]
    b = [f for f in open_source("synthetic", max_frames=12)]
    assert all(np.array_equal(p.image, q.image) for p, q in zip(a, b))
    assert [f.label for f in a] == [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1]
    assert a[0].image.shape == (64, 64, 3) and a[0].image.dtype == np.uint8
    assert not np.array_equal(a[0].image, a[10].image)          # same class, pattern drifts
    c = list(open_source("synthetic,seed=5", max_frames=1))[0]
    assert not np.array_equal(c.image, a[0].image)


def test_synthetic_spec_forms():
    src = open_source("synthetic:32x24x1,classes=3,unlabelled", max_frames=4)
    assert isinstance(src, SyntheticSource) and not src.labelled
    frames = list(src)
    assert frames[0].image.shape == (24, 32, 1) and frames[0].label is None
    assert src.describe() == ("synthetic:32x24x1,classes=3,unlabelled: synthetic 32x24x1 frames (unlabelled, seed 0) "
                              "(max 4 frames)")
    sized = open_source("synthetic", resolution=(96, 80), max_frames=1)
    assert next(iter(sized)).image.shape == (80, 96, 3)
    for bad in ("synthetic:32", "synthetic,colour=2", "synthetic:0x10"):
        with pytest.raises(SourceError, match="synthetic"):
            open_source(bad)


def test_default_source(monkeypatch, tmp_path):
    monkeypatch.setattr(sources, "DEFAULT_FRAMES", tmp_path / "missing.npz")
    src = open_source("default", max_frames=2)
    assert isinstance(src, SyntheticSource) and src.describe().startswith("default: synthetic 64x64x3")
    np.savez(tmp_path / "frames.npz", x=np.zeros((3, 8, 8, 3), np.uint8), y=np.array([0, 1, 2]))
    monkeypatch.setattr(sources, "DEFAULT_FRAMES", tmp_path / "frames.npz")
    src = open_source("default")
    assert isinstance(src, DatasetSource) and [f.label for f in src] == [0, 1, 2]


# ------------------------------------------------------------------------------------------------ pacing

class FakeClock:
    def __init__(self):
        self.now = 100.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, dt: float) -> None:
        self.sleeps.append(dt)
        self.now += dt


def test_fps_pacing_on_a_fake_clock(monkeypatch):
    clock = FakeClock()
    monkeypatch.setattr(sources, "time", clock)
    src = open_source("synthetic", fps=10, max_frames=6)
    stamps = []
    for f in src:
        stamps.append(f.timestamp)
        if f.index == 2:
            clock.now += 0.55          # the consumer stalls: no burst of frames afterwards
    assert stamps == pytest.approx([0.0, 0.1, 0.2, 0.75, 0.85, 0.95])
    assert src.describe().endswith("(paced to 10 fps, max 6 frames)")


def test_no_pacing_without_fps(monkeypatch):
    clock = FakeClock()
    monkeypatch.setattr(sources, "time", clock)
    assert len(list(open_source("synthetic", max_frames=20))) == 20
    assert clock.sleeps == []


def test_bad_options():
    with pytest.raises(SourceError, match="fps must be > 0"):
        open_source("synthetic", fps=0)
    with pytest.raises(SourceError, match="max_frames must be >= 0"):
        open_source("synthetic", max_frames=-1)


# ------------------------------------------------------------------------------------------------ cameras

class FakePicamera2:
    cameras = [{"Model": "imx708", "Location": 2, "Rotation": 180, "Id": "/base/soc/i2c0mux/i2c@1/imx708@1a",
                "Num": 0}]
    instances: list[FakePicamera2] = []
    fail_open = False

    def __init__(self, camera_num=0):
        if FakePicamera2.fail_open:
            raise RuntimeError("Failed to acquire camera: Device or resource busy")
        self.camera_num, self.started, self.closed, self.count = camera_num, False, False, 0
        FakePicamera2.instances.append(self)

    @staticmethod
    def global_camera_info():
        return FakePicamera2.cameras

    def create_video_configuration(self, main=None, controls=None):
        return {"main": dict(main or {}), "controls": dict(controls or {})}

    def configure(self, config):
        self.config = config

    def start(self):
        self.started = True

    def capture_array(self, name="main"):
        assert self.started and name == "main"
        w, h = self.config["main"]["size"]
        a = np.zeros((h, w, 3), np.uint8)
        a[..., 0] = self.count          # with format BGR888 picamera2 returns R, G, B in memory order
        a[..., 2] = 200
        self.count += 1
        return a

    def stop(self):
        self.started = False

    def close(self):
        self.closed = True


@pytest.fixture
def fake_picamera2(monkeypatch):
    mod = types.ModuleType("picamera2")
    mod.Picamera2 = FakePicamera2
    FakePicamera2.instances = []
    FakePicamera2.fail_open = False
    monkeypatch.setitem(sys.modules, "picamera2", mod)
    return FakePicamera2


def test_cam0_uses_picamera2_when_importable(fake_picamera2):
    with open_source("cam0", resolution=(320, 240), fps=15, max_frames=3) as src:
        assert isinstance(src, PiCamera2Source)
        assert src.describe() == ("cam0: camera 0 via picamera2/libcamera (CSI), imx708 "
                                  "[/base/soc/i2c0mux/i2c@1/imx708@1a], 320x240 RGB (paced to 15 fps, max 3 frames)")
        cam = fake_picamera2.instances[0]
        assert cam.camera_num == 0
        assert cam.config == {"main": {"size": (320, 240), "format": "BGR888"}, "controls": {"FrameRate": 15.0}}
        frames = list(src)
    assert [f.image.shape for f in frames] == [(240, 320, 3)] * 3
    assert [int(f.image[0, 0, 0]) for f in frames] == [0, 1, 2] and int(frames[0].image[0, 0, 2]) == 200
    assert cam.count == 3                 # max_frames stops before capturing a fourth frame
    assert cam.closed and not cam.started


def test_picamera2_missing_camera_and_busy(fake_picamera2):
    with pytest.raises(SourceError, match=r"cam1: picamera2 sees 1 camera\(s\): 0: imx708 .*no camera 1"):
        open_source("cam1")
    fake_picamera2.fail_open = True
    with pytest.raises(SourceError, match="cam0: picamera2 cannot open camera 0 .*busy"):
        open_source("cam0")


class FakeCapture:
    """cv2.VideoCapture stand-in for a V4L2 webcam: BGR frames, settable size."""
    opened: list = []

    def __init__(self, device, api=None):
        import cv2
        self.device, self.api, self.props, self.n = device, api, {cv2.CAP_PROP_FRAME_WIDTH: 640,
                                                                 cv2.CAP_PROP_FRAME_HEIGHT: 480,
                                                                 cv2.CAP_PROP_FPS: 30.0}, 0
        self.released = False
        FakeCapture.opened.append(self)

    def isOpened(self):
        return True

    def set(self, prop, value):
        self.props[prop] = value
        return True

    def get(self, prop):
        return self.props.get(prop, 0)

    def read(self):
        import cv2
        if self.n >= 4:                  # the camera dies after four frames
            return False, None
        bgr = np.zeros((int(self.props[cv2.CAP_PROP_FRAME_HEIGHT]), int(self.props[cv2.CAP_PROP_FRAME_WIDTH]), 3),
                       np.uint8)
        bgr[..., 0] = 255                # blue in OpenCV's BGR order
        self.n += 1
        return True, bgr

    def release(self):
        self.released = True


@pytest.fixture
def fake_webcam(monkeypatch):
    import cv2
    monkeypatch.setitem(sys.modules, "picamera2", None)          # not Raspberry Pi OS
    monkeypatch.setattr(cv2, "VideoCapture", FakeCapture)
    monkeypatch.setattr(sources, "_device_exists", lambda path: path == "/dev/video0")
    FakeCapture.opened = []
    return FakeCapture


def test_cam0_falls_back_to_v4l2_via_opencv(fake_webcam):
    import cv2
    src = open_source("cam0", resolution=(160, 120), max_frames=3)
    assert isinstance(src, V4L2Source)
    cap = fake_webcam.opened[0]
    assert cap.device == 0 and cap.api == cv2.CAP_V4L2          # /dev/video0 opened by index
    d = src.describe()
    assert d.startswith("cam0: picamera2 not importable (")
    assert d.endswith("-> USB/V4L2 camera /dev/video0 via OpenCV " + cv2.__version__ + ", 160x120 @ 30 fps "
                      "(max 3 frames)")
    frames = list(src)
    assert len(frames) == 3 and frames[0].image.shape == (120, 160, 3)
    assert frames[0].image[0, 0].tolist() == [0, 0, 255]          # converted to RGB
    src.close()
    assert cap.released


def test_dev_video_path_and_dead_camera(fake_webcam):
    with open_source("/dev/video0") as src:
        assert src.describe().startswith("/dev/video0: USB/V4L2 camera /dev/video0 via OpenCV")
        with pytest.raises(SourceError, match="/dev/video0 stopped delivering frames"):
            list(src)


def test_no_camera_at_all(monkeypatch):
    monkeypatch.setitem(sys.modules, "picamera2", None)
    monkeypatch.setattr(sources, "_device_exists", lambda path: False)
    with pytest.raises(SourceError, match=r"cam0: picamera2 not importable \(.*\); no camera device /dev/video0"):
        open_source("cam0")
    with pytest.raises(SourceError, match="/dev/video7: no camera device /dev/video7"):
        open_source("/dev/video7")


# ------------------------------------------------------------------------------------------------ specs

@pytest.mark.parametrize("spec, message", [
    ("webcam", "webcam: unknown source; use camN, /dev/videoN"),
    ("rtsp:host/stream", "unknown source kind 'rtsp'"),
    ("./missing_dir/", "no such file or directory"),
])
def test_unknown_specs(spec, message):
    with pytest.raises(SourceError, match=message):
        open_source(spec)


def test_errors_are_input_errors_and_closed_sources_refuse():
    assert issubclass(SourceError, InputError)
    src = open_source("synthetic", max_frames=1)
    src.close()
    with pytest.raises(SourceError, match="closed"):
        list(src)
