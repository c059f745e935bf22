"""convcore's functional API: PyTorch-style names and conventions, NumPy arrays in and out.

Arrays are NCHW (N, C, L for 1-D), float32 or float64; the output has the input's dtype.
Every op has a backward that returns the gradients asked for in `need` (None for the others).
Shapes are validated once in the native layer (csrc/common) and errors name the argument.
"""
from . import _cpu
from ._gpu import native
from ._args import (as_array, as_int, check_ndim, need_flags, padding1d, padding4, pair, shape4,
                    single)
from ._frozen import FrozenWeights, unfreeze
from ._separable import *  # noqa: F401,F403  (depthwise, separable, sepconv2d_1d, rank1_factor)
from ._separable import __all__ as _separable_all

__all__ = [
    "conv2d", "conv2d_backward", "conv1d", "conv1d_backward",
    "conv_transpose2d", "conv_transpose2d_backward",
    "im2col", "col2im", "select_algo", "FrozenWeights",
] + _separable_all

from ._pooling import *  # noqa: E402,F401,F403  (the pooling family, re-exported)
from ._pooling import __all__ as _pooling_all  # noqa: E402
__all__ += _pooling_all

from ._dense import *  # noqa: E402,F401,F403  (relu, relu_backward, matmul for the layers)
from ._dense import __all__ as _dense_all  # noqa: E402
__all__ += _dense_all

from ._local import *  # noqa: E402,F401,F403  (locally connected and tiled convolution)
from ._local import __all__ as _local_all  # noqa: E402
__all__ += _local_all


def _conv_args(x, w, stride, padding, dilation, groups, op):
    x = as_array(x, op, "x")
    w = as_array(w, op, "w")
    check_ndim(x, 4, op, "x", "(N, C, H, W)")
    check_ndim(w, 4, op, "w", "(K, C/groups, kh, kw)")
    stride = pair(stride, op, "stride")
    dilation = pair(dilation, op, "dilation")
    pad = padding4(padding, w.shape[2:], stride, dilation, op)
    return x, w, stride, pad, dilation, as_int(groups, op, "groups", "an int")


def _check_algo(algo, op):
    if not isinstance(algo, str):
        raise TypeError(f"{op}: algo must be a string, got {algo!r}")
    return algo


def conv2d(x, w, bias=None, stride=1, padding=0, dilation=1, groups=1, *, algo="auto"):
    """2-D convolution (cross-correlation, as in PyTorch).

    x: (N, C, H, W); w: (K, C/groups, kh, kw), or a FrozenWeights snapshot of such an array
    (its prepared forms are kept across calls: convcore/_frozen.py); bias: (K,) or None.
    padding: int, (ph, pw), (top, bottom, left, right), "same" or "valid".
    algo: "auto", "direct", "im2col", "depthwise" (groups == C), "winograd_2x2" / "winograd_4x4"
    (stride 1, dilation 1, groups 1; a 3x3 kernel, or in float32 with winograd_2x2 any kernel as
    3x3 sub-kernels; the input gradient runs as a Winograd forward over dY, the float32 3x3
    weight gradient as F(3x3,2x2) from 128 channels, else im2col), "winograd" (2x2 in float32,
    4x4 in float64) or "reference". "auto" picks by shape (select_algo shows the pick), float32
    F(4x4,3x3) only for 3x3 kernels over at most 256 input channels (error under 1e-5).
    Returns y: (N, K, out_h, out_w).
    """
    return _conv2d(x, w, bias, stride, padding, dilation, groups, algo, "conv2d")


def _conv2d(x, w, bias, stride, padding, dilation, groups, algo, op):
    """conv2d, with errors naming `op` (conv1d runs through here over (N, C, 1, L))."""
    w, prepared = _unfrozen(w)
    x, w, stride, pad, dilation, groups = _conv_args(x, w, stride, padding, dilation, groups, op)
    b = None if bias is None else as_array(bias, op, "bias")
    return native(x).conv2d_forward(x, w, b, stride, pad, dilation, groups, _check_algo(algo, op), op,
                                    **prepared)


def conv2d_backward(dy, x, w, stride=1, padding=0, dilation=1, groups=1, *,
                    need=("x", "w", "b"), algo="auto"):
    """Gradients of conv2d: returns (dx, dw, db), None for what `need` leaves out."""
    return _conv2d_backward(dy, x, w, stride, padding, dilation, groups, need, algo,
                            "conv2d_backward")


def _conv2d_backward(dy, x, w, stride, padding, dilation, groups, need, algo, op):
    w, prepared = _unfrozen(w)
    x, w, stride, pad, dilation, groups = _conv_args(x, w, stride, padding, dilation, groups, op)
    dy = as_array(dy, op, "dy")
    nx, nw, nb = need_flags(need, ("x", "w", "b"), op)
    return native(x).conv2d_backward(dy, x, w, stride, pad, dilation, groups, nx, nw, nb,
                                     _check_algo(algo, op), op, **prepared)


def _unfrozen(w):
    """(the weight array, the keywords handing a FrozenWeights' prepared forms to the CPU
    binding: none for plain arrays)."""
    w, handle = unfreeze(w)
    return w, ({} if handle is None else {"prepared": handle})


def select_algo(x_shape, w_shape, stride=1, padding=0, dilation=1, groups=1):
    """The algorithm conv2d(algo="auto") runs for these shapes ("direct", "im2col", ...)."""
    op = "select_algo"
    x_shape, w_shape = shape4(x_shape, op, "x_shape"), shape4(w_shape, op, "w_shape")
    stride = pair(stride, op, "stride")
    dilation = pair(dilation, op, "dilation")
    pad = padding4(padding, w_shape[2:], stride, dilation, op)
    return _cpu._select_algo(x_shape, w_shape, stride, pad, dilation, as_int(groups, op, "groups", "an int"))


# ---- conv1d: a conv2d over (N, C, 1, L) ------------------------------------------------------

def _conv1d_args(x, w, stride, padding, dilation, op):
    x = as_array(x, op, "x")
    w = as_array(w, op, "w")
    check_ndim(x, 3, op, "x", "(N, C, L)")
    check_ndim(w, 3, op, "w", "(K, C/groups, k)")
    stride = single(stride, op, "stride")
    dilation = single(dilation, op, "dilation")
    left, right = padding1d(padding, w.shape[2], stride, dilation, op)
    return x[:, :, None, :], w[:, :, None, :], (1, stride), (0, 0, left, right), (1, dilation)


def conv1d(x, w, bias=None, stride=1, padding=0, dilation=1, groups=1, *, algo="auto"):
    """1-D convolution. x: (N, C, L); w: (K, C/groups, k); padding: int, (left, right), "same", "valid"."""
    op = "conv1d"
    x4, w4, s, p, d = _conv1d_args(x, w, stride, padding, dilation, op)
    # shapes in the native messages are the 4-D views (N, C, 1, L)
    y = _conv2d(x4, w4, bias, s, p, d, groups, algo, op)
    return y[:, :, 0, :]


def conv1d_backward(dy, x, w, stride=1, padding=0, dilation=1, groups=1, *,
                    need=("x", "w", "b"), algo="auto"):
    """Gradients of conv1d: (dx, dw, db)."""
    op = "conv1d_backward"
    x4, w4, s, p, d = _conv1d_args(x, w, stride, padding, dilation, op)
    dy = as_array(dy, op, "dy")
    check_ndim(dy, 3, op, "dy", "(N, K, L_out)")
    dx, dw, db = _conv2d_backward(dy[:, :, None, :], x4, w4, s, p, d, groups, need, algo, op)
    return (None if dx is None else dx[:, :, 0, :],
            None if dw is None else dw[:, :, 0, :],
            db)


# ---- transposed convolution ------------------------------------------------------------------

def _transpose_args(x, w, stride, padding, output_padding, dilation, groups, op):
    x = as_array(x, op, "x")
    w = as_array(w, op, "w")
    check_ndim(x, 4, op, "x", "(N, C_in, H, W)")
    check_ndim(w, 4, op, "w", "(C_in, C_out/groups, kh, kw)")
    stride = pair(stride, op, "stride")
    dilation = pair(dilation, op, "dilation")
    if isinstance(padding, str):
        raise ValueError(f"{op}: padding must be an int or a tuple, got {padding!r}")
    pad = padding4(padding, w.shape[2:], stride, dilation, op)
    out_pad = pair(output_padding, op, "output_padding")
    return x, w, stride, pad, out_pad, dilation, as_int(groups, op, "groups", "an int")


def conv_transpose2d(x, w, bias=None, stride=1, padding=0, output_padding=0, dilation=1, groups=1,
                     *, algo="auto"):
    """Transposed convolution ("deconvolution"), the gradient of conv2d with respect to its input.

    x: (N, C_in, H, W); w: (C_in, C_out/groups, kh, kw); bias: (C_out,).
    out extent = (H-1)*stride - pad_before - pad_after + dilation*(kh-1) + output_padding + 1.
    """
    op = "conv_transpose2d"
    args = _transpose_args(x, w, stride, padding, output_padding, dilation, groups, op)
    b = None if bias is None else as_array(bias, op, "bias")
    x, w, stride, pad, out_pad, dilation, groups = args
    return native(x).conv_transpose2d_forward(x, w, b, stride, pad, out_pad, dilation, groups,
                                         _check_algo(algo, op))


def conv_transpose2d_backward(dy, x, w, stride=1, padding=0, output_padding=0, dilation=1,
                              groups=1, *, need=("x", "w", "b"), algo="auto"):
    """Gradients of conv_transpose2d: (dx, dw, db)."""
    op = "conv_transpose2d_backward"
    x, w, stride, pad, out_pad, dilation, groups = _transpose_args(
        x, w, stride, padding, output_padding, dilation, groups, op)
    dy = as_array(dy, op, "dy")
    nx, nw, nb = need_flags(need, ("x", "w", "b"), op)
    return native(x).conv_transpose2d_backward(dy, x, w, stride, pad, out_pad, dilation, groups,
                                          nx, nw, nb, _check_algo(algo, op))


# ---- im2col / col2im in the layout of "Deep Learning from Scratch" ---------------------------

def im2col(x, kh, kw, stride=1, padding=0, dilation=1):
    """(N, C, H, W) -> (N*out_h*out_w, C*kh*kw): rows in (n, y, x) order, columns in (c, ky, kx)
    order, zero padding, exactly as the book's common/util.py im2col."""
    op = "im2col"
    x = as_array(x, op, "x")
    check_ndim(x, 4, op, "x", "(N, C, H, W)")
    kh, kw = single(kh, op, "kh"), single(kw, op, "kw")
    stride = pair(stride, op, "stride")
    dilation = pair(dilation, op, "dilation")
    pad = padding4(padding, (kh, kw), stride, dilation, op)
    return native(x).im2col(x, kh, kw, stride, pad, dilation)


def col2im(col, input_shape, kh, kw, stride=1, padding=0, dilation=1):
    """The adjoint of im2col: sums every column entry back onto its input position."""
    op = "col2im"
    col = as_array(col, op, "col")
    check_ndim(col, 2, op, "col", "(N*out_h*out_w, C*kh*kw)")
    shape = shape4(input_shape, op, "input_shape")
    kh, kw = single(kh, op, "kh"), single(kw, op, "kw")
    stride = pair(stride, op, "stride")
    dilation = pair(dilation, op, "dilation")
    pad = padding4(padding, (kh, kw), stride, dilation, op)
    return native(col).col2im(col, shape, kh, kw, stride, pad, dilation)
