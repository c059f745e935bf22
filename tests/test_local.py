"""locally_connected2d and tiled_conv2d, forward and backward, against the float64 NumPy
reference (tests/reference_local.py), by finite differences, against conv2d where they must
equal it, and on bad input."""
import numpy as np
import pytest

import convcore.functional as F
from convcore.layers import LocallyConnected, TiledConv

from cases import randn, small_ints
from reference import assert_close, conv2d as ref_conv2d, conv2d_backward as ref_conv2d_backward
from reference import linear_numeric_grad, out_extent
from reference_local import tiled_conv2d as ref_tiled, tiled_conv2d_backward as ref_tiled_backward

TOL = {np.float32: 1e-5, np.float64: 1e-12}
ALGOS = ("auto", "reference")


def random_local_case(rng, unshared, dilated=True):
    """Odd sizes, stride > kernel, padding up to beyond kernel/2, dilation, batch 1, 1x1 outputs,
    tiles larger than the output (unused kernels)."""
    n = int(rng.choice([1, 1, 2, 3]))
    c, k = (int(v) for v in rng.integers(1, 5, size=2))
    kh, kw = (int(v) for v in rng.integers(1, 5, size=2))
    stride = tuple(int(v) for v in rng.integers(1, 4, size=2))
    dilation = tuple(int(v) for v in rng.choice([1, 1, 2], size=2)) if dilated else (1, 1)
    pads = tuple(int(v) for v in rng.integers(0, 4, size=4)) if rng.random() < 0.7 else (0, 0, 0, 0)
    span_h, span_w = dilation[0] * (kh - 1) + 1, dilation[1] * (kw - 1) + 1
    h = max(1, span_h - pads[0] - pads[1]) + int(rng.integers(0, 7))
    w = max(1, span_w - pads[2] - pads[3]) + int(rng.integers(0, 7))
    out_h = out_extent(h, kh, stride[0], pads[0], pads[1], dilation[0])
    out_w = out_extent(w, kw, stride[1], pads[2], pads[3], dilation[1])
    tile = (out_h, out_w) if unshared else tuple(int(v) for v in rng.integers(1, 5, size=2))
    return dict(x_shape=(n, c, h, w), w_shape=tile + (k, c, kh, kw), stride=stride, pads=pads,
                dilation=dilation, y_shape=(n, k, out_h, out_w))


def _ops(unshared):
    if unshared:
        return F.locally_connected2d, F.locally_connected2d_backward
    return F.tiled_conv2d, F.tiled_conv2d_backward


def _run_case(rng, case, dtype, unshared):
    fwd, bwd = _ops(unshared)
    x = randn(rng, case["x_shape"], dtype)
    w = randn(rng, case["w_shape"], dtype)
    b = randn(rng, case["w_shape"][:3], dtype)
    dy = randn(rng, case["y_shape"], dtype)
    geo = (case["stride"], case["pads"], case["dilation"])
    kw = dict(stride=case["stride"], padding=case["pads"], dilation=case["dilation"])
    y_ref = ref_tiled(x, w, b, *geo)
    dx_ref, dw_ref, db_ref = ref_tiled_backward(dy, x, w, *geo)
    for algo in ALGOS:
        y = fwd(x, w, b, algo=algo, **kw)
        assert y.dtype == dtype
        assert_close(y, y_ref, f"forward {algo} {case}", TOL[dtype])
        dx, dw, db = bwd(dy, x, w, algo=algo, **kw)
        assert_close(dx, dx_ref, f"dx {algo} {case}", TOL[dtype])
        assert_close(dw, dw_ref, f"dw {algo} {case}", TOL[dtype])
        assert_close(db, db_ref, f"db {algo} {case}", TOL[dtype])


@pytest.mark.parametrize("unshared", [True, False], ids=["locally_connected", "tiled"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case_id", range(25))
def test_against_reference(rng, case_id, dtype, unshared):
    _run_case(rng, random_local_case(rng, unshared), dtype, unshared)


@pytest.mark.parametrize("unshared", [True, False], ids=["locally_connected", "tiled"])
@pytest.mark.parametrize("case_id", range(15))
def test_fast_equals_reference_exactly_on_small_integers(rng, case_id, unshared):
    """Exact sums in float32: any difference between the GEMM kernel and the loops is an
    indexing bug a tolerance could hide."""
    fwd, bwd = _ops(unshared)
    case = random_local_case(rng, unshared)
    x = small_ints(rng, case["x_shape"], np.float32)
    w = small_ints(rng, case["w_shape"], np.float32)
    b = small_ints(rng, case["w_shape"][:3], np.float32)
    dy = small_ints(rng, case["y_shape"], np.float32)
    kw = dict(stride=case["stride"], padding=case["pads"], dilation=case["dilation"])
    np.testing.assert_array_equal(fwd(x, w, b, **kw), fwd(x, w, b, algo="reference", **kw))
    for fast, ref in zip(bwd(dy, x, w, **kw), bwd(dy, x, w, algo="reference", **kw)):
        np.testing.assert_array_equal(fast, ref, err_msg=str(case))


@pytest.mark.parametrize("unshared", [True, False], ids=["locally_connected", "tiled"])
@pytest.mark.parametrize("case_id", range(3))
def test_finite_differences_float64(rng, case_id, unshared):
    fwd, bwd = _ops(unshared)
    case = random_local_case(rng, unshared)
    case["x_shape"] = (1,) + case["x_shape"][1:]
    case["y_shape"] = (1,) + case["y_shape"][1:]
    x = randn(rng, case["x_shape"], np.float64)
    w = randn(rng, case["w_shape"], np.float64)
    b = randn(rng, case["w_shape"][:3], np.float64)
    dy = randn(rng, case["y_shape"], np.float64)
    kw = dict(stride=case["stride"], padding=case["pads"], dilation=case["dilation"])

    def loss():
        return float(np.sum(fwd(x, w, b, **kw) * dy))

    dx, dw, db = bwd(dy, x, w, **kw)
    for name, analytic, arr in (("dx", dx, x), ("dw", dw, w), ("db", db, b)):
        assert_close(analytic, linear_numeric_grad(loss, arr), f"finite differences {name} {case}", 1e-7)


def _conv_case(rng):
    x = randn(rng, (2, 3, 11, 9), np.float64)
    w = randn(rng, (4, 3, 3, 2), np.float64)
    b = randn(rng, (4,), np.float64)
    kw = dict(stride=(2, 1), padding=(1, 0, 2, 1), dilation=(1, 2))
    return x, w, b, kw


def test_tiled_with_one_tile_is_conv2d(rng):
    x, w, b, kw = _conv_case(rng)
    y = F.conv2d(x, w, b, **kw)
    dy = randn(rng, y.shape, np.float64)
    assert_close(F.tiled_conv2d(x, w[None, None], b[None, None], **kw), y, "tiled t=1", 1e-13)
    dx, dw, db = F.tiled_conv2d_backward(dy, x, w[None, None], **kw)
    cdx, cdw, cdb = F.conv2d_backward(dy, x, w, **kw)
    assert_close(dx, cdx, "dx", 1e-13)
    assert_close(dw[0, 0], cdw, "dw", 1e-13)
    assert_close(db[0, 0], cdb, "db", 1e-13)


def test_locally_connected_with_identical_weights_is_conv2d(rng):
    x, w, b, kw = _conv_case(rng)
    y = F.conv2d(x, w, b, **kw)
    out_h, out_w = y.shape[2:]
    w_lc = np.ascontiguousarray(np.broadcast_to(w, (out_h, out_w) + w.shape))
    b_lc = np.ascontiguousarray(np.broadcast_to(b, (out_h, out_w) + b.shape))
    assert_close(F.locally_connected2d(x, w_lc, b_lc, **kw), y, "identical weights", 1e-13)
    dy = randn(rng, y.shape, np.float64)
    dx, dw, db = F.locally_connected2d_backward(dy, x, w_lc, **kw)
    cdx, cdw, cdb = F.conv2d_backward(dy, x, w, **kw)
    assert_close(dx, cdx, "dx", 1e-13)
    # the conv's kernel gradient is the sum of the per-position gradients
    assert_close(dw.sum(axis=(0, 1)), cdw, "dw", 1e-13)
    assert_close(db.sum(axis=(0, 1)), cdb, "db", 1e-13)


def test_unused_tile_kernels_get_zero_gradient(rng):
    x = randn(rng, (2, 2, 4, 4), np.float32)
    w = randn(rng, (5, 3, 3, 2, 3, 3), np.float32)   # output is 2x2: tiles 2.. are never used
    dy = randn(rng, (2, 3, 2, 2), np.float32)
    _, dw, db = F.tiled_conv2d_backward(dy, x, w)
    assert np.all(dw[2:] == 0) and np.all(dw[:, 2:] == 0)
    assert np.all(db[2:] == 0) and np.any(dw[:2, :2] != 0)


def test_many_images_run_in_chunks(rng):
    """Large enough that the kernel gathers the batch in several chunks (kChunkElems): the
    weight gradient accumulates across them."""
    x = randn(rng, (3, 48, 130, 130), np.float32)
    w = randn(rng, (8, 48, 3, 3), np.float32)
    dy = randn(rng, (3, 8, 128, 128), np.float32)
    assert_close(F.tiled_conv2d(x, w[None, None]), ref_conv2d(x, w), "chunked forward", 1e-5)
    dx, dw, _ = F.tiled_conv2d_backward(dy, x, w[None, None], need=("x", "w"))
    rdx, rdw, _ = ref_conv2d_backward(dy, x, w)
    assert_close(dx, rdx, "chunked dx", 1e-5)
    assert_close(dw[0, 0], rdw, "chunked dw", 1e-5)


@pytest.mark.parametrize("cls,unshared", [(LocallyConnected, True), (TiledConv, False)])
def test_layers_forward_backward(rng, cls, unshared):
    case = random_local_case(rng, unshared, dilated=False)   # the book's layers have no dilation
    x = randn(rng, case["x_shape"], np.float32)
    W = randn(rng, case["w_shape"], np.float64)          # the book's float64 weights
    b = randn(rng, case["w_shape"][:3], np.float64)
    layer = cls(W, b, stride=case["stride"], pad=case["pads"])
    geo = (case["stride"], case["pads"], (1, 1))
    y = layer.forward(x)
    assert y.dtype == np.float64
    assert_close(y, ref_tiled(x, W, b, *geo), f"layer forward {case}", 1e-12)
    dy = randn(rng, y.shape, np.float64)
    dx = layer.backward(dy)
    rdx, rdw, rdb = ref_tiled_backward(dy, x, W, *geo)
    assert_close(dx, rdx, "layer dx", 1e-12)
    assert_close(layer.dW, rdw, "layer dW", 1e-12)
    assert_close(layer.db, rdb, "layer db", 1e-12)


f32 = np.float32


def _z(*shape, dtype=f32):
    return np.full(shape, 0.5, dtype)


BAD = [
    (lambda: F.locally_connected2d(_z(1, 2, 5, 5), _z(2, 3, 3, 2, 3)), ValueError, "w must be 6-D"),
    (lambda: F.locally_connected2d(_z(1, 2, 5, 5), _z(2, 2, 3, 2, 3, 3)), ValueError, "(out_h, out_w) = (3, 3)"),
    (lambda: F.tiled_conv2d(_z(1, 2, 5, 5), _z(2, 2, 3, 4, 3, 3)), ValueError, "w.shape[3]=4"),
    (lambda: F.tiled_conv2d(_z(1, 2, 5, 5), _z(0, 2, 3, 2, 3, 3)), ValueError, "positive extents"),
    (lambda: F.tiled_conv2d(_z(1, 2, 2, 2), _z(1, 1, 3, 2, 3, 3)), ValueError, "smaller than the dilated kernel"),
    (lambda: F.tiled_conv2d(_z(1, 2, 5, 5), _z(2, 2, 3, 2, 3, 3), _z(3)), ValueError, "bias must have shape"),
    (lambda: F.tiled_conv2d(_z(1, 2, 5, 5), _z(2, 2, 3, 2, 3, 3, dtype=np.float64)), TypeError, "w"),
    (lambda: F.tiled_conv2d(_z(1, 2, 5, 5).astype(np.int32), _z(2, 2, 3, 2, 3, 3)), TypeError, "x must be float32"),
    (lambda: F.tiled_conv2d(_z(1, 2, 5, 5), _z(2, 2, 3, 2, 3, 3), stride=0), ValueError, "stride must be positive"),
    (lambda: F.tiled_conv2d(_z(1, 2, 5, 5), _z(2, 2, 3, 2, 3, 3), padding=-1), ValueError, "padding"),
    (lambda: F.tiled_conv2d(_z(1, 2, 5, 5), _z(2, 2, 3, 2, 3, 3), algo="winograd"), ValueError, "unknown algo"),
    (lambda: F.tiled_conv2d(_z(1, 2, 5, 5), _z(2, 2, 3, 2, 3, 3), algo=3), TypeError, "algo"),
    (lambda: F.tiled_conv2d_backward(_z(1, 3, 2, 3), _z(1, 2, 5, 5), _z(2, 2, 3, 2, 3, 3)), ValueError, "dy has shape"),
    (lambda: F.locally_connected2d_backward(_z(1, 3, 3, 3), _z(1, 2, 5, 5), _z(3, 3, 3, 2, 3, 3), need=("q",)), ValueError, "need"),
]


@pytest.mark.parametrize("call,exc_type,fragment", BAD)
def test_bad_input_is_refused_by_name(call, exc_type, fragment):
    with pytest.raises(exc_type) as info:
        call()
    assert fragment in str(info.value)
