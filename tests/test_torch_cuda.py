"""convcore.torch on CUDA tensors: every registered op runs on the GPU through convcore._cuda.

The cases are tests/test_torch.py's (CASES: every op, random float64 inputs with odd sizes,
strides, padding, dilation, groups), moved to the GPU. For each: the CUDA result equals
PyTorch's own CUDA op (TF32 off) and convcore's CPU result, gradients through autograd equal
both, outputs stay on the input's device; gradcheck in float64 on the GPU; torch.library.opcheck
on CUDA inputs for every registered op; mixed devices and a missing CUDA backend raise TypeError
naming the argument; every nn module on the GPU equals its CPU copy; a small model of convcore
modules trains on the GPU (gradients equal the CPU model's, the loss falls); torch.compile
traces it.

Skipped unless PyTorch sees a GPU and convcore's CUDA backend is built and sees one too.
"""
import copy

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="PyTorch is not installed (pip install '.[torch]')")

import convcore  # noqa: E402


def _gpu_reason():
    if not torch.cuda.is_available():
        return "PyTorch sees no CUDA device"
    info = convcore.backends()["cuda"]
    if not info.get("built"):
        return "convcore was built without its CUDA extension"
    if not info.get("available"):
        return f"convcore's CUDA backend sees no device ({info.get('reason') or 'no devices'})"
    return None


_REASON = _gpu_reason()
pytestmark = pytest.mark.skipif(_REASON is not None, reason=str(_REASON))

import convcore.torch as cct  # noqa: E402
from test_torch import CASES, _RecordOps, _small_model  # noqa: E402

tF = torch.nn.functional
DEV = torch.device("cuda", torch.cuda.current_device()) if _REASON is None else None


@pytest.fixture(autouse=True, scope="module")
def _exact_pytorch_references():
    """PyTorch's float32 references in full float32: no TF32 in cuDNN convs or matmuls."""
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


@pytest.fixture(autouse=True, scope="module")
def _poison_gpu_outputs():
    """NaN-fill every output convcore._cuda allocates before its kernels run (as test_cuda.py
    does): an element a kernel leaves unwritten shows up instead of reading as torch.empty's."""
    from convcore import _cuda
    _cuda._set_debug_poison(True)
    yield
    _cuda._set_debug_poison(False)


def _g(rng, *shape, dtype=torch.float64):
    return torch.from_numpy(rng.standard_normal(shape)).to(device=DEV, dtype=dtype)


def _max_rel(a, b):
    """max|a - b| / max(max|b|, 1): the tests' error measure (b the reference)."""
    return (a - b).abs().max().item() / max(b.abs().max().item(), 1.0)


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_cuda_matches_pytorch_and_cpu(name, dtype, rng):
    make, ours, ref = CASES[name]
    host = [t.to(dtype) for t in make(rng)]
    cuda_in = [t.to(DEV).requires_grad_() for t in host]
    cpu_in = [t.clone().requires_grad_() for t in host]
    ref_in = [t.to(DEV).requires_grad_() for t in host]
    y, y_cpu, y_ref = ours(*cuda_in), ours(*cpu_in), ref(*ref_in)
    assert y.device == DEV and y.dtype == dtype and y.shape == y_ref.shape == y_cpu.shape
    tol = 2e-5 if dtype == torch.float32 else 1e-12
    assert _max_rel(y, y_ref) <= tol, "against PyTorch's CUDA op"
    assert _max_rel(y.cpu(), y_cpu.detach()) <= tol, "against convcore's CPU result"

    dy_host = torch.from_numpy(rng.standard_normal(tuple(y.shape))).to(dtype)
    grads = torch.autograd.grad(y, cuda_in, dy_host.to(DEV))
    grads_cpu = torch.autograd.grad(y_cpu, cpu_in, dy_host)
    grads_ref = torch.autograd.grad(y_ref, ref_in, dy_host.to(DEV))
    for i, (g, g_cpu, g_ref) in enumerate(zip(grads, grads_cpu, grads_ref)):
        assert g.device == DEV and g.dtype == dtype and g.shape == cuda_in[i].shape, i
        assert _max_rel(g, g_ref) <= tol, f"input {i}: gradient against PyTorch's"
        assert _max_rel(g.cpu(), g_cpu) <= tol, f"input {i}: gradient against the CPU's"


@pytest.mark.parametrize("name", sorted(CASES))
def test_gradcheck_float64_on_cuda(name, rng):
    make, ours, _ = CASES[name]
    inputs = [t.to(DEV).requires_grad_() for t in make(rng)]
    assert torch.autograd.gradcheck(ours, inputs, eps=1e-6, atol=1e-7, rtol=1e-6, fast_mode=True)


# opcheck's checks: a backward op's own backward is never taken, so its schema and fake impl
# are checked (its AOT tracing is covered by the forward op's, which traces the backward)
_FORWARD_CHECKS = ("test_schema", "test_autograd_registration", "test_faketensor",
                   "test_aot_dispatch_dynamic")
_BACKWARD_CHECKS = ("test_schema", "test_faketensor")


def test_opcheck_every_registered_op_on_cuda(rng):
    recorder = _RecordOps()
    with recorder:
        for make, ours, _ in CASES.values():
            y = ours(*(t.to(DEV).requires_grad_() for t in make(rng)))
            y.backward(1.0 + 0.5 * torch.from_numpy(rng.standard_normal(tuple(y.shape))).to(y))
    ran = {op.name().split(".")[0] for op in recorder.calls}
    assert ran == {f"convcore::{name}" for name in torch.ops.convcore}  # every op, on CUDA
    for op, (args, kwargs) in recorder.calls.items():
        is_backward = "backward" in op.name()
        fresh = []
        for a in args:
            if isinstance(a, torch.Tensor):
                assert a.device == DEV, op
                # forward ops get differentiable inputs, so opcheck traces their backward too
                a = a.detach().clone().requires_grad_(a.is_floating_point() and not is_backward)
            fresh.append(a)
        torch.library.opcheck(op, fresh, kwargs,
                              test_utils=_BACKWARD_CHECKS if is_backward else _FORWARD_CHECKS)


def test_outputs_stay_on_the_device_without_copies(rng):
    x = _g(rng, 2, 3, 9, 8, dtype=torch.float32)
    w = _g(rng, 4, 3, 3, 3, dtype=torch.float32)
    # the boundary hands the CUDA tensor itself to convcore (no host round trip)
    view = cct._np(x)
    assert isinstance(view, torch.Tensor) and view.data_ptr() == x.data_ptr()
    y = cct.conv2d(x, w, padding=1)
    assert y.device == DEV and y.is_contiguous()
    y, idx = cct.max_pool2d(x, 3, 2, 1, ceil_mode=True, return_indices=True)
    y_ref, idx_ref = tF.max_pool2d(x, 3, 2, 1, ceil_mode=True, return_indices=True)
    assert idx.device == DEV and idx.dtype == torch.int64
    assert torch.equal(y, y_ref) and torch.equal(idx, idx_ref)
    y, idx = cct.adaptive_max_pool2d(x, (4, 3), return_indices=True)
    y_ref, idx_ref = tF.adaptive_max_pool2d(x, (4, 3), return_indices=True)
    assert torch.equal(y, y_ref) and torch.equal(idx, idx_ref)
    # a non-contiguous CUDA input is made contiguous once and gives the same answer
    xt = x.transpose(2, 3)
    assert torch.equal(cct.conv2d(xt, w), cct.conv2d(xt.contiguous(), w))


def test_kernels_run_on_torchs_current_stream(rng):
    """Inputs written on a side stream and read there by convcore (forward and backward through
    autograd) with no synchronisation in between: the results must see those writes."""
    x_host = torch.from_numpy(rng.standard_normal((8, 16, 48, 48))).float()
    w = _g(rng, 32, 16, 3, 3, dtype=torch.float32).requires_grad_()
    torch.cuda.synchronize()
    side = torch.cuda.Stream()
    with torch.cuda.stream(side):
        x = torch.zeros(x_host.shape, device=DEV)
        x.copy_(x_host.pin_memory(), non_blocking=True)  # ordered before the conv by the stream
        y = cct.conv2d(x, w, padding=1)
        (dw,) = torch.autograd.grad(y.square().sum(), [w])
    side.synchronize()
    y_ref = tF.conv2d(x_host.to(DEV), w.detach(), padding=1)
    (dw_ref,) = torch.autograd.grad(tF.conv2d(x_host.to(DEV), w, padding=1).square().sum(), [w])
    assert _max_rel(y, y_ref) <= 2e-5 and _max_rel(dw, dw_ref) <= 1e-4


def test_mixed_devices_and_bad_tensors_name_the_argument(rng):
    x = _g(rng, 1, 3, 6, 6, dtype=torch.float32)
    w = _g(rng, 4, 3, 3, 3, dtype=torch.float32)
    b = _g(rng, 4, dtype=torch.float32)
    with pytest.raises(TypeError, match="weight is on cpu but input is on cuda"):
        cct.conv2d(x, w.cpu())
    with pytest.raises(TypeError, match="weight is on cuda.* but input is on cpu"):
        cct.conv2d(x.cpu(), w)
    with pytest.raises(TypeError, match="bias is on cpu"):
        cct.conv2d(x, w, b.cpu())
    with pytest.raises(TypeError, match="weight_row is on cpu"):
        cct.sepconv2d_1d(x, _g(rng, 3, 3, dtype=torch.float32), torch.ones(3, 3))
    with pytest.raises(TypeError, match="weight_pointwise is on cpu"):
        cct.separable_conv2d(x, _g(rng, 3, 1, 3, 3, dtype=torch.float32), torch.ones(5, 3, 1, 1))
    with pytest.raises(TypeError, match="weight must be float32 or float64"):
        cct.conv2d(x, w.to(torch.int32))
    with pytest.raises(TypeError, match="mixed|dtype"):
        cct.conv2d(x, w.double())
    with pytest.raises(ValueError, match=r"conv2d: x has 3 channels"):
        cct.conv2d(x, _g(rng, 4, 2, 3, 3, dtype=torch.float32))


def test_cuda_tensor_without_a_cuda_backend_names_the_argument(rng, monkeypatch):
    """As on a machine whose convcore was built without CUDA (the verdict is memoised)."""
    monkeypatch.setattr(cct, "_cuda_reason", ["convcore was built without its CUDA backend"])
    x = _g(rng, 1, 3, 6, 6, dtype=torch.float32)
    w = _g(rng, 4, 3, 3, 3, dtype=torch.float32)
    with pytest.raises(TypeError, match="conv2d: input is a CUDA tensor.*without its CUDA"):
        cct.conv2d(x, w)
    with pytest.raises(TypeError, match="conv2d: weight is a CUDA tensor"):
        cct.conv2d(x.cpu(), w)
    with pytest.raises(TypeError, match="max_pool2d: input is a CUDA tensor"):
        cct.max_pool2d(x, 2)
    with pytest.raises(TypeError, match="col2im: col is a CUDA tensor"):
        cct.col2im(_g(rng, 4, 27), (1, 3, 4, 4), 3, padding=1)
    assert cct.conv2d(x.cpu(), w.cpu()).device.type == "cpu"  # the CPU is unaffected


def _modules(dtype):
    """One of every convcore.torch module (random parameters), with an input that fits it."""
    modules = [
        (cct.Conv2d(6, 4, (3, 2), stride=2, padding=1, groups=2), (2, 6, 9, 8)),
        (cct.Conv1d(3, 5, 3, stride=2, padding=1), (2, 3, 13)),
        (cct.ConvTranspose2d(6, 4, 3, stride=2, padding=1, output_padding=1), (2, 6, 9, 8)),
        (cct.DepthwiseConv2d(6, 12, 3, padding="same"), (2, 6, 9, 8)),
        (cct.SeparableConv2d(3, 5, 3, padding=1, depth_multiplier=2), (2, 3, 9, 8)),
        (cct.SepConv1d(3, (5, 3), padding=(2, 1)), (2, 3, 9, 8)),
        (cct.MaxPool2d(3, 2, padding=1, ceil_mode=True), (2, 3, 9, 8)),
        (cct.AvgPool2d(2, count_include_pad=False, padding=1), (2, 3, 9, 8)),
        (cct.AdaptiveAvgPool2d(3), (2, 3, 9, 8)),
    ]
    if cct.HAS_LOCAL:
        modules += [(cct.LocallyConnected2d(3, 4, 3, input_size=(9, 8), stride=2, padding=1),
                     (2, 3, 9, 8)),
                    (cct.TiledConv2d(3, 4, 3, tile_size=2, padding=1), (2, 3, 9, 8))]
    return [(m.to(dtype), shape) for m, shape in modules]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_modules_on_cuda_equal_their_cpu_copies(dtype, rng):
    """Every module moved to the GPU (.to(device)) computes what its CPU original does (which
    tests/test_torch.py compares with torch.nn), with its output and gradients on the GPU."""
    torch.manual_seed(int(rng.integers(2**31)))
    tol = 2e-5 if dtype == torch.float32 else 1e-12
    for cpu_module, shape in _modules(dtype):
        gpu_module = _copy_to(cpu_module)
        x = torch.from_numpy(rng.standard_normal(shape)).to(dtype)
        xg = x.to(DEV).requires_grad_()
        y, y_cpu = gpu_module(xg), cpu_module(x)
        assert y.device == DEV and y.dtype == dtype, cpu_module
        assert _max_rel(y.detach().cpu(), y_cpu.detach()) <= tol, cpu_module
        y.square().sum().backward()
        assert xg.grad.device == DEV and torch.isfinite(xg.grad).all(), cpu_module
        assert all(p.grad is not None and p.grad.device == DEV
                   for p in gpu_module.parameters()), cpu_module


def test_module_constructors_take_the_cuda_device(rng):
    """device= builds the parameters on the GPU; a torch.nn state_dict from the GPU loads as is;
    SepConv1d.from_depthwise keeps the kernel's device."""
    torch.manual_seed(int(rng.integers(2**31)))
    theirs = torch.nn.Conv2d(6, 4, 3, padding=1, groups=2, device=DEV)
    ours = cct.Conv2d(6, 4, 3, padding=1, groups=2, device=DEV)
    assert ours.weight.device == DEV and ours.bias.device == DEV
    ours.load_state_dict(theirs.state_dict())
    x = _g(rng, 2, 6, 9, 8, dtype=torch.float32)
    assert torch.allclose(ours(x), theirs(x), rtol=1e-5, atol=1e-5)

    x64 = _g(rng, 2, 3, 9, 8)
    w_col, w_row = _g(rng, 3, 5), _g(rng, 3, 3)
    kernel = torch.einsum("ci,cj->cij", w_col, w_row)[:, None]
    sep1 = cct.SepConv1d.from_depthwise(kernel, _g(rng, 3), padding=(2, 1))
    assert sep1.weight_col.device == DEV
    assert torch.allclose(sep1(x64), tF.conv2d(x64, kernel, sep1.bias, padding=(2, 1), groups=3),
                          atol=1e-10)


def _copy_to(module):
    """A copy of `module` on the GPU under test, with equal parameters."""
    return copy.deepcopy(module).to(DEV)


def test_small_model_trains_on_cuda(rng):
    """The model of test_torch.py's compile test on the GPU: its float64 gradients equal the
    CPU copy's, and 20 Adam steps on one random batch lower the loss (float32)."""
    torch.manual_seed(int(rng.integers(2**31)))
    cpu_model = _small_model(torch.float64)
    gpu_model = _copy_to(cpu_model)
    x = torch.from_numpy(rng.standard_normal((4, 3, 12, 12)))
    target = torch.from_numpy(rng.integers(0, 4, 4))
    loss_cpu = tF.cross_entropy(cpu_model(x), target)
    loss_gpu = tF.cross_entropy(gpu_model(x.to(DEV)), target.to(DEV))
    assert abs(loss_gpu.item() - loss_cpu.item()) <= 1e-12 * abs(loss_cpu.item())
    g_cpu = torch.autograd.grad(loss_cpu, list(cpu_model.parameters()))
    g_gpu = torch.autograd.grad(loss_gpu, list(gpu_model.parameters()))
    for (name, _), a, b in zip(cpu_model.named_parameters(), g_gpu, g_cpu):
        assert a.device == DEV and _max_rel(a.cpu(), b) <= 1e-10, name

    model = _small_model(torch.float32).to(DEV)
    xb = torch.from_numpy(rng.standard_normal((16, 3, 12, 12))).float().to(DEV)
    tb = torch.from_numpy(rng.integers(0, 4, 16)).to(DEV)
    opt = torch.optim.Adam(model.parameters(), lr=2e-2)
    losses = []
    for _ in range(20):
        opt.zero_grad()
        loss = tF.cross_entropy(model(xb), tb)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert all(np.isfinite(losses)) and losses[-1] < 0.7 * losses[0], losses
    assert all(p.device == DEV for p in model.parameters())


def test_torch_compile_fullgraph_on_cuda(rng):
    """The model traces into one graph on CUDA inputs (aot_eager: no code generation); the
    compiled output and parameter gradients equal the eager ones."""
    torch.manual_seed(0)
    model = _small_model(torch.float64).to(DEV)
    x = _g(rng, 2, 3, 12, 12)

    def output_and_grads(fn):
        y = fn(x)
        return [y, *torch.autograd.grad(y.square().sum(), list(model.parameters()))]

    eager = output_and_grads(model)
    compiled = output_and_grads(torch.compile(model, backend="aot_eager", fullgraph=True))
    assert compiled[0].device == DEV
    for a, b in zip(compiled, eager):
        assert torch.allclose(a, b, atol=1e-12)
