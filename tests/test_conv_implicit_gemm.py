"""The float32 implicit-GEMM im2col kernels (csrc/cpu/conv_implicit_gemm.cpp) around their tiling:
output channels at each micro-kernel's MR-1, MR, MR+1; batch x output positions at NR-1, NR, NR+1
and panels that straddle two images; K (C/groups*kh*kw, or the batch's positions for the weight
gradient) over one K block; groups, stride 2, dilation, padding; every ISA; and thread counts.
The forward (and the stride-1 input gradient) runs the broadcast kernel where its rule says so
(tests/test_conv_broadcast.py); here both the rule and the packed-B path alone ("packed") run."""
import contextlib

import numpy as np
import pytest

import convcore.functional as F
from convcore import _cpu

from isa import forced_isa
from reference import assert_close, conv2d as ref_conv2d, conv2d_backward as ref_backward

# (n, c, h, w, k, (kh, kw), stride, pads, dilation, groups): each line names the edge it covers
SHAPES = [
    (1, 3, 5, 7, 3, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 1),     # k = MR-1 of the 4-row tile
    (2, 3, 6, 5, 4, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 1),     # k = MR (scalar 4x8)
    (1, 2, 7, 9, 5, (3, 3), (1, 1), (0, 2, 1, 0), (1, 1), 1),     # k = MR+1, asymmetric pads
    (3, 4, 7, 7, 6, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 1),     # k = 6; 3 x 49 columns straddle
    (2, 5, 4, 4, 7, (2, 2), (1, 1), (0, 0, 0, 0), (1, 1), 1),     # k = 7, no padding (no copy of x)
    (1, 2, 1, 31, 13, (1, 3), (1, 1), (0, 0, 1, 1), (1, 1), 1),   # 31 columns: NR-1 of 32
    (1, 2, 1, 32, 14, (1, 3), (1, 1), (0, 0, 1, 1), (1, 1), 1),   # 32 columns, k = 14
    (1, 2, 1, 33, 15, (1, 3), (1, 1), (0, 0, 1, 1), (1, 1), 1),   # 33 columns, k = 15
    (3, 2, 1, 5, 16, (1, 3), (1, 1), (0, 0, 1, 1), (1, 1), 1),    # 15 columns over 3 images: NR-1 of 16
    (1, 2, 4, 4, 17, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 1),    # 16 columns, k = 17
    (2, 6, 9, 8, 8, (3, 3), (2, 2), (1, 1, 1, 1), (1, 1), 2),     # groups, stride 2
    (2, 4, 11, 10, 6, (3, 2), (1, 2), (2, 1, 0, 3), (2, 3), 1),   # dilation, stride 1 x 2
    (1, 3, 12, 12, 9, (3, 3), (3, 3), (0, 0, 0, 0), (1, 1), 3),   # stride = kernel, groups
    (1, 4, 6, 6, 5, (5, 5), (1, 1), (4, 4, 4, 4), (1, 1), 1),     # padding = kernel - 1 (full)
    (1, 5, 5, 5, 3, (3, 3), (1, 1), (3, 0, 0, 3), (1, 1), 1),     # padding > dilated kernel - 1
    (2, 48, 6, 5, 20, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 1),   # C*9 = 432 > one K block
    (7, 3, 13, 11, 10, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 1),  # 1001 positions: several K blocks
]


def _arrays(rng, shape):
    n, c, h, w, k, (kh, kw), stride, pads, dilation, groups = shape
    x = rng.standard_normal((n, c, h, w)).astype(np.float32)
    wt = rng.standard_normal((k, c // groups, kh, kw)).astype(np.float32)
    b = rng.standard_normal(k).astype(np.float32)
    kwargs = dict(stride=stride, padding=pads, dilation=dilation, groups=groups)
    y_shape = F.conv2d(x, wt, **kwargs, algo="reference").shape
    dy = rng.standard_normal(y_shape).astype(np.float32)
    return x, wt, b, dy, kwargs


def _check_against_reference(x, w, b, dy, kw, label):
    ref_args = (kw["stride"], kw["padding"], kw["dilation"], kw["groups"])
    y = F.conv2d(x, w, b, algo="im2col", **kw)
    assert_close(y, ref_conv2d(x, w, b, *ref_args), f"forward {label}", 1e-5)
    dx, dw, _ = F.conv2d_backward(dy, x, w, need=("x", "w"), algo="im2col", **kw)
    dx_ref, dw_ref, _ = ref_backward(dy, x, w, *ref_args)
    assert_close(dx, dx_ref, f"dx {label}", 1e-5)
    assert_close(dw, dw_ref, f"dw {label}", 1e-5)


@contextlib.contextmanager
def forward_path(name):
    """"rule": the shape rule picks broadcast or packed-B; "packed": the packed-B GEMM always."""
    before = _cpu._set_conv_broadcast(0 if name == "packed" else -1)
    try:
        yield
    finally:
        _cpu._set_conv_broadcast(before)


@pytest.mark.parametrize("path", ["rule", "packed"])
@pytest.mark.parametrize("isa", ["scalar", "avx2", "avx512"])
@pytest.mark.parametrize("shape", SHAPES, ids=[f"s{i}" for i in range(len(SHAPES))])
def test_tile_edges_against_reference(rng, isa, shape, path):
    x, w, b, dy, kw = _arrays(rng, shape)
    with forced_isa(isa), forward_path(path):
        _check_against_reference(x, w, b, dy, kw, f"{isa} {path} {shape}")


@pytest.mark.parametrize("shape", SHAPES, ids=[f"s{i}" for i in range(len(SHAPES))])
def test_small_integers_equal_reference_exactly(rng, shape):
    """Sums of small integers are exact in float32: any difference is an indexing bug."""
    x, w, _, dy, kw = _arrays(rng, shape)
    x, w, dy = (rng.integers(-8, 9, size=a.shape).astype(np.float32) for a in (x, w, dy))
    for algo in ("im2col", "direct"):
        np.testing.assert_array_equal(F.conv2d(x, w, algo=algo, **kw),
                                      F.conv2d(x, w, algo="reference", **kw), err_msg=algo)
        got = F.conv2d_backward(dy, x, w, need=("x", "w"), algo=algo, **kw)
        want = F.conv2d_backward(dy, x, w, need=("x", "w"), algo="reference", **kw)
        np.testing.assert_array_equal(got[0], want[0], err_msg=f"dx {algo}")
        np.testing.assert_array_equal(got[1], want[1], err_msg=f"dw {algo}")


@pytest.mark.parametrize("path", ["rule", "packed"])
def test_forward_and_input_gradient_identical_for_any_thread_count(rng, threads, path):
    """Threads split the columns; straddling panels take a side path with the same additions,
    so the forward and the (stride-1) input gradient do not depend on the thread count."""
    # 5 x 81 columns: panel and thread boundaries fall inside images; 150 channels x 9 = 2 K blocks
    x, w, b, dy, kw = _arrays(rng, (5, 150, 9, 9, 13, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 1))
    results = []
    for t in (1, 2, 3):
        threads(t)
        with forward_path(path):
            y = F.conv2d(x, w, b, algo="im2col", **kw)
            dx = F.conv2d_backward(dy, x, w, need=("x",), algo="im2col", **kw)[0]
        results.append((y, dx))
    for y, dx in results[1:]:
        np.testing.assert_array_equal(y, results[0][0])
        np.testing.assert_array_equal(dx, results[0][1])
    _check_against_reference(x, w, b, dy, kw, "150 channels, 5 images")


def test_weight_gradient_repeats_exactly_at_each_thread_count(rng, threads):
    """The weight gradient sums each thread's K blocks, then the partials in thread order."""
    x, w, _, dy, kw = _arrays(rng, (9, 4, 12, 12, 6, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 2))
    for t in (1, 2, 3):
        threads(t)
        first = F.conv2d_backward(dy, x, w, need=("w",), algo="im2col", **kw)[1]
        again = F.conv2d_backward(dy, x, w, need=("w",), algo="im2col", **kw)[1]
        np.testing.assert_array_equal(first, again)
        assert_close(first, ref_backward(dy, x, w, (1, 1), (1, 1, 1, 1), (1, 1), 2)[1],
                     f"dw threads={t}", 1e-5)


# Weight gradients the batched path takes (one GEMM over every image's column matrix; rule in
# conv_implicit_gemm.cpp: groups 1, C*kh*kw >= 64, K >= 32, at most 2048 positions in all, or
# 1x1 kernels on maps up to 256 positions with K >= 128)
BATCHED_SHAPES = [
    (1, 8, 6, 7, 32, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 1),    # one image, 42 positions
    (3, 8, 15, 13, 33, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 1),  # 585 positions: two K blocks
    (2, 16, 9, 8, 40, (3, 3), (2, 1), (2, 0, 1, 1), (1, 2), 1),   # stride, dilation, odd pads
    (2, 64, 5, 5, 128, (1, 1), (1, 1), (0, 0, 0, 0), (1, 1), 1),  # 1x1, K = 128
    (1, 3, 10, 11, 36, (5, 5), (1, 1), (2, 2, 2, 2), (1, 1), 1),  # C = 3: 75 rows
]


@pytest.mark.parametrize("isa", ["scalar", "avx2", "avx512"])
@pytest.mark.parametrize("shape", BATCHED_SHAPES, ids=[f"b{i}" for i in range(len(BATCHED_SHAPES))])
def test_batched_weight_gradient_against_reference(rng, isa, shape, threads):
    x, w, _, dy, kw = _arrays(rng, shape)
    ref_args = (kw["stride"], kw["padding"], kw["dilation"], kw["groups"])
    with forced_isa(isa):
        got = []
        for t in (1, 2):
            threads(t)
            got.append(F.conv2d_backward(dy, x, w, need=("w",), algo="im2col", **kw)[1])
    assert_close(got[0], ref_backward(dy, x, w, *ref_args)[1], f"dw {isa} {shape}", 1e-5)
    np.testing.assert_array_equal(got[0], got[1])
    # small integers: exact sums, so any indexing slip shows
    xi, dyi = (rng.integers(-8, 9, size=a.shape).astype(np.float32) for a in (x, dy))
    np.testing.assert_array_equal(
        F.conv2d_backward(dyi, xi, w, need=("w",), algo="im2col", **kw)[1],
        F.conv2d_backward(dyi, xi, w, need=("w",), algo="reference", **kw)[1])


@pytest.mark.parametrize("isa", ["scalar", "avx2", "avx512"])
@pytest.mark.parametrize("shape", [
    (2, 32, 7, 9, 48, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 2),   # groups: 16 -> 24 per group
    (1, 20, 6, 6, 40, (3, 2), (1, 1), (2, 0, 1, 0), (2, 1), 1),   # dilation, uneven pads
    (1, 17, 5, 5, 33, (5, 5), (1, 1), (4, 4, 4, 4), (1, 1), 1),   # full padding: dY padded by 0
])
def test_stride1_input_gradient_packs_turned_weights(rng, isa, shape):
    """The stride-1 input gradient as a broadcast forward over dY packs its kernel straight from
    w, turned by 180 degrees with the channel axes swapped per group (no turned copy)."""
    x, w, b, dy, kw = _arrays(rng, shape)
    with forced_isa(isa), forward_path("rule"):
        dx = F.conv2d_backward(dy, x, w, need=("x",), algo="im2col", **kw)[0]
    ref = ref_backward(dy, x, w, kw["stride"], kw["padding"], kw["dilation"], kw["groups"])[0]
    assert_close(dx, ref, f"dx {isa} {shape}", 1e-5)
