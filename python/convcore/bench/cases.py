"""One class per kind of row: it knows its shapes, its FLOP and byte counts, and how to run it
in convcore, PyTorch and NumPy. Every runner is a zero-argument callable built once, so timing
measures the op and not argument parsing in the harness.

A runner that cannot exist in this build raises NotAvailable with the reason that the table
prints in its place ("op not built", "torch not installed", ...).
"""
import numpy as np

import convcore.functional as F
from convcore import _cpu

from . import numpy_baseline as npb

F32 = 4  # bytes per float32


class NotAvailable(Exception):
    """This runner cannot run here; str(exc) is what the table prints instead of a time."""


def _op(name):
    fn = getattr(F, name, None)
    if fn is None:
        raise NotAvailable("n/a (op not built)")
    return fn


def _pad4(pad):
    if isinstance(pad, int):
        return (pad, pad, pad, pad)
    if len(pad) == 2:
        return (pad[0], pad[0], pad[1], pad[1])
    return tuple(pad)


def _reset_grads(*tensors):
    for t in tensors:
        t.grad = None


class Case:
    """Base: subclasses set flops (2 * multiply-adds), bytes (the least traffic a perfect kernel
    needs: each input and output touched once) and fill the runner methods."""
    flops = 0.0
    bytes = 0.0
    kind = "?"

    def __init__(self, rng):
        self.rng = rng

    def rand(self, *shape, fan_in=1):
        """float32 normal samples scaled by 1/sqrt(fan_in) (He-like, keeps outputs O(1))."""
        a = self.rng.standard_normal(shape, dtype=np.float32)
        if fan_in != 1:
            a *= np.float32(1.0 / np.sqrt(fan_in))
        return a

    def algo(self):
        return "-"

    def shape_str(self):
        return ""

    # runners: each returns a zero-argument callable or raises NotAvailable
    def convcore_fwd(self):
        raise NotAvailable("n/a")

    def convcore_fwdbwd(self):
        raise NotAvailable("n/a")

    def torch_fwd(self, torch):
        raise NotAvailable("n/a")

    def torch_fwdbwd(self, torch):
        raise NotAvailable("n/a")

    def numpy_fwd(self):
        raise NotAvailable("n/a")

    def release(self):
        """Drops the row's arrays (the runner calls it when the row is done)."""
        for name, value in list(vars(self).items()):
            if isinstance(value, np.ndarray) and name not in self.keep:
                setattr(self, name, None)

    keep = ()  # array attributes that define the case rather than hold its data


class Conv2dCase(Case):
    """conv2d in all its suite forms: dense, 1x1, depthwise (groups == C) and the stem."""
    kind = "conv2d"
    keep = ("weight",)

    def __init__(self, rng, n, c, h, w, k, kernel, stride=1, pad=0, groups=1, algo="auto",
                 weight=None):
        super().__init__(rng)
        kh, kw = (kernel, kernel) if isinstance(kernel, int) else kernel
        self.n, self.c, self.h, self.w, self.k, self.kh, self.kw = n, c, h, w, k, kh, kw
        self.stride = (stride, stride) if isinstance(stride, int) else tuple(stride)
        self.pad = _pad4(pad)
        self.groups = groups
        self.algo_name = algo
        self.weight = weight
        self.out_h = npb.out_extent(h, kh, self.stride[0], self.pad[0], self.pad[1])
        self.out_w = npb.out_extent(w, kw, self.stride[1], self.pad[2], self.pad[3])
        macs = n * k * self.out_h * self.out_w * (c // groups) * kh * kw
        self.flops = 2.0 * macs
        x_bytes = n * c * h * w * F32
        y_bytes = n * k * self.out_h * self.out_w * F32
        w_bytes = k * (c // groups) * kh * kw * F32
        # A depthwise layer's weights are a few KB; targets.md counts input + output only.
        self.bytes = float(x_bytes + y_bytes + (0 if self.is_depthwise else w_bytes))
        self.x = self.wt = self.b = self.dy = None

    @property
    def is_depthwise(self):
        return self.groups == self.c and self.groups > 1 and self.k == self.c

    def shape_str(self):
        s = f"{self.n}x{self.c}x{self.h}x{self.w}>{self.k} {self.kh}x{self.kw}"
        if self.stride != (1, 1):
            s += f" s{self.stride[0]}"
        if any(self.pad):
            s += f" p{self.pad[0]}" if len(set(self.pad)) == 1 else f" p{self.pad}"
        if self.groups > 1:
            s += " dw" if self.is_depthwise else f" g{self.groups}"
        return s

    def algo(self):
        if self.algo_name != "auto":
            return self.algo_name
        try:
            return F.select_algo((self.n, self.c, self.h, self.w),
                                 (self.k, self.c // self.groups, self.kh, self.kw),
                                 self.stride, self.pad, 1, self.groups)
        except Exception as exc:  # an old build without select_algo for this shape
            return f"? ({type(exc).__name__})"

    def _arrays(self):
        if self.x is None:
            self.x = self.rand(self.n, self.c, self.h, self.w)
            if self.weight is not None:
                self.wt = self.weight
            else:
                fan_in = (self.c // self.groups) * self.kh * self.kw
                self.wt = self.rand(self.k, self.c // self.groups, self.kh, self.kw, fan_in=fan_in)
            self.b = self.rand(self.k)
            self.dy = self.rand(self.n, self.k, self.out_h, self.out_w)
        return self.x, self.wt, self.b, self.dy

    def convcore_fwd(self):
        x, w, b, _ = self._arrays()
        s, p, g, a = self.stride, self.pad, self.groups, self.algo_name
        return lambda: F.conv2d(x, w, b, s, p, 1, g, algo=a)

    def convcore_fwdbwd(self):
        x, w, b, dy = self._arrays()
        s, p, g, a = self.stride, self.pad, self.groups, self.algo_name

        def run():
            F.conv2d(x, w, b, s, p, 1, g, algo=a)
            F.conv2d_backward(dy, x, w, s, p, 1, g, algo=a)
        return run

    def _torch_pad(self, torch, xt):
        # PyTorch's conv2d takes symmetric padding only; pad explicitly when it is not.
        top, bottom, left, right = self.pad
        if top == bottom and left == right:
            return xt, (top, left)
        return torch.nn.functional.pad(xt, (left, right, top, bottom)), (0, 0)

    def torch_fwd(self, torch):
        x, w, b, _ = self._arrays()
        xt, wt, bt = torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(b)
        tf = torch.nn.functional

        def run():
            with torch.no_grad():
                xp, pad = self._torch_pad(torch, xt)
                tf.conv2d(xp, wt, bt, self.stride, pad, 1, self.groups)
        return run

    def torch_fwdbwd(self, torch):
        x, w, b, dy = self._arrays()
        xt = torch.from_numpy(x.copy()).requires_grad_(True)
        wt = torch.from_numpy(w.copy()).requires_grad_(True)
        bt = torch.from_numpy(b.copy()).requires_grad_(True)
        dyt = torch.from_numpy(dy)
        tf = torch.nn.functional

        def run():
            _reset_grads(xt, wt, bt)
            xp, pad = self._torch_pad(torch, xt)
            tf.conv2d(xp, wt, bt, self.stride, pad, 1, self.groups).backward(dyt)
        return run

    def numpy_fwd(self):
        x, w, b, _ = self._arrays()
        return lambda: npb.conv2d(x, w, b, self.stride, self.pad, self.groups)


class SepConv1dCase(Case):
    """A rank-1 depthwise kh x kw kernel run as two 1-D passes (convcore's sepconv2d_1d), against
    which Conv2dCase with the same (full) kernel is the 2-D form. FLOPs are 2*(kh + kw) per output
    instead of 2*kh*kw; the byte floor is the same input + output."""
    kind = "sepconv1d"
    keep = ("col", "row")

    def __init__(self, rng, n, c, h, w, kernel, pad):
        super().__init__(rng)
        self.n, self.c, self.h, self.w, self.kernel, self.pad = n, c, h, w, kernel, pad
        self.out_h = npb.out_extent(h, kernel, 1, pad, pad)
        self.out_w = npb.out_extent(w, kernel, 1, pad, pad)
        self.flops = 2.0 * n * c * self.out_h * self.out_w * 2 * kernel
        self.bytes = float((n * c * h * w + n * c * self.out_h * self.out_w) * F32)
        # Two unfused passes would also write and re-read the (n, c, out_h, w) intermediate.
        self.unfused_extra_bytes = float(2 * n * c * self.out_h * w * F32)
        self.col = self.rand(c, kernel, fan_in=kernel)
        self.row = self.rand(c, kernel, fan_in=kernel)
        self.x = self.dy = None

    def full_weight(self):
        """The equivalent (C, 1, k, k) depthwise kernel: the 2-D form's weight."""
        return (self.col[:, :, None] * self.row[:, None, :])[:, None, :, :].astype(np.float32)

    def shape_str(self):
        return f"{self.n}x{self.c}x{self.h}x{self.w} dw {self.kernel}x1+1x{self.kernel} p{self.pad}"

    def algo(self):
        return "sep1d"

    def _arrays(self):
        if self.x is None:
            self.x = self.rand(self.n, self.c, self.h, self.w)
            self.dy = self.rand(self.n, self.c, self.out_h, self.out_w)
        return self.x, self.dy

    def _factors(self):
        # sepconv2d_1d takes w_col (C, kh) and w_row (C, kw): the factors this case was built from
        # (rank1_factor would recover the same up to scale from full_weight()).
        return self.col, self.row

    def convcore_fwd(self):
        sep = _op("sepconv2d_1d")
        x, _ = self._arrays()
        w_col, w_row = self._factors()
        return lambda: sep(x, w_col, w_row, padding=self.pad)

    def convcore_fwdbwd(self):
        sep = _op("sepconv2d_1d")
        bwd = _op("sepconv2d_1d_backward")
        x, dy = self._arrays()
        w_col, w_row = self._factors()

        def run():
            sep(x, w_col, w_row, padding=self.pad)
            bwd(dy, x, w_col, w_row, padding=self.pad)
        return run

    def torch_fwd(self, torch):
        x, _ = self._arrays()
        xt = torch.from_numpy(x)
        wc = torch.from_numpy(np.ascontiguousarray(self.col[:, None, :, None]))
        wr = torch.from_numpy(np.ascontiguousarray(self.row[:, None, None, :]))
        tf = torch.nn.functional
        p, c = self.pad, self.c

        def run():
            with torch.no_grad():
                mid = tf.conv2d(xt, wc, None, 1, (p, 0), 1, c)
                tf.conv2d(mid, wr, None, 1, (0, p), 1, c)
        return run

    def torch_fwdbwd(self, torch):
        x, dy = self._arrays()
        xt = torch.from_numpy(x.copy()).requires_grad_(True)
        wc = torch.from_numpy(np.ascontiguousarray(self.col[:, None, :, None])).requires_grad_(True)
        wr = torch.from_numpy(np.ascontiguousarray(self.row[:, None, None, :])).requires_grad_(True)
        dyt = torch.from_numpy(dy)
        tf = torch.nn.functional
        p, c = self.pad, self.c

        def run():
            _reset_grads(xt, wc, wr)
            mid = tf.conv2d(xt, wc, None, 1, (p, 0), 1, c)
            tf.conv2d(mid, wr, None, 1, (0, p), 1, c).backward(dyt)
        return run

    def numpy_fwd(self):
        x, _ = self._arrays()
        wc = np.ascontiguousarray(self.col[:, None, :, None])
        wr = np.ascontiguousarray(self.row[:, None, None, :])
        p, c = self.pad, self.c

        def run():
            mid = npb.conv2d(x, wc, None, (1, 1), (p, p, 0, 0), c)
            npb.conv2d(np.ascontiguousarray(mid), wr, None, (1, 1), (0, 0, p, p), c)
        return run


class Conv1dCase(Case):
    kind = "conv1d"

    def __init__(self, rng, n, c, length, k, kernel, stride, pad, groups):
        super().__init__(rng)
        self.n, self.c, self.length, self.k, self.kernel = n, c, length, k, kernel
        self.stride, self.pad, self.groups = stride, pad, groups
        self.out_len = npb.out_extent(length, kernel, stride, pad, pad)
        self.flops = 2.0 * n * k * self.out_len * (c // groups) * kernel
        self.bytes = float((n * c * length + n * k * self.out_len + k * (c // groups) * kernel) * F32)
        self.x = None

    def shape_str(self):
        return f"{self.n}x{self.c}x{self.length}>{self.k} k{self.kernel} s{self.stride} p{self.pad}"

    def algo(self):
        try:
            return F.select_algo((self.n, self.c, 1, self.length),
                                 (self.k, self.c // self.groups, 1, self.kernel),
                                 (1, self.stride), (0, 0, self.pad, self.pad), 1, self.groups)
        except Exception as exc:
            return f"? ({type(exc).__name__})"

    def _arrays(self):
        if self.x is None:
            self.x = self.rand(self.n, self.c, self.length)
            self.wt = self.rand(self.k, self.c // self.groups, self.kernel,
                                fan_in=(self.c // self.groups) * self.kernel)
            self.b = self.rand(self.k)
            self.dy = self.rand(self.n, self.k, self.out_len)
        return self.x, self.wt, self.b, self.dy

    def convcore_fwd(self):
        x, w, b, _ = self._arrays()
        return lambda: F.conv1d(x, w, b, self.stride, self.pad, 1, self.groups)

    def convcore_fwdbwd(self):
        x, w, b, dy = self._arrays()

        def run():
            F.conv1d(x, w, b, self.stride, self.pad, 1, self.groups)
            F.conv1d_backward(dy, x, w, self.stride, self.pad, 1, self.groups)
        return run

    def torch_fwd(self, torch):
        x, w, b, _ = self._arrays()
        xt, wt, bt = torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(b)

        def run():
            with torch.no_grad():
                torch.nn.functional.conv1d(xt, wt, bt, self.stride, self.pad, 1, self.groups)
        return run

    def torch_fwdbwd(self, torch):
        x, w, b, dy = self._arrays()
        xt = torch.from_numpy(x.copy()).requires_grad_(True)
        wt = torch.from_numpy(w.copy()).requires_grad_(True)
        bt = torch.from_numpy(b.copy()).requires_grad_(True)
        dyt = torch.from_numpy(dy)

        def run():
            _reset_grads(xt, wt, bt)
            torch.nn.functional.conv1d(xt, wt, bt, self.stride, self.pad, 1,
                                       self.groups).backward(dyt)
        return run

    def numpy_fwd(self):
        x, w, b, _ = self._arrays()
        x4, w4 = x[:, :, None, :], w[:, :, None, :]
        return lambda: npb.conv2d(x4, w4, b, (1, self.stride), (0, 0, self.pad, self.pad), self.groups)


class ConvTranspose2dCase(Case):
    kind = "conv_transpose2d"

    def __init__(self, rng, n, c_in, h, w, c_out, kernel, stride, pad, groups):
        super().__init__(rng)
        self.n, self.c_in, self.h, self.w, self.c_out = n, c_in, h, w, c_out
        self.kernel, self.stride, self.pad, self.groups = kernel, stride, pad, groups
        self.out_h = (h - 1) * stride - 2 * pad + kernel
        self.out_w = (w - 1) * stride - 2 * pad + kernel
        self.flops = 2.0 * n * c_in * h * w * (c_out // groups) * kernel * kernel
        self.bytes = float((n * c_in * h * w + n * c_out * self.out_h * self.out_w
                            + c_in * (c_out // groups) * kernel * kernel) * F32)
        self.x = None

    def shape_str(self):
        return (f"{self.n}x{self.c_in}x{self.h}x{self.w}>{self.c_out} {self.kernel}x{self.kernel}"
                f" s{self.stride} p{self.pad} T")

    def algo(self):
        # conv_transpose2d runs the backward-input path of the conv it is the gradient of.
        try:
            return F.select_algo((self.n, self.c_out, self.out_h, self.out_w),
                                 (self.c_in, self.c_out // self.groups, self.kernel, self.kernel),
                                 self.stride, self.pad, 1, self.groups)
        except Exception as exc:
            return f"? ({type(exc).__name__})"

    def _arrays(self):
        if self.x is None:
            self.x = self.rand(self.n, self.c_in, self.h, self.w)
            self.wt = self.rand(self.c_in, self.c_out // self.groups, self.kernel, self.kernel,
                                fan_in=self.c_in * self.kernel * self.kernel)
            self.b = self.rand(self.c_out)
            self.dy = self.rand(self.n, self.c_out, self.out_h, self.out_w)
        return self.x, self.wt, self.b, self.dy

    def convcore_fwd(self):
        x, w, b, _ = self._arrays()
        return lambda: F.conv_transpose2d(x, w, b, self.stride, self.pad, 0, 1, self.groups)

    def convcore_fwdbwd(self):
        x, w, b, dy = self._arrays()

        def run():
            F.conv_transpose2d(x, w, b, self.stride, self.pad, 0, 1, self.groups)
            F.conv_transpose2d_backward(dy, x, w, self.stride, self.pad, 0, 1, self.groups)
        return run

    def torch_fwd(self, torch):
        x, w, b, _ = self._arrays()
        xt, wt, bt = torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(b)

        def run():
            with torch.no_grad():
                torch.nn.functional.conv_transpose2d(xt, wt, bt, self.stride, self.pad, 0, self.groups)
        return run

    def torch_fwdbwd(self, torch):
        x, w, b, dy = self._arrays()
        xt = torch.from_numpy(x.copy()).requires_grad_(True)
        wt = torch.from_numpy(w.copy()).requires_grad_(True)
        bt = torch.from_numpy(b.copy()).requires_grad_(True)
        dyt = torch.from_numpy(dy)

        def run():
            _reset_grads(xt, wt, bt)
            torch.nn.functional.conv_transpose2d(xt, wt, bt, self.stride, self.pad, 0,
                                                 self.groups).backward(dyt)
        return run

    def numpy_fwd(self):
        if self.groups != 1:
            raise NotAvailable("n/a (groups)")
        x, w, b, _ = self._arrays()
        s, p = (self.stride, self.stride), (self.pad,) * 4
        return lambda: npb.conv_transpose2d(x, w, b, s, p, (self.out_h, self.out_w))


class PoolCase(Case):
    """max/avg pooling: no FLOPs worth counting, so the row is judged on bytes moved."""
    kind = "pool"

    def __init__(self, rng, mode, n, c, h, w, kernel, stride, pad=0):
        super().__init__(rng)
        self.mode, self.n, self.c, self.h, self.w = mode, n, c, h, w
        self.kernel, self.stride, self.pad = kernel, stride, pad
        self.out_h = npb.out_extent(h, kernel, stride, pad, pad)
        self.out_w = npb.out_extent(w, kernel, stride, pad, pad)
        self.flops = 0.0
        self.bytes = float((n * c * h * w + n * c * self.out_h * self.out_w) * F32)
        self.x = None

    @property
    def op_name(self):
        return "max_pool2d" if self.mode == "max" else "avg_pool2d"

    def shape_str(self):
        return f"{self.n}x{self.c}x{self.h}x{self.w} {self.mode} {self.kernel}x{self.kernel} s{self.stride}"

    def algo(self):
        return self.mode

    def _arrays(self):
        if self.x is None:
            self.x = self.rand(self.n, self.c, self.h, self.w)
            self.dy = self.rand(self.n, self.c, self.out_h, self.out_w)
        return self.x, self.dy

    def convcore_fwd(self):
        pool = _op(self.op_name)
        x, _ = self._arrays()
        return lambda: pool(x, self.kernel, self.stride, self.pad)

    def convcore_fwdbwd(self):
        pool = _op(self.op_name)
        bwd = _op(self.op_name + "_backward")
        x, dy = self._arrays()
        k, s, p = self.kernel, self.stride, self.pad
        if self.mode == "max":
            def run():
                _, idx = pool(x, k, s, p, return_indices=True)
                bwd(dy, x, k, s, p, indices=idx)
        else:
            def run():
                pool(x, k, s, p)
                bwd(dy, x, k, s, p)
        return run

    def _torch_op(self, torch):
        tf = torch.nn.functional
        return tf.max_pool2d if self.mode == "max" else tf.avg_pool2d

    def torch_fwd(self, torch):
        x, _ = self._arrays()
        xt, op = torch.from_numpy(x), self._torch_op(torch)

        def run():
            with torch.no_grad():
                op(xt, self.kernel, self.stride, self.pad)
        return run

    def torch_fwdbwd(self, torch):
        x, dy = self._arrays()
        xt = torch.from_numpy(x.copy()).requires_grad_(True)
        dyt, op = torch.from_numpy(dy), self._torch_op(torch)

        def run():
            _reset_grads(xt)
            op(xt, self.kernel, self.stride, self.pad).backward(dyt)
        return run

    def numpy_fwd(self):
        x, _ = self._arrays()
        return lambda: npb.pool2d(x, self.kernel, self.stride, self.pad, self.mode)


def _native_gemm():
    """convcore's GEMM test binding, if this build has one: (name, fn(a, b) -> c)."""
    for name in ("_gemm",):
        fn = getattr(_cpu, name, None)
        if fn is not None:
            return name, fn
    return None, None


class GemmCase(Case):
    """C = A @ B at m x n x k on a fixed thread count (the row's, not the run's)."""
    kind = "gemm"

    def __init__(self, rng, m, n, k, threads):
        super().__init__(rng)
        self.m, self.n, self.k, self.threads = m, n, k, threads
        self.flops = 2.0 * m * n * k
        self.bytes = float((m * k + k * n + m * n) * F32)
        self.a = None

    def shape_str(self):
        return f"{self.m}x{self.n}x{self.k} {self.threads}t"

    def algo(self):
        name, _ = _native_gemm()
        return "gemm" if name else "conv1x1"

    def _arrays(self):
        if self.a is None:
            self.a = self.rand(self.m, self.k)
            self.b = self.rand(self.k, self.n)
        return self.a, self.b

    def convcore_fwd(self):
        a, b = self._arrays()
        name, gemm = _native_gemm()
        if gemm is not None:
            # Into a preallocated C (as numpy.matmul's out=), so the row times the GEMM and not
            # the page faults of a fresh 4 MB output.
            c = np.empty((self.m, self.n), np.float32)
            try:
                gemm(a, b, c=c)
                return lambda: gemm(a, b, c=c)
            except TypeError:
                return lambda: gemm(a, b)
        # Without the test binding the public API still reaches the GEMM: a 1x1 conv of a
        # (1, k, 1, n) image with (m, k, 1, 1) weights is C(m x n) = A(m x k) @ B(k x n).
        x = np.ascontiguousarray(b.reshape(1, self.k, 1, self.n))
        w = np.ascontiguousarray(a.reshape(self.m, self.k, 1, 1))
        return lambda: F.conv2d(x, w)

    def torch_fwd(self, torch):
        a, b = self._arrays()
        at, bt = torch.from_numpy(a), torch.from_numpy(b)

        ct = torch.empty(self.m, self.n)

        def run():
            with torch.no_grad():
                torch.matmul(at, bt, out=ct)
        return run

    def numpy_fwd(self):
        a, b = self._arrays()
        c = np.empty((self.m, self.n), np.float32)
        return lambda: np.matmul(a, b, out=c)
