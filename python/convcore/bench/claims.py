"""`python -m convcore.bench --claims`: textbook cost claims, analytic against measured.

Each claim compares two ways of computing (about) the same thing, a costly form and a cheap one
(Goodfellow et al. ch. 9; the Inception, MobileNet and VGG papers; CS231n). For each: the
analytic ratio of multiply-adds (and parameters where the claim is about them), and the measured
ratio of wall times, both forms timed interleaved in the same run (medians), so load from other
processes hits both alike.

Where analytic and measured ratios differ by more than 2x the output names the bound that
explains it, with its figures. Each form gets three lower bounds on its time:
  compute   2 * multiply-adds / FMA peak (measured at the start of the run)
  memory    least bytes moved (each input, weight, output and intermediate once, float32)
            / stream bandwidth (measured likewise)
  overhead  native calls * the time of one tiny conv2d call (argument checks, dispatch, threads)
and the form whose achieved rate departs from the analytic story is labelled by its largest
bound when that bound covers at least half its time; otherwise (or when the largest is compute)
by "kernel efficiency": the kernel runs far from every bound (the fraction of peak it reaches,
against the other form's, is printed).
"""
import statistics
import time
from dataclasses import dataclass, field

import numpy as np

import convcore
import convcore.functional as F
from convcore import _cpu

F32 = 4


@dataclass
class Form:
    label: str
    macs: float
    params: int
    bytes: float
    calls: int
    run: object = field(repr=False)


@dataclass
class Claim:
    name: str
    text: str
    costly: Form
    cheap: Form
    about_params: bool = False


def _conv_bytes(n, c, h, w, k, kh, kw, out_h, out_w, groups=1):
    return F32 * (n * c * h * w + k * (c // groups) * kh * kw + n * k * out_h * out_w)


def _rand(rng, *shape, fan_in=1):
    return (rng.standard_normal(shape) / np.sqrt(fan_in)).astype(np.float32)


def _conv_form(label, rng, n, c, hw, k, ksize, pad, stride=1, x=None):
    """One conv2d (bias included) as a Form."""
    x = _rand(rng, n, c, hw, hw) if x is None else x
    w = _rand(rng, k, c, ksize, ksize, fan_in=c * ksize * ksize)
    b = _rand(rng, k)
    out = (hw + 2 * pad - ksize) // stride + 1
    return Form(label, n * k * out * out * c * ksize * ksize, k * c * ksize * ksize + k,
                _conv_bytes(n, c, hw, hw, k, ksize, ksize, out, out), 1,
                lambda: F.conv2d(x, w, b, stride=stride, padding=pad))


def _chain(label, forms):
    """Forms run one after the other (each output feeds the next in the textbook design; the
    timing runs them on inputs of the right shapes, which costs the same)."""
    runs = [f.run for f in forms]

    def run():
        for r in runs:
            r()
    return Form(label, sum(f.macs for f in forms), sum(f.params for f in forms),
                sum(f.bytes for f in forms), sum(f.calls for f in forms), run)


def bottleneck(rng, n=4):
    hw, c, mid, k = 28, 192, 16, 32
    x = _rand(rng, n, c, hw, hw)
    direct = _conv_form("5x5 192->32", rng, n, c, hw, k, 5, 2, x=x)
    reduce = _conv_form("1x1 192->16", rng, n, c, hw, mid, 1, 0, x=x)
    five = _conv_form("5x5 16->32", rng, n, mid, hw, k, 5, 2)
    return Claim("bottleneck", "a 1x1 bottleneck before a 5x5 conv (Inception): 28x28, "
                 "192->16->32 vs 192->32 directly, ~12.4M vs ~120.4M multiplies per image",
                 direct, _chain("1x1 then 5x5", [reduce, five]))


def depthwise_separable(rng, c, hw, n=2):
    full = _conv_form(f"3x3 {c}->{c}", rng, n, c, hw, c, 3, 1)
    x = _rand(rng, n, c, hw, hw)
    wd = _rand(rng, c, 1, 3, 3, fan_in=9)
    wp = _rand(rng, c, c, 1, 1, fan_in=c)
    b = _rand(rng, c)
    macs = n * hw * hw * c * 9 + n * hw * hw * c * c
    nbytes = (_conv_bytes(n, c, hw, hw, c, 3, 3, hw, hw, groups=c) +
              _conv_bytes(n, c, hw, hw, c, 1, 1, hw, hw))
    sep = Form("depthwise 3x3 + 1x1", macs, c * 9 + c * c + c, nbytes, 2,
               lambda: F.separable_conv2d(x, wd, wp, b, padding=1))
    return Claim(f"dwsep.{c}x{hw}", f"depthwise separable vs full 3x3 conv (MobileNet), "
                 f"{c} channels at {hw}x{hw}: 1/K + 1/9 of the multiplies", full, sep)


def stacked_3x3(rng, c=64, hw=56, n=2):
    x = _rand(rng, n, c, hw, hw)
    seven = _conv_form("one 7x7", rng, n, c, hw, c, 7, 3, x=x)
    threes = [_conv_form("3x3", rng, n, c, hw, c, 3, 1, x=x) for _ in range(3)]
    return Claim("7x7.vs.3x3x3", f"three stacked 3x3 convs vs one 7x7 (VGG), {c} channels at "
                 f"{hw}x{hw}: the same receptive field with 27/49 of the parameters and work",
                 seven, _chain("three 3x3", threes), about_params=True)


def rank1(rng, k, c=64, hw=112, n=2):
    x = _rand(rng, n, c, hw, hw)
    col, row = _rand(rng, c, k, fan_in=k), _rand(rng, c, k, fan_in=k)
    w = np.ascontiguousarray((col[:, :, None] * row[:, None, :])[:, None])
    pad = k // 2
    plane = n * c * hw * hw
    two_d = Form(f"{k}x{k} depthwise", plane * k * k, c * k * k,
                 F32 * (2 * plane + c * k * k), 1,
                 lambda: F.conv2d(x, w, padding=pad, groups=c))
    one_d = Form(f"{k}x1 then 1x{k}", plane * 2 * k, 2 * c * k, F32 * (2 * plane + 2 * c * k), 1,
                 lambda: F.sepconv2d_1d(x, col, row, padding=pad))
    return Claim(f"rank1.k{k}", f"a rank-1 {k}x{k} kernel as two 1-D passes vs one 2-D pass: "
                 f"2k instead of k^2 multiplies per output ({c} channels, {hw}x{hw})",
                 two_d, one_d)


def strided(rng, c=64, hw=56, n=4):
    x = _rand(rng, n, c, hw, hw)
    w = _rand(rng, c, c, 3, 3, fan_in=c * 9)
    full_out, out = hw, (hw + 2 - 3) // 2 + 1
    conv_bytes = _conv_bytes(n, c, hw, hw, c, 3, 3, full_out, full_out)
    # the subsampling copy reads every other row (half the cache lines) and writes a quarter
    sub_bytes = F32 * (n * c * full_out * full_out / 2 + n * c * out * out)
    then_sub = Form("stride 1, then [::2, ::2]", n * c * full_out * full_out * c * 9,
                    c * c * 9, conv_bytes + sub_bytes, 1,
                    lambda: np.ascontiguousarray(F.conv2d(x, w, padding=1)[:, :, ::2, ::2]))
    stride2 = Form("stride 2", n * c * out * out * c * 9, c * c * 9,
                   _conv_bytes(n, c, hw, hw, c, 3, 3, out, out), 1,
                   lambda: F.conv2d(x, w, stride=2, padding=1))
    return Claim("stride2", f"a strided conv vs conv then subsampling: the stride saves the "
                 f"outputs it skips ({c} channels, {hw}x{hw}, 3x3, stride 2)", then_sub, stride2)


def all_claims(rng):
    return ([bottleneck(rng), depthwise_separable(rng, 256, 28), depthwise_separable(rng, 512, 14),
             stacked_3x3(rng)] + [rank1(rng, k) for k in (3, 5, 7, 11)] + [strided(rng)])


def _interleaved(forms, reps):
    for f in forms:
        f.run()  # warm-up
    samples = [[] for _ in forms]
    for _ in range(reps):
        for i, f in enumerate(forms):
            t0 = time.perf_counter()
            f.run()
            samples[i].append(time.perf_counter() - t0)
    return [statistics.median(s) for s in samples]


def _call_overhead(reps=200):
    x = np.ones((1, 1, 1, 1), np.float32)
    w = np.ones((1, 1, 1, 1), np.float32)
    F.conv2d(x, w)
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        F.conv2d(x, w)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


@dataclass
class Machine:
    peak_gflops: float
    bandwidth_gbs: float
    call_s: float
    threads: int

    @property
    def ridge(self):
        return self.peak_gflops / self.bandwidth_gbs


def probe_machine(threads):
    peak = _cpu._probe_fma_peak(threads, 0.05, 5)["gflops"]
    bw = _cpu._probe_bandwidth(threads, 64 << 20, 3)["gbs"]
    return Machine(peak, bw, _call_overhead(), threads)


def bounds(form, machine):
    """Lower bounds on the form's time, in seconds."""
    return {"compute": 2 * form.macs / (machine.peak_gflops * 1e9),
            "memory traffic": form.bytes / (machine.bandwidth_gbs * 1e9),
            "overhead": form.calls * machine.call_s}


def explain(claim, t_costly, t_cheap, machine):
    """The bound behind a > 2x gap between the analytic and the measured ratio, or None."""
    analytic = claim.costly.macs / claim.cheap.macs
    measured = t_costly / t_cheap
    gap = analytic / measured
    if 0.5 <= gap <= 2.0:
        return None, gap
    # gap > 2: the cheap form did not get as fast as its arithmetic says; gap < 0.5: the
    # costly form is slower than its arithmetic says. Look at the form that departs.
    form, t, other, t_other = ((claim.cheap, t_cheap, claim.costly, t_costly) if gap > 2
                               else (claim.costly, t_costly, claim.cheap, t_cheap))
    b = bounds(form, machine)
    name = max(b, key=b.get)
    gflops = 2 * form.macs / t / 1e9
    other_gflops = 2 * other.macs / t_other / 1e9
    ai = 2 * form.macs / form.bytes
    figures = (f"'{form.label}' runs {t * 1e3:.2f} ms = {gflops:.1f} GFLOP/s "
               f"({100 * gflops / machine.peak_gflops:.0f}% of the {machine.peak_gflops:.0f} "
               f"GFLOP/s peak) against {other_gflops:.1f} GFLOP/s for '{other.label}'; "
               f"it moves >= {form.bytes / 1e6:.1f} MB at {ai:.1f} flop/byte (ridge "
               f"{machine.ridge:.1f} flop/byte at {machine.bandwidth_gbs:.1f} GB/s), "
               f"bounds: compute {b['compute'] * 1e3:.2f} ms, memory {b['memory traffic'] * 1e3:.2f} ms, "
               f"overhead {b['overhead'] * 1e3:.3f} ms ({form.calls} call(s) of "
               f"{machine.call_s * 1e6:.0f} us)")
    if b[name] < 0.5 * t:
        # even the largest bound explains under half the time: the kernel runs far from all of
        # them, so what the form is bound by is its own efficiency
        name = f"kernel efficiency (its largest bound, {name}, is {100 * b[name] / t:.0f}% of its time)"
    elif name == "compute":
        name = "kernel efficiency"
    return (name, figures), gap


def run_claims(reps=7, threads=None, seed=0, out=print):
    threads = threads or convcore.get_num_threads()
    convcore.set_num_threads(threads)
    machine = probe_machine(threads)
    out(f"machine: {_cpu.cpu_info()['brand']}, ISA {_cpu.cpu_info()['isa']}, {threads} thread(s); "
        f"FMA peak {machine.peak_gflops:.1f} GFLOP/s, stream bandwidth "
        f"{machine.bandwidth_gbs:.1f} GB/s, one tiny conv2d call {machine.call_s * 1e6:.0f} us")
    out(f"analytic = costly/cheap multiply-adds; measured = costly/cheap median wall time "
        f"({reps} interleaved repetitions); a gap over 2x names its bound\n")
    rows = []
    for claim in all_claims(np.random.default_rng(seed)):
        t_costly, t_cheap = _interleaved([claim.costly, claim.cheap], reps)
        # a form's achieved rate is a lower bound on the peak (a probe taken while other
        # processes load the machine can read low)
        best = max(2 * claim.costly.macs / t_costly, 2 * claim.cheap.macs / t_cheap) / 1e9
        if best > machine.peak_gflops:
            out(f"(peak raised from {machine.peak_gflops:.1f} to {best:.1f} GFLOP/s, the rate a "
                f"form below reached)")
            machine.peak_gflops = best
        analytic = claim.costly.macs / claim.cheap.macs
        measured = t_costly / t_cheap
        why, gap = explain(claim, t_costly, t_cheap, machine)
        out(f"[{claim.name}] {claim.text}")
        out(f"  costly: {claim.costly.label}: {claim.costly.macs / 1e6:.1f}M MACs, "
            f"{claim.costly.params:,} params, {t_costly * 1e3:.2f} ms")
        out(f"  cheap:  {claim.cheap.label}: {claim.cheap.macs / 1e6:.1f}M MACs, "
            f"{claim.cheap.params:,} params, {t_cheap * 1e3:.2f} ms")
        params = (f", parameters {claim.costly.params / claim.cheap.params:.2f}x"
                  if claim.about_params else "")
        out(f"  analytic {analytic:.2f}x{params}, measured {measured:.2f}x"
            + ("" if why is None else f" -> differ by {max(gap, 1 / gap):.1f}x: {why[0]}"))
        if why is not None:
            out(f"    {why[1]}")
        rows.append({"claim": claim.name, "analytic": analytic, "measured": measured,
                     "params_ratio": claim.costly.params / claim.cheap.params,
                     "costly_ms": t_costly * 1e3, "cheap_ms": t_cheap * 1e3,
                     "bound": None if why is None else why[0]})
    out("\n| claim | analytic | measured | bound |")
    out("|---|---:|---:|---|")
    for r in rows:
        out(f"| {r['claim']} | {r['analytic']:.2f}x | {r['measured']:.2f}x | "
            f"{r['bound'] or 'within 2x'} |")
    return rows
