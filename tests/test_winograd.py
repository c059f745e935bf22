"""Winograd F(2x2,3x3) and F(4x4,3x3) conv2d forward (algo="winograd*"): the transforms one
tile at a time against NumPy products, the identity they must satisfy (exact correlation in
float64), and whole convolutions against the float64 reference within the error bounds measured
in bench/RESULTS.md ("Winograd")."""
import numpy as np
import pytest

import convcore
import convcore.functional as F
from convcore import _cpu

from cases import randn
from isa import ISA_ORDER, forced_isa
from reference import assert_close, conv2d as ref_conv2d, conv2d_backward as ref_conv2d_backward, rel_error

TILES = {"winograd_2x2": 2, "winograd_4x4": 4}
# float32 bounds: the largest error measured on random data up to C=512 (bench/RESULTS.md),
# with headroom (F(4x4): 6e-6, points 0, 1, -1, 2, -1/2); float64 the same error scaled by 2^-29.
TOL32 = {"winograd_2x2": 2e-6, "winograd_4x4": 1e-5}
TOL32["winograd"] = TOL32["winograd_2x2"]   # algo="winograd" runs F(2x2,3x3) in float32
TOL64 = 1e-12


@pytest.mark.parametrize("m", [2, 4])
def test_matrices_compute_correlation_exactly(rng, m):
    """A^T [(G g) * (B^T d)] is the 1-D valid correlation of d (m+2) with g (3), and the 2-D
    nesting the 2-D one: the defining identity of F(m, 3)."""
    bt, g_mat, at = _cpu._winograd_matrices(m)
    alpha = m + 2
    assert bt.shape == (alpha, alpha) and g_mat.shape == (alpha, 3) and at.shape == (m, alpha)
    d1, g1 = rng.standard_normal(alpha), rng.standard_normal(3)
    np.testing.assert_allclose(at @ ((g_mat @ g1) * (bt @ d1)),
                               [d1[i:i + 3] @ g1 for i in range(m)], rtol=0, atol=1e-13)
    d, g = rng.standard_normal((alpha, alpha)), rng.standard_normal((3, 3))
    y = at @ ((g_mat @ g @ g_mat.T) * (bt @ d @ bt.T)) @ at.T
    direct = [[np.sum(d[i:i + 3, j:j + 3] * g) for j in range(m)] for i in range(m)]
    np.testing.assert_allclose(y, direct, rtol=0, atol=1e-12)


@pytest.mark.parametrize("m", [2, 4])
def test_native_tile_transforms_match_numpy(rng, m):
    bt, g_mat, at = _cpu._winograd_matrices(m)
    alpha = m + 2
    g = rng.standard_normal((3, 3))
    d = rng.standard_normal((alpha, alpha))
    t = rng.standard_normal((alpha, alpha))
    np.testing.assert_allclose(_cpu._winograd_kernel_tile(m, g), g_mat @ g @ g_mat.T, atol=1e-14)
    np.testing.assert_allclose(_cpu._winograd_input_tile(m, d), bt @ d @ bt.T, atol=1e-13)
    np.testing.assert_allclose(_cpu._winograd_output_tile(m, t), at @ t @ at.T, atol=1e-12)
    with pytest.raises(ValueError, match="tile_m"):
        _cpu._winograd_matrices(3)


def random_winograd_case(rng):
    """3x3 stride 1: odd sizes, images smaller than a tile, padding up to 3 (beyond the kernel
    half), asymmetric padding, batch 1, partial tiles at the edges and the end of a chunk."""
    n = int(rng.choice([1, 1, 2, 3]))
    c, k = (int(v) for v in rng.integers(1, 9, size=2))
    pads = tuple(int(v) for v in rng.integers(0, 4, size=4)) if rng.random() < 0.8 else (0,) * 4
    h = max(1, 3 - pads[0] - pads[1]) + int(rng.integers(0, 14))
    w = max(1, 3 - pads[2] - pads[3]) + int(rng.integers(0, 14))
    return (n, c, h, w), (k, c, 3, 3), pads


@pytest.mark.parametrize("algo", list(TILES) + ["winograd"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case_id", range(12))
def test_forward_against_reference(rng, case_id, dtype, algo):
    x_shape, w_shape, pads = random_winograd_case(rng)
    x = randn(rng, x_shape, dtype)
    w = randn(rng, w_shape, dtype)
    b = randn(rng, (w_shape[0],), dtype)
    y = F.conv2d(x, w, b, padding=pads, algo=algo)
    assert y.dtype == dtype
    tol = TOL64 if dtype == np.float64 else TOL32[algo]
    assert_close(y, ref_conv2d(x, w, b, (1, 1), pads), f"{algo} {x_shape} {w_shape} {pads}", tol)


@pytest.mark.parametrize("algo", list(TILES))
def test_many_channels_within_the_documented_bound(rng, algo):
    """The measured error grows with C (longer sums in the transformed domain); at C=256 it
    must still sit inside the bound the error table documents."""
    x = randn(rng, (2, 256, 12, 13), np.float32)
    w = randn(rng, (16, 256, 3, 3), np.float32)
    err = rel_error(F.conv2d(x, w, padding=1, algo=algo), ref_conv2d(x, w, None, (1, 1), (1, 1, 1, 1)))
    assert err <= TOL32[algo], err


def test_large_batch_runs_in_chunks(rng):
    """Many more tiles than one chunk holds (at least 64, about 1 MB of V and M): chunks spread
    over threads, partial last chunk, chunks that start mid-image."""
    x = randn(rng, (3, 24, 37, 41), np.float32)
    w = randn(rng, (40, 24, 3, 3), np.float32)
    ref = ref_conv2d(x, w, None, (1, 1), (1, 1, 1, 1))
    for algo in TILES:
        assert_close(F.conv2d(x, w, padding=1, algo=algo), ref, algo, TOL32[algo])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("pads", [(1, 1, 1, 1), (0, 0, 0, 0), (2, 0, 1, 2)])
def test_backward_input_is_a_winograd_forward(rng, dtype, pads):
    """With algo="winograd*" the input gradient runs as a Winograd forward over dY (turned
    weights, pad 2 - pad) and the weight gradient as im2col's; both against the reference."""
    x = randn(rng, (2, 20, 9, 11), dtype)
    w = randn(rng, (12, 20, 3, 3), dtype)
    dy_shape = (2, 12, 9 + pads[0] + pads[1] - 2, 11 + pads[2] + pads[3] - 2)
    dy = randn(rng, dy_shape, dtype)
    ref_dx, ref_dw, _ = ref_conv2d_backward(dy, x, w, (1, 1), pads)
    tol = TOL64 if dtype == np.float64 else TOL32["winograd_2x2"]
    for algo in ("winograd", "winograd_2x2"):
        dx, dw, _ = F.conv2d_backward(dy, x, w, padding=pads, algo=algo)
        assert_close(dx, ref_dx, f"dx {algo} {pads}", tol)
        np.testing.assert_array_equal(dw, F.conv2d_backward(dy, x, w, padding=pads, algo="im2col")[1])
        assert_close(dw, ref_dw, f"dw {algo} {pads}", tol)


def test_backward_input_beyond_a_forward_runs_im2col(rng):
    """A pad over 2 (outputs that read only padding) has no forward form: im2col's gradient."""
    x = randn(rng, (1, 4, 6, 6), np.float64)
    w = randn(rng, (5, 4, 3, 3), np.float64)
    dy = randn(rng, (1, 5, 10, 10), np.float64)
    got = F.conv2d_backward(dy, x, w, padding=3, algo="winograd")
    want = F.conv2d_backward(dy, x, w, padding=3, algo="im2col")
    for g, r in zip(got, want):
        np.testing.assert_array_equal(g, r)


@pytest.mark.parametrize("kwargs,fragment", [
    (dict(w_shape=(4, 3, 5, 5)), "3x3 kernel"),
    (dict(stride=2), "stride 1"),
    (dict(dilation=2), "dilation 1"),
    (dict(groups=3, w_shape=(3, 1, 3, 3)), "groups 1"),
])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("algo", ["winograd", "winograd_2x2", "winograd_4x4"])
def test_unsupported_shapes_are_refused_by_name(kwargs, fragment, algo, dtype):
    kwargs = dict(kwargs)
    w = np.full(kwargs.pop("w_shape", (4, 3, 3, 3)), 0.25, dtype)
    x = np.full((1, 3, 12, 12), 0.5, dtype)
    if fragment == "3x3 kernel" and dtype == np.float32 and algo != "winograd_4x4":
        # float32 F(2x2,3x3) runs any kernel as 3x3 sub-kernels
        assert_close(F.conv2d(x, w, algo=algo), ref_conv2d(x, w, None, (1, 1), (0, 0, 0, 0)), algo, 2e-6)
        return
    with pytest.raises(ValueError) as info:
        F.conv2d(x, w, algo=algo, **kwargs)
    assert fragment in str(info.value) and algo in str(info.value)


KERNEL_SHAPES = [
    # (x shape, w shape, pads): 5x5 (four sub-kernels), 7x7 (nine, partly empty), non-square,
    # kernels smaller than 3x3, a 5x5 over a map narrower than the kernel with padding
    ((2, 6, 13, 17), (5, 6, 5, 5), (2, 2, 2, 2)),
    ((1, 3, 12, 15), (4, 3, 7, 7), (3, 1, 0, 3)),
    ((2, 4, 8, 9), (3, 4, 4, 2), (1, 1, 0, 1)),
    ((2, 5, 7, 6), (4, 5, 1, 1), (0, 0, 0, 0)),
    ((1, 8, 3, 4), (6, 8, 5, 5), (2, 2, 2, 2)),
]


@pytest.mark.parametrize("isa", ISA_ORDER)
@pytest.mark.parametrize("shape_id", range(len(KERNEL_SHAPES)))
def test_f2_float32_kernels_beyond_3x3(rng, isa, shape_id):
    """float32 winograd_2x2 on other kernel sizes (sums of 3x3 sub-kernels over shifted
    inputs): forward, and the input gradient as a Winograd forward over dY, per ISA."""
    x_shape, w_shape, pads = KERNEL_SHAPES[shape_id]
    x = randn(rng, x_shape, np.float32)
    w = randn(rng, w_shape, np.float32)
    b = randn(rng, (w_shape[0],), np.float32)
    y_ref = ref_conv2d(x, w, b, (1, 1), pads)
    dy = randn(rng, y_ref.shape, np.float32)
    dx_ref, dw_ref, _ = ref_conv2d_backward(dy, x, w, (1, 1), pads)
    with forced_isa(isa):
        y = F.conv2d(x, w, b, padding=pads, algo="winograd_2x2")
        dx, dw, _ = F.conv2d_backward(dy, x, w, padding=pads, algo="winograd_2x2")
    case = f"{isa} {x_shape} {w_shape} {pads}"
    assert_close(y, y_ref, case, TOL32["winograd_2x2"])
    assert_close(dx, dx_ref, "dx " + case, TOL32["winograd_2x2"])
    assert_close(dw, dw_ref, "dw " + case, 1e-5)


def test_auto_picks_winograd_only_where_measured_faster_and_within_bound(rng):
    # float32: F(2x2,3x3) from 32 input and 64 output channels with 128+ tiles (past 64 input
    # channels, or on maps F(4x4) would pad by more than 1/7); im2col below and on NIN's conv4_1024
    # (12x12, 36 tiles)
    assert F.select_algo((8, 384, 28, 28), (128, 384, 3, 3), padding=1) == "winograd_2x2"
    assert F.select_algo((8, 512, 7, 7), (512, 512, 3, 3), padding=1) == "winograd_2x2"
    assert F.select_algo((8, 64, 13, 13), (64, 64, 3, 3), padding=1) == "winograd_2x2"
    assert F.select_algo((1, 384, 12, 12), (1024, 384, 3, 3), padding=1) == "im2col"
    # float32 F(4x4,3x3): 32-256 input channels (16-31 on maps up to 16 wide), 32+ output
    # channels, maps 8+ a side that fill their 4x4 tiles to within 1/7 (every DeepConvNet row
    # from conv3, ResNet-50's 56x56-14x14 rows, VGG's); not past 256 channels, not with 16 input
    # channels on wide maps nor with 16 output channels
    assert F.select_algo((100, 16, 14, 14), (32, 16, 3, 3), padding=1) == "winograd_4x4"
    assert F.select_algo((100, 32, 14, 14), (32, 32, 3, 3), padding=2) == "winograd_4x4"
    assert F.select_algo((100, 32, 8, 8), (64, 32, 3, 3), padding=1) == "winograd_4x4"
    assert F.select_algo((100, 64, 8, 8), (64, 64, 3, 3), padding=1) == "winograd_4x4"
    assert F.select_algo((8, 64, 56, 56), (64, 64, 3, 3), padding=1) == "winograd_4x4"
    assert F.select_algo((8, 64, 12, 12), (64, 64, 3, 3), padding=1) == "winograd_4x4"
    assert F.select_algo((8, 128, 28, 28), (128, 128, 3, 3), padding=1) == "winograd_4x4"
    assert F.select_algo((4, 128, 112, 112), (128, 128, 3, 3), padding=1) == "winograd_4x4"
    assert F.select_algo((8, 256, 14, 14), (256, 256, 3, 3), padding=1) == "winograd_4x4"
    assert F.select_algo((8, 257, 14, 14), (256, 257, 3, 3), padding=1) == "winograd_2x2"
    assert F.select_algo((8, 16, 56, 56), (64, 16, 3, 3), padding=1) == "im2col"
    assert F.select_algo((100, 16, 28, 28), (16, 16, 3, 3), padding=1) == "im2col"
    assert F.select_algo((8, 64, 56, 56), (16, 64, 3, 3), padding=1) == "im2col"
    assert F.select_algo((64, 32, 10, 10), (48, 32, 3, 3), padding=1) == "im2col"
    # 5x5 as four 3x3 sub-kernels: NIN's conv2 (53x53, 96 -> 256); 7x7 stays on im2col
    assert F.select_algo((1, 96, 53, 53), (256, 96, 5, 5), padding=2) == "winograd_2x2"
    assert F.select_algo((1, 96, 53, 53), (256, 96, 7, 7), padding=3) == "im2col"
    assert F.select_algo((4, 128, 112, 112), (128, 128, 3, 3), padding=1, stride=2) != "winograd_2x2"
    # float64: F(4x4,3x3) from 16 channels up, bit-identical to asking for it
    x = randn(rng, (2, 16, 9, 10), np.float64)
    w = randn(rng, (8, 16, 3, 3), np.float64)
    np.testing.assert_array_equal(F.conv2d(x, w, padding=1),
                                  F.conv2d(x, w, padding=1, algo="winograd_4x4"))
    x1, w1 = x[:, :4].copy(), w[:, :4].copy()
    np.testing.assert_array_equal(F.conv2d(x1, w1, padding=1), F.conv2d(x1, w1, padding=1, algo="im2col"))


@pytest.mark.parametrize("channels", [32, 64, 256])
def test_auto_float32_f4_stays_within_the_float32_bound(rng, channels):
    """Where "auto" takes float32 F(4x4,3x3) (up to 256 input channels), its error against the
    float64 reference stays under the 1e-5 every other float32 algorithm is held to (at most 6e-6
    in 150 random layers; bench/RESULTS.md, session 11), and auto is that algorithm bit for bit."""
    x = randn(rng, (2, channels, 20, 16), np.float32)
    w = randn(rng, (40, channels, 3, 3), np.float32)
    b = randn(rng, (40,), np.float32)
    assert F.select_algo(x.shape, w.shape, padding=1) == "winograd_4x4"
    y = F.conv2d(x, w, b, padding=1)
    np.testing.assert_array_equal(y, F.conv2d(x, w, b, padding=1, algo="winograd_4x4"))
    assert_close(y, ref_conv2d(x, w, b, (1, 1), (1, 1, 1, 1)), f"auto F4 C={channels}", 1e-5)


def test_bench_error_table_and_rows():
    from convcore.bench import winograd as W
    table = W.error_table(channels=(8,), trials=1)
    assert set(table) == {("float32", 8), ("float64", 8)}
    assert table[("float32", 8)]["winograd_2x2"] <= TOL32["winograd_2x2"]
    assert table[("float32", 8)]["winograd_4x4"] <= TOL32["winograd_4x4"]
    assert table[("float64", 8)]["winograd_4x4"] <= TOL64
    names = [name for name, _ in W.winograd_rows()]
    assert "vgg.3x3.128" in names and "r50.3x3.64" in names and "r50.stem" not in names


F2_SHAPES = [
    # (x shape, w shape, pads): runs that end mid-panel and cross images (41-wide maps: 21 tiles
    # per row), odd output sizes, asymmetric pads
    ((3, 24, 37, 41), (40, 24, 3, 3), (1, 1, 1, 1)),
    ((2, 5, 10, 9), (7, 5, 3, 3), (0, 2, 1, 0)),
    # a channel sum longer than one K block of the micro-kernel and more output channels than
    # one block of A panels (the products' blocking)
    ((1, 400, 6, 7), (100, 400, 3, 3), (1, 1, 1, 1)),
    # one input channel; a 1x1 map
    ((4, 1, 19, 33), (9, 1, 3, 3), (1, 1, 1, 1)),
    ((2, 8, 1, 1), (3, 8, 3, 3), (1, 1, 1, 1)),
    # tile rows of 16 and 14 tiles, where AVX-512 transforms 16 tiles per vector (the rows above,
    # of 4 or 21 tiles, fill 8-lane vectors better and take its 8-lane build)
    ((2, 9, 6, 32), (20, 9, 3, 3), (1, 1, 1, 1)),
    ((1, 7, 5, 28), (18, 7, 3, 3), (1, 1, 1, 1)),
]


# F(4x4,3x3) adds: tile rows of 4 tiles (16-wide maps, book.conv4's pad 2) and of 16+ (a full
# 16-lane vector and one past it), widths and heights that end mid-tile (1-3 of a tile's 4
# columns), an input narrower than a tile; the last five run with F(2x2,3x3) too
F4_SHAPES = [
    ((3, 32, 14, 14), (32, 32, 3, 3), (2, 2, 2, 2)),
    ((1, 6, 9, 64), (11, 6, 3, 3), (1, 1, 1, 1)),
    ((2, 5, 7, 67), (9, 5, 3, 3), (1, 1, 0, 1)),
    ((2, 3, 13, 18), (5, 3, 3, 3), (0, 1, 1, 1)),
    ((3, 4, 3, 3), (6, 4, 3, 3), (1, 1, 1, 1)),
    # tile rows stacked in a vector (stacked_rows): 2 and 4 tiles a row (maps 8 and 5-7 wide for
    # F(4x4), 4 and 8 wide for F(2x2)), the rows of a vector crossing into the next image, a
    # short last vector, maps whose last tile row is cut
    ((7, 5, 8, 8), (9, 5, 3, 3), (1, 1, 1, 1)),
    ((5, 3, 6, 5), (4, 3, 3, 3), (1, 1, 1, 1)),
    ((3, 6, 9, 7), (7, 6, 3, 3), (0, 1, 1, 0)),
    ((9, 4, 4, 4), (5, 4, 3, 3), (1, 1, 1, 1)),
    ((3, 2, 11, 16), (3, 2, 3, 3), (1, 1, 1, 1)),
]
FLOAT32_DRIVER_CASES = ([("winograd_2x2", shape) for shape in F2_SHAPES + F4_SHAPES[-5:]] +
                        [("winograd_4x4", shape) for shape in F2_SHAPES + F4_SHAPES])


@pytest.mark.parametrize("isa", ISA_ORDER)
@pytest.mark.parametrize("case_id", range(len(FLOAT32_DRIVER_CASES)))
def test_float32_driver_every_isa_and_thread_count(rng, isa, case_id):
    """float32 F(2x2,3x3) and F(4x4,3x3) run their own driver, built for AVX-512, AVX2 and (the
    scalar level) SSE2: transforms over split planes, products on the GEMM micro-kernels. Each
    against the reference, and bit-identical on 1 and 2 threads (chunks depend on the thread
    count)."""
    algo, (x_shape, w_shape, pads) = FLOAT32_DRIVER_CASES[case_id]
    x = randn(rng, x_shape, np.float32)
    w = randn(rng, w_shape, np.float32)
    b = randn(rng, (w_shape[0],), np.float32)
    ref = ref_conv2d(x, w, b, (1, 1), pads)
    before = convcore.get_num_threads()
    try:
        with forced_isa(isa):
            results = []
            for threads in (1, 2):
                convcore.set_num_threads(threads)
                results.append(F.conv2d(x, w, b, padding=pads, algo=algo))
    finally:
        convcore.set_num_threads(before)
    assert_close(results[0], ref, f"{algo} {isa} {x_shape} {w_shape} {pads}", TOL32[algo])
    np.testing.assert_array_equal(results[0], results[1])


def test_auto_input_gradient_takes_winograd_only_where_its_forward_would(rng):
    """With "auto", the input gradient of a Winograd-chosen conv is a forward with C and K
    swapped: it stays Winograd only where that forward would take Winograd, with that forward's
    tile (48 -> 24 at 12x12: its gradient is 24 -> 48, under the rules' 32 input channels on maps
    over 16 wide, so im2col; 32 -> 64 (book.conv5) and 64 -> 64: their gradients are chosen, so
    Winograd)."""
    x = randn(rng, (24, 48, 20, 20), np.float32)
    w = randn(rng, (24, 48, 3, 3), np.float32)
    dy = randn(rng, (24, 24, 20, 20), np.float32)
    assert F.select_algo(x.shape, w.shape, padding=1) == "winograd_2x2"
    assert F.select_algo(dy.shape, (48, 24, 3, 3), padding=1) == "im2col"
    dx = F.conv2d_backward(dy, x, w, padding=1, need=("x",))[0]
    np.testing.assert_array_equal(dx, F.conv2d_backward(dy, x, w, padding=1, need=("x",), algo="im2col")[0])
    for x_shape, k in (((100, 32, 8, 8), 64), ((8, 64, 12, 12), 64)):
        x2 = randn(rng, x_shape, np.float32)
        w2 = randn(rng, (k, x_shape[1], 3, 3), np.float32)
        dy2 = randn(rng, (x_shape[0], k) + x_shape[2:], np.float32)
        tile = F.select_algo(x2.shape, w2.shape, padding=1)
        assert tile.startswith("winograd")
        assert F.select_algo(dy2.shape, (x_shape[1], k, 3, 3), padding=1) == tile
        dx2 = F.conv2d_backward(dy2, x2, w2, padding=1, need=("x",))[0]
        np.testing.assert_array_equal(
            dx2, F.conv2d_backward(dy2, x2, w2, padding=1, need=("x",), algo=tile)[0])
    # 384 -> 32 at 8x8 runs F(2x2) (past F(4x4)'s 256 channels); its gradient, 32 -> 384, F(4x4)
    x3 = randn(rng, (20, 384, 8, 8), np.float32)
    w3 = randn(rng, (32, 384, 3, 3), np.float32)
    dy3 = randn(rng, (20, 32, 8, 8), np.float32)
    assert F.select_algo(x3.shape, w3.shape, padding=1) == "winograd_2x2"
    assert F.select_algo(dy3.shape, (384, 32, 3, 3), padding=1) == "winograd_4x4"
    np.testing.assert_array_equal(
        F.conv2d_backward(dy3, x3, w3, padding=1, need=("x",))[0],
        F.conv2d_backward(dy3, x3, w3, padding=1, need=("x",), algo="winograd_4x4")[0])


WGRAD_SHAPES = [
    # (x shape, K, pads): F(3x3,2x2) runs from 128 input and output channels (3x3 kernels)
    ((2, 128, 7, 9), 128, (1, 1, 1, 1)),    # odd width: a dY tile past the map's edge
    ((1, 130, 10, 6), 129, (0, 2, 1, 0)),   # asymmetric pads, channels past a vector
    ((3, 128, 5, 5), 140, (2, 2, 2, 2)),    # padding = kernel - 1
]


@pytest.mark.parametrize("isa", ISA_ORDER)
@pytest.mark.parametrize("shape_id", range(len(WGRAD_SHAPES)))
def test_weight_gradient_f3x3_2x2(rng, isa, shape_id):
    """The float32 weight gradient under Winograd, G^T [sum (A dY A^T) . (B^T X B)] G, against the
    reference per ISA, and the same on a second run with the thread count kept."""
    x_shape, k, pads = WGRAD_SHAPES[shape_id]
    x = randn(rng, x_shape, np.float32)
    w = randn(rng, (k, x_shape[1], 3, 3), np.float32)
    dy = randn(rng, ref_conv2d(x, w, None, (1, 1), pads).shape, np.float32)
    with forced_isa(isa):
        dw = F.conv2d_backward(dy, x, w, padding=pads, need=("w",), algo="winograd_2x2")[1]
        again = F.conv2d_backward(dy, x, w, padding=pads, need=("w",), algo="winograd_2x2")[1]
    ref = ref_conv2d_backward(dy, x, w, (1, 1), pads)[1]
    assert_close(dw, ref, f"dw {isa} {x_shape} {k} {pads}", 2e-6)
    np.testing.assert_array_equal(dw, again)
    # the same driver under an F(4x4) forward (the dW algorithm does not depend on the tile)
    with forced_isa(isa):
        np.testing.assert_array_equal(
            F.conv2d_backward(dy, x, w, padding=pads, need=("w",), algo="winograd_4x4")[1], dw)
    # below 128 channels the weight gradient stays im2col's, bit for bit
    xs, ws, dys = x[:, :64].copy(), w[:64, :64].copy(), dy[:, :64].copy()
    np.testing.assert_array_equal(
        F.conv2d_backward(dys, xs, ws, padding=pads, need=("w",), algo="winograd_2x2")[1],
        F.conv2d_backward(dys, xs, ws, padding=pads, need=("w",), algo="im2col")[1])


@pytest.mark.parametrize("algo", ["winograd_2x2", "winograd_4x4"])
@pytest.mark.parametrize("isa", ISA_ORDER)
def test_tile_rows_equal_the_usual_orientation_bit_for_bit(rng, isa, algo):
    """Few tiles per thread with 256+ channels run the 16 (or 36) products with the tiles as the
    GEMM's rows (conv_winograd_f32_impl.inc, tiles_as_rows). Every product element is the same FMA
    chain either way: 100 2x2 tiles or 25 4x4 ones (20x20) take the usual orientation on one
    thread and the tile-rows one when each thread's share fills at most 3/4 of the column panels
    (3 threads for the 32- and 16-wide AVX-512 and AVX2 micro-kernels, 11 for the scalar one's 8)."""
    x = randn(rng, (1, 256, 20, 20), np.float32)
    w = randn(rng, (264, 256, 3, 3), np.float32)
    dy = randn(rng, (1, 264, 20, 20), np.float32)
    many = {"scalar": 11}.get(isa, 3)
    before = convcore.get_num_threads()
    with forced_isa(isa):
        try:
            results = []
            for threads in (1, many):
                convcore.set_num_threads(threads)
                results.append((F.conv2d(x, w, padding=1, algo=algo),
                                F.conv2d_backward(dy, x, w, padding=1, need=("x",), algo=algo)[0]))
        finally:
            convcore.set_num_threads(before)
    np.testing.assert_array_equal(results[1][0], results[0][0])
    np.testing.assert_array_equal(results[1][1], results[0][1])
    assert_close(results[0][0], ref_conv2d(x, w, pads=(1, 1, 1, 1)), "tile rows", TOL32[algo])
