"""`python -m convcore.bench`: argument parsing and the run's outline."""
import argparse
import os
import sys
import time

import convcore

from . import report
from .machine import machine_info
from .runner import Runner, Settings, blas_threads, separable_pairs, summarize
from .suite import SUITES, select_rows
from .timing import Budget


def parse_args(argv):
    p = argparse.ArgumentParser(
        prog="python -m convcore.bench",
        description="convcore's benchmark: convolution, pooling and GEMM rows beside PyTorch and "
                    "a NumPy im2col baseline, against the machine's FMA peak and stream bandwidth "
                    "measured in the same run.")
    p.add_argument("--quick", action="store_true",
                   help="few repetitions, short probes, and the quick suite unless --suite is given")
    p.add_argument("--suite", choices=sorted(SUITES), default=None,
                   help="which rows to run (default: default, or quick with --quick)")
    p.add_argument("--rows", metavar="PATTERN", default=None,
                   help="only rows whose name matches: comma-separated substrings or globs")
    p.add_argument("--reps", type=int, default=0, metavar="N",
                   help="exactly N timed repetitions per measurement (default: fit a time budget)")
    p.add_argument("--budget", type=float, default=None, metavar="SECONDS",
                   help="time budget per measurement (default 0.3, 0.02 with --quick)")
    p.add_argument("--threads", type=int, default=0, metavar="N",
                   help="threads for convcore, PyTorch and NumPy's BLAS (default: all CPUs)")
    p.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    p.add_argument("--plot", metavar="FILE.png", help="also plot the results (needs matplotlib)")
    p.add_argument("--no-torch", action="store_true", help="skip the PyTorch columns")
    p.add_argument("--no-numpy", action="store_true", help="skip the NumPy im2col baseline")
    p.add_argument("--list", action="store_true", help="list the selected rows and exit")
    p.add_argument("--claims", action="store_true",
                   help="instead of the suite: textbook cost claims, analytic vs measured ratios")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                   help="cuda: the suite's shapes (batches scaled up) on the GPU beside cuDNN")
    p.add_argument("--tf32", action="store_true",
                   help="with --device cuda: TF32 tensor cores on both sides (convcore and cuDNN)")
    p.add_argument("--verbose", action="store_true", help="print tracebacks of failing columns")
    args = p.parse_args(argv)
    if args.reps < 0:
        p.error("--reps must be >= 0")
    if args.threads < 0:
        p.error("--threads must be >= 0")
    return args


def make_settings(args):
    threads = args.threads or os.cpu_count() or 1
    if args.quick:
        seconds = args.budget if args.budget is not None else 0.02
        budget = Budget(seconds, min_reps=2, max_reps=5, fixed_reps=args.reps)
        numpy_budget = Budget(seconds, min_reps=1, max_reps=3, fixed_reps=args.reps)
        probe = dict(probe_seconds=0.01, probe_samples=2, bw_passes=2)
    else:
        seconds = args.budget if args.budget is not None else 0.3
        budget = Budget(seconds, min_reps=3, max_reps=30, fixed_reps=args.reps)
        # The NumPy baseline is 10-100x slower; on the big rows one warm run is enough to place it.
        numpy_budget = Budget(seconds, min_reps=1, max_reps=10, fixed_reps=args.reps)
        probe = dict(probe_seconds=0.05, probe_samples=5, bw_passes=5)
    return Settings(threads, budget, numpy_budget, use_torch=not args.no_torch,
                    use_numpy=not args.no_numpy, verbose=args.verbose, **probe)


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.claims:
        from .claims import run_claims
        threads = args.threads or os.cpu_count() or 1
        run_claims(reps=args.reps or (3 if args.quick else 7), threads=threads)
        return 0
    if args.device == "cuda":
        return _main_cuda(args)
    suite = args.suite or ("quick" if args.quick else "default")
    rows = select_rows(suite, args.rows)
    if args.list:
        for r in rows:
            print(f"{r.name:16} {r.group:10} {r.make.__class__.__name__}")
        return 0
    if not rows:
        print(f"no rows in suite {suite!r} match {args.rows!r}", file=sys.stderr)
        return 2
    plt = None
    if args.plot:
        plt = report.matplotlib_or_none()
        if plt is None:
            print("--plot: matplotlib is not installed (pip install matplotlib, or "
                  "pip install 'convcore[bench]'); running without the plot.", file=sys.stderr)

    settings = make_settings(args)
    convcore.set_num_threads(settings.threads)
    machine = machine_info(settings.threads)
    started = time.perf_counter()
    runner = Runner(settings, rows,
                    on_row=lambda r: print(report.row_line(r), flush=True),
                    on_probe=lambda p: print(report.probe_line(p), flush=True))
    with blas_threads(settings.threads) as blas_limited:
        pass
    torch_version = runner.torch.__version__ if runner.torch is not None else None
    print(report.preamble(machine, settings, torch_version, runner.torch_reason, blas_limited,
                          suite, len(rows)))
    print(report.header_line(), flush=True)
    results = runner.run()
    elapsed = time.perf_counter() - started

    l2 = machine["l2_bytes"] or (2 << 20)
    summary = summarize(results, l2)
    pairs = separable_pairs(results, "l2") + separable_pairs(results, "dram")
    print(report.summary_text(summary, results, pairs))
    print(f"\nelapsed {elapsed:.1f} s for {len(results)} rows")

    if args.json:
        report.write_json(args.json, {
            "machine": machine,
            "settings": {"suite": suite, "rows": args.rows, "threads": settings.threads,
                         "quick": args.quick, "reps": args.reps,
                         "budget_s": settings.budget.seconds, "torch": torch_version,
                         "torch_reason": runner.torch_reason, "numpy_blas_limited": blas_limited},
            "probes": [p.as_dict() for p in runner.probes.readings],
            "rows": results,
            "separable": pairs,
            "summary": summary,
            "elapsed_s": elapsed,
        })
        print(f"wrote {args.json}")
    if args.plot and plt is not None:
        title = f"convcore vs PyTorch, {machine['cpu_model']}, {settings.threads} thread(s)"
        report.write_plot(plt, args.plot, results, title)
        print(f"wrote {args.plot}")
    return 0


def _main_cuda(args):
    from . import cuda
    outcome = cuda.run(reps=args.reps or (3 if args.quick else 7), rows=args.rows, tf32=args.tf32)
    if outcome is None:
        return 2
    results, ceilings = outcome
    if args.json:
        report.write_json(args.json, {"device": "cuda", "ceilings": ceilings, "rows": results})
        print(f"wrote {args.json}")
    return 0
