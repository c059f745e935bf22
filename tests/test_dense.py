"""relu / relu_backward / matmul (python/convcore/_dense.py), the native helpers behind the book's
Relu and Affine layers: checked against float64 NumPy on random shapes, NaN handling, transposed
views, thread-count independence and bad input."""
import numpy as np
import pytest

import convcore
import convcore.functional as F


def _random_shape(rng):
    ndim = int(rng.integers(1, 5))
    return tuple(int(v) for v in rng.integers(1, 40, size=ndim))


@pytest.mark.parametrize("case", range(20))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_relu_forward_backward_match_numpy(rng, case, dtype):
    shape = _random_shape(rng) if case else (70001,)  # one array large enough to go threaded
    x = rng.standard_normal(shape).astype(dtype)
    x.reshape(-1)[:: 7] = 0.0  # exact zeros: the book's mask is x <= 0
    dy = rng.standard_normal(shape).astype(dtype)
    y = F.relu(x)
    assert y.dtype == dtype and y.shape == shape
    np.testing.assert_array_equal(y, np.where(x.astype(np.float64) <= 0, 0.0, x))
    dx = F.relu_backward(dy, y)
    np.testing.assert_array_equal(dx, np.where(x.astype(np.float64) <= 0, 0.0, dy))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_relu_out_and_in_place(rng, dtype):
    """out= writes the result into a given array, which may be the input itself."""
    x = rng.standard_normal((3, 5, 70001 // 15)).astype(dtype)
    dy = rng.standard_normal(x.shape).astype(dtype)
    want_y = F.relu(x)
    want_dx = F.relu_backward(dy, want_y)
    out = np.full_like(x, np.nan)
    assert F.relu(x, out=out) is out
    np.testing.assert_array_equal(out, want_y)
    x_copy = x.copy()
    assert F.relu(x_copy, out=x_copy) is x_copy
    np.testing.assert_array_equal(x_copy, want_y)
    dy_copy = dy.copy()
    assert F.relu_backward(dy_copy, want_y, out=dy_copy) is dy_copy
    np.testing.assert_array_equal(dy_copy, want_dx)


def test_relu_out_bad_input():
    x = np.ones((4, 5), np.float32)
    with pytest.raises(ValueError, match="relu: out must have shape"):
        F.relu(x, out=np.empty((5, 4), np.float32))
    with pytest.raises(TypeError, match="relu: out has dtype float64 but the input has float32"):
        F.relu(x, out=np.empty((4, 5), np.float64))
    with pytest.raises(ValueError, match="relu: out must be C-contiguous"):
        F.relu(x, out=np.empty((5, 4), np.float32).T)
    frozen = np.empty((4, 5), np.float32)
    frozen.flags.writeable = False
    with pytest.raises(ValueError, match="relu_backward: out must be C-contiguous and writeable"):
        F.relu_backward(x, x, out=frozen)
    with pytest.raises(TypeError, match="relu: out must be a NumPy array"):
        F.relu(x, out=[0.0] * 20)


def test_relu_keeps_nan_like_the_book():
    x = np.array([np.nan, -1.0, 0.0, 2.0, -0.0], np.float32)
    y = F.relu(x)
    np.testing.assert_array_equal(y, [np.nan, 0, 0, 2, 0])
    dx = F.relu_backward(np.full(5, 3.0, np.float32), y)
    np.testing.assert_array_equal(dx, [3, 0, 0, 3, 0])


def test_relu_independent_of_thread_count(rng):
    x = rng.standard_normal((3, 70, 700)).astype(np.float32)
    before = convcore.get_num_threads()
    try:
        outs = []
        for threads in (1, 2, 3):
            convcore.set_num_threads(threads)
            outs.append((F.relu(x), F.relu_backward(x, F.relu(x))))
    finally:
        convcore.set_num_threads(before)
    for y, dx in outs[1:]:
        np.testing.assert_array_equal(y, outs[0][0])
        np.testing.assert_array_equal(dx, outs[0][1])


@pytest.mark.parametrize("case", range(25))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_matmul_matches_float64(rng, case, dtype):
    m, k, n = (int(v) for v in rng.integers(1, 130, size=3))
    a = rng.standard_normal((m, k))
    b = rng.standard_normal((k, n))
    # alternate plain arrays and transposed views (passed to the GEMM without a copy)
    a_in = a.astype(dtype) if case % 2 else np.ascontiguousarray(a.T.astype(dtype)).T
    b_in = b.astype(dtype) if case % 3 else np.ascontiguousarray(b.T.astype(dtype)).T
    got = F.matmul(a_in, b_in)
    ref = a_in.astype(np.float64) @ b_in.astype(np.float64)
    assert got.dtype == dtype and got.shape == (m, n)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    assert np.max(np.abs(got - ref)) <= tol * max(np.max(np.abs(ref)), 1.0) * np.sqrt(k)


def test_matmul_non_contiguous_views_are_copied(rng):
    a = rng.standard_normal((40, 30)).astype(np.float32)[::2, ::3]
    b = rng.standard_normal((10, 7)).astype(np.float32)
    np.testing.assert_allclose(F.matmul(a, b), a.astype(np.float64) @ b, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("call, exc, words", [
    (lambda: F.relu(np.arange(4)), TypeError, "relu: x"),
    (lambda: F.relu("abc"), TypeError, "relu: x"),
    (lambda: F.relu_backward(np.ones(3, np.float32), np.ones(4, np.float32)), ValueError, "dy"),
    (lambda: F.relu_backward(np.ones(3, np.float64), np.ones(3, np.float32)), TypeError, "dy"),
    (lambda: F.matmul(np.ones((2, 3), np.float32), np.ones((4, 2), np.float32)), ValueError, "a.shape[1]"),
    (lambda: F.matmul(np.ones(3, np.float32), np.ones((3, 2), np.float32)), ValueError, "a must be 2-D"),
    (lambda: F.matmul(np.ones((2, 3), np.float32), np.ones((3, 2), np.float64)), TypeError, "dtype"),
    (lambda: F.matmul(np.ones((2, 3), np.int32), np.ones((3, 2), np.int32)), TypeError, "a must be float"),
])
def test_bad_input_names_the_argument(call, exc, words):
    with pytest.raises(exc, match=None) as info:
        call()
    assert words in str(info.value)


def test_book_layers_use_them_and_keep_the_book_attributes(rng):
    from convcore.layers import Affine, Relu
    relu = Relu()
    x = rng.standard_normal((4, 5)).astype(np.float32)
    out = relu.forward(x)
    np.testing.assert_array_equal(relu.mask, x <= 0)
    np.testing.assert_array_equal(relu.backward(np.ones_like(x)), (x > 0).astype(np.float32))
    relu.mask = np.zeros_like(x, dtype=bool)  # code that edits the mask is obeyed
    np.testing.assert_array_equal(relu.backward(np.ones_like(x)), np.ones_like(x))
    assert out.dtype == np.float32
    aff = Affine(rng.standard_normal((20, 3)).astype(np.float32), np.zeros(3, np.float32))
    xin = rng.standard_normal((4, 2, 10)).astype(np.float32)
    y = aff.forward(xin)
    np.testing.assert_allclose(y, xin.reshape(4, -1).astype(np.float64) @ aff.W, rtol=1e-5, atol=1e-6)
    dout = rng.standard_normal((4, 3)).astype(np.float32)
    dx = aff.backward(dout)
    assert dx.shape == xin.shape
    np.testing.assert_allclose(aff.dW, xin.reshape(4, -1).T.astype(np.float64) @ dout, rtol=1e-5, atol=1e-6)
