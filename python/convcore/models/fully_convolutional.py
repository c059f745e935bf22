"""FCN from a classifier (Long et al., "Fully Convolutional Networks for Semantic Segmentation"):
an Affine layer over a C x H x W input is a convolution with K filters of size C x H x W, so a
trained classifier becomes a network that slides over an image of any size and returns a map
of class scores in one pass.

    fcn = to_fully_convolutional(net)            # SimpleConvNet, DeepConvNet, any Net
    scores = fcn.predict(canvas)                 # (N, classes, out_h, out_w)

Output position (i, j) scores the input window whose top-left corner is at (i*s, j*s), s being
the product of the strides before the first Affine (SimpleConvNet: 2, DeepConvNet: 8), and
whose size is the classifier's input size.

Zero padding. For a network without padding (SimpleConvNet) the score at (i, j) equals the
classifier run on that crop, exactly. A padded network (DeepConvNet: 3x3 convs with pad 1)
differs: run on a crop, every layer's map is zero-padded at the crop's border; inside the FCN
the same border cells hold real activations, computed from the pixels around the crop and, in
the deeper layers, from the crop's own edge pixels (a layer-2 cell just outside the crop sees
the crop's first column). So the scores differ even for a crop lying on a black canvas, most
for features near the crop's border. Neither is wrong: the FCN scores each window in its real
context, as a sliding window over a scene wants; the classifier's per-crop scores hold only
for isolated crops. On the classifier's own input size both are identical. The book's
DeepConvNet adds a second effect: its pad-2 conv grows the half-resolution map by one cell on
each side, so its windows sit on a grid offset by 2 pixels from the stride-8 origins
`crop_origins` gives; no FCN position lines up with a crop exactly.
"""
import copy

import numpy as np

from ..layers import (Affine, BatchNormalization, Convolution, Dropout, Pooling, Relu,
                      ResidualBlock, SeparableConv, Sequential, Sigmoid, param_slots)
from .base import Net, _layers_in

__all__ = ["FullyConvNet", "to_fully_convolutional"]

# layers allowed after the first Affine: they act on each position's feature vector alone,
# so on a (N, K, h, w) map they act position by position like on (N, K)
_POINTWISE = (Affine, Relu, Sigmoid, Dropout, BatchNormalization)


class FullyConvNet(Net):
    """A classifier turned fully convolutional. `predict(x)` always runs in inference mode
    (dropout scales, batch normalisation uses its running statistics) and returns the class
    score map (N, classes, out_h, out_w). `stride` and `window` say which input window each
    output position scores."""

    def __init__(self, layers, stride, window):
        self.layers = layers
        self.stride = stride
        self.window = window
        self.last_layer = None
        self._register()

    def predict(self, x, train_flg=False):
        if train_flg:
            raise ValueError("FullyConvNet.predict: train_flg must be False (the converted "
                             "network is for inference)")
        if x.ndim != 4:
            raise ValueError(f"FullyConvNet.predict: x must be (N, C, H, W), got shape {x.shape}")
        if x.shape[2] < self.window[0] or x.shape[3] < self.window[1]:
            raise ValueError(f"FullyConvNet.predict: x is {x.shape[2]}x{x.shape[3]}, smaller "
                             f"than the classifier's input {self.window[0]}x{self.window[1]}")
        return super().predict(x, train_flg=False)

    def crop_origins(self, out_h, out_w):
        """Top-left corners (rows, cols) of the input windows the output positions score."""
        return np.arange(out_h) * self.stride[0], np.arange(out_w) * self.stride[1]


def _forward_shape(layers, x):
    for layer in layers:
        x = layer.forward(x, False) if layer.takes_train_flg else layer.forward(x)
    return x.shape


def _strides(layers):
    """Product of the strides along the main path (a residual block's shortcut has the same
    stride as its main branch, so only `main` is followed)."""
    sy = sx = 1
    for layer in layers:
        if isinstance(layer, ResidualBlock):
            ly, lx = _strides([layer.main])
        elif isinstance(layer, Sequential):
            ly, lx = _strides(layer.layers)
        elif isinstance(layer, (Convolution, Pooling, SeparableConv)):
            ly, lx = (layer.stride, layer.stride) if np.isscalar(layer.stride) else layer.stride
        else:
            ly = lx = 1
        sy, sx = sy * ly, sx * lx
    return sy, sx


def _infer_input_dim(net, spatial, first_affine):
    """(C, H, W) of the classifier's input: from `net.input_dim` if the network keeps it,
    else from the first Affine's fan-in, assuming a square input and square feature map."""
    if getattr(net, "input_dim", None) is not None:
        return tuple(net.input_dim)
    channels_in = next((l.W.shape[1] for l in spatial if isinstance(l, Convolution)), None)
    channels_out = next((l.W.shape[0] for l in reversed(spatial)
                         if isinstance(l, Convolution)), None)
    if channels_in is None:
        raise ValueError("to_fully_convolutional: cannot infer input_dim (no convolution "
                         "before the first Affine); pass input_dim=(C, H, W)")
    side = int(round(np.sqrt(first_affine.W.shape[0] / channels_out)))
    # grow a square input until the feature map entering the Affine has the right size
    for size in range(side, 4096):
        try:
            shape = _forward_shape(spatial, np.zeros((1, channels_in, size, size),
                                                     first_affine.W.dtype))
        except ValueError:
            continue
        fan_in = int(np.prod(shape[1:]))
        if fan_in == first_affine.W.shape[0]:
            return (channels_in, size, size)
        if fan_in > first_affine.W.shape[0]:
            break
    raise ValueError("to_fully_convolutional: cannot infer a square input_dim matching the "
                     f"first Affine's {first_affine.W.shape[0]} inputs; pass input_dim=(C, H, W)")


def _affine_to_conv(affine, feature_shape):
    """Affine W (C*H*W, K) over a flattened (C, H, W) map -> conv filters (K, C, H, W): the
    flatten order is (c, y, x), so filter k is column k of W reshaped."""
    k = affine.W.shape[1]
    W = np.ascontiguousarray(affine.W.T.reshape((k,) + tuple(feature_shape)))
    return Convolution(W, np.array(affine.b, copy=True), stride=1, pad=0)


def to_fully_convolutional(net, input_dim=None):
    """A FullyConvNet computing `net`'s class scores at every window of a larger input.

    net: a book-style Net (or a list of layers) whose layers are spatial layers (convolutions,
    pooling, activations, blocks) followed by Affine layers with only pointwise layers (ReLU,
    Sigmoid, Dropout, BatchNormalization) between them. The first Affine becomes a
    convolution whose filters span the whole C x H x W map it read, later Affines become 1x1
    convolutions, dropout runs in inference mode. Weights are copied: training `net` further
    does not change the converted network.
    input_dim: the classifier's (C, H, W); by default `net.input_dim` or inferred (square).
    """
    layers = _layers_in(net.layers if hasattr(net, "layers") else net)
    first = next((i for i, l in enumerate(layers) if isinstance(l, Affine)), None)
    if first is None:
        raise ValueError("to_fully_convolutional: net has no Affine layer to convert")
    if first == 0:
        raise ValueError("to_fully_convolutional: net has no spatial layer before its "
                         "first Affine")
    head = layers[first:]
    for layer in head:
        if not isinstance(layer, _POINTWISE):
            raise ValueError(f"to_fully_convolutional: a {type(layer).__name__} follows the "
                             "first Affine; only Affine, Relu, Sigmoid, Dropout and "
                             "BatchNormalization layers can be converted there")
    spatial = copy.deepcopy(layers[:first])
    if input_dim is None:
        input_dim = _infer_input_dim(net, spatial, layers[first])
    input_dim = tuple(int(v) for v in input_dim)
    if len(input_dim) != 3:
        raise ValueError(f"to_fully_convolutional: input_dim must be (C, H, W), got {input_dim}")
    shape = _forward_shape(spatial, np.zeros((1,) + input_dim, layers[first].W.dtype))
    if len(shape) != 4:
        raise ValueError("to_fully_convolutional: the first Affine reads a "
                         f"{len(shape)}-D input {shape}, not a spatial (N, C, H, W) map "
                         "(a global pooling layer before it makes it position-free)")
    if int(np.prod(shape[1:])) != layers[first].W.shape[0]:
        raise ValueError(f"to_fully_convolutional: input_dim {input_dim} gives a {shape[1:]} "
                         f"map, but the first Affine has {layers[first].W.shape[0]} inputs")
    converted = list(spatial)
    feature_shape = shape[1:]
    for layer in head:
        if isinstance(layer, Affine):
            converted.append(_affine_to_conv(layer, feature_shape))
            feature_shape = (layer.W.shape[1], 1, 1)
        else:
            converted.append(copy.deepcopy(layer))
    # forget activations cached by the classifier's last pass (deepcopy carried them along)
    for layer, _ in param_slots(converted):
        if hasattr(layer, "x"):
            layer.x = None
    return FullyConvNet(converted, _strides(spatial), input_dim[1:])
