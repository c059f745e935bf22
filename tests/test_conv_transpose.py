"""conv_transpose2d forward and backward (output_padding, groups, dilation, asymmetric padding),
every algorithm, against the float64 scatter-form NumPy reference."""
import numpy as np
import pytest

import convcore
import convcore.functional as F

import reference as ref
from cases import randn, small_ints
from reference import assert_close

N_CASES = 200
ALGOS = ["reference", "direct", "im2col"]
TOL = {np.float32: 1e-5, np.float64: 1e-12}


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny shapes: a thread team costs more than the work (see test_separable.py)."""
    before = convcore.get_num_threads()
    convcore.set_num_threads(1)
    yield
    convcore.set_num_threads(before)


def _out_extent(size, k, s, before, after, d, out_pad):
    return (size - 1) * s - before - after + d * (k - 1) + out_pad + 1


def random_transpose_case(rng):
    kind = rng.integers(0, 4)
    if kind == 3:  # one output channel per group: the depthwise kernel applies
        groups = int(rng.integers(1, 6))
        cin, cout_pg = groups * int(rng.integers(1, 3)), 1
    else:
        groups = int(rng.choice([1, 1, 2, 3]))
        cin, cout_pg = groups * int(rng.integers(1, 4)), int(rng.integers(1, 4))
    kh, kw = (int(v) for v in rng.integers(1, 6, size=2))
    stride = tuple(int(v) for v in rng.integers(1, 5, size=2))
    dilation = tuple(int(v) for v in rng.choice([1, 1, 2, 3], size=2))
    out_pad = tuple(int(rng.integers(0, max(s, d))) if rng.random() < 0.5 else 0
                    for s, d in zip(stride, dilation))
    h, w = (int(v) for v in rng.integers(1, 8, size=2))
    if rng.random() < 0.1:
        h = w = 1
    pads = tuple(int(v) for v in rng.integers(0, 5, size=4)) if rng.random() < 0.7 else (0, 0, 0, 0)
    if (_out_extent(h, kh, stride[0], pads[0], pads[1], dilation[0], out_pad[0]) <= 0
            or _out_extent(w, kw, stride[1], pads[2], pads[3], dilation[1], out_pad[1]) <= 0):
        pads = (0, 0, 0, 0)
    n = int(rng.choice([1, 1, 2, 3]))
    return dict(n=n, cin=cin, cout=cout_pg * groups, h=h, w=w, kh=kh, kw=kw, stride=stride,
                pads=pads, out_pad=out_pad, dilation=dilation, groups=groups)


def _shapes(case):
    out_h = _out_extent(case["h"], case["kh"], case["stride"][0], case["pads"][0], case["pads"][1],
                        case["dilation"][0], case["out_pad"][0])
    out_w = _out_extent(case["w"], case["kw"], case["stride"][1], case["pads"][2], case["pads"][3],
                        case["dilation"][1], case["out_pad"][1])
    return ((case["n"], case["cin"], case["h"], case["w"]),
            (case["cin"], case["cout"] // case["groups"], case["kh"], case["kw"]),
            (case["n"], case["cout"], out_h, out_w))


def _kwargs(case):
    return dict(stride=case["stride"], padding=case["pads"], output_padding=case["out_pad"],
                dilation=case["dilation"], groups=case["groups"])


def _ref_args(case):
    return (case["stride"], case["pads"], case["out_pad"], case["dilation"], case["groups"])


def _algos(case):
    depthwise = case["groups"] == case["cout"] and case["groups"] > 1
    return ALGOS + ["auto"] + (["depthwise"] if depthwise else [])


def _run(rng, case, dtype):
    x_shape, w_shape, y_shape = _shapes(case)
    x, w, b, dy = (randn(rng, s, dtype) for s in (x_shape, w_shape, (case["cout"],), y_shape))
    y_ref = ref.conv_transpose2d(x, w, b, *_ref_args(case))
    grads_ref = ref.conv_transpose2d_backward(dy, x, w, *_ref_args(case))
    # the same sums over |terms|: the scale their rounding works at (outputs can cancel)
    y_abs = ref.conv_transpose2d(np.abs(x), np.abs(w), np.abs(b), *_ref_args(case))
    grads_abs = ref.conv_transpose2d_backward(np.abs(dy), np.abs(x), np.abs(w), *_ref_args(case))
    for algo in _algos(case):
        y = F.conv_transpose2d(x, w, b, algo=algo, **_kwargs(case))
        assert y.dtype == dtype
        ref.assert_close_sums(y, y_ref, y_abs, f"conv_transpose2d algo={algo} {case}", TOL[dtype])
        grads = F.conv_transpose2d_backward(dy, x, w, algo=algo, **_kwargs(case))
        for name, got, want, scale in zip(("dx", "dw", "db"), grads, grads_ref, grads_abs):
            ref.assert_close_sums(got, want, scale, f"conv_transpose2d {name} algo={algo} {case}",
                                  TOL[dtype])


@pytest.mark.parametrize("case_id", range(N_CASES))
def test_conv_transpose2d_random_float32(rng, case_id):
    _run(rng, random_transpose_case(rng), np.float32)


@pytest.mark.parametrize("case_id", range(30))
def test_conv_transpose2d_random_float64(rng, case_id):
    _run(rng, random_transpose_case(rng), np.float64)


@pytest.mark.parametrize("case_id", range(30))
def test_conv_transpose2d_algorithms_agree_exactly_on_small_integers(rng, case_id):
    case = random_transpose_case(rng)
    x_shape, w_shape, y_shape = _shapes(case)
    x, w, dy = (small_ints(rng, s, np.float32) for s in (x_shape, w_shape, y_shape))
    base_y = F.conv_transpose2d(x, w, algo="reference", **_kwargs(case))
    base_dx, base_dw, _ = F.conv_transpose2d_backward(dy, x, w, algo="reference", **_kwargs(case))
    for algo in _algos(case)[1:]:
        np.testing.assert_array_equal(F.conv_transpose2d(x, w, algo=algo, **_kwargs(case)), base_y,
                                      err_msg=f"{algo} {case}")
        dx, dw, _ = F.conv_transpose2d_backward(dy, x, w, algo=algo, **_kwargs(case))
        np.testing.assert_array_equal(dx, base_dx, err_msg=f"dx {algo} {case}")
        np.testing.assert_array_equal(dw, base_dw, err_msg=f"dw {algo} {case}")


@pytest.mark.parametrize("case_id", range(6))
def test_conv_transpose2d_finite_differences_float64(rng, case_id):
    case = random_transpose_case(rng)
    case["n"] = 1
    x_shape, w_shape, y_shape = _shapes(case)
    x, w, b, dy = (randn(rng, s, np.float64) for s in (x_shape, w_shape, (case["cout"],), y_shape))

    def loss():
        return float(np.sum(F.conv_transpose2d(x, w, b, **_kwargs(case)) * dy))

    grads = F.conv_transpose2d_backward(dy, x, w, **_kwargs(case))
    for name, analytic, arr in zip(("x", "w", "b"), grads, (x, w, b)):
        assert_close(analytic, ref.linear_numeric_grad(loss, arr), f"finite differences d{name} {case}", 1e-7)


def test_conv_transpose2d_is_the_adjoint_of_conv2d(rng):
    """<conv2d(x, w), y> == <x, conv_transpose2d(y, w)> when the shapes round-trip."""
    x = randn(rng, (2, 6, 13, 11), np.float64)
    w = randn(rng, (4, 3, 3, 4), np.float64)
    kw = dict(stride=(2, 3), padding=(1, 2, 0, 3), dilation=(2, 1), groups=2)
    y = F.conv2d(x, w, **kw)
    g = randn(rng, y.shape, np.float64)
    # output_padding recovers the rows/columns the forward's floor division dropped
    out_pad = tuple((x.shape[2 + i] + sum(kw["padding"][2 * i:2 * i + 2]) - kw["dilation"][i] * (w.shape[2 + i] - 1) - 1)
                    % kw["stride"][i] for i in range(2))
    back = F.conv_transpose2d(g, w, output_padding=out_pad, **kw)
    assert back.shape == x.shape
    np.testing.assert_allclose(np.sum(y * g), np.sum(x * back), rtol=1e-12)


@pytest.mark.parametrize("case_id", range(20))
def test_conv_transpose2d_matches_pytorch(rng, case_id):
    torch = pytest.importorskip("torch")
    case = random_transpose_case(rng)
    x_shape, w_shape, y_shape = _shapes(case)
    x, w, b, dy = (randn(rng, s, np.float32) for s in (x_shape, w_shape, (case["cout"],), y_shape))
    xt, wt, bt = (torch.from_numpy(a).requires_grad_() for a in (x, w, b))
    full = torch.nn.functional.conv_transpose2d(xt, wt, bt, case["stride"], 0, case["out_pad"],
                                                case["groups"], case["dilation"])
    top, bottom, left, right = case["pads"]
    yt = full[:, :, top:full.shape[2] - bottom, left:full.shape[3] - right]
    yt.backward(torch.from_numpy(dy))
    assert_close(F.conv_transpose2d(x, w, b, **_kwargs(case)), yt.detach().numpy(), f"vs torch {case}", 1e-5)
    grads = F.conv_transpose2d_backward(dy, x, w, **_kwargs(case))
    # db is one float32 sum per channel that may cancel to far below its terms (CI: 1.1e-5 with
    # cout = 1): PyTorch's float32 sum is the inexact side, so db is held to the float64 sum of dy
    db_exact = dy.astype(np.float64).sum(axis=(0, 2, 3))
    for name, got, want in zip(("dx", "dw", "db"), grads, (xt.grad.numpy(), wt.grad.numpy(), db_exact)):
        assert_close(got, want, f"{name} vs torch {case}", 1e-5)


def test_conv_transpose2d_thread_counts_agree(rng):
    x = randn(rng, (3, 4, 9, 7), np.float32)
    w = randn(rng, (4, 3, 3, 3), np.float32)
    kw = dict(stride=2, padding=1, output_padding=1, groups=2)
    dy = randn(rng, (3, 6, 18, 14), np.float32)
    results = []
    for threads in (1, 2, 3):
        convcore.set_num_threads(threads)
        results.append((F.conv_transpose2d(x, w, **kw),) + F.conv_transpose2d_backward(dy, x, w, **kw))
    convcore.set_num_threads(1)
    for later in results[1:]:
        for a, b in zip(results[0], later):
            assert_close(a, b, "threads", 1e-6)


def test_1x1_with_output_padding_beyond_stride(rng):
    """Regression: output_padding >= stride (allowed below the dilation) gives a 1x1 transposed conv
    whose output has rows no input reaches; the im2col path once took it for a pointwise conv."""
    x = small_ints(rng, (1, 6, 1, 1), np.float32)
    w = small_ints(rng, (6, 2, 1, 1), np.float32)
    dy = small_ints(rng, (1, 6, 2, 1), np.float32)
    kw = dict(stride=1, padding=0, output_padding=(1, 0), dilation=(2, 1), groups=3)
    base = F.conv_transpose2d(x, w, algo="reference", **kw)
    assert base.shape == (1, 6, 2, 1) and np.all(base[:, :, 1] == 0)
    base_grads = F.conv_transpose2d_backward(dy, x, w, algo="reference", **kw)
    for algo in ("direct", "im2col", "auto"):
        np.testing.assert_array_equal(F.conv_transpose2d(x, w, algo=algo, **kw), base)
        for got, want in zip(F.conv_transpose2d_backward(dy, x, w, algo=algo, **kw), base_grads):
            np.testing.assert_array_equal(got, want)


# Strided input gradients (and so conv_transpose2d) whose kernels are at least twice the stride,
# with 16+ channels per group, run as one stride-1 convolution per phase of the result
# (csrc/cpu/conv_phases.cpp): 4x4/2, 5x5/2, 7x7/2, 6x6/3, unequal strides, every padding up to the
# kernel's, odd extents (phases of unequal size), groups, output_padding (a phase that would need
# negative padding falls back), on every ISA; exact on small integers.
PHASE_CASES = [
    # (n, c_in, h, w, c_out, (kh, kw), stride, padding, output_padding, groups)
    (2, 8, 7, 9, 16, (4, 4), (2, 2), (1, 1), (0, 0), 1),    # the convT.2x row's geometry
    (1, 6, 5, 6, 16, (5, 5), (2, 2), (2, 2), (1, 1), 1),
    (1, 4, 6, 5, 20, (7, 7), (2, 2), (3, 3), (0, 1), 1),
    (2, 5, 4, 4, 17, (6, 6), (3, 3), (2, 1), (0, 0), 1),
    (1, 8, 5, 7, 16, (4, 6), (2, 3), (0, 2), (1, 0), 1),
    (1, 8, 6, 6, 32, (4, 4), (2, 2), (3, 0), (0, 0), 2),    # groups: 16 output channels each
    (1, 3, 5, 5, 16, (4, 4), (2, 2), (0, 0), (0, 0), 1),    # no padding
    (1, 3, 3, 8, 16, (8, 5), (4, 2), (4, 1), (3, 1), 1),
    (1, 6, 5, 7, 16, (5, 5), (2, 2), (2, 2), (0, 0), 1),    # 13 wide: column phases of 7 and 6
]


@pytest.mark.parametrize("isa", ["scalar", "avx2", "avx512"])
@pytest.mark.parametrize("case", PHASE_CASES)
def test_strided_input_gradient_by_phases_exact(rng, isa, case):
    from isa import forced_isa

    n, cin, h, w, cout, (kh, kw), stride, pad, out_pad, groups = case
    x = small_ints(rng, (n, cin, h, w), np.float32)
    wt = small_ints(rng, (cin, cout // groups, kh, kw), np.float32)
    kwargs = dict(stride=stride, padding=pad, output_padding=out_pad, groups=groups)
    want = F.conv_transpose2d(x, wt, algo="reference", **kwargs)
    with forced_isa(isa):
        got = F.conv_transpose2d(x, wt, **kwargs)
        # conv2d's input gradient of the conv from want's shape to x's is the same sum
        dx = F.conv2d_backward(x, np.zeros_like(want), wt, stride=stride, padding=pad,
                               groups=groups, need=("x",))[0]
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(dx, want)
