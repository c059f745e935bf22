"""One training step of the book's DeepConvNet (batch 100, Adam), three ways, in one run:
convcore (convcore.models.DeepConvNet), PyTorch on the CPU (the same architecture), and the
book's NumPy style (im2col + dot written here in plain NumPy). Prints median ms per step and the
per-epoch time that implies for 60000 images.

    PYTHONPATH=python python bench/train_step_compare.py [--steps 10] [--threads 2]
"""
import argparse
import time

import numpy as np

import convcore
from convcore import optim
from convcore.models import DeepConvNet

# (filters, pad) of the six 3x3 convs; pools after conv 2, 4 and 6
CONVS = [(16, 1), (16, 1), (32, 1), (32, 2), (64, 1), (64, 1)]


def median_ms(fn, steps):
    fn()  # warm-up
    times = []
    for _ in range(steps):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return 1e3 * float(np.median(times))


def convcore_step(x, t):
    net = DeepConvNet(dtype=np.float32)  # the models default to float64, as the book's do
    opt = optim.Adam(lr=0.001)

    def step():
        grads = net.gradient(x, t)
        opt.update(net.params, grads)
    return step


def torch_step(x, t, threads):
    import torch
    from torch import nn
    torch.set_num_threads(threads)
    layers, c = [], 1
    for i, (k, pad) in enumerate(CONVS):
        layers += [nn.Conv2d(c, k, 3, padding=pad), nn.ReLU()]
        if i % 2 == 1:
            layers.append(nn.MaxPool2d(2, 2))
        c = k
    model = nn.Sequential(*layers, nn.Flatten(), nn.Linear(64 * 4 * 4, 50), nn.ReLU(),
                          nn.Dropout(0.5), nn.Linear(50, 10), nn.Dropout(0.5))
    opt = torch.optim.Adam(model.parameters(), lr=0.001)
    xt, tt = torch.from_numpy(x), torch.from_numpy(t.astype(np.int64))

    def step():
        opt.zero_grad()
        nn.functional.cross_entropy(model(xt), tt).backward()
        opt.step()
    return step


# ---- the book's NumPy style ------------------------------------------------------------------
def im2col(x, k, stride, pad):
    n, c, h, w = x.shape
    oh, ow = (h + 2 * pad - k) // stride + 1, (w + 2 * pad - k) // stride + 1
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    col = np.empty((n, c, k, k, oh, ow), x.dtype)
    for ky in range(k):
        for kx in range(k):
            col[:, :, ky, kx] = xp[:, :, ky:ky + stride * oh:stride, kx:kx + stride * ow:stride]
    return col.transpose(0, 4, 5, 1, 2, 3).reshape(n * oh * ow, -1), oh, ow


def col2im(col, shape, k, stride, pad, oh, ow):
    n, c, h, w = shape
    col = col.reshape(n, oh, ow, c, k, k).transpose(0, 3, 4, 5, 1, 2)
    img = np.zeros((n, c, h + 2 * pad + stride - 1, w + 2 * pad + stride - 1), col.dtype)
    for ky in range(k):
        for kx in range(k):
            img[:, :, ky:ky + stride * oh:stride, kx:kx + stride * ow:stride] += col[:, :, ky, kx]
    return img[:, :, pad:h + pad, pad:w + pad]


def numpy_step(x, t):
    rng = np.random.default_rng(0)
    params, c, hw = [], 1, 28
    for k, pad in CONVS:
        params += [rng.standard_normal((k, c, 3, 3)).astype(np.float32) * np.sqrt(2 / (9 * c)),
                   np.zeros(k, np.float32)]
        c = k
    params += [rng.standard_normal((1024, 50)).astype(np.float32) * 0.04, np.zeros(50, np.float32),
               rng.standard_normal((50, 10)).astype(np.float32) * 0.2, np.zeros(10, np.float32)]
    m = [np.zeros_like(p) for p in params]
    v = [np.zeros_like(p) for p in params]
    it = [0]

    def step():
        caches, h = [], x
        for i, (k, pad) in enumerate(CONVS):  # conv + relu (+ pool)
            w, b = params[2 * i], params[2 * i + 1]
            col, oh, ow = im2col(h, 3, 1, pad)
            out = (col @ w.reshape(k, -1).T + b).reshape(h.shape[0], oh, ow, k).transpose(0, 3, 1, 2)
            mask = out <= 0
            out[mask] = 0
            caches.append(("conv", h.shape, col, oh, ow, mask))
            h = out
            if i % 2 == 1:
                pcol, poh, pow_ = im2col(h, 2, 2, 0)
                pcol = pcol.reshape(-1, 4)
                arg = pcol.argmax(axis=1)
                caches.append(("pool", h.shape, arg, poh, pow_))
                h = pcol.max(axis=1).reshape(h.shape[0], poh, pow_, -1).transpose(0, 3, 1, 2)
        flat = h.reshape(h.shape[0], -1)
        a1 = flat @ params[12] + params[13]
        m1 = a1 > 0
        d1 = rng.random(a1.shape) > 0.5
        h1 = a1 * m1 * d1
        a2 = h1 @ params[14] + params[15]
        d2 = rng.random(a2.shape) > 0.5
        z = a2 * d2
        z = z - z.max(axis=1, keepdims=True)
        p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
        dz = p.copy()
        dz[np.arange(len(t)), t] -= 1
        dz /= len(t)
        grads = [None] * len(params)
        da2 = dz * d2
        grads[14], grads[15] = h1.T @ da2, da2.sum(0)
        dh1 = (da2 @ params[14].T) * d1 * m1
        grads[12], grads[13] = flat.T @ dh1, dh1.sum(0)
        dh = (dh1 @ params[12].T).reshape(h.shape)
        ci = len(CONVS) - 1
        for cache in reversed(caches):
            if cache[0] == "pool":
                _, shape, arg, poh, pow_ = cache
                dmax = np.zeros((arg.size, 4), dh.dtype)
                dmax[np.arange(arg.size), arg] = dh.transpose(0, 2, 3, 1).ravel()
                dh = col2im(dmax.reshape(shape[0] * poh * pow_, -1), shape, 2, 2, 0, poh, pow_)
            else:
                _, shape, col, oh, ow, mask = cache
                k, pad = CONVS[ci]
                w = params[2 * ci]
                dh = dh.copy()
                dh[mask] = 0
                dout = dh.transpose(0, 2, 3, 1).reshape(-1, k)
                grads[2 * ci] = (col.T @ dout).T.reshape(w.shape)
                grads[2 * ci + 1] = dout.sum(0)
                dh = col2im(dout @ w.reshape(k, -1), shape, 3, 1, pad, oh, ow)
                ci -= 1
        it[0] += 1
        lr_t = 0.001 * np.sqrt(1 - 0.999 ** it[0]) / (1 - 0.9 ** it[0])
        for i, g in enumerate(grads):
            m[i] += 0.1 * (g - m[i])
            v[i] += 0.001 * (g * g - v[i])
            params[i] -= lr_t * m[i] / (np.sqrt(v[i]) + 1e-7)
    return step


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    convcore.set_num_threads(args.threads)
    try:
        from threadpoolctl import threadpool_limits
        threadpool_limits(args.threads)
    except ImportError:
        pass
    rng = np.random.default_rng(0)
    x = rng.random((100, 1, 28, 28), dtype=np.float32)
    t = rng.integers(0, 10, 100)
    rows = [("convcore", convcore_step(x, t), args.steps)]
    try:
        rows.append(("pytorch", torch_step(x, t, args.threads), args.steps))
    except ImportError:
        print("pytorch: not installed")
    rows.append(("numpy (book style)", numpy_step(x, t), max(3, args.steps // 3)))
    info = convcore.backends()["cpu"]
    print(f"DeepConvNet step, batch 100, Adam, {args.threads} threads, {info['brand']} ({info['isa']})")
    base = None
    for name, fn, steps in rows:
        ms = median_ms(fn, steps)
        base = base or ms
        print(f"  {name:20s} {ms:8.1f} ms/step  {ms * 600 / 1e3:7.1f} s/epoch (600 steps)"
              f"  {ms / base:5.2f}x convcore's time")


if __name__ == "__main__":
    main()
