"""Property-based tests (hypothesis) for every public op of convcore.functional.

Each test draws shapes and parameters, extremes included (1x1 images, kernels exactly as large as
the padded input, stride larger than the kernel, padding several times the kernel, dilation, up to
eight groups, depthwise, batch 1), and compares forward and backward with the float64 references
of reference.py / reference_pool.py. The `hostile` tests draw invalid combinations (negative,
zero, huge, float, bool and None parameters; wrong ndim, dtype and channel counts) and require a
ValueError/TypeError naming the op, or a result without a poisoned (unwritten) element.

Settings: derandomize=True (the same cases on every run, so CI is reproducible), deadline=None
(a loaded machine must not fail a case by its time), no example database. The examples per test
come from CONVCORE_HYPOTHESIS_EXAMPLES (default 60). The number of cases each op ran is printed
at the end of the module and checked against that setting.
"""
import collections
import os

import numpy as np
import pytest
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

import convcore
import convcore.functional as F
from convcore import _cpu

import reference as ref
import reference_pool as R
from isa import ISA_ORDER, supported
from reference import assert_close

EXAMPLES = int(os.environ.get("CONVCORE_HYPOTHESIS_EXAMPLES", "60"))
SETTINGS = settings(max_examples=EXAMPLES, derandomize=True, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much,
                                           HealthCheck.data_too_large])
TOL = {np.float32: 1e-5, np.float64: 1e-12}
FLOATS = st.sampled_from([np.float32, np.float64])
SEEDS = st.integers(0, 2**32 - 1)
# every case also draws the SIMD level its kernels run at (each one the CPU supports)
SEED_AND_ISA = st.tuples(SEEDS, st.sampled_from([isa for isa in ISA_ORDER if supported(isa)]))

CASES = collections.Counter()      # op -> cases that ran to the end
EXTREMES = collections.Counter()   # which extremes the conv-like cases hit
ISA_CASES = collections.Counter()  # cases run per SIMD level


@pytest.fixture(autouse=True, scope="module")
def _one_thread_and_report(request):
    """Tiny shapes: one thread (a thread team costs more than the work). At the end, the case
    counts are printed and each op that ran must have run its examples (hypothesis stops early
    only when a strategy cannot produce enough distinct cases, which would be a test bug)."""
    before, isa_before = convcore.get_num_threads(), _cpu.cpu_info()["isa"]
    convcore.set_num_threads(1)
    yield
    convcore.set_num_threads(before)
    _cpu._set_isa(isa_before)
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if reporter is not None and capture is not None and CASES:
        with capture.global_and_fixture_disabled():
            reporter.write_line("")
            reporter.write_line(f"hypothesis cases per op ({EXAMPLES} examples per test): "
                                + ", ".join(f"{op} {n}" for op, n in sorted(CASES.items()))
                                + f"; total {sum(CASES.values())}")
            reporter.write_line("conv-like extremes hit: "
                                + ", ".join(f"{k} {v}" for k, v in sorted(EXTREMES.items())))
            reporter.write_line("cases per SIMD level: "
                                + ", ".join(f"{k} {v}" for k, v in sorted(ISA_CASES.items())))
    short = {op: n for op, n in CASES.items() if n < EXAMPLES // 2}
    assert not short, f"ops that ran fewer than {EXAMPLES // 2} cases: {short}"


def _rng(seed_and_isa):
    """Switches the kernels to the drawn SIMD level; returns the drawn data stream."""
    seed, isa = seed_and_isa
    assert _cpu._set_isa(isa) == isa
    ISA_CASES[isa] += 1
    return np.random.default_rng(seed)


def _randn(rng, shape, dtype):
    return rng.standard_normal(shape).astype(dtype)


# ---- strategies ------------------------------------------------------------------------------

@st.composite
def extent(draw, kernel, dilation, before, after):
    """An input extent from the smallest that fits the dilated kernel in the padded input (the
    kernel exactly as large as the padded input) up to a few more."""
    low = max(1, dilation * (kernel - 1) + 1 - before - after)
    return low + draw(st.integers(0, 7))


PAD = st.one_of(st.integers(0, 3), st.integers(4, 12))  # 4..12: far more than the kernel


@st.composite
def conv_geometry(draw, kind=None):
    """kind: "dense" (groups 1), "grouped" (2..8 groups), "depthwise" (groups == C, multiplier
    1..3), or None for any of them."""
    kind = kind or draw(st.sampled_from(["dense", "grouped", "depthwise"]))
    if kind == "depthwise":
        c = draw(st.integers(2, 8))
        groups, k = c, c * draw(st.integers(1, 3))
    elif kind == "grouped":
        groups = draw(st.integers(2, 8))
        c, k = groups * draw(st.integers(1, 2)), groups * draw(st.integers(1, 2))
    else:
        groups, c, k = 1, draw(st.integers(1, 4)), draw(st.integers(1, 4))
    kh, kw = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    stride = (draw(st.integers(1, 6)), draw(st.integers(1, 6)))
    dilation = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    pads = tuple(draw(PAD) for _ in range(4))
    h = draw(extent(kh, dilation[0], pads[0], pads[1]))
    w = draw(extent(kw, dilation[1], pads[2], pads[3]))
    n = draw(st.integers(1, 3))
    return dict(n=n, c=c, h=h, w=w, k=k, kh=kh, kw=kw, stride=stride, pads=pads,
                dilation=dilation, groups=groups)


def _conv_out(g):
    return (ref.out_extent(g["h"], g["kh"], g["stride"][0], g["pads"][0], g["pads"][1], g["dilation"][0]),
            ref.out_extent(g["w"], g["kw"], g["stride"][1], g["pads"][2], g["pads"][3], g["dilation"][1]))


def _tally(op, g):
    """Counts the case for `op` and which extremes it exercised."""
    CASES[op] += 1
    spans = [g["dilation"][i] * (g[k] - 1) + 1 for i, k in enumerate(("kh", "kw"))]
    padded = [g["h"] + g["pads"][0] + g["pads"][1], g["w"] + g["pads"][2] + g["pads"][3]]
    EXTREMES["1x1 image"] += g["h"] == 1 and g["w"] == 1
    EXTREMES["kernel = padded input"] += spans[0] == padded[0] or spans[1] == padded[1]
    EXTREMES["stride > kernel"] += g["stride"][0] > g["kh"] or g["stride"][1] > g["kw"]
    EXTREMES["padding > kernel"] += max(g["pads"]) > max(g["kh"], g["kw"])
    EXTREMES["dilation > 1"] += max(g["dilation"]) > 1
    EXTREMES["groups > 1"] += g["groups"] > 1
    EXTREMES["batch 1"] += g["n"] == 1


def _conv_arrays(rng, g, dtype, bias):
    x = _randn(rng, (g["n"], g["c"], g["h"], g["w"]), dtype)
    w = _randn(rng, (g["k"], g["c"] // g["groups"], g["kh"], g["kw"]), dtype)
    b = _randn(rng, (g["k"],), dtype) if bias else None
    return x, w, b


def _conv_kwargs(g):
    return dict(stride=g["stride"], padding=g["pads"], dilation=g["dilation"], groups=g["groups"])


def _ref_args(g):
    return g["stride"], g["pads"], g["dilation"], g["groups"]


NEED3 = st.lists(st.sampled_from(["x", "w", "b"]), min_size=1, max_size=3, unique=True)


def _check_grads(got, want, names, need, what, tol):
    for name, a, b in zip(names, got, want):
        if name in need:
            assert_close(a, b, f"d{name} {what}", tol)
        else:
            assert a is None, f"d{name} was not asked for ({what})"


# ---- conv2d, every algorithm ----------------------------------------------------------------

CONV_ALGOS = ["auto", "direct", "im2col", "reference", "depthwise"]


def _geometry_for(algo):
    return conv_geometry("depthwise") if algo == "depthwise" else conv_geometry()


@pytest.mark.parametrize("algo", CONV_ALGOS)
def test_conv2d(algo):
    @SETTINGS
    @given(g=_geometry_for(algo), dtype=FLOATS, bias=st.booleans(), seed=SEED_AND_ISA)
    def run(g, dtype, bias, seed):
        note(g)
        x, w, b = _conv_arrays(_rng(seed), g, dtype, bias)
        y = F.conv2d(x, w, b, algo=algo, **_conv_kwargs(g))
        assert y.dtype == dtype and y.shape == (g["n"], g["k"]) + _conv_out(g)
        assert_close(y, ref.conv2d(x, w, b, *_ref_args(g)), f"conv2d algo={algo}", TOL[dtype])
        _tally(f"conv2d[{algo}]", g)
    run()


@pytest.mark.parametrize("algo", CONV_ALGOS)
def test_conv2d_backward(algo):
    @SETTINGS
    @given(g=_geometry_for(algo), dtype=FLOATS, need=NEED3, seed=SEED_AND_ISA)
    def run(g, dtype, need, seed):
        note(g)
        rng = _rng(seed)
        x, w, _ = _conv_arrays(rng, g, dtype, False)
        dy = _randn(rng, (g["n"], g["k"]) + _conv_out(g), dtype)
        got = F.conv2d_backward(dy, x, w, need=tuple(need), algo=algo, **_conv_kwargs(g))
        want = ref.conv2d_backward(dy, x, w, *_ref_args(g))
        _check_grads(got, want, "xwb", need, f"conv2d_backward algo={algo}", TOL[dtype])
        _tally(f"conv2d_backward[{algo}]", g)
    run()


# ---- depthwise and depthwise separable -------------------------------------------------------

@SETTINGS
@given(g=conv_geometry("depthwise"), dtype=FLOATS, bias=st.booleans(), need=NEED3, seed=SEED_AND_ISA)
def test_depthwise_conv2d(g, dtype, bias, need, seed):
    note(g)
    rng = _rng(seed)
    x, w, b = _conv_arrays(rng, g, dtype, bias)
    s, p, d, groups = _ref_args(g)
    y = F.depthwise_conv2d(x, w, b, s, p, d)
    assert_close(y, ref.conv2d(x, w, b, s, p, d, groups), "depthwise_conv2d", TOL[dtype])
    dy = _randn(rng, y.shape, dtype)
    got = F.depthwise_conv2d_backward(dy, x, w, s, p, d, need=tuple(need))
    _check_grads(got, ref.conv2d_backward(dy, x, w, s, p, d, groups), "xwb", need,
                 "depthwise_conv2d_backward", TOL[dtype])
    _tally("depthwise_conv2d(+backward)", g)


@SETTINGS
@given(g=conv_geometry("depthwise"), k_out=st.integers(1, 5), dtype=FLOATS, bias=st.booleans(),
       need=st.lists(st.sampled_from(["x", "w_depthwise", "w_pointwise", "b"]), min_size=1,
                     max_size=4, unique=True),
       seed=SEED_AND_ISA)
def test_separable_conv2d(g, k_out, dtype, bias, need, seed):
    note(g)
    rng = _rng(seed)
    x, w_dw, _ = _conv_arrays(rng, g, dtype, False)
    w_pw = _randn(rng, (k_out, g["k"], 1, 1), dtype)
    b = _randn(rng, (k_out,), dtype) if bias else None
    s, p, d, groups = _ref_args(g)
    mid = ref.conv2d(x, w_dw, None, s, p, d, groups)
    y = F.separable_conv2d(x, w_dw, w_pw, b, s, p, d)
    assert_close(y, ref.conv2d(mid, w_pw, b), "separable_conv2d", TOL[dtype])
    dy = _randn(rng, y.shape, dtype)
    dmid, dw_pw, db = ref.conv2d_backward(dy, mid, w_pw)
    dx, dw_dw, _ = ref.conv2d_backward(dmid, x, w_dw, s, p, d, groups)
    got = F.separable_conv2d_backward(dy, x, w_dw, w_pw, s, p, d, need=tuple(need))
    _check_grads(got, (dx, dw_dw, dw_pw, db), ("x", "w_depthwise", "w_pointwise", "b"), need,
                 "separable_conv2d_backward", TOL[dtype])
    _tally("separable_conv2d(+backward)", g)


@SETTINGS
@given(g=conv_geometry("depthwise"), dtype=FLOATS, bias=st.booleans(),
       need=st.lists(st.sampled_from(["x", "w_col", "w_row", "b"]), min_size=1, max_size=4,
                     unique=True),
       seed=SEED_AND_ISA)
def test_sepconv2d_1d(g, dtype, bias, need, seed):
    g = dict(g, k=g["c"])  # one filter per channel
    note(g)
    rng = _rng(seed)
    x = _randn(rng, (g["n"], g["c"], g["h"], g["w"]), dtype)
    w_col, w_row = _randn(rng, (g["c"], g["kh"]), dtype), _randn(rng, (g["c"], g["kw"]), dtype)
    b = _randn(rng, (g["c"],), dtype) if bias else None
    s, p, d, groups = _ref_args(g)
    y = F.sepconv2d_1d(x, w_col, w_row, b, s, p, d)
    assert_close(y, ref.sepconv2d_1d(x, w_col, w_row, b, s, p, d), "sepconv2d_1d", TOL[dtype])
    dy = _randn(rng, y.shape, dtype)
    # the chain rule through w[c] = outer(w_col[c], w_row[c])
    dx, dw2, db = ref.conv2d_backward(dy, x, ref.outer_kernel(w_col, w_row), s, p, d, groups)
    dw_col = np.einsum("cij,cj->ci", dw2[:, 0], w_row.astype(np.float64))
    dw_row = np.einsum("cij,ci->cj", dw2[:, 0], w_col.astype(np.float64))
    got = F.sepconv2d_1d_backward(dy, x, w_col, w_row, s, p, d, need=tuple(need))
    _check_grads(got, (dx, dw_col, dw_row, db), ("x", "w_col", "w_row", "b"), need,
                 "sepconv2d_1d_backward", TOL[dtype])
    _tally("sepconv2d_1d(+backward)", g)


# ---- conv1d ----------------------------------------------------------------------------------

@pytest.mark.parametrize("algo", ["auto", "direct", "im2col", "reference"])
def test_conv1d(algo):
    @SETTINGS
    @given(g=conv_geometry(), dtype=FLOATS, bias=st.booleans(), need=NEED3, seed=SEED_AND_ISA)
    def run(g, dtype, bias, need, seed):
        # the width axis of a 2-D geometry: kernel kw, stride, left/right padding, dilation
        g = dict(g, h=1, kh=1, pads=(0, 0) + g["pads"][2:], stride=(1, g["stride"][1]),
                 dilation=(1, g["dilation"][1]))
        note(g)
        rng = _rng(seed)
        x, w, b = _conv_arrays(rng, g, dtype, bias)
        x, w = x[:, :, 0], w[:, :, 0]
        s, pads, d = g["stride"][1], g["pads"][2:], g["dilation"][1]
        kw = dict(stride=s, padding=pads, dilation=d, groups=g["groups"], algo=algo)
        y = F.conv1d(x, w, b, **kw)
        assert_close(y, ref.conv1d(x, w, b, s, pads, d, g["groups"]), f"conv1d algo={algo}",
                     TOL[dtype])
        dy = _randn(rng, y.shape, dtype)
        got = F.conv1d_backward(dy, x, w, need=tuple(need), **kw)
        _check_grads(got, ref.conv1d_backward(dy, x, w, s, pads, d, g["groups"]), "xwb", need,
                     f"conv1d_backward algo={algo}", TOL[dtype])
        _tally(f"conv1d(+backward)[{algo}]", g)
    run()


# ---- transposed convolution ------------------------------------------------------------------

@st.composite
def transpose_geometry(draw):
    groups = draw(st.sampled_from([1, 1, 2, 3, 4, 8]))
    cin, cout_pg = groups * draw(st.integers(1, 2)), draw(st.integers(1, 3))
    kh, kw = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    stride = (draw(st.integers(1, 6)), draw(st.integers(1, 6)))
    dilation = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    out_pad = tuple(draw(st.integers(0, max(s, d) - 1)) for s, d in zip(stride, dilation))
    h, w = draw(st.integers(1, 6)), draw(st.integers(1, 6))
    pads = []
    for size, k, s, d, op in ((h, kh, stride[0], dilation[0], out_pad[0]),
                              (w, kw, stride[1], dilation[1], out_pad[1])):
        room = (size - 1) * s + d * (k - 1) + op  # total padding that leaves one output row
        before = draw(st.integers(0, room))
        pads += [before, draw(st.integers(0, room - before))]
    return dict(n=draw(st.integers(1, 3)), cin=cin, cout=cout_pg * groups, h=h, w=w, kh=kh, kw=kw,
                stride=stride, pads=tuple(pads), out_pad=out_pad, dilation=dilation, groups=groups)


@pytest.mark.parametrize("algo", ["auto", "direct", "im2col", "reference"])
def test_conv_transpose2d(algo):
    @SETTINGS
    @given(g=transpose_geometry(), dtype=FLOATS, bias=st.booleans(), need=NEED3, seed=SEED_AND_ISA)
    def run(g, dtype, bias, need, seed):
        note(g)
        rng = _rng(seed)
        x = _randn(rng, (g["n"], g["cin"], g["h"], g["w"]), dtype)
        w = _randn(rng, (g["cin"], g["cout"] // g["groups"], g["kh"], g["kw"]), dtype)
        b = _randn(rng, (g["cout"],), dtype) if bias else None
        args = (g["stride"], g["pads"], g["out_pad"], g["dilation"], g["groups"])
        y = F.conv_transpose2d(x, w, b, *args, algo=algo)
        assert_close(y, ref.conv_transpose2d(x, w, b, *args), f"conv_transpose2d algo={algo}",
                     TOL[dtype])
        dy = _randn(rng, y.shape, dtype)
        got = F.conv_transpose2d_backward(dy, x, w, *args, need=tuple(need), algo=algo)
        _check_grads(got, ref.conv_transpose2d_backward(dy, x, w, *args), "xwb", need,
                     f"conv_transpose2d_backward algo={algo}", TOL[dtype])
        CASES[f"conv_transpose2d(+backward)[{algo}]"] += 1
        EXTREMES["transpose: one output row/col"] += min(y.shape[2:]) == 1
    run()


# ---- im2col / col2im -------------------------------------------------------------------------

@SETTINGS
@given(g=conv_geometry("dense"), dtype=FLOATS, seed=SEED_AND_ISA)
def test_im2col_col2im(g, dtype, seed):
    note(g)
    rng = _rng(seed)
    x = _randn(rng, (g["n"], g["c"], g["h"], g["w"]), dtype)
    args = (g["kh"], g["kw"], g["stride"], g["pads"], g["dilation"])
    col = F.im2col(x, *args)
    # im2col only copies: exact
    np.testing.assert_array_equal(col, ref.im2col(x, *args).astype(dtype))
    col_in = _randn(rng, col.shape, dtype)
    assert_close(F.col2im(col_in, x.shape, *args), ref.col2im(col_in, x.shape, *args), "col2im",
                 TOL[dtype])
    _tally("im2col/col2im", g)


# ---- pooling ---------------------------------------------------------------------------------

@st.composite
def pool_geometry(draw, dilation=True):
    kernel = (draw(st.integers(1, 5)), draw(st.integers(1, 5)))
    stride = (draw(st.integers(1, 6)), draw(st.integers(1, 6)))
    dil = (draw(st.integers(1, 3)), draw(st.integers(1, 3))) if dilation else (1, 1)
    spans = [d * (k - 1) + 1 for k, d in zip(kernel, dil)]
    padding = tuple(draw(st.integers(0, s // 2)) for s in spans)  # PyTorch's limit: half the span
    h, w = (max(1, s - 2 * p) + draw(st.integers(0, 7)) for s, p in zip(spans, padding))
    return dict(n=draw(st.integers(1, 3)), c=draw(st.integers(1, 4)), h=h, w=w, kernel=kernel,
                stride=stride, padding=padding, dilation=dil, ceil_mode=draw(st.booleans()),
                stride_none=draw(st.booleans()) and stride == kernel)


def _pool_valid(g):
    """convcore refuses a configuration whose window sees only padding (see reference_pool)."""
    return not any(R.has_empty_window(size, k, s, p, d, g["ceil_mode"])
                   for size, k, s, p, d in zip((g["h"], g["w"]), g["kernel"], g["stride"],
                                               g["padding"], g["dilation"]))


POOL_ALGOS = st.sampled_from(["auto", "reference"])


@SETTINGS
@given(g=pool_geometry(), dtype=FLOATS, algo=POOL_ALGOS, seed=SEED_AND_ISA)
def test_max_pool2d(g, dtype, algo, seed):
    note(g)
    rng = _rng(seed)
    x = _randn(rng, (g["n"], g["c"], g["h"], g["w"]), dtype)
    kw = dict(kernel_size=g["kernel"], stride=None if g["stride_none"] else g["stride"],
              padding=g["padding"], dilation=g["dilation"], ceil_mode=g["ceil_mode"], algo=algo)
    if not _pool_valid(g):
        with pytest.raises(ValueError, match="pool over padding only"):
            F.max_pool2d(x, **kw)
        CASES["max_pool2d refused (window in padding only)"] += 1
        return
    y_ref, idx_ref = R.max_pool2d(x, g["kernel"], g["stride"], g["padding"], g["dilation"],
                                  g["ceil_mode"])
    y, idx = F.max_pool2d(x, return_indices=True, **kw)
    np.testing.assert_array_equal(y, y_ref.astype(dtype))  # max pooling selects: exact
    np.testing.assert_array_equal(idx, idx_ref)
    dy = _randn(rng, y.shape, dtype)
    dx_ref = R.scatter_to_argmax(dy, idx_ref, x.shape)
    assert_close(F.max_pool2d_backward(dy, x, indices=idx, **kw), dx_ref, "dx (indices)", TOL[dtype])
    assert_close(F.max_pool2d_backward(dy, x, **kw), dx_ref, "dx (recomputed)", TOL[dtype])
    CASES["max_pool2d(+backward)"] += 1


@SETTINGS
@given(g=pool_geometry(dilation=False), dtype=FLOATS, algo=POOL_ALGOS,
       count_include_pad=st.booleans(), divisor=st.one_of(st.none(), st.integers(1, 10)),
       seed=SEED_AND_ISA)
def test_avg_pool2d(g, dtype, algo, count_include_pad, divisor, seed):
    note(g)
    rng = _rng(seed)
    x = _randn(rng, (g["n"], g["c"], g["h"], g["w"]), dtype)
    kw = dict(kernel_size=g["kernel"], stride=None if g["stride_none"] else g["stride"],
              padding=g["padding"], ceil_mode=g["ceil_mode"], count_include_pad=count_include_pad,
              divisor_override=divisor, algo=algo)
    args = (g["kernel"], g["stride"], g["padding"], g["ceil_mode"], count_include_pad, divisor)
    assert _pool_valid(g)  # without dilation no window lies in padding only
    y = F.avg_pool2d(x, **kw)
    assert_close(y, R.avg_pool2d(x, *args), "avg_pool2d", TOL[dtype])
    dy = _randn(rng, y.shape, dtype)
    assert_close(F.avg_pool2d_backward(dy, x, **kw), R.avg_pool2d_backward(dy, x, *args),
                 "avg_pool2d_backward", TOL[dtype])
    CASES["avg_pool2d(+backward)"] += 1


ADAPTIVE = dict(n=st.integers(1, 3), c=st.integers(1, 4), h=st.integers(1, 12), w=st.integers(1, 12),
                out_h=st.one_of(st.none(), st.integers(1, 14)), out_w=st.integers(1, 14))


@SETTINGS
@given(**ADAPTIVE, dtype=FLOATS, algo=POOL_ALGOS, seed=SEED_AND_ISA)
def test_adaptive_avg_pool2d(n, c, h, w, out_h, out_w, dtype, algo, seed):
    rng = _rng(seed)
    x = _randn(rng, (n, c, h, w), dtype)
    y = F.adaptive_avg_pool2d(x, (out_h, out_w), algo=algo)  # None keeps the input's extent
    size = (h if out_h is None else out_h, out_w)
    assert_close(y, R.adaptive_avg_pool2d(x, size), "adaptive_avg_pool2d", TOL[dtype])
    dy = _randn(rng, y.shape, dtype)
    assert_close(F.adaptive_avg_pool2d_backward(dy, x, algo=algo),
                 R.adaptive_avg_pool2d_backward(dy, x.shape), "adaptive_avg_pool2d_backward",
                 TOL[dtype])
    CASES["adaptive_avg_pool2d(+backward)"] += 1


@SETTINGS
@given(**ADAPTIVE, dtype=FLOATS, algo=POOL_ALGOS, seed=SEED_AND_ISA)
def test_adaptive_max_pool2d(n, c, h, w, out_h, out_w, dtype, algo, seed):
    rng = _rng(seed)
    x = _randn(rng, (n, c, h, w), dtype)
    size = (h if out_h is None else out_h, out_w)
    y, idx = F.adaptive_max_pool2d(x, (out_h, out_w), return_indices=True, algo=algo)
    y_ref, idx_ref = R.adaptive_max_pool2d(x, size)
    np.testing.assert_array_equal(y, y_ref.astype(dtype))
    np.testing.assert_array_equal(idx, idx_ref)
    dy = _randn(rng, y.shape, dtype)
    dx_ref = R.scatter_to_argmax(dy, idx_ref, x.shape)
    assert_close(F.adaptive_max_pool2d_backward(dy, x, idx, algo=algo), dx_ref, "dx (indices)",
                 TOL[dtype])
    assert_close(F.adaptive_max_pool2d_backward(dy, x, algo=algo), dx_ref, "dx (recomputed)",
                 TOL[dtype])
    CASES["adaptive_max_pool2d(+backward)"] += 1


# ---- hostile input: invalid combinations must raise, never crash -----------------------------

# Parameter values around every boundary the validation has: negative, zero, a float, a bool,
# None, a string, wrong-length tuples, and magnitudes at and past 2^31 and 2^63 (past what the
# int64 parameters hold). Nothing between 13 and 2^31: a valid but huge output would only be slow.
HOSTILE_INT = st.one_of(
    st.integers(-3, 6), st.sampled_from([2**31 - 1, 2**31, 2**40, 2**62, 2**63 - 1, -2**63, 2**64]))
HOSTILE_SCALAR = st.one_of(HOSTILE_INT, st.sampled_from([1.5, True, None, "2", np.int64(2),
                                                         np.float32(1)]))
HOSTILE_PARAM = st.one_of(HOSTILE_SCALAR, st.tuples(HOSTILE_INT, HOSTILE_INT),
                          st.lists(HOSTILE_INT, min_size=0, max_size=5).map(tuple))
HOSTILE_DTYPE = st.sampled_from([np.float32, np.float32, np.float64, np.float64, np.float16,
                                 np.int32, np.int64, np.bool_, np.complex64, object])


@st.composite
def hostile_array(draw, ndim_hint):
    ndim = draw(st.one_of(st.just(ndim_hint), st.integers(0, 5)))
    shape = tuple(draw(st.integers(0, 4)) for _ in range(ndim))
    dtype = draw(HOSTILE_DTYPE)
    arr = np.random.default_rng(draw(SEEDS)).standard_normal(shape)
    arr = arr.astype(dtype) if dtype is not object else arr.astype(object)
    if ndim and draw(st.booleans()):
        arr = arr[..., ::-1]  # a negative-stride view
    if draw(st.booleans()):
        arr.setflags(write=False)
    return arr


def _call_hostile(name, call):
    """Runs one hostile call: it may succeed (then every output element must have been written:
    outputs start as NaN) or raise ValueError/TypeError naming the op (MemoryError only with
    its own message); anything else fails the test, and a crash would end the run."""
    try:
        out = call()
    except (ValueError, TypeError) as exc:
        assert name in str(exc), f"{type(exc).__name__} does not name {name}: {exc}"
        # the binding's own refusal means the Python layer let through what it should name
        assert "incompatible function arguments" not in str(exc), str(exc)
        return "refused"
    except MemoryError:
        return "refused"
    for arr in (out if isinstance(out, tuple) else (out,)):
        # the inputs are standard normal: a NaN can only be an element left unwritten
        if isinstance(arr, np.ndarray) and arr.dtype.kind == "f":
            assert not np.isnan(arr).any(), f"{name} left NaN in its output"
    return "accepted"


HOSTILE_OPS = {
    "conv2d": lambda d: F.conv2d(d(4), d(4), d(1) if d.flag() else None, stride=d.p(),
                                 padding=d.p(), dilation=d.p(), groups=d.s(), algo=d.algo()),
    "conv2d_backward": lambda d: F.conv2d_backward(d(4), d(4), d(4), stride=d.p(), padding=d.p(),
                                                   dilation=d.p(), groups=d.s(), algo=d.algo()),
    "conv1d": lambda d: F.conv1d(d(3), d(3), None, stride=d.p(), padding=d.p(), dilation=d.p(),
                                 groups=d.s()),
    "conv1d_backward": lambda d: F.conv1d_backward(d(3), d(3), d(3), stride=d.p(),
                                                   padding=d.p(), dilation=d.p(), groups=d.s()),
    "conv_transpose2d": lambda d: F.conv_transpose2d(d(4), d(4), None, stride=d.p(),
                                                     padding=d.p(), output_padding=d.p(),
                                                     dilation=d.p(), groups=d.s()),
    "conv_transpose2d_backward": lambda d: F.conv_transpose2d_backward(
        d(4), d(4), d(4), stride=d.p(), padding=d.p(), output_padding=d.p(), dilation=d.p(),
        groups=d.s()),
    "depthwise_conv2d": lambda d: F.depthwise_conv2d(d(4), d(4), None, d.p(), d.p(), d.p()),
    "separable_conv2d": lambda d: F.separable_conv2d(d(4), d(4), d(4), None, d.p(), d.p(), d.p()),
    "sepconv2d_1d": lambda d: F.sepconv2d_1d(d(4), d(2), d(2), None, d.p(), d.p(), d.p()),
    "sepconv2d_1d_backward": lambda d: F.sepconv2d_1d_backward(d(4), d(4), d(2), d(2), d.p(),
                                                               d.p(), d.p()),
    "im2col": lambda d: F.im2col(d(4), d.s(), d.s(), d.p(), d.p(), d.p()),
    "col2im": lambda d: F.col2im(d(2), d.p(), d.s(), d.s(), d.p(), d.p(), d.p()),
    "max_pool2d": lambda d: F.max_pool2d(d(4), d.p(), d.p(), d.p(), d.p(), d.flag(), d.flag()),
    "max_pool2d_backward": lambda d: F.max_pool2d_backward(d(4), d(4), d.p(), d.p(), d.p(), d.p()),
    "avg_pool2d": lambda d: F.avg_pool2d(d(4), d.p(), d.p(), d.p(), d.flag(), d.flag(), d.s()),
    "avg_pool2d_backward": lambda d: F.avg_pool2d_backward(d(4), d(4), d.p(), d.p(), d.p()),
    "adaptive_avg_pool2d": lambda d: F.adaptive_avg_pool2d(d(4), d.p()),
    "adaptive_max_pool2d_backward": lambda d: F.adaptive_max_pool2d_backward(d(4), d(4)),
}


class _Drawer:
    """Hands the op lambdas hostile arrays (d(ndim)), parameters (d.p()), scalars (d.s()),
    flags and algorithm names, all drawn by hypothesis."""

    def __init__(self, draw):
        self.draw = draw

    def __call__(self, ndim):
        return self.draw(hostile_array(ndim))

    def p(self):
        return self.draw(HOSTILE_PARAM)

    def s(self):
        return self.draw(HOSTILE_SCALAR)

    def flag(self):
        return self.draw(st.sampled_from([True, False, 1, None]))

    def algo(self):
        return self.draw(st.sampled_from(["auto", "direct", "im2col", "depthwise", "reference",
                                          "fft", "", 3, None]))


@pytest.mark.parametrize("op", sorted(HOSTILE_OPS))
def test_hostile_input_is_refused(op):
    outcomes = collections.Counter()

    @SETTINGS
    @given(data=st.data())
    def run(data):
        outcomes[_call_hostile(op, lambda: HOSTILE_OPS[op](_Drawer(data.draw)))] += 1
        CASES[f"hostile {op}"] += 1
    run()
    assert outcomes["refused"] > 0, f"no hostile case of {op} was refused: {outcomes}"
