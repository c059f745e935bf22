"""Runs the rows: builds each case, times every column, re-measures the machine between groups,
and computes the per-row rates and % of roofline and the summary."""
import contextlib
import math
import sys
import time
import traceback

import numpy as np

import convcore

from .cases import NotAvailable
from .machine import Probes
from .targets import TARGETS
from .timing import Budget, measure

# Which baseline columns a row has: (key, runner method, needs torch)
COLUMNS = (
    ("convcore", "convcore_fwd", False),
    ("torch", "torch_fwd", True),
    ("numpy", "numpy_fwd", False),
    ("convcore_fwdbwd", "convcore_fwdbwd", False),
    ("torch_fwdbwd", "torch_fwdbwd", True),
)


class Settings:
    def __init__(self, threads, budget, numpy_budget, use_torch=True, use_numpy=True,
                 probe_seconds=0.05, probe_samples=5, bw_passes=5, verbose=False):
        self.threads = threads
        self.budget = budget
        self.numpy_budget = numpy_budget
        self.use_torch = use_torch
        self.use_numpy = use_numpy
        self.probe_seconds = probe_seconds
        self.probe_samples = probe_samples
        self.bw_passes = bw_passes
        self.verbose = verbose


def load_torch(enabled):
    """(torch module or None, the reason its columns are empty)."""
    if not enabled:
        return None, "skipped (--no-torch)"
    try:
        import torch
    except ImportError:
        return None, "torch not installed"
    return torch, ""

# After a BLAS call, NumPy's OpenBLAS keeps its worker threads spinning for about 0.1 s (measured
# here: 10 ticks of CPU time on its other threads, none after that). On 2 cores a spinning thread
# takes a core from the next column's OpenMP team: every fork or barrier then waits a scheduler
# slice, and a 1 ms Winograd conv2d ran 18-24 ms for its first three calls after a 512^3 matmul,
# with 4-6 ms stragglers later. So the column after the NumPy baseline waits this long first.
BLAS_SETTLE_S = 0.15


@contextlib.contextmanager
def blas_threads(threads):
    """Holds NumPy's BLAS to `threads` so the baseline uses the cores convcore does."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        yield False
        return
    with threadpool_limits(limits=threads, user_api="blas"):
        yield True


class Runner:
    def __init__(self, settings, rows, out=sys.stdout, on_row=None, on_probe=None):
        self.s = settings
        self.rows = rows
        self.out = out
        self.on_row = on_row or (lambda result: None)
        self.on_probe = on_probe or (lambda reading: None)
        self.torch, self.torch_reason = load_torch(settings.use_torch)
        self.probes = Probes(settings.threads, settings.probe_seconds, settings.probe_samples,
                             settings.bw_passes)
        self.results = []

    def _set_threads(self, threads):
        convcore.set_num_threads(threads)
        if self.torch is not None:
            self.torch.set_num_threads(threads)

    def run(self):
        rng = np.random.default_rng(20240601)
        group = None
        for row in self.rows:
            if row.group != group:
                group = row.group
                self._set_threads(self.s.threads)
                self.on_probe(self.probes.measure(group))
            result = self.run_row(row, rng)
            self.results.append(result)
            self.on_row(result)
        self._set_threads(self.s.threads)
        self.on_probe(self.probes.measure("end"))
        convcore.set_num_threads(self.s.threads)
        return self.results

    def run_row(self, row, rng):
        threads = row.threads or self.s.threads
        self._set_threads(threads)
        case = row.make(rng)
        reading = self.probes.latest
        result = {
            "name": row.name, "group": row.group, "kind": case.kind, "shape": case.shape_str(),
            "tags": list(row.tags), "pair": row.pair, "threads": threads,
            "algo": case.algo(), "gflop": case.flops * 1e-9, "mb": case.bytes * 1e-6,
            "probe": len(self.probes.readings) - 1, "times": {}, "reps": {}, "notes": {},
        }
        if hasattr(case, "unfused_extra_bytes"):
            result["mb_unfused"] = (case.bytes + case.unfused_extra_bytes) * 1e-6
        with blas_threads(threads):
            for key, method, needs_torch in COLUMNS:
                self._time_column(case, key, method, needs_torch, result)
                if key == "numpy" and key in result["times"]:
                    time.sleep(BLAS_SETTLE_S)
        case.release()
        self._derive(result, case, reading, threads)
        return result

    def _time_column(self, case, key, method, needs_torch, result):
        if needs_torch and self.torch is None:
            result["notes"][key] = self.torch_reason
            return
        if key == "numpy" and not self.s.use_numpy:
            result["notes"][key] = "skipped (--no-numpy)"
            return
        try:
            fn = getattr(case, method)(self.torch) if needs_torch else getattr(case, method)()
            budget = self.s.numpy_budget if key == "numpy" else self.s.budget
            timing = measure(fn, budget)
        except NotAvailable as exc:
            result["notes"][key] = str(exc)
            return
        except Exception as exc:  # a failing column must not end the run; the table says why
            result["notes"][key] = f"error ({type(exc).__name__})"
            print(f"[bench] {result['name']} {key}: {type(exc).__name__}: {exc}", file=sys.stderr)
            if self.s.verbose:
                traceback.print_exc()
            return
        result["times"][key] = timing.median_ms
        result["reps"][key] = timing.reps

    @staticmethod
    def _derive(result, case, reading, threads):
        t = result["times"]
        ms = t.get("convcore")
        peak = reading.peak(threads)
        bw = reading.bandwidth(threads)
        result["peak_gflops"] = peak
        result["bw_gbs"] = bw
        compute_s = case.flops / (peak * 1e9) if peak > 0 else 0.0
        memory_s = case.bytes / (bw * 1e9) if bw > 0 else 0.0
        result["bound"] = "compute" if compute_s >= memory_s else "memory"
        if ms:
            sec = ms * 1e-3
            result["gflops"] = case.flops / sec * 1e-9
            result["gbs"] = case.bytes / sec * 1e-9
            result["roof_pct"] = 100.0 * max(compute_s, memory_s) / sec
            result["peak_pct"] = 100.0 * result["gflops"] / peak if peak > 0 else None
            result["bw_pct"] = 100.0 * result["gbs"] / bw if bw > 0 else None
        for other, ratio in (("torch", "x_torch"), ("numpy", "x_numpy")):
            if ms and t.get(other):
                result[ratio] = t[other] / ms
        if t.get("convcore_fwdbwd") and t.get("torch_fwdbwd"):
            result["x_torch_fwdbwd"] = t["torch_fwdbwd"] / t["convcore_fwdbwd"]


def geomean(values):
    values = [v for v in values if v is not None and v > 0 and math.isfinite(v)]
    if not values:
        return None
    return math.exp(sum(math.log(v) for v in values) / len(values))


def summarize(results, l2_bytes_per_core):
    """The numbers behind each target in targets.py, plus how many rows fed each."""
    def tagged(tag):
        return [r for r in results if tag in r["tags"]]

    conv = tagged("conv")
    values, counts = {}, {}

    def put(key, value, rows):
        values[key] = value
        counts[key] = len(rows)

    fwd = [r for r in conv if r.get("x_torch")]
    put("conv_fwd_geomean", geomean(r["x_torch"] for r in fwd), fwd)
    put("conv_fwd_min", min((r["x_torch"] for r in fwd), default=None), fwd)
    fb = [r for r in conv if r.get("x_torch_fwdbwd")]
    put("conv_fwdbwd_geomean", geomean(r["x_torch_fwdbwd"] for r in fb), fb)
    big = [r for r in tagged("large3x3") if r.get("peak_pct")]
    put("large3x3_peak", min((r["peak_pct"] for r in big), default=None), big)
    # The bandwidth target applies to rows whose traffic does not fit in the L2 caches of the
    # cores that run them (a cache-resident row can beat the DRAM stream rate).
    bw_rows = [r for r in tagged("bw")
               if r.get("bw_pct") and r["mb"] * 1e6 > l2_bytes_per_core * r["threads"]]
    put("bw_fwd", min((r["bw_pct"] for r in bw_rows), default=None), bw_rows)
    dw = [r for r in tagged("depthwise") if r.get("x_torch_fwdbwd")]
    put("dw_fwdbwd", geomean(r["x_torch_fwdbwd"] for r in dw), dw)
    for key, tag in (("sep_l2", "l2"), ("sep_dram", "dram")):
        pairs = separable_pairs(results, tag)
        put(key, geomean(p["ratio"] for p in pairs), pairs)
    gemm = [r for r in tagged("gemm1t") if r.get("peak_pct")]
    put("gemm_peak", min((r["peak_pct"] for r in gemm), default=None), gemm)
    gemm2 = [r for r in tagged("gemm2t") if r.get("x_numpy")]
    put("gemm_numpy_2t", min((r["x_numpy"] for r in gemm2), default=None), gemm2)
    np_rows = [r for r in results
               if r.get("x_numpy") and r["kind"] != "gemm" and "extra" not in r["tags"]]
    put("numpy_geomean", geomean(r["x_numpy"] for r in np_rows), np_rows)
    summary = []
    for target in TARGETS:
        value = values.get(target.key)
        summary.append({
            "key": target.key, "label": target.label, "value": value,
            "threshold": target.threshold, "unit": target.unit, "rows": counts.get(target.key, 0),
            "met": target.met(value) if value is not None else None,
            "source": target.source, "assumed": target.assumed, "strict": target.strict,
        })
    return summary


def separable_pairs(results, tag):
    """2-D vs two-pass times of each separable pair carrying `tag` ("l2" or "dram")."""
    by_pair = {}
    for r in results:
        if r["pair"] and tag in r["tags"]:
            form = "2d" if "sep2d" in r["tags"] else "1d"
            by_pair.setdefault(r["pair"], {})[form] = r
    pairs = []
    for name, forms in by_pair.items():
        t2 = forms.get("2d", {}).get("times", {}).get("convcore")
        t1 = forms.get("1d", {}).get("times", {}).get("convcore")
        if t2 and t1:
            pairs.append({"pair": name, "ms_2d": t2, "ms_1d": t1, "ratio": t2 / t1})
    return pairs
