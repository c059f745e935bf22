"""The float32 broadcast convolution (csrc/cpu/conv_broadcast_impl.inc), forced on for every
shape it applies to: output channels per group at the vector width and either side of it (one or
two channel vectors per tile, a partial last channel block), output widths that make every tile
width from 1 to the ISA's largest and rows split into unequal tiles, strides 1, 2 and 4 along the
width and 1-3 along the height, dilation, groups, asymmetric padding, no bias; every ISA; thread
counts; and calls of different shapes one after another (the thread's padded-image buffer is
reused). The forward, the stride-1 input gradient (a forward over dY) and the weight gradient
(the same tile turned around, over channel-last copies) run it."""
import contextlib

import numpy as np
import pytest

import convcore.functional as F
from convcore import _cpu

from isa import forced_isa, supported
from cases import conv_arrays_f32, reference_conv_args
from reference import assert_close, conv2d as ref_conv2d, conv2d_backward as ref_backward


@contextlib.contextmanager
def broadcast_always():
    before = _cpu._set_conv_broadcast(1)
    try:
        yield
    finally:
        _cpu._set_conv_broadcast(before)


# (n, c, h, w, k, (kh, kw), stride, pads, dilation, groups, with_bias)
SHAPES = [
    (2, 3, 5, 1, 4, (3, 1), (1, 1), (1, 1, 0, 0), (1, 1), 1, True),      # out_w 1: tiles of 1
    (1, 2, 4, 7, 3, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 1, True),      # k 3 < every vector
    (2, 4, 6, 6, 8, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 1, False),     # k 8: avx2's vector
    (1, 3, 5, 12, 9, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 1, True),     # k 9, out_w 12
    (2, 5, 6, 14, 16, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 1, True),    # k 16: avx512's vector
    (1, 4, 5, 16, 17, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 1, True),    # k 17: two vectors
    (1, 6, 4, 28, 32, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 1, True),    # out_w 28: 14 + 14
    (1, 3, 3, 29, 33, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 1, False),   # k 33, out_w 29 (10+10+9)
    (1, 2, 3, 57, 12, (1, 1), (1, 1), (0, 0, 0, 0), (1, 1), 1, True),    # 1x1, 57 wide
    (2, 6, 9, 8, 10, (3, 3), (2, 2), (1, 1, 1, 1), (1, 1), 2, True),     # groups, stride 2
    (1, 4, 11, 23, 20, (3, 3), (3, 2), (1, 0, 2, 1), (1, 1), 1, True),   # stride 3 x 2, asymmetric
    (2, 3, 17, 41, 18, (5, 5), (2, 4), (2, 2, 2, 2), (1, 1), 1, True),   # stride 4 along the width
    (1, 3, 23, 23, 12, (11, 11), (4, 4), (0, 0, 0, 0), (1, 1), 1, True),  # NIN's 11x11 / 4
    (2, 4, 11, 10, 6, (3, 2), (1, 1), (2, 1, 0, 3), (2, 3), 1, True),    # dilation
    (1, 6, 6, 6, 9, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 3, True),      # 3 groups of 3 channels
    (1, 4, 6, 6, 5, (5, 5), (1, 1), (4, 4, 4, 4), (1, 1), 1, True),      # padding = kernel - 1
    (2, 40, 5, 9, 24, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 1, True),    # C*9 = 360
]
IDS = [f"s{i}" for i in range(len(SHAPES))]


@pytest.mark.parametrize("isa", ["scalar", "avx2", "avx512"])
@pytest.mark.parametrize("shape", SHAPES, ids=IDS)
def test_forward_and_input_gradient_against_reference(rng, isa, shape):
    x, w, b, dy, kw = conv_arrays_f32(rng, shape)
    with forced_isa(isa), broadcast_always():
        y = F.conv2d(x, w, b, algo="im2col", **kw)
        dx, dw, _ = F.conv2d_backward(dy, x, w, need=("x", "w"), algo="im2col", **kw)
    dx_ref, dw_ref, _ = ref_backward(dy, x, w, *reference_conv_args(kw))
    assert_close(y, ref_conv2d(x, w, b, *reference_conv_args(kw)), f"forward {isa} {shape}", 1e-5)
    assert_close(dx, dx_ref, f"dx {isa} {shape}", 1e-5)
    assert_close(dw, dw_ref, f"dw {isa} {shape}", 1e-5)


@pytest.mark.parametrize("shape", SHAPES, ids=IDS)
def test_small_integers_equal_reference_exactly(rng, shape):
    """Sums of small integers are exact in float32: any difference is an indexing bug."""
    x, w, b, dy, kw = conv_arrays_f32(rng, shape)
    x, w, dy = (rng.integers(-8, 9, size=a.shape).astype(np.float32) for a in (x, w, dy))
    b = None if b is None else rng.integers(-8, 9, size=b.shape).astype(np.float32)
    with broadcast_always():
        got = F.conv2d(x, w, b, algo="im2col", **kw)
        dw = F.conv2d_backward(dy, x, w, need=("w",), algo="im2col", **kw)[1]
    np.testing.assert_array_equal(got, F.conv2d(x, w, b, algo="reference", **kw))
    want_dw = F.conv2d_backward(dy, x, w, need=("w",), algo="reference", **kw)[1]
    np.testing.assert_array_equal(dw, want_dw)


def test_every_tile_width(rng):
    """Output widths 1..60 in one row each: every tile width of every ISA, and rows split into
    tiles of two widths."""
    w = rng.standard_normal((20, 3, 1, 3)).astype(np.float32)
    for isa in ("scalar", "avx2", "avx512"):
        if not supported(isa):
            continue
        with forced_isa(isa), broadcast_always():
            for width in range(1, 61):
                x = rng.standard_normal((1, 3, 1, width)).astype(np.float32)
                y = F.conv2d(x, w, padding=(0, 1), algo="im2col")
                assert_close(y, ref_conv2d(x, w, None, (1, 1), (0, 0, 1, 1), (1, 1), 1),
                             f"{isa} width {width}", 1e-5)


def test_row_ends_in_padding_exact(rng):
    """Outputs at a row's ends whose windows reach into the left or right padding: every pad from
    0 to past the kernel, on each side alone and both, strides 1 and 2, dilation, rows 1 to 40
    wide; small integers, so any tap left out or counted twice shows."""
    for isa in ("scalar", "avx2", "avx512"):
        if not supported(isa):
            continue
        with forced_isa(isa), broadcast_always():
            for kw, stride, dil in ((3, 1, 1), (5, 1, 1), (7, 2, 1), (3, 1, 2), (5, 2, 1)):
                for left, right in ((2, 2), (3, 0), (0, 4), (1, 3), (6, 6)):
                    for width in (1, 2, 5, 14, 23, 40):
                        x = rng.integers(-4, 5, size=(2, 3, 3, width)).astype(np.float32)
                        w = rng.integers(-4, 5, size=(20, 3, 2, kw)).astype(np.float32)
                        kw_args = dict(stride=(1, stride), padding=(1, 0, left, right),
                                       dilation=(1, dil))
                        try:
                            want = F.conv2d(x, w, algo="reference", **kw_args)
                        except ValueError:  # no output column for this width
                            continue
                        got = F.conv2d(x, w, algo="im2col", **kw_args)
                        what = f"{isa} kw={kw} s={stride} d={dil} pads={left},{right} w={width}"
                        np.testing.assert_array_equal(got, want, err_msg=what)


def test_identical_for_any_thread_count(rng, threads):
    """Each output row is summed by one thread in a fixed order."""
    x, w, b, _, kw = conv_arrays_f32(rng, (5, 20, 9, 13, 40, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 1, True))
    with broadcast_always():
        results = []
        for t in (1, 2, 3):
            threads(t)
            results.append(F.conv2d(x, w, b, algo="im2col", **kw))
    for y in results[1:]:
        np.testing.assert_array_equal(y, results[0])


def test_weight_gradient_repeats_exactly_at_each_thread_count(rng, threads):
    """Threads split the images; their partial sums are added in thread order."""
    x, w, _, dy, kw = conv_arrays_f32(rng, (7, 6, 10, 9, 20, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 2, False))
    with broadcast_always():
        for t in (1, 2, 3):
            threads(t)
            first = F.conv2d_backward(dy, x, w, need=("w",), algo="im2col", **kw)[1]
            again = F.conv2d_backward(dy, x, w, need=("w",), algo="im2col", **kw)[1]
            np.testing.assert_array_equal(first, again)
            assert_close(first, ref_backward(dy, x, w, *reference_conv_args(kw))[1], f"dw threads={t}", 1e-5)


def test_reused_padded_buffer_is_rewritten(rng):
    """A large padded call, then smaller ones with other padding: no border of an earlier call
    may leak into a later one."""
    with broadcast_always():
        for shape in [(2, 8, 20, 20, 16, (5, 5), (1, 1), (2, 2, 2, 2), (1, 1), 1, True),
                      (1, 3, 6, 7, 5, (3, 3), (1, 1), (0, 2, 1, 0), (1, 1), 1, True),
                      (1, 3, 6, 7, 5, (3, 3), (1, 1), (0, 0, 0, 0), (1, 1), 1, False),
                      (3, 2, 4, 4, 9, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 1, True)]:
            x, w, b, _, kw = conv_arrays_f32(rng, shape)
            assert_close(F.conv2d(x, w, b, algo="im2col", **kw),
                         ref_conv2d(x, w, b, *reference_conv_args(kw)), f"{shape}", 1e-5)


def test_rule_and_override():
    """The rule runs it for strides 1, 2 and 4 along the width; the hook's modes round-trip."""
    before = _cpu._set_conv_broadcast(1)
    try:
        assert _cpu._set_conv_broadcast(0) == 1
        assert _cpu._set_conv_broadcast(-1) == 0
        assert _cpu._set_conv_broadcast(7) == -1  # anything else: the rule
    finally:
        _cpu._set_conv_broadcast(before)
