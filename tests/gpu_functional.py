"""convcore.functional run on GPU arrays, for reusing the CPU tests' bodies on the CUDA backend.

`GpuFunctional(to_device, to_host, device_type)` behaves like convcore.functional, except that
every NumPy argument is moved to the device first and every result must come back as
`device_type` (the caller's array type) before it is brought to the host, so the CPU tests'
assertions apply unchanged. test_cuda.py uses it with CuPy and torch on a real GPU;
test_cuda_emulated.py with host arrays dressed as device arrays on the CPU emulator.
"""
import numpy as np

import convcore.functional as F

HOST_ONLY = {"select_algo", "rank1_factor"}  # functional helpers that never touch the GPU


class GpuFunctional:
    def __init__(self, to_device, to_host, device_type):
        self.to_device, self.to_host, self.device_type = to_device, to_host, device_type
        self.calls = 0

    def _in(self, value):
        return self.to_device(value) if isinstance(value, np.ndarray) else value

    def _out(self, value):
        if value is None:
            return None
        if isinstance(value, tuple):
            return tuple(self._out(v) for v in value)
        assert isinstance(value, self.device_type), \
            f"a GPU call returned {type(value).__name__}, not {self.device_type.__name__}"
        return self.to_host(value)

    def __getattr__(self, name):
        fn = getattr(F, name)
        if name in HOST_ONLY or not callable(fn):
            return fn

        def on_gpu(*args, **kwargs):
            self.calls += 1
            result = fn(*(self._in(a) for a in args), **{k: self._in(v) for k, v in kwargs.items()})
            return self._out(result)
        return on_gpu


def _no_isa(level):
    """The CPU pool tests set an ISA per path; a GPU has one path."""


def _max_pool_hand_made_indices(rng, pool):
    """Indices anywhere in the plane (not each window's own argmax): the per-plane scatter path."""
    import reference_pool as R
    from cases import randn
    from reference import assert_close

    case = pool.random_pool_case(rng)
    x = randn(rng, case.x_shape, np.float32)
    kw = pool._max_kwargs(case)
    y = pool.F.max_pool2d(x, **kw)
    idx = rng.integers(0, case.h * case.w, size=y.shape).astype(np.int64)
    dy = randn(rng, y.shape, np.float32)
    got = pool.F.max_pool2d_backward(dy, x, indices=idx, **kw)
    assert_close(got, R.scatter_to_argmax(dy, idx, x.shape), f"hand-made indices {case}", 1e-5)


def op_runners():
    """name -> (the CPU test module whose F is swapped, run(rng, case_id)): one random case of
    an op family, forward and backward, checked against the float64 references by that module's
    own case runner."""
    import test_conv1d as conv1d
    import test_conv2d as conv2d
    import test_conv_transpose as transpose
    import test_im2col as im2col
    import test_local as local
    import test_pool as pool
    import test_separable as separable
    from cases import random_conv_case

    f32, f64 = np.float32, np.float64
    return {
        "conv2d": (conv2d, lambda rng, i: conv2d._run_case(rng, random_conv_case(rng), f32)),
        "conv2d_float64": (conv2d, lambda rng, i: conv2d._run_case(rng, random_conv_case(rng), f64)),
        "conv2d_depthwise": (conv2d, lambda rng, i: conv2d._run_case(
            rng, random_conv_case(rng, depthwise=True), f32)),
        "conv2d_exact_small_integers": (
            conv2d, lambda rng, i: conv2d.test_algorithms_agree_exactly_on_small_integers(rng, i)),
        "conv2d_finite_differences": (
            conv2d, lambda rng, i: conv2d.test_conv2d_finite_differences_float64(rng, i)),
        "conv1d": (conv1d, lambda rng, i: conv1d._run(rng, conv1d.random_conv1d_case(rng), f32)),
        "conv1d_float64": (conv1d, lambda rng, i: conv1d._run(rng, conv1d.random_conv1d_case(rng), f64)),
        "conv_transpose2d": (transpose, lambda rng, i: transpose._run(
            rng, transpose.random_transpose_case(rng), f32)),
        "conv_transpose2d_float64": (transpose, lambda rng, i: transpose._run(
            rng, transpose.random_transpose_case(rng), f64)),
        "conv_transpose2d_exact_small_integers": (
            transpose,
            lambda rng, i: transpose.test_conv_transpose2d_algorithms_agree_exactly_on_small_integers(rng, i)),
        "im2col_col2im": (im2col, lambda rng, i: im2col._run(rng, im2col.random_im2col_case(rng), f32)),
        "im2col_col2im_float64": (im2col, lambda rng, i: im2col._run(
            rng, im2col.random_im2col_case(rng), f64)),
        "sepconv2d_1d": (separable, lambda rng, i: separable._run_sep1d(
            rng, separable.random_sep1d_case(rng), f32)),
        "sepconv2d_1d_float64": (separable, lambda rng, i: separable._run_sep1d(
            rng, separable.random_sep1d_case(rng), f64)),
        "sepconv2d_1d_need_subsets": (separable, lambda rng, i: separable.test_sepconv2d_1d_need_subsets(rng)),
        "separable_conv2d": (separable, lambda rng, i: separable._run_separable(rng, f32)),
        "separable_conv2d_float64": (separable, lambda rng, i: separable._run_separable(rng, f64)),
        "max_pool2d": (pool, lambda rng, i: pool._check_max(rng, pool.random_pool_case(rng), f32, _no_isa)),
        "max_pool2d_float64": (pool, lambda rng, i: pool._check_max(
            rng, pool.random_pool_case(rng), f64, _no_isa)),
        "avg_pool2d": (pool, lambda rng, i: pool._check_avg(
            rng, pool.random_pool_case(rng, dilation=False), f32, _no_isa)),
        "avg_pool2d_float64": (pool, lambda rng, i: pool._check_avg(
            rng, pool.random_pool_case(rng, dilation=False), f64, _no_isa)),
        "adaptive_avg_pool2d": (pool, lambda rng, i: pool._check_adaptive_avg(rng, f32)),
        "adaptive_avg_pool2d_float64": (pool, lambda rng, i: pool._check_adaptive_avg(rng, f64)),
        "adaptive_max_pool2d": (pool, lambda rng, i: pool.test_adaptive_max_pool2d_random(rng, i)),
        "max_pool2d_hand_made_indices": (pool, lambda rng, i: _max_pool_hand_made_indices(rng, pool)),
        "locally_connected2d": (local, lambda rng, i: local._run_case(
            rng, local.random_local_case(rng, True), f32, True)),
        "locally_connected2d_float64": (local, lambda rng, i: local._run_case(
            rng, local.random_local_case(rng, True), f64, True)),
        "tiled_conv2d": (local, lambda rng, i: local._run_case(
            rng, local.random_local_case(rng, False), f32, False)),
        "tiled_conv2d_float64": (local, lambda rng, i: local._run_case(
            rng, local.random_local_case(rng, False), f64, False)),
        "local_exact_small_integers": (
            local, lambda rng, i: local.test_fast_equals_reference_exactly_on_small_integers(
                rng, i, i % 2 == 0)),
    }


def parametrize_ops(counts):
    """pytest parameters (op name, case id) for the given number of cases per op."""
    unknown = set(counts) - set(op_runners())
    assert not unknown, unknown
    return [(name, i) for name, n in counts.items() for i in range(n)]


def run_op_case(monkeypatch, gpu, name, rng, case_id):
    """Runs one case of `name` with its module's F swapped for `gpu`."""
    module, run = op_runners()[name]
    monkeypatch.setattr(module, "F", gpu)
    run(rng, case_id)
    assert gpu.calls > 0


def check_tf32_error_bound(gpu, rng):
    """convcore.set_allow_tf32(True) on a float32 conv, forward and both gradients: every output
    within the TF32 bound (each product's relative error <= 2^-10 + 2^-22, plus float32 summation
    over the window, times the sum of |terms|), and measurably less exact than with the switch off
    (so the switch reaches the kernels); float64 untouched by it. Restores the switch."""
    import convcore
    from cases import randn
    from reference import conv2d as ref_conv2d, conv2d_backward as ref_conv2d_backward

    n, c, h, w, k = 2, 16, 9, 11, 24
    x, wt, b = randn(rng, (n, c, h, w), np.float32), randn(rng, (k, c, 3, 3), np.float32), \
        randn(rng, (k,), np.float32)
    dy = randn(rng, (n, k, h, w), np.float32)
    ref_args = ((1, 1), (1, 1, 1, 1), (1, 1), 1)  # stride, pads, dilation, groups
    want = [ref_conv2d(x, wt, b, *ref_args)] + list(ref_conv2d_backward(dy, x, wt, *ref_args))
    scale = [ref_conv2d(np.abs(x), np.abs(wt), np.abs(b), *ref_args)] + \
        list(ref_conv2d_backward(np.abs(dy), np.abs(x), np.abs(wt), *ref_args))
    terms = [c * 9, k * 9, n * h * w, n * h * w]  # reduction lengths: y, dx, dw, db

    def errors():
        got = [gpu.conv2d(x, wt, b, padding=1)] + list(gpu.conv2d_backward(dy, x, wt, padding=1))
        return [float(np.max(np.abs(g - r) / s)) for g, r, s in zip(got, want, scale)]

    try:
        convcore.set_allow_tf32(False)
        exact = errors()
        convcore.set_allow_tf32(True)
        tf32 = errors()
        for name, e32, etf, kk in zip(("y", "dx", "dw", "db"), exact, tf32, terms):
            assert e32 <= 2 * kk * 2.0**-24, f"{name}: float32 error {e32:.2e}"
            bound = (2.0**-10 + 2.0**-22 + kk * 2.0**-24) * 1.25
            assert etf <= bound, f"{name}: TF32 error {etf:.2e} over its bound {bound:.2e}"
        for name, e32, etf in zip(("y", "dx", "dw"), exact, tf32):  # the GEMMs' outputs
            assert etf > 8 * e32, f"{name}: TF32 error {etf:.2e} vs float32 {e32:.2e}: not rounded?"
        x64, w64, b64 = x.astype(np.float64), wt.astype(np.float64), b.astype(np.float64)
        y64 = gpu.conv2d(x64, w64, b64, padding=1)
        assert np.max(np.abs(y64 - want[0]) / scale[0]) < 1e-12, "float64 must ignore TF32"
    finally:
        convcore.set_allow_tf32(False)
