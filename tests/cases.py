"""Random case generators shared by the op tests (odd sizes, stride > kernel, big and asymmetric
padding, dilation, groups up to depthwise, batch 1, 1x1 images)."""
from dataclasses import dataclass

import numpy as np


@dataclass
class ConvCase:
    n: int
    c: int
    h: int
    w: int
    k: int
    kh: int
    kw: int
    stride: tuple
    pads: tuple  # top, bottom, left, right
    dilation: tuple
    groups: int

    @property
    def x_shape(self):
        return (self.n, self.c, self.h, self.w)

    @property
    def w_shape(self):
        return (self.k, self.c // self.groups, self.kh, self.kw)


def _extent_for(rng, k, d, pad_before, pad_after, stride):
    span = d * (k - 1) + 1
    low = max(1, span - pad_before - pad_after)
    return int(rng.integers(low, low + 3 * stride + 6))


def random_conv_case(rng, depthwise=None):
    """depthwise: None (any groups), True (groups == C), False (groups < C)."""
    kind = rng.integers(0, 4) if depthwise is None else (3 if depthwise else rng.integers(0, 3))
    if kind == 3:
        c = int(rng.integers(1, 7))
        groups = c
        k = c * int(rng.integers(1, 4))
    else:
        groups = int(rng.choice([1, 1, 2, 3]))
        c = groups * int(rng.integers(1, 5))
        k = groups * int(rng.integers(1, 5))
    kh, kw = (int(v) for v in rng.integers(1, 6, size=2))
    stride = tuple(int(v) for v in rng.integers(1, 5, size=2))
    dilation = tuple(int(v) for v in rng.choice([1, 1, 2, 3], size=2))
    pads = [int(v) for v in rng.integers(0, 5, size=4)]
    if rng.random() < 0.3:
        pads = [0, 0, 0, 0]
    h = _extent_for(rng, kh, dilation[0], pads[0], pads[1], stride[0])
    w = _extent_for(rng, kw, dilation[1], pads[2], pads[3], stride[1])
    if rng.random() < 0.1:  # 1x1 images (with a kernel that fits the padding)
        kh = kw = 1
        h = w = 1
    n = int(rng.choice([1, 1, 2, 3]))
    return ConvCase(n, c, h, w, k, kh, kw, stride, tuple(pads), dilation, groups)


def conv_out_shape(case):
    def ext(size, k, s, b, a, d):
        return (size + b + a - d * (k - 1) - 1) // s + 1
    return (case.n, case.k,
            ext(case.h, case.kh, case.stride[0], case.pads[0], case.pads[1], case.dilation[0]),
            ext(case.w, case.kw, case.stride[1], case.pads[2], case.pads[3], case.dilation[1]))


def randn(rng, shape, dtype):
    return rng.standard_normal(shape).astype(dtype)


def small_ints(rng, shape, dtype):
    """Integers in [-8, 8]: every partial sum is exact in float32 while below 2**24."""
    return rng.integers(-8, 9, size=shape).astype(dtype)


def conv_arrays_f32(rng, shape):
    """float32 x, w, bias (or None), dY and the conv2d keyword arguments for a shape written as
    (n, c, h, w, k, (kh, kw), stride, pads, dilation, groups, with_bias)."""
    import convcore.functional as F

    n, c, h, w, k, (kh, kw), stride, pads, dilation, groups, with_bias = shape
    x = rng.standard_normal((n, c, h, w)).astype(np.float32)
    wt = rng.standard_normal((k, c // groups, kh, kw)).astype(np.float32)
    b = rng.standard_normal(k).astype(np.float32) if with_bias else None
    kwargs = dict(stride=stride, padding=pads, dilation=dilation, groups=groups)
    y_shape = F.conv2d(x, wt, **kwargs, algo="reference").shape
    dy = rng.standard_normal(y_shape).astype(np.float32)
    return x, wt, b, dy, kwargs


def reference_conv_args(kw):
    """The positional (stride, padding, dilation, groups) of reference.conv2d for those kwargs."""
    return kw["stride"], kw["padding"], kw["dilation"], kw["groups"]
