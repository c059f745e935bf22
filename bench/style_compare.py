"""One style-transfer iteration in convcore and in PyTorch (CPU), interleaved in one run (issue 10).

    PYTHONPATH=python python bench/style_compare.py --net nin --size 435 --iters 20
    PYTHONPATH=python python bench/style_compare.py --net vgg16 --size 256 --iters 20
    PYTHONPATH=python python bench/style_compare.py --net nin --size 435 --profile

An iteration is what the optimiser loop runs: loss and gradient to the image (content + Gram
style terms on the net's default layers, chainer-gogh's weights), one Adam step on the pixels,
clipping to 0..255. The step is stylize's (convcore.apps.style.ImageAdam: the book's Adam on
the gradient scaled by 1 / mean|grad| of the first iteration), and the PyTorch side runs the
same step in tensor ops (convcore.bench.torch_style.TorchImageAdam), so both follow one loss
trajectory up to float32 rounding (the last line prints how far apart they end).
Both sides use the same seeded random weights (frozen: PyTorch tensors without
requires_grad, convcore's backward computes dx only), the same square images and the same
start image.
Iterations alternate convcore / PyTorch; the first `--warmup` of each are dropped; medians.
GFLOP/iteration counts conv forward + backward-input and the Gram products (2 FLOP per
multiply-add); % peak divides by the FMA peak probed in the same run (all threads).
--profile times each conv's forward and backward-input (convcore's on FrozenWeights, as the
iteration runs them) and each Gram product separately.
"""
import argparse
import statistics
import time

import numpy as np

import convcore
from convcore import functional as F
from convcore.apps import style as S
from convcore.bench.machine import Probes
from convcore.bench.timing import Budget, measure
from convcore.models.feature_nets import feature_net


def _shapes(net, size, taps):
    """[(op, input shape, output shape)] up to the deepest tap, for FLOP counts and profiles."""
    x = np.zeros((1, 3, size, size), np.float32)
    out = []
    last = max(net.layer_names().index(t) for t in taps)
    for op in net.spec[:last + 1]:
        if op["op"] == "conv":
            W = net.params[op["name"] + "/W"]
            y = np.empty((1, W.shape[0], (x.shape[2] + 2 * op["pad"] - op["k"]) // op["stride"] + 1,
                          (x.shape[3] + 2 * op["pad"] - op["k"]) // op["stride"] + 1), np.float32)
        elif op["op"] == "pool":
            y = np.empty(x.shape[:2] + ((x.shape[2] - op["k"]) // op["stride"] + 1,
                                        (x.shape[3] - op["k"]) // op["stride"] + 1), np.float32)
        else:
            y = x
        out.append((op, x.shape, y.shape))
        x = y
    return out


def gflop_per_iteration(net, size, taps, style_layers):
    conv = gram = 0.0
    for op, xs, ys in _shapes(net, size, taps):
        if op["op"] == "conv":
            conv += 2 * 2.0 * np.prod(ys) * xs[1] * op["k"] ** 2     # forward + backward-input
        if op["name"] in style_layers:
            gram += 2 * 2.0 * ys[1] ** 2 * ys[2] * ys[3]              # G = F F^T, and dG F
    return conv / 1e9, gram / 1e9


def _start_image(shape):
    """chainer-gogh's start: uniform noise +-20 around mid grey (one array for both sides)."""
    return (128.0 + np.random.default_rng(1).uniform(-20, 20, shape)).astype(np.float32)


class _TorchIteration:
    def __init__(self, torch, net, content, style, lr):
        from convcore.bench.torch_style import TorchImageAdam, TorchStyleLoss
        self.loss_fn = TorchStyleLoss(net, content, style)
        self.x = torch.from_numpy(_start_image(content.shape)).requires_grad_(True)
        self.adam = TorchImageAdam(lr)

    def __call__(self):
        self.x.grad = None
        loss = self.loss_fn.loss(self.x)
        loss.backward()
        self.adam.step(self.x, self.x.grad)
        return loss.item()


class _ConvcoreIteration:
    def __init__(self, net, content, style, lr):
        self.loss_fn = S.StyleLoss(net, content, style)
        self.x = _start_image(content.shape)
        self.adam = S.ImageAdam(lr)

    def __call__(self):
        loss, grad, _ = self.loss_fn(self.x)
        self.adam.step(self.x, grad)
        return loss


def _profile(net, size, taps, torch, reps):
    """Per conv layer: forward and backward-input, convcore vs PyTorch; per style layer: Gram."""
    rng = np.random.default_rng(2)
    rows = []

    def med(fn):
        return measure(fn, Budget(fixed_reps=reps)).median_ms

    for op, xs, ys in _shapes(net, size, taps):
        if op["op"] == "conv":
            x = rng.standard_normal(xs).astype(np.float32)
            W = net.params[op["name"] + "/W"]
            Wf = convcore.FrozenWeights(W)   # as the iteration runs them (FeatureNet)
            b = net.params[op["name"] + "/b"]
            dy = rng.standard_normal(ys).astype(np.float32)
            s, p = op["stride"], op["pad"]
            flop = 2.0 * np.prod(ys) * xs[1] * op["k"] ** 2
            tx, tw, tb, tdy = (torch.from_numpy(a) for a in (x, W, b, dy))
            cc_f = med(lambda: F.conv2d(x, Wf, b, stride=s, padding=p))
            th_f = med(lambda: torch.nn.functional.conv2d(tx, tw, tb, stride=s, padding=p))
            cc_b = med(lambda: F.conv2d_backward(dy, x, Wf, stride=s, padding=p, need=("x",)))
            th_b = med(lambda: torch.nn.grad.conv2d_input(xs, tw, tdy, stride=s, padding=p))
            rows.append((f"{op['name']} {xs[1]}->{ys[1]} {op['k']}x{op['k']}/{s} "
                         f"{xs[2]}x{xs[3]}->{ys[2]}x{ys[3]}", flop, cc_f, th_f, cc_b, th_b))
        if op["name"] in net.style_layers:
            f = rng.standard_normal(ys).astype(np.float32)
            tf = torch.from_numpy(f)
            c, hw = ys[1], ys[2] * ys[3]
            flop = 2.0 * c * c * hw
            cc = med(lambda: S.gram(f))
            th = med(lambda: tf.reshape(c, hw) @ tf.reshape(c, hw).T)
            rows.append((f"gram {op['name']} {c}x{hw}", flop, cc, th, float("nan"),
                         float("nan")))
    print(f"\n{'layer':44s} {'MFLOP':>8s} {'fwd cc':>8s} {'fwd pt':>8s} {'dx cc':>8s} "
          f"{'dx pt':>8s}  (ms; GFLOP/s cc fwd/dx)")
    for name, flop, a, b, c, d in rows:
        rate = f"{flop / a / 1e6:6.1f}" + (f"/{flop / c / 1e6:6.1f}" if c == c else "")
        print(f"{name:44s} {flop / 1e6:8.0f} {a:8.2f} {b:8.2f} {c:8.2f} {d:8.2f}  {rate}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--net", default="nin", choices=("nin", "vgg16", "vgg19", "random"))
    parser.add_argument("--size", type=int, default=435)
    parser.add_argument("--iters", type=int, default=20, help="timed iterations per side")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--profile-reps", type=int, default=5)
    args = parser.parse_args(argv)
    import torch
    if args.threads:
        convcore.set_num_threads(args.threads)
    threads = convcore.get_num_threads()
    torch.set_num_threads(threads)
    net = feature_net(args.net, seed=args.seed)
    rng = np.random.default_rng(args.seed)
    content, style = (rng.uniform(0, 255, (1, 3, args.size, args.size)).astype(np.float32)
                      for _ in range(2))
    taps = list(net.content_layers) + list(net.style_layers)
    conv_gf, gram_gf = gflop_per_iteration(net, args.size, taps, net.style_layers)
    probes = Probes(threads)
    start = probes.measure("start")
    print(f"{args.net} {args.size}x{args.size}, threads {threads}, isa {start.isa}, torch "
          f"{torch.__version__}; GFLOP/iteration {conv_gf + gram_gf:.2f} (conv fwd+dx "
          f"{conv_gf:.2f}, Gram {gram_gf:.2f}); FMA peak {start.peak_nt:.0f} GFLOP/s")
    ours = _ConvcoreIteration(net, content, style, 4.0)
    theirs = _TorchIteration(torch, net, content, style, 4.0)
    times = {"convcore": [], "pytorch": []}
    losses = {"convcore": [], "pytorch": []}
    for i in range(args.warmup + args.iters):
        for name, fn in (("convcore", ours), ("pytorch", theirs)):
            t0 = time.perf_counter()
            losses[name].append(fn())
            if i >= args.warmup:
                times[name].append(1e3 * (time.perf_counter() - t0))
    end = probes.measure("end")
    peak = min(start.peak_nt, end.peak_nt)
    gf = conv_gf + gram_gf
    med = {k: statistics.median(v) for k, v in times.items()}
    for name in ("convcore", "pytorch"):
        print(f"  {name:9s} median {med[name]:8.1f} ms/iter  ({gf / med[name] * 1e3:6.1f} "
              f"GFLOP/s, {100 * gf / med[name] * 1e3 / peak:4.1f}% of peak {peak:.0f}); "
              f"1000 iterations {med[name]:.0f} s; loss {losses[name][0]:.4g} -> "
              f"{losses[name][-1]:.4g}")
    print(f"  speedup convcore vs pytorch: {med['pytorch'] / med['convcore']:.2f}x "
          f"(FLOP floor at peak {gf / peak * 1e3:.1f} ms)")
    drift = max(abs(a - b) / abs(b) for a, b in zip(losses["convcore"], losses["pytorch"]))
    print(f"  loss trajectories: largest relative difference {drift:.1e} over "
          f"{len(losses['pytorch'])} iterations (same start, weights and Adam step)")
    if args.profile:
        _profile(net, args.size, taps, torch, args.profile_reps)


if __name__ == "__main__":
    main()
