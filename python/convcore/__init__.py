"""convcore: a native convolution core for NumPy-style CNN code.

    import convcore.functional as F
    y = F.conv2d(x, w, b, stride=1, padding=1)

See README.md for the tour and ARCHITECTURE.md for how a call reaches a kernel.
"""
import numpy as np

from . import _cpu, _gpu
from . import functional
from ._frozen import FrozenWeights  # weights that never change: prepared forms kept across calls
from ._args import as_int
from . import data, init, layers, models, optim  # book-style layers, networks, training
from ._summary import summary  # per-layer shapes, parameters, multiply-adds, memory, receptive field

__version__ = "0.1.0"


def set_num_threads(n):
    """Threads used by every native kernel (n <= 0 restores the default)."""
    n = as_int(n, "set_num_threads", "n", "an int")
    if n >= 2**31:
        raise ValueError(f"set_num_threads: n must be below 2^31, got {n}")
    _cpu.set_num_threads(n)


def get_num_threads():
    return _cpu.get_num_threads()


def set_max_workspace(nbytes):
    """Cap one call's temporary buffers (bytes; None or < 0: no cap). Overrides the
    CONVCORE_MAX_WORKSPACE environment variable. Over the cap, algo="auto" falls back to an
    algorithm without workspace and an explicit algorithm raises MemoryError."""
    op, kind = "set_max_workspace", "an int (bytes) or None"
    _cpu._set_max_workspace(-1 if nbytes is None else as_int(nbytes, op, "nbytes", kind))


def get_max_workspace():
    return _cpu._get_max_workspace()


def set_allow_tf32(on):
    """On the GPU, run float32 convolutions' GEMMs (every conv but depthwise) on TF32 tensor
    cores: operands rounded to 10 mantissa bits (round to nearest), float32 accumulation. Each
    product's relative error is then up to 2^-10 + 2^-22 (about 1e-3) instead of 2^-23, so a
    result's error is bounded by about 1e-3 times the sum of |w| * |x| over its window (plus the
    float32 summation error). Off by default, as in PyTorch's torch.backends.cuda.matmul; float64
    and every CPU kernel are unaffected."""
    if not isinstance(on, (bool, np.bool_)):
        raise TypeError(f"set_allow_tf32: on must be a bool, got {type(on).__name__}")
    _gpu.set_allow_tf32(bool(on))


def get_allow_tf32():
    """Whether float32 GPU convolutions use TF32 tensor cores (set_allow_tf32)."""
    return _gpu.get_allow_tf32()


def backends():
    """What was built and what is in use: CPU ISA and features, threads, CUDA availability."""
    info = {"cpu": dict(_cpu.cpu_info()), "num_threads": _cpu.get_num_threads()}
    try:
        from . import _cuda  # noqa: F401  (built only when a CUDA compiler was found)
        info["cuda"] = _cuda.device_info()
    except ImportError:
        info["cuda"] = {"built": False, "available": False, "devices": []}
    return info


__all__ = ["functional", "FrozenWeights", "layers", "models", "optim", "init", "data", "set_num_threads",
           "get_num_threads", "set_max_workspace", "get_max_workspace", "set_allow_tf32",
           "get_allow_tf32", "backends", "summary", "__version__"]
