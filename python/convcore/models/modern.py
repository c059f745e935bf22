"""Later architectures, small enough for 28x28 single-channel input by default, built from the
same book-style layers and trained through the same `gradient` interface.

    VGGNet      stacks of 3x3 convolutions between 2x2 max pools, then affine layers
    MobileNet   MobileNet-v1 style: depthwise 3x3 + pointwise 1x1 blocks, each with BN + ReLU
    XceptionNet Xception entry-flow style: residual blocks of separable convolutions
    ResNet      basic residual blocks (two 3x3 conv + BN), projection shortcuts on downsampling
    FCN         fully convolutional: strided convs down, a transposed conv back up, a per-pixel
                class-score map (score_map) averaged into class scores

All weights use He initialisation (ReLU networks); batch normalisation is per channel.
Every constructor takes `dtype` and `rng` (a numpy Generator; default: a fresh one).
"""
import numpy as np

from ..init import he_normal
from ..layers import (Affine, BatchNormalization, Convolution, ConvTranspose, DepthwiseConv,
                      Dropout, GlobalAvgPool, Pooling, Relu, ResidualBlock, SeparableConv,
                      Sequential, SoftmaxWithLoss)
from .base import Net
from .book import conv_out_size

__all__ = ["VGGNet", "MobileNet", "XceptionNet", "ResNet", "FCN"]


class _Builder:
    """Makes layers with He-initialised weights of one dtype from one random stream."""

    def __init__(self, dtype, rng):
        self.dtype = dtype
        self.rng = rng if rng is not None else np.random.default_rng()

    def zeros(self, n):
        return np.zeros(n, self.dtype)

    def conv(self, c_in, c_out, k, stride=1, pad=0):
        W = he_normal((c_out, c_in, k, k), rng=self.rng, dtype=self.dtype)
        return Convolution(W, self.zeros(c_out), stride, pad)

    def depthwise(self, channels, k, stride=1, pad=0):
        W = he_normal((channels, 1, k, k), rng=self.rng, dtype=self.dtype)
        return DepthwiseConv(W, self.zeros(channels), stride, pad)

    def separable(self, c_in, c_out, k, stride=1, pad=0):
        Wd = he_normal((c_in, 1, k, k), rng=self.rng, dtype=self.dtype)
        Wp = he_normal((c_out, c_in, 1, 1), rng=self.rng, dtype=self.dtype)
        return SeparableConv(Wd, Wp, self.zeros(c_out), stride, pad)

    def conv_transpose(self, c_in, c_out, k, stride, pad):
        # each output pixel sums about c_in*k*k/stride**2 products
        fan_in = max(1, c_in * k * k // (stride * stride))
        W = he_normal((c_in, c_out, k, k), fan_in=fan_in, rng=self.rng, dtype=self.dtype)
        return ConvTranspose(W, self.zeros(c_out), stride, pad)

    def affine(self, n_in, n_out):
        W = he_normal((n_in, n_out), rng=self.rng, dtype=self.dtype)
        return Affine(W, self.zeros(n_out))

    def bn(self, channels):
        return BatchNormalization(np.ones(channels, self.dtype), self.zeros(channels))


class VGGNet(Net):
    """[conv3x3-relu]*len(block) - pool, for each block; then affine-relu-dropout-affine."""

    def __init__(self, input_dim=(1, 28, 28), blocks=((32, 32), (64, 64)), hidden_size=128,
                 output_size=10, dropout_ratio=0.5, *, dtype=np.float64, rng=None):
        make = _Builder(dtype, rng)
        channels, height, width = input_dim
        self.layers = []
        for block in blocks:
            for filters in block:
                self.layers += [make.conv(channels, filters, 3, 1, 1), Relu()]
                channels = filters
            self.layers.append(Pooling(2, 2, stride=2))
            height, width = height // 2, width // 2
        flat = channels * height * width
        self.layers += [make.affine(flat, hidden_size), Relu(), Dropout(dropout_ratio),
                        make.affine(hidden_size, output_size)]
        self.last_layer = SoftmaxWithLoss()
        self._register()


class MobileNet(Net):
    """conv3x3-BN-ReLU stem, then per (filters, stride) block: depthwise 3x3 (stride) - BN -
    ReLU - pointwise 1x1 - BN - ReLU; global average pool; affine."""

    def __init__(self, input_dim=(1, 28, 28), stem_channels=16,
                 blocks=((32, 1), (64, 2), (128, 2), (128, 1)), output_size=10, *,
                 dtype=np.float64, rng=None):
        make = _Builder(dtype, rng)
        channels = input_dim[0]
        self.layers = [make.conv(channels, stem_channels, 3, 1, 1), make.bn(stem_channels),
                       Relu()]
        channels = stem_channels
        for filters, stride in blocks:
            self.layers += [make.depthwise(channels, 3, stride, 1), make.bn(channels), Relu(),
                            make.conv(channels, filters, 1), make.bn(filters), Relu()]
            channels = filters
        self.layers += [GlobalAvgPool(), make.affine(channels, output_size)]
        self.last_layer = SoftmaxWithLoss()
        self._register()


class XceptionNet(Net):
    """Stem conv3x3-BN-ReLU, then Xception entry-flow blocks, each

        main:     sepconv3x3 - BN - ReLU - sepconv3x3 - BN - ReLU - maxpool 3x3/2 pad 1
        shortcut: conv1x1 stride 2 - BN
        out:      ReLU(main + shortcut)

    then global average pool and affine. The pools see ReLU outputs (>= 0), so the book
    Pooling's zero padding gives the same maxima as -inf padding would."""

    def __init__(self, input_dim=(1, 28, 28), stem_channels=16, block_channels=(32, 64),
                 output_size=10, *, dtype=np.float64, rng=None):
        make = _Builder(dtype, rng)
        channels = input_dim[0]
        self.layers = [make.conv(channels, stem_channels, 3, 1, 1), make.bn(stem_channels),
                       Relu()]
        channels = stem_channels
        for filters in block_channels:
            main = Sequential(make.separable(channels, filters, 3, 1, 1), make.bn(filters),
                              Relu(), make.separable(filters, filters, 3, 1, 1),
                              make.bn(filters), Relu(), Pooling(3, 3, stride=2, pad=1))
            shortcut = Sequential(make.conv(channels, filters, 1, 2, 0), make.bn(filters))
            self.layers.append(ResidualBlock(main, shortcut, post=Relu()))
            channels = filters
        self.layers += [GlobalAvgPool(), make.affine(channels, output_size)]
        self.last_layer = SoftmaxWithLoss()
        self._register()


class ResNet(Net):
    """Stem conv3x3-BN-ReLU, then for each (filters, stride) stage `blocks_per_stage` basic
    blocks: ReLU(BN(conv3x3(ReLU(BN(conv3x3(x))))) + shortcut(x)), the shortcut being the
    identity, or conv1x1-BN where the shape changes; global average pool; affine."""

    def __init__(self, input_dim=(1, 28, 28), stem_channels=16,
                 stages=((16, 1), (32, 2), (64, 2)), blocks_per_stage=2, output_size=10, *,
                 dtype=np.float64, rng=None):
        make = _Builder(dtype, rng)
        channels = input_dim[0]
        self.layers = [make.conv(channels, stem_channels, 3, 1, 1), make.bn(stem_channels),
                       Relu()]
        channels = stem_channels
        for filters, stride in stages:
            for i in range(blocks_per_stage):
                s = stride if i == 0 else 1
                main = Sequential(make.conv(channels, filters, 3, s, 1), make.bn(filters),
                                  Relu(), make.conv(filters, filters, 3, 1, 1), make.bn(filters))
                shortcut = None
                if s != 1 or channels != filters:
                    shortcut = Sequential(make.conv(channels, filters, 1, s, 0),
                                          make.bn(filters))
                self.layers.append(ResidualBlock(main, shortcut, post=Relu()))
                channels = filters
        self.layers += [GlobalAvgPool(), make.affine(channels, output_size)]
        self.last_layer = SoftmaxWithLoss()
        self._register()


class FCN(Net):
    """A small fully convolutional network:

        conv3x3 (width) - ReLU - conv3x3/2 (2*width) - ReLU - conv3x3/2 (4*width) - ReLU
        - transposed conv 4x4/2 (2*width) - ReLU - conv1x1 (output_size): a class-score map
          at half the input resolution (14x14 for 28x28 input)
        - global average pool: class scores, so it trains as a classifier like the others.

    `score_map(x)` returns the per-pixel class scores before pooling."""

    def __init__(self, input_dim=(1, 28, 28), width=16, output_size=10, *,
                 dtype=np.float64, rng=None):
        make = _Builder(dtype, rng)
        channels, height, _ = input_dim
        down = conv_out_size(conv_out_size(height, 3, 2, 1), 3, 2, 1)
        self.layers = [make.conv(channels, width, 3, 1, 1), Relu(),
                       make.conv(width, 2 * width, 3, 2, 1), Relu(),
                       make.conv(2 * width, 4 * width, 3, 2, 1), Relu(),
                       make.conv_transpose(4 * width, 2 * width, 4, 2, 1), Relu(),
                       make.conv(2 * width, output_size, 1), GlobalAvgPool()]
        self.map_size = 2 * down
        self.last_layer = SoftmaxWithLoss()
        self._register()

    def score_map(self, x):
        self._sync()
        for layer in self.layers[:-1]:
            x = layer.forward(x)
        return x
