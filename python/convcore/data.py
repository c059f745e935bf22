"""Data sets in the book's format: ((x_train, t_train), (x_test, t_test)).

    from convcore.data import load_mnist
    (x_train, t_train), (x_test, t_test) = load_mnist(flatten=False)   # Fashion-MNIST

Where the files are looked for, in order:
  1. `path=` given to load_mnist (a directory holding the four IDX files),
  2. the environment variable CONVCORE_DATA (the same, or a parent holding fashion-mnist/, mnist/),
  3. the system location: Debian/Ubuntu's package `dataset-fashion-mnist` installs Fashion-MNIST
     to /usr/share/datasets/fashion-mnist (apt-get install dataset-fashion-mnist),
     and ~/.cache/convcore/<kind>.
Nothing is downloaded: the error for missing files says where to get them.
"""
import gzip
import os

import numpy as np

__all__ = ["read_idx", "IDXError", "load_mnist", "load_digits", "find_mnist_dir",
           "DEBIAN_FASHION_MNIST_DIR"]

DEBIAN_FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"

_IDX_DTYPES = {
    0x08: np.dtype(np.uint8), 0x09: np.dtype(np.int8), 0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8"),
}

_FILES = {
    "train_images": "train-images-idx3-ubyte", "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte", "test_labels": "t10k-labels-idx1-ubyte",
}

_KIND_DIRS = {"fashion": ("fashion-mnist", "fashion_mnist", "fashion"), "mnist": ("mnist",)}

_HOW_TO_GET = {
    "fashion": (
        "Fashion-MNIST: on Debian/Ubuntu run `sudo apt-get install dataset-fashion-mnist` "
        f"(it installs {DEBIAN_FASHION_MNIST_DIR}); elsewhere download the four files "
        "train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz, "
        "t10k-labels-idx1-ubyte.gz from https://github.com/zalandoresearch/fashion-mnist "
        "(folder data/fashion) into a directory and pass load_mnist(path=DIR) or set "
        "CONVCORE_DATA=DIR."),
    "mnist": (
        "MNIST: download train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, "
        "t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz (e.g. from "
        "https://ossci-datasets.s3.amazonaws.com/mnist/ or "
        "https://storage.googleapis.com/cvdf-datasets/mnist/) into a directory and pass "
        "load_mnist(path=DIR, kind='mnist') or set CONVCORE_DATA=DIR."),
}


class IDXError(ValueError):
    """A file that is not a well-formed IDX file (the MNIST format)."""


def read_idx(path):
    """Read an IDX file (optionally gzipped) into an array of its declared shape and dtype.

    Header: two zero bytes, a type code (0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32,
    0x0D float32, 0x0E float64), the number of dimensions, then each size as a big-endian
    uint32. The data must fill exactly the declared size.
    """
    path = os.fspath(path)
    with open(path, "rb") as f:
        raw = f.read()
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, gzip.BadGzipFile) as exc:
            raise IDXError(f"{path}: corrupt or truncated gzip data ({exc})") from None
    if len(raw) < 4:
        raise IDXError(f"{path}: {len(raw)} bytes, too short for an IDX header")
    if raw[0] != 0 or raw[1] != 0:
        raise IDXError(f"{path}: not an IDX file (magic starts {raw[:4].hex()}, "
                       "expected 0000<type><ndim>)")
    type_code, ndim = raw[2], raw[3]
    if type_code not in _IDX_DTYPES:
        raise IDXError(f"{path}: unknown IDX type code 0x{type_code:02x}")
    if ndim == 0:
        raise IDXError(f"{path}: IDX header declares 0 dimensions")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise IDXError(f"{path}: truncated header ({len(raw)} bytes, need {header})")
    shape = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    dtype = _IDX_DTYPES[type_code]
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(raw) - header != expected:
        raise IDXError(f"{path}: header declares shape {shape} of {dtype.name} "
                       f"({expected} bytes of data) but the file holds {len(raw) - header}")
    data = np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape)
    return data.astype(dtype.newbyteorder("="))  # native byte order, and a writable copy


def _find_file(directory, stem):
    """stem, stem.gz, or the MNIST site's variant with a dot (train-images.idx3-ubyte)."""
    dotted = stem.replace("-idx", ".idx")
    for name in (stem + ".gz", stem, dotted + ".gz", dotted):
        candidate = os.path.join(directory, name)
        if os.path.isfile(candidate):
            return candidate
    return None


def _has_all(directory):
    return all(_find_file(directory, stem) for stem in _FILES.values())


def _candidates(path, kind):
    def with_subdirs(base):
        yield base
        for sub in _KIND_DIRS[kind]:
            yield os.path.join(base, sub)

    if path is not None:
        yield from with_subdirs(os.path.expanduser(os.fspath(path)))
        return  # an explicit path is the only place looked at: no silent fallback
    env = os.environ.get("CONVCORE_DATA")
    if env:
        yield from with_subdirs(os.path.expanduser(env))
    if kind == "fashion":
        yield DEBIAN_FASHION_MNIST_DIR
    yield from with_subdirs(os.path.expanduser(os.path.join("~", ".cache", "convcore")))


def find_mnist_dir(path=None, kind="fashion"):
    """The directory holding the four IDX files of `kind`, or FileNotFoundError saying how to
    get them."""
    if kind not in _KIND_DIRS:
        raise ValueError(f"kind must be 'fashion' or 'mnist', got {kind!r}")
    looked = []
    for directory in _candidates(path, kind):
        looked.append(directory)
        if _has_all(directory):
            return directory
    raise FileNotFoundError(
        f"{'Fashion-MNIST' if kind == 'fashion' else 'MNIST'} files not found; looked in "
        f"{', '.join(looked)}. {_HOW_TO_GET[kind]}")


def _one_hot(labels, classes=10):
    out = np.zeros((labels.size, classes), dtype=np.float32)
    out[np.arange(labels.size), labels] = 1
    return out


def _load_split(directory, images_key, labels_key):
    images_path = _find_file(directory, _FILES[images_key])
    labels_path = _find_file(directory, _FILES[labels_key])
    images, labels = read_idx(images_path), read_idx(labels_path)
    if images.ndim != 3 or images.dtype != np.uint8:
        raise IDXError(f"{images_path}: expected uint8 images (N, rows, cols), "
                       f"got {images.dtype} {images.shape}")
    if labels.ndim != 1 or labels.dtype != np.uint8:
        raise IDXError(f"{labels_path}: expected uint8 labels (N,), "
                       f"got {labels.dtype} {labels.shape}")
    if images.shape[0] != labels.shape[0]:
        raise IDXError(f"{images_path} has {images.shape[0]} images but {labels_path} has "
                       f"{labels.shape[0]} labels")
    if labels.size and labels.max() > 9:
        raise IDXError(f"{labels_path}: label {labels.max()} outside 0..9")
    return images, labels


def _format(images, labels, normalize, flatten, one_hot_label):
    x = images.astype(np.float32) / 255.0 if normalize else images
    x = x.reshape(x.shape[0], -1) if flatten else x.reshape(x.shape[0], 1, *x.shape[1:])
    t = _one_hot(labels) if one_hot_label else labels
    return x, t


def load_mnist(normalize=True, flatten=True, one_hot_label=False, path=None, kind="fashion"):
    """((x_train, t_train), (x_test, t_test)) as in the book.

    normalize: float32 pixels in [0, 1] (else the raw uint8). flatten: (N, 784) (else
    (N, 1, 28, 28)). one_hot_label: (N, 10) float32 targets (else uint8 labels).
    kind: "fashion" (Fashion-MNIST, the default) or "mnist" (the digits); both share the
    format and the file names. See the module docstring for where files are looked for.
    """
    directory = find_mnist_dir(path, kind)
    train = _load_split(directory, "train_images", "train_labels")
    test = _load_split(directory, "test_images", "test_labels")
    return (_format(*train, normalize, flatten, one_hot_label),
            _format(*test, normalize, flatten, one_hot_label))


def load_digits(normalize=True, flatten=True, one_hot_label=False, test_ratio=0.2, seed=0):
    """scikit-learn's 8x8 handwritten digits (1797 images, pixel values 0..16), split into
    train and test sets by a seeded shuffle, in load_mnist's format ((N, 64) or (N, 1, 8, 8)).
    Needs scikit-learn (pip install scikit-learn); its data ships inside the package."""
    try:
        from sklearn.datasets import load_digits as sk_load_digits
    except ImportError:
        raise ImportError("load_digits needs scikit-learn: pip install scikit-learn") from None
    bunch = sk_load_digits()
    images = bunch.images.astype(np.float32)
    labels = bunch.target.astype(np.uint8)
    order = np.random.default_rng(seed).permutation(labels.size)
    n_test = int(round(labels.size * test_ratio))
    test_idx, train_idx = order[:n_test], order[n_test:]

    def fmt(idx):
        x = images[idx] / 16.0 if normalize else images[idx]
        x = x.reshape(idx.size, -1) if flatten else x.reshape(idx.size, 1, 8, 8)
        t = _one_hot(labels[idx]) if one_hot_label else labels[idx]
        return x.astype(np.float32), t

    return fmt(train_idx), fmt(test_idx)
