"""convcore inside PyTorch: every functional op as a PyTorch custom operator, and nn modules.

    import convcore.torch as cct
    y = cct.conv2d(x, weight, bias, stride=2, padding=1)       # a torch.Tensor, with autograd
    model = nn.Sequential(cct.DepthwiseConv2d(32, 32, 3, padding=1), cct.MaxPool2d(2))

Importing this module needs PyTorch (convcore itself does not). Each op is registered with
`torch.library.custom_op` under the namespace `convcore` (torch.ops.convcore.<name>), with a fake
implementation (shapes only, for torch.compile / export / FakeTensor tracing) and an autograd
formula whose backward is itself a custom op (so compiled graphs trace the backward too; the
backward ops are not differentiable again: no double backward).

Tensors cross into convcore without copies, on the CPU and on CUDA devices (every op is
registered for both). A contiguous CPU float32/float64 tensor is viewed as a NumPy array
(`Tensor.numpy()`), and convcore's output array becomes the result tensor (`torch.from_numpy`),
sharing its memory. A CUDA tensor is handed to convcore.functional as it is (convcore._gpu reads
it through `__cuda_array_interface__` and sends the call to convcore._cuda): outputs are torch
tensors on the input's device from torch's caching allocator, and the kernels run on
torch.cuda.current_stream(), so they are ordered with the surrounding torch ops like any of
them. Non-contiguous tensors are made contiguous first (one copy, as any kernel would).
A CUDA tensor when convcore was built without its CUDA backend (or sees no device) raises
TypeError naming the argument (convcore.backends()["cuda"] says what was built); tensors of one
call on different devices (a CPU input with a CUDA weight, two GPUs) raise TypeError too.

Argument spellings follow torch.nn.functional (ints or pairs; conv padding also "same"/"valid"
and (top, bottom, left, right)); the registered ops take the normalised lists. A tensor of the
wrong type, dtype or device raises TypeError naming the wrapper's argument (input, weight, ...);
shape errors come from convcore's own validation and use convcore.functional's names (x, w).
Threads: convcore's kernels use convcore.set_num_threads, PyTorch's ops torch.set_num_threads.
separable_conv2d and conv1d are compositions of registered ops (depthwise then 1x1; conv2d over
(N, C, 1, L)), so autograd and torch.compile see the registered ops inside them.
"""
import math

import numpy as np
import torch
from torch import nn

from . import functional as F
from ._args import padding1d, padding4, pair, single
from ._pooling import _bool, _divisor, _output_size

__all__ = [
    "conv2d", "conv1d", "conv_transpose2d", "depthwise_conv2d", "separable_conv2d",
    "sepconv2d_1d", "max_pool2d", "avg_pool2d", "adaptive_avg_pool2d", "adaptive_max_pool2d",
    "im2col", "col2im",
    "Conv2d", "Conv1d", "ConvTranspose2d", "DepthwiseConv2d", "SeparableConv2d", "SepConv1d",
    "MaxPool2d", "AvgPool2d", "AdaptiveAvgPool2d", "HAS_LOCAL",
]

# convcore.functional gains locally connected / tiled convolution on another branch; they are
# wrapped when present, so this module works with and without them.
HAS_LOCAL = hasattr(F, "locally_connected2d") and hasattr(F, "tiled_conv2d")

_FLOAT = (torch.float32, torch.float64)


# ---- the boundary: tensors <-> convcore's arrays, without copies ----------------------------

def _np(t):
    """convcore's view of a tensor: a NumPy array sharing a CPU tensor's memory, or the CUDA
    tensor itself, detached (convcore._gpu reads it in place). A copy only when it is not
    contiguous."""
    if t is None:
        return None
    t = t.detach().contiguous()
    return t.numpy() if t.device.type == "cpu" else t


def _tensor(a):
    """convcore's output as a tensor sharing its memory: a NumPy array becomes a CPU tensor;
    on CUDA convcore already returns torch tensors (allocated on the input's device)."""
    if isinstance(a, torch.Tensor):
        return a
    return torch.from_numpy(np.ascontiguousarray(a))


def _grad_or_empty(grad, like):
    """Backward ops always return every slot (custom ops cannot return None); a gradient
    that was not asked for is an empty tensor."""
    return like.new_empty(0) if grad is None else _tensor(grad)


_cuda_reason = []  # memo of _cuda_unavailable(): [] until asked, then [reason or None]


def _cuda_unavailable():
    """None when convcore can run CUDA tensors, else why not (asked of convcore once)."""
    if not _cuda_reason:
        import convcore
        info = convcore.backends()["cuda"]
        if not info.get("built", False):
            reason = "convcore was built without its CUDA backend"
        elif not info.get("available", False):
            reason = f"convcore sees no CUDA device ({info.get('reason') or 'no devices'})"
        else:
            reason = None
        _cuda_reason.append(reason)
    return _cuda_reason[0]


def _check(t, op, name, optional=False):
    """Tensor arguments: a float32/float64 torch.Tensor on the CPU or on a CUDA device that
    convcore can use, else TypeError naming it."""
    if t is None and optional:
        return
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{op}: {name} must be a torch.Tensor, got {type(t).__name__}")
    if t.device.type not in ("cpu", "cuda"):
        raise TypeError(f"{op}: {name} is on {t.device}; convcore.torch runs on CPU and CUDA "
                        "tensors only")
    if t.device.type == "cuda" and _cuda_unavailable() is not None:
        raise TypeError(f"{op}: {name} is a CUDA tensor ({t.device}), but "
                        f"{_cuda_unavailable()} (convcore.backends()['cuda'] says what was "
                        "built); move it to the CPU or build convcore with CUDA")
    if t.dtype not in _FLOAT:
        raise TypeError(f"{op}: {name} must be float32 or float64, got {t.dtype}")


def _check_all(op, *named):
    """Checks each (name, tensor, optional) with _check, then that the tensors given share one
    device (TypeError naming the first that does not)."""
    first = None
    for name, t, optional in named:
        _check(t, op, name, optional)
        if t is None:
            continue
        if first is None:
            first = (name, t.device)
        elif t.device != first[1]:
            raise TypeError(f"{op}: {name} is on {t.device} but {first[0]} is on {first[1]}; "
                            "all tensor arguments must be on one device")


def _out_extent(size, pad_before, pad_after, kernel, stride, dilation):
    # works on SymInts too (fake tensors with dynamic shapes): no Python branching on size
    return (size + pad_before + pad_after - dilation * (kernel - 1) - 1) // stride + 1


def _pool_extent(size, kernel, stride, pad, dilation, ceil_mode):
    """PyTorch's pooling output extent: with ceil_mode the last window must start inside the
    input or its left padding."""
    span = size + 2 * pad - dilation * (kernel - 1) - 1
    if not ceil_mode:
        return span // stride + 1
    out = (span + stride - 1) // stride + 1
    return out - 1 if (out - 1) * stride >= size + pad else out


def _define(name, schema, impl, fake, backward=None, setup=None):
    """Registers convcore::<name> with its implementation (one for CPU and CUDA tensors alike:
    convcore.functional picks the backend from the arrays), fake implementation and (when
    given) autograd formula; returns the op."""
    op = torch.library.custom_op(f"convcore::{name}", impl, mutates_args=(),
                                 device_types=("cpu", "cuda"), schema=schema)
    op.register_fake(fake)
    if backward is not None:
        op.register_autograd(backward, setup_context=setup)
    return op


def _bias_grad_shape_conv(w, *extra):
    return (w.shape[0],)


# ---- convolution families: (x, w, bias, stride, padding, dilation, *extra) ------------------
# conv2d, depthwise, locally connected, tiled and transposed convolution share one calling
# pattern, one autograd formula and one backward schema; a family entry says how to call
# convcore and what the output and bias shapes are.

def _conv_family(name, extra_schema, forward, backward, out_shape, bias_shape):
    """Registers convcore::<name> and convcore::<name>_backward.

    forward(x, w, b, stride, padding, dilation, *extra) -> y array
    backward(dy, x, w, stride, padding, dilation, *extra, need) -> (dx, dw, db) arrays or None
    out_shape(x, w, stride, padding, dilation, *extra) / bias_shape(w, *extra): for fake tensors.
    """
    sep = ", " if extra_schema else ""
    fwd_schema = (f"(Tensor x, Tensor w, Tensor? bias, int[2] stride, int[4] padding, "
                  f"int[2] dilation{sep}{extra_schema}) -> Tensor")
    bwd_schema = (f"(Tensor dy, Tensor x, Tensor w, int[2] stride, int[4] padding, "
                  f"int[2] dilation{sep}{extra_schema}, bool[3] need) -> (Tensor, Tensor, Tensor)")

    def bwd_impl(dy, x, w, *args):
        *params, need = args
        dx, dw, db = backward(_np(dy), _np(x), _np(w), *params,
                              need=tuple(n for n, flag in zip(("x", "w", "b"), need) if flag))
        return _grad_or_empty(dx, x), _grad_or_empty(dw, w), _grad_or_empty(db, w)

    def bwd_fake(dy, x, w, *args):
        *params, need = args
        db_shape = bias_shape(w, *params[3:]) if need[2] else (0,)
        return (x.new_empty(x.shape if need[0] else (0,)),
                w.new_empty(w.shape if need[1] else (0,)), w.new_empty(db_shape))

    bwd_op = _define(f"{name}_backward", bwd_schema, bwd_impl, bwd_fake)

    def setup(ctx, inputs, output):
        x, w, bias, *params = inputs
        ctx.save_for_backward(x, w)
        ctx.params = params
        ctx.has_bias = bias is not None

    def autograd_backward(ctx, dy):
        x, w = ctx.saved_tensors
        needs = ctx.needs_input_grad
        need = [needs[0], needs[1], ctx.has_bias and needs[2]]
        dx, dw, db = bwd_op(dy, x, w, *ctx.params, need)
        return ((dx if need[0] else None, dw if need[1] else None, db if need[2] else None)
                + (None,) * len(ctx.params))

    def fwd_impl(x, w, bias, stride, padding, dilation, *extra):
        return _tensor(forward(_np(x), _np(w), _np(bias), tuple(stride), tuple(padding),
                               tuple(dilation), *extra))

    def fwd_fake(x, w, bias, stride, padding, dilation, *extra):
        return x.new_empty(out_shape(x, w, stride, padding, dilation, *extra))

    return _define(name, fwd_schema, fwd_impl, fwd_fake, autograd_backward, setup)


def _conv_out_shape(x, w, stride, padding, dilation, *extra):
    kh, kw = w.shape[-2:]
    return (x.shape[0], w.shape[0],
            _out_extent(x.shape[2], padding[0], padding[1], kh, stride[0], dilation[0]),
            _out_extent(x.shape[3], padding[2], padding[3], kw, stride[1], dilation[1]))


def _local_out_shape(x, w, stride, padding, dilation):
    # w: (out_h, out_w, K, C, kh, kw) or (t_h, t_w, K, C, kh, kw): K is w.shape[2]
    n, _, oh, ow = _conv_out_shape(x, w, stride, padding, dilation)
    return (n, w.shape[2], oh, ow)


def _transpose_out_shape(x, w, stride, padding, dilation, output_padding, groups):
    kh, kw = w.shape[-2:]

    def extent(size, before, after, k, s, d, extra):
        return (size - 1) * s - before - after + d * (k - 1) + extra + 1
    return (x.shape[0], w.shape[1] * groups,
            extent(x.shape[2], padding[0], padding[1], kh, stride[0], dilation[0], output_padding[0]),
            extent(x.shape[3], padding[2], padding[3], kw, stride[1], dilation[1], output_padding[1]))


_conv2d_op = _conv_family(
    "conv2d", "int groups",
    lambda x, w, b, s, p, d, g: F.conv2d(x, w, b, s, p, d, g),
    lambda dy, x, w, s, p, d, g, need: F.conv2d_backward(dy, x, w, s, p, d, g, need=need),
    _conv_out_shape, _bias_grad_shape_conv)

_depthwise_op = _conv_family(
    "depthwise_conv2d", "",
    lambda x, w, b, s, p, d: F.depthwise_conv2d(x, w, b, s, p, d),
    lambda dy, x, w, s, p, d, need: F.depthwise_conv2d_backward(dy, x, w, s, p, d, need=need),
    _conv_out_shape, _bias_grad_shape_conv)

_transpose_op = _conv_family(
    "conv_transpose2d", "int[2] output_padding, int groups",
    lambda x, w, b, s, p, d, op, g: F.conv_transpose2d(x, w, b, s, p, tuple(op), d, g),
    lambda dy, x, w, s, p, d, op, g, need: F.conv_transpose2d_backward(
        dy, x, w, s, p, tuple(op), d, g, need=need),
    _transpose_out_shape, lambda w, output_padding, groups: (w.shape[1] * groups,))

if HAS_LOCAL:
    _local_op = _conv_family(
        "locally_connected2d", "", F.locally_connected2d, F.locally_connected2d_backward,
        _local_out_shape, lambda w: tuple(w.shape[:3]))
    _tiled_op = _conv_family(
        "tiled_conv2d", "", F.tiled_conv2d, F.tiled_conv2d_backward, _local_out_shape,
        lambda w: tuple(w.shape[:3]))
    __all__ += ["locally_connected2d", "tiled_conv2d", "LocallyConnected2d", "TiledConv2d"]


def _conv_geometry(op, weight, stride, padding, dilation, kernel_dims=slice(2, 4)):
    stride = pair(stride, op, "stride")
    dilation = pair(dilation, op, "dilation")
    return (list(stride), list(padding4(padding, tuple(weight.shape[kernel_dims]), stride,
                                        dilation, op)), list(dilation))


def _check_conv_tensors(op, x, weight, bias):
    _check_all(op, ("input", x, False), ("weight", weight, False), ("bias", bias, True))


def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """torch.nn.functional.conv2d run by convcore. padding also takes (top, bottom, left, right)."""
    op = "conv2d"
    _check_conv_tensors(op, input, weight, bias)
    if isinstance(groups, bool) or not isinstance(groups, int):
        raise TypeError(f"{op}: groups must be an int, got {groups!r}")
    return _conv2d_op(input, weight, bias, *_conv_geometry(op, weight, stride, padding, dilation),
                      groups)


def depthwise_conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1):
    """Depthwise convolution: weight (C*multiplier, 1, kh, kw), as conv2d with groups=C."""
    op = "depthwise_conv2d"
    _check_conv_tensors(op, input, weight, bias)
    return _depthwise_op(input, weight, bias, *_conv_geometry(op, weight, stride, padding, dilation))


def conv_transpose2d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1,
                     dilation=1):
    """torch.nn.functional.conv_transpose2d (same argument order) run by convcore."""
    op = "conv_transpose2d"
    _check_conv_tensors(op, input, weight, bias)
    if isinstance(padding, str):
        raise ValueError(f"{op}: padding must be an int or a tuple, got {padding!r}")
    if isinstance(groups, bool) or not isinstance(groups, int):
        raise TypeError(f"{op}: groups must be an int, got {groups!r}")
    return _transpose_op(input, weight, bias, *_conv_geometry(op, weight, stride, padding, dilation),
                         list(pair(output_padding, op, "output_padding")), groups)


def conv1d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """torch.nn.functional.conv1d, run as convcore's conv2d over (N, C, 1, L)."""
    op = "conv1d"
    _check_conv_tensors(op, input, weight, bias)
    if input.dim() != 3 or weight.dim() != 3:
        raise ValueError(f"{op}: input must be (N, C, L) and weight (K, C/groups, k), got "
                         f"{tuple(input.shape)} and {tuple(weight.shape)}")
    stride = single(stride, op, "stride")
    dilation = single(dilation, op, "dilation")
    left, right = padding1d(padding, weight.shape[2], stride, dilation, op)
    y = conv2d(input.unsqueeze(2), weight.unsqueeze(2), bias, (1, stride), (0, 0, left, right),
               (1, dilation), groups)
    return y.squeeze(2)


def separable_conv2d(input, weight_depthwise, weight_pointwise, bias=None, stride=1, padding=0,
                     dilation=1):
    """Depthwise separable convolution: depthwise (C*m, 1, kh, kw) then pointwise (K, C*m, 1, 1)."""
    op = "separable_conv2d"
    _check_all(op, ("input", input, False), ("weight_depthwise", weight_depthwise, False),
               ("weight_pointwise", weight_pointwise, False), ("bias", bias, True))
    mid = depthwise_conv2d(input, weight_depthwise, None, stride, padding, dilation)
    return conv2d(mid, weight_pointwise, bias)


if HAS_LOCAL:
    def locally_connected2d(input, weight, bias=None, stride=1, padding=0, dilation=1):
        """Unshared convolution: weight (out_h, out_w, K, C, kh, kw), bias (out_h, out_w, K)."""
        op = "locally_connected2d"
        _check_conv_tensors(op, input, weight, bias)
        return _local_op(input, weight, bias,
                         *_conv_geometry(op, weight, stride, padding, dilation, slice(4, 6)))

    def tiled_conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1):
        """Tiled convolution: weight (t_h, t_w, K, C, kh, kw) cycled over output positions."""
        op = "tiled_conv2d"
        _check_conv_tensors(op, input, weight, bias)
        return _tiled_op(input, weight, bias,
                         *_conv_geometry(op, weight, stride, padding, dilation, slice(4, 6)))


# ---- separable 1-D: two weights -------------------------------------------------------------

def _sep1d_impl(x, w_col, w_row, bias, stride, padding, dilation):
    return _tensor(F.sepconv2d_1d(_np(x), _np(w_col), _np(w_row), _np(bias), tuple(stride),
                                  tuple(padding), tuple(dilation)))


def _sep1d_fake(x, w_col, w_row, bias, stride, padding, dilation):
    return x.new_empty((x.shape[0], x.shape[1],
                        _out_extent(x.shape[2], padding[0], padding[1], w_col.shape[1], stride[0],
                                    dilation[0]),
                        _out_extent(x.shape[3], padding[2], padding[3], w_row.shape[1], stride[1],
                                    dilation[1])))


def _sep1d_bwd_impl(dy, x, w_col, w_row, stride, padding, dilation, need):
    names = ("x", "w_col", "w_row", "b")
    grads = F.sepconv2d_1d_backward(_np(dy), _np(x), _np(w_col), _np(w_row), tuple(stride),
                                    tuple(padding), tuple(dilation),
                                    need=tuple(n for n, flag in zip(names, need) if flag))
    return tuple(_grad_or_empty(g, like) for g, like in zip(grads, (x, w_col, w_row, w_col)))


def _sep1d_bwd_fake(dy, x, w_col, w_row, stride, padding, dilation, need):
    shapes = (x.shape, w_col.shape, w_row.shape, (w_col.shape[0],))
    return tuple(x.new_empty(s if flag else (0,)) for s, flag in zip(shapes, need))


_sep1d_bwd_op = _define(
    "sepconv2d_1d_backward",
    "(Tensor dy, Tensor x, Tensor w_col, Tensor w_row, int[2] stride, int[4] padding, "
    "int[2] dilation, bool[4] need) -> (Tensor, Tensor, Tensor, Tensor)",
    _sep1d_bwd_impl, _sep1d_bwd_fake)


def _sep1d_setup(ctx, inputs, output):
    x, w_col, w_row, bias, *params = inputs
    ctx.save_for_backward(x, w_col, w_row)
    ctx.params = params
    ctx.has_bias = bias is not None


def _sep1d_backward(ctx, dy):
    needs = ctx.needs_input_grad
    need = [needs[0], needs[1], needs[2], ctx.has_bias and needs[3]]
    grads = _sep1d_bwd_op(dy, *ctx.saved_tensors, *ctx.params, need)
    return tuple(g if flag else None for g, flag in zip(grads, need)) + (None, None, None)


_sep1d_op = _define(
    "sepconv2d_1d",
    "(Tensor x, Tensor w_col, Tensor w_row, Tensor? bias, int[2] stride, int[4] padding, "
    "int[2] dilation) -> Tensor",
    _sep1d_impl, _sep1d_fake, _sep1d_backward, _sep1d_setup)


def sepconv2d_1d(input, weight_col, weight_row, bias=None, stride=1, padding=0, dilation=1):
    """A depthwise kh x kw convolution whose kernel of channel c is outer(weight_col[c],
    weight_row[c]), run as a column pass then a row pass. weight_col (C, kh), weight_row (C, kw)."""
    op = "sepconv2d_1d"
    _check_all(op, ("input", input, False), ("weight_col", weight_col, False),
               ("weight_row", weight_row, False), ("bias", bias, True))
    stride = pair(stride, op, "stride")
    dilation = pair(dilation, op, "dilation")
    kernel = (weight_col.shape[-1], weight_row.shape[-1])
    pad = padding4(padding, kernel, stride, dilation, op)
    return _sep1d_op(input, weight_col, weight_row, bias, list(stride), list(pad), list(dilation))


# ---- pooling --------------------------------------------------------------------------------

def _save_x_and_params(ctx, inputs, output):
    x, *params = inputs
    ctx.save_for_backward(x)
    ctx.params = params


def _save_x_indices_and_params(ctx, inputs, output):
    x, *params = inputs
    ctx.save_for_backward(x, output[1])
    ctx.params = params
    ctx.mark_non_differentiable(output[1])


def _max_pool_impl(x, kernel_size, stride, padding, dilation, ceil_mode):
    y, idx = F.max_pool2d(_np(x), tuple(kernel_size), tuple(stride), tuple(padding),
                          tuple(dilation), ceil_mode, return_indices=True)
    return _tensor(y), _tensor(idx)


def _max_pool_fake(x, kernel_size, stride, padding, dilation, ceil_mode):
    shape = (x.shape[0], x.shape[1]) + tuple(
        _pool_extent(x.shape[2 + i], kernel_size[i], stride[i], padding[i], dilation[i], ceil_mode)
        for i in range(2))
    return x.new_empty(shape), x.new_empty(shape, dtype=torch.int64)


_max_pool_bwd_op = _define(
    "max_pool2d_backward",
    "(Tensor dy, Tensor x, Tensor indices, int[2] kernel_size, int[2] stride, int[2] padding, "
    "int[2] dilation, bool ceil_mode) -> Tensor",
    lambda dy, x, idx, k, s, p, d, c: _tensor(F.max_pool2d_backward(
        _np(dy), _np(x), tuple(k), tuple(s), tuple(p), tuple(d), c, indices=_np(idx))),
    lambda dy, x, idx, *params: torch.empty_like(x))

_max_pool_op = _define(
    "max_pool2d",
    "(Tensor x, int[2] kernel_size, int[2] stride, int[2] padding, int[2] dilation, "
    "bool ceil_mode) -> (Tensor, Tensor)",
    _max_pool_impl, _max_pool_fake,
    lambda ctx, dy, didx: (_max_pool_bwd_op(dy, *ctx.saved_tensors, *ctx.params),)
    + (None,) * len(ctx.params),
    _save_x_indices_and_params)


# Without return_indices the op returns the values only and its backward recomputes each
# window's argmax from x, as the book's Pooling layer does: the int64 indices (twice the
# output's bytes) are never written, kept for backward or carried through autograd.
_MAX_SCHEMA = "int[2] kernel_size, int[2] stride, int[2] padding, int[2] dilation, bool ceil_mode"

_max_pool_values_bwd_op = _define(
    "max_pool2d_values_backward", f"(Tensor dy, Tensor x, {_MAX_SCHEMA}) -> Tensor",
    lambda dy, x, k, s, p, d, c: _tensor(F.max_pool2d_backward(
        _np(dy), _np(x), tuple(k), tuple(s), tuple(p), tuple(d), c)),
    lambda dy, x, *params: torch.empty_like(x))

_max_pool_values_op = _define(
    "max_pool2d_values", f"(Tensor x, {_MAX_SCHEMA}) -> Tensor",
    lambda x, k, s, p, d, c: _tensor(F.max_pool2d(_np(x), tuple(k), tuple(s), tuple(p),
                                                  tuple(d), c)),
    lambda x, *params: _max_pool_fake(x, *params)[0],
    lambda ctx, dy: (_max_pool_values_bwd_op(dy, *ctx.saved_tensors, *ctx.params),)
    + (None,) * len(ctx.params),
    _save_x_and_params)


def _pool_window(op, kernel_size, stride, padding):
    kernel = pair(kernel_size, op, "kernel_size")
    stride = kernel if stride is None or stride == () or stride == [] else pair(stride, op, "stride")
    return list(kernel), list(stride), list(pair(padding, op, "padding"))


def max_pool2d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
               return_indices=False):
    """torch.nn.functional.max_pool2d run by convcore (indices are flat iy*W + ix per plane, as
    PyTorch's)."""
    op = "max_pool2d"
    _check(input, op, "input")
    args = (*_pool_window(op, kernel_size, stride, padding), list(pair(dilation, op, "dilation")),
            _bool(ceil_mode, op, "ceil_mode"))
    if _bool(return_indices, op, "return_indices"):
        return _max_pool_op(input, *args)
    return _max_pool_values_op(input, *args)


_AVG_SCHEMA = ("int[2] kernel_size, int[2] stride, int[2] padding, bool ceil_mode, "
               "bool count_include_pad, int? divisor_override")

_avg_pool_bwd_op = _define(
    "avg_pool2d_backward", f"(Tensor dy, Tensor x, {_AVG_SCHEMA}) -> Tensor",
    lambda dy, x, k, s, p, c, cip, div: _tensor(F.avg_pool2d_backward(
        _np(dy), _np(x), tuple(k), tuple(s), tuple(p), c, cip, div)),
    lambda dy, x, *params: torch.empty_like(x))

_avg_pool_op = _define(
    "avg_pool2d", f"(Tensor x, {_AVG_SCHEMA}) -> Tensor",
    lambda x, k, s, p, c, cip, div: _tensor(F.avg_pool2d(_np(x), tuple(k), tuple(s), tuple(p),
                                                         c, cip, div)),
    lambda x, k, s, p, c, cip, div: x.new_empty(
        (x.shape[0], x.shape[1]) + tuple(_pool_extent(x.shape[2 + i], k[i], s[i], p[i], 1, c)
                                         for i in range(2))),
    lambda ctx, dy: (_avg_pool_bwd_op(dy, *ctx.saved_tensors, *ctx.params),)
    + (None,) * len(ctx.params),
    _save_x_and_params)


def avg_pool2d(input, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
               divisor_override=None):
    """torch.nn.functional.avg_pool2d run by convcore."""
    op = "avg_pool2d"
    _check(input, op, "input")
    return _avg_pool_op(input, *_pool_window(op, kernel_size, stride, padding),
                        _bool(ceil_mode, op, "ceil_mode"),
                        _bool(count_include_pad, op, "count_include_pad"),
                        _divisor(divisor_override, op))


def _adaptive_fake(x, output_size):
    return x.new_empty((x.shape[0], x.shape[1], output_size[0], output_size[1]))


_adaptive_avg_bwd_op = _define(
    "adaptive_avg_pool2d_backward", "(Tensor dy, Tensor x) -> Tensor",
    lambda dy, x: _tensor(F.adaptive_avg_pool2d_backward(_np(dy), _np(x))),
    lambda dy, x: torch.empty_like(x))

_adaptive_avg_op = _define(
    "adaptive_avg_pool2d", "(Tensor x, int[2] output_size) -> Tensor",
    lambda x, size: _tensor(F.adaptive_avg_pool2d(_np(x), tuple(size))),
    _adaptive_fake,
    lambda ctx, dy: (_adaptive_avg_bwd_op(dy, *ctx.saved_tensors), None),
    _save_x_and_params)


def adaptive_avg_pool2d(input, output_size):
    """torch.nn.functional.adaptive_avg_pool2d run by convcore."""
    op = "adaptive_avg_pool2d"
    _check(input, op, "input")
    return _adaptive_avg_op(input, list(_output_size(output_size, input, op)))


_adaptive_max_bwd_op = _define(
    "adaptive_max_pool2d_backward", "(Tensor dy, Tensor x, Tensor indices) -> Tensor",
    lambda dy, x, idx: _tensor(F.adaptive_max_pool2d_backward(_np(dy), _np(x), _np(idx))),
    lambda dy, x, idx: torch.empty_like(x))


def _adaptive_max_impl(x, size):
    y, idx = F.adaptive_max_pool2d(_np(x), tuple(size), return_indices=True)
    return _tensor(y), _tensor(idx)


def _adaptive_max_fake(x, size):
    y = _adaptive_fake(x, size)
    return y, y.new_empty(y.shape, dtype=torch.int64)


_adaptive_max_op = _define(
    "adaptive_max_pool2d", "(Tensor x, int[2] output_size) -> (Tensor, Tensor)",
    _adaptive_max_impl, _adaptive_max_fake,
    lambda ctx, dy, didx: (_adaptive_max_bwd_op(dy, *ctx.saved_tensors), None),
    _save_x_indices_and_params)


def adaptive_max_pool2d(input, output_size, return_indices=False):
    """torch.nn.functional.adaptive_max_pool2d run by convcore."""
    op = "adaptive_max_pool2d"
    _check(input, op, "input")
    y, idx = _adaptive_max_op(input, list(_output_size(output_size, input, op)))
    return (y, idx) if _bool(return_indices, op, "return_indices") else y


# ---- im2col / col2im (the book's layout): each is the other's adjoint ----------------------

_WINDOW_SCHEMA = "int[2] kernel_size, int[2] stride, int[4] padding, int[2] dilation"


def _im2col_fake(x, kernel_size, stride, padding, dilation):
    oh = _out_extent(x.shape[2], padding[0], padding[1], kernel_size[0], stride[0], dilation[0])
    ow = _out_extent(x.shape[3], padding[2], padding[3], kernel_size[1], stride[1], dilation[1])
    return x.new_empty((x.shape[0] * oh * ow, x.shape[1] * kernel_size[0] * kernel_size[1]))


def _save_window(ctx, inputs, output):
    ctx.shape = list(inputs[0].shape)
    ctx.params = inputs[-4:]


def _im2col_impl(x, k, s, p, d):
    return _tensor(F.im2col(_np(x), k[0], k[1], tuple(s), tuple(p), tuple(d)))


def _col2im_impl(col, shape, k, s, p, d):
    return _tensor(F.col2im(_np(col), tuple(shape), k[0], k[1], tuple(s), tuple(p), tuple(d)))


_im2col_op = _define("im2col", f"(Tensor x, {_WINDOW_SCHEMA}) -> Tensor",
                     _im2col_impl, _im2col_fake)
_col2im_op = _define("col2im", f"(Tensor col, SymInt[4] input_shape, {_WINDOW_SCHEMA}) -> Tensor",
                     _col2im_impl, lambda col, shape, *window: col.new_empty(shape))
_im2col_op.register_autograd(
    lambda ctx, dcol: (_col2im_op(dcol, ctx.shape, *ctx.params),) + (None,) * 4,
    setup_context=_save_window)
_col2im_op.register_autograd(
    lambda ctx, dx: (_im2col_op(dx, *ctx.params),) + (None,) * 5, setup_context=_save_window)


def _window_args(op, kernel_size, stride, padding, dilation):
    kernel = pair(kernel_size, op, "kernel_size")
    stride = pair(stride, op, "stride")
    dilation = pair(dilation, op, "dilation")
    return list(kernel), list(stride), list(padding4(padding, kernel, stride, dilation, op)), \
        list(dilation)


def im2col(input, kernel_size, stride=1, padding=0, dilation=1):
    """The book's im2col: (N, C, H, W) -> (N*out_h*out_w, C*kh*kw); its gradient is col2im."""
    op = "im2col"
    _check(input, op, "input")
    return _im2col_op(input, *_window_args(op, kernel_size, stride, padding, dilation))


def col2im(col, input_shape, kernel_size, stride=1, padding=0, dilation=1):
    """The adjoint of im2col; its gradient is im2col."""
    op = "col2im"
    _check(col, op, "col")
    if len(tuple(input_shape)) != 4:
        raise ValueError(f"{op}: input_shape must be (N, C, H, W), got {input_shape!r}")
    return _col2im_op(col, [single(v, op, "input_shape") for v in input_shape],
                      *_window_args(op, kernel_size, stride, padding, dilation))


# ---- nn modules (torch.nn's constructor conventions and initialisation) ---------------------

def _init_uniform(weight, bias, fan_in):
    """torch.nn.Conv2d's default: kaiming_uniform_(a=sqrt(5)), i.e. U(-1/sqrt(fan_in), +), for
    the weight and the bias alike."""
    bound = 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0
    with torch.no_grad():
        for p in (weight, bias):
            if p is not None:
                p.uniform_(-bound, bound)


def _check_padding_mode(padding_mode):
    if padding_mode != "zeros":
        raise ValueError(f"padding_mode: convcore pads with zeros only, got {padding_mode!r}")


class _ConvBase(nn.Module):
    """Holds weight/bias and the geometry; subclasses give the weight shape and the op."""

    def __init__(self, weight_shape, bias_shape, fan_in, stride, padding, dilation, bias,
                 device, dtype):
        super().__init__()
        factory = {"device": device, "dtype": dtype}
        self.stride, self.padding, self.dilation = stride, padding, dilation
        self.weight = nn.Parameter(torch.empty(weight_shape, **factory))
        self.bias = nn.Parameter(torch.empty(bias_shape, **factory)) if bias else None
        self._fan_in = fan_in
        self.reset_parameters()

    def reset_parameters(self):
        _init_uniform(self.weight, self.bias, self._fan_in)

    def extra_repr(self):
        return (f"weight={tuple(self.weight.shape)}, stride={self.stride}, "
                f"padding={self.padding}, dilation={self.dilation}, bias={self.bias is not None}")


class Conv2d(_ConvBase):
    """Drop-in for torch.nn.Conv2d (padding_mode 'zeros' only); weight (K, C/groups, kh, kw)."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1,
                 groups=1, bias=True, padding_mode="zeros", device=None, dtype=None):
        _check_padding_mode(padding_mode)
        if groups <= 0 or in_channels % groups or out_channels % groups:
            raise ValueError(f"groups={groups} must divide in_channels={in_channels} and "
                             f"out_channels={out_channels}")
        kh, kw = pair(kernel_size, "Conv2d", "kernel_size")
        self.groups = groups
        super().__init__((out_channels, in_channels // groups, kh, kw), (out_channels,),
                         in_channels // groups * kh * kw, stride, padding, dilation, bias,
                         device, dtype)

    def forward(self, x):
        return conv2d(x, self.weight, self.bias, self.stride, self.padding, self.dilation,
                      self.groups)


class Conv1d(_ConvBase):
    """Drop-in for torch.nn.Conv1d (padding_mode 'zeros' only); weight (K, C/groups, k)."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1,
                 groups=1, bias=True, padding_mode="zeros", device=None, dtype=None):
        _check_padding_mode(padding_mode)
        k = single(kernel_size, "Conv1d", "kernel_size")
        self.groups = groups
        super().__init__((out_channels, in_channels // groups, k), (out_channels,),
                         in_channels // groups * k, stride, padding, dilation, bias, device, dtype)

    def forward(self, x):
        return conv1d(x, self.weight, self.bias, self.stride, self.padding, self.dilation,
                      self.groups)


class ConvTranspose2d(_ConvBase):
    """Drop-in for torch.nn.ConvTranspose2d; weight (C_in, C_out/groups, kh, kw)."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0,
                 output_padding=0, groups=1, bias=True, dilation=1, padding_mode="zeros",
                 device=None, dtype=None):
        _check_padding_mode(padding_mode)
        kh, kw = pair(kernel_size, "ConvTranspose2d", "kernel_size")
        self.output_padding, self.groups = output_padding, groups
        # PyTorch's fan_in for a transposed conv weight (C_in, C_out/g, kh, kw) is its dim 1 * k
        super().__init__((in_channels, out_channels // groups, kh, kw), (out_channels,),
                         out_channels // groups * kh * kw, stride, padding, dilation, bias,
                         device, dtype)

    def forward(self, x):
        return conv_transpose2d(x, self.weight, self.bias, self.stride, self.padding,
                                self.output_padding, self.groups, self.dilation)


class DepthwiseConv2d(_ConvBase):
    """torch.nn.Conv2d(in_channels, out_channels, kernel_size, groups=in_channels) run by
    convcore's depthwise kernel; out_channels is a multiple of in_channels (the depth
    multiplier). weight (out_channels, 1, kh, kw): a state_dict of that nn.Conv2d loads as is."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1,
                 bias=True, padding_mode="zeros", device=None, dtype=None):
        _check_padding_mode(padding_mode)
        if in_channels <= 0 or out_channels % in_channels:
            raise ValueError(f"out_channels={out_channels} must be a multiple of "
                             f"in_channels={in_channels}")
        kh, kw = pair(kernel_size, "DepthwiseConv2d", "kernel_size")
        super().__init__((out_channels, 1, kh, kw), (out_channels,), kh * kw, stride, padding,
                         dilation, bias, device, dtype)

    def forward(self, x):
        return depthwise_conv2d(x, self.weight, self.bias, self.stride, self.padding,
                                self.dilation)


class SeparableConv2d(nn.Module):
    """Depthwise separable convolution (MobileNet / Xception): depthwise kernel_size conv with
    depth_multiplier filters per input channel, then a 1x1 conv to out_channels (bias after it).
    Parameters: weight_depthwise (C*m, 1, kh, kw), weight_pointwise (K, C*m, 1, 1), bias (K,)."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1,
                 bias=True, depth_multiplier=1, device=None, dtype=None):
        super().__init__()
        factory = {"device": device, "dtype": dtype}
        kh, kw = pair(kernel_size, "SeparableConv2d", "kernel_size")
        mid = in_channels * depth_multiplier
        self.stride, self.padding, self.dilation = stride, padding, dilation
        self.weight_depthwise = nn.Parameter(torch.empty((mid, 1, kh, kw), **factory))
        self.weight_pointwise = nn.Parameter(torch.empty((out_channels, mid, 1, 1), **factory))
        self.bias = nn.Parameter(torch.empty((out_channels,), **factory)) if bias else None
        self.reset_parameters()

    def reset_parameters(self):
        _init_uniform(self.weight_depthwise, None, self.weight_depthwise[0].numel())
        _init_uniform(self.weight_pointwise, self.bias, self.weight_pointwise[0].numel())

    def forward(self, x):
        return separable_conv2d(x, self.weight_depthwise, self.weight_pointwise, self.bias,
                                self.stride, self.padding, self.dilation)


class SepConv1d(nn.Module):
    """A depthwise kh x kw convolution with rank-1 kernels, run as a column pass then a row
    pass (kh + kw multiply-adds per output instead of kh * kw). Parameters weight_col (C, kh),
    weight_row (C, kw), bias (C,). `SepConv1d.from_depthwise(weight, ...)` factors an existing
    depthwise kernel (C, 1, kh, kw) when it is rank 1 (ValueError otherwise)."""

    def __init__(self, channels, kernel_size, stride=1, padding=0, dilation=1, bias=True,
                 device=None, dtype=None):
        super().__init__()
        factory = {"device": device, "dtype": dtype}
        kh, kw = pair(kernel_size, "SepConv1d", "kernel_size")
        self.stride, self.padding, self.dilation = stride, padding, dilation
        self.weight_col = nn.Parameter(torch.empty((channels, kh), **factory))
        self.weight_row = nn.Parameter(torch.empty((channels, kw), **factory))
        self.bias = nn.Parameter(torch.empty((channels,), **factory)) if bias else None
        self.reset_parameters()

    def reset_parameters(self):
        # each factor U(-1/sqrt(k), +): the product kernel then has the scale of a kh*kw
        # depthwise kernel under nn.Conv2d's default
        _init_uniform(self.weight_col, None, self.weight_col.shape[1])
        _init_uniform(self.weight_row, self.bias, self.weight_row.shape[1])

    @classmethod
    def from_depthwise(cls, weight, bias=None, stride=1, padding=0, dilation=1, rtol=1e-6):
        """A SepConv1d computing the depthwise conv with kernel `weight` (C, 1, kh, kw)."""
        w_col, w_row = F.rank1_factor(weight.detach().cpu().numpy(), rtol=rtol)
        channels, kh, kw = weight.shape[0], weight.shape[2], weight.shape[3]
        module = cls(channels, (kh, kw), stride, padding, dilation, bias is not None,
                     device=weight.device, dtype=weight.dtype)
        with torch.no_grad():
            module.weight_col.copy_(torch.from_numpy(w_col))
            module.weight_row.copy_(torch.from_numpy(w_row))
            if bias is not None:
                module.bias.copy_(bias)
        return module

    def forward(self, x):
        return sepconv2d_1d(x, self.weight_col, self.weight_row, self.bias, self.stride,
                            self.padding, self.dilation)


if HAS_LOCAL:
    class LocallyConnected2d(_ConvBase):
        """Unshared convolution: one (K, C, kh, kw) kernel per output position. The output
        extent depends on the input's, so input_size=(H, W) is a constructor argument.
        weight (out_h, out_w, K, C, kh, kw), bias (out_h, out_w, K)."""

        def __init__(self, in_channels, out_channels, kernel_size, input_size, stride=1,
                     padding=0, dilation=1, bias=True, device=None, dtype=None):
            op = "LocallyConnected2d"
            kh, kw = pair(kernel_size, op, "kernel_size")
            h, w = pair(input_size, op, "input_size")
            s, d = pair(stride, op, "stride"), pair(dilation, op, "dilation")
            pad = padding4(padding, (kh, kw), s, d, op)
            out_h = _out_extent(h, pad[0], pad[1], kh, s[0], d[0])
            out_w = _out_extent(w, pad[2], pad[3], kw, s[1], d[1])
            if out_h <= 0 or out_w <= 0:
                raise ValueError(f"{op}: input_size={input_size} is smaller than the dilated "
                                 f"kernel {kernel_size} after padding {padding}")
            super().__init__((out_h, out_w, out_channels, in_channels, kh, kw),
                             (out_h, out_w, out_channels), in_channels * kh * kw, stride,
                             padding, dilation, bias, device, dtype)

        def forward(self, x):
            return locally_connected2d(x, self.weight, self.bias, self.stride, self.padding,
                                       self.dilation)

    class TiledConv2d(_ConvBase):
        """Tiled convolution: tile_size=(t_h, t_w) kernels cycled over the output positions.
        weight (t_h, t_w, K, C, kh, kw), bias (t_h, t_w, K)."""

        def __init__(self, in_channels, out_channels, kernel_size, tile_size, stride=1,
                     padding=0, dilation=1, bias=True, device=None, dtype=None):
            kh, kw = pair(kernel_size, "TiledConv2d", "kernel_size")
            th, tw = pair(tile_size, "TiledConv2d", "tile_size")
            super().__init__((th, tw, out_channels, in_channels, kh, kw), (th, tw, out_channels),
                             in_channels * kh * kw, stride, padding, dilation, bias, device,
                             dtype)

        def forward(self, x):
            return tiled_conv2d(x, self.weight, self.bias, self.stride, self.padding,
                                self.dilation)


class _PoolBase(nn.Module):
    def extra_repr(self):
        return ", ".join(f"{k}={v}" for k, v in vars(self).items() if not k.startswith("_")
                         and k != "training")


class MaxPool2d(_PoolBase):
    """Drop-in for torch.nn.MaxPool2d."""

    def __init__(self, kernel_size, stride=None, padding=0, dilation=1, return_indices=False,
                 ceil_mode=False):
        super().__init__()
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding
        self.dilation, self.return_indices, self.ceil_mode = dilation, return_indices, ceil_mode

    def forward(self, x):
        return max_pool2d(x, self.kernel_size, self.stride, self.padding, self.dilation,
                          self.ceil_mode, self.return_indices)


class AvgPool2d(_PoolBase):
    """Drop-in for torch.nn.AvgPool2d."""

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False,
                 count_include_pad=True, divisor_override=None):
        super().__init__()
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding
        self.ceil_mode, self.count_include_pad = ceil_mode, count_include_pad
        self.divisor_override = divisor_override

    def forward(self, x):
        return avg_pool2d(x, self.kernel_size, self.stride, self.padding, self.ceil_mode,
                          self.count_include_pad, self.divisor_override)


class AdaptiveAvgPool2d(_PoolBase):
    """Drop-in for torch.nn.AdaptiveAvgPool2d."""

    def __init__(self, output_size):
        super().__init__()
        self.output_size = output_size

    def forward(self, x):
        return adaptive_avg_pool2d(x, self.output_size)
