"""conv1d forward and backward, every algorithm, against a float64 NumPy 1-D reference."""
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


def random_conv1d_case(rng):
    kind = rng.integers(0, 4)
    if kind == 3:  # depthwise, with a channel multiplier
        c = int(rng.integers(1, 6))
        groups, k = c, c * int(rng.integers(1, 4))
    else:
        groups = int(rng.choice([1, 1, 2, 3]))
        c, k = groups * int(rng.integers(1, 5)), groups * int(rng.integers(1, 5))
    taps = int(rng.integers(1, 8))
    stride = int(rng.integers(1, 6))
    dilation = int(rng.choice([1, 1, 2, 3]))
    pads = tuple(int(v) for v in rng.integers(0, 6, size=2)) if rng.random() < 0.7 else (0, 0)
    padding = pads
    if rng.random() < 0.15:
        stride = 1
        total = dilation * (taps - 1)
        pads = (total // 2, total - total // 2)
        padding = "same"
    span = dilation * (taps - 1) + 1
    low = max(1, span - pads[0] - pads[1])
    length = int(rng.integers(low, low + 3 * stride + 8))
    if rng.random() < 0.08 and pads == (0, 0):  # length-1 signals
        taps = length = 1
    n = int(rng.choice([1, 1, 2, 3]))
    return dict(n=n, c=c, k=k, length=length, taps=taps, stride=stride, padding=padding, pads=pads,
                dilation=dilation, groups=groups)


def _shapes(case):
    out = ref.out_extent(case["length"], case["taps"], case["stride"], case["pads"][0],
                         case["pads"][1], case["dilation"])
    return ((case["n"], case["c"], case["length"]), (case["k"], case["c"] // case["groups"], case["taps"]),
            (case["n"], case["k"], out))


def _kwargs(case):
    return dict(stride=case["stride"], padding=case["padding"], dilation=case["dilation"],
                groups=case["groups"])


def _algos(case):
    depthwise = case["groups"] == case["c"] and case["groups"] > 1
    return ALGOS + ["auto"] + (["depthwise"] if depthwise else [])


def _run(rng, case, dtype):
    x_shape, w_shape, y_shape = _shapes(case)
    x, w, b, dy = (randn(rng, s, dtype) for s in (x_shape, w_shape, (case["k"],), y_shape))
    args = (case["stride"], case["pads"], case["dilation"], case["groups"])
    y_ref = ref.conv1d(x, w, b, *args)
    grads_ref = ref.conv1d_backward(dy, x, w, *args)
    # the same sums over |terms|: the scale their rounding works at (outputs can cancel)
    y_abs = ref.conv1d(np.abs(x), np.abs(w), np.abs(b), *args)
    grads_abs = ref.conv1d_backward(np.abs(dy), np.abs(x), np.abs(w), *args)
    for algo in _algos(case):
        y = F.conv1d(x, w, b, algo=algo, **_kwargs(case))
        assert y.dtype == dtype and y.flags.c_contiguous
        ref.assert_close_sums(y, y_ref, y_abs, f"conv1d algo={algo} {case}", TOL[dtype])
        grads = F.conv1d_backward(dy, x, w, algo=algo, **_kwargs(case))
        for name, got, want, scale in zip(("dx", "dw", "db"), grads, grads_ref, grads_abs):
            ref.assert_close_sums(got, want, scale, f"conv1d {name} algo={algo} {case}", TOL[dtype])


@pytest.mark.parametrize("case_id", range(N_CASES))
def test_conv1d_random_float32(rng, case_id):
    _run(rng, random_conv1d_case(rng), np.float32)


@pytest.mark.parametrize("case_id", range(30))
def test_conv1d_random_float64(rng, case_id):
    _run(rng, random_conv1d_case(rng), np.float64)


@pytest.mark.parametrize("case_id", range(30))
def test_conv1d_algorithms_agree_exactly_on_small_integers(rng, case_id):
    case = random_conv1d_case(rng)
    x_shape, w_shape, y_shape = _shapes(case)
    x, w, dy = (small_ints(rng, s, np.float32) for s in (x_shape, w_shape, y_shape))
    base_y = F.conv1d(x, w, algo="reference", **_kwargs(case))
    base_dx, base_dw, _ = F.conv1d_backward(dy, x, w, algo="reference", **_kwargs(case))
    for algo in _algos(case)[1:]:
        np.testing.assert_array_equal(F.conv1d(x, w, algo=algo, **_kwargs(case)), base_y, err_msg=f"{algo} {case}")
        dx, dw, _ = F.conv1d_backward(dy, x, w, algo=algo, **_kwargs(case))
        np.testing.assert_array_equal(dx, base_dx, err_msg=f"dx {algo} {case}")
        np.testing.assert_array_equal(dw, base_dw, err_msg=f"dw {algo} {case}")


@pytest.mark.parametrize("case_id", range(6))
def test_conv1d_finite_differences_float64(rng, case_id):
    case = random_conv1d_case(rng)
    case["n"] = 1
    x_shape, w_shape, y_shape = _shapes(case)
    x, w, b, dy = (randn(rng, s, np.float64) for s in (x_shape, w_shape, (case["k"],), y_shape))

    def loss():
        return float(np.sum(F.conv1d(x, w, b, **_kwargs(case)) * dy))

    grads = F.conv1d_backward(dy, x, w, **_kwargs(case))
    for name, analytic, arr in zip(("x", "w", "b"), grads, (x, w, b)):
        assert_close(analytic, ref.linear_numeric_grad(loss, arr), f"finite differences d{name} {case}", 1e-7)


def test_conv1d_padding_spellings(rng):
    x = randn(rng, (2, 3, 17), np.float32)
    w = randn(rng, (4, 3, 4), np.float32)
    same = F.conv1d(x, w, padding="same")
    assert same.shape == (2, 4, 17)
    np.testing.assert_array_equal(same, F.conv1d(x, w, padding=(1, 2)))
    np.testing.assert_array_equal(F.conv1d(x, w, padding="valid"), F.conv1d(x, w, padding=0))
    np.testing.assert_array_equal(F.conv1d(x, w, padding=(3,)), F.conv1d(x, w, padding=3))
    np.testing.assert_array_equal(F.conv1d(x, w, stride=(2,), dilation=(2,)), F.conv1d(x, w, stride=2, dilation=2))


@pytest.mark.parametrize("case_id", range(20))
def test_conv1d_matches_pytorch(rng, case_id):
    torch = pytest.importorskip("torch")
    case = random_conv1d_case(rng)
    x_shape, w_shape, y_shape = _shapes(case)
    x, w, b, dy = (randn(rng, s, np.float32) for s in (x_shape, w_shape, (case["k"],), y_shape))
    xt = torch.from_numpy(x).requires_grad_()
    wt = torch.from_numpy(w).requires_grad_()
    bt = torch.from_numpy(b).requires_grad_()
    padded = torch.nn.functional.pad(xt, case["pads"])
    yt = torch.nn.functional.conv1d(padded, wt, bt, case["stride"], 0, case["dilation"], case["groups"])
    yt.backward(torch.from_numpy(dy))
    assert_close(F.conv1d(x, w, b, **_kwargs(case)), yt.detach().numpy(), f"vs torch {case}", 1e-5)
    grads = F.conv1d_backward(dy, x, w, **_kwargs(case))
    # db is one float32 sum per channel that may cancel to far below its terms (CI: 1.1e-5 with
    # cout = 1): PyTorch's float32 sum is the inexact side, so db is held to the float64 sum of dy
    db_exact = dy.astype(np.float64).sum(axis=(0, 2))
    for name, got, want in zip(("dx", "dw", "db"), grads, (xt.grad.numpy(), wt.grad.numpy(), db_exact)):
        assert_close(got, want, f"{name} vs torch {case}", 1e-5)


def test_conv1d_thread_counts_agree(rng):
    x = randn(rng, (3, 6, 41), np.float32)
    w = randn(rng, (8, 3, 5), np.float32)
    dy = randn(rng, (3, 8, 20), np.float32)
    kw = dict(stride=2, padding=(1, 2), groups=2)
    results = []
    for threads in (1, 2, 3):
        convcore.set_num_threads(threads)
        results.append((F.conv1d(x, w, **kw),) + F.conv1d_backward(dy, x, w, **kw))
    convcore.set_num_threads(1)
    for later in results[1:]:
        for a, b in zip(results[0], later):
            assert_close(a, b, "threads", 1e-6)
