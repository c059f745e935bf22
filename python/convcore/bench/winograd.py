"""Winograd measurements: `python -m convcore.bench.winograd [--quick]`.

1. Error table: max-norm relative error of conv2d against convcore's float64 reference kernel
   (double accumulators) on random normal data, per algorithm, at several channel counts. The
   float32 runs compare against the float64 result of the same float32-rounded inputs, so they
   measure the algorithm's rounding, not the inputs'.
2. Speed table: on every 3x3 stride-1 row of the default suite, im2col and both Winograd tiles
   timed interleaved (round robin, so load from other processes hits all three alike), medians.
"""
import argparse
import statistics
import time

import numpy as np

import convcore
import convcore.functional as F

from .suite import default_rows

ALGOS = ("im2col", "winograd_2x2", "winograd_4x4")


def rel_error(actual, expected):
    return float(np.max(np.abs(actual.astype(np.float64) - expected)) / np.max(np.abs(expected)))


def error_table(channels=(4, 16, 64, 256, 512), trials=3, seed=0):
    """{(dtype name, C): {algo: max error over trials}}."""
    rng = np.random.default_rng(seed)
    table = {}
    for c in channels:
        for dtype in (np.float32, np.float64):
            worst = dict.fromkeys(ALGOS, 0.0)
            for _ in range(trials):
                x = rng.standard_normal((2, c, 16, 16)).astype(dtype)
                w = rng.standard_normal((16, c, 3, 3)).astype(dtype)
                ref = F.conv2d(x.astype(np.float64), w.astype(np.float64), padding=1,
                               algo="reference")
                for algo in ALGOS:
                    err = rel_error(F.conv2d(x, w, padding=1, algo=algo), ref)
                    worst[algo] = max(worst[algo], err)
            table[(np.dtype(dtype).name, c)] = worst
    return table


def winograd_rows():
    """The default suite's rows a Winograd kernel can run (3x3, stride 1, groups 1)."""
    out = []
    for row in default_rows():
        if row.group not in ("book", "resnet", "vgg"):
            continue
        case = row.make(np.random.default_rng(0))
        if (case.kh, case.kw, case.stride, case.groups) == (3, 3, (1, 1), 1):
            out.append((row.name, case))
    return out


def speed_table(reps=7, threads=None, dtype=np.float32):
    """[(row name, shape, {algo: median ms})], each row's algorithms interleaved."""
    if threads:
        convcore.set_num_threads(threads)
    results = []
    for name, case in winograd_rows():
        x = case.rand(case.n, case.c, case.h, case.w).astype(dtype)
        w = case.rand(case.k, case.c, 3, 3, fan_in=case.c * 9).astype(dtype)
        calls = {a: (lambda a=a: F.conv2d(x, w, padding=case.pad, algo=a)) for a in ALGOS}
        for call in calls.values():
            call()  # warm-up
        samples = {a: [] for a in ALGOS}
        for _ in range(reps):
            for a, call in calls.items():
                t0 = time.perf_counter()
                call()
                samples[a].append((time.perf_counter() - t0) * 1e3)
        results.append((name, case.shape_str(), {a: statistics.median(s) for a, s in samples.items()}))
    return results


def format_error_table(table):
    lines = ["| dtype | C | " + " | ".join(ALGOS) + " |", "|---|---:|" + "---:|" * len(ALGOS)]
    for (dtype, c), errs in table.items():
        lines.append(f"| {dtype} | {c} | " + " | ".join(f"{errs[a]:.2e}" for a in ALGOS) + " |")
    return "\n".join(lines)


def format_speed_table(results):
    lines = ["| row | shape | im2col ms | F(2x2) ms | F(4x4) ms | im2col/F(2x2) | im2col/F(4x4) |",
             "|---|---|---:|---:|---:|---:|---:|"]
    for name, shape, ms in results:
        i, w2, w4 = (ms[a] for a in ALGOS)
        lines.append(f"| {name} | {shape} | {i:.2f} | {w2:.2f} | {w4:.2f} | {i / w2:.2f} | "
                     f"{i / w4:.2f} |")
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m convcore.bench.winograd")
    p.add_argument("--quick", action="store_true", help="fewer channels and repetitions")
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--no-speed", action="store_true", help="only the error table")
    p.add_argument("--dtype", choices=("float32", "float64"), default="float32",
                   help="element type of the speed table")
    args = p.parse_args(argv)
    channels = (4, 64) if args.quick else (4, 16, 64, 256, 512)
    print("max relative error vs the float64 reference (random normal data, 2x16x16 images, 16 "
          "filters, pad 1, worst of 3 trials)")
    print(format_error_table(error_table(channels, trials=1 if args.quick else 3)))
    if not args.no_speed:
        print(f"\ninterleaved medians, {args.threads or convcore.get_num_threads()} threads, {args.dtype}")
        print(format_speed_table(speed_table(reps=3 if args.quick else 7, threads=args.threads,
                                             dtype=np.dtype(args.dtype))))


if __name__ == "__main__":
    main()
