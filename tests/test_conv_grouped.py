"""The float32 convolution with pixels in the vector lanes (csrc/cpu/conv_grouped_impl.inc), forced
on for every shape it applies to: 1 to 15 output channels per group and one group of 16-20 (one or
two channel blocks per tile, unequal blocks), output widths below, at and between vector widths (a row's last
segment partly filled), tiles of 1 to 12 segments that span output rows, stride along the height,
dilation, asymmetric padding, no bias; every ISA; thread counts; and calls of different shapes one
after another (the thread's padded-planes buffer is reused). The forward and the stride-1 input
gradient (a forward over dY with the kernels turned) run it."""
import contextlib

import numpy as np
import pytest

import convcore.functional as F
from convcore import _cpu

from isa import forced_isa
from cases import conv_arrays_f32, reference_conv_args
from reference import assert_close, conv2d as ref_conv2d, conv2d_backward as ref_backward


@contextlib.contextmanager
def grouped_always():
    before = _cpu._set_conv_grouped(1)
    try:
        yield
    finally:
        _cpu._set_conv_grouped(before)


# (n, c, h, w, k, (kh, kw), stride, pads, dilation, groups, with_bias)
SHAPES = [
    (2, 8, 5, 5, 4, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 4, True),      # 1 output channel a group
    (1, 8, 9, 13, 8, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 2, True),     # 4 a group, 13 wide
    (2, 6, 7, 16, 9, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 3, False),    # 3 a group, 16 wide
    (1, 10, 6, 17, 10, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 2, True),   # 5 a group, 17 wide
    (2, 14, 4, 28, 14, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 2, True),   # 7 a group, 28 wide
    (1, 16, 8, 8, 16, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 2, True),    # 8 a group: one block
    (1, 6, 5, 9, 18, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 2, True),     # 9 a group: blocks 5 + 4
    (2, 24, 6, 11, 24, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 2, False),  # 12 a group: 6 + 6
    (1, 30, 5, 33, 30, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 2, True),   # 15 a group, 33 wide
    (2, 12, 11, 23, 12, (3, 3), (2, 1), (1, 0, 2, 1), (1, 1), 3, True),  # stride 2 along the height
    (1, 8, 11, 10, 8, (3, 2), (1, 1), (2, 1, 0, 3), (2, 3), 2, True),    # dilation, asymmetric
    (2, 32, 9, 9, 32, (5, 5), (1, 1), (2, 2, 2, 2), (1, 1), 8, True),    # 5x5, 8 groups of 4
    (1, 8, 12, 12, 16, (1, 1), (1, 1), (0, 0, 0, 0), (1, 1), 4, True),   # 1x1
    (1, 4, 3, 40, 8, (1, 7), (1, 1), (0, 0, 3, 3), (1, 1), 2, True),     # a 1x7 row kernel
    (3, 64, 7, 7, 64, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 16, True),   # ResNeXt-like, 7x7 maps
    (3, 1, 9, 28, 16, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 1, True),    # one group: book.conv1
    (2, 3, 8, 32, 20, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 1, False),   # a first layer over RGB
]
IDS = [f"s{i}" for i in range(len(SHAPES))]


@pytest.mark.parametrize("isa", ["scalar", "avx2", "avx512"])
@pytest.mark.parametrize("shape", SHAPES, ids=IDS)
def test_forward_and_input_gradient_against_reference(rng, isa, shape):
    x, w, b, dy, kw = conv_arrays_f32(rng, shape)
    with forced_isa(isa), grouped_always():
        y = F.conv2d(x, w, b, algo="im2col", **kw)
        dx = F.conv2d_backward(dy, x, w, need=("x",), algo="im2col", **kw)[0]
    assert_close(y, ref_conv2d(x, w, b, *reference_conv_args(kw)), f"forward {isa} {shape}", 1e-5)
    assert_close(dx, ref_backward(dy, x, w, *reference_conv_args(kw))[0], f"dx {isa} {shape}", 1e-5)


@pytest.mark.parametrize("isa", ["scalar", "avx2", "avx512"])
@pytest.mark.parametrize("shape", SHAPES, ids=IDS)
def test_small_integers_equal_reference_exactly(rng, isa, shape):
    """Sums of small integers are exact in float32: any difference is an indexing bug."""
    x, w, b, dy, kw = conv_arrays_f32(rng, shape)
    x, w, dy = (rng.integers(-8, 9, size=a.shape).astype(np.float32) for a in (x, w, dy))
    b = None if b is None else rng.integers(-8, 9, size=b.shape).astype(np.float32)
    with forced_isa(isa), grouped_always():
        got = F.conv2d(x, w, b, algo="im2col", **kw)
        dx = F.conv2d_backward(dy, x, w, need=("x",), algo="im2col", **kw)[0]
    np.testing.assert_array_equal(got, F.conv2d(x, w, b, algo="reference", **kw))
    want_dx = F.conv2d_backward(dy, x, w, need=("x",), algo="reference", **kw)[0]
    np.testing.assert_array_equal(dx, want_dx)


def test_identical_for_any_thread_count(rng, threads):
    """Each output is summed by one thread in a fixed order."""
    x, w, b, _, kw = conv_arrays_f32(rng, (5, 32, 9, 21, 32, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 8, True))
    with grouped_always():
        results = []
        for t in (1, 2, 3):
            threads(t)
            results.append(F.conv2d(x, w, b, algo="im2col", **kw))
    for y in results[1:]:
        np.testing.assert_array_equal(y, results[0])


def test_reused_padded_buffer_is_rewritten(rng):
    """A large padded call, then smaller ones with other padding: no border or spare lane of an
    earlier call may leak into a later one."""
    with grouped_always():
        for shape in [(2, 16, 20, 20, 16, (5, 5), (1, 1), (2, 2, 2, 2), (1, 1), 4, True),
                      (1, 6, 6, 7, 6, (3, 3), (1, 1), (0, 2, 1, 0), (1, 1), 3, True),
                      (1, 6, 6, 7, 6, (3, 3), (1, 1), (0, 0, 0, 0), (1, 1), 2, False),
                      (3, 4, 4, 4, 8, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 2, True)]:
            x, w, b, _, kw = conv_arrays_f32(rng, shape)
            assert_close(F.conv2d(x, w, b, algo="im2col", **kw),
                         ref_conv2d(x, w, b, *reference_conv_args(kw)), f"{shape}", 1e-5)


def test_rule_runs_it_by_default_for_small_groups(rng):
    """Under the rule (no override), a ResNeXt-shaped conv and its input gradient still match."""
    x, w, b, dy, kw = conv_arrays_f32(rng, (2, 64, 10, 10, 64, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 16, True))
    before = _cpu._set_conv_grouped(-1)
    try:
        y = F.conv2d(x, w, b, **kw)
        dx = F.conv2d_backward(dy, x, w, need=("x",), **kw)[0]
    finally:
        _cpu._set_conv_grouped(before)
    assert_close(y, ref_conv2d(x, w, b, *reference_conv_args(kw)), "forward", 1e-5)
    assert_close(dx, ref_backward(dy, x, w, *reference_conv_args(kw))[0], "dx", 1e-5)


def test_override_round_trips():
    before = _cpu._set_conv_grouped(1)
    try:
        assert _cpu._set_conv_grouped(0) == 1
        assert _cpu._set_conv_grouped(-1) == 0
        assert _cpu._set_conv_grouped(7) == -1  # anything else: the rule
    finally:
        _cpu._set_conv_grouped(before)
