"""Locally connected (unshared) and tiled convolution (Goodfellow, Bengio and Courville,
"Deep Learning", section 9.5), run by the native kernels of csrc/cpu/locally_connected.cpp, or,
for GPU arrays, of csrc/cuda/locally_connected.cu.

- locally_connected2d: every output position (oy, ox) has its own kernel,
  w (out_h, out_w, K, C, kh, kw), bias (out_h, out_w, K).
- tiled_conv2d: t_h x t_w kernels cycled over the output: position (oy, ox) uses
  w[oy % t_h, ox % t_w], w (t_h, t_w, K, C, kh, kw), bias (t_h, t_w, K). With t = 1 it is conv2d;
  with t = (out_h, out_w) it is locally_connected2d.

The bias has one entry per kernel (it follows the weights' sharing), so db has the bias's shape.
Window geometry (stride, padding, dilation) follows conv2d.
"""
from ._gpu import native
from ._args import as_array, check_ndim, need_flags, padding4, pair

__all__ = [
    "locally_connected2d", "locally_connected2d_backward",
    "tiled_conv2d", "tiled_conv2d_backward",
]

_LAYOUT = {True: "(out_h, out_w, K, C, kh, kw)", False: "(t_h, t_w, K, C, kh, kw)"}


def _local_args(x, w, stride, padding, dilation, algo, unshared, op):
    x = as_array(x, op, "x")
    w = as_array(w, op, "w")
    check_ndim(x, 4, op, "x", "(N, C, H, W)")
    check_ndim(w, 6, op, "w", _LAYOUT[unshared])
    stride = pair(stride, op, "stride")
    dilation = pair(dilation, op, "dilation")
    pad = padding4(padding, w.shape[4:], stride, dilation, op)
    if not isinstance(algo, str):
        raise TypeError(f"{op}: algo must be a string, got {algo!r}")
    return x, w, stride, pad, dilation


def _forward(x, w, bias, stride, padding, dilation, algo, unshared, op):
    x, w, stride, pad, dilation = _local_args(x, w, stride, padding, dilation, algo, unshared, op)
    b = None if bias is None else as_array(bias, op, "bias")
    return native(x).local_forward(x, w, b, stride, pad, dilation, unshared, algo)


def _backward(dy, x, w, stride, padding, dilation, need, algo, unshared, op):
    x, w, stride, pad, dilation = _local_args(x, w, stride, padding, dilation, algo, unshared, op)
    dy = as_array(dy, op, "dy")
    nx, nw, nb = need_flags(need, ("x", "w", "b"), op)
    return native(x).local_backward(dy, x, w, stride, pad, dilation, unshared, nx, nw, nb, algo)


def locally_connected2d(x, w, bias=None, stride=1, padding=0, dilation=1, *, algo="auto"):
    """Unshared convolution: y[n, k, oy, ox] = bias[oy, ox, k] +
    sum_{c, ky, kx} w[oy, ox, k, c, ky, kx] * x[n, c, oy*sh - pad_top + ky*dh, ox*sw - pad_left + kx*dw].

    x: (N, C, H, W); w: (out_h, out_w, K, C, kh, kw); bias: (out_h, out_w, K) or None.
    algo: "auto" (the native GEMM kernel) or "reference". Returns (N, K, out_h, out_w).
    """
    return _forward(x, w, bias, stride, padding, dilation, algo, True, "locally_connected2d")


def locally_connected2d_backward(dy, x, w, stride=1, padding=0, dilation=1, *,
                                 need=("x", "w", "b"), algo="auto"):
    """Gradients of locally_connected2d: (dx, dw, db) with db shaped (out_h, out_w, K)."""
    return _backward(dy, x, w, stride, padding, dilation, need, algo, True,
                     "locally_connected2d_backward")


def tiled_conv2d(x, w, bias=None, stride=1, padding=0, dilation=1, *, algo="auto"):
    """Tiled convolution: output (oy, ox) uses kernel w[oy % t_h, ox % t_w] and bias[oy % t_h, ox % t_w].

    x: (N, C, H, W); w: (t_h, t_w, K, C, kh, kw); bias: (t_h, t_w, K) or None.
    """
    return _forward(x, w, bias, stride, padding, dilation, algo, False, "tiled_conv2d")


def tiled_conv2d_backward(dy, x, w, stride=1, padding=0, dilation=1, *,
                          need=("x", "w", "b"), algo="auto"):
    """Gradients of tiled_conv2d: (dx, dw, db) with db shaped (t_h, t_w, K)."""
    return _backward(dy, x, w, stride, padding, dilation, need, algo, False,
                     "tiled_conv2d_backward")
