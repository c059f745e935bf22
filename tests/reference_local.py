"""Float64 NumPy references for locally connected and tiled convolution, from the definition:
output (oy, ox) uses kernel w[oy % t_h, ox % t_w] (t = (out_h, out_w) for locally connected).
Each kernel is first expanded to one per output position, then every tap is an einsum over
(position, K, C)."""
import numpy as np

from reference import _pad, _tap_view, out_extent


def _geometry(x, w, stride, pads, dilation):
    n, c, h, wd = x.shape
    th, tw, k, _, kh, kw = w.shape
    out_h = out_extent(h, kh, stride[0], pads[0], pads[1], dilation[0])
    out_w = out_extent(wd, kw, stride[1], pads[2], pads[3], dilation[1])
    ty = (np.arange(out_h) % th)[:, None]
    tx = (np.arange(out_w) % tw)[None, :]
    return out_h, out_w, ty, tx


def tiled_conv2d(x, w, b=None, stride=(1, 1), pads=(0, 0, 0, 0), dilation=(1, 1)):
    x = np.asarray(x, np.float64)
    w = np.asarray(w, np.float64)
    out_h, out_w, ty, tx = _geometry(x, w, stride, pads, dilation)
    w_full = w[ty, tx]                     # (out_h, out_w, K, C, kh, kw)
    xp = _pad(x, pads)
    y = np.zeros((x.shape[0], w.shape[2], out_h, out_w))
    for ky in range(w.shape[4]):
        for kx in range(w.shape[5]):
            patch = _tap_view(xp, ky, kx, stride, dilation, out_h, out_w)
            y += np.einsum("nchw,hwkc->nkhw", patch, w_full[..., ky, kx])
    if b is not None:
        y += np.asarray(b, np.float64)[ty, tx].transpose(2, 0, 1)[None]
    return y


def tiled_conv2d_backward(dy, x, w, stride=(1, 1), pads=(0, 0, 0, 0), dilation=(1, 1)):
    """(dx, dw, db): the transposes of the forward's tap sums; per-position gradients are then
    summed onto the kernel each position uses."""
    dy = np.asarray(dy, np.float64)
    x = np.asarray(x, np.float64)
    w = np.asarray(w, np.float64)
    out_h, out_w, ty, tx = _geometry(x, w, stride, pads, dilation)
    w_full = w[ty, tx]
    xp = _pad(x, pads)
    dxp = np.zeros_like(xp)
    dw_full = np.zeros_like(w_full)
    for ky in range(w.shape[4]):
        for kx in range(w.shape[5]):
            patch = _tap_view(xp, ky, kx, stride, dilation, out_h, out_w)
            dw_full[..., ky, kx] = np.einsum("nkhw,nchw->hwkc", dy, patch)
            grad_patch = _tap_view(dxp, ky, kx, stride, dilation, out_h, out_w)
            grad_patch += np.einsum("nkhw,hwkc->nchw", dy, w_full[..., ky, kx])
    top, _, left, _ = pads
    dx = dxp[:, :, top:top + x.shape[2], left:left + x.shape[3]]
    ty_b, tx_b = np.broadcast_arrays(ty, tx)
    dw = np.zeros_like(w)
    np.add.at(dw, (ty_b, tx_b), dw_full)
    db = np.zeros(w.shape[:3])
    np.add.at(db, (ty_b, tx_b), dy.sum(axis=0).transpose(1, 2, 0))
    return dx, dw, db
