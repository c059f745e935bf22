"""The depthwise kernels (csrc/cpu/depthwise_impl.inc) at every SIMD level this CPU has, on output
widths around each vector width (4, 8, 16 lanes), against the float64 NumPy reference: small
integers make float32 forward and both gradients exact, so any indexing slip shows as a mismatch.
Random-float cases cover the rest; results must be bit-identical run to run."""
import itertools

import numpy as np
import pytest

import convcore
import convcore.functional as F

from cases import randn, small_ints
from isa import forced_isa
from reference import assert_close, conv2d as ref_conv2d, conv2d_backward as ref_conv2d_backward

ISAS = ["scalar", "avx2", "avx512"]
# (kernel, stride, pads (t, b, l, r), dilation, multiplier): 3x3/5x5/7x7 as in the bench, stride 2,
# asymmetric and zero padding, padding beyond the kernel (the scatter path), dilation, multiplier 2.
GEOMETRIES = [
    ((3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 1),
    ((3, 3), (2, 2), (1, 1, 1, 1), (1, 1), 1),
    ((5, 5), (1, 1), (2, 2, 2, 2), (1, 1), 1),
    ((5, 5), (2, 2), (2, 1, 0, 2), (1, 1), 1),
    ((7, 7), (1, 1), (3, 3, 3, 3), (1, 1), 1),
    ((3, 3), (1, 1), (0, 0, 0, 0), (2, 2), 2),
    ((3, 5), (1, 2), (3, 1, 5, 0), (1, 1), 1),
    ((3, 3), (3, 1), (1, 2, 0, 1), (2, 1), 1),
]
WIDTHS = [1, 3, 4, 5, 7, 8, 9, 14, 15, 16, 17, 31, 33]


def _out_w(width, k, s, pl, pr, d):
    return (width + pl + pr - d * (k - 1) - 1) // s + 1


def _check(x, w, b, dy, stride, pads, dilation, groups, exact, what):
    kw = dict(stride=stride, padding=pads, dilation=dilation, groups=groups, algo="depthwise")
    y = F.conv2d(x, w, b, **kw)
    dx, dw, db = F.conv2d_backward(dy, x, w, **kw)
    y_ref = ref_conv2d(x, w, b, stride, pads, dilation, groups)
    dx_ref, dw_ref, _ = ref_conv2d_backward(dy, x, w, stride, pads, dilation, groups)
    tol = 0.0 if exact else 1e-5
    assert_close(y, y_ref, f"forward {what}", tol)
    assert_close(dx, dx_ref, f"dx {what}", tol)
    assert_close(dw, dw_ref, f"dw {what}", tol)
    return y, dx, dw


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("geometry", range(len(GEOMETRIES)))
def test_widths_around_the_vector_exact(rng, isa, geometry):
    (kh, kw), stride, pads, dilation, mult = GEOMETRIES[geometry]
    c = 3  # not a multiple of any vector width
    with forced_isa(isa):
        for out_w in WIDTHS:
            # the input width giving this output width (when one exists)
            width = next((v for v in range(1, 80)
                          if _out_w(v, kw, stride[1], pads[2], pads[3], dilation[1]) == out_w), None)
            height = 2 * kh + 1
            if width is None:
                continue
            x = small_ints(rng, (2, c, height, width), np.float32)
            w = small_ints(rng, (c * mult, 1, kh, kw), np.float32)
            b = small_ints(rng, (c * mult,), np.float32)
            out_h = (height + pads[0] + pads[1] - dilation[0] * (kh - 1) - 1) // stride[0] + 1
            dy = small_ints(rng, (2, c * mult, out_h, out_w), np.float32)
            _check(x, w, b, dy, stride, pads, dilation, c, True,
                   f"isa={isa} {GEOMETRIES[geometry]} x={x.shape}")


@pytest.mark.parametrize("isa", ISAS)
def test_stride1_rows_rolled_in_registers_exact(rng, isa):
    # Stride-1 3x3 maps keep three padded rows' taps in registers with the row loop unrolled by
    # three (AVX-512: depthwise_small_avx512.cpp, plane_rolling for a padded row in one vector,
    # wide_plane_rolling for 2-8): every remainder of out_h by 3 (and out_h of 1 and 2), every left
    # pad, zero and asymmetric vertical pads, padded rows of 1, 2 and 4 vectors, forward and the
    # input gradient (the same kernels over dy, turned), exact on small ints.
    for height, padded_width in itertools.product((1, 2, 3, 4, 5, 9, 10, 11, 14), (14, 30, 62)):
        for pads in ((1, 1, 1, 1), (0, 0, 0, 0), (2, 2, 2, 2), (0, 2, 1, 0), (2, 0, 0, 1)):
            width = padded_width - pads[2] - pads[3]
            out_h = height + pads[0] + pads[1] - 2
            if out_h < 1:
                continue
            c = 3
            x = small_ints(rng, (2, c, height, width), np.float32)
            w = small_ints(rng, (c, 1, 3, 3), np.float32)
            b = small_ints(rng, (c,), np.float32)
            dy = small_ints(rng, (2, c, out_h, width + pads[2] + pads[3] - 2), np.float32)
            with forced_isa(isa):
                _check(x, w, b, dy, (1, 1), pads, (1, 1), c, True,
                       f"isa={isa} h={height} pads={pads}")


@pytest.mark.parametrize("isa", ISAS)
def test_two_planes_a_vector_exact(rng, isa):
    # Maps up to 7 wide at stride 1 (pads up to 1) put two planes in one AVX-512 vector
    # (depthwise_small_avx512.cpp, plane_pair_rolling): every width 1-7 and every left/right pad,
    # heights 1-9 with vertical pads 0-2, an odd number of planes (the last alone) and an even one,
    # 2 and 3 channels (planes of neighbouring channels and images paired), forward and the input
    # gradient (the same kernel over dy, turned, where its geometry fits), exact on small ints.
    for width, (pl, pr), height, (pt, pb), (n, c) in itertools.product(
            range(1, 8), ((1, 1), (0, 0), (1, 0), (0, 1)), (1, 2, 5, 7, 9), ((1, 1), (0, 2)),
            ((1, 2), (3, 3), (1, 3), (2, 3))):
        out_h, out_w = height + pt + pb - 2, width + pl + pr - 2
        if out_h < 1 or out_w < 1:
            continue
        x = small_ints(rng, (n, c, height, width), np.float32)
        w = small_ints(rng, (c, 1, 3, 3), np.float32)
        b = small_ints(rng, (c,), np.float32)
        dy = small_ints(rng, (n, c, out_h, out_w), np.float32)
        with forced_isa(isa):
            _check(x, w, b, dy, (1, 1), (pt, pb, pl, pr), (1, 1), c, True,
                   f"isa={isa} x={x.shape} pads={(pt, pb, pl, pr)}")


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("shape", [(1, 9, 7, 7), (2, 13, 14, 14), (1, 5, 28, 29), (1, 3, 57, 40)])
def test_random_floats_and_determinism(rng, isa, shape):
    n, c, h, width = shape
    with forced_isa(isa):
        for stride in (1, 2):
            x = randn(rng, shape, np.float32)
            w = randn(rng, (c, 1, 3, 3), np.float32)
            b = randn(rng, (c,), np.float32)
            out = ((h + 2 - 3) // stride + 1, (width + 2 - 3) // stride + 1)
            dy = randn(rng, (n, c) + out, np.float32)
            first = _check(x, w, b, dy, (stride, stride), (1, 1, 1, 1), (1, 1), c, False,
                           f"isa={isa} x={shape} stride={stride}")
            again = _check(x, w, b, dy, (stride, stride), (1, 1, 1, 1), (1, 1), c, False,
                           f"isa={isa} x={shape} stride={stride}")
            for a, r in zip(first, again):
                np.testing.assert_array_equal(a, r)


def test_float64_gradients_by_finite_differences(rng):
    from reference import linear_numeric_grad
    x = randn(rng, (1, 2, 6, 9), np.float64)
    w = randn(rng, (2, 1, 3, 3), np.float64)
    kw = dict(stride=(2, 1), padding=(1, 0, 2, 1), dilation=(1, 2), groups=2, algo="depthwise")
    dy = randn(rng, F.conv2d(x, w, **kw).shape, np.float64)
    dx, dw, _ = F.conv2d_backward(dy, x, w, **kw)
    assert_close(dx, linear_numeric_grad(lambda: float(np.sum(F.conv2d(x, w, **kw) * dy)), x), "dx", 1e-7)
    assert_close(dw, linear_numeric_grad(lambda: float(np.sum(F.conv2d(x, w, **kw) * dy)), w), "dw", 1e-7)


def test_same_results_on_one_and_two_threads(rng):
    x = randn(rng, (2, 6, 30, 31), np.float32)
    w = randn(rng, (6, 1, 5, 5), np.float32)
    dy = randn(rng, (2, 6, 30, 31), np.float32)
    old = convcore.get_num_threads()
    results = []
    try:
        for threads in (1, 2):
            convcore.set_num_threads(threads)
            y = F.conv2d(x, w, padding=2, groups=6, algo="depthwise")
            results.append((y,) + F.conv2d_backward(dy, x, w, padding=2, groups=6,
                                                     algo="depthwise", need=("x", "w")))
    finally:
        convcore.set_num_threads(old)
    for a, b in zip(*results):
        if a is not None:
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("isa", ISAS)
def test_small_maps_channels_in_lanes_exact(rng, isa):
    """Rows of at most half a vector run with channels in the lanes (forward, stride-1 input
    gradient, weight gradient): 37 channels (two full blocks of 16 and a partial one at avx512),
    with and without bias, strides 1 and 2, a 5x5 kernel with asymmetric padding, and a
    multiplier of 2 (which keeps the row kernels)."""
    with forced_isa(isa):
        for (c, h, wd, k, stride, pads, mult, with_bias) in [
                (37, 7, 7, 3, (1, 1), (1, 1, 1, 1), 1, True),
                (37, 8, 5, 3, (2, 2), (1, 1, 1, 1), 1, False),
                (20, 6, 4, 5, (1, 2), (2, 1, 0, 2), 1, True),
                (9, 5, 6, 3, (1, 1), (1, 1, 1, 1), 2, True),
                # pad right past the kernel: no flipped forward for the input gradient
                (5, 4, 3, 3, (1, 1), (0, 2, 0, 3), 1, True),
                # stride-1 rows of 9-16 outputs: channel lanes for the weight gradient only
                # (AVX-512), the row kernels for the rest
                (37, 14, 14, 3, (1, 1), (1, 1, 1, 1), 1, True),
                (19, 9, 12, 5, (1, 1), (2, 1, 2, 2), 1, False)]:
            x = small_ints(rng, (2, c, h, wd), np.float32)
            w = small_ints(rng, (c * mult, 1, k, k), np.float32)
            b = small_ints(rng, (c * mult,), np.float32) if with_bias else None
            kw = dict(stride=stride, padding=pads, groups=c)
            y = F.conv2d(x, w, b, **kw, algo="depthwise")
            np.testing.assert_array_equal(y, F.conv2d(x, w, b, **kw, algo="reference"))
            dy = small_ints(rng, y.shape, np.float32)
            got = F.conv2d_backward(dy, x, w, **kw, need=("x", "w"), algo="depthwise")
            want = F.conv2d_backward(dy, x, w, **kw, need=("x", "w"), algo="reference")
            np.testing.assert_array_equal(got[0], want[0])
            np.testing.assert_array_equal(got[1], want[1])


@pytest.mark.parametrize("stride", [1, 2])
def test_small_maps_in_registers_exact(rng, stride):
    """3x3 maps whose padded rows fit one 512-bit vector (stride 1: up to 16 columns with the
    pads) or two (stride 2: up to 32) run with the plane in registers on AVX-512
    (depthwise_small_avx512.cpp), forward and stride-1 input gradient: every left pad it takes
    (0, 1, 2), asymmetric pads, rows filling the vectors exactly, one-row maps and the tallest
    (40 padded rows); other ISAs run the same cases on their own kernels."""
    limit = 16 * stride
    cases = []
    for pads in [(0, 0, 0, 0), (1, 1, 1, 1), (2, 2, 2, 2), (0, 2, 1, 0), (2, 0, 0, 2), (1, 2, 2, 1)]:
        for width in sorted({3, 5, 7, limit - pads[2] - pads[3] - 1, limit - pads[2] - pads[3]}):
            for height in (1 + max(0, 2 - pads[0] - pads[1]), 9, 40 - pads[0] - pads[1]):
                if width + pads[2] + pads[3] >= 3:
                    cases.append((pads, width, height))
    for isa in ISAS:
        with forced_isa(isa):
            for pads, width, height in cases:
                c = 5
                x = small_ints(rng, (2, c, height, width), np.float32)
                w = small_ints(rng, (c, 1, 3, 3), np.float32)
                b = small_ints(rng, (c,), np.float32)
                out_h = (height + pads[0] + pads[1] - 3) // stride + 1
                out_w = (width + pads[2] + pads[3] - 3) // stride + 1
                dy = small_ints(rng, (2, c, out_h, out_w), np.float32)
                _check(x, w, b, dy, (stride, stride), pads, (1, 1), c, True,
                       f"isa={isa} x={x.shape} pads={pads} stride={stride}")


@pytest.mark.parametrize("stride", [1, 2])
def test_channels_in_lanes_exact(rng, stride):
    """3x3 maps run with a vector of channels in the lanes (depthwise_lanes_impl.inc: planes
    transposed into a channel-last tile, outputs transposed back a vector at a time): on AVX-512
    maps padded to at most 20 x 20 with outputs up to 8 wide and 16+ channels, on AVX2 maps up to
    112 outputs wide and 8+ channels. Forward, input gradient and weight gradient, whole and
    partial blocks of channels, output counts that do and do not fill the last vector, every
    pad; maps past a limit take the other kernels."""
    cases = [(7, 7), (3, 9), (5, 5), (8, 8), (1, 6), (15, 14), (6, 18), (16, 17), (60, 4), (113, 3)]
    for isa in ISAS:
        with forced_isa(isa):
            for pads in [(1, 1, 1, 1), (0, 2, 2, 0), (2, 2, 0, 0), (0, 0, 1, 1), (2, 1, 1, 2)]:
                for width, height in cases:
                    for c in (9, 16, 35):
                        out_h = (height + pads[0] + pads[1] - 3) // stride + 1
                        out_w = (width + pads[2] + pads[3] - 3) // stride + 1
                        if out_h < 1 or out_w < 1:
                            continue
                        x = small_ints(rng, (2, c, height, width), np.float32)
                        w = small_ints(rng, (c, 1, 3, 3), np.float32)
                        b = small_ints(rng, (c,), np.float32)
                        dy = small_ints(rng, (2, c, out_h, out_w), np.float32)
                        _check(x, w, b, dy, (stride, stride), pads, (1, 1), c, True,
                               f"isa={isa} x={x.shape} pads={pads} stride={stride}")


@pytest.mark.parametrize("stride", [1, 2])
def test_wide_rows_in_registers_exact(rng, stride):
    """3x3 rows of up to 8 vectors (128 padded columns) on AVX-512 (depthwise_small_avx512.cpp):
    stride 1's forward, input gradient (the turned forward) and weight gradient from a rolling
    window of three rows' tap vectors, stride 2's input gradient from a window of three rows of
    sums; at every left pad, odd and even heights (a last padded row no dy row reaches), rows
    filling the vectors exactly or by one column, and one past the limit (the row kernels). Rows
    of 5-8 output vectors take stride 1's weight gradient in strips of up to 4 (70, 90 and 112
    wide: a last strip of 1, 2 or 3)."""
    for isa in ISAS:
        with forced_isa(isa):
            for pads in [(0, 0, 0, 0), (1, 1, 1, 1), (2, 2, 2, 2), (2, 0, 1, 2)]:
                extra = pads[2] + pads[3]
                for width in (17, 32 - extra, 33 - extra, 60, 70, 90, 112, 128 - extra,
                              129 - extra, 131):
                    for height in (7, 8):
                        c = 3
                        x = small_ints(rng, (2, c, height, width), np.float32)
                        w = small_ints(rng, (c, 1, 3, 3), np.float32)
                        b = small_ints(rng, (c,), np.float32)
                        out = ((height + pads[0] + pads[1] - 3) // stride + 1,
                               (width + extra - 3) // stride + 1)
                        dy = small_ints(rng, (2, c) + out, np.float32)
                        _check(x, w, b, dy, (stride, stride), pads, (1, 1), c, True,
                               f"isa={isa} x={x.shape} pads={pads} stride={stride}")
