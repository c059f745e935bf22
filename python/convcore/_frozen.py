"""FrozenWeights: weights that will not change, whose prepared forms convcore keeps.

A convolution re-derives forms of its weights on every call: Winograd's transformed kernels
packed for the micro-kernel, the kernel turned by 180 degrees for the input gradient. Where the
weights are frozen for a whole run (style transfer's feature network, inference), those forms
can be built once. A NumPy array carries no version number, so convcore never caches behind the
caller's back; instead the caller says so:

    Wf = convcore.FrozenWeights(W)            # a read-only snapshot of W
    y = F.conv2d(x, Wf, b, padding=1)         # first call builds the forms it needs
    dx, _, _ = F.conv2d_backward(dy, x, Wf, padding=1, need=("x",))

Later changes to W do not reach the snapshot. With prepared weights algo="auto" also takes
Winograd on maps too small to repay the transform per call (e.g. 12x12 with 384 -> 1024
channels). The forms are float32 (float64 snapshots work but keep nothing) and cost memory:
Winograd's transformed kernels are 16/9 of a 3x3 weight array, the input gradient's turned copy
and its transform as much again. GPU arrays are snapshotted, no forms are kept.
"""
import numpy as np

from . import _cpu
from ._args import as_array, check_ndim

__all__ = ["FrozenWeights"]


class FrozenWeights:
    def __init__(self, w):
        op = "FrozenWeights"
        if isinstance(w, FrozenWeights):
            w = w.array
        arr = as_array(w, op, "w")
        check_ndim(arr, 4, op, "w", "(K, C/groups, kh, kw)")
        arr = arr.copy()
        if isinstance(arr, np.ndarray):
            arr.flags.writeable = False
            self._prepared = _cpu.PreparedWeights(arr)
        else:
            self._prepared = None
        self.array = arr

    shape = property(lambda self: self.array.shape)
    dtype = property(lambda self: self.array.dtype)
    ndim = property(lambda self: self.array.ndim)

    @property
    def prepared_nbytes(self):
        """Bytes held by the forms built so far."""
        return 0 if self._prepared is None else self._prepared.nbytes

    def __repr__(self):
        return (f"FrozenWeights(shape={tuple(self.shape)}, dtype={self.dtype}, "
                f"prepared_nbytes={self.prepared_nbytes})")


def unfreeze(w):
    """(array, native handle or None) for a `w` argument that may be FrozenWeights."""
    if isinstance(w, FrozenWeights):
        return w.array, w._prepared
    return w, None
