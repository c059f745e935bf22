"""Argument normalisation shared by every functional op.

Python-level spellings (an int or a pair for stride, "same" padding, lists for arrays) are turned
into the fixed tuples the native layer takes; the native layer (csrc/common) then validates the
numbers once, for every backend. Errors name the op and the argument.
"""
import numbers

import numpy as np

from ._gpu import as_gpu_array, is_gpu_array

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def as_array(value, op, name):
    """Return `value` as a C-contiguous, aligned float32/float64 NumPy array, or, for a GPU
    array (CuPy, CUDA torch tensor, __cuda_array_interface__ or DLPack), as a C-contiguous GPU
    array of its own library (see _gpu.py; TypeError when the CUDA backend was not built).

    Non-contiguous or misaligned arrays are copied; other dtypes raise TypeError (convcore never
    silently changes precision).
    """
    if is_gpu_array(value):
        return as_gpu_array(value, op, name)
    if isinstance(value, np.ndarray):
        arr = value
    else:
        try:
            arr = np.asarray(value)
        except Exception as exc:  # e.g. ragged lists
            raise TypeError(f"{op}: {name} must be an array, got {type(value).__name__}") from exc
    if arr.dtype not in FLOAT_DTYPES:
        raise TypeError(f"{op}: {name} must be float32 or float64, got dtype {arr.dtype}")
    if not (arr.flags.c_contiguous and arr.flags.aligned):
        arr = np.require(arr, dtype=arr.dtype, requirements=["C_CONTIGUOUS", "ALIGNED"])
    return arr


def check_ndim(arr, ndim, op, name, layout):
    if arr.ndim != ndim:
        raise ValueError(f"{op}: {name} must be {ndim}-D {layout}, got shape {tuple(arr.shape)}")


INT64_MIN, INT64_MAX = -2**63, 2**63 - 1


def as_int(value, op, name, kind="an int or a tuple of ints"):
    """An integer argument as a Python int that fits the native layer's int64 (TypeError for
    bools, floats and the like; ValueError past int64, which the binding could not even take)."""
    if type(value) is int and INT64_MIN <= value <= INT64_MAX:
        return value  # the usual spelling, without the numbers.Integral check (~0.5 us a call)
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{op}: {name} must be {kind}, got {value!r}")
    if not INT64_MIN <= value <= INT64_MAX:
        raise ValueError(f"{op}: {name} must fit in int64, got {value!r}")
    return int(value)


def _int(value, op, name):
    return as_int(value, op, name)


def pair(value, op, name):
    """int or (a, b) -> (a, b)."""
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise ValueError(f"{op}: {name} must be an int or a pair of ints, got {value!r}")
        return (_int(value[0], op, name), _int(value[1], op, name))
    v = _int(value, op, name)
    return (v, v)


def single(value, op, name):
    """int or (a,) -> a (for 1-D ops)."""
    if isinstance(value, (tuple, list)):
        if len(value) != 1:
            raise ValueError(f"{op}: {name} must be an int or a 1-tuple, got {value!r}")
        value = value[0]
    return _int(value, op, name)


def shape4(shape, op, name):
    """A 4-tuple of ints (N, C, H, W) given as a sequence; errors name the op and argument."""
    try:
        shape = tuple(shape)
    except TypeError:
        raise TypeError(f"{op}: {name} must be a tuple (N, C, H, W), got {shape!r}") from None
    if len(shape) != 4:
        raise ValueError(f"{op}: {name} must be (N, C, H, W), got {shape!r}")
    return tuple(as_int(v, op, name, "a tuple of ints") for v in shape)


def padding4(padding, kernel_hw, stride_hw, dilation_hw, op):
    """int | (ph, pw) | (top, bottom, left, right) | "same" | "valid" -> (top, bottom, left, right).

    "same" (stride 1 only, as in PyTorch) pads dilation*(k-1) in total per axis, the extra
    pixel of an odd total going to the bottom/right.
    """
    if isinstance(padding, str):
        if padding == "valid":
            return (0, 0, 0, 0)
        if padding == "same":
            if stride_hw != (1, 1):
                raise ValueError(f"{op}: padding='same' needs stride 1, got stride={stride_hw}")
            out = []
            for k, d in zip(kernel_hw, dilation_hw):
                total = d * (k - 1)
                out += [total // 2, total - total // 2]
            return tuple(out)
        raise ValueError(f"{op}: padding must be an int, a tuple, 'same' or 'valid', got {padding!r}")
    if isinstance(padding, (tuple, list)):
        if len(padding) == 2:
            ph, pw = (_int(v, op, "padding") for v in padding)
            return (ph, ph, pw, pw)
        if len(padding) == 4:
            return tuple(_int(v, op, "padding") for v in padding)
        raise ValueError(
            f"{op}: padding must be an int, (ph, pw) or (top, bottom, left, right), got {padding!r}"
        )
    p = _int(padding, op, "padding")
    return (p, p, p, p)


def padding1d(padding, kernel, stride, dilation, op):
    """int | (left, right) | "same" | "valid" -> (left, right) for conv1d."""
    if isinstance(padding, str):
        return padding4(padding, (1, kernel), (1, stride), (1, dilation), op)[2:]
    if isinstance(padding, (tuple, list)):
        if len(padding) == 1:
            p = _int(padding[0], op, "padding")
            return (p, p)
        if len(padding) == 2:
            return tuple(_int(v, op, "padding") for v in padding)
        raise ValueError(f"{op}: padding must be an int or (left, right), got {padding!r}")
    p = _int(padding, op, "padding")
    return (p, p)


def need_flags(need, allowed, op):
    """need=("x", "w", "b") -> a tuple of booleans in `allowed` order."""
    if isinstance(need, str):
        need = (need,)
    try:
        need = tuple(need)
    except TypeError:
        raise TypeError(f"{op}: need must be a name or a tuple of names from {allowed}, "
                        f"got {need!r}") from None
    unknown = [n for n in need if n not in allowed]
    if unknown:
        raise ValueError(f"{op}: need may contain only {allowed}, got {need!r}")
    return tuple(n in need for n in allowed)
