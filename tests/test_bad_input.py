"""The bad-input catalogue of the conv ops: every case raises the right exception type with a
message naming the argument, never crashes the interpreter, and the inputs that merely look odd
(lists, read-only, negative-stride, misaligned views, an empty batch) work."""
import subprocess
import sys

import numpy as np
import pytest

import convcore
import convcore.functional as F
from convcore import _cpu

from reference import assert_close, conv2d as ref_conv2d

f32 = np.float32


def ones(*shape, dtype=f32):
    return np.ones(shape, dtype)


class _CudaLike:
    """Looks like a GPU array (CuPy, torch.cuda): never dereferenced on the CPU."""
    __cuda_array_interface__ = {"shape": (2, 3, 8, 8), "typestr": "<f4", "data": (0, False),
                                "version": 3}


class _BrokenArray:
    def __array__(self, dtype=None, copy=None):
        raise RuntimeError("this array-like cannot be converted")


X = ones(2, 3, 8, 8)
W = ones(4, 3, 3, 3)
X1 = ones(2, 3, 8)
W1 = ones(4, 3, 3)
WT = ones(3, 2, 3, 3)  # conv_transpose2d: (C_in, C_out/groups, kh, kw)
WC, WR = ones(3, 3), ones(3, 3)
WDW, WPW = ones(3, 1, 3, 3), ones(4, 3, 1, 1)
DY = ones(2, 4, 6, 6)

# (id, call, exception type, fragment of the message)
CASES = [
    # wrong ndim
    ("conv2d x ndim", lambda: F.conv2d(X[0], W), ValueError, "x must be 4-D"),
    ("conv2d w ndim", lambda: F.conv2d(X, W[0]), ValueError, "w must be 4-D"),
    ("conv2d_backward dy ndim", lambda: F.conv2d_backward(DY[0], X, W), ValueError, "dy must be 4-D"),
    ("conv1d x ndim", lambda: F.conv1d(X, W1), ValueError, "x must be 3-D"),
    ("conv1d w ndim", lambda: F.conv1d(X1, W), ValueError, "w must be 3-D"),
    ("conv1d_backward dy ndim", lambda: F.conv1d_backward(DY, X1, W1), ValueError, "dy must be 3-D"),
    ("conv_transpose2d x ndim", lambda: F.conv_transpose2d(X1, WT), ValueError, "x must be 4-D"),
    ("im2col x ndim", lambda: F.im2col(X1, 3, 3), ValueError, "x must be 4-D"),
    ("col2im col ndim", lambda: F.col2im(ones(72, 27, 1), X.shape, 3, 3), ValueError, "col must be 2-D"),
    ("col2im input_shape", lambda: F.col2im(ones(72, 27), (2, 3, 8), 3, 3), ValueError, "input_shape"),
    ("sepconv2d_1d w_col ndim", lambda: F.sepconv2d_1d(X, ones(3, 1, 3), WR), ValueError, "w_col must be 2-D"),
    ("sepconv2d_1d w_row ndim", lambda: F.sepconv2d_1d(X, WC, ones(3,)), ValueError, "w_row must be 2-D"),
    ("separable w_pointwise ndim", lambda: F.separable_conv2d(X, WDW, ones(4, 3)), ValueError, "w_pointwise must be 4-D"),
    ("separable w_depthwise ndim", lambda: F.separable_conv2d(X, ones(3, 3, 3), WPW), ValueError, "w_depthwise must be 4-D"),
    ("depthwise w ndim", lambda: F.depthwise_conv2d(X, ones(3, 3, 3)), ValueError, "w must be 4-D"),
    ("rank1_factor w ndim", lambda: F.rank1_factor(ones(3)), ValueError, "w must be (kh, kw)"),
    # channel mismatch
    ("conv2d channels", lambda: F.conv2d(X, ones(4, 2, 3, 3)), ValueError, "x has 3 channels"),
    ("conv1d channels", lambda: F.conv1d(X1, ones(4, 2, 3)), ValueError, "x has 3 channels"),
    ("conv_transpose2d channels", lambda: F.conv_transpose2d(X, ones(4, 2, 3, 3)), ValueError, "w.shape[0]=4"),
    ("sepconv2d_1d w_col channels", lambda: F.sepconv2d_1d(X, ones(2, 3), WR), ValueError, "w_col must have shape (C, kh)"),
    ("sepconv2d_1d w_row channels", lambda: F.sepconv2d_1d(X, WC, ones(4, 3)), ValueError, "w_row must have shape (C, kw)"),
    ("separable w_depthwise channels", lambda: F.separable_conv2d(X, ones(4, 1, 3, 3), ones(4, 4, 1, 1)), ValueError, "w_depthwise"),
    ("separable w_pointwise channels", lambda: F.separable_conv2d(X, WDW, ones(4, 2, 1, 1)), ValueError, "w_pointwise must have shape"),
    ("depthwise w channels", lambda: F.depthwise_conv2d(X, ones(4, 1, 3, 3)), ValueError, "w must have shape (C*multiplier"),
    ("col2im col shape", lambda: F.col2im(ones(5, 27), X.shape, 3, 3), ValueError, "col has shape (5, 27)"),
    # groups
    ("conv2d groups", lambda: F.conv2d(X, W, groups=2), ValueError, "groups=2 does not divide"),
    ("conv2d groups zero", lambda: F.conv2d(X, W, groups=0), ValueError, "groups must be positive"),
    ("conv2d groups float", lambda: F.conv2d(X, W, groups=1.5), TypeError, "groups must be an int"),
    ("conv1d groups", lambda: F.conv1d(X1, W1, groups=2), ValueError, "groups=2 does not divide"),
    ("conv_transpose2d groups", lambda: F.conv_transpose2d(X, WT, groups=2), ValueError, "groups=2 does not divide"),
    # kernel larger than the padded input
    ("conv2d kernel", lambda: F.conv2d(X, ones(4, 3, 9, 9)), ValueError, "smaller than the dilated kernel"),
    ("conv2d dilated kernel", lambda: F.conv2d(X, W, dilation=4), ValueError, "smaller than the dilated kernel"),
    ("conv1d kernel", lambda: F.conv1d(X1, ones(4, 3, 9)), ValueError, "smaller than the dilated kernel"),
    ("im2col kernel", lambda: F.im2col(X, 9, 3), ValueError, "smaller than the dilated kernel"),
    ("sepconv2d_1d kernel rows", lambda: F.sepconv2d_1d(X, ones(3, 9), WR), ValueError, "smaller than the dilated kernel"),
    ("sepconv2d_1d kernel cols", lambda: F.sepconv2d_1d(X, WC, ones(3, 9)), ValueError, "smaller than the dilated kernel"),
    ("separable kernel", lambda: F.separable_conv2d(X, ones(3, 1, 9, 9), WPW), ValueError, "smaller than the dilated kernel"),
    ("conv_transpose2d padding", lambda: F.conv_transpose2d(X, WT, padding=9), ValueError, "padding too large"),
    # stride, padding, dilation
    ("conv2d stride zero", lambda: F.conv2d(X, W, stride=0), ValueError, "stride must be positive"),
    ("conv2d stride negative", lambda: F.conv2d(X, W, stride=(1, -2)), ValueError, "stride must be positive"),
    ("conv2d stride float", lambda: F.conv2d(X, W, stride=1.5), TypeError, "stride must be an int"),
    ("conv2d padding negative", lambda: F.conv2d(X, W, padding=-1), ValueError, "padding must be non-negative"),
    ("conv2d padding 3-tuple", lambda: F.conv2d(X, W, padding=(1, 2, 3)), ValueError, "padding must be"),
    ("conv2d padding word", lambda: F.conv2d(X, W, padding="full"), ValueError, "padding must be"),
    ("conv2d dilation zero", lambda: F.conv2d(X, W, dilation=0), ValueError, "dilation must be positive"),
    ("conv2d stride huge", lambda: F.conv2d(X, W, stride=2**40), ValueError, "below 2^31"),
    ("conv1d stride zero", lambda: F.conv1d(X1, W1, stride=0), ValueError, "stride must be positive"),
    ("conv1d padding negative", lambda: F.conv1d(X1, W1, padding=(-1, 0)), ValueError, "padding must be non-negative"),
    ("conv1d dilation zero", lambda: F.conv1d(X1, W1, dilation=0), ValueError, "dilation must be positive"),
    ("conv_transpose2d stride zero", lambda: F.conv_transpose2d(X, WT, stride=0), ValueError, "stride must be positive"),
    ("conv_transpose2d padding negative", lambda: F.conv_transpose2d(X, WT, padding=-1), ValueError, "padding must be non-negative"),
    ("conv_transpose2d dilation zero", lambda: F.conv_transpose2d(X, WT, dilation=0), ValueError, "dilation must be positive"),
    ("conv_transpose2d padding same", lambda: F.conv_transpose2d(X, WT, padding="same"), ValueError, "padding must be"),
    ("im2col stride zero", lambda: F.im2col(X, 3, 3, stride=0), ValueError, "stride must be positive"),
    ("im2col filter zero", lambda: F.im2col(X, 0, 3), ValueError, "filter size must be positive"),
    ("col2im padding negative", lambda: F.col2im(ones(72, 27), X.shape, 3, 3, padding=-1), ValueError, "padding must be non-negative"),
    ("sepconv2d_1d stride zero", lambda: F.sepconv2d_1d(X, WC, WR, stride=(1, 0)), ValueError, "stride must be positive"),
    ("sepconv2d_1d padding negative", lambda: F.sepconv2d_1d(X, WC, WR, padding=(0, -1)), ValueError, "padding must be non-negative"),
    ("sepconv2d_1d dilation zero", lambda: F.sepconv2d_1d(X, WC, WR, dilation=(0, 1)), ValueError, "dilation must be positive"),
    ("separable stride zero", lambda: F.separable_conv2d(X, WDW, WPW, stride=0), ValueError, "stride must be positive"),
    ("extent formula stride zero", lambda: _cpu.conv_out_extent(5, 3, 0, 0, 0, 1), ValueError, "stride must be positive"),
    ("pool extent formula stride zero", lambda: _cpu.pool_out_extent(5, 3, 0, 0, 0, 1, False), ValueError, "stride must be positive"),
    # "same" with stride 2, output_padding
    ("conv2d same stride 2", lambda: F.conv2d(X, W, padding="same", stride=2), ValueError, "padding='same' needs stride 1"),
    ("conv1d same stride 2", lambda: F.conv1d(X1, W1, padding="same", stride=2), ValueError, "padding='same' needs stride 1"),
    ("sepconv2d_1d same stride 2", lambda: F.sepconv2d_1d(X, WC, WR, padding="same", stride=2), ValueError, "padding='same' needs stride 1"),
    ("conv_transpose2d output_padding", lambda: F.conv_transpose2d(X, WT, stride=2, output_padding=2), ValueError, "output_padding must be"),
    ("conv_transpose2d output_padding stride 1", lambda: F.conv_transpose2d(X, WT, output_padding=1), ValueError, "output_padding must be"),
    ("conv_transpose2d output_padding negative", lambda: F.conv_transpose2d(X, WT, stride=2, output_padding=-1), ValueError, "output_padding must be"),
    # dtypes
    *[(f"conv2d x {name}", (lambda d=dtype: F.conv2d(X.astype(d), W)), TypeError, "x must be float32 or float64")
      for name, dtype in (("int", np.int32), ("bool", bool), ("float16", np.float16), ("object", object))],
    *[(f"conv2d w {name}", (lambda d=dtype: F.conv2d(X, W.astype(d))), TypeError, "w must be float32 or float64")
      for name, dtype in (("int", np.int64), ("float16", np.float16))],
    ("conv2d bias int", lambda: F.conv2d(X, W, np.ones(4, int)), TypeError, "bias must be float32 or float64"),
    ("conv1d x int", lambda: F.conv1d(X1.astype(int), W1), TypeError, "x must be float32 or float64"),
    ("conv_transpose2d w bool", lambda: F.conv_transpose2d(X, WT.astype(bool)), TypeError, "w must be float32 or float64"),
    ("im2col float16", lambda: F.im2col(X.astype(np.float16), 3, 3), TypeError, "x must be float32 or float64"),
    ("col2im int", lambda: F.col2im(np.ones((72, 27), int), X.shape, 3, 3), TypeError, "col must be float32 or float64"),
    ("sepconv2d_1d w_col int", lambda: F.sepconv2d_1d(X, WC.astype(int), WR), TypeError, "w_col must be float32 or float64"),
    ("sepconv2d_1d x object", lambda: F.sepconv2d_1d(X.astype(object), WC, WR), TypeError, "x must be float32 or float64"),
    ("separable w_pointwise float16", lambda: F.separable_conv2d(X, WDW, WPW.astype(np.float16)), TypeError, "w_pointwise must be float32 or float64"),
    ("rank1_factor int", lambda: F.rank1_factor(np.ones((3, 3), int)), TypeError, "w must be float32 or float64"),
    # mixed dtypes
    ("conv2d mixed", lambda: F.conv2d(X, W.astype(np.float64)), TypeError, "w has dtype float64 but x has float32"),
    ("conv2d bias mixed", lambda: F.conv2d(X, W, np.ones(4)), TypeError, "bias has dtype float64"),
    ("conv2d_backward dy mixed", lambda: F.conv2d_backward(DY.astype(np.float64), X, W), TypeError, "dy has dtype float64"),
    ("conv1d mixed", lambda: F.conv1d(X1, W1.astype(np.float64)), TypeError, "mixed dtypes"),
    ("conv_transpose2d mixed", lambda: F.conv_transpose2d(X, WT.astype(np.float64)), TypeError, "w has dtype float64"),
    ("sepconv2d_1d w_row mixed", lambda: F.sepconv2d_1d(X, WC, WR.astype(np.float64)), TypeError, "w_row has dtype float64"),
    ("sepconv2d_1d_backward dy mixed", lambda: F.sepconv2d_1d_backward(ones(2, 3, 6, 6, dtype=np.float64), X, WC, WR), TypeError, "dy has dtype float64"),
    ("separable mixed weights", lambda: F.separable_conv2d(X, WDW, WPW.astype(np.float64)), TypeError, "w_pointwise has dtype float64"),
    ("separable_backward dy mixed", lambda: F.separable_conv2d_backward(DY.astype(np.float64), X, WDW, WPW), TypeError, "dy has dtype float64"),
    # bias of the wrong shape
    ("conv2d bias shape", lambda: F.conv2d(X, W, ones(3)), ValueError, "bias must have shape (4,)"),
    ("conv2d bias 2-D", lambda: F.conv2d(X, W, ones(4, 1)), ValueError, "bias must have shape (4,)"),
    ("conv1d bias shape", lambda: F.conv1d(X1, W1, ones(5)), ValueError, "bias must have shape (4,)"),
    ("conv_transpose2d bias shape", lambda: F.conv_transpose2d(X, WT, ones(3)), ValueError, "bias must have shape (2,)"),
    ("sepconv2d_1d bias shape", lambda: F.sepconv2d_1d(X, WC, WR, ones(4)), ValueError, "bias must have shape (3,)"),
    ("separable bias shape", lambda: F.separable_conv2d(X, WDW, WPW, ones(3)), ValueError, "bias must have shape (4,)"),
    ("depthwise bias shape", lambda: F.depthwise_conv2d(X, WDW, ones(4)), ValueError, "bias must have shape (3,)"),
    # dy of the wrong shape
    ("conv2d_backward dy shape", lambda: F.conv2d_backward(ones(2, 4, 5, 5), X, W), ValueError, "dy has shape (2, 4, 5, 5)"),
    ("conv1d_backward dy shape", lambda: F.conv1d_backward(ones(2, 4, 5), X1, W1), ValueError, "dy has shape"),
    ("conv_transpose2d_backward dy shape", lambda: F.conv_transpose2d_backward(ones(2, 2, 3, 3), X, WT), ValueError, "dy has shape (2, 2, 3, 3)"),
    ("sepconv2d_1d_backward dy shape", lambda: F.sepconv2d_1d_backward(ones(2, 3, 5, 5), X, WC, WR), ValueError, "dy has shape (2, 3, 5, 5)"),
    ("separable_backward dy shape", lambda: F.separable_conv2d_backward(ones(2, 3, 6, 6), X, WDW, WPW), ValueError, "dy has shape (2, 3, 6, 6)"),
    ("depthwise_backward dy shape", lambda: F.depthwise_conv2d_backward(ones(2, 3, 5, 6), X, WDW), ValueError, "dy has shape (2, 3, 5, 6)"),
    ("need unknown", lambda: F.conv2d_backward(DY, X, W, need=("q",)), ValueError, "need may contain only"),
    ("sepconv2d_1d need unknown", lambda: F.sepconv2d_1d_backward(ones(2, 3, 6, 6), X, WC, WR, need=("w",)), ValueError, "need may contain only"),
    ("separable need unknown", lambda: F.separable_conv2d_backward(DY, X, WDW, WPW, need=("w",)), ValueError, "need may contain only"),
    # algorithms
    ("conv2d unknown algo", lambda: F.conv2d(X, W, algo="fft"), ValueError, "unknown algo 'fft'"),
    ("conv2d algo not a string", lambda: F.conv2d(X, W, algo=3), TypeError, "algo must be a string"),
    ("conv2d_backward unknown algo", lambda: F.conv2d_backward(DY, X, W, algo="fft"), ValueError, "unknown algo"),
    ("conv1d unknown algo", lambda: F.conv1d(X1, W1, algo="winograd9"), ValueError, "unknown algo"),
    ("conv_transpose2d unknown algo", lambda: F.conv_transpose2d(X, WT, algo="fft"), ValueError, "unknown algo"),
    ("conv2d depthwise on a dense conv", lambda: F.conv2d(X, W, algo="depthwise"), ValueError, "algo='depthwise' needs groups == C"),
    ("conv2d depthwise on grouped conv", lambda: F.conv2d(ones(1, 4, 5, 5), ones(4, 2, 3, 3), groups=2, algo="depthwise"), ValueError, "algo='depthwise' needs groups == C"),
    ("conv_transpose2d depthwise", lambda: F.conv_transpose2d(X, WT, algo="depthwise"), ValueError, "algo='depthwise'"),
    # sizes whose product overflows int64 (no array that big can exist; the shapes alone must be refused)
    ("col2im overflow", lambda: F.col2im(ones(1, 1), (2**39, 2**39, 1, 1), 1, 1), ValueError, "more elements than fit in int64"),
    ("col2im absurd extent", lambda: F.col2im(ones(1, 1), (2**41, 1, 1, 1), 1, 1), ValueError, "absurdly large extent"),
    ("conv_transpose2d output overflow", lambda: F.conv_transpose2d(ones(1, 1, 3, 3), ones(1, 1, 1, 1), stride=2**31 - 1), ValueError, "more elements than fit in int64"),
    ("select_algo overflow", lambda: F.select_algo((2**39, 2**39, 1, 1), (1, 2**39, 1, 1)), ValueError, "more elements than fit in int64"),
    # non-arrays
    ("conv2d ragged list", lambda: F.conv2d([[1.0], [1.0, 2.0]], W), TypeError, "x must be an array"),
    ("conv2d string", lambda: F.conv2d("abc", W), TypeError, "x must be float32 or float64"),
    ("conv2d None", lambda: F.conv2d(None, W), TypeError, "x must be float32 or float64"),
    ("conv2d list mixes with float32", lambda: F.conv2d(X.tolist(), W), TypeError, "mixed dtypes"),
    ("sepconv2d_1d w_col None", lambda: F.sepconv2d_1d(X, None, WR), TypeError, "w_col must be float32 or float64"),
    ("separable w_pointwise string", lambda: F.separable_conv2d(X, WDW, "w"), TypeError, "w_pointwise must be float32 or float64"),
    # ---- added with issue 8's remaining list ----
    # wrong types: array-likes that are not float arrays, parameters of the wrong kind
    ("conv2d x GPU array", lambda: F.conv2d(_CudaLike(), W), TypeError, "x is a GPU array"),
    ("conv2d x __array__ raises", lambda: F.conv2d(_BrokenArray(), W), TypeError, "x must be an array"),
    *[(f"conv2d x {name}", (lambda d=dtype: F.conv2d(np.zeros((2, 3, 8, 8), d), W)), TypeError,
       "x must be float32 or float64")
      for name, dtype in (("record", [("a", f32)]), ("complex64", np.complex64),
                          ("longdouble", np.longdouble), ("uint8", np.uint8),
                          ("datetime64", "datetime64[s]"), ("str", "U3"))],
    ("conv2d_backward dy None", lambda: F.conv2d_backward(None, X, W), TypeError, "dy must be float32 or float64"),
    ("conv2d_backward need None", lambda: F.conv2d_backward(DY, X, W, need=None), TypeError, "conv2d_backward: need must be"),
    ("separable_backward need int", lambda: F.separable_conv2d_backward(DY, X, WDW, WPW, need=3), TypeError, "need must be"),
    ("conv2d stride None", lambda: F.conv2d(X, W, stride=None), TypeError, "stride must be an int"),
    ("conv2d stride numpy float", lambda: F.conv2d(X, W, stride=np.float64(2)), TypeError, "stride must be an int"),
    ("conv2d padding None", lambda: F.conv2d(X, W, padding=None), TypeError, "padding must be an int"),
    ("conv2d padding dict", lambda: F.conv2d(X, W, padding={1: 2}), TypeError, "padding must be an int"),
    ("conv2d padding nested", lambda: F.conv2d(X, W, padding=((1, 1), (1, 1))), TypeError, "padding must be an int"),
    ("conv2d padding array", lambda: F.conv2d(X, W, padding=np.array([1, 1])), TypeError, "padding must be an int"),
    ("conv2d dilation str", lambda: F.conv2d(X, W, dilation="2"), TypeError, "dilation must be an int"),
    ("conv2d groups None", lambda: F.conv2d(X, W, groups=None), TypeError, "groups must be an int"),
    ("conv2d groups bool", lambda: F.conv2d(X, W, groups=True), TypeError, "groups must be an int"),
    ("conv2d algo None", lambda: F.conv2d(X, W, algo=None), TypeError, "algo must be a string"),
    ("conv2d algo bytes", lambda: F.conv2d(X, W, algo=b"direct"), TypeError, "algo must be a string"),
    ("im2col kh float", lambda: F.im2col(X, 2.0, 3), TypeError, "kh must be an int"),
    ("col2im input_shape int", lambda: F.col2im(ones(72, 27), 8, 3, 3), TypeError, "input_shape must be a tuple"),
    ("col2im input_shape float", lambda: F.col2im(ones(72, 27), (2, 3, 8.0, 8), 3, 3), TypeError, "input_shape must be a tuple of ints"),
    ("conv_transpose2d output_padding float", lambda: F.conv_transpose2d(X, WT, stride=2, output_padding=0.5), TypeError, "output_padding must be an int"),
    ("select_algo shape length", lambda: F.select_algo((3, 8, 8), W.shape), ValueError, "x_shape must be (N, C, H, W)"),
    ("select_algo float extent", lambda: F.select_algo((2.5, 3, 8, 8), W.shape), TypeError, "x_shape must be a tuple of ints"),
    ("select_algo groups float", lambda: F.select_algo(X.shape, W.shape, groups=1.5), TypeError, "groups must be an int"),
    ("set_num_threads str", lambda: convcore.set_num_threads("2"), TypeError, "set_num_threads: n must be an int"),
    ("set_num_threads huge", lambda: convcore.set_num_threads(2**40), ValueError, "below 2^31"),
    ("set_max_workspace str", lambda: convcore.set_max_workspace("1G"), TypeError, "nbytes must be an int"),
    # wrong shapes: 0-d, 5-d, empty channel/kernel/spatial extents
    ("conv2d x 0-d", lambda: F.conv2d(np.float32(1), W), ValueError, "x must be 4-D"),
    ("conv2d x Python float", lambda: F.conv2d(1.0, W), ValueError, "x must be 4-D"),
    ("conv2d x 5-D", lambda: F.conv2d(X[None], W), ValueError, "x must be 4-D"),
    ("conv2d bias 0-d", lambda: F.conv2d(X, W, np.float32(1)), ValueError, "bias must have shape (4,)"),
    ("conv2d zero channels", lambda: F.conv2d(ones(2, 0, 8, 8), ones(4, 0, 3, 3)), ValueError, "non-empty channel"),
    ("conv2d zero filters", lambda: F.conv2d(X, ones(0, 3, 3, 3)), ValueError, "w must have non-empty extents"),
    ("conv2d zero kernel height", lambda: F.conv2d(X, ones(4, 3, 0, 3)), ValueError, "w must have non-empty extents"),
    ("conv2d zero image height", lambda: F.conv2d(ones(2, 3, 0, 8), W), ValueError, "non-empty channel and spatial"),
    ("sepconv2d_1d w_col no taps", lambda: F.sepconv2d_1d(X, ones(3, 0), WR), ValueError, "kh >= 1"),
    ("conv_transpose2d zero kernel", lambda: F.conv_transpose2d(X, ones(3, 2, 0, 3)), ValueError, "w must have non-empty extents"),
    # negative sizes
    ("select_algo negative extent", lambda: F.select_algo((-1, 3, 8, 8), W.shape), ValueError, "negative or absurdly large extent"),
    ("col2im negative input_shape", lambda: F.col2im(ones(72, 27), (-2, 3, 8, 8), 3, 3), ValueError, "negative or absurdly large extent"),
    ("im2col negative filter", lambda: F.im2col(X, -3, 3), ValueError, "filter size must be positive"),
    ("adaptive output negative", lambda: F.adaptive_avg_pool2d(X, (-1, 2)), ValueError, "output_size must be positive"),
    ("conv1d padding 3-tuple", lambda: F.conv1d(X1, W1, padding=(1, 2, 3)), ValueError, "padding must be an int or (left, right)"),
    # sizes whose products overflow int32 (must not wrap: refused or computed in int64) or int64
    ("col2im extent product 2^32 (wraps to 0 in int32)", lambda: F.col2im(ones(0, 1), (2**32, 1, 1, 1), 1, 1), ValueError, "needs (4294967296, 1)"),
    ("col2im 2^31 x 2^31 image", lambda: F.col2im(ones(0, 1), (0, 2**31, 2**31, 1), 1, 1), ValueError, "more elements than fit in int64"),
    ("conv2d stride past int64", lambda: F.conv2d(X, W, stride=2**64), ValueError, "conv2d: stride must fit in int64"),
    ("conv1d padding past int64", lambda: F.conv1d(X1, W1, padding=2**63), ValueError, "conv1d: padding must fit in int64"),
    ("conv2d groups below int64", lambda: F.conv2d(X, W, groups=-2**63 - 1), ValueError, "groups must fit in int64"),
    ("conv2d padding 2^31", lambda: F.conv2d(X, W, padding=2**31), ValueError, "below 2^31"),
    ("max_pool2d kernel past int64", lambda: F.max_pool2d(X, 2**64), ValueError, "kernel_size must fit in int64"),
    ("avg_pool2d divisor past int64", lambda: F.avg_pool2d(X, 2, divisor_override=2**64), ValueError, "divisor_override must fit in int64"),
    ("adaptive output past int64", lambda: F.adaptive_avg_pool2d(X, 2**64), ValueError, "output_size must fit in int64"),
    ("col2im input_shape past int64", lambda: F.col2im(ones(1, 1), (2**64, 1, 1, 1), 1, 1), ValueError, "input_shape must fit in int64"),
    ("conv2d output bytes past int64", lambda: F.conv2d(ones(1, 1, 1, 1), ones(1, 1, 1, 1), padding=2**30), ValueError, "more elements than fit in int64"),
    ("conv_transpose2d output bytes past int64", lambda: F.conv_transpose2d(ones(1, 1, 3, 3), ones(1, 1, 1, 1), stride=2**30), ValueError, "more elements than fit in int64"),
    ("adaptive output of 2^60 elements", lambda: F.adaptive_avg_pool2d(ones(1, 1, 1, 1), (2**30, 2**30)), ValueError, "more elements than fit in int64"),
    ("adaptive output of 2 EiB", lambda: F.adaptive_avg_pool2d(ones(1, 1, 1, 1), (2**29, 2**30)), MemoryError, "Unable to allocate"),
    # rank1_factor
    ("rank1_factor rtol NaN", lambda: F.rank1_factor(np.ones((3, 3)), rtol=float("nan")), ValueError, "rtol must be"),
    ("rank1_factor infinity", lambda: F.rank1_factor(np.full((3, 3), np.inf)), ValueError, "NaN or infinity"),
    ("rank1_factor not separable", lambda: F.rank1_factor(np.eye(3)), ValueError, "not separable"),
    ("rank1_factor channel", lambda: F.rank1_factor(np.stack([np.ones((3, 3)), np.eye(3)])[:, None]), ValueError, "channel 1 of w"),
    ("rank1_factor rtol", lambda: F.rank1_factor(np.ones((3, 3)), rtol=-1), ValueError, "rtol must be"),
]


@pytest.mark.parametrize("call, exc_type, fragment", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_refused_by_name(call, exc_type, fragment):
    with pytest.raises(exc_type) as info:
        call()
    assert fragment in str(info.value), f"message {str(info.value)!r} lacks {fragment!r}"


def test_catalogue_does_not_crash_the_interpreter():
    """Every case again in a child process: a crash (segfault, SIGFPE, abort) there shows up
    as a failure here instead of taking the test run down."""
    script = (
        "import sys; sys.path.insert(0, 'tests'); import test_bad_input as t\n"
        "for name, call, exc, _ in t.CASES:\n"
        "    try:\n"
        "        call()\n"
        "    except (ValueError, TypeError, MemoryError):\n"
        "        pass\n"
        "print('survived', len(t.CASES))\n"
    )
    import os
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, OMP_NUM_THREADS="1")
    # the child must import the same convcore as this process (installed, or a dev tree)
    import convcore
    package_parent = os.path.dirname(os.path.dirname(os.path.abspath(convcore.__file__)))
    env["PYTHONPATH"] = os.pathsep.join([package_parent] + env.get("PYTHONPATH", "").split(os.pathsep))
    done = subprocess.run([sys.executable, "-c", script], cwd=root, env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"survived {len(CASES)}" in done.stdout


# ---- inputs that look odd but must work (the Python layer copies them) -----------------------

def _misaligned(arr):
    raw = np.zeros(arr.nbytes + 1, np.uint8)
    view = raw[1:].view(arr.dtype).reshape(arr.shape)
    view[...] = arr
    assert not view.flags.aligned
    return view


def test_views_and_lists_work(rng):
    x = rng.standard_normal((2, 3, 9, 8)).astype(f32)
    w = rng.standard_normal((4, 3, 3, 3)).astype(f32)
    want = ref_conv2d(x, w, None, (1, 1), (1, 1, 1, 1))
    readonly = x.copy()
    readonly.setflags(write=False)
    flipped = np.ascontiguousarray(x[:, :, ::-1, ::-1])[:, :, ::-1, ::-1]  # negative strides, same values
    assert flipped.strides[2] < 0
    for name, xi in (("read-only", readonly), ("negative strides", flipped),
                     ("misaligned", _misaligned(x)), ("list", x.astype(np.float64).tolist())):
        wi = w.astype(np.float64) if name == "list" else w
        assert_close(F.conv2d(xi, wi, padding=1), want, name, 1e-5)
    # the other ops take the same odd views
    wc, wr = rng.standard_normal((3, 3)).astype(f32), rng.standard_normal((3, 2)).astype(f32)
    y = F.sepconv2d_1d(x, wc, wr, padding=1)
    np.testing.assert_array_equal(F.sepconv2d_1d(_misaligned(x), wc[:, ::-1][:, ::-1], _misaligned(wr), padding=1), y)
    np.testing.assert_array_equal(F.im2col(readonly, 3, 3), F.im2col(x, 3, 3))
    np.testing.assert_array_equal(F.conv1d(flipped[:, :, 0], w[:, :, 0]), F.conv1d(x[:, :, 0], w[:, :, 0]))
    wt = np.ascontiguousarray(w.transpose(1, 0, 2, 3))
    np.testing.assert_array_equal(F.conv_transpose2d(_misaligned(x), wt), F.conv_transpose2d(x, wt))


def test_inputs_are_not_modified(rng):
    x = rng.standard_normal((2, 3, 7, 7)).astype(f32)
    wc, wr = rng.standard_normal((3, 3)).astype(f32), rng.standard_normal((3, 3)).astype(f32)
    copies = [a.copy() for a in (x, wc, wr)]
    dy = rng.standard_normal((2, 3, 5, 5)).astype(f32)
    F.sepconv2d_1d_backward(dy, x, wc, wr)
    for before, after in zip(copies, (x, wc, wr)):
        np.testing.assert_array_equal(before, after)


def test_empty_batch_works(rng):
    x = np.zeros((0, 3, 6, 6), f32)
    w = rng.standard_normal((6, 1, 3, 3)).astype(f32)
    wc, wr = rng.standard_normal((3, 3)).astype(f32), rng.standard_normal((3, 3)).astype(f32)
    assert F.sepconv2d_1d(x, wc, wr).shape == (0, 3, 4, 4)
    dx, dwc, dwr, db = F.sepconv2d_1d_backward(np.zeros((0, 3, 4, 4), f32), x, wc, wr)
    assert dx.shape == x.shape and not dwc.any() and not dwr.any() and not db.any()
    assert F.depthwise_conv2d(x, w).shape == (0, 6, 4, 4)
    wp = rng.standard_normal((5, 6, 1, 1)).astype(f32)
    assert F.separable_conv2d(x, w, wp).shape == (0, 5, 4, 4)
    grads = F.separable_conv2d_backward(np.zeros((0, 5, 4, 4), f32), x, w, wp)
    assert grads[0].shape == x.shape and not grads[1].any() and not grads[2].any() and not grads[3].any()
    assert F.conv1d(np.zeros((0, 3, 9), f32), np.ones((2, 3, 3), f32)).shape == (0, 2, 7)
    assert F.conv_transpose2d(x, np.ones((3, 2, 3, 3), f32)).shape == (0, 2, 8, 8)
    assert F.im2col(x, 3, 3).shape == (0, 27)
    assert F.col2im(np.zeros((0, 27), f32), x.shape, 3, 3).shape == x.shape
    # 2^32 elements per image (an int32 count would wrap to 0): valid, and nothing to compute
    wide = np.zeros((0, 2**20, 2**12, 1), f32)
    assert F.conv2d(wide, np.ones((1, 2**20, 1, 1), f32)).shape == (0, 1, 2**12, 1)


# ---- every array argument may be an odd view; outputs are fresh, writeable arrays ------------
# (No convcore function takes an output buffer (out=), so a read-only or aliased output buffer
# cannot be passed; these tests make sure inputs of any layout give bit-identical results and
# that outputs never share memory with inputs.)

def _odd_views(a):
    """The values of `a` as a read-only, a negative-stride, a Fortran-order and a misaligned array."""
    readonly = a.copy()
    readonly.setflags(write=False)
    flipped = np.flip(np.flip(a, -1).copy(), -1)
    assert flipped.strides[-1] < 0 or a.shape[-1] <= 1
    return {"read-only": readonly, "negative strides": flipped,
            "Fortran order": np.asfortranarray(a), "misaligned": _misaligned(a)}


def _as_tuple(out):
    return out if isinstance(out, tuple) else (out,)


def _odd_view_calls(rng):
    r = lambda *shape: rng.standard_normal(shape).astype(f32)  # noqa: E731
    x, w, b = r(2, 3, 9, 8), r(4, 3, 3, 3), r(4)
    dy = r(2, 4, 7, 6)
    xp = r(2, 3, 8, 8)
    _, idx = F.max_pool2d(xp, 2, return_indices=True)
    return [
        ("conv2d", lambda x, w, b: F.conv2d(x, w, b), (x, w, b)),
        ("conv2d_backward", lambda dy, x, w: F.conv2d_backward(dy, x, w), (dy, x, w)),
        ("conv_transpose2d_backward", lambda x, w, dy: F.conv_transpose2d_backward(dy, x, w),
         (r(2, 4, 7, 6), np.ascontiguousarray(w), x)),
        ("sepconv2d_1d_backward", lambda dy, x, wc, wr: F.sepconv2d_1d_backward(dy, x, wc, wr),
         (r(2, 3, 7, 7), x, r(3, 3), r(3, 2))),
        ("col2im", lambda col: F.col2im(col, x.shape, 3, 3), (r(2 * 7 * 6, 27),)),
        ("max_pool2d_backward", lambda dy, x, idx: F.max_pool2d_backward(dy, x, 2, indices=idx),
         (r(2, 3, 4, 4), xp, idx)),
        ("avg_pool2d", lambda x: F.avg_pool2d(x, 3, stride=2, padding=1), (xp,)),
    ]


def test_odd_views_of_every_argument_give_identical_results(rng):
    for name, call, args in _odd_view_calls(rng):
        want = _as_tuple(call(*args))
        for pos, arg in enumerate(args):
            for kind, view in _odd_views(arg).items():
                changed = list(args)
                changed[pos] = view
                for got, exp in zip(_as_tuple(call(*changed)), want):
                    np.testing.assert_array_equal(got, exp, err_msg=f"{name} argument {pos} {kind}")


def test_outputs_are_fresh_writeable_aligned_arrays(rng):
    for name, call, args in _odd_view_calls(rng):
        for out in _as_tuple(call(*args)):
            if out is None:
                continue
            assert out.flags.writeable and out.flags.c_contiguous, name
            assert not any(np.shares_memory(out, a) for a in args), name
            # whole-cache-line stores along output rows (bindings/array.h: kOutputAlign)
            assert out.ctypes.data % 64 == 0, name
