"""GPU arrays at the Python boundary: which arguments live on the GPU, which native module runs
a call, how outputs of the caller's own array type are made, and which stream the kernels use.

convcore._cuda has the functions of convcore._cpu under the same names and arguments, so the
functional API routes a call with `native(x).conv2d_forward(...)`: NumPy arrays go to _cpu
exactly as before, GPU arrays to _cuda. Outputs live where the input lives, as the caller's type:

- CuPy arrays: CuPy outputs from CuPy's memory pool, on the array's device; kernels run on
  CuPy's current stream (cupy.cuda.get_current_stream()).
- PyTorch CUDA tensors: torch outputs (torch.empty on the tensor's device, torch's caching
  allocator); kernels run on torch.cuda.current_stream(device). Tensors that require grad are
  read through .detach(): convcore computes gradients itself and autograd does not see the call.
- Other __cuda_array_interface__ objects (Numba device arrays, ...): Numba outputs for Numba
  input, else CuPy; kernels run on the stream the interface names ("stream", version 3), else
  on the legacy default stream.
- DLPack-only objects (a CUDA __dlpack_device__ but no __cuda_array_interface__, e.g. JAX
  arrays): wrapped without a copy by cupy.from_dlpack, so the result is a CuPy array
  (convert back with your library's from_dlpack).

Stream semantics: every kernel of one call is launched, in order, on that one stream, and the
call returns without waiting, like any CuPy or torch op; work the caller queued earlier on the
same stream is finished first, and later work on it sees the results. Work on other streams is
not ordered with convcore's; synchronise as you would between two streams of your own library.
The only call that waits is a pooling backward given explicit `indices`: they are validated on
the device and the verdict is read back before the gradient kernel runs.
"""
import numpy as np

from . import _cpu

_cuda = None  # convcore._cuda once a GPU array has been seen (imported lazily)
_allow_tf32 = False  # convcore.set_allow_tf32: handed to _cuda when it is loaded and on change

_KDL_CUDA, _KDL_CUDA_MANAGED = 2, 13  # DLPack device types
_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))


def _library(value):
    return type(value).__module__.split(".")[0]


def is_gpu_array(value):
    """True for objects exposing CUDA device memory (CAI or DLPack), never for NumPy arrays."""
    if isinstance(value, np.ndarray):
        return False
    if hasattr(value, "__cuda_array_interface__"):  # torch CPU tensors raise, so hasattr is False
        return True
    dev = getattr(value, "__dlpack_device__", None)
    if dev is None:
        return False
    try:
        return dev()[0] in (_KDL_CUDA, _KDL_CUDA_MANAGED)
    except Exception:
        return False


def cuda_module(op, name):
    """convcore._cuda with its array hooks installed, or TypeError when it was not built."""
    global _cuda
    if _cuda is None:
        try:
            from . import _cuda as module
        except ImportError:
            raise TypeError(
                f"{op}: {name} is a GPU array, but convcore was built without its CUDA backend "
                "(convcore.backends() shows what was built)"
            ) from None
        info = module.device_info()
        if not info.get("available", False):
            # built, but this machine has no usable GPU (no driver, no device): say so by name
            # instead of failing later on an object the CPU cannot read
            raise TypeError(
                f"{op}: {name} is a GPU array, but no CUDA device is available to convcore "
                f"({info.get('reason') or 'no devices'})"
            )
        module._set_array_hooks(empty, stream_of)
        module._set_allow_tf32(_allow_tf32)
        _cuda = module
    return _cuda


def native(x):
    """The native module that runs a call whose first array is x: _cuda for GPU arrays."""
    return _cuda if is_gpu_array(x) and _cuda is not None else _cpu


def _dtype(value):
    if _library(value) == "torch":
        return np.dtype(str(value.dtype).replace("torch.", ""))
    if hasattr(value, "dtype"):
        try:
            return np.dtype(value.dtype)
        except TypeError:
            pass
    return np.dtype(value.__cuda_array_interface__["typestr"])


def as_gpu_array(value, op, name, dtypes=_FLOATS):
    """`value` as a C-contiguous GPU array of one of `dtypes`, in its own library's type
    (DLPack-only producers become CuPy arrays). Other dtypes raise TypeError."""
    cuda_module(op, name)
    if not hasattr(value, "__cuda_array_interface__"):
        import cupy  # DLPack-only producer: zero-copy view as CuPy
        value = cupy.from_dlpack(value)
    lib = _library(value)
    if lib == "torch" and value.requires_grad:
        value = value.detach()
    dtype = _dtype(value)
    if dtype not in dtypes:
        want = " or ".join(str(d) for d in dtypes)
        raise TypeError(f"{op}: {name} must be {want}, got dtype {dtype}")
    if lib == "torch":
        return value.contiguous()
    if lib == "cupy":
        import cupy
        return cupy.ascontiguousarray(value)
    return value  # other producers: the native boundary rejects non-contiguous layouts


def empty(like, shape, dtype):
    """A new uninitialised array of `like`'s library and device (called from _cuda)."""
    lib = _library(like)
    if lib == "torch":
        import torch
        return torch.empty(tuple(shape), dtype=getattr(torch, dtype), device=like.device)
    if lib == "numba":
        from numba import cuda as numba_cuda
        return numba_cuda.device_array(tuple(shape), dtype=dtype)
    import cupy
    device = like.device.id if lib == "cupy" else cupy.cuda.runtime.getDevice()
    with cupy.cuda.Device(device):
        return cupy.empty(tuple(shape), dtype=dtype)


def stream_of(like):
    """The cudaStream_t (as an int) the kernels of a call on `like` run on (called from _cuda)."""
    lib = _library(like)
    if lib == "torch":
        import torch
        return torch.cuda.current_stream(like.device).cuda_stream
    if lib == "cupy":
        import cupy
        with cupy.cuda.Device(like.device.id):
            return cupy.cuda.get_current_stream().ptr
    stream = like.__cuda_array_interface__.get("stream")
    return 0 if stream is None else int(stream)  # 1 and 2 are CUDA's legacy/per-thread handles


def array_namespace(x):
    """numpy for NumPy arrays, cupy for CuPy arrays: what the book-style layers compute with."""
    if _library(x) == "cupy":
        import cupy
        return cupy
    return np


def set_allow_tf32(on):
    """Records the TF32 switch and hands it to convcore._cuda if it is loaded."""
    global _allow_tf32
    _allow_tf32 = bool(on)
    if _cuda is not None:
        _cuda._set_allow_tf32(_allow_tf32)


def get_allow_tf32():
    return _allow_tf32
