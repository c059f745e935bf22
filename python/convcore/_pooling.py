"""Pooling: max, average and adaptive pooling with their backwards, in PyTorch's conventions.

Arrays are NCHW float32/float64. Padding is symmetric (an int or (ph, pw)); max pooling pads
with -inf, so padding never wins. Every function takes algo="auto" (the fast kernels) or
algo="reference" (the simplest loops, which define the answer).
"""
import numpy as np

from . import _cpu
from ._gpu import as_gpu_array, is_gpu_array, native
from ._args import as_array, as_int, check_ndim, pair

__all__ = [
    "max_pool2d", "max_pool2d_backward",
    "avg_pool2d", "avg_pool2d_backward",
    "adaptive_avg_pool2d", "adaptive_avg_pool2d_backward",
    "adaptive_max_pool2d", "adaptive_max_pool2d_backward",
]


def _algo(algo, op):
    if not isinstance(algo, str):
        raise TypeError(f"{op}: algo must be a string, got {algo!r}")
    return algo


def _bool(value, op, name):
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{op}: {name} must be a bool, got {value!r}")
    return bool(value)


def _x(x, op):
    x = as_array(x, op, "x")
    check_ndim(x, 4, op, "x", "(N, C, H, W)")
    return x


def _dy(dy, x, op):
    dy = as_array(dy, op, "dy")
    check_ndim(dy, 4, op, "dy", "(N, C, out_h, out_w)")
    if dy.dtype != x.dtype:
        raise TypeError(f"{op}: dy has dtype {dy.dtype} but x has {x.dtype}; mixed dtypes are not supported")
    return dy


def _window(kernel_size, stride, padding, op):
    kernel = pair(kernel_size, op, "kernel_size")
    # PyTorch: stride None (or an empty tuple) means stride = kernel_size
    stride = kernel if stride is None or (isinstance(stride, (tuple, list)) and len(stride) == 0) \
        else pair(stride, op, "stride")
    return kernel, stride, pair(padding, op, "padding")


def _indices(indices, op):
    if indices is None:
        return None
    if is_gpu_array(indices):
        return as_gpu_array(indices, op, "indices", dtypes=(np.dtype(np.int64),))
    if not isinstance(indices, np.ndarray):
        raise TypeError(f"{op}: indices must be an int64 NumPy array, got {type(indices).__name__}")
    if indices.dtype != np.int64:
        raise TypeError(f"{op}: indices must be int64, got dtype {indices.dtype}")
    return np.require(indices, requirements=["C_CONTIGUOUS", "ALIGNED"])  # as as_array does


def _output_size(output_size, x, op):
    if isinstance(output_size, (tuple, list)):
        if len(output_size) != 2:
            raise ValueError(f"{op}: output_size must be an int or a pair, got {output_size!r}")
        # None keeps the input's extent, as in PyTorch
        sizes = [x.shape[2 + i] if v is None else v for i, v in enumerate(output_size)]
    else:
        sizes = [output_size, output_size]
    sizes = [as_int(v, op, "output_size", "an int or a pair of ints") for v in sizes]
    return (sizes[0], sizes[1])


def max_pool2d(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
               return_indices=False, *, algo="auto"):
    """2-D max pooling. Returns y, or (y, indices) with int64 indices iy*W + ix into the input
    plane. Ties go to the first maximum in (ky, kx) order; a NaN in a window wins (the last NaN,
    as in PyTorch)."""
    op = "max_pool2d"
    x = _x(x, op)
    kernel, stride, padding = _window(kernel_size, stride, padding, op)
    return native(x).max_pool2d_forward(x, kernel, stride, padding, pair(dilation, op, "dilation"),
                                   _bool(ceil_mode, op, "ceil_mode"),
                                   _bool(return_indices, op, "return_indices"), _algo(algo, op))


def max_pool2d_backward(dy, x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
                        indices=None, *, algo="auto"):
    """Gradient of max_pool2d with respect to x: dy routed to each window's argmax (summed where
    windows share it). Uses `indices` from the forward when given, else recomputes them from x."""
    op = "max_pool2d_backward"
    x = _x(x, op)
    dy = _dy(dy, x, op)
    kernel, stride, padding = _window(kernel_size, stride, padding, op)
    return native(x).max_pool2d_backward(dy, x, kernel, stride, padding, pair(dilation, op, "dilation"),
                                    _bool(ceil_mode, op, "ceil_mode"), _indices(indices, op),
                                    _algo(algo, op))


def _divisor(divisor_override, op):
    if divisor_override is None:
        return None
    divisor_override = as_int(divisor_override, op, "divisor_override", "an int or None")
    if divisor_override <= 0:
        raise ValueError(f"{op}: divisor_override must be a positive int, got {divisor_override}")
    return int(divisor_override)


def avg_pool2d(x, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
               divisor_override=None, *, algo="auto"):
    """2-D average pooling with PyTorch's divisor: divisor_override if given; else the window
    clipped to the padded input (count_include_pad=True) or to the input itself (False)."""
    op = "avg_pool2d"
    x = _x(x, op)
    kernel, stride, padding = _window(kernel_size, stride, padding, op)
    return native(x).avg_pool2d_forward(x, kernel, stride, padding, _bool(ceil_mode, op, "ceil_mode"),
                                   _bool(count_include_pad, op, "count_include_pad"),
                                   _divisor(divisor_override, op), _algo(algo, op))


def avg_pool2d_backward(dy, x, kernel_size, stride=None, padding=0, ceil_mode=False,
                        count_include_pad=True, divisor_override=None, *, algo="auto"):
    """Gradient of avg_pool2d with respect to x."""
    op = "avg_pool2d_backward"
    x = _x(x, op)
    dy = _dy(dy, x, op)
    kernel, stride, padding = _window(kernel_size, stride, padding, op)
    return native(x).avg_pool2d_backward(dy, x, kernel, stride, padding, _bool(ceil_mode, op, "ceil_mode"),
                                    _bool(count_include_pad, op, "count_include_pad"),
                                    _divisor(divisor_override, op), _algo(algo, op))


def adaptive_avg_pool2d(x, output_size, *, algo="auto"):
    """Average pooling to a fixed output size: window i spans [floor(i*H/out), ceil((i+1)*H/out))."""
    op = "adaptive_avg_pool2d"
    x = _x(x, op)
    return native(x).adaptive_avg_pool2d_forward(x, _output_size(output_size, x, op), _algo(algo, op))


def adaptive_avg_pool2d_backward(dy, x, *, algo="auto"):
    """Gradient of adaptive_avg_pool2d; the output size is dy's."""
    op = "adaptive_avg_pool2d_backward"
    x = _x(x, op)
    return native(x).adaptive_avg_pool2d_backward(_dy(dy, x, op), x, _algo(algo, op))


def adaptive_max_pool2d(x, output_size, return_indices=False, *, algo="auto"):
    """Max pooling to a fixed output size (windows as adaptive_avg_pool2d; ties and NaN as max_pool2d)."""
    op = "adaptive_max_pool2d"
    x = _x(x, op)
    return native(x).adaptive_max_pool2d_forward(x, _output_size(output_size, x, op),
                                            _bool(return_indices, op, "return_indices"),
                                            _algo(algo, op))


def adaptive_max_pool2d_backward(dy, x, indices=None, *, algo="auto"):
    """Gradient of adaptive_max_pool2d; the output size is dy's."""
    op = "adaptive_max_pool2d_backward"
    x = _x(x, op)
    return native(x).adaptive_max_pool2d_backward(_dy(dy, x, op), x, _indices(indices, op), _algo(algo, op))
