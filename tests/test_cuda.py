"""The CUDA backend: every op, forward and backward, against the same float64 NumPy references
(computed on the host) as the CPU tests, on the same random cases.

The CPU tests' bodies are reused, not copied: gpu_functional.GpuFunctional is
convcore.functional with every NumPy argument moved to the GPU first and every result checked
to be a GPU array of the caller's library and brought back; each test below swaps it in for the
`F` of a CPU test module and runs that module's case runner. Then what only the GPU has: output types (CuPy in, CuPy out;
torch in, torch out), streams, devices, determinism, the int64 index path past 2**31
elements, hand-made pooling indices, and a few training steps of DeepConvNet on CuPy arrays.

Without CuPy, a built convcore._cuda or a visible GPU, the whole module is skipped.
"""
import numpy as np
import pytest

import convcore
import convcore.functional as F

cp = pytest.importorskip("cupy")


def _gpu_reason():
    info = convcore.backends()["cuda"]
    if not info["built"]:
        return "convcore was built without its CUDA extension"
    if not info["available"]:
        return f"no GPU visible to the CUDA runtime ({info.get('reason', 'no devices')})"
    try:
        if cp.cuda.runtime.getDeviceCount() < 1:
            return "CuPy sees no GPU"
    except Exception as exc:  # CuPy installed, but no driver
        return f"CuPy cannot use a GPU: {exc}"
    return None


_REASON = _gpu_reason()
pytestmark = pytest.mark.skipif(_REASON is not None, reason=str(_REASON))

# The CPU tests whose case runners are reused (imported after the skip decision: they are plain
# modules of this directory).
import reference as ref  # noqa: E402
import reference_pool as R  # noqa: E402
import test_conv2d as conv2d_tests  # noqa: E402
from cases import conv_out_shape, randn, random_conv_case, small_ints  # noqa: E402
from gpu_functional import GpuFunctional, check_tf32_error_bound, parametrize_ops, run_op_case  # noqa: E402
from reference import assert_close  # noqa: E402

def _cupy_functional():
    return GpuFunctional(cp.asarray, cp.asnumpy, cp.ndarray)


@pytest.fixture(autouse=True, scope="module")
def _poison_gpu_outputs():
    """NaN-fill every GPU output before its kernels run, as conftest.py does for the CPU."""
    from convcore import _cuda
    _cuda._set_debug_poison(True)
    yield
    _cuda._set_debug_poison(False)


# ---- every op family, forward and backward, through the CPU tests' case runners ----------------

# random cases per op family (the CPU suite runs several times more of each)
OP_CASES = {
    "conv2d": 60, "conv2d_float64": 20, "conv2d_depthwise": 30, "conv2d_exact_small_integers": 30,
    "conv2d_finite_differences": 3, "conv1d": 30, "conv1d_float64": 10, "conv_transpose2d": 40,
    "conv_transpose2d_float64": 10, "conv_transpose2d_exact_small_integers": 10,
    "im2col_col2im": 30, "im2col_col2im_float64": 10, "sepconv2d_1d": 30, "sepconv2d_1d_float64": 10,
    "sepconv2d_1d_need_subsets": 1, "separable_conv2d": 20, "separable_conv2d_float64": 10,
    "max_pool2d": 40, "max_pool2d_float64": 10, "avg_pool2d": 40, "avg_pool2d_float64": 10,
    "adaptive_avg_pool2d": 30, "adaptive_avg_pool2d_float64": 10, "adaptive_max_pool2d": 30,
    "max_pool2d_hand_made_indices": 10, "locally_connected2d": 20, "locally_connected2d_float64": 10,
    "tiled_conv2d": 20, "tiled_conv2d_float64": 10, "local_exact_small_integers": 10,
}


@pytest.mark.parametrize("op,case_id", parametrize_ops(OP_CASES))
def test_op_against_reference(rng, monkeypatch, op, case_id):
    run_op_case(monkeypatch, _cupy_functional(), op, rng, case_id)


@pytest.mark.parametrize("case_id", range(20))
def test_gpu_equals_cpu_exactly_on_small_integers(rng, case_id):
    """Every GPU algorithm against the CPU reference kernel, bit for bit."""
    case = random_conv_case(rng)
    x, w = (small_ints(rng, s, np.float32) for s in (case.x_shape, case.w_shape))
    dy = small_ints(rng, conv_out_shape(case), np.float32)
    kw = dict(stride=case.stride, padding=case.pads, dilation=case.dilation, groups=case.groups)
    y_cpu = F.conv2d(x, w, algo="reference", **kw)
    dx_cpu, dw_cpu, _ = F.conv2d_backward(dy, x, w, algo="reference", need=("x", "w"), **kw)
    gx, gw, gdy = cp.asarray(x), cp.asarray(w), cp.asarray(dy)
    for algo in conv2d_tests._algos_for(case) + ["auto"]:
        np.testing.assert_array_equal(cp.asnumpy(F.conv2d(gx, gw, algo=algo, **kw)), y_cpu,
                                      err_msg=f"{algo} {case}")
        dx, dw, _ = F.conv2d_backward(gdy, gx, gw, algo=algo, need=("x", "w"), **kw)
        np.testing.assert_array_equal(cp.asnumpy(dx), dx_cpu, err_msg=f"dx {algo} {case}")
        np.testing.assert_array_equal(cp.asnumpy(dw), dw_cpu, err_msg=f"dw {algo} {case}")


# ---- pooling indices ---------------------------------------------------------------------------

def test_pool_indices_are_checked(rng):
    x = cp.asarray(randn(rng, (1, 2, 6, 6), np.float32))
    y, idx = F.max_pool2d(x, 2, return_indices=True)
    bad = idx.copy()
    bad[0, 1, 2, 0] = 36
    with pytest.raises(ValueError, match="indices must lie in"):
        F.max_pool2d_backward(cp.ones_like(y), x, 2, indices=bad)
    with pytest.raises(TypeError, match="int64"):
        F.max_pool2d_backward(cp.ones_like(y), x, 2, indices=idx.astype(cp.int32))
    with pytest.raises(ValueError, match="shape"):
        F.max_pool2d_backward(cp.ones_like(y), x, 2, indices=idx[:, :, :2])


# ---- the array boundary ------------------------------------------------------------------------

def test_outputs_are_cupy_on_the_input_device(rng):
    x = cp.asarray(randn(rng, (2, 3, 9, 9), np.float32))
    w = cp.asarray(randn(rng, (4, 3, 3, 3), np.float32))
    y = F.conv2d(x, w, padding=1)
    assert isinstance(y, cp.ndarray) and y.dtype == cp.float32 and y.device == x.device
    dx, dw, db = F.conv2d_backward(cp.ones_like(y), x, w, padding=1)
    assert all(isinstance(a, cp.ndarray) for a in (dx, dw, db))
    pooled, idx = F.max_pool2d(x, 2, return_indices=True)
    assert isinstance(idx, cp.ndarray) and idx.dtype == cp.int64


def test_noncontiguous_gpu_inputs_are_made_contiguous(rng):
    x = randn(rng, (2, 3, 10, 12), np.float64)
    w = randn(rng, (4, 3, 3, 3), np.float64)
    gx = cp.asarray(x)[:, :, ::2, 1::2]  # a strided view
    assert not gx.flags.c_contiguous
    assert_close(cp.asnumpy(F.conv2d(gx, cp.asarray(w))), ref.conv2d(x[:, :, ::2, 1::2], w),
                 "strided view", 1e-12)


def test_mixed_host_and_device_arguments_are_rejected(rng):
    x = cp.asarray(randn(rng, (1, 2, 5, 5), np.float32))
    w = randn(rng, (3, 2, 3, 3), np.float32)
    with pytest.raises(TypeError, match="w must be a GPU array"):
        F.conv2d(x, w)
    with pytest.raises(TypeError, match="float32 or float64"):
        F.conv2d(x.astype(cp.int32), cp.asarray(w))
    with pytest.raises(TypeError, match="mixed dtypes"):
        F.conv2d(x, cp.asarray(w, dtype=cp.float64))
    with pytest.raises(ValueError, match="groups"):
        F.conv2d(x, cp.asarray(w), groups=3)
    with pytest.raises(ValueError, match="dy has shape"):
        F.conv2d_backward(cp.ones((1, 3, 2, 2), cp.float32), x, cp.asarray(w))


def test_kernels_run_on_the_current_cupy_stream(rng):
    """Queued on a non-blocking stream behind a long copy: the result must see the copy."""
    x_host = randn(rng, (8, 16, 64, 64), np.float32)
    w = cp.asarray(randn(rng, (32, 16, 3, 3), np.float32))
    x = cp.zeros(x_host.shape, cp.float32)
    stream = cp.cuda.Stream(non_blocking=True)
    with stream:
        x.set(x_host, stream=stream)  # ordered before the conv only through the stream
        y = F.conv2d(x, w, padding=1)
        dx, dw, db = F.conv2d_backward(cp.ones_like(y), x, w, padding=1)
    stream.synchronize()
    y_ref = F.conv2d(x_host, cp.asnumpy(w), padding=1)
    assert_close(cp.asnumpy(y), y_ref, "on a side stream", 1e-5)


def test_backward_is_deterministic(rng):
    x = cp.asarray(randn(rng, (4, 8, 33, 35), np.float32))
    w = cp.asarray(randn(rng, (16, 8, 3, 3), np.float32))
    dw_ = cp.asarray(randn(rng, (8, 1, 5, 5), np.float32))
    for algo in ("direct", "im2col"):
        y = F.conv2d(x, w, padding=1, algo=algo)
        first = F.conv2d_backward(cp.sin(y), x, w, padding=1, algo=algo)
        again = F.conv2d_backward(cp.sin(y), x, w, padding=1, algo=algo)
        for a, b in zip(first, again):
            assert cp.array_equal(a, b), algo
    y = F.conv2d(x, dw_, padding=2, groups=8)
    first = F.conv2d_backward(cp.cos(y), x, dw_, padding=2, groups=8)
    again = F.conv2d_backward(cp.cos(y), x, dw_, padding=2, groups=8)
    assert all(cp.array_equal(a, b) for a, b in zip(first, again))
    pooled = F.avg_pool2d(x, 3, stride=2, padding=1)
    assert cp.array_equal(F.avg_pool2d_backward(pooled, x, 3, stride=2, padding=1),
                          F.avg_pool2d_backward(pooled, x, 3, stride=2, padding=1))


def test_torch_tensors_in_torch_tensors_out(rng):
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("torch has no CUDA")
    gpu = GpuFunctional(lambda a: torch.from_numpy(a).cuda(), lambda t: t.cpu().numpy(), torch.Tensor)
    case = random_conv_case(rng)
    x, w = (randn(rng, s, np.float32) for s in (case.x_shape, case.w_shape))
    kw = dict(stride=case.stride, padding=case.pads, dilation=case.dilation, groups=case.groups)
    assert_close(gpu.conv2d(x, w, **kw), ref.conv2d(x, w, None, case.stride, case.pads,
                                                    case.dilation, case.groups), "torch", 1e-5)
    # tensors that require grad are read through detach(); the result lives on their device
    tx = torch.from_numpy(x).cuda().requires_grad_()
    y = F.conv2d(tx, torch.from_numpy(w).cuda(), **kw)
    assert isinstance(y, torch.Tensor) and y.device == tx.device and not y.requires_grad
    # kernels run on torch's current stream
    side = torch.cuda.Stream()
    with torch.cuda.stream(side):
        y2 = F.conv2d(tx, torch.from_numpy(w).cuda(), **kw)
    side.synchronize()
    assert torch.equal(y, y2)


def test_dlpack_only_producers_become_cupy(rng):
    x = randn(rng, (1, 2, 6, 6), np.float32)

    class OnlyDLPack:  # hides CuPy's __cuda_array_interface__
        def __init__(self, arr):
            self._arr = arr

        def __dlpack__(self, **kwargs):
            return self._arr.__dlpack__(**kwargs)

        def __dlpack_device__(self):
            return self._arr.__dlpack_device__()

    y = F.avg_pool2d(OnlyDLPack(cp.asarray(x)), 2)
    assert isinstance(y, cp.ndarray)
    assert_close(cp.asnumpy(y), R.avg_pool2d(x, (2, 2), (2, 2), (0, 0)), "dlpack", 1e-6)


def test_backends_reports_the_gpu():
    info = convcore.backends()["cuda"]
    assert info["built"] and info["available"] and info["devices"]
    assert info["devices"][0]["compute_capability"] >= (7, 0)


def test_index_math_past_2_to_the_31_elements():
    """One plane of 65537 x 32769 float32 (2**31 + 98305 elements, 8.6 GB): the pooling kernels'
    int64 indexing must reach the last rows (32-bit math would wrap before them)."""
    free, _ = cp.cuda.runtime.memGetInfo()
    if free < 40 * 2**30:
        pytest.skip("needs 40 GiB of free GPU memory")
    h, w = 65537, 32769
    x = cp.random.default_rng(5).random((1, 1, h, w), dtype=cp.float32)
    y, idx = F.max_pool2d(x, 2, return_indices=True)
    tail = cp.asnumpy(x[0, 0, h - 5:h - 1, :])  # rows 65532..65535: the last two output rows
    want, want_idx = R.max_pool2d(tail[None, None], (2, 2), (2, 2), (0, 0))
    np.testing.assert_array_equal(cp.asnumpy(y[0, 0, -2:, :]), want[0, 0].astype(np.float32))
    np.testing.assert_array_equal(cp.asnumpy(idx[0, 0, -2:, :]) - (h - 5) * w, want_idx[0, 0])
    del idx
    dx = F.max_pool2d_backward(cp.ones_like(y), x, 2)
    del y
    # every 2x2 window of the last output row routes one 1 into rows 65534..65535; row 65536 gets none
    assert float(dx[0, 0, h - 3:, :].sum()) == float((w - 1) // 2)
    del dx, x


# ---- the book-style layers on CuPy ---------------------------------------------------------------

def test_deep_conv_net_trains_on_cupy(rng):
    """DeepConvNet on CuPy arrays: the first gradient equals the CPU network's (same weights, same
    dropout masks), and a few Adam steps on one batch lower its loss."""
    from convcore.models import DeepConvNet
    from convcore.optim import Adam

    np.random.seed(1234)
    cpu_net = DeepConvNet(dtype=np.float32)
    gpu_net = DeepConvNet(dtype=np.float32)
    for key in gpu_net.params:
        gpu_net.params[key] = cp.asarray(cpu_net.params[key])
    x = rng.random((16, 1, 28, 28)).astype(np.float32)
    t = rng.integers(0, 10, size=16)
    gx, gt = cp.asarray(x), cp.asarray(t)

    np.random.seed(7)
    cpu_grads = cpu_net.gradient(x, t)
    np.random.seed(7)
    gpu_grads = gpu_net.gradient(gx, gt)
    for key, grad in cpu_grads.items():
        assert isinstance(gpu_grads[key], cp.ndarray), key
        assert_close(cp.asnumpy(gpu_grads[key]), grad.astype(np.float64), f"grad {key}", 1e-3)

    optimizer = Adam(lr=0.001)
    losses = []
    for _ in range(5):
        grads = gpu_net.gradient(gx, gt)
        optimizer.update(gpu_net.params, grads)
        losses.append(float(gpu_net.loss(gx, gt, train_flg=False)))
    assert all(np.isfinite(losses)) and losses[-1] < losses[0], losses
    assert isinstance(gpu_net.predict(gx), cp.ndarray)
    assert 0.0 <= gpu_net.accuracy(gx, gt) <= 1.0


# ---- chapter 8: style transfer on CuPy ------------------------------------------------------------

def test_style_transfer_on_cupy(rng):
    """StyleLoss on CuPy images (the network's NumPy weights copied to the device once) gives the
    CPU loss and gradient to float32 accuracy, and stylize(device='gpu') lowers the loss with Adam
    and with L-BFGS, returning a host uint8 image."""
    from convcore.apps import style as S
    from test_style import _images, _tiny_net

    net = _tiny_net(rng, np.float32)
    content, style_img, image = (a.astype(np.float32) for a in _images(rng, 21, 19))
    cpu_loss = S.StyleLoss(net, content, style_img, content_weight=0.3, tv_weight=0.02)
    gpu_loss = S.StyleLoss(net, cp.asarray(content), cp.asarray(style_img), content_weight=0.3,
                           tv_weight=0.02)
    loss, grad, _ = cpu_loss(image)
    g_loss, g_grad, g_parts = gpu_loss(cp.asarray(image))
    assert isinstance(g_grad, cp.ndarray)
    assert abs(g_loss - loss) <= 1e-4 * abs(loss)
    assert_close(cp.asnumpy(g_grad), grad.astype(np.float64), "style gradient on cupy", 1e-4)

    cimg = (rng.random((24, 20, 3)) * 255).astype(np.uint8)
    simg = (rng.random((24, 20, 3)) * 255).astype(np.uint8)
    for optimizer in ("adam", "lbfgs"):
        out, history = S.stylize(cimg, simg, net=net, width=20, iters=4, optimizer=optimizer,
                                 progress=False, device="gpu")
        assert isinstance(out, np.ndarray) and out.dtype == np.uint8 and out.shape == (24, 20, 3)
        assert history[-1][1] < history[0][1], (optimizer, history)


def test_tf32_switch_and_error_bound(rng):
    """convcore.set_allow_tf32: float32 convs within the TF32 bound, float64 unaffected."""
    check_tf32_error_bound(_cupy_functional(), rng)
