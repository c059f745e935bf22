"""The book's two convolutional networks, with its architectures, defaults and parameter keys.

Weights come from the global np.random (as in the book, so np.random.seed reproduces a run)
unless an `rng` Generator is given; `dtype` picks the parameters' precision (the book's are
float64; float32 trains about twice as fast and is what the training CLI uses).
"""
from collections import OrderedDict

import numpy as np

from ..layers import Affine, Convolution, Dropout, Pooling, Relu, SoftmaxWithLoss
from .base import Net

__all__ = ["SimpleConvNet", "DeepConvNet", "conv_out_size"]


def conv_out_size(size, filter_size, stride=1, pad=0):
    return (size + 2 * pad - filter_size) // stride + 1


def _randn(rng, shape):
    return rng.standard_normal(shape) if rng is not None else np.random.randn(*shape)


class SimpleConvNet(Net):
    """conv - relu - pool(2x2, stride 2) - affine - relu - affine - softmax.

    Parameters: W1 (filter_num, C, fs, fs), b1; W2 (pooled size, hidden_size), b2;
    W3 (hidden_size, output_size), b3; all weights N(0, weight_init_std**2), biases zero.
    Layers: self.layers = OrderedDict Conv1, Relu1, Pool1, Affine1, Relu2, Affine2;
    self.last_layer = SoftmaxWithLoss.
    """

    def __init__(self, input_dim=(1, 28, 28),
                 conv_param={'filter_num': 30, 'filter_size': 5, 'pad': 0, 'stride': 1},
                 hidden_size=100, output_size=10, weight_init_std=0.01, *,
                 dtype=np.float64, rng=None):
        filter_num = conv_param['filter_num']
        filter_size = conv_param['filter_size']
        pad = conv_param['pad']
        stride = conv_param['stride']
        channels, height, width = input_dim
        conv_h = conv_out_size(height, filter_size, stride, pad)
        conv_w = conv_out_size(width, filter_size, stride, pad)
        pool_size = filter_num * (conv_h // 2) * (conv_w // 2)

        def weight(*shape):
            return (weight_init_std * _randn(rng, shape)).astype(dtype)

        W1 = weight(filter_num, channels, filter_size, filter_size)
        W2 = weight(pool_size, hidden_size)
        W3 = weight(hidden_size, output_size)
        self.layers = OrderedDict()
        self.layers['Conv1'] = Convolution(W1, np.zeros(filter_num, dtype), stride, pad)
        self.layers['Relu1'] = Relu()
        self.layers['Pool1'] = Pooling(pool_h=2, pool_w=2, stride=2)
        self.layers['Affine1'] = Affine(W2, np.zeros(hidden_size, dtype))
        self.layers['Relu2'] = Relu()
        self.layers['Affine2'] = Affine(W3, np.zeros(output_size, dtype))
        self.last_layer = SoftmaxWithLoss()
        self._register()


_DEEP_DEFAULTS = (
    {'filter_num': 16, 'filter_size': 3, 'pad': 1, 'stride': 1},
    {'filter_num': 16, 'filter_size': 3, 'pad': 1, 'stride': 1},
    {'filter_num': 32, 'filter_size': 3, 'pad': 1, 'stride': 1},
    {'filter_num': 32, 'filter_size': 3, 'pad': 2, 'stride': 1},
    {'filter_num': 64, 'filter_size': 3, 'pad': 1, 'stride': 1},
    {'filter_num': 64, 'filter_size': 3, 'pad': 1, 'stride': 1},
)


class DeepConvNet(Net):
    """The book's deep network (over 99% on MNIST):

        conv-relu-conv-relu-pool - conv-relu-conv-relu-pool - conv-relu-conv-relu-pool
        - affine-relu-dropout - affine-dropout - softmax

    3x3 convolutions with 16, 16, 32, 32 (pad 2), 64, 64 filters, 2x2 pools of stride 2,
    a hidden affine layer of 50, dropout 0.5, He initialisation (std sqrt(2/fan_in)), zero
    biases. Keys W1..W8, b1..b8; self.layers is a list, self.last_layer a SoftmaxWithLoss.
    The first affine layer's fan-in (64*4*4 for 28x28 input) is computed from input_dim.
    """

    def __init__(self, input_dim=(1, 28, 28),
                 conv_param_1=_DEEP_DEFAULTS[0], conv_param_2=_DEEP_DEFAULTS[1],
                 conv_param_3=_DEEP_DEFAULTS[2], conv_param_4=_DEEP_DEFAULTS[3],
                 conv_param_5=_DEEP_DEFAULTS[4], conv_param_6=_DEEP_DEFAULTS[5],
                 hidden_size=50, output_size=10, *, dropout_ratio=0.5,
                 dtype=np.float64, rng=None):
        conv_params = [conv_param_1, conv_param_2, conv_param_3,
                       conv_param_4, conv_param_5, conv_param_6]
        channels, height, width = input_dim

        def he(shape, fan_in):
            return (np.sqrt(2.0 / fan_in) * _randn(rng, shape)).astype(dtype)

        self.layers = []
        for i, cp in enumerate(conv_params):
            fs, fn = cp['filter_size'], cp['filter_num']
            W = he((fn, channels, fs, fs), channels * fs * fs)
            self.layers.append(Convolution(W, np.zeros(fn, dtype), cp['stride'], cp['pad']))
            self.layers.append(Relu())
            channels = fn
            height = conv_out_size(height, fs, cp['stride'], cp['pad'])
            width = conv_out_size(width, fs, cp['stride'], cp['pad'])
            if i % 2 == 1:
                self.layers.append(Pooling(pool_h=2, pool_w=2, stride=2))
                height, width = conv_out_size(height, 2, 2), conv_out_size(width, 2, 2)
        flat = channels * height * width
        self.layers.append(Affine(he((flat, hidden_size), flat), np.zeros(hidden_size, dtype)))
        self.layers.append(Relu())
        self.layers.append(Dropout(dropout_ratio))
        self.layers.append(Affine(he((hidden_size, output_size), hidden_size),
                                  np.zeros(output_size, dtype)))
        self.layers.append(Dropout(dropout_ratio))
        self.last_layer = SoftmaxWithLoss()
        self._register()
