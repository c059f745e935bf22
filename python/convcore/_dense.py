"""Dense helpers for the book-style layers: ReLU and matrix products on convcore's own kernels.

Why native: a training step alternates convolutions (convcore's OpenMP pool) with ReLU and Affine
layers. As NumPy passes those run single-threaded, and NumPy's matmul runs in OpenBLAS's own thread
pool; on a 2-core machine the two pools' spinning threads steal each other's cores after every
switch. Keeping every step in one pool (design guide: "threads come from one pool") avoids that.
"""
import numpy as np

from . import _cpu
from ._args import FLOAT_DTYPES, as_array

__all__ = ["relu", "relu_backward", "matmul"]


def relu(x, out=None):
    """max(x, 0), keeping NaN (the book's `out[x <= 0] = 0`). out: an array to write the
    result into (same shape and dtype, C-contiguous; x itself for an in-place ReLU)."""
    x = as_array(x, "relu", "x")
    return _cpu.relu_forward(x, out=_out(out, "relu"))


def relu_backward(dy, y, out=None):
    """Gradient of relu from its OUTPUT y: dy where y > 0 (or NaN), else 0. out: as in relu
    (dy itself for an in-place gradient)."""
    y = as_array(y, "relu_backward", "y")
    dy = as_array(dy, "relu_backward", "dy")
    if dy.dtype != y.dtype:
        raise TypeError(f"relu_backward: dy has dtype {dy.dtype} but y has {y.dtype}")
    return _cpu.relu_backward(dy, y, out=_out(out, "relu_backward"))


def _out(out, op):
    """`out` as given (the binding checks its dtype, shape, layout), or None; never a copy,
    which would leave the caller's array unwritten."""
    if out is not None and not isinstance(out, np.ndarray):
        raise TypeError(f"{op}: out must be a NumPy array, got {type(out).__name__}")
    return out


def _operand(m, op, name):
    """(array, transposed) for a 2-D operand: a transposed view of a C-contiguous array is passed
    as the original with the transpose flag, so `matmul(x.T, dy)` copies nothing."""
    if not isinstance(m, np.ndarray):
        m = np.asarray(m)
    if m.ndim != 2:
        raise ValueError(f"{op}: {name} must be 2-D, got shape {tuple(m.shape)}")
    if m.dtype not in FLOAT_DTYPES:
        raise TypeError(f"{op}: {name} must be float32 or float64, got dtype {m.dtype}")
    if not m.flags.c_contiguous and m.T.flags.c_contiguous and m.T.flags.aligned:
        return m.T, True
    return as_array(m, op, name), False


def matmul(a, b):
    """a @ b for 2-D float32/float64 arrays of one dtype, on convcore's GEMM and thread pool."""
    op = "matmul"
    a_arr, trans_a = _operand(a, op, "a")
    b_arr, trans_b = _operand(b, op, "b")
    if a_arr.dtype != b_arr.dtype:
        raise TypeError(f"{op}: a has dtype {a_arr.dtype} but b has {b_arr.dtype}")
    if np.shape(a)[1] != np.shape(b)[0]:
        raise ValueError(f"{op}: a is {np.shape(a)} and b is {np.shape(b)}; "
                         "a.shape[1] must equal b.shape[0]")
    return _cpu._gemm(a_arr, b_arr, trans_a=trans_a, trans_b=trans_b)
