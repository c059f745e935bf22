"""float64 NumPy references for the pooling family, written from the definitions (PyTorch's
conventions), not from convcore's code.

Max pooling: padding is -inf and never chosen; a tap replaces the running maximum when it is
greater or is NaN (PyTorch's rule: ties keep the first maximum in (ky, kx) order, the last NaN
wins); if nothing beats -inf the index is the window's first valid position.
Average pooling: the window [o*s - p, o*s - p + k) is clipped to the padded input, which gives
the count_include_pad divisor, then to the input, which gives the summed elements (and the
divisor without count_include_pad); divisor_override replaces both.
Adaptive pooling: window i spans [floor(i*in/out), ceil((i+1)*in/out)).
"""
import numpy as np


def pool_out_extent(size, k, s, pad, d, ceil_mode):
    span = d * (k - 1) + 1
    room = size + 2 * pad - span
    if ceil_mode:
        out = -(-room // s) + 1
        # the last window must start inside the input or the leading padding
        if (out - 1) * s >= size + pad:
            out -= 1
    else:
        out = room // s + 1
    return out


def has_empty_window(size, k, s, pad, d, ceil_mode):
    """True when some window sees only padding (convcore rejects such configurations)."""
    out = pool_out_extent(size, k, s, pad, d, ceil_mode)
    for o in range(out):
        taps = o * s - pad + d * np.arange(k)
        if not np.any((taps >= 0) & (taps < size)):
            return True
    return False


def _tap(a, ky, kx, stride, dilation, out_h, out_w):
    """a[..., ky*dh + oy*sh, kx*dw + ox*sw] for all (oy, ox)."""
    sh, sw = stride
    dh, dw = dilation
    return a[..., ky * dh: ky * dh + sh * (out_h - 1) + 1: sh,
             kx * dw: kx * dw + sw * (out_w - 1) + 1: sw]


def _padded(x, kernel, stride, padding, dilation, out_hw, fill):
    """x padded by `padding` before and enough after that every tap of every window exists."""
    n, c, h, w = x.shape
    extents = []
    for size, k, s, p, d, out in zip((h, w), kernel, stride, padding, dilation, out_hw):
        extents.append(max(size + 2 * p, (out - 1) * s + d * (k - 1) + 1))
    xp = np.full((n, c, extents[0], extents[1]), fill, dtype=np.float64)
    xp[:, :, padding[0]:padding[0] + h, padding[1]:padding[1] + w] = x
    positions = np.full(extents, -1, dtype=np.int64)
    positions[padding[0]:padding[0] + h, padding[1]:padding[1] + w] = np.arange(h * w).reshape(h, w)
    return xp, positions


def max_pool2d(x, kernel, stride, padding, dilation=(1, 1), ceil_mode=False):
    """Returns (y, indices)."""
    x = np.asarray(x, np.float64)
    n, c, h, w = x.shape
    out_h = pool_out_extent(h, kernel[0], stride[0], padding[0], dilation[0], ceil_mode)
    out_w = pool_out_extent(w, kernel[1], stride[1], padding[1], dilation[1], ceil_mode)
    xp, positions = _padded(x, kernel, stride, padding, dilation, (out_h, out_w), -np.inf)
    best = np.full((n, c, out_h, out_w), -np.inf)
    index = np.full((n, c, out_h, out_w), -1, dtype=np.int64)
    for ky in range(kernel[0]):
        for kx in range(kernel[1]):
            v = _tap(xp, ky, kx, stride, dilation, out_h, out_w)
            pos = np.broadcast_to(_tap(positions, ky, kx, stride, dilation, out_h, out_w), v.shape)
            valid = pos >= 0
            take = valid & ((v > best) | np.isnan(v))
            best = np.where(take, v, best)
            index = np.where(take, pos, index)
            index = np.where((index < 0) & valid, pos, index)
    return best, index


def scatter_to_argmax(dy, index, x_shape):
    """dx[n, c].flat[index] += dy, summing where windows share their argmax."""
    n, c, h, w = x_shape
    dx = np.zeros((n * c, h * w))
    flat_dy = np.asarray(dy, np.float64).reshape(n * c, -1)
    flat_idx = index.reshape(n * c, -1)
    for plane in range(n * c):
        np.add.at(dx[plane], flat_idx[plane], flat_dy[plane])
    return dx.reshape(x_shape)


def max_pool2d_backward(dy, x, kernel, stride, padding, dilation=(1, 1), ceil_mode=False):
    _, index = max_pool2d(x, kernel, stride, padding, dilation, ceil_mode)
    return scatter_to_argmax(dy, index, x.shape)


def avg_divisors(h, w, kernel, stride, padding, out_h, out_w, count_include_pad, divisor_override):
    """The (out_h, out_w) array of divisors, and the clipped row/column spans."""
    def spans(size, k, s, p, out):
        start = np.arange(out) * s - p
        stop = np.minimum(start + k, size + p)
        padded_len = stop - start
        return np.maximum(start, 0), np.minimum(stop, size), padded_len
    r0, r1, rlen = spans(h, kernel[0], stride[0], padding[0], out_h)
    c0, c1, clen = spans(w, kernel[1], stride[1], padding[1], out_w)
    if divisor_override is not None:
        div = np.full((out_h, out_w), float(divisor_override))
    elif count_include_pad:
        div = np.outer(rlen, clen).astype(np.float64)
    else:
        div = np.outer(r1 - r0, c1 - c0).astype(np.float64)
    return div


def avg_pool2d(x, kernel, stride, padding, ceil_mode=False, count_include_pad=True,
               divisor_override=None):
    x = np.asarray(x, np.float64)
    n, c, h, w = x.shape
    out_h = pool_out_extent(h, kernel[0], stride[0], padding[0], 1, ceil_mode)
    out_w = pool_out_extent(w, kernel[1], stride[1], padding[1], 1, ceil_mode)
    xp, _ = _padded(x, kernel, stride, padding, (1, 1), (out_h, out_w), 0.0)
    total = np.zeros((n, c, out_h, out_w))
    for ky in range(kernel[0]):
        for kx in range(kernel[1]):
            total += _tap(xp, ky, kx, stride, (1, 1), out_h, out_w)
    return total / avg_divisors(h, w, kernel, stride, padding, out_h, out_w, count_include_pad,
                                divisor_override)


def avg_pool2d_backward(dy, x, kernel, stride, padding, ceil_mode=False, count_include_pad=True,
                        divisor_override=None):
    dy = np.asarray(dy, np.float64)
    n, c, h, w = x.shape
    out_h, out_w = dy.shape[2:]
    g = dy / avg_divisors(h, w, kernel, stride, padding, out_h, out_w, count_include_pad,
                          divisor_override)
    dxp, _ = _padded(np.zeros(x.shape), kernel, stride, padding, (1, 1), (out_h, out_w), 0.0)
    for ky in range(kernel[0]):
        for kx in range(kernel[1]):
            _tap(dxp, ky, kx, stride, (1, 1), out_h, out_w)[...] += g
    # what landed in the padding (or past it) belongs to no input element
    return dxp[:, :, padding[0]:padding[0] + h, padding[1]:padding[1] + w]


def adaptive_spans(size, out):
    return [((i * size) // out, -((-(i + 1) * size) // out)) for i in range(out)]


def adaptive_avg_pool2d(x, output_size):
    x = np.asarray(x, np.float64)
    n, c, h, w = x.shape
    y = np.empty((n, c) + tuple(output_size))
    for oy, (y0, y1) in enumerate(adaptive_spans(h, output_size[0])):
        for ox, (x0, x1) in enumerate(adaptive_spans(w, output_size[1])):
            y[:, :, oy, ox] = x[:, :, y0:y1, x0:x1].mean(axis=(2, 3))
    return y


def adaptive_avg_pool2d_backward(dy, x_shape):
    dy = np.asarray(dy, np.float64)
    n, c, h, w = x_shape
    dx = np.zeros(x_shape)
    for oy, (y0, y1) in enumerate(adaptive_spans(h, dy.shape[2])):
        for ox, (x0, x1) in enumerate(adaptive_spans(w, dy.shape[3])):
            dx[:, :, y0:y1, x0:x1] += dy[:, :, oy, ox, None, None] / ((y1 - y0) * (x1 - x0))
    return dx


def adaptive_max_pool2d(x, output_size):
    """Returns (y, indices), with max_pool2d's tie and NaN rules over each window in row-major order."""
    x = np.asarray(x, np.float64)
    n, c, h, w = x.shape
    y = np.empty((n, c) + tuple(output_size))
    index = np.empty((n, c) + tuple(output_size), dtype=np.int64)
    for oy, (y0, y1) in enumerate(adaptive_spans(h, output_size[0])):
        for ox, (x0, x1) in enumerate(adaptive_spans(w, output_size[1])):
            best = np.full((n, c), -np.inf)
            best_index = np.full((n, c), y0 * w + x0, dtype=np.int64)
            for iy in range(y0, y1):
                for ix in range(x0, x1):
                    v = x[:, :, iy, ix]
                    take = (v > best) | np.isnan(v)
                    best = np.where(take, v, best)
                    best_index = np.where(take, iy * w + ix, best_index)
            y[:, :, oy, ox] = best
            index[:, :, oy, ox] = best_index
    return y, index
