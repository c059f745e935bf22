"""convcore.torch against PyTorch's own modules inside a training step, and the cost of the
custom-op boundary.

    PYTHONPATH=python python bench/torch_interop.py [--reps 15] [--threads 2] [--quick]
    PYTHONPATH=python python bench/torch_interop.py --threads 1 --clock cpu

--clock cpu times with the calling thread's CPU time (time.thread_time), which a loaded shared
machine does not inflate (waiting for a core is not counted); it is only meaningful with
--threads 1, where convcore's kernels and PyTorch's run on the calling thread.

1. Boundary overhead per call: the same op called (a) as convcore.functional on NumPy arrays,
   (b) as the registered custom op on tensors without autograd, (c) with autograd recording
   (forward + backward through the backward op), on a tiny input where the kernel costs ~nothing.
2. Training step per row (the CPU suite's depthwise and pooling rows): forward, backward and,
   for the depthwise rows, an SGD update of the weight, with convcore.torch's module and with
   torch.nn's, interleaved in one run; plus the same forward + backward through
   convcore.functional directly, so the boundary's share is visible on real sizes.
Medians of --reps repetitions; every timing alternates between the contenders.
"""
import argparse
import time

import numpy as np
import torch

import convcore
import convcore.functional as F
import convcore.torch as cct

DEPTHWISE_ROWS = [  # (name, N, C, HW, stride), as python/convcore/bench/suite.py
    ("mnv1.dw32.s1", 8, 32, 112, 1), ("mnv1.dw64.s2", 8, 64, 112, 2),
    ("mnv1.dw128.s1", 8, 128, 56, 1), ("mnv1.dw256.s2", 8, 256, 28, 2),
    ("mnv1.dw512.s1", 8, 512, 14, 1), ("mnv1.dw1024.s1", 8, 1024, 7, 1),
]
POOL_ROWS = [  # (name, mode, N, C, HW, kernel, stride)
    ("maxpool.2s2", "max", 8, 256, 56, 2, 2), ("maxpool.3s2", "max", 8, 64, 112, 3, 2),
    ("avgpool.2s2", "avg", 8, 256, 56, 2, 2), ("avgpool.3s2", "avg", 8, 64, 112, 3, 2),
]


CLOCK = time.perf_counter


def _median_ms(fns, reps):
    """Interleaved timing: each repetition runs every fn once; medians in ms."""
    for fn in fns:  # warm-up (first-call imports, allocator)
        fn()
    times = [[] for _ in fns]
    for _ in range(reps):
        for i, fn in enumerate(fns):
            tic = CLOCK()
            fn()
            times[i].append(CLOCK() - tic)
    return [1e3 * float(np.median(t)) for t in times]


def boundary(reps):
    x = torch.randn(1, 2, 6, 6)
    w = torch.randn(2, 1, 3, 3)
    xn, wn = x.numpy(), w.numpy()
    xg, wg = x.clone().requires_grad_(), w.clone().requires_grad_()
    dy = torch.randn(1, 2, 6, 6)
    dyn = dy.numpy()
    print("\nboundary overhead per call (depthwise 1x2x6x6, 3x3 pad 1; max pool 1x2x6x6 2x2)")
    print(f"{'op':18s} {'numpy F us':>11s} {'custom op us':>13s} {'overhead us':>12s}")

    def fwdbwd_np():
        F.depthwise_conv2d(xn, wn, None, 1, 1)
        F.depthwise_conv2d_backward(dyn, xn, wn, 1, 1, need=("x", "w"))

    def fwdbwd_torch():
        torch.autograd.backward(cct.depthwise_conv2d(xg, wg, None, 1, 1), dy)

    def pool_fwdbwd_np():
        _, idx = F.max_pool2d(xn, 2, return_indices=True)
        F.max_pool2d_backward(dyn[:, :, :3, :3], xn, 2, indices=idx)

    def pool_fwdbwd_torch():
        torch.autograd.backward(cct.max_pool2d(xg, 2), dy[:, :, :3, :3])

    with torch.no_grad():
        pairs = [
            ("depthwise fwd", lambda: F.depthwise_conv2d(xn, wn, None, 1, 1),
             lambda: cct.depthwise_conv2d(x, w, None, 1, 1)),
            ("max_pool fwd", lambda: F.max_pool2d(xn, 2), lambda: cct.max_pool2d(x, 2)),
        ]
        rows = [(name, *_median_ms([a, b], reps * 20)) for name, a, b in pairs]
    rows.append(("depthwise fwd+bwd", *_median_ms([fwdbwd_np, fwdbwd_torch], reps * 20)))
    rows.append(("max_pool fwd+bwd", *_median_ms([pool_fwdbwd_np, pool_fwdbwd_torch], reps * 20)))
    for name, a, b in rows:
        print(f"{name:18s} {1e3 * a:11.1f} {1e3 * b:13.1f} {1e3 * (b - a):12.1f}")


def _step_fns(module_ours, module_torch, x, dy, np_fwdbwd, lr=1e-3):
    """One training step (forward, backward, SGD on any parameters) per contender."""
    def step(module):
        def run():
            xg = x.detach().requires_grad_()
            y = module(xg)
            y.backward(dy)
            with torch.no_grad():
                for p in module.parameters():
                    p -= lr * p.grad
                    p.grad = None
        return run
    return [step(module_ours), step(module_torch), np_fwdbwd]


def training_rows(reps, quick):
    print("\ntraining step (forward + backward + SGD on the weight), ms, medians of interleaved runs")
    print(f"{'row':16s} {'convcore.torch':>14s} {'torch.nn':>9s} {'x torch':>8s} "
          f"{'numpy F':>8s} {'boundary':>9s}")
    rng = np.random.default_rng(0)
    results = []
    for name, n, c, hw, s in DEPTHWISE_ROWS[-2:] if quick else DEPTHWISE_ROWS:
        x = torch.from_numpy(rng.standard_normal((n, c, hw, hw), dtype=np.float32))
        ours = cct.DepthwiseConv2d(c, c, 3, stride=s, padding=1, bias=False)
        theirs = torch.nn.Conv2d(c, c, 3, stride=s, padding=1, groups=c, bias=False)
        theirs.load_state_dict(ours.state_dict())
        out = (hw + 2 - 3) // s + 1
        dy = torch.from_numpy(rng.standard_normal((n, c, out, out), dtype=np.float32))
        xn, wn, dyn = x.numpy(), ours.weight.detach().numpy(), dy.numpy()

        def np_fwdbwd(xn=xn, wn=wn, dyn=dyn, s=s):
            F.depthwise_conv2d(xn, wn, None, s, 1)
            F.depthwise_conv2d_backward(dyn, xn, wn, s, 1, need=("x", "w"))
        results.append((name, *_median_ms(_step_fns(ours, theirs, x, dy, np_fwdbwd), reps)))
    for name, mode, n, c, hw, k, s in POOL_ROWS[::2] if quick else POOL_ROWS:
        x = torch.from_numpy(rng.standard_normal((n, c, hw, hw), dtype=np.float32))
        ours = cct.MaxPool2d(k, s) if mode == "max" else cct.AvgPool2d(k, s)
        theirs = torch.nn.MaxPool2d(k, s) if mode == "max" else torch.nn.AvgPool2d(k, s)
        out = (hw - k) // s + 1
        dy = torch.from_numpy(rng.standard_normal((n, c, out, out), dtype=np.float32))
        xn, dyn = x.numpy(), dy.numpy()

        def np_fwdbwd(xn=xn, dyn=dyn, k=k, s=s, mode=mode):
            if mode == "max":
                _, idx = F.max_pool2d(xn, k, s, return_indices=True)
                F.max_pool2d_backward(dyn, xn, k, s, indices=idx)
            else:
                F.avg_pool2d(xn, k, s)
                F.avg_pool2d_backward(dyn, xn, k, s)
        results.append((name, *_median_ms(_step_fns(ours, theirs, x, dy, np_fwdbwd), reps)))
    for name, ours, theirs, plain in results:
        print(f"{name:16s} {ours:14.3f} {theirs:9.3f} {theirs / ours:7.2f}x {plain:8.3f} "
              f"{ours - plain:8.3f}")
    speedups = [theirs / ours for _, ours, theirs, _ in results]
    print(f"geomean speed-up of convcore.torch over torch.nn: "
          f"{float(np.exp(np.mean(np.log(speedups)))):.2f}x over {len(results)} rows")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--reps", type=int, default=15)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--quick", action="store_true", help="two depthwise and two pooling rows")
    p.add_argument("--clock", choices=["wall", "cpu"], default="wall")
    args = p.parse_args()
    if args.clock == "cpu":
        if args.threads != 1:
            p.error("--clock cpu needs --threads 1 (other threads' work would not be counted)")
        global CLOCK
        CLOCK = time.thread_time
    torch.set_num_threads(args.threads)
    convcore.set_num_threads(args.threads)
    info = convcore.backends()["cpu"]
    print(f"convcore.torch vs torch.nn: torch {torch.__version__}, {args.threads} threads each, "
          f"isa {info.get('isa')}, {info.get('brand', '?')}, reps {args.reps}, {args.clock} clock")
    boundary(args.reps)
    training_rows(args.reps, args.quick)


if __name__ == "__main__":
    main()
