"""Book-style layers: backward against central finite differences (float64), the book's tie and
padding rules for Pooling, and a drop-in check against the book's im2col + dot NumPy math."""
import numpy as np
import pytest

import convcore

from convcore import layers as L
from reference import rel_error

GRAD_TOL = 1e-6


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """These shapes are tiny: on a loaded machine, waking OpenMP workers for each call costs
    far more than the work (a 70x slowdown was measured on 2 shared cores)."""
    before = convcore.get_num_threads()
    convcore.set_num_threads(1)
    yield
    convcore.set_num_threads(before)


def numeric_grad(f, arr, eps=1e-6):
    """d f() / d arr by central differences, perturbing `arr` in place (restored after)."""
    grad = np.zeros_like(arr, dtype=np.float64)
    flat, gflat = arr.reshape(-1), grad.reshape(-1)
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + eps
        plus = f()
        flat[i] = old - eps
        minus = f()
        flat[i] = old
        gflat[i] = (plus - minus) / (2 * eps)
    return grad


def _forward(layer, x, train_flg):
    return layer.forward(x, train_flg) if layer.takes_train_flg else layer.forward(x)


def check_layer(layer, x, rng, train_flg=True, tol=GRAD_TOL):
    """Backward of `layer` at x against finite differences of sum(forward(x) * dout), for the
    input and every parameter the layer declares."""
    y = _forward(layer, x, train_flg)
    dout = rng.standard_normal(y.shape)
    dx = layer.backward(dout.copy())
    analytic = {"x": dx, **{name: getattr(layer, "d" + name) for name in layer.params}}

    def f():
        return float(np.sum(_forward(layer, x, train_flg) * dout))

    targets = {"x": x, **{name: getattr(layer, name) for name in layer.params}}
    for name, arr in targets.items():
        num = numeric_grad(f, arr)
        assert analytic[name].shape == arr.shape, name
        err = rel_error(analytic[name], num)
        assert err < tol, f"{type(layer).__name__} d{name}: relative error {err:.3g}"


def randn(rng, *shape):
    return rng.standard_normal(shape)


# ---- gradients --------------------------------------------------------------------------------

@pytest.mark.parametrize("stride,pad", [(1, 0), (2, 1), (1, 2), (3, 1)])
def test_convolution_gradients(rng, stride, pad):
    layer = L.Convolution(randn(rng, 4, 3, 3, 3), randn(rng, 4), stride=stride, pad=pad)
    check_layer(layer, randn(rng, 2, 3, 7, 6), rng)


@pytest.mark.parametrize("stride,pad", [(2, 0), (2, 1), (1, 1), (3, 2)])
def test_pooling_gradients_with_padding(rng, stride, pad):
    # negative inputs make the zero padding the maximum of some border windows
    layer = L.Pooling(2, 3, stride=stride, pad=pad)
    check_layer(layer, randn(rng, 2, 3, 7, 8), rng)


def test_pooling_ties_go_to_first_maximum():
    # every window of this plane holds its maximum twice or more
    x = np.array([[[[1., 1., 0., 2.],
                    [1., 0., 2., 2.],
                    [3., 3., 1., 1.],
                    [3., 3., 1., 1.]]]])
    layer = L.Pooling(2, 2, stride=2)
    np.testing.assert_array_equal(layer.forward(x), [[[[1., 2.], [3., 1.]]]])
    dx = layer.backward(np.array([[[[10., 20.], [30., 40.]]]]))
    expected = np.zeros_like(x)
    expected[0, 0, 0, 0] = 10   # first of the three 1s
    expected[0, 0, 0, 3] = 20   # (0, 3) comes before (1, 2) and (1, 3) in (ky, kx) order
    expected[0, 0, 2, 0] = 30
    expected[0, 0, 2, 2] = 40
    np.testing.assert_array_equal(dx, expected)
    np.testing.assert_array_equal(layer.arg_max, [0, 1, 0, 0])


def test_pooling_pads_with_zeros_not_minus_infinity():
    x = -np.arange(1.0, 5.0).reshape(1, 1, 2, 2)          # all negative
    layer = L.Pooling(2, 2, stride=2, pad=1)
    out = layer.forward(x)
    # every window holds three pads and one negative input: the book's maximum is a pad's 0
    np.testing.assert_array_equal(out, np.zeros((1, 1, 2, 2)))
    # padding wins every window (ties with zeros go to the first position, a pad), so no
    # gradient reaches x
    np.testing.assert_array_equal(layer.backward(np.ones((1, 1, 2, 2))), np.zeros_like(x))


def test_pooling_overlapping_windows_sum_gradients():
    x = np.zeros((1, 1, 3, 3))
    x[0, 0, 1, 1] = 5.0     # the maximum of all four overlapping 2x2 windows
    layer = L.Pooling(2, 2, stride=1)
    layer.forward(x)
    dx = layer.backward(np.ones((1, 1, 2, 2)))
    assert dx[0, 0, 1, 1] == 4.0 and dx.sum() == 4.0


def test_pooling_default_stride_follows_design_guide():
    assert L.Pooling(2, 2).stride == 2


def test_relu_sigmoid_gradients(rng):
    x = randn(rng, 3, 5)
    x[np.abs(x) < 1e-3] = 0.5     # keep away from the kink
    check_layer(L.Relu(), x, rng)
    check_layer(L.Sigmoid(), randn(rng, 2, 3, 4), rng)


def test_relu_backward_leaves_dout_untouched(rng):
    relu = L.Relu()
    relu.forward(randn(rng, 4, 4))
    dout = randn(rng, 4, 4)
    before = dout.copy()
    relu.backward(dout)
    np.testing.assert_array_equal(dout, before)


def test_affine_flattens_and_restores_shape(rng):
    layer = L.Affine(randn(rng, 3 * 4 * 2, 5), randn(rng, 5))
    x = randn(rng, 2, 3, 4, 2)
    assert layer.forward(x).shape == (2, 5)
    check_layer(layer, x, rng)
    assert layer.original_x_shape == x.shape and layer.x.shape == (2, 24)


def test_dropout_with_fixed_mask(rng):
    layer = L.Dropout(0.4)
    mask = rng.random((3, 6)) > 0.4
    layer._draw_mask = lambda shape: mask
    x = randn(rng, 3, 6)
    np.testing.assert_array_equal(layer.forward(x), x * mask)
    check_layer(layer, x, rng)
    np.testing.assert_allclose(layer.forward(x, train_flg=False), x * 0.6)


def test_dropout_rng_makes_masks_reproducible():
    x = np.ones((4, 5))
    a = L.Dropout(0.5, rng=np.random.default_rng(3)).forward(x)
    b = L.Dropout(0.5, rng=np.random.default_rng(3)).forward(x)
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("shape,gamma_size", [((6, 5), 5), ((4, 2, 3, 3), 18), ((3, 4, 3, 2), 4)])
def test_batchnorm_train_mode_gradients(rng, shape, gamma_size):
    layer = L.BatchNormalization(1 + 0.1 * randn(rng, gamma_size), randn(rng, gamma_size))
    check_layer(layer, randn(rng, *shape) * 2 + 1, rng, train_flg=True)
    assert layer.dgamma.shape == (gamma_size,)


def test_batchnorm_running_stats_and_test_mode(rng):
    x = randn(rng, 50, 3) * 3 + 2
    layer = L.BatchNormalization(np.ones(3), np.zeros(3), momentum=0.9)
    y = layer.forward(x, train_flg=True)
    np.testing.assert_allclose(y.mean(axis=0), 0, atol=1e-12)
    np.testing.assert_allclose(layer.running_mean, 0.1 * x.mean(axis=0))
    np.testing.assert_allclose(layer.running_var, 0.1 * x.var(axis=0))
    y_test = layer.forward(x, train_flg=False)
    expected = (x - layer.running_mean) / np.sqrt(layer.running_var + layer.eps)
    np.testing.assert_allclose(y_test, expected)


def test_batchnorm_per_channel_normalises_over_n_h_w(rng):
    x = randn(rng, 4, 3, 5, 5) * 2 + 1
    y = L.BatchNormalization(np.ones(3), np.zeros(3)).forward(x)
    np.testing.assert_allclose(y.mean(axis=(0, 2, 3)), 0, atol=1e-12)
    np.testing.assert_allclose(y.var(axis=(0, 2, 3)), 1, rtol=1e-5)


@pytest.mark.parametrize("one_hot", [True, False])
def test_softmax_with_loss(rng, one_hot):
    x = randn(rng, 4, 5)
    labels = rng.integers(0, 5, 4)
    t = np.eye(5)[labels] if one_hot else labels
    layer = L.SoftmaxWithLoss()
    loss = layer.forward(x, t)
    p = np.exp(x) / np.exp(x).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(loss, -np.mean(np.log(p[np.arange(4), labels] + 1e-7)))
    dx = layer.backward()
    num = numeric_grad(lambda: layer.forward(x, t), x)
    # the book's 1e-7 inside the log shifts the loss's slope by about 1e-7 / p (relative), so
    # the bound grows where the true class is improbable
    p_true = p[np.arange(4), labels]
    assert rel_error(dx, num) < 1e-5 + 2e-7 / p_true.min()
    layer.forward(x, t)   # the finite differences left the last perturbed forward's cache
    np.testing.assert_allclose(layer.backward(dout=2.0), 2 * dx)


def test_depthwise_conv_gradients(rng):
    layer = L.DepthwiseConv(randn(rng, 3, 1, 3, 3), randn(rng, 3), stride=2, pad=1)
    check_layer(layer, randn(rng, 2, 3, 6, 7), rng)


def test_separable_conv_gradients(rng):
    layer = L.SeparableConv(randn(rng, 3, 1, 3, 3), randn(rng, 4, 3, 1, 1), randn(rng, 4),
                            stride=1, pad=1)
    check_layer(layer, randn(rng, 2, 3, 5, 5), rng)


def test_conv1d_gradients(rng):
    layer = L.Conv1D(randn(rng, 4, 3, 3), randn(rng, 4), stride=2, pad=1)
    check_layer(layer, randn(rng, 2, 3, 9), rng)


def test_conv_transpose_gradients_and_shape(rng):
    layer = L.ConvTranspose(randn(rng, 3, 2, 4, 4), randn(rng, 2), stride=2, pad=1)
    x = randn(rng, 2, 3, 4, 5)
    assert layer.forward(x).shape == (2, 2, 8, 10)
    check_layer(layer, x, rng)


def test_global_avg_pool_gradients(rng):
    check_layer(L.GlobalAvgPool(), randn(rng, 2, 3, 4, 5), rng)


def test_residual_block_gradients(rng):
    main = L.Sequential(L.Convolution(randn(rng, 3, 3, 3, 3), randn(rng, 3), pad=1),
                        L.Sigmoid())
    shortcut = L.Sequential(L.Convolution(randn(rng, 3, 3, 1, 1), randn(rng, 3)))
    block = L.ResidualBlock(main, shortcut, post=L.Sigmoid())
    x = randn(rng, 2, 3, 4, 4)
    y = block.forward(x)
    dout = randn(rng, *y.shape)
    dx = block.backward(dout)
    f = lambda: float(np.sum(block.forward(x) * dout))  # noqa: E731
    assert rel_error(dx, numeric_grad(f, x)) < GRAD_TOL
    analytic = [(layer, attr, getattr(layer, "d" + attr)) for layer, attr in L.param_slots([block])]
    assert len(analytic) == 4
    for layer, attr, grad in analytic:
        assert rel_error(grad, numeric_grad(f, getattr(layer, attr))) < GRAD_TOL, attr


def test_add_layer():
    add = L.Add()
    np.testing.assert_array_equal(add.forward(np.ones(3), np.full(3, 2.0)), np.full(3, 3.0))
    a, b = add.backward(np.arange(3.0))
    np.testing.assert_array_equal(a, np.arange(3.0))
    np.testing.assert_array_equal(b, np.arange(3.0))


def test_mixed_dtypes_promote_like_numpy(rng):
    # the book's float64 weights with float32 data compute in float64, as NumPy would
    layer = L.Convolution(randn(rng, 2, 1, 3, 3), np.zeros(2), pad=1)
    y = layer.forward(randn(rng, 2, 1, 5, 5).astype(np.float32))
    assert y.dtype == np.float64
    layer.backward(np.ones_like(y))
    assert layer.dW.dtype == np.float64
    f32 = L.Convolution(randn(rng, 2, 1, 3, 3).astype(np.float32), np.zeros(2, np.float32))
    assert f32.forward(randn(rng, 1, 1, 5, 5).astype(np.float32)).dtype == np.float32


# ---- drop-in check against the book's NumPy math ---------------------------------------------

def book_im2col(x, fh, fw, stride, pad):
    """The book's layout from its description: rows (n, y, x), columns (c, ky, kx)."""
    n, c, h, w = x.shape
    out_h, out_w = (h + 2 * pad - fh) // stride + 1, (w + 2 * pad - fw) // stride + 1
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    col = np.zeros((n, c, fh, fw, out_h, out_w))
    for ky in range(fh):
        for kx in range(fw):
            col[:, :, ky, kx] = xp[:, :, ky:ky + stride * out_h:stride, kx:kx + stride * out_w:stride]
    return col.transpose(0, 4, 5, 1, 2, 3).reshape(n * out_h * out_w, -1)


def book_col2im(col, shape, fh, fw, stride, pad):
    n, c, h, w = shape
    out_h, out_w = (h + 2 * pad - fh) // stride + 1, (w + 2 * pad - fw) // stride + 1
    col = col.reshape(n, out_h, out_w, c, fh, fw).transpose(0, 3, 4, 5, 1, 2)
    xp = np.zeros((n, c, h + 2 * pad, w + 2 * pad))
    for ky in range(fh):
        for kx in range(fw):
            xp[:, :, ky:ky + stride * out_h:stride, kx:kx + stride * out_w:stride] += col[:, :, ky, kx]
    return xp[:, :, pad:pad + h, pad:pad + w]


class BookConvolution:
    def __init__(self, W, b, stride, pad):
        self.W, self.b, self.stride, self.pad = W, b, stride, pad

    def forward(self, x):
        fn, _, fh, fw = self.W.shape
        n, _, h, w = x.shape
        out_h = (h + 2 * self.pad - fh) // self.stride + 1
        out_w = (w + 2 * self.pad - fw) // self.stride + 1
        self.x = x
        self.col = book_im2col(x, fh, fw, self.stride, self.pad)
        self.col_W = self.W.reshape(fn, -1).T
        out = self.col @ self.col_W + self.b
        return out.reshape(n, out_h, out_w, -1).transpose(0, 3, 1, 2)

    def backward(self, dout):
        fn, c, fh, fw = self.W.shape
        dout = dout.transpose(0, 2, 3, 1).reshape(-1, fn)
        self.db = dout.sum(axis=0)
        self.dW = (self.col.T @ dout).T.reshape(fn, c, fh, fw)
        dcol = dout @ self.col_W.T
        return book_col2im(dcol, self.x.shape, fh, fw, self.stride, self.pad)


class BookPooling:
    def __init__(self, ph, pw, stride, pad):
        self.ph, self.pw, self.stride, self.pad = ph, pw, stride, pad

    def forward(self, x):
        n, c, h, w = x.shape
        out_h = (h + 2 * self.pad - self.ph) // self.stride + 1
        out_w = (w + 2 * self.pad - self.pw) // self.stride + 1
        col = book_im2col(x, self.ph, self.pw, self.stride, self.pad).reshape(-1, self.ph * self.pw)
        self.x, self.arg_max = x, np.argmax(col, axis=1)
        return col.max(axis=1).reshape(n, out_h, out_w, c).transpose(0, 3, 1, 2)

    def backward(self, dout):
        dout = dout.transpose(0, 2, 3, 1)
        dmax = np.zeros((dout.size, self.ph * self.pw))
        dmax[np.arange(self.arg_max.size), self.arg_max] = dout.reshape(-1)
        dcol = dmax.reshape(dout.shape[0] * dout.shape[1] * dout.shape[2], -1)
        return book_col2im(dcol, self.x.shape, self.ph, self.pw, self.stride, self.pad)


@pytest.mark.parametrize("stride,pad", [(1, 0), (2, 1), (1, 1), (2, 2)])
def test_convolution_matches_book_numpy(rng, stride, pad):
    W, b, x = randn(rng, 5, 3, 3, 3), randn(rng, 5), randn(rng, 2, 3, 8, 7)
    ours, book = L.Convolution(W, b, stride, pad), BookConvolution(W, b, stride, pad)
    y, y_book = ours.forward(x), book.forward(x)
    assert rel_error(y, y_book) < 1e-12
    np.testing.assert_allclose(ours.col, book.col, rtol=0, atol=0)
    np.testing.assert_array_equal(ours.col_W, book.col_W)
    dout = randn(rng, *y.shape)
    assert rel_error(ours.backward(dout), book.backward(dout)) < 1e-12
    assert rel_error(ours.dW, book.dW) < 1e-12
    assert rel_error(ours.db, book.db) < 1e-12


@pytest.mark.parametrize("ph,pw,stride,pad", [(2, 2, 2, 0), (3, 3, 2, 1), (2, 2, 1, 1), (3, 2, 3, 1)])
@pytest.mark.parametrize("ties", [False, True])
def test_pooling_matches_book_numpy(rng, ph, pw, stride, pad, ties):
    x = rng.integers(-2, 3, (2, 3, 7, 8)).astype(np.float64) if ties else randn(rng, 2, 3, 7, 8)
    ours, book = L.Pooling(ph, pw, stride, pad), BookPooling(ph, pw, stride, pad)
    y = ours.forward(x)
    np.testing.assert_array_equal(y, book.forward(x))
    np.testing.assert_array_equal(ours.arg_max, book.arg_max)
    dout = randn(rng, *y.shape)
    assert rel_error(ours.backward(dout), book.backward(dout)) < 1e-12
