"""`python -m convcore.bench --device cuda`: the default suite's shapes on a GPU, convcore's CUDA
kernels beside PyTorch/cuDNN in the same run.

Both sides get the same torch CUDA tensors (convcore takes them through __cuda_array_interface__
and returns torch tensors on torch's current stream), so both pay their own Python boundary.
Timing: CUDA events around a batch of launches (enough to fill ~2 ms), after warm-up; the median
of `reps` batches. cuDNN runs with torch.backends.cudnn.benchmark=True and, for the plain float32
comparison, allow_tf32=False for both convolutions and matmuls.

Ceilings measured at the start of the run: device-to-device copy bandwidth (torch copy_ of
1 GiB, bytes read + written) and the rate of a large float32 matrix product (cuBLAS SGEMM: a
practical float32 peak, below the datasheet's; with --tf32, the TF32 tensor-core product).
--tf32 compares TF32 against TF32: convcore.set_allow_tf32(True) and cuDNN/cuBLAS allow_tf32.

Every row is checked against PyTorch's float32 result (relative L2 error printed); the forward
columns time y = op(x), the backward columns the gradients alone (convcore's *_backward call;
torch.autograd.grad over a retained graph), f+b is their sum.
"""
import math
import statistics
import sys

import convcore
from convcore import functional as F

_DEVICE = "cuda"  # where the tensors live (a developer can point it at "cpu" to dry-run the code)

# name, kind, shape tuple. conv: (N, C, H, W, K, kernel, stride, pad, groups).
# Batches scaled from the CPU suite to fill an H100/H200 (the issue's "N=64 for ResNet rows").
ROWS = (
    [(f"book.conv{i}", "conv", (512, c, hw, hw, k, 3, 1, pad, 1)) for i, (c, hw, k, pad) in
     enumerate([(1, 28, 16, 1), (16, 28, 16, 1), (16, 14, 32, 1), (32, 14, 32, 2),
                (32, 8, 64, 1), (64, 8, 64, 1)], 1)]
    + [(f"r50.3x3.{c}", "conv", (64, c, hw, hw, c, 3, 1, 1, 1))
       for c, hw in ((64, 56), (128, 28), (256, 14), (512, 7))]
    + [(f"r50.1x1.{c}-{k}", "conv", (64, c, hw, hw, k, 1, 1, 0, 1))
       for c, hw, k in ((256, 56, 64), (64, 56, 256), (1024, 14, 256))]
    + [("r50.stem", "conv", (64, 3, 224, 224, 64, 7, 2, 3, 1)),
       ("vgg.3x3.128", "conv", (32, 128, 112, 112, 128, 3, 1, 1, 1))]
    + [(f"mnv1.dw{c}.s{s}", "depthwise", (64, c, hw, hw, c, 3, s, 1, c))
       for c, hw, s in ((32, 112, 1), (64, 112, 2), (128, 56, 1), (256, 28, 2), (512, 14, 1),
                        (1024, 7, 1))]
    + [("mnv1.pw512", "conv", (64, 512, 14, 14, 512, 1, 1, 0, 1)),
       # the separable pair: a rank-1 7x7 depthwise kernel as one 2-D pass and as two 1-D passes
       # (cuDNN runs the 2-D form in both rows)
       ("sep7.2d", "depthwise", (64, 64, 112, 112, 64, 7, 1, 3, 64)),
       ("sep7.1d", "sep1d", (64, 64, 112, 7, 3)),
       ("conv1d", "conv1d", (256, 64, 1024, 64, 9, 1, 4)),
       ("convT.2x", "convT", (64, 64, 28, 28, 32, 4, 2, 1))]
    + [(f"{m}pool.{k}s2", "pool", (m, n, c, hw, k, 2))
       for m in ("max", "avg") for n, c, hw, k in ((64, 256, 56, 2), (64, 64, 112, 3))]
)


def _timer(torch, reps):
    def time_ms(fn):
        for _ in range(2):
            fn()
        torch.cuda.synchronize()
        start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        stop.record()
        stop.synchronize()
        once = max(start.elapsed_time(stop), 1e-3)
        batch = max(1, min(200, int(2.0 / once)))
        samples = []
        for _ in range(reps):
            start.record()
            for _ in range(batch):
                fn()
            stop.record()
            stop.synchronize()
            samples.append(start.elapsed_time(stop) / batch)
        return statistics.median(samples)
    return time_ms


def _ceilings(torch, time_ms):
    src = torch.empty(1 << 28, device=_DEVICE, dtype=torch.float32).uniform_()
    dst = torch.empty_like(src)
    copy_ms = time_ms(lambda: dst.copy_(src))
    bandwidth = 2 * src.numel() * 4 / (copy_ms * 1e-3)
    del src, dst
    n = 8192
    a = torch.randn(n, n, device=_DEVICE)
    b = torch.randn(n, n, device=_DEVICE)
    mm_ms = time_ms(lambda: torch.mm(a, b))
    flops = 2 * n ** 3 / (mm_ms * 1e-3)
    return bandwidth, flops


def _rel_err(torch, ours, ref):
    ours, ref = ours.detach().double(), ref.detach().double()
    return float(torch.linalg.vector_norm(ours - ref) / max(torch.linalg.vector_norm(ref), 1e-30))


def _case(torch, kind, shape, gen):
    """(flop fwd, bytes fwd, bytes bwd, convcore fwd, convcore bwd, torch fwd, torch leaves,
    dy, pick: convcore's gradients -> the ones comparable with torch's leaves, None to skip)."""
    TF = torch.nn.functional
    randn = lambda *s: torch.randn(*s, device=_DEVICE, generator=gen)
    if kind in ("conv", "depthwise"):
        n, c, h, w_, k, r, s, p, g = shape
        x, w, b = randn(n, c, h, w_), randn(k, c // g, r, r) * (1.0 / math.sqrt(c // g * r * r)), randn(k)
        oh, ow = (h + 2 * p - r) // s + 1, (w_ + 2 * p - r) // s + 1
        dy = randn(n, k, oh, ow)
        flop = 2.0 * n * k * oh * ow * (c // g) * r * r
        fwd = lambda: F.conv2d(x, w, b, s, p, 1, g)
        bwd = lambda: F.conv2d_backward(dy, x, w, s, p, 1, g)
        tfwd = lambda xx, ww, bb: TF.conv2d(xx, ww, bb, s, p, 1, g)
        params = (x, w, b)
    elif kind == "conv1d":
        n, c, length, k, r, s, p = shape
        x, w, b = randn(n, c, length), randn(k, c, r) * (1.0 / math.sqrt(c * r)), randn(k)
        ol = (length + 2 * p - r) // s + 1
        dy = randn(n, k, ol)
        flop = 2.0 * n * k * ol * c * r
        fwd = lambda: F.conv1d(x, w, b, s, p)
        bwd = lambda: F.conv1d_backward(dy, x, w, s, p)
        tfwd = lambda xx, ww, bb: TF.conv1d(xx, ww, bb, s, p)
        params = (x, w, b)
    elif kind == "convT":
        n, c, h, w_, k, r, s, p = shape
        x, w, b = randn(n, c, h, w_), randn(c, k, r, r) * (1.0 / math.sqrt(c * r * r)), randn(k)
        oh, ow = (h - 1) * s - 2 * p + r, (w_ - 1) * s - 2 * p + r
        dy = randn(n, k, oh, ow)
        flop = 2.0 * n * c * h * w_ * k * r * r
        fwd = lambda: F.conv_transpose2d(x, w, b, s, p)
        bwd = lambda: F.conv_transpose2d_backward(dy, x, w, s, p)
        tfwd = lambda xx, ww, bb: TF.conv_transpose2d(xx, ww, bb, s, p)
        params = (x, w, b)
    elif kind == "sep1d":
        n, c, hw, r, p = shape
        x, b = randn(n, c, hw, hw), randn(c)
        w_col, w_row = randn(c, r) / math.sqrt(r), randn(c, r) / math.sqrt(r)
        w2d = (w_col[:, :, None] * w_row[:, None, :])[:, None]  # (C, 1, r, r), rank 1
        dy = randn(n, c, hw, hw)
        flop = 2.0 * n * c * hw * hw * 2 * r
        fwd = lambda: F.sepconv2d_1d(x, w_col, w_row, b, 1, p)
        bwd = lambda: F.sepconv2d_1d_backward(dy, x, w_col, w_row, 1, p)
        tfwd = lambda xx, ww, bb: TF.conv2d(xx, ww, bb, 1, p, 1, c)
        params = (x, w2d, b)
        # (dx, dw_col, dw_row, db) against cuDNN's (dx, dw, db): dx and db compare
        pick = lambda grads: (grads[0], None, grads[3])
    else:  # pool
        mode, n, c, hw, r, s = shape
        x = randn(n, c, hw, hw)
        o = (hw - r) // s + 1
        dy = randn(n, c, o, o)
        flop = float(n * c * o * o * r * r)
        if mode == "max":
            fwd = lambda: F.max_pool2d(x, r, s)
            bwd = lambda: F.max_pool2d_backward(dy, x, r, s)
            tfwd = lambda xx: TF.max_pool2d(xx, r, s)
        else:
            fwd = lambda: F.avg_pool2d(x, r, s)
            bwd = lambda: F.avg_pool2d_backward(dy, x, r, s)
            tfwd = lambda xx: TF.avg_pool2d(xx, r, s)
        params = (x,)
    if kind != "sep1d":
        pick = lambda grads: grads
    y_numel = dy.numel()
    weights = sum(t.numel() for t in params[1:])
    bytes_fwd = 4.0 * (params[0].numel() + y_numel + weights)
    # backward: read dy and x (and w), write dx (and dw, db)
    bytes_bwd = 4.0 * (y_numel + 2 * params[0].numel() + 2 * weights)
    return flop, bytes_fwd, bytes_bwd, fwd, bwd, tfwd, params, dy, pick


def run(reps=7, rows=None, out=sys.stdout, tf32=False):
    try:
        import torch
    except ImportError:
        print("--device cuda needs PyTorch with CUDA (the comparison and the timer)", file=sys.stderr)
        return None
    if not torch.cuda.is_available():
        print("--device cuda: torch sees no CUDA device", file=sys.stderr)
        return None
    torch.backends.cudnn.benchmark = True
    # plain float32 on both sides, or (tf32=True) TF32 tensor cores on both sides
    torch.backends.cudnn.allow_tf32 = tf32
    torch.backends.cuda.matmul.allow_tf32 = tf32
    convcore.set_allow_tf32(tf32)
    time_ms = _timer(torch, reps)
    bw, peak = _ceilings(torch, time_ms)
    props = torch.cuda.get_device_properties(0)
    print(f"# {props.name}, {props.multi_processor_count} SMs; torch {torch.__version__}, "
          f"cuDNN {torch.backends.cudnn.version()}; convcore {convcore.__version__}", file=out)
    mode = "TF32 on both sides" if tf32 else "no TF32"
    print(f"# ceilings: copy {bw / 1e9:.0f} GB/s, float32 {'TF32 ' if tf32 else 'S'}GEMM "
          f"{peak / 1e12:.1f} TFLOP/s; median of {reps} event-timed batches; "
          f"cudnn.benchmark=True, {mode}", file=out)
    header = (f"{'row':16} {'fwd ms':>8} {'cudnn':>8} {'x':>6} {'%roof':>6} {'bwd ms':>8} "
              f"{'cudnn':>8} {'x':>6} {'%roof':>6} {'f+b x':>6} {'err':>8}")
    print(header, file=out, flush=True)
    gen = torch.Generator(device=_DEVICE)
    gen.manual_seed(0)
    results = []
    for name, kind, shape in ROWS:
        if rows and not any(p in name for p in rows.split(",")):
            continue
        try:
            flop, bf, bb, fwd, bwd, tfwd, params, dy, pick = _case(torch, kind, shape, gen)
            leaves = [t.detach().requires_grad_(True) for t in params]
            ref = tfwd(*leaves)
            err = _rel_err(torch, fwd(), ref)
            grads_ref = torch.autograd.grad(ref, leaves, dy, retain_graph=True)
            grads = bwd()
            grads = pick(grads if isinstance(grads, (tuple, list)) else (grads,))
            err = max([err] + [_rel_err(torch, a, r) for a, r in zip(grads, grads_ref)
                               if a is not None])
            with torch.no_grad():
                t_fwd = time_ms(lambda: tfwd(*params))
            t_bwd = time_ms(lambda: torch.autograd.grad(ref, leaves, dy, retain_graph=True))
            c_fwd, c_bwd = time_ms(fwd), time_ms(bwd)
        except Exception as exc:  # a failing row is reported, the run goes on
            print(f"{name:16} FAILED: {type(exc).__name__}: {exc}", file=out, flush=True)
            results.append({"row": name, "error": f"{type(exc).__name__}: {exc}"})
            continue
        memory_bound = kind in ("depthwise", "pool", "sep1d")
        roof = (lambda ms, b: 100 * b / (ms * 1e-3) / bw) if memory_bound else \
            (lambda ms, b: 100 * flop / (ms * 1e-3) / peak)
        r = {"row": name, "kind": kind, "shape": shape, "gflop": flop / 1e9,
             "fwd_ms": c_fwd, "cudnn_fwd_ms": t_fwd, "bwd_ms": c_bwd, "cudnn_bwd_ms": t_bwd,
             "fwd_roof_pct": roof(c_fwd, bf), "bwd_roof_pct": roof(c_bwd, bb if memory_bound else 2 * flop),
             "fb_ratio": (t_fwd + t_bwd) / (c_fwd + c_bwd), "err": err}
        results.append(r)
        print(f"{name:16} {c_fwd:8.3f} {t_fwd:8.3f} {t_fwd / c_fwd:5.2f}x {r['fwd_roof_pct']:5.0f}% "
              f"{c_bwd:8.3f} {t_bwd:8.3f} {t_bwd / c_bwd:5.2f}x {r['bwd_roof_pct']:5.0f}% "
              f"{(t_fwd + t_bwd) / (c_fwd + c_bwd):5.2f}x {err:8.1e}", file=out, flush=True)
        del params, dy, ref, leaves, grads, grads_ref
        torch.cuda.empty_cache()
    ok = [r for r in results if "error" not in r]

    def geo(rs, key_c, key_t):
        vals = [r[key_t] / r[key_c] for r in rs]
        return math.exp(sum(map(math.log, vals)) / len(vals)) if vals else float("nan")
    conv = [r for r in ok if r["kind"] == "conv"]
    dw = [r for r in ok if r["kind"] == "depthwise" and r["row"].startswith("mnv1.")]
    sep = {r["row"]: r for r in ok if r["row"].startswith("sep7.")}
    pool = [r for r in ok if r["kind"] == "pool"]
    if conv:
        print(f"\nconv fwd geomean vs cuDNN {geo(conv, 'fwd_ms', 'cudnn_fwd_ms'):.2f}x "
              f"(target >= 0.9x), f+b "
              f"{math.exp(sum(math.log(r['fb_ratio']) for r in conv) / len(conv)):.2f}x", file=out)
    if dw:
        print(f"depthwise fwd {geo(dw, 'fwd_ms', 'cudnn_fwd_ms'):.2f}x, bwd "
              f"{geo(dw, 'bwd_ms', 'cudnn_bwd_ms'):.2f}x (target >= 1.5x); worst % of copy bw "
              f"fwd {min(r['fwd_roof_pct'] for r in dw):.0f}%, bwd "
              f"{min(r['bwd_roof_pct'] for r in dw):.0f}% (target 70%)", file=out)
    if len(sep) == 2:
        print(f"separable 1-D vs 2-D depthwise (our two forms): fwd "
              f"{sep['sep7.2d']['fwd_ms'] / sep['sep7.1d']['fwd_ms']:.2f}x, 1-D vs cuDNN's 2-D "
              f"{sep['sep7.1d']['cudnn_fwd_ms'] / sep['sep7.1d']['fwd_ms']:.2f}x", file=out)
    if pool:
        print(f"pooling worst % of copy bw fwd {min(r['fwd_roof_pct'] for r in pool):.0f}%, bwd "
              f"{min(r['bwd_roof_pct'] for r in pool):.0f}% (target 70%)", file=out)
    print(f"max relative error vs cuDNN ({mode}): {max((r['err'] for r in ok), default=0):.1e}",
          file=out)
    convcore.set_allow_tf32(False)
    return results, {"copy_bw": bw, "gemm_flops": peak, "device": props.name, "tf32": tf32}
