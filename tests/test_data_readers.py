"""Dataset readers (tunable.data): real MNIST / CIFAR-10 from the shared data, official CIFAR batch layouts
written here, image folders, and every malformed input raising a DatasetError that names the file."""
from __future__ import annotations

import gzip
import hashlib
import io
import os
import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest

from tunable.data import (ArrayDataset, DatasetError, FolderDataset, InputError, decode_image, open_dataset,
                          read_idx)

MNIST_TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
MNIST_TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
CIFAR_TEST1000_COUNTS = [103, 89, 100, 103, 90, 86, 112, 102, 106, 109]


def shared_dir() -> Path:
    """$TUNABLE_SHARED, else ../shared beside the repository (same rule as the project)."""
    env = os.environ.get("TUNABLE_SHARED")
    return Path(env) if env else Path(__file__).resolve().parents[1].parent / "shared"


MNIST = shared_dir() / "data" / "mnist"
CIFAR = shared_dir() / "data" / "cifar10"


@pytest.fixture(scope="module")
def cifar1000():
    with np.load(CIFAR / "test_first1000.npz") as z:
        return z["x"], z["y"].astype(np.int64)


# ------------------------------------------------------------------------------------------------ MNIST

def test_mnist_test_split_counts_and_bytes():
    ds = open_dataset(f"mnist:{MNIST}")
    assert len(ds) == 10000 and ds.split == "test"
    assert ds.image_shape == (28, 28, 1)
    assert ds.class_names == tuple(str(i) for i in range(10))
    assert ds.counts().tolist() == MNIST_TEST_COUNTS
    assert ds.labels[:5].tolist() == [7, 2, 1, 0, 4]
    # rebuild the uncompressed IDX file from what the reader returned: its md5 is the official one
    header = bytes([0, 0, 8, 3]) + np.array([10000, 28, 28], ">u4").tobytes()
    assert hashlib.md5(header + ds.x.tobytes()).hexdigest() == "2646ac647ad5339dbf082846283269ea"


def test_mnist_train_split():
    ds = open_dataset(f"mnist:{MNIST}:train")
    assert len(ds) == 60000 and ds.split == "train"
    assert ds.counts().tolist() == MNIST_TRAIN_COUNTS
    header = bytes([0, 0, 8, 1]) + np.array([60000], ">u4").tobytes()
    assert hashlib.md5(header + ds.labels.astype(np.uint8).tobytes()).hexdigest() == \
        "a25bea736e30d166cdddb491f175f624"


def test_mnist_batches_cover_everything_in_order():
    ds = open_dataset(f"mnist:{MNIST}")
    seen, labels = 0, []
    for x, y in ds.batches(3000):
        assert x.dtype == np.uint8 and x.ndim == 4 and x.shape[1:] == (28, 28, 1)
        assert y.dtype == np.int64 and len(x) == len(y)
        seen += len(x)
        labels.append(y)
    assert seen == 10000
    assert np.array_equal(np.concatenate(labels), ds.labels)
    img, label = ds[-1]
    assert img.shape == (28, 28, 1) and label == int(ds.labels[-1])


def test_mnist_frames_are_read_only():
    ds = open_dataset(f"mnist:{MNIST}")
    x, _ = next(ds.batches(4))
    with pytest.raises(ValueError):
        x[0, 0, 0, 0] = 1


def _write_idx(path: Path, arr: np.ndarray, *, gz: bool = False, magic: bytes | None = None,
               extra: bytes = b"", cut: int = 0):
    data = (magic or bytes([0, 0, 8, arr.ndim])) + np.array(arr.shape, ">u4").tobytes() + arr.tobytes() + extra
    if cut:
        data = data[:-cut]
    if gz:
        data = gzip.compress(data)
    path.write_bytes(data)


def _tiny_mnist(folder: Path, n: int = 6, gz: bool = False, **labels_kw) -> np.ndarray:
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
    suffix = ".gz" if gz else ""
    _write_idx(folder / f"t10k-images-idx3-ubyte{suffix}", x, gz=gz)
    _write_idx(folder / f"t10k-labels-idx1-ubyte{suffix}", np.arange(n, dtype=np.uint8) % 10, gz=gz, **labels_kw)
    return x


@pytest.mark.parametrize("gz", [False, True])
def test_mnist_plain_and_gzip(tmp_path, gz):
    x = _tiny_mnist(tmp_path, gz=gz)
    ds = open_dataset(f"mnist:{tmp_path}")
    assert np.array_equal(ds.x[..., 0], x)
    assert ds.labels.tolist() == [0, 1, 2, 3, 4, 5]


def test_mnist_images_file_spec(tmp_path):
    _tiny_mnist(tmp_path)
    ds = open_dataset(f"mnist:{tmp_path / 't10k-images-idx3-ubyte'}")
    assert len(ds) == 6


def test_idx_bad_magic(tmp_path):
    p = tmp_path / "t10k-images-idx3-ubyte"
    _write_idx(p, np.zeros((2, 28, 28), np.uint8), magic=b"\x00\x01\x08\x03")
    with pytest.raises(DatasetError, match=r"t10k-images-idx3-ubyte: not an IDX file"):
        read_idx(p)


def test_idx_wrong_dimension_count(tmp_path):
    p = tmp_path / "labels"
    _write_idx(p, np.zeros((2, 3), np.uint8))
    with pytest.raises(DatasetError, match=r"labels: IDX file has 2 dimension\(s\), expected 1"):
        read_idx(p, ndim=1)


def test_idx_truncated_and_trailing(tmp_path):
    p = tmp_path / "a"
    _write_idx(p, np.zeros((3, 28, 28), np.uint8), cut=5)
    with pytest.raises(DatasetError, match=r"a: IDX data truncated: 2363 bytes, dimensions \(3, 28, 28\) need 2368"):
        read_idx(p)
    _write_idx(p, np.zeros((3, 28, 28), np.uint8), extra=b"xx")
    with pytest.raises(DatasetError, match="trailing bytes"):
        read_idx(p)


def test_idx_truncated_gzip(tmp_path):
    p = tmp_path / "t10k-images-idx3-ubyte.gz"
    _write_idx(p, np.zeros((50, 28, 28), np.uint8), gz=True)
    p.write_bytes(p.read_bytes()[:-40])
    with pytest.raises(DatasetError, match="corrupt or truncated gzip"):
        read_idx(p)


def test_mnist_label_count_mismatch_and_range(tmp_path):
    _tiny_mnist(tmp_path)
    _write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.zeros(5, np.uint8))
    with pytest.raises(DatasetError, match=r"6 images but t10k-labels-idx1-ubyte has 5 labels"):
        open_dataset(f"mnist:{tmp_path}")
    _write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.array([0, 1, 2, 3, 4, 12], np.uint8))
    with pytest.raises(DatasetError, match="label 12 out of range 0..9"):
        open_dataset(f"mnist:{tmp_path}")


def test_mnist_missing_split(tmp_path):
    _tiny_mnist(tmp_path)
    with pytest.raises(DatasetError, match=r"no MNIST train split here \(missing train-images-idx3-ubyte"):
        open_dataset(f"mnist:{tmp_path}:train")


# ------------------------------------------------------------------------------------------------ CIFAR-10

def test_cifar_npz_dir_and_file(cifar1000):
    x, y = cifar1000
    for spec in (f"cifar10:{CIFAR}", f"cifar10:{CIFAR / 'test_first1000.npz'}", f"npz:{CIFAR / 'test_first1000.npz'}"):
        ds = open_dataset(spec)
        assert len(ds) == 1000 and ds.image_shape == (32, 32, 3)
        assert ds.counts().tolist() == CIFAR_TEST1000_COUNTS
        assert np.array_equal(ds.x, x)
    assert open_dataset(f"cifar10:{CIFAR}").class_names[:3] == ("airplane", "automobile", "bird")
    assert len(open_dataset(f"cifar10:{CIFAR}:train")) == 4000


def _official_pickle(x: np.ndarray, y: np.ndarray, protocol: int = 2) -> bytes:
    """A batch as cifar-10-batches-py has it: dict with bytes keys, data (N, 3072) row = R plane, G, B."""
    d = {b"batch_label": b"testing batch 1 of 1", b"labels": [int(v) for v in y],
         b"data": np.ascontiguousarray(x.transpose(0, 3, 1, 2).reshape(len(x), 3072)),
         b"filenames": [f"img_{i}.png".encode() for i in range(len(x))]}
    return pickle.dumps(d, protocol=protocol)


def _official_bin(x: np.ndarray, y: np.ndarray) -> bytes:
    planes = x.transpose(0, 3, 1, 2).reshape(len(x), 3072)
    return np.concatenate([y.astype(np.uint8)[:, None], planes], axis=1).tobytes()


def _meta(names) -> bytes:
    return pickle.dumps({b"label_names": [n.encode() for n in names], b"num_cases_per_batch": 10000}, protocol=2)


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_cifar_python_batches(tmp_path, cifar1000, protocol):
    x, y = cifar1000
    d = tmp_path / "cifar-10-batches-py"
    d.mkdir()
    (d / "test_batch").write_bytes(_official_pickle(x[:40], y[:40], protocol))
    (d / "data_batch_1").write_bytes(_official_pickle(x[40:70], y[40:70], protocol))
    (d / "data_batch_2").write_bytes(_official_pickle(x[70:100], y[70:100], protocol))
    names = [f"c{i}" for i in range(10)]
    (d / "batches.meta").write_bytes(_meta(names))
    test = open_dataset(f"cifar10:{tmp_path}")
    assert np.array_equal(test.x, x[:40]) and np.array_equal(test.labels, y[:40])
    assert test.class_names == tuple(names)
    train = open_dataset(f"cifar10:{d}:train")       # batches concatenated in data_batch_N order
    assert np.array_equal(train.x, x[40:100]) and np.array_equal(train.labels, y[40:100])
    one = open_dataset(f"cifar10:{d / 'data_batch_2'}")
    assert np.array_equal(one.x, x[70:100])
    (d / "test_batch.bin").write_bytes(_official_bin(x[:40], y[:40]))    # both formats unpacked side by side
    assert len(open_dataset(f"cifar10:{d}")) == 40                       # read once, not twice


def test_cifar_binary_batches_and_tar(tmp_path, cifar1000):
    x, y = cifar1000
    d = tmp_path / "cifar-10-batches-bin"
    d.mkdir()
    (d / "test_batch.bin").write_bytes(_official_bin(x[:25], y[:25]))
    (d / "data_batch_1.bin").write_bytes(_official_bin(x[25:50], y[25:50]))
    (d / "batches.meta.txt").write_text("\n".join(f"k{i}" for i in range(10)) + "\n\n")
    ds = open_dataset(f"cifar10:{tmp_path}")
    assert np.array_equal(ds.x, x[:25]) and np.array_equal(ds.labels, y[:25])
    assert ds.class_names[0] == "k0"
    assert np.array_equal(open_dataset(f"cifar10:{d / 'data_batch_1.bin'}").x, x[25:50])
    # the official archive layout, read without unpacking
    tgz = tmp_path / "cifar-10-binary.tar.gz"
    with tarfile.open(tgz, "w:gz") as tar:
        tar.add(d, arcname="cifar-10-batches-bin")
    ds2 = open_dataset(f"cifar10:{tgz}:train")
    assert np.array_equal(ds2.x, x[25:50]) and ds2.class_names[0] == "k0"


def test_cifar_python_tar(tmp_path, cifar1000):
    x, y = cifar1000
    tgz = tmp_path / "cifar-10-python.tar.gz"
    with tarfile.open(tgz, "w:gz") as tar:
        for name, payload in (("test_batch", _official_pickle(x[:10], y[:10])), ("batches.meta", _meta(
                ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]))):
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    ds = open_dataset(f"cifar10:{tgz}")
    assert np.array_equal(ds.x, x[:10]) and ds.class_names[-1] == "truck"


def test_cifar_binary_bad_size(tmp_path, cifar1000):
    x, y = cifar1000
    p = tmp_path / "test_batch.bin"
    p.write_bytes(_official_bin(x[:3], y[:3])[:-7])
    with pytest.raises(DatasetError, match=r"test_batch.bin: CIFAR binary batch of 9212 bytes is not a whole number"):
        open_dataset(f"cifar10:{tmp_path}")


def test_cifar_binary_bad_label(tmp_path, cifar1000):
    x, y = cifar1000
    p = tmp_path / "test_batch.bin"
    p.write_bytes(_official_bin(x[:3], np.array([1, 11, 2])))
    with pytest.raises(DatasetError, match="label 11 out of range 0..9"):
        open_dataset(f"cifar10:{p}")


def test_cifar_pickle_wrong_shape_and_keys(tmp_path):
    p = tmp_path / "test_batch"
    p.write_bytes(pickle.dumps({b"data": np.zeros((2, 3000), np.uint8), b"labels": [0, 1]}, protocol=2))
    with pytest.raises(DatasetError, match=r"test_batch: 'data' must be uint8 \(N, 3072\), got uint8 \(2, 3000\)"):
        open_dataset(f"cifar10:{tmp_path}")
    p.write_bytes(pickle.dumps({b"pixels": np.zeros((2, 3072), np.uint8)}, protocol=2))
    with pytest.raises(DatasetError, match="lacks 'data' or 'labels'"):
        open_dataset(f"cifar10:{tmp_path}")
    p.write_bytes(pickle.dumps({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0]}, protocol=2))
    with pytest.raises(DatasetError, match="'labels' must be 2 integers"):
        open_dataset(f"cifar10:{tmp_path}")


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_cifar_pickle_cannot_run_code(tmp_path):
    p = tmp_path / "test_batch"
    p.write_bytes(pickle.dumps({b"data": _Evil(), b"labels": []}, protocol=2))
    with pytest.raises(DatasetError, match=r"refusing to load (posix|os)\.system"):
        open_dataset(f"cifar10:{tmp_path}")


def test_cifar_truncated_pickle(tmp_path, cifar1000):
    x, y = cifar1000
    p = tmp_path / "test_batch"
    p.write_bytes(_official_pickle(x[:5], y[:5])[:-100])
    with pytest.raises(DatasetError, match="test_batch: not a readable CIFAR python batch"):
        open_dataset(f"cifar10:{tmp_path}")


def test_cifar_nothing_there(tmp_path):
    with pytest.raises(DatasetError, match="no CIFAR-10 test data here"):
        open_dataset(f"cifar10:{tmp_path}")


# ------------------------------------------------------------------------------------------------ npz

def test_npz_generic_names_and_gray(tmp_path):
    x = np.arange(5 * 6 * 7, dtype=np.uint8).reshape(5, 6, 7)
    np.savez(tmp_path / "a.npz", x=x, y=np.array([0, 1, 1, 2, 0]), names=np.array(["cat", "dog", "eel"]))
    ds = open_dataset(f"npz:{tmp_path / 'a.npz'}")
    assert ds.image_shape == (6, 7, 1) and ds.class_names == ("cat", "dog", "eel")
    assert ds.counts().tolist() == [2, 2, 1]
    assert np.array_equal(ds.x[..., 0], x)


def test_npz_keras_style_split(tmp_path):
    rng = np.random.default_rng(0)
    xt, xr = rng.integers(0, 256, (4, 28, 28), dtype=np.uint8), rng.integers(0, 256, (6, 28, 28), dtype=np.uint8)
    np.savez_compressed(tmp_path / "mnist.npz", x_test=xt, y_test=np.arange(4), x_train=xr, y_train=np.arange(6))
    assert np.array_equal(open_dataset(f"npz:{tmp_path / 'mnist.npz'}").x[..., 0], xt)
    assert np.array_equal(open_dataset(f"npz:{tmp_path / 'mnist.npz'}:train").x[..., 0], xr)


@pytest.mark.parametrize("arrays, message", [
    ({"a": np.zeros(3)}, "needs arrays x and y .* it has a"),
    ({"x": np.zeros((2, 4, 4), np.float32), "y": np.zeros(2, int)}, "images x must be uint8 pixels, got float32"),
    ({"x": np.zeros((2, 4, 4), np.uint8), "y": np.zeros(3, int)}, r"labels y must be 2 integers, got int64 \(3,\)"),
    ({"x": np.zeros((2, 4, 4, 5), np.uint8), "y": np.zeros(2, int)}, r"C = 1 or 3, got \(2, 4, 4, 5\)"),
    ({"x": np.zeros((2, 4, 4), np.uint8), "y": np.array([0, -1])}, "label -1 out of range"),
    ({"x": np.zeros((2, 4, 4), np.uint8), "y": np.array([0, 2]), "names": np.array(["a", "b"])},
     "label 2 out of range 0..1"),
])
def test_npz_validation(tmp_path, arrays, message):
    p = tmp_path / "bad.npz"
    np.savez(p, **arrays)
    with pytest.raises(DatasetError, match=r"bad\.npz: .*" + message):
        open_dataset(f"npz:{p}")


def test_npz_truncated_and_not_zip(tmp_path):
    p = tmp_path / "t.npz"
    np.savez(p, x=np.zeros((20, 8, 8), np.uint8), y=np.zeros(20, int))
    p.write_bytes(p.read_bytes()[:300])
    with pytest.raises(DatasetError, match=r"t\.npz: not a readable \.npz"):
        open_dataset(f"npz:{p}")
    p.write_text("hello")
    with pytest.raises(DatasetError, match=r"t\.npz: not a readable \.npz"):
        open_dataset(f"npz:{p}")


def test_npz_with_cifar_kind_checks_shape(tmp_path):
    p = tmp_path / "test_small.npz"
    np.savez(p, x=np.zeros((2, 28, 28), np.uint8), y=np.zeros(2, int))
    with pytest.raises(DatasetError, match=r"CIFAR-10 images must be \(N, 32, 32, 3\), got \(2, 28, 28, 1\)"):
        open_dataset(f"cifar10:{p}")


# ------------------------------------------------------------------------------------------------ folders

def _png(path: Path, arr: np.ndarray):
    from PIL import Image
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr if arr.ndim == 2 or arr.shape[2] > 1 else arr[..., 0]).save(path)


def test_folder_dataset_lazy_decode(tmp_path):
    rng = np.random.default_rng(3)
    imgs = {}
    for cls, n in (("cat", 3), ("dog", 2), ("emu", 4)):
        for i in range(n):
            a = rng.integers(0, 256, (12, 10, 3), dtype=np.uint8)
            imgs[(cls, i)] = a
            _png(tmp_path / cls / f"{i:03d}.png", a)
    (tmp_path / "cat" / "notes.txt").write_text("not an image")
    (tmp_path / "empty").mkdir()
    ds = open_dataset(f"folder:{tmp_path}")
    assert isinstance(ds, FolderDataset)
    assert ds.class_names == ("cat", "dog", "emu") and len(ds) == 9
    assert ds.counts().tolist() == [3, 2, 4]
    xs, ys = zip(*ds.batches(4))
    x, y = np.concatenate(xs), np.concatenate(ys)
    assert x.shape == (9, 12, 10, 3) and y.tolist() == [0, 0, 0, 1, 1, 2, 2, 2, 2]
    assert np.array_equal(x[3], imgs[("dog", 0)])     # PNG is lossless
    assert ds.image_shape == (12, 10, 3)


def test_folder_mixed_sizes_and_resize(tmp_path):
    _png(tmp_path / "a" / "1.png", np.full((8, 8, 3), 10, np.uint8))
    _png(tmp_path / "b" / "1.png", np.full((16, 12, 3), 200, np.uint8))
    ds = open_dataset(f"folder:{tmp_path}")
    with pytest.raises(DatasetError, match=r"b/1\.png: image is 12x16 but 1\.png is 8x8"):
        list(ds.batches(2))
    assert ds[1][0].shape == (16, 12, 3)                # one at a time is fine
    ds2 = open_dataset(f"folder:{tmp_path}", size=(8, 8))
    x = np.concatenate([b for b, _ in ds2.batches(2)])
    assert x.shape == (2, 8, 8, 3) and int(x[1].min()) == 200 == int(x[1].max())


def test_folder_gray_and_color_modes(tmp_path):
    _png(tmp_path / "a" / "1.png", np.full((4, 4), 77, np.uint8))             # 'L'
    _png(tmp_path / "b" / "1.png", np.full((4, 4, 3), (255, 0, 0), np.uint8))  # RGB
    ds = open_dataset(f"folder:{tmp_path}")
    x = next(ds.batches(2))[0]
    assert x.shape == (2, 4, 4, 1) and int(x[0, 0, 0, 0]) == 77 and int(x[1, 0, 0, 0]) == 76   # 0.299*255
    rgb = open_dataset(f"folder:{tmp_path}", color="rgb")
    x = next(rgb.batches(2))[0]
    assert x.shape == (2, 4, 4, 3) and x[0, 0, 0].tolist() == [77, 77, 77]


def test_decode_image_rgba_palette_jpeg(tmp_path):
    from PIL import Image
    rgba = np.zeros((5, 6, 4), np.uint8)
    rgba[..., 0] = 200
    rgba[..., 3] = 255
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    assert decode_image(tmp_path / "a.png").shape == (5, 6, 3)
    Image.fromarray(np.full((5, 6, 3), 90, np.uint8)).convert("P", palette=Image.Palette.ADAPTIVE).save(tmp_path / "p.png")
    assert decode_image(tmp_path / "p.png")[0, 0].tolist() == [90, 90, 90]
    Image.fromarray(np.full((16, 16, 3), 128, np.uint8)).save(tmp_path / "j.jpg", quality=95)
    j = decode_image(tmp_path / "j.jpg")
    assert j.shape == (16, 16, 3) and abs(int(j.mean()) - 128) <= 2


def test_folder_errors(tmp_path):
    (tmp_path / "empty_class").mkdir()
    with pytest.raises(DatasetError, match="no class subfolders with images"):
        open_dataset(f"folder:{tmp_path}")
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    ds = open_dataset(f"folder:{tmp_path}")
    with pytest.raises(DatasetError, match=r"broken\.png: cannot decode image"):
        ds[0]


# ------------------------------------------------------------------------------------------------ specs

@pytest.mark.parametrize("spec, message", [
    ("imagenet:/x", "expected one of mnist:PATH, cifar10:PATH, folder:PATH, npz:PATH"),
    ("mnist", "expected one of"),
    ("npz:", "no path after 'npz:'"),
    ("npz:/definitely/not/here.npz", "does not exist"),
])
def test_bad_specs(spec, message):
    with pytest.raises(DatasetError, match=message):
        open_dataset(spec)


def test_dataset_error_is_input_error():
    assert issubclass(DatasetError, InputError)
    with pytest.raises(InputError):
        open_dataset("cifar10:/no/such/dir")


def test_array_dataset_describe():
    ds = ArrayDataset(np.zeros((3, 2, 2, 1), np.uint8), np.array([0, 1, 0]), None, kind="npz", path=Path("x.npz"))
    assert ds.class_names == ("0", "1")
    assert ds.describe() == "npz x.npz: 3 2x2x1, 2 classes"


def test_decode_without_pillow_uses_opencv_then_says_what_to_install(tmp_path, monkeypatch):
    import sys
    from tunable.data import MissingDependencyError
    rgb = np.random.default_rng(5).integers(0, 256, (6, 7, 3), dtype=np.uint8)
    _png(tmp_path / "c.png", rgb)
    _png(tmp_path / "g.png", rgb[..., 0])
    monkeypatch.setitem(sys.modules, "PIL.Image", None)          # Pillow not installed
    assert np.array_equal(decode_image(tmp_path / "c.png"), rgb)   # OpenCV's BGR turned back into RGB
    assert np.array_equal(decode_image(tmp_path / "g.png")[..., 0], rgb[..., 0])
    with pytest.raises(DatasetError, match=r"x\.png: cannot decode image \(OpenCV\)"):
        (tmp_path / "x.png").write_bytes(b"junk")
        decode_image(tmp_path / "x.png")
    monkeypatch.setitem(sys.modules, "cv2", None)
    with pytest.raises(MissingDependencyError, match="needs Pillow or OpenCV: `pip install pillow`"):
        decode_image(tmp_path / "c.png")
