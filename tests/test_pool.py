"""The pooling family (max, average, adaptive; forward and backward) against the float64 NumPy
references in reference_pool.py, on the fast kernels (at the best ISA and on the portable path)
and on algo="reference"; plus finite differences, ties/NaN, PyTorch, and bad input."""
from dataclasses import dataclass

import numpy as np
import pytest

import convcore
import convcore.functional as F
from convcore import _cpu

import reference_pool as R
from cases import randn
from reference import assert_close, linear_numeric_grad, numeric_grad

N_CASES = 200
TOL = {np.float32: 1e-5, np.float64: 1e-12}
BEST_ISA = convcore.backends()["cpu"]["best_isa"]
# Every SIMD level this CPU has (avx512 and avx2 row kernels for float32), the portable path,
# and the reference.
SIMD_ISAS = [level for level in ("avx512", "avx2") if
             ["scalar", "avx2", "avx512"].index(level) <= ["scalar", "avx2", "avx512"].index(BEST_ISA)]
PATHS = [("auto", level) for level in SIMD_ISAS] + [("auto", "scalar"), ("reference", BEST_ISA)]


@pytest.fixture
def isa():
    """Yields a setter for the kernel ISA and restores the one in use before (CONVCORE_ISA may
    have lowered it below the best)."""
    previous = _cpu.cpu_info()["isa"]
    yield _cpu._set_isa
    _cpu._set_isa(previous)


@dataclass
class PoolCase:
    n: int
    c: int
    h: int
    w: int
    kernel: tuple
    stride: tuple
    padding: tuple
    dilation: tuple
    ceil_mode: bool
    count_include_pad: bool = True
    divisor_override: object = None

    @property
    def x_shape(self):
        return (self.n, self.c, self.h, self.w)

    def out_hw(self):
        return tuple(R.pool_out_extent(size, k, s, p, d, self.ceil_mode) for size, k, s, p, d in
                     zip((self.h, self.w), self.kernel, self.stride, self.padding, self.dilation))

    def valid(self):
        for size, k, s, p, d in zip((self.h, self.w), self.kernel, self.stride, self.padding,
                                    self.dilation):
            span = d * (k - 1) + 1
            if 2 * p > span or size + 2 * p < span:
                return False
            if R.pool_out_extent(size, k, s, p, d, self.ceil_mode) < 1:
                return False
            if R.has_empty_window(size, k, s, p, d, self.ceil_mode):
                return False
        return True


def random_pool_case(rng, dilation=True):
    """Odd sizes, stride > kernel, padding up to half the effective kernel, dilation, ceil_mode,
    batch 1, 1x1 images, and widths long enough for several 16-wide SIMD blocks plus a tail."""
    while True:
        kernel = tuple(int(v) for v in rng.integers(1, 6, size=2))
        stride = tuple(int(v) for v in rng.integers(1, 5, size=2))
        dil = tuple(int(v) for v in rng.choice([1, 1, 2, 3], size=2)) if dilation else (1, 1)
        spans = [d * (k - 1) + 1 for k, d in zip(kernel, dil)]
        padding = tuple(int(rng.integers(0, s // 2 + 1)) for s in spans)
        h = int(rng.integers(max(1, spans[0] - 2 * padding[0]), spans[0] + 3 * stride[0] + 6))
        if rng.random() < 0.3:
            w = int(rng.integers(16, 90))
        else:
            w = int(rng.integers(max(1, spans[1] - 2 * padding[1]), spans[1] + 3 * stride[1] + 6))
        if rng.random() < 0.08:
            h = w = 1
            kernel, padding, dil = (1, 1), (0, 0), (1, 1)
        n = int(rng.choice([1, 1, 2, 3]))
        c = int(rng.integers(1, 5))
        case = PoolCase(n, c, h, w, kernel, stride, padding, dil, bool(rng.random() < 0.5),
                        bool(rng.random() < 0.5))
        if rng.random() < 0.15:
            case.divisor_override = int(rng.integers(1, 10))
        if case.valid():
            return case


def _max_kwargs(case):
    return dict(kernel_size=case.kernel, stride=case.stride, padding=case.padding,
                dilation=case.dilation, ceil_mode=case.ceil_mode)


def _avg_kwargs(case):
    return dict(kernel_size=case.kernel, stride=case.stride, padding=case.padding,
                ceil_mode=case.ceil_mode, count_include_pad=case.count_include_pad,
                divisor_override=case.divisor_override)


# ---- max pooling -----------------------------------------------------------------------------

def _check_max(rng, case, dtype, isa):
    x = randn(rng, case.x_shape, dtype)
    kw = _max_kwargs(case)
    y_ref, idx_ref = R.max_pool2d(x, case.kernel, case.stride, case.padding, case.dilation,
                                  case.ceil_mode)
    dy = randn(rng, y_ref.shape, dtype)
    dx_ref = R.scatter_to_argmax(dy, idx_ref, x.shape)
    for algo, level in PATHS:
        isa(level)
        what = f"algo={algo} isa={level} {case}"
        y, idx = F.max_pool2d(x, return_indices=True, algo=algo, **kw)
        assert y.dtype == dtype and idx.dtype == np.int64
        # max pooling only selects: values and indices must be exact
        np.testing.assert_array_equal(y, y_ref.astype(dtype), err_msg=what)
        np.testing.assert_array_equal(idx, idx_ref, err_msg=what)
        np.testing.assert_array_equal(F.max_pool2d(x, algo=algo, **kw), y, err_msg=what)
        assert_close(F.max_pool2d_backward(dy, x, indices=idx, algo=algo, **kw), dx_ref,
                     f"dx (indices) {what}", TOL[dtype])
        assert_close(F.max_pool2d_backward(dy, x, algo=algo, **kw), dx_ref,
                     f"dx (recomputed) {what}", TOL[dtype])


@pytest.mark.parametrize("case_id", range(N_CASES))
def test_max_pool2d_random(rng, isa, case_id):
    _check_max(rng, random_pool_case(rng), np.float32, isa)


@pytest.mark.parametrize("case_id", range(30))
def test_max_pool2d_random_float64(rng, isa, case_id):
    _check_max(rng, random_pool_case(rng), np.float64, isa)


# ---- average pooling -------------------------------------------------------------------------

def _check_avg(rng, case, dtype, isa):
    x = randn(rng, case.x_shape, dtype)
    args = (case.kernel, case.stride, case.padding, case.ceil_mode, case.count_include_pad,
            case.divisor_override)
    y_ref = R.avg_pool2d(x, *args)
    dy = randn(rng, y_ref.shape, dtype)
    dx_ref = R.avg_pool2d_backward(dy, x, *args)
    for algo, level in PATHS:
        isa(level)
        what = f"algo={algo} isa={level} {case}"
        y = F.avg_pool2d(x, algo=algo, **_avg_kwargs(case))
        assert y.dtype == dtype
        assert_close(y, y_ref, what, TOL[dtype])
        assert_close(F.avg_pool2d_backward(dy, x, algo=algo, **_avg_kwargs(case)), dx_ref,
                     f"dx {what}", TOL[dtype])


@pytest.mark.parametrize("case_id", range(N_CASES))
def test_avg_pool2d_random(rng, isa, case_id):
    _check_avg(rng, random_pool_case(rng, dilation=False), np.float32, isa)


@pytest.mark.parametrize("case_id", range(30))
def test_avg_pool2d_random_float64(rng, isa, case_id):
    _check_avg(rng, random_pool_case(rng, dilation=False), np.float64, isa)


# ---- adaptive pooling ------------------------------------------------------------------------

def random_adaptive_case(rng):
    n, c = int(rng.choice([1, 1, 2, 3])), int(rng.integers(1, 5))
    h, w = (int(v) for v in rng.integers(1, 24, size=2))
    if rng.random() < 0.1:
        h = w = 1
    # outputs smaller, equal and larger than the input (windows then overlap or repeat)
    out = tuple(int(rng.integers(1, 2 * s + 2)) for s in (h, w))
    return (n, c, h, w), out


def _check_adaptive_avg(rng, dtype):
    shape, out = random_adaptive_case(rng)
    x = randn(rng, shape, dtype)
    y_ref = R.adaptive_avg_pool2d(x, out)
    dy = randn(rng, y_ref.shape, dtype)
    dx_ref = R.adaptive_avg_pool2d_backward(dy, shape)
    for algo in ("auto", "reference"):
        what = f"algo={algo} x={shape} out={out}"
        y = F.adaptive_avg_pool2d(x, out, algo=algo)
        assert y.dtype == dtype
        assert_close(y, y_ref, what, TOL[dtype])
        assert_close(F.adaptive_avg_pool2d_backward(dy, x, algo=algo), dx_ref, f"dx {what}", TOL[dtype])


@pytest.mark.parametrize("case_id", range(N_CASES))
def test_adaptive_avg_pool2d_random(rng, case_id):
    _check_adaptive_avg(rng, np.float32)


@pytest.mark.parametrize("case_id", range(30))
def test_adaptive_avg_pool2d_random_float64(rng, case_id):
    _check_adaptive_avg(rng, np.float64)


@pytest.mark.parametrize("case_id", range(60))
def test_adaptive_max_pool2d_random(rng, case_id):
    shape, out = random_adaptive_case(rng)
    x = randn(rng, shape, np.float32)
    y_ref, idx_ref = R.adaptive_max_pool2d(x, out)
    dy = randn(rng, y_ref.shape, np.float32)
    dx_ref = R.scatter_to_argmax(dy, idx_ref, shape)
    for algo in ("auto", "reference"):
        what = f"algo={algo} x={shape} out={out}"
        y, idx = F.adaptive_max_pool2d(x, out, return_indices=True, algo=algo)
        np.testing.assert_array_equal(y, y_ref.astype(np.float32), err_msg=what)
        np.testing.assert_array_equal(idx, idx_ref, err_msg=what)
        assert_close(F.adaptive_max_pool2d_backward(dy, x, indices=idx, algo=algo), dx_ref, what, 1e-5)
        assert_close(F.adaptive_max_pool2d_backward(dy, x, algo=algo), dx_ref, what, 1e-5)


def test_adaptive_global_pool_is_the_mean(rng):
    x = randn(rng, (2, 5, 56, 57), np.float32)
    assert_close(F.adaptive_avg_pool2d(x, 1), x.astype(np.float64).mean(axis=(2, 3), keepdims=True),
                 "global average", 1e-6)
    assert F.adaptive_avg_pool2d(x, (None, 3)).shape == (2, 5, 56, 3)


# ---- SIMD tiles, threads, determinism --------------------------------------------------------

@pytest.mark.parametrize("out_w", [1, 15, 16, 17, 31, 32, 33, 47])
@pytest.mark.parametrize("kernel,stride,padding", [(2, 2, 0), (3, 2, 1), (3, 1, 1), (3, 3, 0), (2, 1, 0)])
def test_simd_tiles_exact(rng, isa, out_w, kernel, stride, padding):
    """Output widths around the 16-lane vector; small integers make the float32 sums exact."""
    w = (out_w - 1) * stride + kernel - 2 * padding
    x = rng.integers(-8, 9, size=(2, 3, 7, w)).astype(np.float32)
    kw = dict(kernel_size=kernel, stride=stride, padding=padding)
    y_ref, idx_ref = R.max_pool2d(x, (kernel,) * 2, (stride,) * 2, (padding,) * 2)
    avg_ref = R.avg_pool2d(x, (kernel,) * 2, (stride,) * 2, (padding,) * 2)
    for level in SIMD_ISAS + ["scalar"]:
        isa(level)
        assert_close(F.max_pool2d(x, **kw), y_ref, f"max values {level}", 0.0)
        y, idx = F.max_pool2d(x, return_indices=True, **kw)
        assert y.shape[3] == out_w
        np.testing.assert_array_equal(y, y_ref)
        np.testing.assert_array_equal(idx, idx_ref)
        assert_close(F.avg_pool2d(x, **kw), avg_ref, f"avg {level}", 1e-6)


def test_results_do_not_depend_on_thread_count(rng):
    x = randn(rng, (2, 3, 33, 35), np.float32)
    dy = randn(rng, (2, 3, 17, 18), np.float32)
    kw = dict(kernel_size=3, stride=2, padding=1)
    old = convcore.get_num_threads()
    results = []
    try:
        for threads in (1, 2, 3):
            convcore.set_num_threads(threads)
            results.append((F.max_pool2d(x, **kw), F.max_pool2d_backward(dy, x, **kw),
                            F.avg_pool2d(x, **kw), F.avg_pool2d_backward(dy, x, **kw)))
    finally:
        convcore.set_num_threads(old)
    for other in results[1:]:
        for a, b in zip(results[0], other):
            np.testing.assert_array_equal(a, b)


def test_empty_batch():
    x = np.zeros((0, 3, 6, 6), np.float32)
    y, idx = F.max_pool2d(x, 2, return_indices=True)
    assert y.shape == idx.shape == (0, 3, 3, 3)
    assert F.max_pool2d_backward(np.zeros((0, 3, 3, 3), np.float32), x, 2).shape == x.shape
    assert F.avg_pool2d(x, 3, 1, 1).shape == (0, 3, 6, 6)
    assert F.adaptive_avg_pool2d_backward(np.zeros((0, 3, 2, 2), np.float32), x).shape == x.shape


def test_noncontiguous_input(rng):
    x = randn(rng, (2, 3, 20, 22), np.float32)[:, :, ::2, 1::2]
    y_ref, _ = R.max_pool2d(x, (2, 2), (2, 2), (0, 0))
    np.testing.assert_array_equal(F.max_pool2d(x, 2), y_ref.astype(np.float32))


# ---- gradients -------------------------------------------------------------------------------

@pytest.mark.parametrize("case_id", range(8))
def test_avg_pool2d_finite_differences(rng, case_id):
    case = random_pool_case(rng, dilation=False)
    case.n, case.c = 1, 2
    x = randn(rng, case.x_shape, np.float64)
    dy = randn(rng, (1, 2) + case.out_hw(), np.float64)
    for algo in ("auto", "reference"):
        dx = F.avg_pool2d_backward(dy, x, algo=algo, **_avg_kwargs(case))
        numeric = linear_numeric_grad(lambda: float(np.sum(F.avg_pool2d(x, **_avg_kwargs(case)) * dy)), x)
        assert_close(dx, numeric, f"finite differences {algo} {case}", 1e-7)


@pytest.mark.parametrize("case_id", range(8))
def test_adaptive_avg_pool2d_finite_differences(rng, case_id):
    shape, out = random_adaptive_case(rng)
    shape = (1, 2) + shape[2:]
    x = randn(rng, shape, np.float64)
    dy = randn(rng, (1, 2) + out, np.float64)
    dx = F.adaptive_avg_pool2d_backward(dy, x)
    numeric = linear_numeric_grad(lambda: float(np.sum(F.adaptive_avg_pool2d(x, out) * dy)), x)
    assert_close(dx, numeric, f"finite differences x={shape} out={out}", 1e-7)


@pytest.mark.parametrize("case_id", range(6))
def test_max_pool2d_finite_differences_distinct_values(rng, case_id):
    """With well-separated values a tiny step never changes an argmax, so the gradient is the
    derivative of the routing."""
    case = random_pool_case(rng)
    case.n, case.c = 1, 2
    x = rng.permutation(np.prod(case.x_shape)).reshape(case.x_shape) * 0.01
    dy = randn(rng, (1, 2) + case.out_hw(), np.float64)
    dx = F.max_pool2d_backward(dy, x, **_max_kwargs(case))
    numeric = numeric_grad(lambda: float(np.sum(F.max_pool2d(x, **_max_kwargs(case)) * dy)), x)
    assert_close(dx, numeric, f"finite differences {case}", 1e-7)


def test_max_pool2d_routing_explicit(isa):
    # the centre is the maximum of all four 2x2 windows (stride 1): it collects all of dy
    x = np.array([[1, 2, 3], [4, 9, 5], [6, 7, 8]], np.float32)[None, None]
    dy = np.array([[1, 10], [100, 1000]], np.float32)[None, None]
    for level in SIMD_ISAS + ["scalar"]:
        isa(level)
        y, idx = F.max_pool2d(x, 2, stride=1, return_indices=True)
        np.testing.assert_array_equal(y[0, 0], [[9, 9], [9, 9]])
        np.testing.assert_array_equal(idx[0, 0], [[4, 4], [4, 4]])
        dx = F.max_pool2d_backward(dy, x, 2, stride=1)
        expected = np.zeros((3, 3), np.float32)
        expected[1, 1] = 1111
        np.testing.assert_array_equal(dx[0, 0], expected)
        # non-overlapping windows: exactly one element per window receives its dy
        x4 = np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4)[:, :, ::-1, :].copy()
        dx4 = F.max_pool2d_backward(dy, x4, 2)
        assert np.count_nonzero(dx4) == 4
        np.testing.assert_array_equal(dx4[0, 0, [0, 0, 2, 2], [1, 3, 1, 3]], [1, 10, 100, 1000])


# ---- ties, -inf and NaN ----------------------------------------------------------------------

def test_ties_take_the_first_maximum(isa):
    x = np.zeros((1, 1, 5, 7), np.float32)
    for level in SIMD_ISAS + ["scalar"]:
        isa(level)
        for kw in (dict(kernel_size=3, stride=2, padding=1), dict(kernel_size=2),
                   dict(kernel_size=3, stride=1, dilation=2, padding=2, ceil_mode=True)):
            y, idx = F.max_pool2d(x, return_indices=True, **kw)
            _, idx_ref = R.max_pool2d(x, *(_norm(kw)))
            np.testing.assert_array_equal(idx, idx_ref, err_msg=str(kw))
            assert np.all(y == 0)
    # first in (ky, kx) order, not the first in memory along one row only
    x = np.array([[0, 5], [5, 5]], np.float32)[None, None]
    assert F.max_pool2d(x, 2, return_indices=True)[1].item() == 1


def _norm(kw):
    k = kw["kernel_size"]
    s = kw.get("stride", k)
    return ((k, k), (s, s), (kw.get("padding", 0),) * 2, (kw.get("dilation", 1),) * 2,
            kw.get("ceil_mode", False))


def test_all_minus_inf_gives_the_first_valid_position(isa):
    x = np.full((1, 2, 6, 40), -np.inf, np.float32)
    for level in SIMD_ISAS + ["scalar"]:
        isa(level)
        y, idx = F.max_pool2d(x, 3, stride=2, padding=1, return_indices=True)
        _, idx_ref = R.max_pool2d(x, (3, 3), (2, 2), (1, 1))
        assert np.all(y == -np.inf)
        np.testing.assert_array_equal(idx, idx_ref)


def test_nan_propagates(rng, isa):
    x = randn(rng, (2, 3, 9, 37), np.float32)
    x[0, 0, 5, 5] = np.nan  # inside four 3x3 stride-2 windows
    x[1, 2, 0, 0] = np.nan
    x[1, 2, 0, 1] = np.nan  # two NaNs in one window: PyTorch reports the last
    x[0, 1, 8, 36] = np.nan
    y_ref, idx_ref = R.max_pool2d(x, (3, 3), (2, 2), (1, 1))
    for level in SIMD_ISAS + ["scalar"]:
        isa(level)
        for algo in ("auto", "reference"):
            y, idx = F.max_pool2d(x, 3, stride=2, padding=1, return_indices=True, algo=algo)
            np.testing.assert_array_equal(np.isnan(y), np.isnan(y_ref))
            values_only = F.max_pool2d(x, 3, stride=2, padding=1, algo=algo)  # separable on SIMD
            np.testing.assert_array_equal(values_only, y)
            assert np.isnan(y[0, 0, 2:4, 2:4]).all() and np.isnan(y[0, 1, 4, 18])
            np.testing.assert_array_equal(np.nan_to_num(y), np.nan_to_num(y_ref.astype(np.float32)))
            np.testing.assert_array_equal(idx, idx_ref)
            assert idx[1, 2, 0, 0] == 1
            dx = F.max_pool2d_backward(np.ones_like(y), x, 3, 2, 1, algo=algo)
            assert dx[0, 0, 5, 5] == 4  # the NaN is the argmax of the four windows around it
    assert np.isnan(F.avg_pool2d(x, 3, 2, 1)[0, 0, 2, 2])
    assert np.isnan(F.adaptive_max_pool2d(x, 2)[0, 0, 1, 0])


def test_a_nan_anywhere_reaches_the_values_only_max(rng, isa):
    # The 2- and 3-wide stride-2 windows take a fast max that drops NaNs, and redo a row with
    # PyTorch's rule when a probe sees one: a NaN at each position in turn (both parities of
    # column, the tail outputs, the first and last rows) must still come out, and +inf beside
    # -inf (which trips the probe without a NaN) must give plain maxima.
    base = randn(rng, (1, 1, 7, 37), np.float32)
    for level in SIMD_ISAS + ["scalar"]:
        isa(level)
        for k, p in ((2, 0), (3, 0), (3, 1)):
            for at in range(base.size):
                x = base.copy()
                x.flat[at] = np.nan
                y_ref, _ = R.max_pool2d(x, (k, k), (2, 2), (p, p))
                y = F.max_pool2d(x, k, 2, p)
                np.testing.assert_array_equal(np.isnan(y), np.isnan(y_ref), err_msg=f"{level} k{k} p{p} at {at}")
                np.testing.assert_array_equal(np.nan_to_num(y), np.nan_to_num(y_ref.astype(np.float32)))
            x = base.copy()
            x[0, 0, 3, 4], x[0, 0, 3, 30] = np.inf, -np.inf
            y_ref, _ = R.max_pool2d(x, (k, k), (2, 2), (p, p))
            np.testing.assert_array_equal(F.max_pool2d(x, k, 2, p), y_ref.astype(np.float32))


# ---- PyTorch ---------------------------------------------------------------------------------

@pytest.mark.parametrize("case_id", range(40))
def test_matches_pytorch(rng, case_id):
    torch = pytest.importorskip("torch")
    tf = torch.nn.functional
    case = random_pool_case(rng)
    # PyTorch bounds padding by half the kernel size, not of the dilated kernel as we do
    while any(2 * p > k for p, k in zip(case.padding, case.kernel)):
        case = random_pool_case(rng)
    x = randn(rng, case.x_shape, np.float32)
    if case_id % 4 == 0:  # ties and NaN too
        x = np.round(x)
        x.flat[rng.integers(0, x.size, size=2)] = np.nan
    xt = torch.from_numpy(x).requires_grad_(True)
    yt, it = tf.max_pool2d(xt, case.kernel, case.stride, case.padding, case.dilation,
                           ceil_mode=case.ceil_mode, return_indices=True)
    dy = randn(rng, tuple(yt.shape), np.float32)
    yt.backward(torch.from_numpy(dy))
    y, idx = F.max_pool2d(x, return_indices=True, **_max_kwargs(case))
    np.testing.assert_array_equal(y, yt.detach().numpy(), err_msg=str(case))
    np.testing.assert_array_equal(idx, it.numpy(), err_msg=str(case))
    assert_close(F.max_pool2d_backward(dy, x, indices=idx, **_max_kwargs(case)), xt.grad.numpy(),
                 f"max dx vs torch {case}", 1e-6)

    case = random_pool_case(rng, dilation=False)
    x = randn(rng, case.x_shape, np.float32)
    xt = torch.from_numpy(x).requires_grad_(True)
    yt = tf.avg_pool2d(xt, case.kernel, case.stride, case.padding, case.ceil_mode,
                       case.count_include_pad, case.divisor_override)
    dy = randn(rng, tuple(yt.shape), np.float32)
    yt.backward(torch.from_numpy(dy))
    kw = _avg_kwargs(case)
    assert_close(F.avg_pool2d(x, **kw), yt.detach().numpy(), f"avg vs torch {case}", 1e-5)
    assert_close(F.avg_pool2d_backward(dy, x, **kw), xt.grad.numpy(), f"avg dx vs torch {case}", 1e-5)

    shape, out = random_adaptive_case(rng)
    x = randn(rng, shape, np.float32)
    xt = torch.from_numpy(x).requires_grad_(True)
    yt = tf.adaptive_avg_pool2d(xt, out)
    dy = randn(rng, tuple(yt.shape), np.float32)
    yt.backward(torch.from_numpy(dy))
    assert_close(F.adaptive_avg_pool2d(x, out), yt.detach().numpy(), f"adaptive vs torch {shape} {out}", 1e-5)
    assert_close(F.adaptive_avg_pool2d_backward(dy, x), xt.grad.numpy(), f"adaptive dx vs torch", 1e-5)
    ym, im = tf.adaptive_max_pool2d(torch.from_numpy(x), out, return_indices=True)
    y, idx = F.adaptive_max_pool2d(x, out, return_indices=True)
    np.testing.assert_array_equal(y, ym.numpy())
    np.testing.assert_array_equal(idx, im.numpy())


# ---- bad input -------------------------------------------------------------------------------

X = np.zeros((2, 3, 8, 8), np.float32)


@pytest.mark.parametrize("call,exc,fragment", [
    (lambda: F.max_pool2d(np.zeros((3, 8, 8), np.float32), 2), ValueError, "x must be 4-D"),
    (lambda: F.avg_pool2d(np.zeros((2, 3, 8, 8), np.int32), 2), TypeError, "float32 or float64"),
    (lambda: F.max_pool2d(X, 0), ValueError, "kernel_size must be positive"),
    (lambda: F.avg_pool2d(X, (2, -1)), ValueError, "kernel_size must be positive"),
    (lambda: F.max_pool2d(X, 2, stride=0), ValueError, "stride must be positive"),
    (lambda: F.avg_pool2d(X, 2, stride=-2), ValueError, "stride must be positive"),
    (lambda: F.max_pool2d(X, 2, dilation=0), ValueError, "dilation must be positive"),
    (lambda: F.max_pool2d(X, 3, padding=2), ValueError, "at most half of the effective kernel"),
    (lambda: F.avg_pool2d(X, 2, padding=-1), ValueError, "padding must be non-negative"),
    (lambda: F.max_pool2d(X, 9), ValueError, "smaller than the dilated kernel"),
    (lambda: F.avg_pool2d(X, (3, 11), padding=1), ValueError, "smaller than the dilated kernel"),
    (lambda: F.max_pool2d(X[:, :, :2, :2], 2, stride=1, padding=2, dilation=3), ValueError,
     "output row 1 would pool over padding only"),
    (lambda: F.max_pool2d(X, 2.5), TypeError, "kernel_size must be an int"),
    (lambda: F.max_pool2d(X, (2, 2, 2)), ValueError, "kernel_size must be an int or a pair"),
    (lambda: F.max_pool2d(X, 2, ceil_mode="yes"), TypeError, "ceil_mode must be a bool"),
    (lambda: F.avg_pool2d(X, 2, divisor_override=0), ValueError, "divisor_override must be a positive"),
    (lambda: F.avg_pool2d(X, 2, divisor_override=1.5), TypeError, "divisor_override must be an int"),
    (lambda: F.max_pool2d(X, 2, algo="fast"), ValueError, "algo must be 'auto' or 'reference'"),
    (lambda: F.max_pool2d_backward(np.zeros((2, 3, 3, 4), np.float32), X, 2), ValueError,
     "dy has shape (2, 3, 3, 4) but the forward output has shape (2, 3, 4, 4)"),
    (lambda: F.avg_pool2d_backward(np.zeros((2, 3, 4), np.float32), X, 2), ValueError, "dy must be 4-D"),
    (lambda: F.avg_pool2d_backward(np.zeros((2, 3, 4, 4), np.float64), X, 2), TypeError, "mixed dtypes"),
    (lambda: F.max_pool2d_backward(np.zeros((2, 3, 4, 4), np.float32), X, 2,
                                   indices=np.zeros((2, 3, 4, 4), np.int32)), TypeError, "indices must be int64"),
    (lambda: F.max_pool2d_backward(np.zeros((2, 3, 4, 4), np.float32), X, 2,
                                   indices=np.zeros((2, 3, 4, 3), np.int64)), ValueError,
     "indices has shape (2, 3, 4, 3)"),
    (lambda: F.max_pool2d_backward(np.zeros((2, 3, 4, 4), np.float32), X, 2,
                                   indices=np.full((2, 3, 4, 4), 64, np.int64)), ValueError,
     "indices must lie in [0, H*W) = [0, 64), got 64"),
    (lambda: F.max_pool2d_backward(np.zeros((2, 3, 4, 4), np.float32), X, 2,
                                   indices=np.full((2, 3, 4, 4), -1, np.int64)), ValueError, "got -1"),
    (lambda: F.adaptive_avg_pool2d(X, 0), ValueError, "output_size must be positive"),
    (lambda: F.adaptive_avg_pool2d(X, (2, 2, 2)), ValueError, "output_size must be an int or a pair"),
    (lambda: F.adaptive_avg_pool2d_backward(np.zeros((2, 4, 2, 2), np.float32), X), ValueError,
     "N and C must match"),
    (lambda: F.adaptive_max_pool2d_backward(np.zeros((2, 3, 2, 2), np.float32), X,
                                            indices=np.zeros((2, 3, 2, 2), np.float32)), TypeError,
     "indices must be int64"),
    (lambda: F.max_pool2d(np.zeros((2, 0, 8, 8), np.float32), 2), ValueError, "non-empty channel"),
])
def test_bad_input(call, exc, fragment):
    with pytest.raises(exc) as info:
        call()
    assert fragment in str(info.value), str(info.value)


def test_pooling_is_exported():
    for name in ("max_pool2d", "max_pool2d_backward", "avg_pool2d", "avg_pool2d_backward",
                 "adaptive_avg_pool2d", "adaptive_avg_pool2d_backward"):
        assert name in F.__all__ and callable(getattr(F, name))
