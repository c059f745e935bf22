"""The NumPy baseline: convolution as "Deep Learning from Scratch" does it (im2col into a
(N*out_h*out_w, C*kh*kw) matrix, one matmul, a reshape), written here for the benchmark.

It is the code convcore's users start from, so "x numpy" in the table is the speed-up they
see by switching. Like the book, forward returns the transposed view of the matmul result
without a copy. Grouped/depthwise convolutions run one matmul per group (batched by np.matmul).
"""
import numpy as np


def out_extent(size, kernel, stride, pad_before, pad_after, dilation=1):
    return (size + pad_before + pad_after - dilation * (kernel - 1) - 1) // stride + 1


def im2col6(x, kh, kw, stride, pad):
    """(N, C, H, W) -> (N, C, kh, kw, out_h, out_w), the book's intermediate before the transpose.
    stride = (sh, sw); pad = (top, bottom, left, right)."""
    n, c, h, w = x.shape
    sh, sw = stride
    top, bottom, left, right = pad
    out_h = out_extent(h, kh, sh, top, bottom)
    out_w = out_extent(w, kw, sw, left, right)
    img = np.pad(x, [(0, 0), (0, 0), (top, bottom), (left, right)]) if any(pad) else x
    col = np.empty((n, c, kh, kw, out_h, out_w), dtype=x.dtype)
    for ky in range(kh):
        y_end = ky + sh * out_h
        for kx in range(kw):
            x_end = kx + sw * out_w
            col[:, :, ky, kx, :, :] = img[:, :, ky:y_end:sh, kx:x_end:sw]
    return col


def im2col(x, kh, kw, stride, pad):
    """The book's layout: rows (n, y, x), columns (c, ky, kx)."""
    col = im2col6(x, kh, kw, stride, pad)
    n, c, _, _, out_h, out_w = col.shape
    return col.transpose(0, 4, 5, 1, 2, 3).reshape(n * out_h * out_w, -1), out_h, out_w


def conv2d(x, w, b, stride, pad, groups=1):
    n = x.shape[0]
    k, c_per_group, kh, kw = w.shape
    if groups == 1:
        col, out_h, out_w = im2col(x, kh, kw, stride, pad)
        out = col @ w.reshape(k, -1).T
        if b is not None:
            out += b
        return out.reshape(n, out_h, out_w, k).transpose(0, 3, 1, 2)
    # grouped: (G, N*out_h*out_w, Cg*kh*kw) @ (G, Cg*kh*kw, Kg)
    col = im2col6(x, kh, kw, stride, pad)
    _, c, _, _, out_h, out_w = col.shape
    k_per_group = k // groups
    col = col.reshape(n, groups, c_per_group, kh, kw, out_h, out_w)
    col = col.transpose(1, 0, 5, 6, 2, 3, 4).reshape(groups, n * out_h * out_w, c_per_group * kh * kw)
    wg = w.reshape(groups, k_per_group, c_per_group * kh * kw).transpose(0, 2, 1)
    out = np.matmul(col, wg)  # (G, N*out_h*out_w, Kg)
    out = out.reshape(groups, n, out_h, out_w, k_per_group).transpose(1, 0, 4, 2, 3)
    out = out.reshape(n, k, out_h, out_w)
    if b is not None:
        out = out + b.reshape(1, k, 1, 1)
    return out


def col2im(col6, out_shape, stride, pad):
    """Adjoint of im2col6: sums (N, C, kh, kw, in_h, in_w) windows back onto (N, C, H, W)."""
    n, c, kh, kw, in_h, in_w = col6.shape
    _, _, h, w = out_shape
    sh, sw = stride
    top, bottom, left, right = pad
    img = np.zeros((n, c, h + top + bottom + sh - 1, w + left + right + sw - 1), dtype=col6.dtype)
    for ky in range(kh):
        y_end = ky + sh * in_h
        for kx in range(kw):
            x_end = kx + sw * in_w
            img[:, :, ky:y_end:sh, kx:x_end:sw] += col6[:, :, ky, kx, :, :]
    return img[:, :, top:top + h, left:left + w]


def conv_transpose2d(x, w, b, stride, pad, out_hw):
    """The book's Deconvolution: one matmul into columns, then col2im (groups == 1)."""
    n, c_in, h, wd = x.shape
    _, c_out, kh, kw = w.shape
    col = x.transpose(0, 2, 3, 1).reshape(n * h * wd, c_in) @ w.reshape(c_in, -1)
    col6 = col.reshape(n, h, wd, c_out, kh, kw).transpose(0, 3, 4, 5, 1, 2)
    y = col2im(col6, (n, c_out) + tuple(out_hw), stride, pad)
    if b is not None:
        y = y + b.reshape(1, -1, 1, 1)
    return y


def pool2d(x, kernel, stride, pad, mode):
    """The book's Pooling.forward (im2col, then max or mean over each window's row)."""
    n, c, _, _ = x.shape
    col, out_h, out_w = im2col(x, kernel, kernel, (stride, stride), (pad,) * 4)
    col = col.reshape(-1, kernel * kernel)
    out = np.max(col, axis=1) if mode == "max" else np.mean(col, axis=1)
    return out.reshape(n, out_h, out_w, c).transpose(0, 3, 1, 2)
