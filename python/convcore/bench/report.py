"""Text table, summary, JSON and plot of a run."""
import json
import math

# (header, width, key) of the table's columns; the row name is left-aligned, the rest right.
TABLE = (
    ("row", 16), ("shape", 28), ("algo", 9), ("GFLOP", 7), ("MB", 7), ("ms", 8),
    ("rate", 11), ("%roof", 7), ("torch ms", 9), ("x torch", 7), ("numpy ms", 9), ("x numpy", 7),
    ("f+b ms", 8), ("torch f+b", 9), ("x f+b", 6),
)


def _fmt_num(v, digits=3):
    if v is None:
        return "-"
    if v == 0:
        return "0"
    mag = abs(v)
    if mag >= 1000:
        return f"{v:.0f}"
    decimals = max(0, digits - 1 - int(math.floor(math.log10(mag))))
    return f"{v:.{min(decimals, 3)}f}"


def _fmt_ratio(v):
    return "-" if v is None else f"{v:.2f}x" if v < 100 else f"{v:.0f}x"


def header_line():
    cells = []
    for i, (title, width) in enumerate(TABLE):
        cells.append(title.ljust(width) if i < 2 else title.rjust(width))
    line = " ".join(cells) + "  notes"
    return line + "\n" + "-" * len(line)


def row_line(r):
    t = r["times"]
    if r.get("gflops") is not None:
        rate = (f"{_fmt_num(r['gflops'])} GF/s" if r["bound"] == "compute" and r["gflop"] > 0
                else f"{_fmt_num(r['gbs'])} GB/s")
    else:
        rate = "-"
    roof = "-" if r.get("roof_pct") is None else f"{r['roof_pct']:.0f}% {r['bound'][0].upper()}"
    values = (
        r["name"], r["shape"], r["algo"], _fmt_num(r["gflop"]), _fmt_num(r["mb"]),
        _fmt_num(t.get("convcore")), rate, roof,
        _fmt_num(t.get("torch")), _fmt_ratio(r.get("x_torch")),
        _fmt_num(t.get("numpy")), _fmt_ratio(r.get("x_numpy")),
        _fmt_num(t.get("convcore_fwdbwd")), _fmt_num(t.get("torch_fwdbwd")),
        _fmt_ratio(r.get("x_torch_fwdbwd")),
    )
    cells = []
    for i, ((_, width), value) in enumerate(zip(TABLE, values)):
        value = str(value)
        if i < 2:
            cells.append(value[:width].ljust(width))
        else:
            cells.append(value.rjust(width))
    return " ".join(cells) + "  " + notes_text(r)


def notes_text(r):
    """Why cells are empty, one entry per distinct reason, skipping the torch reason that the
    header already states for the whole run."""
    by_reason = {}
    for column, reason in r["notes"].items():
        if reason in ("torch not installed", "skipped (--no-torch)", "skipped (--no-numpy)"):
            continue
        by_reason.setdefault(reason, []).append(column)
    parts = [f"{'/'.join(cols)}: {reason}" for reason, cols in by_reason.items()]
    if r.get("mb_unfused"):
        parts.append(f"unfused passes move {_fmt_num(r['mb_unfused'])} MB")
    return "; ".join(parts)


def probe_line(p):
    peaks = (f"peak {p.peak_1t:.0f} GFLOP/s 1 core" if p.threads == 1 else
             f"peak {p.peak_1t:.0f} GFLOP/s 1 core, {p.peak_nt:.0f} on {p.threads}")
    bws = (f"stream {p.bw_1t:.1f} GB/s 1 thread" if p.threads == 1 else
           f"stream {p.bw_1t:.1f} GB/s 1 thread, {p.bw_nt:.1f} on {p.threads}"
           f" (copy {p.copy_nt:.1f}, triad {p.triad_nt:.1f})")
    line = f"machine [{p.label} @ {p.time_s:.0f}s]: {p.isa} FMA {peaks}; {bws}"
    # All threads reaching little more than one core's peak means other processes hold the
    # other cores: the rows that follow are contended, and their times say more about that.
    if p.threads > 1 and p.peak_nt < 1.3 * p.peak_1t:
        line += (f"\n  warning: {p.threads} threads reach only {p.peak_nt / p.peak_1t:.2f}x one"
                 " core's peak: other processes are using the cores, timings below are contended")
    return line


def preamble(machine, settings, torch_version, torch_reason, numpy_blas_limited, suite, nrows):
    lines = [
        f"convcore {machine['convcore']} benchmark: suite {suite}, {nrows} rows, "
        f"{settings.threads} thread(s)",
        f"CPU: {machine['cpu_model']} ({machine['vendor']}), {machine['logical_cpus']} logical CPUs,"
        f" L2 {machine['l2_bytes'] >> 10} KiB/core; ISA in use: {machine['isa']}"
        f" (best supported: {machine['best_isa']})",
        "PyTorch: " + (f"{torch_version}, torch.set_num_threads({settings.threads})"
                       if torch_version else torch_reason)
        + "; NumPy " + str(machine["numpy"])
        + (f" (BLAS held to {settings.threads} thread(s) by threadpoolctl)" if numpy_blas_limited
           else " (BLAS threads not controlled: threadpoolctl not installed)"),
        "times: median ms of warm repetitions; x = other time / convcore time (>1: convcore faster);"
        " %roof = roofline time / measured time, C/M = compute/memory bound",
    ]
    return "\n".join(lines)


def summary_text(summary, results, separable):
    lines = ["", "Summary (targets are reported, not asserted)"]
    width = max(len(s["label"]) for s in summary)
    for s in summary:
        unit = s["unit"]
        value = "-" if s["value"] is None else (
            f"{s['value']:.2f}x" if unit == "x" else f"{s['value']:.0f}%")
        goal = (">" if s.get("strict") else ">=") + f" {s['threshold']:g}{unit}" + ("*" if s["assumed"] else "")
        mark = {True: "PASS", False: "miss", None: "n/a"}[s["met"]]
        lines.append(f"  {s['label'].ljust(width)}  {value:>8}  {goal:>10}  {s['rows']:>3} rows  {mark}")
    if any(s["assumed"] for s in summary):
        lines.append("  * threshold assumed (the issue names the quantity, not the number);"
                     " see python/convcore/bench/targets.py")
    if separable:
        lines.append("")
        lines.append("Separable 7x7 depthwise, 2-D kernel vs two 1-D passes (convcore both):")
        by_name = {r["name"]: r for r in results}
        for p in separable:
            r2, r1 = by_name.get(p["pair"] + ".2d"), by_name.get(p["pair"] + ".1d")
            lines.append(
                f"  {p['pair']}: 2-D {p['ms_2d']:.3f} ms ({r2['gflop']:.3f} GFLOP, {r2['mb']:.1f} MB)"
                f" vs 1-D {p['ms_1d']:.3f} ms ({r1['gflop']:.3f} GFLOP, {r1['mb']:.1f} MB fused,"
                f" {r1.get('mb_unfused', 0):.1f} MB unfused) -> {p['ratio']:.2f}x")
    return "\n".join(lines)


def _finite(obj):
    """JSON without NaN/Infinity: such values become null."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def write_json(path, document):
    with open(path, "w") as f:
        json.dump(_finite(document), f, indent=1)


def matplotlib_or_none():
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        return plt
    except ImportError:
        return None


def write_plot(plt, path, results, title):
    """Two panels per row: speed-up over PyTorch (forward and forward+backward, log scale) and
    % of roofline."""
    names = [r["name"] for r in results]
    xs = range(len(names))
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(max(8, 0.45 * len(names)), 8), sharex=True)
    fwd = [r.get("x_torch") or 0 for r in results]
    fb = [r.get("x_torch_fwdbwd") or 0 for r in results]
    ax1.bar([x - 0.2 for x in xs], fwd, 0.4, label="forward")
    ax1.bar([x + 0.2 for x in xs], fb, 0.4, label="forward+backward")
    ax1.axhline(1.0, color="k", lw=0.8)
    if any(v > 0 for v in fwd + fb):
        ax1.set_yscale("log")
    ax1.set_ylabel("speed-up over PyTorch")
    ax1.legend()
    ax1.set_title(title)
    roof = [r.get("roof_pct") or 0 for r in results]
    colors = ["tab:blue" if r.get("bound") == "compute" else "tab:orange" for r in results]
    ax2.bar(list(xs), roof, 0.6, color=colors)
    ax2.axhline(100.0, color="k", lw=0.8)
    ax2.set_ylabel("% of roofline (blue compute, orange memory)")
    ax2.set_xticks(list(xs))
    ax2.set_xticklabels(names, rotation=70, ha="right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
