"""Neural style transfer (Gatys, Ecker, Bethge, "A Neural Algorithm of Artistic Style") on
convcore's convolutions, in the layout of the chainer-gogh code the book's chapter 8 shows.

    from convcore.apps import style
    img = style.stylize(content, style_img, net="nin", width=435, iters=1000, out="out.png")

The image (1, 3, H, W), RGB in 0..255, is the only thing optimised. Its loss is

    content: sum_l  lam * a_l * mean((F_l - P_l)**2)          [/ mean(P_l**2) if normalize]
    style:   sum_l  b_l * mean((G_l - A_l)**2) / n_style      [/ mean(A_l**2) if normalize]
    tv:      tv_weight * mean of squared neighbour differences of image / 255

with F_l the image's features at layer l, P_l the content image's, G_l = F F^T / (C*H*W) the
Gram matrix of F_l reshaped to (C, H*W) and A_l the style image's. Without normalisation these
are chainer-gogh's terms (lam = 0.005, Adam with lr 4 on the pixels). The network's weights
are frozen: backward computes the gradient to the image only.

Random weights. With no trained weights the network is random (seeded). Random features keep
the content's layout and carry the style's colours and a generic texture, not a painter's
strokes (He, Wang, Hopcroft, NIPS 2016; Ustyuzhaninov et al., ICLR 2017). Two aids help:
`normalize=True` divides each layer's term by its target's mean square, so every layer counts
equally whatever the scale its random filters give it (raw terms are dominated by whichever
layer happens to be largest), and `tv_weight` > 0 smooths the high-frequency noise random
filters leave.
"""
import os
import sys
import time
import zlib

import numpy as np

from .. import _cpu
from .._gpu import is_gpu_array
from ..layers import _is_float_ndarray, _matmul
from ..models.feature_nets import FeatureNet, feature_net
from ..optim import Adam

__all__ = ["StyleLoss", "ImageAdam", "stylize", "gram", "default_images", "load_image",
           "resize", "write_png", "parse_layer_weights"]


# ---- images --------------------------------------------------------------------------------

def write_png(file_name, image):
    """Write (H, W, 3) or (H, W) uint8 (or floats in 0..255, clipped) as an 8-bit PNG, with
    zlib only: PNG is a signature, then chunks (length, type, data, CRC-32) of which IHDR
    (size, depth 8, colour type 2 = RGB or 0 = grey), IDAT (zlib of the rows, each preceded
    by filter byte 0) and IEND are the required ones."""
    img = np.asarray(image)
    if img.dtype != np.uint8:
        img = np.clip(np.rint(img), 0, 255).astype(np.uint8)
    if img.ndim == 2:
        colour = 0
    elif img.ndim == 3 and img.shape[2] == 3:
        colour = 2
    else:
        raise ValueError(f"write_png: image must be (H, W) or (H, W, 3), got {img.shape}")
    h, w = img.shape[:2]
    rows = np.concatenate([np.zeros((h, 1), np.uint8), img.reshape(h, -1)], axis=1)

    def chunk(kind, data):
        body = kind + data
        return (len(data).to_bytes(4, "big") + body
                + (zlib.crc32(body) & 0xFFFFFFFF).to_bytes(4, "big"))

    header = (w.to_bytes(4, "big") + h.to_bytes(4, "big") + bytes([8, colour, 0, 0, 0]))
    directory = os.path.dirname(os.path.abspath(file_name))
    os.makedirs(directory, exist_ok=True)
    with open(file_name, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
                + chunk(b"IDAT", zlib.compress(rows.tobytes(), 6)) + chunk(b"IEND", b""))


def load_image(file_name):
    """(H, W, 3) uint8 RGB from an image file, read by Pillow, imageio or matplotlib
    (whichever is installed; none is a dependency of convcore)."""
    for reader in (_read_pillow, _read_imageio, _read_matplotlib):
        try:
            img = reader(file_name)
        except ImportError:
            continue
        return _as_rgb_uint8(img)
    raise ValueError(f"load_image: no image reader for {file_name!r}; install Pillow "
                     "(pip install pillow)")


def _read_pillow(file_name):
    from PIL import Image
    with Image.open(file_name) as im:
        return np.asarray(im.convert("RGB"))


def _read_imageio(file_name):
    import imageio.v3 as iio
    return iio.imread(file_name)


def _read_matplotlib(file_name):
    import matplotlib.image as mpimg
    return mpimg.imread(file_name)


def _as_rgb_uint8(img):
    img = np.asarray(img)
    if img.dtype.kind == "f":     # matplotlib reads PNGs as floats in 0..1
        img = np.clip(img * 255.0 + 0.5, 0, 255).astype(np.uint8)
    if img.ndim == 2:
        img = np.repeat(img[:, :, None], 3, axis=2)
    return np.ascontiguousarray(img[:, :, :3].astype(np.uint8))


def default_images():
    """(content, style) from scikit-image's bundled data: the cat `chelsea` and the
    `immunohistochemistry` stain (brown and blue blobs on a light ground) as the style."""
    try:
        from skimage import data
    except ImportError:
        raise ValueError("style: no CONTENT and STYLE images given and scikit-image is not "
                         "installed for the default ones (pip install 'convcore[apps]')") from None
    return data.chelsea(), data.immunohistochemistry()


def resize(image, width=None, height=None):
    """Bilinear resize of (H, W, C) to `width` (height keeps the aspect ratio unless given).
    Downscaling first averages blocks of pixels so thin details do not alias."""
    img = np.asarray(image, np.float64)
    h, w = img.shape[:2]
    if width is None:
        return img
    if height is None:
        height = max(1, int(round(h * width / w)))
    factor = min(h // height, w // width)
    if factor > 1:
        hc, wc = h - h % factor, w - w % factor
        img = img[:hc, :wc].reshape(hc // factor, factor, wc // factor, factor, -1).mean((1, 3))
        h, w = img.shape[:2]
    # sample at pixel centres: out pixel i covers in coordinate (i + 0.5) * h / height - 0.5
    ys = np.clip((np.arange(height) + 0.5) * h / height - 0.5, 0, h - 1)
    xs = np.clip((np.arange(width) + 0.5) * w / width - 0.5, 0, w - 1)
    y0, x0 = np.floor(ys).astype(int), np.floor(xs).astype(int)
    y1, x1 = np.minimum(y0 + 1, h - 1), np.minimum(x0 + 1, w - 1)
    fy, fx = (ys - y0)[:, None, None], (xs - x0)[None, :, None]
    top = img[y0][:, x0] * (1 - fx) + img[y0][:, x1] * fx
    bottom = img[y1][:, x0] * (1 - fx) + img[y1][:, x1] * fx
    return top * (1 - fy) + bottom * fy


def to_batch(image, dtype=np.float32):
    """(H, W, 3) pixels -> (1, 3, H, W) contiguous array of `dtype`."""
    return np.ascontiguousarray(np.asarray(image, dtype).transpose(2, 0, 1)[None])


def _to_host(x):
    """A NumPy array of x (GPU arrays are copied to the host)."""
    return x.get() if is_gpu_array(x) else np.asarray(x)


def from_batch(x):
    """(1, 3, H, W) pixels (NumPy or GPU array) -> (H, W, 3) uint8 NumPy array."""
    return np.clip(np.rint(_to_host(x)[0].transpose(1, 2, 0)), 0, 255).astype(np.uint8)


# ---- losses --------------------------------------------------------------------------------

def gram(feature):
    """(1, C, H, W) -> (C, C) Gram matrix F F^T / (C*H*W), chainer-gogh's scaling."""
    _, c, h, w = feature.shape
    flat = feature.reshape(c, h * w)
    product = _self_product(flat)
    product /= feature.dtype.type(c * h * w)
    return product


def _self_product(flat):
    """flat @ flat.T. float32 NumPy arrays: convcore's Gram product (only the triangle on and
    above the diagonal is multiplied, BLAS syrk's saving: 256 x 2809 1.89 -> 1.34 ms, 384 x 676
    0.96 -> 0.65 on 2 threads), in convcore's thread pool (NumPy's matmul runs in OpenBLAS's own
    threads, whose spinning after each call fought OpenMP's for the two cores: NIN-435
    iteration, 2 threads: 214 ms, 169 ms with OpenBLAS held to one thread). float64: convcore's
    GEMM; CuPy: its own cuBLAS."""
    if not _is_float_ndarray(flat):
        return flat @ flat.T
    if flat.dtype == np.float32:
        return _cpu._gram(np.ascontiguousarray(flat))
    return _matmul(flat, flat.T)


def parse_layer_weights(text):
    """'relu3:1,relu4:0.5' -> {'relu3': 1.0, 'relu4': 0.5}; a bare name weighs 1."""
    out = {}
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        name, _, weight = item.partition(":")
        try:
            out[name.strip()] = float(weight) if weight else 1.0
        except ValueError:
            raise ValueError(f"layer weights: {item!r} is not NAME or NAME:WEIGHT") from None
    return out


class StyleLoss:
    """The loss of an image (1, 3, H, W) in 0..255 given content and style images, and its
    gradient with respect to the image. `net` is a FeatureNet; layer weights default to the
    network's (chainer-gogh's alpha and beta)."""

    def __init__(self, net, content, style, content_weight=0.005, content_layers=None,
                 style_layers=None, tv_weight=0.0, normalize=False):
        if not isinstance(net, FeatureNet):
            raise TypeError(f"StyleLoss: net must be a FeatureNet, got {type(net).__name__}")
        for name, img in (("content", content), ("style", style)):
            if img.ndim != 4 or img.shape[:2] != (1, 3):
                raise ValueError(f"StyleLoss: {name} must be (1, 3, H, W), got {img.shape}")
        self.net = net
        self.content_weight = float(content_weight)
        self.content_layers = {k: float(v) for k, v in
                               (content_layers or net.content_layers).items() if v}
        self.style_layers = {k: float(v) for k, v in
                             (style_layers or net.style_layers).items() if v}
        self.tv_weight = float(tv_weight)
        self.normalize = bool(normalize)
        self.taps = sorted(set(self.content_layers) | set(self.style_layers),
                           key=net.layer_names().index) if (self.content_layers
                                                            or self.style_layers) else []
        if not self.taps and self.tv_weight == 0:
            raise ValueError("StyleLoss: no content layer, style layer or TV term: nothing "
                             "to optimise")
        feats = net.forward(net.to_input(content), self.content_layers) \
            if self.content_layers else {}
        self.content_targets = {k: feats[k].copy() for k in self.content_layers}
        feats = net.forward(net.to_input(style), self.style_layers) \
            if self.style_layers else {}
        self.style_targets = {k: gram(feats[k]) for k in self.style_layers}
        one = np.float64(1.0)
        self._content_scale = {k: (1.0 / max(float(np.mean(np.square(t, dtype=np.float64))),
                                             1e-30) if self.normalize else one)
                               for k, t in self.content_targets.items()}
        self._style_scale = {k: (1.0 / max(float(np.mean(np.square(t, dtype=np.float64))),
                                           1e-30) if self.normalize else one)
                             for k, t in self.style_targets.items()}

    def __call__(self, image):
        """(loss, d loss / d image, {'content': .., 'style': .., 'tv': ..})."""
        net = self.net
        parts = {"content": 0.0, "style": 0.0, "tv": 0.0}
        grad = np.zeros_like(image)
        if self.taps:
            feats = net.forward(net.to_input(image), self.taps)
            dfeats = {}
            for name, target in self.content_targets.items():
                f = feats[name]
                weight = self.content_weight * self.content_layers[name] \
                    * self._content_scale[name]
                diff = f - target
                parts["content"] += weight * _mean_square(diff)
                diff *= diff.dtype.type(2.0 * weight / diff.size)
                dfeats[name] = diff
            n_style = len(self.style_targets)
            for name, target in self.style_targets.items():
                f = feats[name]
                _, c, h, w = f.shape
                weight = self.style_layers[name] * self._style_scale[name] / n_style
                diff = gram(f)
                diff -= target
                parts["style"] += weight * _mean_square(diff)
                # d/dG mean((G-A)^2) = 2 (G-A) / C^2; G = F F^T / (C*HW) is symmetric in its
                # two factors, so d/dF = 2 dG F / (C*HW). Both scales go on the C x C factor,
                # not on the C x HW product (a pass over a larger array, freshly allocated)
                diff *= diff.dtype.type(4.0 * weight / (c * c * c * h * w))
                df = _matmul(diff, f.reshape(c, h * w)).reshape(f.shape)
                dfeats[name] = df if name not in dfeats else dfeats[name] + df
            dx = net.backward({k: v.astype(image.dtype, copy=False) for k, v in dfeats.items()})
            grad += net.input_grad_to_pixels(dx)
        if self.tv_weight:
            tv, dtv = _total_variation(image)
            parts["tv"] = self.tv_weight * tv
            grad += self.tv_weight * dtv
        return sum(parts.values()), grad, parts


def _mean_square(a):
    """mean(a**2) as a Python float: one dot product of the contiguous array with itself (in
    float32 for float32 arrays: relative error ~1e-6, a reported value, not a gradient), where
    np.mean(np.square(a, dtype=float64)) made a float64 copy of a C x C matrix per layer."""
    flat = np.ascontiguousarray(a).ravel()
    return float(np.vdot(flat, flat)) / flat.size


def _total_variation(image):
    """Mean of squared differences between vertical and horizontal neighbours of image/255,
    and its gradient with respect to the image."""
    x = image / image.dtype.type(255)
    dy = x[:, :, 1:, :] - x[:, :, :-1, :]
    dx = x[:, :, :, 1:] - x[:, :, :, :-1]
    scale = 1.0 / x.size
    tv = scale * (float(np.sum(np.square(dy, dtype=np.float64)))
                  + float(np.sum(np.square(dx, dtype=np.float64))))
    g = np.zeros_like(x)
    g[:, :, 1:, :] += dy
    g[:, :, :-1, :] -= dy
    g[:, :, :, 1:] += dx
    g[:, :, :, :-1] -= dx
    return tv, g * image.dtype.type(2 * scale / 255)


class ImageAdam:
    """stylize's Adam step on the image, in place: the book's Adam (convcore.optim.Adam) on
    one "parameter", the gradient scaled by one constant fixed at the first step,
    1 / mean|grad|, then the pixels clipped to 0..255. Adam ignores a constant gradient scale
    except through its fixed epsilon (1e-7), which normalised losses' pixel gradients (~1e-6
    and shrinking) come near; the constant keeps epsilon relative to them.
    convcore.bench.torch_style.TorchImageAdam is the same step in PyTorch."""

    def __init__(self, lr=4.0):
        self.adam = Adam(lr)
        self.grad_scale = None

    def step(self, image, grad):
        if self.grad_scale is None:
            self.grad_scale = 1.0 / max(float(np.mean(np.abs(grad))), 1e-30)
        self.adam.update({"image": image}, {"image": grad * self.grad_scale})
        np.clip(image, 0, 255, out=image)   # the whole array at once


def _progress(total, stream):
    from ..train import _Progress
    return _Progress(total, stream)


def stylize(content, style, net="nin", weights=None, seed=0, width=435, iters=1000,
            optimizer="adam", lr=4.0, content_weight=None, content_layers=None,
            style_layers=None, tv_weight=0.0, normalize=None, init="noise", out=None,
            save_every=0, progress=True, stream=None, callback=None, device="cpu"):
    """Optimise an image to match `content`'s features and `style`'s Gram matrices.

    content, style: (H, W, 3) images (uint8 or 0..255 floats); resized to `width` (the style
    to the content's size, as chainer-gogh does). net: a FeatureNet or a name for
    feature_net (with `weights` .npz and `seed`). normalize: the per-layer normalisation aid;
    default on for random weights, off for trained ones. content_weight: default 0.005
    (chainer-gogh's lam) without normalisation, 1.0 with it. init: 'noise' (uniform +-20
    around mid grey, chainer-gogh's start) or 'content'. Writes `out` (PNG) at the end and,
    with save_every = N > 0, out's stem + '_<iter>.png' every N iterations. device: 'cpu', or
    'gpu' to run on CuPy arrays (convcore's CUDA backend; the images and the network's weights
    are copied to the current device once; `callback` then gets the image as a CuPy array).
    Returns (image (H, W, 3) uint8, history: list of (iteration, loss, parts)).
    """
    if isinstance(net, str):
        net = feature_net(net, weights=weights, seed=seed)
    if normalize is None:
        normalize = weights is None
    if content_weight is None:
        content_weight = 1.0 if normalize else 0.005
    if iters < 0:
        raise ValueError(f"stylize: iters must be >= 0, got {iters}")
    if optimizer not in ("adam", "lbfgs"):
        raise ValueError(f"stylize: optimizer must be 'adam' or 'lbfgs', got {optimizer!r}")
    if init not in ("noise", "content"):
        raise ValueError(f"stylize: init must be 'noise' or 'content', got {init!r}")
    if device not in ("cpu", "gpu"):
        raise ValueError(f"stylize: device must be 'cpu' or 'gpu', got {device!r}")
    if device == "gpu":
        try:
            import cupy as to_device_module
        except ImportError:
            raise ValueError("stylize: device='gpu' needs CuPy (and convcore built with CUDA)") from None
        to_device = to_device_module.asarray
    else:
        to_device = np.asarray
    content_px = resize(content, width)
    height = content_px.shape[0]
    style_px = resize(style, width, height)
    try:
        loss_fn = StyleLoss(net, to_device(to_batch(content_px)), to_device(to_batch(style_px)),
                            content_weight, content_layers, style_layers, tv_weight, normalize)
    except ValueError as exc:
        if "would be empty" not in str(exc):
            raise
        raise ValueError(f"stylize: a {width}x{height} image is too small for net "
                         f"{net.name!r} ({exc})") from None
    rng = np.random.default_rng(seed)
    if init == "content":
        image = to_device(to_batch(content_px))
    else:
        image = to_device(to_batch(128.0 + rng.uniform(-20, 20, content_px.shape)))
    stream = stream if stream is not None else sys.stdout
    bar = _progress(iters, stream) if progress else None
    history = []
    t0 = time.perf_counter()

    def report(it, loss, parts, img):
        history.append((it, loss, dict(parts)))
        if bar is not None:
            rate = it / max(time.perf_counter() - t0, 1e-9)
            bar.update(it, f"loss {loss:.4g} {rate:.2f} it/s")
        if out and save_every and it % save_every == 0 and it < iters:
            stem, _ = os.path.splitext(out)
            write_png(f"{stem}_{it:05d}.png", from_batch(img))
        if callback is not None:
            callback(it, loss, parts, img)

    if optimizer == "adam":
        adam = ImageAdam(lr)
        for it in range(1, iters + 1):
            loss, grad, parts = loss_fn(image)
            adam.step(image, grad)
            report(it, loss, parts, image)
    else:
        image = to_device(_lbfgs(loss_fn, image, iters, report, to_device))
    if out:
        write_png(out, from_batch(image))
    return from_batch(image), history


def _lbfgs(loss_fn, image, iters, report, to_device=np.asarray):
    """L-BFGS-B (SciPy) with the pixel box [0, 255] as bounds; SciPy works in float64 on the
    host, the loss on the image's device (`to_device` moves a host image there)."""
    from scipy.optimize import Bounds, minimize
    shape, dtype = image.shape, image.dtype
    count = [0]
    last = {}

    def fun(flat):
        loss, grad, parts = loss_fn(to_device(flat.reshape(shape).astype(dtype)))
        last.update(loss=loss, parts=parts)
        return loss, _to_host(grad).astype(np.float64).ravel()

    def step(flat):
        # the last evaluation is at the accepted point: L-BFGS-B's line search ends there
        count[0] += 1
        report(count[0], last["loss"], last["parts"], to_device(flat.reshape(shape).astype(dtype)))

    result = minimize(fun, _to_host(image).astype(np.float64).ravel(), jac=True,
                      method="L-BFGS-B", bounds=Bounds(0.0, 255.0), callback=step,
                      options={"maxiter": iters, "maxcor": 10})
    return result.x.reshape(shape).astype(dtype)
