"""The CUDA backend's code on the CPU emulator: the same kernels, bindings and Python dispatch
as on a GPU, run by csrc/cuda/emulate (a CPU stand-in for the CUDA runtime, built with
-DCONVCORE_CUDA_EMULATE=ON). Device arrays are host arrays behind __cuda_array_interface__.

This catches indexing, tiling, dispatch and boundary bugs where no GPU exists; it says nothing
about GPU-only behaviour (memory model, streams, real launch limits, speed), which
test_cuda.py covers on a real GPU. Skipped unless convcore._cuda is the emulated build.
"""
import numpy as np
import pytest

import convcore
import convcore.functional as F

_INFO = convcore.backends()["cuda"]
pytestmark = pytest.mark.skipif(not _INFO.get("emulated", False),
                                reason="convcore._cuda is not the CPU-emulated build")

from cases import randn, random_conv_case  # noqa: E402
from gpu_functional import GpuFunctional, check_tf32_error_bound, parametrize_ops, run_op_case  # noqa: E402


class EmuArray:
    """A host array presented as device memory (what the emulated _cuda reads)."""

    def __init__(self, array):
        self.array = array

    @property
    def shape(self):
        return self.array.shape

    @property
    def dtype(self):
        return self.array.dtype

    @property
    def ndim(self):
        return self.array.ndim

    @property
    def __cuda_array_interface__(self):
        a = self.array
        return {"shape": a.shape, "typestr": a.dtype.str, "data": (a.ctypes.data, False),
                "strides": None if a.flags.c_contiguous else a.strides, "version": 3}

    def __getitem__(self, index):
        return EmuArray(self.array[index])

    def astype(self, dtype):
        return EmuArray(self.array.astype(dtype))


@pytest.fixture(autouse=True, scope="module")
def _emulated_arrays():
    """Outputs of EmuArray calls are EmuArrays; NaN-poisoned like every test output."""
    from convcore import _cuda, _gpu
    _gpu.cuda_module("test", "x")  # installs the default hooks, which these replace
    _cuda._set_array_hooks(lambda like, shape, dtype: EmuArray(np.empty(shape, dtype)),
                           lambda like: 0)
    _cuda._set_debug_poison(True)
    yield
    _cuda._set_debug_poison(False)
    _cuda._set_array_hooks(_gpu.empty, _gpu.stream_of)


def _emulated_functional():
    return GpuFunctional(lambda a: EmuArray(np.array(a)), lambda e: np.array(e.array), EmuArray)


# fewer cases than on a GPU: the emulator runs every CUDA thread as a fiber on one CPU core
OP_CASES = {
    "conv2d": 8, "conv2d_float64": 3, "conv2d_depthwise": 4, "conv2d_exact_small_integers": 4,
    "conv1d": 4, "conv_transpose2d": 6, "conv_transpose2d_exact_small_integers": 2,
    "im2col_col2im": 4, "sepconv2d_1d": 4, "sepconv2d_1d_need_subsets": 1, "separable_conv2d": 4,
    "max_pool2d": 6, "max_pool2d_float64": 2, "avg_pool2d": 6, "adaptive_avg_pool2d_float64": 3,
    "adaptive_max_pool2d": 4, "max_pool2d_hand_made_indices": 3,
    "locally_connected2d": 4, "locally_connected2d_float64": 2, "tiled_conv2d": 4,
    "tiled_conv2d_float64": 2, "local_exact_small_integers": 4,
}


@pytest.mark.parametrize("op,case_id", parametrize_ops(OP_CASES))
def test_op_against_reference(rng, monkeypatch, op, case_id):
    run_op_case(monkeypatch, _emulated_functional(), op, rng, case_id)


def test_conv2d_larger_than_one_gemm_tile(rng, monkeypatch):
    """K, C*kh*kw and positions past one GEMM tile (64 or 128 x 128), with a 2-image batch."""
    import test_conv2d
    monkeypatch.setattr(test_conv2d, "F", _emulated_functional())
    case = random_conv_case(rng)
    case.n, case.c, case.h, case.w, case.k, case.groups = 2, 4, 11, 13, 66, 1
    case.kh, case.kw, case.stride, case.dilation, case.pads = 3, 3, (1, 1), (1, 1), (1, 1, 1, 1)
    test_conv2d._run_case(rng, case, np.float32)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n,c,h,w,k", [(3, 3, 21, 21, 20), (5, 3, 17, 19, 70), (1, 120, 6, 7, 9),
                                       (5, 1, 64, 64, 2)])
def test_conv2d_split_reduction(rng, monkeypatch, dtype, n, c, h, w, k):
    """Reductions over images x positions long enough (>= 1024) for the GEMM to split k across
    partial matrices (the emulator reports no multiprocessor count, so 132 is assumed), with
    positions per image not a multiple of the 8-wide k slice (slices straddle images), and
    m on both tile heights (20 -> 64-row tiles, 70 -> 128-row tiles); and a one-image forward
    whose reduction (C*kh*kw = 1080) splits too, with the bias added by the reduction; and a
    bias gradient long enough (5 x 64 x 64 terms) to be summed in two image chunks."""
    import test_conv2d
    monkeypatch.setattr(test_conv2d, "F", _emulated_functional())
    case = random_conv_case(rng)
    case.n, case.c, case.h, case.w, case.k, case.groups = n, c, h, w, k, 1
    case.kh, case.kw, case.stride, case.dilation, case.pads = 3, 3, (1, 1), (1, 1), (1, 1, 1, 1)
    test_conv2d._run_case(rng, case, dtype)


def test_pool_indices_out_of_range(rng):
    x = randn(rng, (1, 2, 6, 6), np.float32)
    bad = np.zeros((1, 2, 3, 3), np.int64)
    bad[0, 1, 2, 0] = 36
    with pytest.raises(ValueError, match="indices must lie in"):
        F.max_pool2d_backward(EmuArray(np.ones((1, 2, 3, 3), np.float32)), EmuArray(x), 2,
                              indices=EmuArray(bad))


def test_boundary_errors(rng):
    x = EmuArray(randn(rng, (1, 2, 5, 5), np.float32))
    w = randn(rng, (3, 2, 3, 3), np.float32)
    with pytest.raises(TypeError, match="w must be a GPU array"):
        F.conv2d(x, w)
    with pytest.raises(TypeError, match="mixed dtypes"):
        F.conv2d(x, EmuArray(w.astype(np.float64)))
    with pytest.raises(ValueError, match="groups"):
        F.conv2d(x, EmuArray(w), groups=3)
    with pytest.raises(ValueError, match="C-contiguous"):
        F.conv2d(EmuArray(randn(rng, (1, 2, 5, 10), np.float32)[:, :, :, ::2]), EmuArray(w))


@pytest.mark.parametrize("stride,pads,mult,hw,dtype", [
    (1, (1, 1, 1, 1), 1, (9, 7), np.float32),
    (2, (1, 1, 1, 1), 1, (8, 11), np.float32),
    (2, (0, 2, 3, 0), 2, (10, 5), np.float64),
    (1, (2, 0, 0, 3), 2, (6, 13), np.float64),
    (2, (2, 1, 1, 2), 1, (5, 6), np.float32),
])
def test_depthwise_3x3_fast_paths(rng, monkeypatch, stride, pads, mult, hw, dtype):
    """The 3x3 strip kernels: strides 1/2, both pad parities, multiplier 2, strip-edge heights."""
    import test_conv2d
    monkeypatch.setattr(test_conv2d, "F", _emulated_functional())
    case = random_conv_case(rng, depthwise=True)
    case.n, case.c, case.h, case.w = 2, 3, hw[0], hw[1]
    case.k, case.groups, case.kh, case.kw = 3 * mult, 3, 3, 3
    case.stride, case.dilation, case.pads = (stride, stride), (1, 1), pads
    test_conv2d._run_case(rng, case, dtype)


@pytest.mark.parametrize("kernel,stride,padding", [(3, 2, 1), (2, 2, 0), (3, 1, 0)])
def test_max_pool_backward_recomputed_argmax_ties_and_nan(rng, kernel, stride, padding):
    """Backward without indices (argmax kept as a window tap) against the reference's indices."""
    import reference_pool as R
    x = np.round(randn(rng, (2, 3, 9, 11), np.float32))  # many ties
    x[0, 0, 5, 5] = x[1, 2, 0, 0] = x[1, 2, 0, 1] = np.nan
    _, idx_ref = R.max_pool2d(x, (kernel,) * 2, (stride,) * 2, (padding,) * 2)
    dy = randn(rng, idx_ref.shape, np.float32)
    args = (kernel, stride, padding)
    got = F.max_pool2d_backward(EmuArray(dy), EmuArray(x), *args)
    want = F.max_pool2d_backward(EmuArray(dy), EmuArray(x), *args,
                                 indices=EmuArray(idx_ref.astype(np.int64)))
    np.testing.assert_array_equal(np.array(got.array), np.array(want.array))


def test_tf32_switch_and_error_bound(rng):
    """convcore.set_allow_tf32: float32 convs within the TF32 bound, float64 unaffected."""
    check_tf32_error_bound(_emulated_functional(), rng)
