"""Depthwise, depthwise-separable and separable 1-D convolutions, and rank-1 kernel factoring.

- depthwise_conv2d: conv2d with groups == C, run by the depthwise kernel.
- separable_conv2d: depthwise then pointwise 1x1 (MobileNet / Xception blocks).
- sepconv2d_1d: a depthwise kh x kw kernel given as a column factor and a row factor, run as two
  1-D passes by the native kernels of csrc/cpu/separable1d.cpp (kh + kw instead of kh * kw
  multiply-adds per output).
- rank1_factor: finds those factors when a 2-D kernel is (numerically) rank 1.
"""
import numpy as np

from ._gpu import native
from ._args import as_array, check_ndim, need_flags, padding4, pair

__all__ = [
    "depthwise_conv2d", "depthwise_conv2d_backward",
    "separable_conv2d", "separable_conv2d_backward",
    "sepconv2d_1d", "sepconv2d_1d_backward", "rank1_factor",
]


# ---- depthwise ------------------------------------------------------------------------------

def _depthwise_args(x, w, stride, padding, dilation, op):
    x = as_array(x, op, "x")
    w = as_array(w, op, "w")
    check_ndim(x, 4, op, "x", "(N, C, H, W)")
    check_ndim(w, 4, op, "w", "(C*multiplier, 1, kh, kw)")
    channels = x.shape[1]
    if w.shape[1] != 1 or channels == 0 or w.shape[0] % channels != 0:
        raise ValueError(
            f"{op}: w must have shape (C*multiplier, 1, kh, kw) with C={channels} "
            f"(from x.shape={tuple(x.shape)}), got w.shape={tuple(w.shape)}"
        )
    stride = pair(stride, op, "stride")
    dilation = pair(dilation, op, "dilation")
    pad = padding4(padding, w.shape[2:], stride, dilation, op)
    # With one channel the conv is an ordinary one (groups == 1), which the depthwise kernel
    # does not claim; any algorithm computes it.
    algo = "depthwise" if channels > 1 else "auto"
    return x, w, stride, pad, dilation, channels, algo


def depthwise_conv2d(x, w, bias=None, stride=1, padding=0, dilation=1):
    """Depthwise convolution: every input channel is convolved with its own `multiplier` filters.

    x: (N, C, H, W); w: (C*multiplier, 1, kh, kw); bias: (C*multiplier,) or None.
    Output channel k reads input channel k // multiplier (as conv2d with groups=C).
    """
    op = "depthwise_conv2d"
    x, w, stride, pad, dilation, channels, algo = _depthwise_args(x, w, stride, padding, dilation, op)
    b = None if bias is None else as_array(bias, op, "bias")
    return native(x).conv2d_forward(x, w, b, stride, pad, dilation, channels, algo)


def depthwise_conv2d_backward(dy, x, w, stride=1, padding=0, dilation=1, *, need=("x", "w", "b")):
    """Gradients of depthwise_conv2d: (dx, dw, db), None for what `need` leaves out."""
    op = "depthwise_conv2d_backward"
    x, w, stride, pad, dilation, channels, algo = _depthwise_args(x, w, stride, padding, dilation, op)
    dy = as_array(dy, op, "dy")
    nx, nw, nb = need_flags(need, ("x", "w", "b"), op)
    return native(x).conv2d_backward(dy, x, w, stride, pad, dilation, channels, nx, nw, nb, algo)


# ---- depthwise separable (depthwise, then pointwise 1x1) ------------------------------------

def _separable_args(x, w_depthwise, w_pointwise, op):
    w_pointwise = as_array(w_pointwise, op, "w_pointwise")
    check_ndim(w_pointwise, 4, op, "w_pointwise", "(K, C*multiplier, 1, 1)")
    w_depthwise = as_array(w_depthwise, op, "w_depthwise")
    check_ndim(w_depthwise, 4, op, "w_depthwise", "(C*multiplier, 1, kh, kw)")
    if w_pointwise.shape[2:] != (1, 1) or w_pointwise.shape[1] != w_depthwise.shape[0]:
        raise ValueError(
            f"{op}: w_pointwise must have shape (K, {w_depthwise.shape[0]}, 1, 1) to follow "
            f"w_depthwise.shape={tuple(w_depthwise.shape)}, got {tuple(w_pointwise.shape)}"
        )
    if w_pointwise.dtype != w_depthwise.dtype:
        raise TypeError(
            f"{op}: w_pointwise has dtype {w_pointwise.dtype} but w_depthwise has "
            f"{w_depthwise.dtype}; mixed dtypes are not supported"
        )
    return w_depthwise, w_pointwise


def _renamed(exc, op, step, weight):
    """Re-raises a native error of one step with the op and the step's weight name in front."""
    return type(exc)(f"{op} ({step} step, w is {weight}): {exc}")


def separable_conv2d(x, w_depthwise, w_pointwise, bias=None, stride=1, padding=0, dilation=1):
    """Depthwise separable convolution (MobileNet / Xception): a depthwise conv with
    w_depthwise (C*m, 1, kh, kw), stride, padding and dilation, then a 1x1 conv with
    w_pointwise (K, C*m, 1, 1); bias (K,) is added after the pointwise step."""
    op = "separable_conv2d"
    w_depthwise, w_pointwise = _separable_args(x, w_depthwise, w_pointwise, op)
    try:
        mid = depthwise_conv2d(x, w_depthwise, None, stride, padding, dilation)
    except (ValueError, TypeError) as exc:
        raise _renamed(exc, op, "depthwise", "w_depthwise") from None
    b = None if bias is None else as_array(bias, op, "bias")
    try:
        return native(mid).conv2d_forward(mid, w_pointwise, b, (1, 1), (0, 0, 0, 0), (1, 1), 1, "auto")
    except (ValueError, TypeError) as exc:
        raise _renamed(exc, op, "pointwise", "w_pointwise") from None


def separable_conv2d_backward(dy, x, w_depthwise, w_pointwise, stride=1, padding=0, dilation=1,
                              need=("x", "w_depthwise", "w_pointwise", "b")):
    """Gradients of separable_conv2d: (dx, dw_depthwise, dw_pointwise, db), None for what
    `need` leaves out. The depthwise output is recomputed (the pointwise step's input)."""
    op = "separable_conv2d_backward"
    nx, ndw, npw, nb = need_flags(need, ("x", "w_depthwise", "w_pointwise", "b"), op)
    w_depthwise, w_pointwise = _separable_args(x, w_depthwise, w_pointwise, op)
    x_arr = as_array(x, op, "x")
    check_ndim(x_arr, 4, op, "x", "(N, C, H, W)")
    dy = as_array(dy, op, "dy")
    try:
        mid = depthwise_conv2d(x_arr, w_depthwise, None, stride, padding, dilation)
    except (ValueError, TypeError) as exc:
        raise _renamed(exc, op, "depthwise", "w_depthwise") from None
    if dy.dtype != mid.dtype:
        raise TypeError(f"{op}: dy has dtype {dy.dtype} but x has {mid.dtype}; "
                        "mixed dtypes are not supported")
    if dy.ndim != 4 or dy.shape != (mid.shape[0], w_pointwise.shape[0]) + mid.shape[2:]:
        raise ValueError(f"{op}: dy has shape {tuple(dy.shape)} but the forward output has shape "
                         f"{(mid.shape[0], w_pointwise.shape[0]) + mid.shape[2:]}")
    need_mid_grad = nx or ndw
    try:
        dmid, dw_pw, db = native(mid).conv2d_backward(dy, mid, w_pointwise, (1, 1), (0, 0, 0, 0), (1, 1),
                                               1, need_mid_grad, npw, nb, "auto")
    except (ValueError, TypeError) as exc:
        raise _renamed(exc, op, "pointwise", "w_pointwise") from None
    dx = dw_dw = None
    if need_mid_grad:
        dx, dw_dw, _ = depthwise_conv2d_backward(dmid, x_arr, w_depthwise, stride, padding,
                                                 dilation, need=("x",) * nx + ("w",) * ndw)
    return dx, dw_dw, dw_pw, db


# ---- separable 1-D: column pass, then row pass ----------------------------------------------

def _sep1d_args(x, w_col, w_row, stride, padding, dilation, op):
    x = as_array(x, op, "x")
    w_col = as_array(w_col, op, "w_col")
    w_row = as_array(w_row, op, "w_row")
    check_ndim(x, 4, op, "x", "(N, C, H, W)")
    check_ndim(w_col, 2, op, "w_col", "(C, kh)")
    check_ndim(w_row, 2, op, "w_row", "(C, kw)")
    stride = pair(stride, op, "stride")
    dilation = pair(dilation, op, "dilation")
    pad = padding4(padding, (w_col.shape[1], w_row.shape[1]), stride, dilation, op)
    return x, w_col, w_row, stride, pad, dilation


def sepconv2d_1d(x, w_col, w_row, bias=None, stride=1, padding=0, dilation=1):
    """A depthwise kh x kw convolution whose kernel of channel c is outer(w_col[c], w_row[c]),
    run as a column pass (along H, vertical stride/padding/dilation) then a row pass (along W).

    x: (N, C, H, W); w_col: (C, kh); w_row: (C, kw); bias: (C,) or None.
    padding: int, (ph, pw), (top, bottom, left, right), "same" or "valid", as in conv2d.
    Equals conv2d(x, w, bias, ..., groups=C) with w[c, 0] = np.outer(w_col[c], w_row[c]).
    """
    op = "sepconv2d_1d"
    x, w_col, w_row, stride, pad, dilation = _sep1d_args(x, w_col, w_row, stride, padding,
                                                         dilation, op)
    b = None if bias is None else as_array(bias, op, "bias")
    return native(x).sepconv2d_1d_forward(x, w_col, w_row, b, stride, pad, dilation)


def sepconv2d_1d_backward(dy, x, w_col, w_row, stride=1, padding=0, dilation=1,
                          need=("x", "w_col", "w_row", "b")):
    """Gradients of sepconv2d_1d: (dx, dw_col, dw_row, db), None for what `need` leaves out."""
    op = "sepconv2d_1d_backward"
    x, w_col, w_row, stride, pad, dilation = _sep1d_args(x, w_col, w_row, stride, padding,
                                                         dilation, op)
    dy = as_array(dy, op, "dy")
    flags = need_flags(need, ("x", "w_col", "w_row", "b"), op)
    return native(x).sepconv2d_1d_backward(dy, x, w_col, w_row, stride, pad, dilation, *flags)


# ---- rank-1 factoring -----------------------------------------------------------------------

def rank1_factor(w, rtol=1e-6):
    """Factors a separable (rank-1) kernel for sepconv2d_1d.

    w: (kh, kw) -> (w_col (kh,), w_row (kw,)); or (C, 1, kh, kw) -> (w_col (C, kh), w_row (C, kw)),
    with np.outer(w_col[c], w_row[c]) == w[c, 0] up to rounding. A kernel counts as rank 1 when
    its second singular value is at most rtol times its first (an all-zero kernel is rank 1);
    otherwise ValueError names the channel and the ratio. Factors keep w's dtype.
    """
    op = "rank1_factor"
    w = as_array(w, op, "w")
    if w.ndim == 2:
        planes = w[None]
    elif w.ndim == 4 and w.shape[1] == 1:
        planes = w[:, 0]
    else:
        raise ValueError(f"{op}: w must be (kh, kw) or (C, 1, kh, kw), got shape {tuple(w.shape)}")
    if not (isinstance(rtol, (int, float, np.floating, np.integer)) and rtol >= 0):
        raise ValueError(f"{op}: rtol must be a non-negative number, got {rtol!r}")
    if planes.size and not np.all(np.isfinite(planes)):
        raise ValueError(f"{op}: w contains NaN or infinity")
    channels, kh, kw = planes.shape
    w_col = np.zeros((channels, kh), np.float64)
    w_row = np.zeros((channels, kw), np.float64)
    if planes.size:
        u, s, vt = np.linalg.svd(planes.astype(np.float64), full_matrices=False)
        for c in range(channels):
            if s[c, 0] == 0.0:
                continue  # all-zero kernel: zero factors
            ratio = s[c, 1] / s[c, 0] if len(s[c]) > 1 else 0.0
            if ratio > rtol:
                where = "w" if w.ndim == 2 else f"channel {c} of w"
                raise ValueError(
                    f"{op}: {where} is not separable (rank 1): second/first singular value = "
                    f"{ratio:.3g} > rtol={rtol:g}"
                )
            col = u[c, :, 0] * np.sqrt(s[c, 0])
            row = vt[c, 0, :] * np.sqrt(s[c, 0])
            # SVD signs are arbitrary; make the column factor's largest entry positive so the
            # factors are reproducible.
            if col[np.argmax(np.abs(col))] < 0:
                col, row = -col, -row
            w_col[c], w_row[c] = col, row
    w_col, w_row = w_col.astype(w.dtype), w_row.astype(w.dtype)
    return (w_col[0], w_row[0]) if w.ndim == 2 else (w_col, w_row)
