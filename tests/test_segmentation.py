"""FCN segmentation: canvases and masks, bilinear upsampling filters, the skip network's
gradient against finite differences, a few steps lowering the loss, the metrics."""
import numpy as np
import pytest

from convcore import functional as F
from convcore.apps import segmentation as seg
from convcore.optim import Adam
from reference import rel_error


pytestmark = pytest.mark.usefixtures("one_thread_module")


def _items(rng, n=6):
    """Random blob-shaped 28x28 items in 0..1 (Fashion-MNIST need not be installed)."""
    yy, xx = np.mgrid[:28, :28]
    out = []
    for _ in range(n):
        cy, cx, r = rng.uniform(8, 20), rng.uniform(8, 20), rng.uniform(4, 9)
        out.append(np.clip(1.2 - np.hypot(yy - cy, xx - cx) / r, 0, 1) * rng.uniform(0.5, 1))
    return np.stack(out).astype(np.float32), rng.integers(0, 10, n)


def test_canvases_label_the_lit_pixels(rng):
    items, labels = _items(rng)
    canvas, mask = seg.make_canvases(items, labels, 5, size=40, items=(1, 1), rng=rng)
    assert canvas.shape == (5, 1, 40, 40) and mask.shape == (5, 40, 40)
    for c, m in zip(canvas, mask):
        assert np.array_equal(m > 0, c[0] > 0.2)          # one item each: lit = labelled
        assert len(np.unique(m[m > 0])) == 1
    with pytest.raises(ValueError, match="size"):
        seg.make_canvases(items, labels, 1, size=20)


def test_bilinear_filter_interpolates(rng):
    """Transposed conv 4x4/2 pad 1 with bilinear weights doubles a ramp into a ramp (away from
    the border) and never mixes channels."""
    w = seg.bilinear_kernel(2, 4)
    ramp = np.add.outer(np.arange(6.0), 2 * np.arange(7.0))
    x = np.stack([ramp, -3 * ramp])[None]
    y = F.conv_transpose2d(x, w, stride=2, padding=1)
    assert y.shape == (1, 2, 12, 14)
    inner = y[0, :, 1:-1, 1:-1]
    assert np.allclose(np.diff(inner[0], axis=0), 0.5) and np.allclose(np.diff(inner[0], axis=1), 1.0)
    assert np.allclose(inner[1], -3 * inner[0])


@pytest.mark.parametrize("skip", [True, False])
def test_gradient_matches_finite_differences(rng, skip):
    net = seg.SegmentationFCN(width=2, classes=3, skip=skip, dtype=np.float64, rng=rng)
    for p in net.params.values():        # every path live, the zero-started skip included
        p += rng.standard_normal(p.shape) * 0.2
    x = rng.standard_normal((2, 1, 16, 8))
    t = rng.integers(0, 3, (2, 16, 8))
    grads = net.gradient(x, t)
    for key, p in net.params.items():
        flat, g = p.reshape(-1), grads[key].reshape(-1)
        for i in rng.choice(flat.size, min(4, flat.size), replace=False):
            # a step can move a max-pool argmax or a ReLU input across its kink (seed 3118796813:
            # 7e-5 off at h = 1e-5); three step sizes rarely all do, and float64 keeps each
            # accurate to ~1e-9
            old, errors = flat[i], []
            for h in (1e-5, 2e-6, 4e-7):
                flat[i] = old + h
                plus = net.loss(x, t)
                flat[i] = old - h
                minus = net.loss(x, t)
                flat[i] = old
                errors.append(abs((plus - minus) / (2 * h) - g[i]))
            assert min(errors) <= 1e-6 * max(1.0, abs(g[i])), (key, errors)


def test_a_few_steps_lower_the_loss(rng):
    items, labels = _items(rng)
    x, t = seg.make_canvases(items, labels, 8, size=32, rng=rng)
    net = seg.SegmentationFCN(width=4, rng=rng)
    opt = Adam(lr=0.01)
    first = net.loss(x, t)
    for _ in range(8):
        opt.update(net.params, net.gradient(x, t))
    assert net.loss(x, t) < 0.8 * first
    assert net.segment(x).shape == (8, 32, 32)
    with pytest.raises(ValueError, match="multiples of 8"):
        net.predict(x[:, :, :30])


def test_metrics():
    truth = np.array([[0, 0, 1, 1], [2, 2, 2, 0]])
    pred = np.array([[0, 1, 1, 1], [2, 2, 0, 0]])
    conf = seg.confusion(pred, truth, 4)
    assert conf.sum() == 8 and conf[0, 1] == 1 and conf[2, 0] == 1
    assert seg.pixel_accuracy(conf) == 6 / 8
    # IoU: class 0: 2/(3+3-2)=0.5; class 1: 2/3; class 2: 2/3; class 3 absent
    assert abs(seg.mean_iou(conf) - (0.5 + 2 / 3 + 2 / 3) / 3) < 1e-12
    img = seg.colorize(truth, 4)
    assert img.shape == (2, 4, 3) and np.all(img[0, 0] == 0) and img[0, 2].max() == 255
