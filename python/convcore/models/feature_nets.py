"""Frozen feature extractors for neural style transfer: NIN and VGG-16 as chainer-gogh lays
them out, VGG-19 as Gatys et al. used it, and a shallow wide network for random features.

    net = feature_net("nin", seed=0)                 # seeded random weights
    net = feature_net("vgg16", weights="vgg16.npz")  # trained weights from an .npz
    net = feature_net("nin", weights="nin_imagenet.caffemodel")   # or straight from Caffe
    feats = net.forward(x, taps)                     # {name: (N, C, H, W)}
    dx = net.backward({name: dfeat})                 # gradient to the input only

Weights are never trained here, so backward computes the gradient with respect to the input
alone (conv2d_backward(..., need=("x",))): no weight gradient is formed. The networks are
truncated after the deepest layer a loss reads.

Weight files: .npz with '<layer>/W' (K, C, kh, kw) and '<layer>/b' (K,), plus an optional
'preprocess' string ('caffe': subtract the per-channel mean from 0..255 RGB pixels, or
'torch': scale to 0..1, subtract torchvision's mean and divide by its std).
`convert_torchvision_vgg(state_dict_file, out_npz, arch)` writes such a file from a PyTorch
state_dict in torchvision's VGG layout ('features.<i>.weight');
`convert_caffemodel(caffemodel, out_npz, arch)` (convcore.models.caffe, a protobuf reader of
its own: neither Caffe nor protobuf is needed) writes one from the Caffe models chainer-gogh
uses (NIN-ImageNet, VGG_ILSVRC_16/19_layers), reversing the first conv's input channels
from Caffe's BGR to RGB. A `weights` path ending in '.caffemodel' is converted in memory.

Pooling is average pooling throughout, as Gatys et al. recommend for synthesis (and
chainer-gogh uses); trained VGG weights come from max-pooled training, which average
pooling approximates.
"""
import os

import numpy as np

from .. import functional as F
from .._frozen import FrozenWeights
from .._gpu import array_namespace, is_gpu_array
from ..init import he_normal
from ..layers import _is_float_ndarray

__all__ = ["FeatureNet", "feature_net", "FEATURE_NETS", "convert_torchvision_vgg",
           "torchvision_vgg_layout"]

CAFFE_MEAN = (123.68, 116.779, 103.939)     # ImageNet RGB mean in 0..255 (VGG's Caffe models)
TORCH_MEAN = (0.485, 0.456, 0.406)          # torchvision's normalisation of 0..1 RGB
TORCH_STD = (0.229, 0.224, 0.225)


def _conv(name, c_in, c_out, k, stride=1, pad=0):
    return {"op": "conv", "name": name, "c_in": c_in, "c_out": c_out, "k": k,
            "stride": stride, "pad": pad}


def _relu(name):
    return {"op": "relu", "name": name}


def _pool(name, k, stride):
    return {"op": "pool", "name": name, "k": k, "stride": stride}


def _nin_spec():
    """chainer-gogh's NIN (Lin et al.'s ImageNet model): conv1 11x11/4 -> 96, two 1x1 (cccp),
    avg pool 3/2, conv2 5x5 -> 256, two 1x1, pool, conv3 3x3 -> 384, two 1x1, pool,
    conv4-1024 3x3. Features: the ReLU outputs of conv1, conv2, conv3, conv4-1024."""
    spec = []
    c_in = 3
    blocks = (("1", 96, 11, 4, 0), ("2", 256, 5, 1, 2), ("3", 384, 3, 1, 1))
    for i, (n, width, k, stride, pad) in enumerate(blocks):
        spec += [_conv(f"conv{n}", c_in, width, k, stride, pad), _relu(f"relu{n}")]
        for j in (2 * i + 1, 2 * i + 2):
            spec += [_conv(f"cccp{j}", width, width, 1), _relu(f"relu_cccp{j}")]
        spec.append(_pool(f"pool{n}", 3, 2))
        c_in = width
    spec += [_conv("conv4_1024", 384, 1024, 3, 1, 1), _relu("relu4")]
    return spec


def _vgg_spec(blocks, last):
    """VGG: blocks of 3x3 pad-1 convs (conv<b>_<i>, relu<b>_<i>) with 2x2 average pools between
    them, cut after the layer named `last`."""
    spec = []
    c_in = 3
    for b, (width, count) in enumerate(blocks, start=1):
        if b > 1:
            spec.append(_pool(f"pool{b - 1}", 2, 2))
        for i in range(1, count + 1):
            spec += [_conv(f"conv{b}_{i}", c_in, width, 3, 1, 1), _relu(f"relu{b}_{i}")]
            c_in = width
    cut = next(i for i, op in enumerate(spec) if op["name"] == last)
    return spec[:cut + 1]


def _shallow_spec():
    """A shallow wide network for random features (Ustyuzhaninov et al., ICLR 2017, found one
    random layer of many filters enough for textures): 3 conv layers, widths 128-256-512."""
    return [_conv("conv1", 3, 128, 5, 1, 2), _relu("relu1"), _pool("pool1", 2, 2),
            _conv("conv2", 128, 256, 3, 1, 1), _relu("relu2"), _pool("pool2", 2, 2),
            _conv("conv3", 256, 512, 3, 1, 1), _relu("relu3")]


_VGG16 = ((64, 2), (128, 2), (256, 3), (512, 3), (512, 3))
_VGG19 = ((64, 2), (128, 2), (256, 4), (512, 4), (512, 4))

# name -> (spec builder, content layers and weights, style layers and weights, preprocessing)
FEATURE_NETS = {
    # chainer-gogh: alpha = [0, 0, 1, 1] (content), beta = [1, 1, 1, 1] (style); mean 120
    "nin": (_nin_spec, {"relu3": 1.0, "relu4": 1.0},
            {"relu1": 1.0, "relu2": 1.0, "relu3": 1.0, "relu4": 1.0}, ("caffe", (120.0,) * 3)),
    # chainer-gogh's VGG: features are conv1_2, conv2_2, conv3_3, conv4_3 before their ReLU
    "vgg16": (lambda: _vgg_spec(_VGG16, "conv4_3"), {"conv3_3": 1.0, "conv4_3": 1.0},
              {"conv1_2": 1.0, "conv2_2": 1.0, "conv3_3": 1.0, "conv4_3": 1.0},
              ("caffe", CAFFE_MEAN)),
    # Gatys et al.: content relu4_2, style relu1_1 .. relu5_1
    "vgg19": (lambda: _vgg_spec(_VGG19, "relu5_1"), {"relu4_2": 1.0},
              {f"relu{b}_1": 1.0 for b in range(1, 6)}, ("caffe", CAFFE_MEAN)),
    "random": (_shallow_spec, {"relu3": 1.0},
               {"relu1": 1.0, "relu2": 1.0, "relu3": 1.0}, ("caffe", (120.0,) * 3)),
}


class FeatureNet:
    """A sequence of conv / relu / average-pool ops with frozen weights `params`
    ({'<conv>/W', '<conv>/b'}); `preprocess` maps 0..255 RGB pixels to the network's input.

    The conv weights run as convcore.FrozenWeights snapshots, taken at first use per dtype, so
    their prepared forms (Winograd-transformed, turned for the input gradient) are built once
    per run, not per call; on CuPy inputs (the CUDA backend) they are copied to the device once
    instead. Putting a new array into `params` takes effect at the next call; editing one in
    place does not until `refresh()`."""

    def __init__(self, name, spec, params, content_layers, style_layers, preprocess):
        self.name = name
        self.spec = spec
        self.params = params
        self.content_layers = dict(content_layers)
        self.style_layers = dict(style_layers)
        self.preprocess = preprocess
        self._cache = None
        self._frozen = {}
        self._check_params()

    def refresh(self):
        """Drop the weight snapshots (after editing arrays of `params` in place)."""
        self._frozen = {}

    def _weights(self, name, like):
        """conv `name`'s (W, b) for inputs like `like`: for NumPy inputs W as a FrozenWeights
        snapshot in like's dtype; for GPU (CuPy) inputs both copied to the device once. Kept
        while params holds the same arrays."""
        W, b = self.params[name + "/W"], self.params[name + "/b"]
        dtype = like.dtype
        if is_gpu_array(like):
            xp = array_namespace(like)
            key = (name, np.dtype(dtype), "gpu")
            entry = self._frozen.get(key)
            if entry is None or entry[0] is not W or entry[1] is not b:
                entry = (W, b, xp.asarray(W, dtype=dtype), xp.asarray(b, dtype=dtype))
                self._frozen[key] = entry
            return entry[2], entry[3]
        key = (name, np.dtype(dtype))
        entry = self._frozen.get(key)
        if entry is None or entry[0] is not W:
            entry = (W, FrozenWeights(np.asarray(W).astype(dtype, copy=False)))
            self._frozen[key] = entry
        return entry[1], np.asarray(b).astype(dtype, copy=False)

    def _check_params(self):
        for op in self.convs():
            W = self.params.get(op["name"] + "/W")
            b = self.params.get(op["name"] + "/b")
            want = (op["c_out"], op["c_in"], op["k"], op["k"])
            if W is None or b is None:
                raise ValueError(f"FeatureNet {self.name}: weights for {op['name']} missing")
            if W.shape != want or b.shape != (op["c_out"],):
                raise ValueError(f"FeatureNet {self.name}: {op['name']}/W has shape {W.shape}, "
                                 f"expected {want} (b {b.shape}, expected {(op['c_out'],)})")

    def convs(self):
        return [op for op in self.spec if op["op"] == "conv"]

    def layer_names(self):
        return [op["name"] for op in self.spec]

    def astype(self, dtype):
        """The same network with weights of `dtype` (float64 for gradient checks)."""
        params = {k: v.astype(dtype) for k, v in self.params.items()}
        return FeatureNet(self.name, self.spec, params, self.content_layers, self.style_layers,
                          self.preprocess)

    # ---- pixels <-> network input ----------------------------------------------------------

    def _scale_shift(self, like):
        """(scale, shift) per channel, (1, 3, 1, 1) arrays of like's dtype and array library."""
        kind, mean = self.preprocess
        dtype = like.dtype
        mean = np.asarray(mean, dtype).reshape(1, 3, 1, 1)
        if kind == "torch":
            std = np.asarray(TORCH_STD, dtype).reshape(1, 3, 1, 1)
            scale, shift = 1.0 / (255.0 * std), np.asarray(TORCH_MEAN, dtype).reshape(1, 3, 1, 1) / std
        else:
            scale, shift = np.ones((1, 3, 1, 1), dtype), mean
        xp = array_namespace(like)
        return xp.asarray(scale.astype(dtype)), xp.asarray(shift.astype(dtype))

    def to_input(self, pixels):
        """(N, 3, H, W) RGB pixels in 0..255 -> the network's input."""
        scale, shift = self._scale_shift(pixels)
        return pixels * scale - shift

    def input_grad_to_pixels(self, dx):
        scale, _ = self._scale_shift(dx)
        return dx * scale

    # ---- forward / backward ----------------------------------------------------------------

    def forward(self, x, taps):
        """Run up to the deepest layer in `taps`; return {tap: output} (views of cached
        arrays: do not modify them). Keeps what backward needs."""
        taps = set(taps)
        unknown = taps - set(self.layer_names())
        if unknown:
            raise ValueError(f"FeatureNet {self.name}: unknown layers {sorted(unknown)}; "
                             f"layers are {self.layer_names()}")
        last = max(self.layer_names().index(t) for t in taps)
        xp = array_namespace(x)
        x = xp.ascontiguousarray(x)
        cache, out = [], {}
        for op in self.spec[:last + 1]:
            if op["op"] == "conv":
                W, b = self._weights(op["name"], x)
                y = F.conv2d(x, W, b, stride=op["stride"], padding=op["pad"])
            elif op["op"] == "relu":  # native and threaded for NumPy arrays; CuPy's own otherwise
                # in place when x is the previous conv's output and not a tap (VGG's features
                # are convs before their ReLU): nothing else keeps it
                in_place = _is_float_ndarray(x) and cache and cache[-1][0]["op"] == "conv" \
                    and out.get(cache[-1][0]["name"]) is not x
                y = F.relu(x, out=x if in_place else None) if _is_float_ndarray(x) \
                    else xp.maximum(x, 0)
            else:
                y = F.avg_pool2d(x, op["k"], stride=op["stride"])
            # relu backward needs only its output; conv and pool need their input
            cache.append((op, y if op["op"] == "relu" else x))
            if op["name"] in taps:
                out[op["name"]] = y
            x = y
        self._cache = cache
        return out

    def backward(self, dfeatures):
        """Gradient with respect to the last forward's input, given {tap: d loss / d tap}."""
        if self._cache is None:
            raise ValueError("FeatureNet.backward: call forward first")
        dy = None
        for op, saved in reversed(self._cache):
            extra = dfeatures.get(op["name"])
            if extra is not None:
                if dy is None:
                    dy = extra
                elif _is_float_ndarray(dy) and dy.flags.writeable and dy.dtype == extra.dtype:
                    dy += extra   # dy is a gradient this backward made: add in place
                else:
                    dy = dy + extra
            if dy is None:      # nothing reads this layer or anything after it
                continue
            xp = array_namespace(dy)
            if op["op"] == "conv":
                W, _ = self._weights(op["name"], saved)
                dy, _, _ = F.conv2d_backward(xp.ascontiguousarray(dy), saved, W,
                                             stride=op["stride"], padding=op["pad"],
                                             need=("x",))
            elif op["op"] == "relu":
                if _is_float_ndarray(dy) and _is_float_ndarray(saved) and dy.dtype == saved.dtype:
                    # dy is this backward's own array (a conv's or pool's gradient, or a sum)
                    # unless it is the caller's tap gradient itself
                    own = dy is not extra
                    dy = F.relu_backward(dy, saved, out=dy if own and dy.flags.writeable else None)
                else:
                    dy = xp.where(saved > 0, dy, dy.dtype.type(0))
            else:
                dy = F.avg_pool2d_backward(xp.ascontiguousarray(dy), saved, op["k"],
                                           stride=op["stride"])
        return dy

    # ---- persistence -----------------------------------------------------------------------

    def save_npz(self, file_name):
        with open(file_name, "wb") as f:
            np.savez(f, preprocess=np.array(self.preprocess[0]), **self.params)


def _random_params(spec, seed, dtype):
    """He-normal weights (std sqrt(2 / fan_in), so activations keep their scale through the
    ReLUs), zero biases, from one seeded stream."""
    rng = np.random.default_rng(seed)
    params = {}
    for op in spec:
        if op["op"] == "conv":
            shape = (op["c_out"], op["c_in"], op["k"], op["k"])
            params[op["name"] + "/W"] = he_normal(shape, rng=rng, dtype=dtype)
            params[op["name"] + "/b"] = np.zeros(op["c_out"], dtype)
    return params


def _load_params(file_name, dtype):
    with np.load(file_name, allow_pickle=False) as archive:
        arrays = {k: archive[k] for k in archive.files}
    kind = str(arrays.pop("preprocess", "caffe"))
    if kind not in ("caffe", "torch"):
        raise ValueError(f"feature_net: {file_name!r} has preprocess={kind!r}, expected "
                         "'caffe' or 'torch'")
    return {k: v.astype(dtype) for k, v in arrays.items()}, kind


def _is_caffemodel(weights):
    return (isinstance(weights, (str, os.PathLike))
            and os.fspath(weights).lower().endswith(".caffemodel"))


def feature_net(name, weights=None, seed=0, dtype=np.float32):
    """A FeatureNet by name ('nin', 'vgg16', 'vgg19', 'random'): weights from an .npz file or
    a Caffe .caffemodel (by its extension; 'nin', 'vgg16' and 'vgg19' only), or seeded random
    weights when `weights` is None."""
    try:
        build, content, style, (kind, mean) = FEATURE_NETS[name.lower()]
    except (KeyError, AttributeError):
        raise ValueError(f"feature_net: unknown net {name!r}; choose one of "
                         f"{sorted(FEATURE_NETS)}") from None
    spec = build()
    if weights is None:
        params = _random_params(spec, seed, dtype)
    elif _is_caffemodel(weights):
        from .caffe import caffemodel_params
        params, kind = caffemodel_params(weights, name.lower(), dtype), "caffe"
    else:
        params, kind = _load_params(weights, dtype)
        if kind == "torch":
            mean = TORCH_MEAN
    return FeatureNet(name.lower(), spec, params, content, style, (kind, mean))


def torchvision_vgg_layout(arch):
    """The index in torchvision's `features` Sequential of each conv of our `arch` spec
    (torchvision interleaves conv, ReLU and, between blocks, a max pool)."""
    build = FEATURE_NETS[arch][0]
    index, out = 0, {}
    for op in build():
        if op["op"] == "conv":
            out[op["name"]] = index
            index += 1
        elif op["op"] in ("relu", "pool"):
            index += 1
    return out


def convert_torchvision_vgg(state_dict, out_file, arch="vgg16"):
    """Write an .npz for feature_net(arch, weights=out_file) from a PyTorch state_dict in
    torchvision's VGG layout: a dict of tensors/arrays, or a file saved by torch.save (read
    with torch.load(weights_only=True), so it never unpickles code). Extra keys (the
    classifier, deeper layers) are ignored."""
    if arch not in ("vgg16", "vgg19"):
        raise ValueError(f"convert_torchvision_vgg: arch must be 'vgg16' or 'vgg19', got {arch!r}")
    if not isinstance(state_dict, dict):
        import torch
        state_dict = torch.load(state_dict, map_location="cpu", weights_only=True)
    arrays = {"preprocess": np.array("torch")}
    for name, index in torchvision_vgg_layout(arch).items():
        for ours, theirs in (("W", "weight"), ("b", "bias")):
            key = f"features.{index}.{theirs}"
            if key not in state_dict:
                raise ValueError(f"convert_torchvision_vgg: {key} missing (is this a "
                                 f"torchvision {arch} state_dict?)")
            value = state_dict[key]
            value = value.detach().cpu().numpy() if hasattr(value, "detach") else value
            arrays[f"{name}/{ours}"] = np.asarray(value, np.float32)
    with open(out_file, "wb") as f:
        np.savez(f, **arrays)
