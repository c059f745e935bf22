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
