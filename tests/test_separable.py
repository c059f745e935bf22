"""Depthwise, depthwise-separable (depthwise + 1x1) and separable 1-D convolutions, and
rank1_factor, forward and backward against float64 NumPy references."""
import numpy as np
import pytest

import convcore
import convcore.functional as F

import reference as ref
from cases import randn, random_conv_case, small_ints
from reference import assert_close

N_CASES = 200
TOL = {np.float32: 1e-5, np.float64: 1e-12}


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """The random sweeps check arithmetic and indexing on tiny shapes, where a thread team costs
    more than the work (milliseconds per call on a loaded machine); the thread split is checked
    separately by test_sepconv2d_1d_thread_counts_agree."""
    before = convcore.get_num_threads()
    convcore.set_num_threads(1)
    yield
    convcore.set_num_threads(before)


# ---- case generation ------------------------------------------------------------------------

def _extent(rng, k, d, before, after, stride):
    span = d * (k - 1) + 1
    low = max(1, span - before - after)
    return int(rng.integers(low, low + 3 * stride + 6))


def random_sep1d_case(rng):
    """Depthwise geometry for sepconv2d_1d: odd sizes, stride > kernel, big/asymmetric padding,
    dilation, batch 1, 1x1 images, sometimes padding="same"."""
    c = int(rng.integers(1, 6))
    n = int(rng.choice([1, 1, 2, 3]))
    kh, kw = (int(v) for v in rng.integers(1, 8, size=2))
    stride = tuple(int(v) for v in rng.integers(1, 6, size=2))
    dilation = tuple(int(v) for v in rng.choice([1, 1, 2, 3], size=2))
    pads = tuple(int(v) for v in rng.integers(0, 6, size=4))
    if rng.random() < 0.3:
        pads = (0, 0, 0, 0)
    padding = pads
    if rng.random() < 0.15:
        stride = (1, 1)
        padding = "same"
        pads = []
        for k, d in zip((kh, kw), dilation):
            total = d * (k - 1)
            pads += [total // 2, total - total // 2]
        pads = tuple(pads)
    h = _extent(rng, kh, dilation[0], pads[0], pads[1], stride[0])
    w = _extent(rng, kw, dilation[1], pads[2], pads[3], stride[1])
    if rng.random() < 0.1:  # 1x1 images, kept valid by the padding
        h = w = 1
        kh = min(kh, pads[0] + pads[1] + 1) if dilation[0] == 1 else 1
        kw = min(kw, pads[2] + pads[3] + 1) if dilation[1] == 1 else 1
        padding = pads  # "same" was computed for the old kernel
    return dict(n=n, c=c, h=h, w=w, kh=kh, kw=kw, stride=stride, padding=padding, pads=pads,
                dilation=dilation)


def _out_hw(case):
    return (ref.out_extent(case["h"], case["kh"], case["stride"][0], case["pads"][0],
                           case["pads"][1], case["dilation"][0]),
            ref.out_extent(case["w"], case["kw"], case["stride"][1], case["pads"][2],
                           case["pads"][3], case["dilation"][1]))


def _sep1d_kwargs(case):
    return dict(stride=case["stride"], padding=case["padding"], dilation=case["dilation"])


def _sep1d_reference(dy, x, w_col, w_row, b, case):
    """Forward by the two 1-D passes; gradients through the equivalent depthwise conv2d and the
    chain rule through w[c] = outer(w_col[c], w_row[c])."""
    s, p, d, c = case["stride"], case["pads"], case["dilation"], case["c"]
    y = ref.sepconv2d_1d(x, w_col, w_row, b, s, p, d)
    w2 = ref.outer_kernel(w_col, w_row)
    dx, dw2, db = ref.conv2d_backward(dy, x, w2, s, p, d, c)
    dw_col = np.einsum("cij,cj->ci", dw2[:, 0], np.asarray(w_row, np.float64))
    dw_row = np.einsum("cij,ci->cj", dw2[:, 0], np.asarray(w_col, np.float64))
    return y, (dx, dw_col, dw_row, db)


# ---- sepconv2d_1d ---------------------------------------------------------------------------

def _run_sep1d(rng, case, dtype):
    x = randn(rng, (case["n"], case["c"], case["h"], case["w"]), dtype)
    w_col = randn(rng, (case["c"], case["kh"]), dtype)
    w_row = randn(rng, (case["c"], case["kw"]), dtype)
    b = randn(rng, (case["c"],), dtype)
    dy = randn(rng, (case["n"], case["c"]) + _out_hw(case), dtype)
    y_ref, grads_ref = _sep1d_reference(dy, x, w_col, w_row, b, case)
    kw = _sep1d_kwargs(case)
    # Outputs and gradients are sums that can cancel: with one output element (tiny maps, big
    # strides) the max-norm relative error of a correct float32 sum reached 3e-5. Errors are
    # measured against the same sums over absolute values, the scale float32 rounding works at.
    y_abs, grads_abs = _sep1d_reference(np.abs(dy), np.abs(x), np.abs(w_col), np.abs(w_row),
                                        np.abs(b), case)

    def check(got, want, scale, what):
        if got.size:
            err = np.max(np.abs(np.asarray(got, np.float64) - want)) / max(np.max(scale), 1e-30)
            assert err <= TOL[dtype], f"error {err:.3g} > {TOL[dtype]:g} of the |terms| scale: {what}"

    y = F.sepconv2d_1d(x, w_col, w_row, b, **kw)
    assert y.dtype == dtype
    check(y, y_ref, y_abs, f"sepconv2d_1d forward {case}")
    # the 2-D form of the same kernel agrees too
    check(y, ref.conv2d(x, ref.outer_kernel(w_col, w_row), b, case["stride"], case["pads"],
                        case["dilation"], case["c"]), y_abs, f"vs 2-D {case}")
    grads = F.sepconv2d_1d_backward(dy, x, w_col, w_row, **kw)
    for name, got, want, scale in zip(("dx", "dw_col", "dw_row", "db"), grads, grads_ref, grads_abs):
        assert got.dtype == dtype
        check(got, want, scale, f"sepconv2d_1d {name} {case}")


@pytest.mark.parametrize("case_id", range(N_CASES))
def test_sepconv2d_1d_random_float32(rng, case_id):
    _run_sep1d(rng, random_sep1d_case(rng), np.float32)


@pytest.mark.parametrize("isa", ["scalar", "avx2", "avx512"])
@pytest.mark.parametrize("case_id", range(20))
def test_sepconv2d_1d_every_isa(rng, isa, case_id):
    """The float forward has per-ISA register-blocked builds (stride_w == 1): force each one."""
    from isa import forced_isa
    with forced_isa(isa):
        _run_sep1d(rng, random_sep1d_case(rng), np.float32)


@pytest.mark.parametrize("case_id", range(30))
def test_sepconv2d_1d_random_float64(rng, case_id):
    _run_sep1d(rng, random_sep1d_case(rng), np.float64)


@pytest.mark.parametrize("case_id", range(40))
def test_sepconv2d_1d_exact_on_small_integers(rng, case_id):
    """Small integers make both the two-pass and the 2-D sums exact in float32: any difference
    from the depthwise conv2d is an indexing bug."""
    case = random_sep1d_case(rng)
    x = small_ints(rng, (case["n"], case["c"], case["h"], case["w"]), np.float32)
    w_col = small_ints(rng, (case["c"], case["kh"]), np.float32)
    w_row = small_ints(rng, (case["c"], case["kw"]), np.float32)
    dy = small_ints(rng, (case["n"], case["c"]) + _out_hw(case), np.float32)
    w2 = ref.outer_kernel(w_col, w_row).astype(np.float32)
    conv_kw = dict(stride=case["stride"], padding=case["padding"], dilation=case["dilation"],
                   groups=case["c"])
    np.testing.assert_array_equal(F.sepconv2d_1d(x, w_col, w_row, **_sep1d_kwargs(case)),
                                  F.conv2d(x, w2, algo="reference", **conv_kw), err_msg=str(case))
    dx, _, _, _ = F.sepconv2d_1d_backward(dy, x, w_col, w_row, need="x", **_sep1d_kwargs(case))
    dx_2d, _, _ = F.conv2d_backward(dy, x, w2, need="x", algo="reference", **conv_kw)
    np.testing.assert_array_equal(dx, dx_2d, err_msg=str(case))


@pytest.mark.parametrize("case_id", range(6))
def test_sepconv2d_1d_finite_differences_float64(rng, case_id):
    case = random_sep1d_case(rng)
    case["n"] = 1
    case["c"] = min(case["c"], 2)
    x = randn(rng, (1, case["c"], case["h"], case["w"]), np.float64)
    w_col = randn(rng, (case["c"], case["kh"]), np.float64)
    w_row = randn(rng, (case["c"], case["kw"]), np.float64)
    b = randn(rng, (case["c"],), np.float64)
    dy = randn(rng, (1, case["c"]) + _out_hw(case), np.float64)
    kw = _sep1d_kwargs(case)

    def loss():
        return float(np.sum(F.sepconv2d_1d(x, w_col, w_row, b, **kw) * dy))

    grads = F.sepconv2d_1d_backward(dy, x, w_col, w_row, **kw)
    for name, analytic, arr in zip(("x", "w_col", "w_row", "b"), grads, (x, w_col, w_row, b)):
        assert_close(analytic, ref.linear_numeric_grad(loss, arr), f"finite differences d{name} {case}", 1e-7)


def test_sepconv2d_1d_need_subsets(rng):
    x = randn(rng, (2, 3, 9, 10), np.float32)
    w_col, w_row = randn(rng, (3, 3), np.float32), randn(rng, (3, 5), np.float32)
    dy = randn(rng, (2, 3, 9, 10), np.float32)
    full = F.sepconv2d_1d_backward(dy, x, w_col, w_row, padding="same")
    names = ("x", "w_col", "w_row", "b")
    for i, name in enumerate(names):
        got = F.sepconv2d_1d_backward(dy, x, w_col, w_row, padding="same", need=(name,))
        assert all(g is None for j, g in enumerate(got) if j != i)
        np.testing.assert_array_equal(got[i], full[i])


def test_sepconv2d_1d_stride_wider_than_the_row(rng):
    """Row strides larger than the row (every stride phase holds at most one column)."""
    x = randn(rng, (2, 2, 5, 3), np.float32)
    w_col, w_row = randn(rng, (2, 2), np.float32), randn(rng, (2, 3), np.float32)
    for stride, pads in (((1, 7), (0, 0, 4, 4)), ((3, 4), (1, 2, 2, 1)), ((2, 9), (0, 0, 0, 0))):
        y = F.sepconv2d_1d(x, w_col, w_row, stride=stride, padding=pads)
        assert_close(y, ref.sepconv2d_1d(x, w_col, w_row, None, stride, pads), f"{stride} {pads}", 1e-5)
        dy = randn(rng, y.shape, np.float32)
        grads = F.sepconv2d_1d_backward(dy, x, w_col, w_row, stride=stride, padding=pads)
        case = dict(stride=stride, pads=pads, dilation=(1, 1), c=2)
        _, want = _sep1d_reference(dy, x, w_col, w_row, None, case)
        for got, exp in zip(grads, want):
            assert_close(got, exp, f"grads {stride} {pads}", 1e-5)


def test_sepconv2d_1d_thread_counts_agree(rng):
    x = randn(rng, (3, 5, 17, 19), np.float32)
    w_col, w_row = randn(rng, (5, 4), np.float32), randn(rng, (5, 3), np.float32)
    dy = randn(rng, (3, 5, 8, 17), np.float32)
    before = convcore.get_num_threads()
    results = []
    try:
        for threads in (1, 3):
            convcore.set_num_threads(threads)
            results.append((F.sepconv2d_1d(x, w_col, w_row, stride=(2, 1), padding=(0, 1, 0, 0)),)
                           + F.sepconv2d_1d_backward(dy, x, w_col, w_row, stride=(2, 1),
                                                     padding=(0, 1, 0, 0)))
    finally:
        convcore.set_num_threads(before)
    for a, b in zip(*results):
        np.testing.assert_array_equal(a, b)


# ---- rank1_factor ---------------------------------------------------------------------------

def _random_kernel_set(rng):
    c = int(rng.integers(1, 5))
    kh, kw = (int(v) for v in rng.integers(1, 8, size=2))
    dtype = rng.choice([np.float32, np.float64])
    four_d = rng.random() < 0.6
    return c if four_d else 1, kh, kw, dtype, four_d


@pytest.mark.parametrize("case_id", range(N_CASES))
def test_rank1_factor_random(rng, case_id):
    c, kh, kw, dtype, four_d = _random_kernel_set(rng)
    cols = rng.standard_normal((c, kh)) * rng.uniform(0.1, 10)
    rows = rng.standard_normal((c, kw))
    if c > 1 and rng.random() < 0.3:
        cols[rng.integers(c)] = 0.0  # an all-zero channel is rank 1
    w64 = ref.outer_kernel(cols, rows)
    w = (w64 if four_d else w64[0, 0]).astype(dtype)
    case = f"c={c} kh={kh} kw={kw} {np.dtype(dtype).name} four_d={four_d}"
    # float32 rounding of the product lifts the second singular value to ~1e-7 of the first
    w_col, w_row = F.rank1_factor(w, rtol=1e-5 if dtype == np.float32 else 1e-9)
    assert w_col.dtype == dtype and w_row.dtype == dtype
    assert w_col.shape == ((c, kh) if four_d else (kh,))
    assert w_row.shape == ((c, kw) if four_d else (kw,))
    rebuilt = ref.outer_kernel(np.atleast_2d(w_col), np.atleast_2d(w_row))
    assert_close(rebuilt if four_d else rebuilt[0, 0], w, case, TOL[dtype])

    # a generic kernel with both extents > 1 is not rank 1: the error names channel and ratio
    if kh > 1 and kw > 1:
        bad = w64.copy()
        victim = int(rng.integers(c))
        bad[victim, 0] += 0.5 * np.abs(bad).max() * rng.standard_normal((kh, kw)) + 0.1
        bad = (bad if four_d else bad[0, 0]).astype(dtype)
        with pytest.raises(ValueError, match="not separable") as info:
            F.rank1_factor(bad)
        assert "singular value" in str(info.value)
        if four_d:
            assert f"channel {victim}" in str(info.value)


def test_rank1_factor_edge_cases(rng):
    zero = np.zeros((3, 4))
    w_col, w_row = F.rank1_factor(zero)
    assert np.all(w_col == 0) and np.all(w_row == 0)
    # factors of a separable kernel run sepconv2d_1d as the 2-D depthwise conv
    cols, rows = rng.standard_normal((4, 5)), rng.standard_normal((4, 3))
    w = ref.outer_kernel(cols, rows)
    w_col, w_row = F.rank1_factor(w)
    x = randn(rng, (2, 4, 11, 9), np.float64)
    assert_close(F.sepconv2d_1d(x, w_col, w_row, padding=(2, 1)),
                 ref.conv2d(x, w, None, (1, 1), (2, 2, 1, 1), (1, 1), 4), "factored", 1e-12)
    # the sign convention: the column factor's largest entry is positive
    assert w_col[np.arange(4), np.abs(w_col).argmax(axis=1)].min() > 0
    # tolerance: a slightly perturbed kernel passes a loose rtol and fails the default one
    near = w + 1e-4 * rng.standard_normal(w.shape)
    F.rank1_factor(near, rtol=1e-2)
    with pytest.raises(ValueError, match="channel"):
        F.rank1_factor(near)
    with pytest.raises(ValueError, match="w must be"):
        F.rank1_factor(np.ones((2, 2, 3, 3)))
    with pytest.raises(ValueError, match="NaN"):
        F.rank1_factor(np.full((3, 3), np.nan))
    with pytest.raises(TypeError, match="w must be float32 or float64"):
        F.rank1_factor(np.ones((3, 3), np.int64))


# ---- depthwise and depthwise-separable conv2d -----------------------------------------------

def _separable_reference(dy, x, w_dw, w_pw, b, case):
    mid = ref.conv2d(x, w_dw, None, case.stride, case.pads, case.dilation, case.c)
    y = ref.conv2d(mid, w_pw, b)
    dmid, dw_pw, db = ref.conv2d_backward(dy, mid, w_pw)
    dx, dw_dw, _ = ref.conv2d_backward(dmid, x, w_dw, case.stride, case.pads, case.dilation, case.c)
    return y, (dx, dw_dw, dw_pw, db)


def _run_separable(rng, dtype):
    case = random_conv_case(rng, depthwise=True)  # groups == C, K = C * multiplier
    k_out = int(rng.integers(1, 6))
    x = randn(rng, case.x_shape, dtype)
    w_dw = randn(rng, case.w_shape, dtype)
    w_pw = randn(rng, (k_out, case.k, 1, 1), dtype)
    b = randn(rng, (k_out,), dtype)
    out_h = ref.out_extent(case.h, case.kh, case.stride[0], case.pads[0], case.pads[1], case.dilation[0])
    out_w = ref.out_extent(case.w, case.kw, case.stride[1], case.pads[2], case.pads[3], case.dilation[1])
    dy = randn(rng, (case.n, k_out, out_h, out_w), dtype)
    y_ref, grads_ref = _separable_reference(dy, x, w_dw, w_pw, b, case)
    # the same sums over |terms|: the scale their rounding works at (a one-element output or
    # gradient can cancel far below its terms: CI saw 1.35e-5 of itself on dw_pointwise)
    y_abs, grads_abs = _separable_reference(np.abs(dy), np.abs(x), np.abs(w_dw), np.abs(w_pw),
                                            np.abs(b), case)
    kw = dict(stride=case.stride, padding=case.pads, dilation=case.dilation)
    y = F.separable_conv2d(x, w_dw, w_pw, b, **kw)
    assert y.dtype == dtype
    ref.assert_close_sums(y, y_ref, y_abs, f"separable_conv2d forward {case} K={k_out}", TOL[dtype])
    grads = F.separable_conv2d_backward(dy, x, w_dw, w_pw, **kw)
    for name, got, want, scale in zip(("dx", "dw_depthwise", "dw_pointwise", "db"), grads,
                                      grads_ref, grads_abs):
        ref.assert_close_sums(got, want, scale, f"separable_conv2d {name} {case} K={k_out}",
                              TOL[dtype])
    # and the depthwise step alone
    args = (case.stride, case.pads, case.dilation, case.c)
    ref.assert_close_sums(F.depthwise_conv2d(x, w_dw, None, **kw), ref.conv2d(x, w_dw, None, *args),
                          ref.conv2d(np.abs(x), np.abs(w_dw), None, *args), f"depthwise_conv2d {case}",
                          TOL[dtype])


@pytest.mark.parametrize("case_id", range(N_CASES))
def test_separable_conv2d_random_float32(rng, case_id):
    _run_separable(rng, np.float32)


@pytest.mark.parametrize("case_id", range(20))
def test_separable_conv2d_random_float64(rng, case_id):
    _run_separable(rng, np.float64)


@pytest.mark.parametrize("case_id", range(40))
def test_depthwise_conv2d_backward_random(rng, case_id):
    case = random_conv_case(rng, depthwise=True)
    x = randn(rng, case.x_shape, np.float32)
    w = randn(rng, case.w_shape, np.float32)
    b = randn(rng, (case.k,), np.float32)
    out_h = ref.out_extent(case.h, case.kh, case.stride[0], case.pads[0], case.pads[1], case.dilation[0])
    out_w = ref.out_extent(case.w, case.kw, case.stride[1], case.pads[2], case.pads[3], case.dilation[1])
    dy = randn(rng, (case.n, case.k, out_h, out_w), np.float32)
    kw = dict(stride=case.stride, padding=case.pads, dilation=case.dilation)
    assert_close(F.depthwise_conv2d(x, w, b, **kw),
                 ref.conv2d(x, w, b, case.stride, case.pads, case.dilation, case.c), str(case), 1e-5)
    want = ref.conv2d_backward(dy, x, w, case.stride, case.pads, case.dilation, case.c)
    for got, exp in zip(F.depthwise_conv2d_backward(dy, x, w, **kw), want):
        assert_close(got, exp, f"depthwise backward {case}", 1e-5)


@pytest.mark.parametrize("case_id", range(4))
def test_separable_conv2d_finite_differences_float64(rng, case_id):
    case = random_conv_case(rng, depthwise=True)
    case.n = 1
    x = randn(rng, case.x_shape, np.float64)
    w_dw = randn(rng, case.w_shape, np.float64)
    w_pw = randn(rng, (2, case.k, 1, 1), np.float64)
    b = randn(rng, (2,), np.float64)
    kw = dict(stride=case.stride, padding=case.pads, dilation=case.dilation)
    y = F.separable_conv2d(x, w_dw, w_pw, b, **kw)
    dy = randn(rng, y.shape, np.float64)

    def loss():
        return float(np.sum(F.separable_conv2d(x, w_dw, w_pw, b, **kw) * dy))

    grads = F.separable_conv2d_backward(dy, x, w_dw, w_pw, **kw)
    for name, analytic, arr in zip(("x", "w_dw", "w_pw", "b"), grads, (x, w_dw, w_pw, b)):
        assert_close(analytic, ref.linear_numeric_grad(loss, arr), f"finite differences d{name} {case}", 1e-7)


def test_separable_conv2d_need_subsets(rng):
    x = randn(rng, (2, 3, 8, 7), np.float32)
    w_dw, w_pw = randn(rng, (6, 1, 3, 3), np.float32), randn(rng, (4, 6, 1, 1), np.float32)
    dy = randn(rng, (2, 4, 8, 7), np.float32)
    full = F.separable_conv2d_backward(dy, x, w_dw, w_pw, padding=1)
    names = ("x", "w_depthwise", "w_pointwise", "b")
    for i, name in enumerate(names):
        got = F.separable_conv2d_backward(dy, x, w_dw, w_pw, padding=1, need=(name,))
        assert all(g is None for j, g in enumerate(got) if j != i)
        np.testing.assert_array_equal(got[i], full[i])


def test_separable_matches_pytorch(rng):
    torch = pytest.importorskip("torch")
    x = randn(rng, (2, 4, 13, 11), np.float32)
    w_dw, w_pw = randn(rng, (8, 1, 3, 5), np.float32), randn(rng, (6, 8, 1, 1), np.float32)
    b = randn(rng, (6,), np.float32)
    mid = torch.nn.functional.conv2d(torch.from_numpy(x), torch.from_numpy(w_dw), None, 2, (1, 2), 1, 4)
    yt = torch.nn.functional.conv2d(mid, torch.from_numpy(w_pw), torch.from_numpy(b)).numpy()
    assert_close(F.separable_conv2d(x, w_dw, w_pw, b, stride=2, padding=(1, 2)), yt, "vs torch", 1e-5)


def test_sepconv2d_1d_rows_in_registers_exact(rng):
    """Stride-1 rank-1 kernels up to 8 taps with left pads up to 3 and padded rows up to 128
    columns run in registers on AVX-512 (depthwise_small_avx512.cpp, rank1_plane): every left
    pad, kernel sizes 1-8 (even ones too), rows filling the vectors exactly or by one, and one
    past the limit (the ring-buffer kernels). Small integers: exact against the 2-D form."""
    from isa import forced_isa
    for isa in ("scalar", "avx2", "avx512"):
        with forced_isa(isa):
            for kh, kw, pads in [(7, 7, (3, 3, 3, 3)), (3, 5, (1, 0, 2, 2)), (8, 8, (0, 3, 3, 0)),
                                 (1, 3, (0, 0, 1, 1)), (5, 1, (2, 2, 0, 0)), (2, 6, (1, 1, 0, 3))]:
                extra = pads[2] + pads[3]
                for width in (9, 16 - extra, 17 - extra, 60, 128 - extra, 129 - extra):
                    c, height = 3, 11
                    x = small_ints(rng, (2, c, height, width), np.float32)
                    w_col = small_ints(rng, (c, kh), np.float32)
                    w_row = small_ints(rng, (c, kw), np.float32)
                    b = small_ints(rng, (c,), np.float32)
                    w2 = ref.outer_kernel(w_col, w_row).astype(np.float32)
                    np.testing.assert_array_equal(
                        F.sepconv2d_1d(x, w_col, w_row, b, padding=pads),
                        F.conv2d(x, w2, b, padding=pads, groups=c, algo="reference"),
                        err_msg=f"isa={isa} k=({kh},{kw}) pads={pads} width={width}")
