"""conv2d forward and backward, every algorithm, against the float64 NumPy reference."""
import numpy as np
import pytest

import convcore
import convcore.functional as F

from cases import conv_out_shape, randn, random_conv_case, small_ints
from reference import assert_close, conv2d as ref_conv2d, conv2d_backward as ref_conv2d_backward
from reference import assert_close_sums, linear_numeric_grad

N_CASES = 200
ALGOS = ["reference", "direct", "im2col"]
TOL = {np.float32: 1e-5, np.float64: 1e-12}


def _algos_for(case):
    return ALGOS + (["depthwise"] if case.groups == case.c and case.groups > 1 else [])


def _run_case(rng, case, dtype):
    x = randn(rng, case.x_shape, dtype)
    w = randn(rng, case.w_shape, dtype)
    b = randn(rng, (case.k,), dtype)
    dy = randn(rng, conv_out_shape(case), dtype)
    kw = dict(stride=case.stride, padding=case.pads, dilation=case.dilation, groups=case.groups)
    ref_args = (case.stride, case.pads, case.dilation, case.groups)
    y_ref = ref_conv2d(x, w, b, *ref_args)
    grads_ref = ref_conv2d_backward(dy, x, w, *ref_args)
    # the same sums over |terms|: the scale their rounding works at (outputs can cancel)
    y_abs = ref_conv2d(np.abs(x), np.abs(w), np.abs(b), *ref_args)
    grads_abs = ref_conv2d_backward(np.abs(dy), np.abs(x), np.abs(w), *ref_args)
    for algo in _algos_for(case) + ["auto"]:
        y = F.conv2d(x, w, b, algo=algo, **kw)
        assert y.dtype == dtype
        assert_close_sums(y, y_ref, y_abs, f"forward algo={algo} {case}", TOL[dtype])
        grads = F.conv2d_backward(dy, x, w, algo=algo, **kw)
        for name, got, want, scale in zip(("dx", "dw", "db"), grads, grads_ref, grads_abs):
            assert_close_sums(got, want, scale, f"{name} algo={algo} {case}", TOL[dtype])


@pytest.mark.parametrize("case_id", range(N_CASES))
def test_conv2d_random_float32(rng, case_id):
    _run_case(rng, random_conv_case(rng), np.float32)


@pytest.mark.parametrize("case_id", range(40))
def test_conv2d_random_float64(rng, case_id):
    _run_case(rng, random_conv_case(rng), np.float64)


@pytest.mark.parametrize("case_id", range(60))
def test_conv2d_depthwise_random(rng, case_id):
    _run_case(rng, random_conv_case(rng, depthwise=True), np.float32)


@pytest.mark.parametrize("case_id", range(60))
def test_algorithms_agree_exactly_on_small_integers(rng, case_id):
    """Small-integer inputs make every algorithm's sums exact in float32: any difference at all
    is an indexing bug that a 1e-5 tolerance could hide."""
    case = random_conv_case(rng)
    x = small_ints(rng, case.x_shape, np.float32)
    w = small_ints(rng, case.w_shape, np.float32)
    dy = small_ints(rng, conv_out_shape(case), np.float32)
    kw = dict(stride=case.stride, padding=case.pads, dilation=case.dilation, groups=case.groups)
    base_y = F.conv2d(x, w, algo="reference", **kw)
    base_g = F.conv2d_backward(dy, x, w, algo="reference", need=("x", "w"), **kw)
    for algo in _algos_for(case)[1:]:
        np.testing.assert_array_equal(F.conv2d(x, w, algo=algo, **kw), base_y, err_msg=f"{algo} {case}")
        dx, dw, _ = F.conv2d_backward(dy, x, w, algo=algo, need=("x", "w"), **kw)
        np.testing.assert_array_equal(dx, base_g[0], err_msg=f"dx {algo} {case}")
        np.testing.assert_array_equal(dw, base_g[1], err_msg=f"dw {algo} {case}")


@pytest.mark.parametrize("case_id", range(6))
def test_conv2d_finite_differences_float64(rng, case_id):
    case = random_conv_case(rng)
    case.n = 1
    x = randn(rng, case.x_shape, np.float64)
    w = randn(rng, case.w_shape, np.float64)
    b = randn(rng, (case.k,), np.float64)
    kw = dict(stride=case.stride, padding=case.pads, dilation=case.dilation, groups=case.groups)
    dy = randn(rng, conv_out_shape(case), np.float64)

    def loss():
        return float(np.sum(F.conv2d(x, w, b, **kw) * dy))

    dx, dw, db = F.conv2d_backward(dy, x, w, **kw)
    for analytic, arr in ((dx, x), (dw, w), (db, b)):
        numeric = linear_numeric_grad(loss, arr)
        assert_close(analytic, numeric, f"finite differences {case}", 1e-7)


def test_padding_spellings(rng):
    x = randn(rng, (2, 3, 9, 8), np.float32)
    w = randn(rng, (4, 3, 3, 5), np.float32)
    same = F.conv2d(x, w, padding="same")
    assert same.shape == (2, 4, 9, 8)
    np.testing.assert_array_equal(same, F.conv2d(x, w, padding=(1, 1, 2, 2)))
    np.testing.assert_array_equal(F.conv2d(x, w, padding="valid"), F.conv2d(x, w, padding=0))
    np.testing.assert_array_equal(F.conv2d(x, w, padding=(1, 2)), F.conv2d(x, w, padding=(1, 1, 2, 2)))
    # even kernel with "same": the extra pixel goes after (bottom/right), as in PyTorch
    w2 = randn(rng, (4, 3, 2, 4), np.float32)
    y = F.conv2d(x, w2, padding="same", dilation=(1, 1))
    assert y.shape == (2, 4, 9, 8)
    assert_close(y, ref_conv2d(x, w2, None, (1, 1), (0, 1, 1, 2)), "same even kernel", 1e-5)


def test_noncontiguous_and_nan_inputs(rng):
    x = randn(rng, (2, 3, 10, 12), np.float32)[:, :, ::2, 1::2]  # a strided view
    w = randn(rng, (4, 3, 3, 3), np.float32)
    assert_close(F.conv2d(x, w, padding=1), ref_conv2d(x, w, None, (1, 1), (1, 1, 1, 1)),
                 "strided view", 1e-5)
    x = np.ascontiguousarray(x)
    x[0, 0, 2, 2] = np.nan
    x[1, 1, 0, 0] = np.inf
    for algo in ALGOS:
        y = F.conv2d(x, w, padding=1, algo=algo)
        assert np.isnan(y[0, :, 1:4, 1:4]).all()
        assert np.isfinite(y[0, :, 4:, 4:]).all()


def test_empty_batch(rng):
    x = np.zeros((0, 3, 5, 5), np.float32)
    w = randn(rng, (2, 3, 3, 3), np.float32)
    for algo in ALGOS:
        assert F.conv2d(x, w, algo=algo).shape == (0, 2, 3, 3)
        dx, dw, db = F.conv2d_backward(np.zeros((0, 2, 3, 3), np.float32), x, w, algo=algo)
        assert dx.shape == x.shape and np.all(dw == 0) and np.all(db == 0)


def test_select_algo_is_visible():
    assert F.select_algo((8, 32, 56, 56), (32, 1, 3, 3), padding=1, groups=32) == "depthwise"
    assert F.select_algo((8, 64, 56, 56), (64, 64, 3, 3), padding=1) == "winograd_4x4"
    assert F.select_algo((8, 512, 7, 7), (512, 512, 3, 3), padding=1) == "winograd_2x2"
    assert F.select_algo((8, 64, 56, 56), (64, 64, 1, 1)) == "im2col"


@pytest.mark.parametrize("case_id", range(20))
def test_matches_pytorch(rng, case_id):
    torch = pytest.importorskip("torch")
    case = random_conv_case(rng)
    x = randn(rng, case.x_shape, np.float32)
    w = randn(rng, case.w_shape, np.float32)
    b = randn(rng, (case.k,), np.float32)
    t, bt, l, r = case.pads
    xt = torch.nn.functional.pad(torch.from_numpy(x), (l, r, t, bt))
    yt = torch.nn.functional.conv2d(xt, torch.from_numpy(w), torch.from_numpy(b), case.stride, 0,
                                    case.dilation, case.groups).numpy()
    y = F.conv2d(x, w, b, stride=case.stride, padding=case.pads, dilation=case.dilation,
                 groups=case.groups)
    assert_close(y, yt, f"vs torch {case}", 1e-5)


@pytest.mark.parametrize("isa", ["scalar", "avx2", "avx512"])
@pytest.mark.parametrize("case_id", range(25))
def test_every_isa_against_reference(rng, isa, case_id):
    """Each per-ISA build of the fast kernels, forced on this CPU, against the float64 reference."""
    from isa import forced_isa
    with forced_isa(isa):
        _run_case(rng, random_conv_case(rng, depthwise=bool(case_id % 2)), np.float32)


def test_strided_input_gradient_of_one_image_split_in_row_bands(rng):
    """One image on several threads: the input gradient's col2im runs in bands of input rows per
    thread (NIN's 11x11/4 first layer); the sums per element keep their order, so the result is
    the one-thread result exactly, and the reference's."""
    x = randn(rng, (1, 3, 47, 45), np.float32)
    w = randn(rng, (8, 3, 11, 11), np.float32)
    dy = randn(rng, (1, 8, 10, 10), np.float32)
    kw = dict(stride=4, padding=(2, 1, 3, 0))
    before = convcore.get_num_threads()
    try:
        got = []
        for threads in (1, 2, 3):
            convcore.set_num_threads(threads)
            got.append(F.conv2d_backward(dy, x, w, need=("x",), algo="im2col", **kw)[0])
    finally:
        convcore.set_num_threads(before)
    ref = ref_conv2d_backward(dy, x, w, (4, 4), (2, 1, 3, 0))[0]
    assert_close(got[0], ref, "dx 11x11/4", 1e-5)
    for g in got[1:]:
        np.testing.assert_array_equal(g, got[0])
