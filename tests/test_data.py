"""IDX reading (valid, gzipped, corrupt), load_mnist's formats and search order, load_digits."""
import gzip
import os
import struct

import numpy as np
import pytest

from convcore import data
from convcore.data import IDXError, load_mnist, read_idx


def idx_bytes(arr, type_code=0x08):
    header = struct.pack(">BBBB", 0, 0, type_code, arr.ndim)
    header += struct.pack(">" + "I" * arr.ndim, *arr.shape)
    dtype = {0x08: ">u1", 0x0B: ">i2", 0x0D: ">f4"}[type_code]
    return header + arr.astype(dtype).tobytes()


def write_fake_mnist(directory, n_train=12, n_test=5, gz=True, seed=0):
    rng = np.random.default_rng(seed)
    os.makedirs(directory, exist_ok=True)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte": rng.integers(0, 10, n_train, dtype=np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": rng.integers(0, 10, n_test, dtype=np.uint8),
    }
    for name, arr in arrays.items():
        raw = idx_bytes(arr)
        if gz:
            with gzip.open(os.path.join(directory, name + ".gz"), "wb") as f:
                f.write(raw)
        else:
            with open(os.path.join(directory, name), "wb") as f:
                f.write(raw)
    return arrays


def test_read_idx_plain_gzip_and_types(tmp_path):
    arr = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    (tmp_path / "a").write_bytes(idx_bytes(arr))
    (tmp_path / "a.gz").write_bytes(gzip.compress(idx_bytes(arr)))
    for name in ("a", "a.gz"):
        got = read_idx(tmp_path / name)
        assert got.dtype == np.uint8
        np.testing.assert_array_equal(got, arr)
    shorts = np.array([-3, 1000, 7], dtype=np.int16)
    (tmp_path / "s").write_bytes(idx_bytes(shorts, 0x0B))
    np.testing.assert_array_equal(read_idx(tmp_path / "s"), shorts)
    floats = np.array([[1.5, -2.25]], dtype=np.float32)
    (tmp_path / "f").write_bytes(idx_bytes(floats, 0x0D))
    got = read_idx(tmp_path / "f")
    assert got.dtype == np.float32 and got.dtype.isnative
    np.testing.assert_array_equal(got, floats)


@pytest.mark.parametrize("blob,match", [
    (b"\x00\x00", "too short"),
    (b"\x01\x02\x08\x01\x00\x00\x00\x01\x05", "not an IDX file"),
    (b"\x00\x00\x42\x01\x00\x00\x00\x01\x05", "unknown IDX type"),
    (b"\x00\x00\x08\x00", "0 dimensions"),
    (b"\x00\x00\x08\x03\x00\x00\x00\x02", "truncated header"),
    (b"\x00\x00\x08\x01\x00\x00\x00\x05\x01\x02", "declares shape"),
    (b"\x00\x00\x08\x01\x00\x00\x00\x01\x01\x02", "declares shape"),
    (b"\x1f\x8b\x08\x00garbage", "gzip"),
])
def test_read_idx_rejects_corrupt_files(tmp_path, blob, match):
    path = tmp_path / "bad"
    path.write_bytes(blob)
    with pytest.raises(IDXError, match=match) as info:
        read_idx(path)
    assert str(path) in str(info.value)


def test_truncated_gzip_is_reported(tmp_path):
    full = gzip.compress(idx_bytes(np.zeros((10, 28, 28), np.uint8)))
    (tmp_path / "cut.gz").write_bytes(full[: len(full) // 2])
    with pytest.raises(IDXError, match="gzip"):
        read_idx(tmp_path / "cut.gz")


@pytest.mark.parametrize("gz", [True, False])
def test_load_mnist_formats(tmp_path, gz):
    arrays = write_fake_mnist(tmp_path, gz=gz)
    (x, t), (xt, tt) = load_mnist(path=tmp_path)
    assert x.shape == (12, 784) and x.dtype == np.float32 and xt.shape == (5, 784)
    np.testing.assert_allclose(x, arrays["train-images-idx3-ubyte"].reshape(12, -1) / 255.0)
    np.testing.assert_array_equal(t, arrays["train-labels-idx1-ubyte"])
    np.testing.assert_array_equal(tt, arrays["t10k-labels-idx1-ubyte"])

    (x, t), _ = load_mnist(normalize=False, flatten=False, one_hot_label=True, path=tmp_path)
    assert x.shape == (12, 1, 28, 28) and x.dtype == np.uint8
    assert t.shape == (12, 10)
    np.testing.assert_array_equal(t.argmax(axis=1), arrays["train-labels-idx1-ubyte"])
    np.testing.assert_array_equal(t.sum(axis=1), 1)


def test_load_mnist_from_env_var_and_kind_subdir(tmp_path, monkeypatch):
    write_fake_mnist(tmp_path / "mnist", seed=1)
    monkeypatch.setenv("CONVCORE_DATA", str(tmp_path))
    (x, _), _ = load_mnist(kind="mnist")
    assert x.shape == (12, 784)


def test_load_mnist_explicit_path_missing_says_how_to_get_data(tmp_path):
    with pytest.raises(FileNotFoundError) as info:
        load_mnist(path=tmp_path / "nowhere")
    message = str(info.value)
    assert "apt-get install dataset-fashion-mnist" in message
    assert str(tmp_path / "nowhere") in message
    with pytest.raises(FileNotFoundError, match="kind='mnist'"):
        load_mnist(path=tmp_path, kind="mnist")
    with pytest.raises(ValueError, match="kind"):
        load_mnist(path=tmp_path, kind="cifar")


def test_label_and_image_counts_must_agree(tmp_path):
    write_fake_mnist(tmp_path, gz=False)
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(idx_bytes(np.zeros(4, np.uint8)))
    with pytest.raises(IDXError, match="5 images but"):
        load_mnist(path=tmp_path)


def test_debian_fashion_mnist_if_installed():
    if not os.path.isdir(data.DEBIAN_FASHION_MNIST_DIR):
        pytest.skip("dataset-fashion-mnist not installed (apt-get install dataset-fashion-mnist)")
    (x, t), (xt, tt) = load_mnist(flatten=False, path=data.DEBIAN_FASHION_MNIST_DIR)
    assert x.shape == (60000, 1, 28, 28) and xt.shape == (10000, 1, 28, 28)
    assert t.shape == (60000,) and set(np.unique(tt)) == set(range(10))
    assert 0.0 <= x.min() and x.max() <= 1.0


def test_load_digits():
    pytest.importorskip("sklearn", reason="scikit-learn not installed")
    (x, t), (xt, tt) = data.load_digits(flatten=False)
    assert x.shape[1:] == (1, 8, 8) and x.shape[0] + xt.shape[0] == 1797
    assert xt.shape[0] == round(1797 * 0.2)
    assert x.dtype == np.float32 and 0 <= x.min() and x.max() <= 1
    (x2, t2), _ = data.load_digits(one_hot_label=True)
    assert x2.shape[1] == 64 and t2.shape[1] == 10
    np.testing.assert_array_equal(t2.argmax(axis=1), t)
