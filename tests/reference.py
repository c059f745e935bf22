"""Float64 NumPy references, written from the definitions (never from convcore itself).

Each reference uses the plainest vectorised NumPy that states the formula: explicit zero padding,
a sum over kernel taps of shifted, strided views. Errors are measured by `rel_error`:
max |actual - expected| / max |expected| (a max-norm relative error; elementwise ratios are
meaningless where a sum cancels to near zero).
"""
import numpy as np


def rel_error(actual, expected):
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    if actual.size == 0:
        return 0.0
    if not np.all(np.isfinite(actual) == np.isfinite(expected)):
        return np.inf
    scale = max(np.max(np.abs(expected)), 1e-30)
    finite = np.isfinite(expected)
    return float(np.max(np.abs(actual[finite] - expected[finite]), initial=0.0) / scale)


def assert_close(actual, expected, case, tol):
    err = rel_error(actual, expected)
    assert err <= tol, f"relative error {err:.3g} > {tol:g} for {case}"


def assert_close_sums(actual, expected, abs_scale, case, tol):
    """assert_close for results that are sums which can cancel (a conv's outputs and gradients):
    the error is measured against the same sums over absolute values (`abs_scale`: the reference
    run on |inputs|), the scale float32 rounding works at. With one output element a correct
    float32 sum that cancels to 1/50 of its terms misses a 1e-5 max-norm test of itself."""
    actual = np.asarray(actual, dtype=np.float64)
    if actual.size == 0:
        return
    err = float(np.max(np.abs(actual - expected))) / max(float(np.max(abs_scale)), 1e-30)
    assert err <= tol, f"error {err:.3g} > {tol:g} of the |terms| scale for {case}"


def _pad(x, pads, value=0.0):
    top, bottom, left, right = pads
    return np.pad(x, ((0, 0), (0, 0), (top, bottom), (left, right)), constant_values=value)


def _tap_view(xp, ky, kx, stride, dilation, out_h, out_w):
    sh, sw = stride
    dh, dw = dilation
    return xp[:, :, ky * dh: ky * dh + sh * (out_h - 1) + 1: sh,
              kx * dw: kx * dw + sw * (out_w - 1) + 1: sw]


def out_extent(size, k, s, before, after, d):
    return (size + before + after - d * (k - 1) - 1) // s + 1


def conv2d(x, w, b=None, stride=(1, 1), pads=(0, 0, 0, 0), dilation=(1, 1), groups=1):
    x = np.asarray(x, np.float64)
    w = np.asarray(w, np.float64)
    n, c, h, wd = x.shape
    k, cpg, kh, kw = w.shape
    out_h = out_extent(h, kh, stride[0], pads[0], pads[1], dilation[0])
    out_w = out_extent(wd, kw, stride[1], pads[2], pads[3], dilation[1])
    xp = _pad(x, pads)
    y = np.zeros((n, k, out_h, out_w))
    kpg = k // groups
    for g in range(groups):
        xg = xp[:, g * cpg:(g + 1) * cpg]
        wg = w[g * kpg:(g + 1) * kpg]
        for ky in range(kh):
            for kx in range(kw):
                patch = _tap_view(xg, ky, kx, stride, dilation, out_h, out_w)
                y[:, g * kpg:(g + 1) * kpg] += np.einsum("nchw,kc->nkhw", patch, wg[:, :, ky, kx])
    if b is not None:
        y += np.asarray(b, np.float64)[None, :, None, None]
    return y


def conv2d_backward(dy, x, w, stride=(1, 1), pads=(0, 0, 0, 0), dilation=(1, 1), groups=1):
    """(dx, dw, db) by the transposes of the forward's tap sums."""
    dy = np.asarray(dy, np.float64)
    x = np.asarray(x, np.float64)
    w = np.asarray(w, np.float64)
    n, c, h, wd = x.shape
    k, cpg, kh, kw = w.shape
    out_h, out_w = dy.shape[2:]
    xp = _pad(x, pads)
    dxp = np.zeros_like(xp)
    dw = np.zeros_like(w)
    kpg = k // groups
    for g in range(groups):
        cs, ks = slice(g * cpg, (g + 1) * cpg), slice(g * kpg, (g + 1) * kpg)
        for ky in range(kh):
            for kx in range(kw):
                patch = _tap_view(xp[:, cs], ky, kx, stride, dilation, out_h, out_w)
                dw[ks, :, ky, kx] = np.einsum("nkhw,nchw->kc", dy[:, ks], patch)
                grad_patch = _tap_view(dxp[:, cs], ky, kx, stride, dilation, out_h, out_w)
                grad_patch += np.einsum("nkhw,kc->nchw", dy[:, ks], w[ks, :, ky, kx])
    top, bottom, left, right = pads
    dx = dxp[:, :, top:top + h, left:left + wd]
    db = dy.sum(axis=(0, 2, 3))
    return dx, dw, db


def conv_transpose2d(x, w, b=None, stride=(1, 1), pads=(0, 0, 0, 0), output_padding=(0, 0),
                     dilation=(1, 1), groups=1):
    """Scatter form: every input pixel adds w * x onto the output window it maps to."""
    x = np.asarray(x, np.float64)
    w = np.asarray(w, np.float64)
    n, cin, h, wd = x.shape
    _, cout_pg, kh, kw = w.shape
    cout = cout_pg * groups
    sh, sw = stride
    dh, dw = dilation
    full_h = (h - 1) * sh + dh * (kh - 1) + 1 + output_padding[0]
    full_w = (wd - 1) * sw + dw * (kw - 1) + 1 + output_padding[1]
    full = np.zeros((n, cout, full_h, full_w))
    cin_pg = cin // groups
    for g in range(groups):
        xg = x[:, g * cin_pg:(g + 1) * cin_pg]
        wg = w[g * cin_pg:(g + 1) * cin_pg]
        for ky in range(kh):
            for kx in range(kw):
                contrib = np.einsum("nchw,co->nohw", xg, wg[:, :, ky, kx])
                full[:, g * cout_pg:(g + 1) * cout_pg,
                     ky * dh: ky * dh + sh * (h - 1) + 1: sh,
                     kx * dw: kx * dw + sw * (wd - 1) + 1: sw] += contrib
    top, bottom, left, right = pads
    y = full[:, :, top:full_h - bottom, left:full_w - right]
    if b is not None:
        y = y + np.asarray(b, np.float64)[None, :, None, None]
    return y


def im2col_book(x, kh, kw, stride=1, pad=0):
    """The book's im2col layout, written from its description in ../shared/design.md."""
    x = np.asarray(x, np.float64)
    n, c, h, w = x.shape
    out_h = (h + 2 * pad - kh) // stride + 1
    out_w = (w + 2 * pad - kw) // stride + 1
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    cols = np.empty((n, out_h, out_w, c, kh, kw))
    for ky in range(kh):
        for kx in range(kw):
            cols[:, :, :, :, ky, kx] = xp[:, :, ky:ky + stride * out_h:stride,
                                          kx:kx + stride * out_w:stride].transpose(0, 2, 3, 1)
    return cols.reshape(n * out_h * out_w, -1)


# ---- appended for the separable, 1-D, transposed and im2col tests ---------------------------

def numeric_grad(f, arr, eps=1e-6):
    """Central finite differences of the scalar f() with respect to every element of arr
    (float64, modified in place and restored)."""
    grad = np.zeros_like(arr)
    it = np.nditer(arr, flags=["multi_index"])
    for _ in it:
        i = it.multi_index
        old = arr[i]
        arr[i] = old + eps
        hi = f()
        arr[i] = old - eps
        lo = f()
        arr[i] = old
        grad[i] = (hi - lo) / (2 * eps)
    return grad


def linear_numeric_grad(f, arr):
    """numeric_grad for an f() that is linear in arr (sum(conv(x, w) * dy) in x, in w or in b; an
    average pool). A central difference of a linear function is exact for any step, so the only
    error is rounding, about 1e-16 * |f| / step: a step of 1e-6 makes that 1e-10 and fails a 1e-7
    max-norm test whenever |f| is large beside a small gradient (seen in CI: 2.1e-7 on a
    single-element bias gradient). A unit step keeps it near 1e-15."""
    return numeric_grad(f, arr, eps=1.0)


def conv1d(x, w, b=None, stride=1, pads=(0, 0), dilation=1, groups=1):
    """y[n, k, o] = b[k] + sum_{c in group(k), t} w[k, c, t] * xpad[n, c, o*stride + t*dilation]."""
    x = np.asarray(x, np.float64)
    w = np.asarray(w, np.float64)
    n, c, length = x.shape
    k, cpg, taps = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), pads))
    out = (length + pads[0] + pads[1] - dilation * (taps - 1) - 1) // stride + 1
    y = np.zeros((n, k, out))
    kpg = k // groups
    for g in range(groups):
        for t in range(taps):
            seg = xp[:, g * cpg:(g + 1) * cpg, t * dilation: t * dilation + stride * (out - 1) + 1: stride]
            y[:, g * kpg:(g + 1) * kpg] += np.einsum("ncl,kc->nkl", seg, w[g * kpg:(g + 1) * kpg, :, t])
    if b is not None:
        y += np.asarray(b, np.float64)[None, :, None]
    return y


def conv1d_backward(dy, x, w, stride=1, pads=(0, 0), dilation=1, groups=1):
    """(dx, dw, db) of conv1d, tap by tap."""
    dy = np.asarray(dy, np.float64)
    x = np.asarray(x, np.float64)
    w = np.asarray(w, np.float64)
    n, c, length = x.shape
    k, cpg, taps = w.shape
    out = dy.shape[2]
    xp = np.pad(x, ((0, 0), (0, 0), pads))
    dxp = np.zeros_like(xp)
    dw = np.zeros_like(w)
    kpg = k // groups
    for g in range(groups):
        cs, ks = slice(g * cpg, (g + 1) * cpg), slice(g * kpg, (g + 1) * kpg)
        for t in range(taps):
            window = slice(t * dilation, t * dilation + stride * (out - 1) + 1, stride)
            dw[ks, :, t] = np.einsum("nkl,ncl->kc", dy[:, ks], xp[:, cs, window])
            dxp[:, cs, window] += np.einsum("nkl,kc->ncl", dy[:, ks], w[ks, :, t])
    return dxp[:, :, pads[0]:pads[0] + length], dw, dy.sum(axis=(0, 2))


def conv_transpose2d_backward(dy, x, w, stride=(1, 1), pads=(0, 0, 0, 0), output_padding=(0, 0),
                              dilation=(1, 1), groups=1):
    """(dx, dw, db) of the scatter form in conv_transpose2d: dy is placed back on the uncropped
    canvas, and every tap's scatter becomes a gather."""
    dy = np.asarray(dy, np.float64)
    x = np.asarray(x, np.float64)
    w = np.asarray(w, np.float64)
    n, cin, h, wd = x.shape
    _, cout_pg, kh, kw = w.shape
    sh, sw = stride
    dh, dw_ = dilation
    full_h = (h - 1) * sh + dh * (kh - 1) + 1 + output_padding[0]
    full_w = (wd - 1) * sw + dw_ * (kw - 1) + 1 + output_padding[1]
    top, bottom, left, right = pads
    full = np.zeros((n, cout_pg * groups, full_h, full_w))
    full[:, :, top:full_h - bottom, left:full_w - right] = dy
    dx = np.zeros_like(x)
    dw = np.zeros_like(w)
    cin_pg = cin // groups
    for g in range(groups):
        ci, co = slice(g * cin_pg, (g + 1) * cin_pg), slice(g * cout_pg, (g + 1) * cout_pg)
        for ky in range(kh):
            for kx in range(kw):
                view = full[:, co, ky * dh: ky * dh + sh * (h - 1) + 1: sh,
                            kx * dw_: kx * dw_ + sw * (wd - 1) + 1: sw]
                dx[:, ci] += np.einsum("nohw,co->nchw", view, w[ci, :, ky, kx])
                dw[ci, :, ky, kx] = np.einsum("nchw,nohw->co", x[:, ci], view)
    return dx, dw, dy.sum(axis=(0, 2, 3))


def im2col(x, kh, kw, stride=(1, 1), pads=(0, 0, 0, 0), dilation=(1, 1)):
    """The book's layout generalised to asymmetric padding, pair strides and dilation:
    row (n, oy, ox), column (c, ky, kx) = xpad[n, c, oy*sh + ky*dh, ox*sw + kx*dw]."""
    x = np.asarray(x, np.float64)
    n, c, h, w = x.shape
    out_h = out_extent(h, kh, stride[0], pads[0], pads[1], dilation[0])
    out_w = out_extent(w, kw, stride[1], pads[2], pads[3], dilation[1])
    xp = _pad(x, pads)
    cols = np.empty((n, out_h, out_w, c, kh, kw))
    for ky in range(kh):
        for kx in range(kw):
            cols[..., ky, kx] = _tap_view(xp, ky, kx, stride, dilation, out_h, out_w).transpose(0, 2, 3, 1)
    return cols.reshape(n * out_h * out_w, c * kh * kw)


def col2im(col, x_shape, kh, kw, stride=(1, 1), pads=(0, 0, 0, 0), dilation=(1, 1)):
    """Adds every entry of an im2col matrix back onto its input position (padding dropped)."""
    n, c, h, w = x_shape
    out_h = out_extent(h, kh, stride[0], pads[0], pads[1], dilation[0])
    out_w = out_extent(w, kw, stride[1], pads[2], pads[3], dilation[1])
    cols = np.asarray(col, np.float64).reshape(n, out_h, out_w, c, kh, kw)
    xp = np.zeros((n, c, h + pads[0] + pads[1], w + pads[2] + pads[3]))
    for ky in range(kh):
        for kx in range(kw):
            _tap_view(xp, ky, kx, stride, dilation, out_h, out_w)[...] += cols[..., ky, kx].transpose(0, 3, 1, 2)
    return xp[:, :, pads[0]:pads[0] + h, pads[2]:pads[2] + w]


def sepconv2d_1d(x, w_col, w_row, b=None, stride=(1, 1), pads=(0, 0, 0, 0), dilation=(1, 1)):
    """Column pass then row pass, each a plain 1-D tap sum over a zero-padded axis."""
    x = np.asarray(x, np.float64)
    w_col = np.asarray(w_col, np.float64)
    w_row = np.asarray(w_row, np.float64)
    n, c, h, w = x.shape
    kh, kw = w_col.shape[1], w_row.shape[1]
    out_h = out_extent(h, kh, stride[0], pads[0], pads[1], dilation[0])
    out_w = out_extent(w, kw, stride[1], pads[2], pads[3], dilation[1])
    xp = _pad(x, (pads[0], pads[1], 0, 0))
    mid = np.zeros((n, c, out_h, w))
    for t in range(kh):
        rows = xp[:, :, t * dilation[0]: t * dilation[0] + stride[0] * (out_h - 1) + 1: stride[0]]
        mid += rows * w_col[None, :, t, None, None]
    mp = _pad(mid, (0, 0, pads[2], pads[3]))
    y = np.zeros((n, c, out_h, out_w))
    for t in range(kw):
        cols = mp[..., t * dilation[1]: t * dilation[1] + stride[1] * (out_w - 1) + 1: stride[1]]
        y += cols * w_row[None, :, t, None, None]
    if b is not None:
        y += np.asarray(b, np.float64)[None, :, None, None]
    return y


def outer_kernel(w_col, w_row):
    """(C, kh), (C, kw) -> the depthwise kernel (C, 1, kh, kw) with w[c, 0] = outer(w_col[c], w_row[c])."""
    return np.einsum("ci,cj->cij", np.asarray(w_col, np.float64), np.asarray(w_row, np.float64))[:, None]
