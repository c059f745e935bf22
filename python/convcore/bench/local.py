"""`python -m convcore.bench.local [--threads N]`: locally connected and tiled convolution, the
native GEMM-per-tile-class kernel against the reference loops, a NumPy einsum over sliding
windows, and (tile 1x1) conv2d; forward and backward, interleaved medians."""
import argparse
import statistics
import time

import numpy as np

import convcore
import convcore.functional as F


def _numpy_local(x, w_full):
    """y[n,k,oy,ox] = sum_{c,i,j} x[n,c,oy+i,ox+j] w_full[oy,ox,k,c,i,j] (valid, stride 1)."""
    kh, kw = w_full.shape[-2:]
    cols = np.lib.stride_tricks.sliding_window_view(x, (kh, kw), axis=(2, 3))
    return np.einsum("nchwij,hwkcij->nkhw", cols, w_full, optimize=True)


def rows(rng, n=32, c=16, hw=28, k=16):
    x = rng.standard_normal((n, c, hw, hw)).astype(np.float32)
    out = hw - 2
    dy = rng.standard_normal((n, k, out, out)).astype(np.float32)
    lc = rng.standard_normal((out, out, k, c, 3, 3)).astype(np.float32)
    t2 = rng.standard_normal((2, 2, k, c, 3, 3)).astype(np.float32)
    t1 = rng.standard_normal((1, 1, k, c, 3, 3)).astype(np.float32)
    t2_full = np.ascontiguousarray(t2[np.arange(out)[:, None] % 2, np.arange(out)[None, :] % 2])
    shape = f"{n}x{c}x{hw}x{hw}>{k} 3x3"
    return [
        (f"locally_connected {shape}", {
            "native fwd": lambda: F.locally_connected2d(x, lc),
            "reference fwd": lambda: F.locally_connected2d(x, lc, algo="reference"),
            "numpy einsum fwd": lambda: _numpy_local(x, lc),
            "native bwd": lambda: F.locally_connected2d_backward(dy, x, lc),
            "reference bwd": lambda: F.locally_connected2d_backward(dy, x, lc, algo="reference")}),
        (f"tiled 2x2 {shape}", {
            "native fwd": lambda: F.tiled_conv2d(x, t2),
            "reference fwd": lambda: F.tiled_conv2d(x, t2, algo="reference"),
            "numpy einsum fwd": lambda: _numpy_local(x, t2_full),
            "native bwd": lambda: F.tiled_conv2d_backward(dy, x, t2),
            "reference bwd": lambda: F.tiled_conv2d_backward(dy, x, t2, algo="reference")}),
        (f"tiled 1x1 {shape}", {
            "native fwd": lambda: F.tiled_conv2d(x, t1),
            "conv2d fwd": lambda: F.conv2d(x, t1[0, 0]),
            "native bwd": lambda: F.tiled_conv2d_backward(dy, x, t1),
            "conv2d bwd": lambda: F.conv2d_backward(dy, x, t1[0, 0])}),
    ]


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m convcore.bench.local")
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--reps", type=int, default=7)
    args = p.parse_args(argv)
    if args.threads:
        convcore.set_num_threads(args.threads)
    print(f"{convcore.get_num_threads()} thread(s), medians of {args.reps} interleaved runs (ms)")
    print("| op | " + " | ".join(["form", "ms"]) + " |\n|---|---|---:|")
    for name, calls in rows(np.random.default_rng(0)):
        for call in calls.values():
            call()
        samples = {label: [] for label in calls}
        for _ in range(args.reps):
            for label, call in calls.items():
                t0 = time.perf_counter()
                call()
                samples[label].append((time.perf_counter() - t0) * 1e3)
        for label, s in samples.items():
            print(f"| {name} | {label} | {statistics.median(s):.2f} |")


if __name__ == "__main__":
    main()
