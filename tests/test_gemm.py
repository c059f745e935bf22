"""The float32 GEMM core: every micro-kernel of the manifest (csrc/cpu/gemm/kernels.inc) through
the packed driver, against a float64 NumPy product (max-norm relative error < 1e-5) and, with
small-integer inputs, exactly against the portable gemm_generic.

The error is max|C - C_ref| / max(|alpha| |op(A)| |op(B)| + |beta C| + |bias|): a float32 sum of
products errs in proportion to the sum of the magnitudes of its terms, not to its result, so this
is the max-norm relative error with the scale that does not vanish when a dot product cancels
(a 1 x 1 result of a 300-term sum can be near zero while being exactly right to float32).

Kernels of an ISA this CPU lacks are skipped. Shapes sit around each kernel's tile (MR-1, MR,
MR+1, 2*MR+3 rows; likewise columns around NR) and k crosses the K blocking (KC = 256): 300 takes
two K blocks, which exercises beta on the first block only and bias/ReLU on the last only.
"""
import numpy as np
import pytest

from convcore import _cpu

from reference import rel_error as _plain_rel_error

TOL = 1e-5
UKERNELS = _cpu._gemm_ukernels()  # (name, isa, mr, nr, supported_on_this_cpu)
TRANS = [(False, False), (False, True), (True, False), (True, True)]
K_VALUES = [1, 7, 65, 300]


def _ids(uk):
    return uk[0]


def _require(uk):
    name, isa, _, _, supported = uk
    if not supported:
        pytest.skip(f"{name} needs {isa}, which this CPU does not support")


def _around(tile):
    return sorted({v for v in (1, tile - 1, tile, tile + 1, 2 * tile + 3) if v >= 1})


def _operands(rng, m, n, k, trans_a, trans_b, gen=None):
    gen = gen or (lambda shape: rng.standard_normal(shape).astype(np.float32))
    a = gen((k, m) if trans_a else (m, k))
    b = gen((n, k) if trans_b else (k, n))
    return a, b


class Ref(np.ndarray):
    """A float64 reference result carrying the magnitude scale of its terms."""


def _ref(a, b, trans_a, trans_b, alpha=1.0, beta=0.0, c=None, bias=None, relu=False):
    a64 = a.astype(np.float64)
    b64 = b.astype(np.float64)
    op_a, op_b = (a64.T if trans_a else a64), (b64.T if trans_b else b64)
    out = alpha * (op_a @ op_b)
    scale = abs(alpha) * (np.abs(op_a) @ np.abs(op_b))
    if beta != 0.0:
        out = out + beta * c.astype(np.float64)
        scale = scale + abs(beta) * np.abs(c.astype(np.float64))
    if bias is not None:
        out = out + bias.astype(np.float64)[:, None]
        scale = scale + np.abs(bias.astype(np.float64))[:, None]
    if relu:
        out = np.maximum(out, 0.0)
    ref = out.view(Ref)
    ref.scale = float(np.max(scale, initial=0.0))
    return ref


def rel_error(actual, expected):
    """Max-norm error over the terms' magnitude (see the module docstring); falls back to the
    plain max-norm relative error for expectations built without _ref."""
    scale = getattr(expected, "scale", None)
    expected = np.asarray(expected)
    if scale is None:
        return _plain_rel_error(actual, expected)
    actual = np.asarray(actual, dtype=np.float64)
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    if actual.size == 0:
        return 0.0
    if not np.array_equal(np.isnan(actual), np.isnan(expected)):
        return np.inf
    finite = ~np.isnan(expected)
    diff = np.max(np.abs(actual[finite] - expected[finite]), initial=0.0)
    return float(diff / scale) if scale > 0 else float(diff)


def _nan_c(m, n):
    return np.full((m, n), np.nan, dtype=np.float32)


def test_manifest_lists_every_isa_once_as_default():
    names = [uk[0] for uk in UKERNELS]
    assert len(names) == len(set(names))
    isas = {uk[1] for uk in UKERNELS}
    assert "scalar" in isas, "the manifest must keep a scalar fallback"
    best = _cpu.cpu_info()["best_isa"]
    order = ["scalar", "avx2", "avx512"]
    for name, isa, mr, nr, supported in UKERNELS:
        assert name == f"f32_gemm_{mr}x{nr}__{isa}", name
        assert supported == (order.index(isa) <= order.index(best))


@pytest.mark.parametrize("k", K_VALUES)
@pytest.mark.parametrize("trans_a,trans_b", TRANS)
@pytest.mark.parametrize("uk", UKERNELS, ids=_ids)
def test_shapes_around_tile(rng, uk, trans_a, trans_b, k):
    _require(uk)
    name, _, mr, nr, _ = uk
    for m in _around(mr):
        for n in _around(nr):
            a, b = _operands(rng, m, n, k, trans_a, trans_b)
            c = _cpu._gemm(a, b, _nan_c(m, n), trans_a, trans_b, 1.0, 0.0, ukernel=name, threads=1)
            err = rel_error(c, _ref(a, b, trans_a, trans_b))
            assert err < TOL, f"{name} m={m} n={n} k={k} trans=({trans_a},{trans_b}) err={err:.3g}"


@pytest.mark.parametrize("trans_a,trans_b", TRANS)
@pytest.mark.parametrize("uk", UKERNELS, ids=_ids)
def test_small_integers_exactly_equal_generic(rng, uk, trans_a, trans_b):
    _require(uk)
    name, _, mr, nr, _ = uk
    ints = lambda shape: rng.integers(-8, 9, size=shape).astype(np.float32)  # noqa: E731
    for m in _around(mr):
        for n in _around(nr):
            for k in K_VALUES:
                a, b = _operands(rng, m, n, k, trans_a, trans_b, ints)
                got = _cpu._gemm(a, b, None, trans_a, trans_b, ukernel=name, threads=1)
                want = _cpu._gemm_generic(a, b, trans_a, trans_b)
                np.testing.assert_array_equal(got, want, err_msg=f"{name} m={m} n={n} k={k}")
                np.testing.assert_array_equal(got, _ref(a, b, trans_a, trans_b))


ALPHA_BETA = [(1.0, 0.0), (1.0, 1.0), (-1.5, 0.25), (0.5, -2.0), (2.0, 1.0), (0.0, 0.5), (0.0, 0.0)]


@pytest.mark.parametrize("alpha,beta", ALPHA_BETA)
@pytest.mark.parametrize("uk", UKERNELS, ids=_ids)
def test_alpha_beta(rng, uk, alpha, beta):
    _require(uk)
    name, _, mr, nr, _ = uk
    for k in (0, 1, 65, 300):
        for trans_a, trans_b in TRANS:
            m, n = 2 * mr + 3, nr + 1
            a, b = _operands(rng, m, n, k, trans_a, trans_b)
            if alpha == 0.0:  # alpha == 0: A and B are not read (BLAS semantics)
                a[...] = np.nan
                b[...] = np.nan
            c0 = rng.standard_normal((m, n)).astype(np.float32)
            c_in = _nan_c(m, n) if beta == 0.0 else c0.copy()
            got = _cpu._gemm(a, b, c_in, trans_a, trans_b, alpha, beta, ukernel=name, threads=1)
            assert got is c_in or np.shares_memory(got, c_in)
            if alpha == 0.0:
                want = beta * c0.astype(np.float64) if beta != 0.0 else np.zeros((m, n))
            else:
                want = _ref(a, b, trans_a, trans_b, alpha, beta, c0)
            err = rel_error(got, want)
            assert err < TOL, f"{name} alpha={alpha} beta={beta} k={k} err={err:.3g}"


@pytest.mark.parametrize("trans_a,trans_b", TRANS)
@pytest.mark.parametrize("uk", UKERNELS, ids=_ids)
def test_leading_dimensions_larger_than_minimum(rng, uk, trans_a, trans_b):
    """a, b, c as views into wider arrays: lda/ldb/ldc > their row length. The columns of c's
    parent beyond the view are a sentinel that must survive (no write outside C)."""
    _require(uk)
    name, _, mr, nr, _ = uk
    m, n, k = 2 * mr + 3, 2 * nr + 3, 300
    a_full = rng.standard_normal((k + 5, m + 7) if trans_a else (m + 5, k + 7)).astype(np.float32)
    b_full = rng.standard_normal((n + 5, k + 9) if trans_b else (k + 5, n + 9)).astype(np.float32)
    a = a_full[:k, :m] if trans_a else a_full[:m, :k]
    b = b_full[:n, :k] if trans_b else b_full[:k, :n]
    for beta in (0.0, 0.75):
        c_full = np.full((m + 2, n + 11), 12345.0, dtype=np.float32)
        c0 = rng.standard_normal((m, n)).astype(np.float32)
        c = c_full[1:m + 1, 3:n + 3]
        c[...] = np.nan if beta == 0.0 else c0
        for threads in (1, 2):
            if threads == 2:
                c[...] = np.nan if beta == 0.0 else c0
            _cpu._gemm(a, b, c, trans_a, trans_b, 1.25, beta, ukernel=name, threads=threads)
            want = _ref(a, b, trans_a, trans_b, 1.25, beta, c0)
            assert rel_error(c, want) < TOL, f"{name} beta={beta} threads={threads}"
            outside = np.ones(c_full.shape, bool)
            outside[1:m + 1, 3:n + 3] = False
            assert np.all(c_full[outside] == 12345.0), f"{name} wrote outside C"


@pytest.mark.parametrize("relu", [False, True])
@pytest.mark.parametrize("uk", UKERNELS, ids=_ids)
def test_bias_relu_epilogue(rng, uk, relu):
    _require(uk)
    name, _, mr, nr, _ = uk
    for k in (1, 65, 300, 600):  # 300 and 600 cross K blocks: bias and ReLU must apply once, at the end
        for trans_a, trans_b in TRANS:
            for beta in (0.0, 0.5):
                m, n = 2 * mr + 3, 2 * nr + 3
                a, b = _operands(rng, m, n, k, trans_a, trans_b)
                bias = rng.standard_normal(m).astype(np.float32) * 4
                c0 = rng.standard_normal((m, n)).astype(np.float32)
                c_in = _nan_c(m, n) if beta == 0.0 else c0.copy()
                for threads in (1, 2):
                    got = _cpu._gemm(a, b, c_in.copy(), trans_a, trans_b, 0.5, beta, ukernel=name,
                                     threads=threads, bias=bias, relu=relu)
                    want = _ref(a, b, trans_a, trans_b, 0.5, beta, c0, bias, relu)
                    err = rel_error(got, want)
                    assert err < TOL, f"{name} k={k} beta={beta} relu={relu} err={err:.3g}"
                    if relu:
                        assert np.all(got >= 0)


def test_relu_keeps_nan():
    a = np.array([[np.nan, 1.0]], np.float32)
    b = np.ones((2, 3), np.float32)
    for name, *_rest, supported in UKERNELS:
        if supported:
            got = _cpu._gemm(a, b, None, ukernel=name, relu=True, bias=np.zeros(1, np.float32))
            assert np.all(np.isnan(got)), name


@pytest.mark.parametrize("uk", UKERNELS, ids=_ids)
def test_threads_give_identical_results(rng, uk):
    """Each element of C is computed by one thread in one fixed order, whatever the split."""
    _require(uk)
    name, _, mr, nr, _ = uk
    for m, n, k in [(131, 67, 300), (5, 1000, 257), (1000, 7, 300), (3 * mr + 1, 9 * nr + 5, 513)]:
        for trans_a, trans_b in TRANS:
            a, b = _operands(rng, m, n, k, trans_a, trans_b)
            bias = rng.standard_normal(m).astype(np.float32)
            results = [
                _cpu._gemm(a, b, _nan_c(m, n), trans_a, trans_b, 1.0, 0.0, ukernel=name,
                           threads=t, bias=bias, relu=True)
                for t in (1, 2, 3)
            ]
            want = _ref(a, b, trans_a, trans_b, bias=bias, relu=True)
            assert rel_error(results[0], want) < TOL, f"{name} {m}x{n}x{k}"
            for t, got in zip((2, 3), results[1:]):
                np.testing.assert_array_equal(got, results[0], err_msg=f"{name} threads={t} {m}x{n}x{k}")


@pytest.mark.parametrize("isa", ["scalar", "avx2", "avx512"])
def test_gram_equals_the_full_product_bit_for_bit(rng, isa):
    """_gram (a a^T with only the upper triangle multiplied, the rest mirrored) gives exactly
    what the GEMM gives for a @ a.T, for any thread count: odd sizes around the band split and
    the tiles, both sides of the size where it switches to the plain GEMM, K across blocks, and
    a row-strided view."""
    if not any(uk[1] == isa and uk[4] for uk in UKERNELS):
        pytest.skip(f"this CPU lacks {isa}")
    for m, k in [(1, 5), (7, 300), (95, 40), (127, 1), (128, 33), (131, 300), (300, 7), (517, 129)]:
        a = rng.standard_normal((m, k)).astype(np.float32)
        want = _cpu._gemm(a, a, trans_b=True, isa=isa)
        assert rel_error(want, a.astype(np.float64) @ a.T.astype(np.float64)) < TOL
        for threads in (1, 2, 3, 5):
            got = _cpu._gram(a, isa=isa, threads=threads)
            np.testing.assert_array_equal(got, want, err_msg=f"{isa} {m}x{k} threads={threads}")
    wide = rng.standard_normal((200, 70)).astype(np.float32)
    np.testing.assert_array_equal(_cpu._gram(wide[:, :50], isa=isa),
                                  _cpu._gemm(wide[:, :50], wide[:, :50], trans_b=True, isa=isa))


def test_gram_bad_arguments():
    with pytest.raises(TypeError, match="_gram: a must be float32"):
        _cpu._gram(np.ones((3, 3)))
    with pytest.raises(ValueError, match="a must be 2-D"):
        _cpu._gram(np.ones(3, np.float32))
    with pytest.raises(ValueError, match="threads must be >= 1"):
        _cpu._gram(np.ones((3, 3), np.float32), threads=0)
    assert _cpu._gram(np.ones((0, 4), np.float32)).shape == (0, 0)
    np.testing.assert_array_equal(_cpu._gram(np.ones((3, 0), np.float32)), np.zeros((3, 3)))


def test_default_dispatch_follows_active_isa(rng):
    a, b = _operands(rng, 37, 45, 70, False, False)
    want = _ref(a, b, False, False)
    before = _cpu.cpu_info()["isa"]
    try:
        for isa in ("scalar", "avx2", "avx512"):
            used = _cpu._set_isa(isa)
            got = _cpu._gemm(a, b)  # the kernel of the active ISA, convcore's thread count
            assert rel_error(got, want) < TOL, used
            np.testing.assert_array_equal(got, _cpu._gemm(a, b, isa=used, threads=1))
    finally:
        _cpu._set_isa(before)


def test_float64_goes_through_generic(rng):
    for trans_a, trans_b in TRANS:
        a = rng.standard_normal((70, 33) if trans_a else (33, 70))
        b = rng.standard_normal((41, 70) if trans_b else (70, 41))
        c0 = rng.standard_normal((33, 41))
        bias = rng.standard_normal(33)
        for threads in (1, 2):
            got = _cpu._gemm(a, b, c0.copy(), trans_a, trans_b, 0.5, 2.0, threads=threads,
                             bias=bias, relu=True)
            assert got.dtype == np.float64
            assert rel_error(got, _ref(a, b, trans_a, trans_b, 0.5, 2.0, c0, bias, True)) < 1e-12


def test_bad_arguments_raise_typed_errors():
    a = np.ones((3, 4), np.float32)
    b = np.ones((5, 6), np.float32)
    with pytest.raises(ValueError, match="op\\(a\\) is 3 x 4"):
        _cpu._gemm(a, b)
    b = np.ones((4, 6), np.float32)
    with pytest.raises(ValueError, match="beta"):
        _cpu._gemm(a, b, None, beta=1.0)
    with pytest.raises(ValueError, match="c must have shape"):
        _cpu._gemm(a, b, np.zeros((3, 5), np.float32))
    with pytest.raises(ValueError, match="no micro-kernel"):
        _cpu._gemm(a, b, ukernel="f32_gemm_1x1__nothing")
    with pytest.raises(ValueError, match="isa must be"):
        _cpu._gemm(a, b, isa="sse9")
    with pytest.raises(ValueError, match="bias"):
        _cpu._gemm(a, b, bias=np.zeros(4, np.float32))
    with pytest.raises(ValueError, match="threads"):
        _cpu._gemm(a, b, threads=0)
    with pytest.raises(ValueError, match="unit stride"):
        _cpu._gemm(a[:, ::2], np.ones((2, 6), np.float32))
    with pytest.raises(TypeError, match="float32 or float64"):
        _cpu._gemm(a.astype(np.int32), b)
    with pytest.raises(TypeError, match="dtype"):
        _cpu._gemm(a, b.astype(np.float64))
    for name, isa, *_rest, supported in UKERNELS:
        if not supported:
            with pytest.raises(ValueError, match="does not support"):
                _cpu._gemm(a, b, ukernel=name)


def test_fma_peak_is_positive():
    best = _cpu.cpu_info()["best_isa"]
    if best == "scalar":
        pytest.skip("no SIMD FMA on this CPU")
    assert _cpu._fma_peak(best, sample_ms=1.0, samples=1) > 0
