"""convcore.torch: the custom ops against PyTorch's own ops, gradcheck in float64, opcheck
(schema, fake tensors, autograd registration, AOT dispatch), the nn modules, torch.compile.

Every case builds random float64 tensors from the test's seeded rng (odd sizes, stride, padding,
dilation, groups, batch 1 where it matters); references are PyTorch's own ops where PyTorch has
them, else an unfold-based einsum.
"""
import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="PyTorch is not installed (pip install '.[torch]')")
from torch.utils._python_dispatch import TorchDispatchMode  # noqa: E402

import convcore.torch as cct  # noqa: E402

tF = torch.nn.functional


def _t(rng, *shape, dtype=torch.float64):
    return torch.from_numpy(rng.standard_normal(shape)).to(dtype)


def _pad(x, padding):
    top, bottom, left, right = padding
    return tF.pad(x, (left, right, top, bottom))


def _unfold_rows(x, k, stride, padding, dilation):
    """The book's im2col layout from torch's unfold: (N*L, C*kh*kw)."""
    cols = tF.unfold(x, k, dilation=dilation, padding=padding, stride=stride)
    return cols.transpose(1, 2).reshape(-1, cols.shape[1])


def _local_reference(x, w, bias, stride, padding, tiled):
    """Locally connected / tiled convolution from unfold: one kernel per output position."""
    n, c, h, wd = x.shape
    kh, kw = w.shape[-2:]
    out_h = (h + 2 * padding - kh) // stride + 1
    out_w = (wd + 2 * padding - kw) // stride + 1
    if tiled:  # expand the tiles to one kernel per position
        rows = torch.arange(out_h) % w.shape[0]
        cols = torch.arange(out_w) % w.shape[1]
        w = w[rows][:, cols]
        bias = bias[rows][:, cols]
    patches = tF.unfold(x, (kh, kw), padding=padding, stride=stride)  # (N, C*kh*kw, L)
    k = w.shape[2]
    y = torch.einsum("ncl,lkc->nkl", patches, w.reshape(out_h * out_w, k, c * kh * kw))
    return (y + bias.reshape(out_h * out_w, k).T).reshape(n, k, out_h, out_w)


# Each case: name -> (inputs(rng), convcore call, reference call or None). The calls take the
# inputs positionally; every float input is differentiated by gradcheck.
CASES = {
    "conv2d": (
        lambda r: (_t(r, 2, 4, 7, 6), _t(r, 6, 2, 3, 2), _t(r, 6)),
        lambda x, w, b: cct.conv2d(x, w, b, stride=(2, 1), padding=(1, 0, 2, 1), dilation=(1, 2),
                                   groups=2),
        lambda x, w, b: tF.conv2d(_pad(x, (1, 0, 2, 1)), w, b, stride=(2, 1), dilation=(1, 2),
                                  groups=2)),
    "conv2d_same_batch1": (
        lambda r: (_t(r, 1, 3, 5, 8), _t(r, 4, 3, 2, 3)),
        lambda x, w: cct.conv2d(x, w, padding="same", dilation=2),
        lambda x, w: tF.conv2d(x, w, padding="same", dilation=2)),
    "conv1d": (
        lambda r: (_t(r, 2, 3, 11), _t(r, 4, 3, 3), _t(r, 4)),
        lambda x, w, b: cct.conv1d(x, w, b, stride=2, padding=2, dilation=2),
        lambda x, w, b: tF.conv1d(x, w, b, stride=2, padding=2, dilation=2)),
    "conv_transpose2d": (
        lambda r: (_t(r, 2, 4, 5, 4), _t(r, 4, 3, 3, 2), _t(r, 6)),
        lambda x, w, b: cct.conv_transpose2d(x, w, b, stride=(2, 3), padding=1,
                                             output_padding=(1, 2), groups=2, dilation=(1, 2)),
        lambda x, w, b: tF.conv_transpose2d(x, w, b, stride=(2, 3), padding=1,
                                            output_padding=(1, 2), groups=2, dilation=(1, 2))),
    "depthwise_conv2d": (
        lambda r: (_t(r, 2, 3, 8, 7), _t(r, 6, 1, 3, 3), _t(r, 6)),
        lambda x, w, b: cct.depthwise_conv2d(x, w, b, stride=3, padding=2),
        lambda x, w, b: tF.conv2d(x, w, b, stride=3, padding=2, groups=3)),
    "separable_conv2d": (
        lambda r: (_t(r, 1, 3, 6, 7), _t(r, 3, 1, 3, 3), _t(r, 5, 3, 1, 1), _t(r, 5)),
        lambda x, wd, wp, b: cct.separable_conv2d(x, wd, wp, b, stride=2, padding=1, dilation=2),
        lambda x, wd, wp, b: tF.conv2d(tF.conv2d(x, wd, None, 2, 1, 2, groups=3), wp, b)),
    "sepconv2d_1d": (
        lambda r: (_t(r, 2, 3, 7, 8), _t(r, 3, 3), _t(r, 3, 2), _t(r, 3)),
        lambda x, wc, wr, b: cct.sepconv2d_1d(x, wc, wr, b, stride=(1, 2), padding=(2, 1)),
        lambda x, wc, wr, b: tF.conv2d(x, torch.einsum("ci,cj->cij", wc, wr)[:, None], b,
                                       stride=(1, 2), padding=(2, 1), groups=3)),
    "max_pool2d": (
        lambda r: (_t(r, 2, 3, 7, 9),),
        lambda x: cct.max_pool2d(x, 3, 2, 1, dilation=(1, 2), ceil_mode=True),
        lambda x: tF.max_pool2d(x, 3, 2, 1, dilation=(1, 2), ceil_mode=True)),
    "max_pool2d_return_indices": (  # the op that also returns indices; its backward uses them
        lambda r: (_t(r, 2, 3, 8, 7),),
        lambda x: cct.max_pool2d(x, 3, 2, 1, ceil_mode=True, return_indices=True)[0],
        lambda x: tF.max_pool2d(x, 3, 2, 1, ceil_mode=True, return_indices=True)[0]),
    "max_pool2d_stride_gt_kernel": (
        lambda r: (_t(r, 1, 2, 9, 10),),
        lambda x: cct.max_pool2d(x, (2, 3), stride=(3, 4)),
        lambda x: tF.max_pool2d(x, (2, 3), stride=(3, 4))),
    "avg_pool2d": (
        lambda r: (_t(r, 2, 3, 7, 9),),
        lambda x: cct.avg_pool2d(x, (3, 2), 2, 1, ceil_mode=True, count_include_pad=False),
        lambda x: tF.avg_pool2d(x, (3, 2), 2, 1, ceil_mode=True, count_include_pad=False)),
    "avg_pool2d_divisor": (
        lambda r: (_t(r, 1, 2, 6, 5),),
        lambda x: cct.avg_pool2d(x, 3, 1, 1, divisor_override=5),
        lambda x: tF.avg_pool2d(x, 3, 1, 1, divisor_override=5)),
    "adaptive_avg_pool2d": (
        lambda r: (_t(r, 2, 3, 7, 9),),
        lambda x: cct.adaptive_avg_pool2d(x, (3, 4)),
        lambda x: tF.adaptive_avg_pool2d(x, (3, 4))),
    "adaptive_max_pool2d": (
        lambda r: (_t(r, 2, 3, 7, 9),),
        lambda x: cct.adaptive_max_pool2d(x, (3, None)),
        lambda x: tF.adaptive_max_pool2d(x, (3, None))),
    "im2col": (
        lambda r: (_t(r, 2, 3, 6, 7),),
        lambda x: cct.im2col(x, (3, 2), stride=2, padding=1, dilation=(1, 2)),
        lambda x: _unfold_rows(x, (3, 2), 2, 1, (1, 2))),
    "col2im": (
        lambda r: (_t(r, 2 * 3 * 4, 3 * 3 * 2),),  # out 3x4, C*kh*kw = 18
        lambda c: cct.col2im(c, (2, 3, 6, 7), (3, 2), stride=2, padding=1, dilation=(1, 2)),
        lambda c: tF.fold(c.reshape(2, 12, 18).transpose(1, 2), (6, 7), (3, 2), dilation=(1, 2),
                          padding=1, stride=2)),
}
if cct.HAS_LOCAL:
    CASES["locally_connected2d"] = (
        lambda r: (_t(r, 2, 3, 6, 5), _t(r, 3, 3, 4, 3, 3, 3), _t(r, 3, 3, 4)),  # out 3x3
        lambda x, w, b: cct.locally_connected2d(x, w, b, stride=2, padding=1),
        lambda x, w, b: _local_reference(x, w, b, 2, 1, tiled=False))
    CASES["tiled_conv2d"] = (
        lambda r: (_t(r, 2, 3, 7, 6), _t(r, 2, 3, 4, 3, 2, 2), _t(r, 2, 3, 4)),
        lambda x, w, b: cct.tiled_conv2d(x, w, b, stride=1, padding=1),
        lambda x, w, b: _local_reference(x, w, b, 1, 1, tiled=True))


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_matches_pytorch_forward_and_backward(name, dtype, rng):
    make, ours, ref = CASES[name]
    inputs = [t.to(dtype).requires_grad_() for t in make(rng)]
    ref_inputs = [t.detach().clone().requires_grad_() for t in inputs]
    y, y_ref = ours(*inputs), ref(*ref_inputs)
    assert y.dtype == dtype and y.shape == y_ref.shape
    tol = 2e-5 if dtype == torch.float32 else 1e-12
    scale = y_ref.abs().max().item()
    assert (y - y_ref).abs().max().item() <= tol * scale
    dy = torch.from_numpy(rng.standard_normal(tuple(y.shape))).to(dtype)
    grads = torch.autograd.grad(y, inputs, dy)
    grads_ref = torch.autograd.grad(y_ref, ref_inputs, dy)
    for i, (g, g_ref) in enumerate(zip(grads, grads_ref)):
        err = (g - g_ref).abs().max().item()
        assert err <= tol * max(g_ref.abs().max().item(), 1.0), f"input {i}: {err}"


@pytest.mark.parametrize("name", sorted(CASES))
def test_gradcheck_float64(name, rng):
    make, ours, _ = CASES[name]
    inputs = [t.requires_grad_() for t in make(rng)]
    assert torch.autograd.gradcheck(ours, inputs, eps=1e-6, atol=1e-7, rtol=1e-6, fast_mode=True)


def test_max_pool_indices_equal_pytorch(rng):
    x = _t(rng, 2, 3, 7, 9, dtype=torch.float32)
    y, idx = cct.max_pool2d(x, 3, 2, 1, ceil_mode=True, return_indices=True)
    y_ref, idx_ref = tF.max_pool2d(x, 3, 2, 1, ceil_mode=True, return_indices=True)
    assert torch.equal(y, y_ref) and torch.equal(idx, idx_ref)
    y, idx = cct.adaptive_max_pool2d(x, (4, 3), return_indices=True)
    y_ref, idx_ref = tF.adaptive_max_pool2d(x, (4, 3), return_indices=True)
    assert torch.equal(y, y_ref) and torch.equal(idx, idx_ref)


class _RecordOps(TorchDispatchMode):
    """Records every convcore::* op call (forward and backward) below autograd."""

    def __init__(self):
        super().__init__()
        self.calls = {}

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func.namespace == "convcore":
            self.calls.setdefault(func, (args, kwargs or {}))
        return func(*args, **(kwargs or {}))


def _recorded_calls(rng):
    recorder = _RecordOps()
    with recorder:
        for make, ours, _ in CASES.values():
            inputs = [t.requires_grad_() for t in make(rng)]
            y = ours(*inputs)
            y.backward(torch.ones_like(y) + 0.5 * torch.from_numpy(
                rng.standard_normal(tuple(y.shape))))
    return recorder.calls


def test_opcheck_every_registered_op(rng):
    calls = _recorded_calls(rng)
    registered = {f"convcore::{name}" for name in torch.ops.convcore}
    assert {op.name().split(".")[0] for op in calls} == registered  # every op was exercised
    for op, (args, kwargs) in calls.items():
        # forward ops with differentiable inputs, so opcheck also traces their backward
        args = [a.detach().clone().requires_grad_(a.is_floating_point() and
                                                  "backward" not in op.name())
                if isinstance(a, torch.Tensor) else a for a in args]
        # a backward op's own backward is never taken: its schema and fake impl are checked,
        # and its AOT tracing is covered by the forward op's (which traces the backward)
        tests = (("test_schema", "test_faketensor") if "backward" in op.name()
                 else ("test_schema", "test_autograd_registration", "test_faketensor",
                       "test_aot_dispatch_dynamic"))
        torch.library.opcheck(op, args, kwargs, test_utils=tests)


def test_zero_copy_boundary(rng):
    x = _t(rng, 2, 3, 5, 5, dtype=torch.float32)
    assert cct._np(x).__array_interface__["data"][0] == x.data_ptr()
    arr = np.random.default_rng(0).standard_normal((3, 4)).astype(np.float32)
    assert cct._tensor(arr).data_ptr() == arr.__array_interface__["data"][0]
    # a non-contiguous input is copied once, and gives the same answer
    xt = x.transpose(2, 3)
    w = _t(rng, 4, 3, 3, 3, dtype=torch.float32)
    assert torch.equal(cct.conv2d(xt, w), cct.conv2d(xt.contiguous(), w))


def test_bad_input_names_the_argument(rng):
    x = _t(rng, 1, 3, 6, 6, dtype=torch.float32)
    w = _t(rng, 4, 3, 3, 3, dtype=torch.float32)
    with pytest.raises(TypeError, match="weight"):
        cct.conv2d(x, w.to(torch.int32))
    with pytest.raises(TypeError, match="input"):
        cct.conv2d(x.to("meta"), w)
    with pytest.raises(TypeError, match="input"):
        cct.max_pool2d(x.numpy(), 2)
    # shape errors come from convcore's one validation (names as in convcore.functional)
    with pytest.raises(ValueError, match=r"conv2d: x has 3 channels.*w\.shape"):
        cct.conv2d(x, _t(rng, 4, 2, 3, 3, dtype=torch.float32))
    with pytest.raises(ValueError, match=r"depthwise_conv2d: w must have shape"):
        cct.depthwise_conv2d(x, _t(rng, 4, 1, 3, 3, dtype=torch.float32))
    with pytest.raises(ValueError, match=r"sepconv2d_1d: w_col"):
        cct.sepconv2d_1d(x, _t(rng, 2, 3, dtype=torch.float32), _t(rng, 3, 3, dtype=torch.float32))
    with pytest.raises(ValueError, match=r"max_pool2d: .*kernel"):
        cct.max_pool2d(x, 7)
    with pytest.raises(TypeError, match="mixed|dtype"):
        cct.conv2d(x, w.double())
    with pytest.raises(ValueError, match="stride"):
        cct.avg_pool2d(x, 2, stride=(1, 2, 3))
    with pytest.raises(ValueError, match="padding_mode"):
        cct.Conv2d(3, 4, 3, padding_mode="reflect")


def test_modules_match_torch_nn(rng):
    torch.manual_seed(int(rng.integers(2**31)))
    x = _t(rng, 2, 6, 9, 8, dtype=torch.float32)
    pairs = [
        (cct.Conv2d(6, 4, (3, 2), stride=2, padding=1, groups=2),
         torch.nn.Conv2d(6, 4, (3, 2), stride=2, padding=1, groups=2)),
        (cct.DepthwiseConv2d(6, 12, 3, padding="same"),
         torch.nn.Conv2d(6, 12, 3, padding="same", groups=6)),
        (cct.ConvTranspose2d(6, 4, 3, stride=2, padding=1, output_padding=1),
         torch.nn.ConvTranspose2d(6, 4, 3, stride=2, padding=1, output_padding=1)),
        (cct.MaxPool2d(3, 2, padding=1, ceil_mode=True),
         torch.nn.MaxPool2d(3, 2, padding=1, ceil_mode=True)),
        (cct.AvgPool2d(2, count_include_pad=False, padding=1),
         torch.nn.AvgPool2d(2, count_include_pad=False, padding=1)),
        (cct.AdaptiveAvgPool2d(3), torch.nn.AdaptiveAvgPool2d(3)),
    ]
    for ours, theirs in pairs:
        # same parameter names and shapes: PyTorch's state_dict loads as is
        ours.load_state_dict(theirs.state_dict())
        assert torch.allclose(ours(x), theirs(x), rtol=1e-5, atol=1e-5), ours
    x1 = _t(rng, 2, 3, 13, dtype=torch.float32)
    conv1 = torch.nn.Conv1d(3, 5, 3, stride=2, padding=1)
    ours1 = cct.Conv1d(3, 5, 3, stride=2, padding=1)
    ours1.load_state_dict(conv1.state_dict())
    assert torch.allclose(ours1(x1), conv1(x1), rtol=1e-5, atol=1e-5)


def test_default_init_has_pytorch_scale():
    torch.manual_seed(0)
    conv = cct.Conv2d(16, 32, 3)
    bound = 1 / np.sqrt(16 * 9)
    assert conv.weight.abs().max() <= bound and conv.weight.abs().max() > 0.9 * bound
    assert conv.bias.abs().max() <= bound


def test_separable_modules(rng):
    x = _t(rng, 2, 3, 9, 8)
    sep = cct.SeparableConv2d(3, 5, 3, padding=1, depth_multiplier=2, dtype=torch.float64)
    mid = tF.conv2d(x, sep.weight_depthwise, None, 1, 1, groups=3)
    assert torch.allclose(sep(x), tF.conv2d(mid, sep.weight_pointwise, sep.bias), atol=1e-12)

    w_col, w_row = _t(rng, 3, 5), _t(rng, 3, 3)
    kernel = torch.einsum("ci,cj->cij", w_col, w_row)[:, None]
    bias = _t(rng, 3)
    sep1 = cct.SepConv1d.from_depthwise(kernel, bias, padding=(2, 1))
    assert torch.allclose(sep1(x), tF.conv2d(x, kernel, bias, padding=(2, 1), groups=3),
                          atol=1e-10)
    with pytest.raises(ValueError, match="not separable"):
        cct.SepConv1d.from_depthwise(_t(rng, 3, 1, 3, 3))


@pytest.mark.skipif(not cct.HAS_LOCAL, reason="convcore.functional has no locally_connected2d "
                                              "/ tiled_conv2d on this branch")
def test_local_modules(rng):
    x = _t(rng, 2, 3, 9, 8)
    local = cct.LocallyConnected2d(3, 4, 3, input_size=(9, 8), stride=2, padding=1,
                                   dtype=torch.float64)
    assert local(x).shape == (2, 4, 5, 4) and local.weight.shape == (5, 4, 4, 3, 3, 3)
    tiled = cct.TiledConv2d(3, 4, 3, tile_size=1, padding=1, dtype=torch.float64)
    conv_w, conv_b = tiled.weight[0, 0], tiled.bias[0, 0]
    assert torch.allclose(tiled(x), tF.conv2d(x, conv_w, conv_b, padding=1), atol=1e-12)


def _small_model(dtype):
    return torch.nn.Sequential(
        cct.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(),
        cct.DepthwiseConv2d(8, 8, 3, padding=1), cct.MaxPool2d(2),
        cct.SeparableConv2d(8, 6, 3, padding=1), torch.nn.ReLU(), cct.AvgPool2d(2),
        cct.SepConv1d(6, 3, padding=1), torch.nn.Flatten(), torch.nn.Linear(6 * 3 * 3, 4),
    ).to(dtype)


def test_torch_compile_fullgraph(rng):
    """The whole model traces into one graph (fake impls, autograd formulas, backward ops);
    aot_eager runs that graph without code generation, which keeps the test to a few seconds.
    (backend="inductor" works as well; bench/RESULTS.md records it.)"""
    torch.manual_seed(0)
    model = _small_model(torch.float64)
    x = _t(rng, 2, 3, 12, 12)
    compiled = torch.compile(model, backend="aot_eager", fullgraph=True)
    y_eager = model(x)
    g_eager = torch.autograd.grad(y_eager.square().sum(), list(model.parameters()))
    y_comp = compiled(x)
    g_comp = torch.autograd.grad(y_comp.square().sum(), list(model.parameters()))
    assert torch.allclose(y_comp, y_eager, atol=1e-12)
    for a, b in zip(g_comp, g_eager):
        assert torch.allclose(a, b, atol=1e-12)
