"""Preprocessing (tunable.preprocess): geometry against OpenCV, colour, value mapping and quantization, option
validation, and the MLPerf ResNet-8 fed through it."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from tunable.errors import InputError
from tunable.preprocess import Preprocessor, center_crop_box, parse_options, resize, to_color


def shared_dir() -> Path:
    env = os.environ.get("TUNABLE_SHARED")
    return Path(env) if env else Path(__file__).resolve().parents[1].parent / "shared"


@dataclass(frozen=True)
class Info:
    """Stand-in with TensorInfo's fields and quantize rule (round half away from zero, saturate)."""
    shape: tuple
    dtype: type = np.int8
    scale: float = 1.0
    zero_point: int = -128
    name: str = "input"

    def quantize(self, x):
        if np.dtype(self.dtype) == np.float32:
            return np.asarray(x, np.float32)
        q = np.asarray(x, np.float64) / self.scale
        q = np.sign(q) * np.floor(np.abs(q) + 0.5) + self.zero_point
        i = np.iinfo(self.dtype)
        return np.clip(q, i.min, i.max).astype(self.dtype)


RNG = np.random.default_rng(7)


# ------------------------------------------------------------------------------------------------ geometry

@pytest.mark.parametrize("src, dst", [((48, 64), (32, 32)), ((480, 640), (96, 96)), ((28, 28), (32, 32)),
                                      ((100, 75), (33, 21)), ((32, 32), (96, 96)), ((90, 90), (32, 32))])
def test_resize_matches_opencv_within_one_level(src, dst):
    import cv2
    img = RNG.integers(0, 256, src + (3,), dtype=np.uint8)
    for mode, flag in (("bilinear", cv2.INTER_LINEAR), ("area", cv2.INTER_AREA)):
        ours = resize(img[None], *dst, mode, backend="numpy")[0]
        ref = cv2.resize(img, (dst[1], dst[0]), interpolation=flag)
        # OpenCV works in fixed point; ours in float32: at most one level apart
        assert ours.shape == ref.shape
        assert int(np.abs(ours.astype(int) - ref.astype(int)).max()) <= 1, mode


def test_resize_nearest_picks_the_pixel_under_each_centre():
    h, w, oh, ow = 7, 640, 3, 96
    img = np.zeros((1, h, w, 2), np.uint8)
    img[0, :, :, 0] = np.arange(w) % 256
    img[0, :, :, 1] = np.arange(w) // 256
    out = resize(img, oh, ow, "nearest")[0]
    cols = out[0, :, 0].astype(int) + 256 * out[0, :, 1].astype(int)
    # centre of output column j is at (j + 0.5) * w / ow; exact ties (e.g. 170.0) belong to the pixel on the right
    assert cols.tolist() == [(2 * j + 1) * w // (2 * ow) for j in range(ow)]


def test_resize_identity_and_integer_area():
    img = RNG.integers(0, 256, (2, 8, 8, 3), dtype=np.uint8)
    assert resize(img, 8, 8) is img
    small = resize(img, 4, 4, "area")
    blocks = img.reshape(2, 4, 2, 4, 2, 3).astype(np.float64).mean(axis=(2, 4))
    assert np.array_equal(small, np.floor(blocks + 0.5).astype(np.uint8))


def test_center_crop_box():
    assert center_crop_box(480, 640, 96, 96) == (0, 80, 480, 480)
    assert center_crop_box(640, 480, 32, 32) == (80, 0, 480, 480)
    assert center_crop_box(100, 100, 50, 100) == (25, 0, 50, 100)
    assert center_crop_box(100, 100, 10, 10, fraction=0.5) == (25, 25, 50, 50)


def test_gray_conversion_bt601():
    px = np.array([[[[255, 0, 0], [0, 255, 0], [0, 0, 255], [10, 20, 30]]]], np.uint8)
    g = to_color(px, "gray")[0, 0, :, 0].tolist()
    assert g == [76, 150, 29, 18]     # round(0.299*255), round(0.587*255), round(0.114*255), 18.15
    assert to_color(np.full((1, 1, 1, 1), 9, np.uint8), "rgb").tolist() == [[[[9, 9, 9]]]]
    assert to_color(px, "bgr")[0, 0, 0].tolist() == [0, 0, 255]
    rgba = np.zeros((1, 1, 1, 4), np.uint8)
    assert to_color(rgba, "rgb").shape == (1, 1, 1, 3)


# ------------------------------------------------------------------------------------------------ mapping

def test_auto_mapping_resnet_style_is_pixel_minus_128():
    pre = Preprocessor(Info((1, 32, 32, 3), np.int8, 1.0, -128))
    x = RNG.integers(0, 256, (5, 32, 32, 3), dtype=np.uint8)
    assert np.array_equal(pre(x), (x.astype(int) - 128).astype(np.int8))
    assert "auto: input covers [0, 255]" in pre.describe()


def test_auto_mapping_vww_style_1_over_255():
    pre = Preprocessor(Info((1, 96, 96, 3), np.int8, np.float32(1 / 255), -128))
    x = np.arange(256, dtype=np.uint8).reshape(1, 16, 16, 1).repeat(6, 1).repeat(6, 2).repeat(3, 3)
    q = pre(x)
    assert q.shape == (1, 96, 96, 3) and q.dtype == np.int8
    assert np.array_equal(q, (x.astype(int) - 128).astype(np.int8))


def test_auto_mapping_minus1_to_1_uint8():
    # MobileNet-style uint8 input: scale 1/128, zero point 128 represents [-1, 0.992]
    pre = Preprocessor(Info((1, 1, 6, 3), np.uint8, 1 / 128, 128))
    x = np.array([0, 1, 127, 128, 254, 255], np.uint8).reshape(1, 1, 6, 1).repeat(3, 3)
    q = pre(x)[0, 0, :, 0].tolist()
    real = x[0, 0, :, 0].astype(np.float64) / 127.5 - 1
    assert q == [min(255, int(np.floor(abs(r) * 128 + 0.5) * np.sign(r)) + 128) for r in real]
    assert q == [0, 1, 127, 129, 255, 255]
    assert "auto: input covers [-1, 1]" in pre.describe()


def test_auto_mapping_refuses_unknown_ranges():
    with pytest.raises(InputError, match=r"cannot infer the pixel mapping: int8 scale 0.5847 zero_point 83"):
        Preprocessor(Info((1, 49, 10, 1), np.int8, 0.5847, 83))
    with pytest.raises(InputError, match="float input has no quantization"):
        Preprocessor(Info((1, 8, 8, 3), np.float32, 0.0, 0))


def test_explicit_quantized_integer_mapping():
    pre = Preprocessor(Info((1, 2, 2, 1), np.int8, 0.01, 3), {"quantized": "pixel-128"})
    x = np.array([0, 127, 128, 255], np.uint8).reshape(1, 2, 2, 1)
    assert pre(x).ravel().tolist() == [-128, -1, 0, 127]
    assert pre.describe().endswith("int8 = pixel - 128")
    pre = Preprocessor(Info((1, 2, 2, 1), np.uint8, 0.01, 3), {"uint8": "pixel"})
    assert pre(x).ravel().tolist() == [0, 127, 128, 255]


def test_scale_offset_mean_std_norm():
    info = Info((1, 1, 3, 3), np.int8, 1 / 128, 0)
    x = np.array([[[[0, 128, 255], [64, 64, 64], [255, 0, 10]]]], np.uint8)
    a = Preprocessor(info, {"scale": 1 / 127.5, "offset": -1})(x)
    b = Preprocessor(info, {"mean": 127.5, "std": 127.5})(x)
    c = Preprocessor(info, {"norm": "(pixel-127.5)/127.5"})(x)
    expect = info.quantize(x.astype(np.float64) / 127.5 - 1)
    assert np.array_equal(a, expect) and np.array_equal(b, expect) and np.array_equal(c, expect)
    per_channel = Preprocessor(info, {"mean": [0, 128, 255], "std": [255, 1, 255]})(x)
    assert per_channel[0, 0, 0].tolist() == [0, 0, 0]          # (0-0)/255, (128-128)/1, (255-255)/255


@pytest.mark.parametrize("opts, message", [
    ({"scael": 1}, "unknown preprocess option"),
    ({"quantized": "pixel-128", "scale": 1.0}, "conflict"),
    ({"int8": "pixel-128", "uint8": "pixel"}, "conflict"),
    ({"uint8": "pixel"}, "option 'uint8' given but the input is int8"),
    ({"quantized": "pixel"}, r"maps pixels 0..255 to 0..255, outside int8 \[-128, 127\]"),
    ({"quantized": "2*pixel"}, "expected 'pixel', 'pixel\\+K' or 'pixel-K'"),
    ({"offset": 1.0}, "'offset' needs 'scale'"),
    ({"mean": 1.0}, "'mean' and 'std' go together"),
    ({"mean": 1.0, "std": 0}, "std must not be 0"),
    ({"scale": [1, 2]}, "one per channel"),
    ({"norm": "pixel*2"}, "norm='pixel\\*2'"),
    ({"resize": "cubic"}, "resize='cubic'"),
    ({"crop": 1.5}, r"crop fraction 1.5 must be in \(0, 1\]"),
    ({"color": "gray"}, "does not fit an input with 3 channel"),
])
def test_option_validation(opts, message):
    with pytest.raises(InputError, match=message):
        Preprocessor(Info((1, 8, 8, 3)), opts)


def test_non_image_input_rejected():
    with pytest.raises(InputError, match=r"shape \(1, 640\) is not an image input"):
        Preprocessor(Info((1, 640)))


# ------------------------------------------------------------------------------------------------ pipeline

def test_camera_frame_to_gray_model_input():
    pre = Preprocessor(Info((1, 28, 28, 1), np.int8, 1 / 255, -128))
    frame = np.zeros((480, 640, 3), np.uint8)
    frame[:, 80:560] = 255                   # exactly the centre square: after the crop everything is white
    q = pre(frame)
    assert q.shape == (1, 28, 28, 1) and int(q.min()) == 127 == int(q.max())
    assert pre.describe(frame.shape) == ("center crop 480x480, resize 640x480 -> 28x28 (area, opencv), gray, "
                                         "real = pixel * 0.00392157 + 0 (auto: input covers [0, 1])")
    stretch = Preprocessor(Info((1, 28, 28, 1), np.int8, 1 / 255, -128), {"crop": "none", "resize": "nearest"})
    assert int(stretch(frame).min()) == -128            # the black borders are kept


@pytest.mark.parametrize("mode", ["area", "bilinear"])
def test_resize_backends_agree(mode, monkeypatch):
    info = Info((1, 96, 96, 3), np.int8, 1 / 255, -128)
    frames = RNG.integers(0, 256, (3, 240, 320, 3), dtype=np.uint8)
    fast = Preprocessor(info, {"resize": mode, "resize_backend": "opencv"})
    exact = Preprocessor(info, {"resize": mode, "resize_backend": "numpy"})
    assert fast.resize_backend == "opencv" and Preprocessor(info).resize_backend == "opencv"   # cv2 installed
    d = np.abs(fast(frames).astype(int) - exact(frames).astype(int))
    assert int(d.max()) <= 1
    import tunable.preprocess as pp
    monkeypatch.setattr(pp, "_opencv", lambda: None)          # without OpenCV, auto falls back to numpy
    assert Preprocessor(info).resize_backend == "numpy"
    from tunable.data import MissingDependencyError
    with pytest.raises(MissingDependencyError, match="opencv-python-headless"):
        pp.resize(frames, 96, 96, mode, backend="opencv")


def test_lookup_table_equals_direct_quantization():
    info = Info((1, 1, 1, 3), np.int8, 0.0123, -7)
    pre = Preprocessor(info, {"mean": [120.0, 110.5, 100.25], "std": [60.0, 61.0, 62.0]})
    px = np.arange(256, dtype=np.uint8)
    x = np.stack([px, px[::-1], np.roll(px, 7)], axis=-1).reshape(256, 1, 1, 3)
    real = (x.astype(np.float64) - np.array([120.0, 110.5, 100.25])) / np.array([60.0, 61.0, 62.0])
    assert np.array_equal(pre(x), info.quantize(real))
    assert pre.table().shape == (3, 256) and not pre.table().flags.writeable


def test_batch_equals_one_by_one_and_mixed_sizes():
    pre = Preprocessor(Info((1, 16, 16, 3)), {"resize": "bilinear"})
    batch = RNG.integers(0, 256, (4, 40, 30, 3), dtype=np.uint8)
    together = pre(batch)
    assert together.shape == (4, 16, 16, 3)
    for i in range(4):
        assert np.array_equal(pre(batch[i]), together[i:i + 1])
    mixed = pre([batch[0], batch[1, :20, :20], np.zeros((16, 16), np.uint8)])
    assert mixed.shape == (3, 16, 16, 3) and np.array_equal(mixed[0], together[0])
    with pytest.raises(InputError, match="must be uint8 pixels, got float64"):
        pre(np.zeros((16, 16, 3)))


def test_parse_options():
    assert parse_options(None) == {}
    assert parse_options("scale=1/255,offset=-0.5,resize=nearest,crop=0.875") == {
        "scale": 1 / 255, "offset": -0.5, "resize": "nearest", "crop": 0.875}
    assert parse_options("mean=123.7;116.3;103.5,std=58.4;57.1;57.4")["mean"] == [123.7, 116.3, 103.5]
    assert parse_options('{"quantized": "pixel-128"}') == {"quantized": "pixel-128"}
    with pytest.raises(InputError, match="not key=value"):
        parse_options("scale")
    with pytest.raises(InputError, match="scale='x' is not a number"):
        parse_options("scale=x")


def test_resnet8_through_preprocess_on_cifar():
    """The MLPerf ResNet-8 input built from the model's own TensorInfo (auto mapping) reproduces the reference
    accuracy of the data README (87.8 % on test_first1000 with LiteRT) when LiteRT runs it."""
    import tunable
    from ai_edge_litert.interpreter import Interpreter
    from tunable.data import open_dataset
    path = shared_dir() / "models" / "mlperf-tiny" / "pretrainedResnet_quant.tflite"
    pre = Preprocessor.from_model(tunable.load(path))
    ds = open_dataset(f"cifar10:{shared_dir() / 'data' / 'cifar10'}")
    q = pre(ds.x)
    assert np.array_equal(q, (ds.x.astype(np.int16) - 128).astype(np.int8))   # documented input: pixel - 128
    it = Interpreter(str(path), num_threads=1)
    it.allocate_tensors()
    i_in, i_out = it.get_input_details()[0]["index"], it.get_output_details()[0]["index"]
    correct = 0
    for k in range(len(q)):
        it.set_tensor(i_in, q[k:k + 1])
        it.invoke()
        correct += int(np.argmax(it.get_tensor(i_out)) == ds.labels[k])
    # XNNPACK requantizes in float, so allow a few images either way across CPUs
    assert abs(correct - 878) <= 5
