"""Semantic segmentation with an FCN (Long, Shelhamer, Darrell): Fashion-MNIST items scattered
on larger canvases, a pixel label per item (its class + 1 where the item's pixels are lit,
0 = background), learned with transposed-convolution upsampling initialised as bilinear
interpolation (FCN-32s) plus a skip from a finer layer (FCN-16s).

    python -m convcore.apps.segmentation --epochs 3 --out docs/segmentation.png

    canvases, masks = make_canvases(images, labels, n=1000, size=64, rng=rng)
    net = SegmentationFCN(skip=True)
    net.gradient(x, masks)          # per-pixel softmax cross-entropy
    scores = net.predict(x)          # (N, 11, H, W)

Network (input 1 x H x W, H and W multiples of 8):
    conv3x3 w - ReLU - pool 2   -> H/2
    conv3x3 2w - ReLU - pool 2  -> H/4   (pool2: the skip's source)
    conv3x3 4w - ReLU - pool 2  -> H/8
    conv3x3 4w - ReLU - conv1x1 classes: score at stride 8
  FCN-32s-style (skip=False): transposed conv 16x16 / 8 -> H
  FCN-16s-style (skip=True):  transposed conv 4x4 / 2 -> H/4, plus conv1x1 classes of pool2,
                              then transposed conv 8x8 / 4 -> H
The upsampling filters start as bilinear interpolation per class (zero across classes) and
are learned, as in the paper's FCN-16s; the skip's 1x1 scores start at zero, so training
starts from the coarse net's output.
"""
import argparse
import os
import sys
import time

import numpy as np

from .. import layers as L
from ..init import he_normal
from ..models.base import Net
from .style import write_png

__all__ = ["make_canvases", "SegmentationFCN", "PixelSoftmaxWithLoss", "bilinear_kernel",
           "confusion", "mean_iou", "pixel_accuracy", "colorize", "main"]


def make_canvases(images, labels, n, size=64, items=(1, 4), threshold=0.2, rng=None):
    """`n` canvases (n, 1, size, size) float32 with 1-4 items each at random places, and the
    masks (n, size, size) int64: 1 + class where the item's pixel exceeds `threshold`, else 0.
    images: (M, 28, 28) or (M, 1, 28, 28) in 0..1; overlapping items: the later one wins."""
    rng = rng if rng is not None else np.random.default_rng()
    images = np.asarray(images, np.float32).reshape(len(images), 28, 28)
    labels = np.asarray(labels).reshape(-1)
    if labels.ndim != 1 or len(labels) != len(images):
        raise ValueError("make_canvases: labels must hold one class per image")
    if size < 28:
        raise ValueError(f"make_canvases: size must be >= 28, got {size}")
    canvas = np.zeros((n, 1, size, size), np.float32)
    mask = np.zeros((n, size, size), np.int64)
    for i in range(n):
        for _ in range(rng.integers(items[0], items[1] + 1)):
            k = rng.integers(len(images))
            y, x = rng.integers(0, size - 28 + 1, 2)
            item = images[k]
            lit = item > threshold
            region = canvas[i, 0, y:y + 28, x:x + 28]
            region[lit] = item[lit]
            mask[i, y:y + 28, x:x + 28][lit] = labels[k] + 1
    return canvas, mask


def bilinear_kernel(channels, size):
    """(channels, channels, size, size) transposed-conv weights that upsample each channel by
    bilinear interpolation (factor (size + 1) // 2) and do not mix channels."""
    factor = (size + 1) // 2
    center = factor - 1 if size % 2 == 1 else factor - 0.5
    og = np.arange(size)
    filt = 1 - np.abs(og - center) / factor
    w = np.zeros((channels, channels, size, size))
    w[np.arange(channels), np.arange(channels)] = np.outer(filt, filt)
    return w


class PixelSoftmaxWithLoss(L.Layer):
    """Softmax over the class axis of (N, C, H, W) scores and mean cross-entropy over all N*H*W
    pixels against integer labels t (N, H, W). The log-softmax is computed exactly (shifted by
    the maximum) instead of the book's log(y + 1e-7): with thousands of pixels per image some
    are confidently wrong early in training, and there the 1e-7 makes the loss disagree with
    its gradient y - t."""

    def __init__(self):
        self.prob = None
        self.t = None

    def forward(self, x, t):
        n, c, h, w = x.shape
        if np.shape(t) != (n, h, w):
            raise ValueError(f"PixelSoftmaxWithLoss: t must be (N, H, W) = {(n, h, w)}, "
                             f"got {np.shape(t)}")
        z = x - x.max(axis=1, keepdims=True)
        log_prob = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        self.prob = np.exp(log_prob)
        self.t = np.asarray(t)
        picked = np.take_along_axis(log_prob, self.t[:, None].astype(np.int64), axis=1)
        return float(-picked.mean())

    def backward(self, dout=1):
        n, c, h, w = self.prob.shape
        dx = self.prob.copy()
        np.put_along_axis(dx, self.t[:, None].astype(np.int64),
                          np.take_along_axis(dx, self.t[:, None].astype(np.int64), axis=1) - 1,
                          axis=1)
        return dx * (dout / (n * h * w))


class SegmentationFCN(Net):
    """See the module docstring. Parameters W1.. in layer order (net.summary() lists them)."""

    def __init__(self, in_channels=1, classes=11, width=16, skip=True, *, dtype=np.float32,
                 rng=None):
        rng = rng if rng is not None else np.random.default_rng()
        self.skip = skip

        def conv(c_in, c_out, k, pad):
            W = he_normal((c_out, c_in, k, k), rng=rng, dtype=dtype)
            return L.Convolution(W, np.zeros(c_out, dtype), 1, pad)

        def up(k, stride, pad):
            return L.ConvTranspose(bilinear_kernel(classes, k).astype(dtype),
                                   np.zeros(classes, dtype), stride, pad)

        self.down1 = [conv(in_channels, width, 3, 1), L.Relu(), L.Pooling(2, 2, 2)]
        self.down2 = [conv(width, 2 * width, 3, 1), L.Relu(), L.Pooling(2, 2, 2)]
        self.down3 = [conv(2 * width, 4 * width, 3, 1), L.Relu(), L.Pooling(2, 2, 2),
                      conv(4 * width, 4 * width, 3, 1), L.Relu(), conv(4 * width, classes, 1, 0)]
        if skip:
            self.up_coarse = [up(4, 2, 1)]                       # stride 8 -> 4
            score4 = L.Convolution(np.zeros((classes, 2 * width, 1, 1), dtype),
                                   np.zeros(classes, dtype))
            self.skip_score = [score4]
            self.up_final = [up(8, 4, 2)]                        # stride 4 -> 1
        else:
            self.up_coarse = [up(16, 8, 4)]                      # stride 8 -> 1
            self.skip_score = []
            self.up_final = []
        self.layers = (self.down1 + self.down2 + self.down3 + self.up_coarse
                       + self.skip_score + self.up_final)
        self.last_layer = PixelSoftmaxWithLoss()
        self._register()

    @staticmethod
    def _run(layers, x):
        for layer in layers:
            x = layer.forward(x)
        return x

    @staticmethod
    def _back(layers, d):
        for layer in reversed(layers):
            d = layer.backward(d)
        return d

    def predict(self, x, train_flg=False):
        if x.ndim != 4 or x.shape[2] % 8 or x.shape[3] % 8:
            raise ValueError(f"SegmentationFCN: x must be (N, C, H, W) with H, W multiples "
                             f"of 8, got shape {x.shape}")
        self._sync()
        pool2 = self._run(self.down2, self._run(self.down1, x))
        score = self._run(self.up_coarse, self._run(self.down3, pool2))
        if self.skip:
            score = self._run(self.up_final, score + self._run(self.skip_score, pool2))
        return score

    def loss(self, x, t, train_flg=True):
        return self.last_layer.forward(self.predict(x), t)

    def gradient(self, x, t):
        self.last_loss = self.loss(x, t)
        d = self.last_layer.backward(1)
        if self.skip:
            d = self._back(self.up_final, d)
            d_pool2 = self._back(self.skip_score, d)
        d = self._back(self.up_coarse, d)
        d = self._back(self.down3, d)
        if self.skip:
            d = d + d_pool2
        self._back(self.down1, self._back(self.down2, d))
        return {key: getattr(layer, "d" + attr) for key, layer, attr in self._slots}

    def segment(self, x, batch_size=50):
        """Predicted label per pixel (N, H, W)."""
        return np.concatenate([np.argmax(self.predict(x[i:i + batch_size]), axis=1)
                               for i in range(0, len(x), batch_size)])


def confusion(pred, truth, classes):
    """(classes, classes) counts: row = true class, column = predicted class."""
    return np.bincount(truth.reshape(-1) * classes + pred.reshape(-1),
                       minlength=classes * classes).reshape(classes, classes)


def pixel_accuracy(conf):
    return float(np.trace(conf) / max(conf.sum(), 1))


def mean_iou(conf):
    """Mean over classes present in truth or prediction of TP / (TP + FP + FN)."""
    tp = np.diag(conf).astype(np.float64)
    union = conf.sum(0) + conf.sum(1) - tp
    present = union > 0
    return float(np.mean(tp[present] / union[present]))


def colorize(labels, classes=11):
    """(H, W) labels -> (H, W, 3) uint8: black background, a distinct hue per class."""
    hues = np.linspace(0, 1, classes - 1, endpoint=False)
    palette = np.zeros((classes, 3))
    for c, h in enumerate(hues, start=1):
        # HSV with full saturation and value, written out for the six hue sectors
        k = (np.array([5, 3, 1]) + h * 6) % 6
        palette[c] = 1 - np.clip(np.minimum(k, 4 - k), 0, 1)
    return (palette[labels] * 255).astype(np.uint8)


def _side_by_side(canvases, truth, pred, rows, gap=2):
    """One row per example: input (grey), truth, prediction."""
    size = canvases.shape[2]
    out = np.full((rows * (size + gap) - gap, 3 * (size + gap) - gap, 3), 255, np.uint8)
    for r in range(rows):
        grey = (np.clip(canvases[r, 0], 0, 1) * 255).astype(np.uint8)
        tiles = (np.repeat(grey[:, :, None], 3, axis=2), colorize(truth[r]), colorize(pred[r]))
        for c, tile in enumerate(tiles):
            y, x = r * (size + gap), c * (size + gap)
            out[y:y + size, x:x + size] = tile
    return out


def _parser():
    p = argparse.ArgumentParser(prog="python -m convcore.apps.segmentation",
                                description="FCN segmentation of Fashion-MNIST canvases")
    p.add_argument("--train", type=int, default=3000, help="training canvases")
    p.add_argument("--test", type=int, default=500, help="held-out canvases")
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--width", type=int, default=16)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=25)
    p.add_argument("--lr", type=float, default=0.002)
    p.add_argument("--no-skip", dest="skip", action="store_false", help="FCN-32s style")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data-dir", default=None)
    p.add_argument("--out", default="segmentation.png")
    return p


def main(argv=None):
    from ..data import load_mnist
    from ..optim import Adam
    from ..train import _Progress
    args = _parser().parse_args(argv)
    rng = np.random.default_rng(args.seed)
    (x_train, t_train), (x_test, t_test) = load_mnist(flatten=False, path=args.data_dir)
    train_x, train_y = make_canvases(x_train, t_train, args.train, args.size, rng=rng)
    test_x, test_y = make_canvases(x_test, t_test, args.test, args.size, rng=rng)
    net = SegmentationFCN(width=args.width, skip=args.skip, rng=rng)
    opt = Adam(lr=args.lr)
    steps = args.train // args.batch_size
    t0 = time.perf_counter()
    for epoch in range(1, args.epochs + 1):
        order = rng.permutation(args.train)
        bar = _Progress(steps, sys.stdout)
        losses = []
        for s in range(steps):
            idx = order[s * args.batch_size:(s + 1) * args.batch_size]
            grads = net.gradient(train_x[idx], train_y[idx])
            opt.update(net.params, grads)
            losses.append(net.last_loss)
            bar.update(s + 1, f"loss {np.mean(losses[-20:]):.4f}")
        conf = confusion(net.segment(test_x), test_y, 11)
        print(f"epoch {epoch}: loss {np.mean(losses):.4f}  held-out pixel accuracy "
              f"{pixel_accuracy(conf):.4f}  mean IoU {mean_iou(conf):.4f}  "
              f"({time.perf_counter() - t0:.0f} s)", flush=True)
    pred = net.segment(test_x[:6])
    write_png(args.out, _side_by_side(test_x, test_y, pred, 6))
    print(f"wrote {args.out} (rows: input | truth | prediction)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
