"""im2col / col2im in the book's layout (rows (n, oy, ox), columns (c, ky, kx)), generalised to
pair strides, asymmetric padding and dilation; col2im is im2col's adjoint."""
import numpy as np
import pytest

import convcore
import convcore.functional as F

import reference as ref
from cases import randn
from reference import assert_close

N_CASES = 200
TOL = {np.float32: 1e-5, np.float64: 1e-12}


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny shapes: a thread team costs more than the work (see test_separable.py)."""
    before = convcore.get_num_threads()
    convcore.set_num_threads(1)
    yield
    convcore.set_num_threads(before)


def random_im2col_case(rng):
    kh, kw = (int(v) for v in rng.integers(1, 6, size=2))
    stride = tuple(int(v) for v in rng.integers(1, 5, size=2))
    dilation = tuple(int(v) for v in rng.choice([1, 1, 2, 3], size=2))
    pads = tuple(int(v) for v in rng.integers(0, 5, size=4)) if rng.random() < 0.7 else (0, 0, 0, 0)
    extents = []
    for k, d, before, after, s in ((kh, dilation[0], pads[0], pads[1], stride[0]),
                                   (kw, dilation[1], pads[2], pads[3], stride[1])):
        low = max(1, d * (k - 1) + 1 - before - after)
        extents.append(int(rng.integers(low, low + 3 * s + 6)))
    if rng.random() < 0.1:
        kh = kw = 1
        extents = [1, 1]
    n, c = int(rng.choice([1, 1, 2, 3])), int(rng.integers(1, 5))
    return dict(x_shape=(n, c, extents[0], extents[1]), kh=kh, kw=kw, stride=stride, pads=pads,
                dilation=dilation)


def _kwargs(case):
    return dict(stride=case["stride"], padding=case["pads"], dilation=case["dilation"])


def _ref_args(case):
    return (case["kh"], case["kw"], case["stride"], case["pads"], case["dilation"])


def _run(rng, case, dtype):
    x = randn(rng, case["x_shape"], dtype)
    col_ref = ref.im2col(x, *_ref_args(case))
    col = F.im2col(x, case["kh"], case["kw"], **_kwargs(case))
    assert col.dtype == dtype
    assert_close(col, col_ref, f"im2col {case}", TOL[dtype])
    c = randn(rng, col_ref.shape, dtype)
    back = F.col2im(c, case["x_shape"], case["kh"], case["kw"], **_kwargs(case))
    assert back.dtype == dtype
    assert_close(back, ref.col2im(c, case["x_shape"], *_ref_args(case)), f"col2im {case}", TOL[dtype])
    # col2im is the adjoint of im2col: <im2col(x), c> == <x, col2im(c)>
    lhs = np.sum(col.astype(np.float64) * c)
    rhs = np.sum(x.astype(np.float64) * back)
    scale = np.sum(np.abs(col_ref) * np.abs(c)) + 1e-30
    assert abs(lhs - rhs) <= TOL[dtype] * scale, f"adjoint {lhs} vs {rhs} {case}"


@pytest.mark.parametrize("case_id", range(N_CASES))
def test_im2col_col2im_random_float32(rng, case_id):
    _run(rng, random_im2col_case(rng), np.float32)


@pytest.mark.parametrize("case_id", range(30))
def test_im2col_col2im_random_float64(rng, case_id):
    _run(rng, random_im2col_case(rng), np.float64)


@pytest.mark.parametrize("case_id", range(30))
def test_im2col_matches_the_book(rng, case_id):
    """The book's call: an int stride and an int pad, no dilation."""
    kh, kw = (int(v) for v in rng.integers(1, 6, size=2))
    stride, pad = int(rng.integers(1, 4)), int(rng.integers(0, 3))
    h = int(rng.integers(max(1, kh - 2 * pad), 12))
    w = int(rng.integers(max(1, kw - 2 * pad), 12))
    x = randn(rng, (int(rng.integers(1, 4)), int(rng.integers(1, 4)), h, w), np.float32)
    np.testing.assert_array_equal(F.im2col(x, kh, kw, stride, pad),
                                  ref.im2col_book(x, kh, kw, stride, pad).astype(np.float32))


@pytest.mark.parametrize("case_id", range(6))
def test_im2col_finite_differences_float64(rng, case_id):
    """d/dx sum(im2col(x) * c) = col2im(c), and d/dcol sum(col2im(col) * g) = im2col(g)."""
    case = random_im2col_case(rng)
    case["x_shape"] = (1,) + case["x_shape"][1:]
    x = randn(rng, case["x_shape"], np.float64)
    c = randn(rng, ref.im2col(x, *_ref_args(case)).shape, np.float64)
    args = (case["kh"], case["kw"])
    grad = F.col2im(c, x.shape, *args, **_kwargs(case))
    numeric = ref.linear_numeric_grad(lambda: float(np.sum(F.im2col(x, *args, **_kwargs(case)) * c)), x)
    assert_close(grad, numeric, f"d im2col {case}", 1e-7)
    g = randn(rng, x.shape, np.float64)
    numeric = ref.linear_numeric_grad(lambda: float(np.sum(F.col2im(c, x.shape, *args, **_kwargs(case)) * g)), c)
    assert_close(F.im2col(g, *args, **_kwargs(case)), numeric, f"d col2im {case}", 1e-7)


@pytest.mark.parametrize("case_id", range(20))
def test_im2col_matches_pytorch_unfold(rng, case_id):
    torch = pytest.importorskip("torch")
    case = random_im2col_case(rng)
    x = randn(rng, case["x_shape"], np.float32)
    n = x.shape[0]
    top, bottom, left, right = case["pads"]
    xt = torch.nn.functional.pad(torch.from_numpy(x), (left, right, top, bottom))
    # unfold: (N, C*kh*kw, L) with L in (oy, ox) order -> the book's (N*L, C*kh*kw)
    cols = torch.nn.functional.unfold(xt, (case["kh"], case["kw"]), dilation=case["dilation"],
                                      stride=case["stride"])
    want = cols.transpose(1, 2).reshape(n * cols.shape[2], cols.shape[1]).numpy()
    np.testing.assert_array_equal(F.im2col(x, case["kh"], case["kw"], **_kwargs(case)), want)
    # fold is unfold's adjoint, as col2im is im2col's
    c = randn(rng, want.shape, np.float32)
    folded = torch.nn.functional.fold(
        torch.from_numpy(c).reshape(n, -1, c.shape[1]).transpose(1, 2),
        xt.shape[2:], (case["kh"], case["kw"]), dilation=case["dilation"], stride=case["stride"])
    folded = folded[:, :, top:folded.shape[2] - bottom, left:folded.shape[3] - right].numpy()
    assert_close(F.col2im(c, x.shape, case["kh"], case["kw"], **_kwargs(case)), folded,
                 f"col2im vs fold {case}", 1e-5)


def test_im2col_thread_counts_agree(rng):
    x = randn(rng, (4, 3, 15, 13), np.float32)
    c = randn(rng, (4 * 7 * 6, 3 * 9), np.float32)
    results = []
    for threads in (1, 2, 3):
        convcore.set_num_threads(threads)
        results.append((F.im2col(x, 3, 3, 2, 1), F.col2im(c, x.shape, 3, 3, 2, 0)))
    convcore.set_num_threads(1)
    for later in results[1:]:
        for a, b in zip(results[0], later):
            np.testing.assert_array_equal(a, b)
