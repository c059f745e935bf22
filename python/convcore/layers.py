"""Layers in the style of "Deep Learning from Scratch", running on convcore's native ops.

Every layer keeps the book's constructor arguments, attribute names and `forward`/`backward`
protocol, so NumPy code written for the book's layers works unchanged:

    conv = Convolution(W, b, stride=1, pad=1)
    y = conv.forward(x)
    dx = conv.backward(dy)      # also sets conv.dW and conv.db

Parameters are held by reference (the optimizer updates `network.params[...]` in place and the
layer sees it). Inputs of another dtype are promoted the way NumPy would promote them
(float32 data with the book's float64 weights computes in float64), because the native ops
refuse mixed dtypes rather than change precision silently.

CuPy arrays work too (the book's sequel runs its layers on CuPy): the convolution and pooling
layers call the same functional ops, which run convcore's CUDA kernels on GPU arrays, and the
elementwise code uses the input's array namespace (numpy or cupy). Parameters must then be
CuPy arrays as well, e.g. `net.params[k] = cupy.asarray(v)` for every key; Dropout still draws
its masks from np.random (so np.random.seed reproduces a run) and copies them to the GPU.

Where the book's conventions differ from the functional API (PyTorch's), the layer translates:
book max pooling pads with zeros and sends ties to the first maximum; the functional
`max_pool2d` pads with -inf, so `Pooling` zero-pads itself and then pools with padding 0.
"""
import numpy as np

from . import functional as F
from ._gpu import array_namespace, is_gpu_array

__all__ = [
    "Convolution", "Pooling", "Relu", "Sigmoid", "Affine", "Dropout", "BatchNormalization",
    "SoftmaxWithLoss", "DepthwiseConv", "SeparableConv", "Conv1D", "ConvTranspose",
    "GlobalAvgPool", "LocallyConnected", "TiledConv", "Add", "Sequential", "ResidualBlock", "softmax", "cross_entropy_error",
    "param_slots",
]


def _float_dtype(*arrays):
    """The dtype NumPy arithmetic would give these arrays, narrowed to what the kernels take."""
    # GPU arrays take part through their dtypes (NumPy cannot convert them)
    dtype = np.result_type(*(a.dtype if is_gpu_array(a) else a for a in arrays))
    if dtype == np.float32 or dtype == np.float64:
        return dtype
    if dtype == np.float16:
        return np.dtype(np.float32)
    return np.dtype(np.float64)


def _as(arr, dtype):
    if is_gpu_array(arr):
        return arr if arr.dtype == dtype else arr.astype(dtype)
    return np.asarray(arr, dtype=dtype)


def _is_float_ndarray(a):
    return isinstance(a, np.ndarray) and (a.dtype == np.float32 or a.dtype == np.float64)


def _matmul(a, b):
    """a @ b, on convcore's GEMM when both are float arrays of one dtype (one thread pool for the
    whole step), else NumPy's (which also promotes mixed dtypes the way the book's code expects)."""
    if _is_float_ndarray(a) and _is_float_ndarray(b) and a.dtype == b.dtype and a.ndim == b.ndim == 2:
        return F.matmul(a, b)
    return a @ b


class Layer:
    """Common protocol: `params` names the attributes that hold parameters (their gradients
    live in 'd' + name after backward); `takes_train_flg` says forward accepts train_flg."""
    params = ()
    takes_train_flg = False

    def sublayers(self):
        return ()


# ---- convolutions ------------------------------------------------------------------------------

class Convolution(Layer):
    """The book's Convolution: W (FN, C, FH, FW), b (FN,), square stride and pad.

    After forward it keeps `x`; `col` (N*out_h*out_w, C*FH*FW) and `col_W` (C*FH*FW, FN), which
    the book's im2col implementation materialises, are built only when someone reads them: the
    native kernel does not need them, and building them on every step would cost memory and time.
    """
    params = ("W", "b")

    def __init__(self, W, b, stride=1, pad=0):
        self.W = W
        self.b = b
        self.stride = stride
        self.pad = pad
        self.x = None
        self.dW = None
        self.db = None
        self._col = None

    @property
    def col(self):
        if self._col is None and self.x is not None:
            _, _, fh, fw = self.W.shape
            self._col = F.im2col(self._compute_x(), fh, fw, self.stride, self.pad)
        return self._col

    @property
    def col_W(self):
        return self.W.reshape(self.W.shape[0], -1).T

    def _compute_x(self):
        return _as(self.x, _float_dtype(self.x, self.W))

    def forward(self, x):
        self.x = x
        self._col = None
        dtype = _float_dtype(x, self.W, self.b)
        return F.conv2d(_as(x, dtype), _as(self.W, dtype), _as(self.b, dtype),
                        stride=self.stride, padding=self.pad)

    def backward(self, dout):
        dtype = _float_dtype(dout, self.x, self.W)
        dx, dW, db = F.conv2d_backward(_as(dout, dtype), _as(self.x, dtype), _as(self.W, dtype),
                                       stride=self.stride, padding=self.pad)
        self.dW = dW.astype(self.W.dtype, copy=False)
        self.db = db.astype(self.b.dtype, copy=False)
        return dx


class DepthwiseConv(Convolution):
    """Depthwise convolution: W (C, 1, FH, FW), one filter per input channel (groups = C);
    the native dispatcher picks its depthwise kernel for this shape."""

    def forward(self, x):
        self.x = x
        self._col = None
        dtype = _float_dtype(x, self.W, self.b)
        return F.conv2d(_as(x, dtype), _as(self.W, dtype), _as(self.b, dtype),
                        stride=self.stride, padding=self.pad, groups=self.W.shape[0])

    def backward(self, dout):
        dtype = _float_dtype(dout, self.x, self.W)
        dx, dW, db = F.conv2d_backward(_as(dout, dtype), _as(self.x, dtype), _as(self.W, dtype),
                                       stride=self.stride, padding=self.pad,
                                       groups=self.W.shape[0])
        self.dW = dW.astype(self.W.dtype, copy=False)
        self.db = db.astype(self.b.dtype, copy=False)
        return dx

    @property
    def col(self):
        raise AttributeError("DepthwiseConv has no single im2col matrix (one per channel)")


class SeparableConv(Layer):
    """Depthwise separable convolution (MobileNet/Xception): a depthwise FHxFW convolution
    W_depthwise (C, 1, FH, FW) carrying the stride and pad, then a pointwise 1x1 convolution
    W_pointwise (K, C, 1, 1) with bias b (K,). Gradients: dW_depthwise, dW_pointwise, db."""
    params = ("W_depthwise", "W_pointwise", "b")

    def __init__(self, W_depthwise, W_pointwise, b, stride=1, pad=0):
        self.W_depthwise = W_depthwise
        self.W_pointwise = W_pointwise
        self.b = b
        self.stride = stride
        self.pad = pad
        self.x = None
        self.mid = None
        self.dW_depthwise = self.dW_pointwise = self.db = None

    def forward(self, x):
        self.x = x
        dtype = _float_dtype(x, self.W_depthwise, self.W_pointwise, self.b)
        x = _as(x, dtype)
        self.mid = F.conv2d(x, _as(self.W_depthwise, dtype), None, stride=self.stride,
                            padding=self.pad, groups=self.W_depthwise.shape[0])
        return F.conv2d(self.mid, _as(self.W_pointwise, dtype), _as(self.b, dtype))

    def backward(self, dout):
        dtype = self.mid.dtype
        dmid, dWp, db = F.conv2d_backward(_as(dout, dtype), self.mid,
                                          _as(self.W_pointwise, dtype))
        dx, dWd, _ = F.conv2d_backward(dmid, _as(self.x, dtype), _as(self.W_depthwise, dtype),
                                       stride=self.stride, padding=self.pad,
                                       groups=self.W_depthwise.shape[0], need=("x", "w"))
        self.dW_depthwise = dWd.astype(self.W_depthwise.dtype, copy=False)
        self.dW_pointwise = dWp.astype(self.W_pointwise.dtype, copy=False)
        self.db = db.astype(self.b.dtype, copy=False)
        return dx


class _FunctionalConvLayer(Layer):
    """Shared body of the layers that are one functional op with weights W and bias b:
    forward(x) = _forward_fn(x, W, b, stride=, padding=, **_options()) and its backward."""
    params = ("W", "b")
    _forward_fn = None
    _backward_fn = None

    def __init__(self, W, b, stride=1, pad=0):
        self.W = W
        self.b = b
        self.stride = stride
        self.pad = pad
        self.x = None
        self.dW = self.db = None

    def _options(self):
        return {}

    def forward(self, x):
        self.x = x
        dtype = _float_dtype(x, self.W, self.b)
        return type(self)._forward_fn(_as(x, dtype), _as(self.W, dtype), _as(self.b, dtype),
                                      stride=self.stride, padding=self.pad, **self._options())

    def backward(self, dout):
        dtype = _float_dtype(dout, self.x, self.W)
        dx, dW, db = type(self)._backward_fn(_as(dout, dtype), _as(self.x, dtype),
                                             _as(self.W, dtype), stride=self.stride,
                                             padding=self.pad, **self._options())
        self.dW = dW.astype(self.W.dtype, copy=False)
        self.db = db.astype(self.b.dtype, copy=False)
        return dx


class Conv1D(_FunctionalConvLayer):
    """1-D convolution over (N, C, L): W (K, C, k), b (K,)."""
    _forward_fn = staticmethod(F.conv1d)
    _backward_fn = staticmethod(F.conv1d_backward)


class ConvTranspose(_FunctionalConvLayer):
    """Transposed convolution (learned upsampling): W (C_in, C_out, FH, FW), b (C_out,).
    Output extent: (H - 1)*stride - 2*pad + FH + output_padding."""
    _forward_fn = staticmethod(F.conv_transpose2d)
    _backward_fn = staticmethod(F.conv_transpose2d_backward)

    def __init__(self, W, b, stride=1, pad=0, output_padding=0):
        super().__init__(W, b, stride, pad)
        self.output_padding = output_padding

    def _options(self):
        return {"output_padding": self.output_padding}


class LocallyConnected(_FunctionalConvLayer):
    """Unshared convolution (Goodfellow et al. 9.5): W (out_h, out_w, FN, C, FH, FW), a kernel
    per output position; b (out_h, out_w, FN)."""
    _forward_fn = staticmethod(F.locally_connected2d)
    _backward_fn = staticmethod(F.locally_connected2d_backward)


class TiledConv(_FunctionalConvLayer):
    """Tiled convolution: W (t_h, t_w, FN, C, FH, FW) cycled over the output positions
    (output (oy, ox) uses W[oy % t_h, ox % t_w]); b (t_h, t_w, FN)."""
    _forward_fn = staticmethod(F.tiled_conv2d)
    _backward_fn = staticmethod(F.tiled_conv2d_backward)


# ---- pooling -----------------------------------------------------------------------------------

class Pooling(Layer):
    """The book's max pooling: windows pool_h x pool_w, zero padding, ties to the first maximum
    in (ky, kx) order, gradient routed to that argmax.

    The default stride is 2, as written in the project's design guide (../shared/design.md);
    the book's code has stride=1 as its default but every network in it passes stride=2
    explicitly, so book networks behave the same either way. Pass `stride` explicitly if your
    code relies on the book's default.

    The output extent is (H + 2*pad - pool_h) // stride + 1, the convolution formula; the book
    leaves pad out of its own size formula, which only matters for pad > 0, where the book's
    reshape would fail.

    After forward the layer keeps `x` and, computed when read, `arg_max`: the index of the
    maximum inside each window, in the book's (n, y, x, c) row order.
    """

    def __init__(self, pool_h, pool_w, stride=2, pad=0):
        self.pool_h = pool_h
        self.pool_w = pool_w
        self.stride = stride
        self.pad = pad
        self.x = None
        self._indices = None     # flat iy*W_padded + ix of the maximum, per output, NCHW
        self._xp = None          # the zero-padded input the forward pooled

    def _padded(self, x):
        if self.pad == 0:
            return x
        p = self.pad
        return np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))

    def forward(self, x):
        self.x = x
        dtype = _float_dtype(x)
        xp = self._padded(_as(x, dtype))
        self._xp = xp
        out, self._indices = F.max_pool2d(xp, (self.pool_h, self.pool_w), stride=self.stride,
                                          padding=0, return_indices=True)
        return out

    def backward(self, dout):
        dtype = _float_dtype(self.x)
        # routes each gradient to its window's argmax, summing where windows share it
        dxp = F.max_pool2d_backward(_as(dout, dtype), self._xp, (self.pool_h, self.pool_w),
                                    stride=self.stride, padding=0, indices=self._indices)
        if self.pad:
            p = self.pad
            dxp = dxp[:, :, p:dxp.shape[2] - p, p:dxp.shape[3] - p]
        return array_namespace(dxp).ascontiguousarray(dxp)

    @property
    def arg_max(self):
        if self._indices is None:
            return None
        n, c, out_h, out_w = self._indices.shape
        width = self._xp.shape[3]
        iy, ix = np.divmod(self._indices, width)
        oy = np.arange(out_h).reshape(1, 1, out_h, 1) * self.stride
        ox = np.arange(out_w).reshape(1, 1, 1, out_w) * self.stride
        in_window = (iy - oy) * self.pool_w + (ix - ox)
        return in_window.transpose(0, 2, 3, 1).reshape(-1)


class GlobalAvgPool(Layer):
    """Mean over the spatial axes: (N, C, H, W) -> (N, C)."""

    def __init__(self):
        self.input_shape = None

    def forward(self, x):
        self.input_shape = x.shape
        return x.mean(axis=(2, 3))

    def backward(self, dout):
        n, c, h, w = self.input_shape
        dx = np.broadcast_to((dout / (h * w))[:, :, None, None], self.input_shape)
        return np.ascontiguousarray(dx)


# ---- activations, affine, regularisers -------------------------------------------------------

class Relu(Layer):
    """max(x, 0). Keeps the book's `mask` (True where x <= 0), computed when read.

    The forward keeps its output instead of a mask: out <= 0 exactly where x <= 0, so the native
    backward reads `out` and nothing else has to be stored or recomputed per step.
    """

    def __init__(self):
        self.out = None
        self._mask = None
        self._mask_set_by_user = False

    @property
    def mask(self):
        if self._mask is None and self.out is not None:
            self._mask = self.out <= 0
        return self._mask

    @mask.setter
    def mask(self, value):
        self._mask = value
        self._mask_set_by_user = value is not None

    def forward(self, x):
        self._mask = None
        self._mask_set_by_user = False
        if _is_float_ndarray(x):
            self.out = F.relu(x)
        else:  # CuPy arrays, integer input
            self.out = array_namespace(x).where(x <= 0, x.dtype.type(0), x)
        return self.out

    def backward(self, dout):
        # a new array: the book edits dout in place, which surprises callers that reuse it
        if (not self._mask_set_by_user and _is_float_ndarray(dout)
                and dout.dtype == self.out.dtype and dout.shape == self.out.shape):
            return F.relu_backward(dout, self.out)
        return array_namespace(dout).where(self.mask, dout.dtype.type(0), dout)


class Sigmoid(Layer):
    def __init__(self):
        self.out = None

    def forward(self, x):
        self.out = 1.0 / (1.0 + np.exp(-x))
        return self.out

    def backward(self, dout):
        return dout * (1.0 - self.out) * self.out


class Affine(Layer):
    """x @ W + b on any input, flattened to (N, -1); backward restores the input's shape."""
    params = ("W", "b")

    def __init__(self, W, b):
        self.W = W
        self.b = b
        self.x = None
        self.original_x_shape = None
        self.dW = None
        self.db = None

    def forward(self, x):
        self.original_x_shape = x.shape
        self.x = x.reshape(x.shape[0], -1)
        return _matmul(self.x, self.W) + self.b

    def backward(self, dout):
        dx = _matmul(dout, self.W.T)
        self.dW = _matmul(self.x.T, dout).astype(self.W.dtype, copy=False)
        self.db = np.sum(dout, axis=0).astype(self.b.dtype, copy=False)
        return dx.reshape(self.original_x_shape)


class Dropout(Layer):
    """The book's (non-inverted) dropout: training keeps each unit with probability
    1 - dropout_ratio; inference scales by 1 - dropout_ratio.

    `rng` (a numpy Generator) makes masks reproducible; by default masks come from the global
    np.random, as in the book, so np.random.seed(...) still controls them.
    """
    takes_train_flg = True

    def __init__(self, dropout_ratio=0.5, rng=None):
        self.dropout_ratio = dropout_ratio
        self.rng = rng
        self.mask = None

    def _draw_mask(self, shape):
        draw = self.rng.random(shape) if self.rng is not None else np.random.rand(*shape)
        return draw > self.dropout_ratio

    def forward(self, x, train_flg=True):
        if train_flg:
            self.mask = array_namespace(x).asarray(self._draw_mask(x.shape))
            return x * self.mask
        return x * (1.0 - self.dropout_ratio)

    def backward(self, dout):
        return dout * self.mask


class BatchNormalization(Layer):
    """The book's batch normalisation, on 2-D (N, D) or 4-D (N, C, H, W) input.

    With 4-D input the book normalises every (c, y, x) feature separately (gamma of C*H*W
    elements); give gamma and beta C elements instead to normalise per channel over
    (N, H, W), as convolutional networks usually do.
    Running statistics: running = momentum*running + (1 - momentum)*batch.
    """
    params = ("gamma", "beta")
    takes_train_flg = True
    eps = 1e-6

    def __init__(self, gamma, beta, momentum=0.9, running_mean=None, running_var=None):
        self.gamma = gamma
        self.beta = beta
        self.momentum = momentum
        self.input_shape = None
        self.running_mean = running_mean
        self.running_var = running_var
        self.batch_size = None
        self.xc = None
        self.xn = None
        self.std = None
        self.dgamma = None
        self.dbeta = None

    def _to_2d(self, x):
        """Rows are samples of each normalised feature: (N, C*H*W) for the book's layout,
        (N*H*W, C) for per-channel statistics."""
        if x.ndim == 4 and np.size(self.gamma) == x.shape[1] and x.shape[2] * x.shape[3] > 1:
            return x.transpose(0, 2, 3, 1).reshape(-1, x.shape[1]), True
        return x.reshape(x.shape[0], -1), False

    def _from_2d(self, y, per_channel):
        if per_channel:
            n, c, h, w = self.input_shape
            return np.ascontiguousarray(y.reshape(n, h, w, c).transpose(0, 3, 1, 2))
        return y.reshape(self.input_shape)

    def forward(self, x, train_flg=True):
        self.input_shape = x.shape
        x2, per_channel = self._to_2d(x)
        gamma = np.reshape(self.gamma, -1)
        beta = np.reshape(self.beta, -1)
        if self.running_mean is None:
            self.running_mean = np.zeros(x2.shape[1], dtype=x2.dtype)
            self.running_var = np.zeros(x2.shape[1], dtype=x2.dtype)
        if train_flg:
            mu = x2.mean(axis=0)
            self.xc = x2 - mu
            var = np.mean(self.xc ** 2, axis=0)
            self.std = np.sqrt(var + self.eps)
            self.xn = self.xc / self.std
            self.batch_size = x2.shape[0]
            # in place, so arrays handed in by the caller (or loaded from a file) stay live
            self.running_mean *= self.momentum
            self.running_mean += (1 - self.momentum) * mu
            self.running_var *= self.momentum
            self.running_var += (1 - self.momentum) * var
            xn = self.xn
        else:
            xn = (x2 - self.running_mean) / np.sqrt(self.running_var + self.eps)
        return self._from_2d(gamma * xn + beta, per_channel)

    def backward(self, dout):
        dout2, per_channel = self._to_2d(dout)
        gamma = np.reshape(self.gamma, -1)
        dbeta = dout2.sum(axis=0)
        dgamma = np.sum(self.xn * dout2, axis=0)
        dxn = gamma * dout2
        dxc = dxn / self.std
        dstd = -np.sum((dxn * self.xc) / (self.std * self.std), axis=0)
        dvar = 0.5 * dstd / self.std
        dxc += (2.0 / self.batch_size) * self.xc * dvar
        dmu = np.sum(dxc, axis=0)
        dx = dxc - dmu / self.batch_size
        self.dgamma = dgamma.reshape(np.shape(self.gamma))
        self.dbeta = dbeta.reshape(np.shape(self.beta))
        return self._from_2d(dx, per_channel)


# ---- loss --------------------------------------------------------------------------------------

def softmax(x):
    x = x - np.max(x, axis=-1, keepdims=True)  # shift for overflow safety; softmax is invariant
    e = np.exp(x)
    return e / np.sum(e, axis=-1, keepdims=True)


def cross_entropy_error(y, t):
    """Mean cross-entropy; t one-hot (same size as y) or integer labels. The 1e-7 inside the
    log is the book's guard against log(0)."""
    if y.ndim == 1:
        t = t.reshape(1, -1) if np.size(t) == y.size else np.reshape(t, 1)
        y = y.reshape(1, -1)
    if t.size == y.size:
        t = t.argmax(axis=1)
    batch_size = y.shape[0]
    rows = array_namespace(y).arange(batch_size)
    return -np.sum(np.log(y[rows, t] + 1e-7)) / batch_size


class SoftmaxWithLoss(Layer):
    def __init__(self):
        self.loss = None
        self.y = None
        self.t = None

    def forward(self, x, t):
        self.t = t
        self.y = softmax(x)
        self.loss = cross_entropy_error(self.y, t)
        return self.loss

    def backward(self, dout=1):
        y = self.y.reshape(-1, self.y.shape[-1])
        batch_size = y.shape[0]
        if np.size(self.t) == self.y.size:
            dx = y - np.reshape(self.t, y.shape)
        else:
            dx = y.copy()
            dx[array_namespace(dx).arange(batch_size), np.reshape(self.t, -1)] -= 1
        return (dx * (dout / batch_size)).reshape(self.y.shape)


# ---- composition (residual networks, blocks) --------------------------------------------------

class Add(Layer):
    """Residual sum: forward(x, y) = x + y; backward(dout) = (dout, dout)."""

    def forward(self, x, y):
        return x + y

    def backward(self, dout):
        return dout, dout


def _forward(layer, x, train_flg):
    if layer.takes_train_flg:
        return layer.forward(x, train_flg)
    return layer.forward(x)


class Sequential(Layer):
    """Layers applied in order; backward runs them in reverse."""
    takes_train_flg = True

    def __init__(self, *layers):
        self.layers = list(layers)

    def sublayers(self):
        return tuple(self.layers)

    def forward(self, x, train_flg=True):
        for layer in self.layers:
            x = _forward(layer, x, train_flg)
        return x

    def backward(self, dout):
        for layer in reversed(self.layers):
            dout = layer.backward(dout)
        return dout


class ResidualBlock(Layer):
    """out = post(main(x) + shortcut(x)); shortcut None means identity, post None means none.
    The gradient reaching x is the sum of what flows back through both branches."""
    takes_train_flg = True

    def __init__(self, main, shortcut=None, post=None):
        self.main = main
        self.shortcut = shortcut
        self.add = Add()
        self.post = post

    def sublayers(self):
        return tuple(l for l in (self.main, self.shortcut, self.post) if l is not None)

    def forward(self, x, train_flg=True):
        y = _forward(self.main, x, train_flg)
        s = x if self.shortcut is None else _forward(self.shortcut, x, train_flg)
        out = self.add.forward(y, s)
        return out if self.post is None else _forward(self.post, out, train_flg)

    def backward(self, dout):
        if self.post is not None:
            dout = self.post.backward(dout)
        d_main, d_short = self.add.backward(dout)
        dx = self.main.backward(d_main)
        if self.shortcut is not None:
            d_short = self.shortcut.backward(d_short)
        return dx + d_short


def param_slots(layers):
    """Every (layer, attribute) holding a parameter, depth first, in forward order."""
    slots = []
    for layer in layers:
        for name in layer.params:
            slots.append((layer, name))
        slots.extend(param_slots(layer.sublayers()))
    return slots
