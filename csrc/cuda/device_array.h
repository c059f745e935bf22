// The GPU array boundary of convcore._cuda: every device array that reaches a kernel passes
// through here, as the NumPy ones pass through bindings/array.h.
//
// Inputs are any objects with __cuda_array_interface__ (CuPy, Numba, PyTorch CUDA tensors; the
// Python layer wraps DLPack-only producers first). Checks, each a TypeError/ValueError naming the
// op and the argument: the interface is there, float32/float64 (int64 for pooling indices),
// the expected ndim, C-contiguous, aligned, device memory, all arguments on one device.
//
// Outputs are made by a Python hook (convcore/_gpu.py, installed with _set_array_hooks) in the
// namespace of the call's first array argument ("like"): CuPy in, CuPy out; torch in, torch
// out; on like's device, from that library's allocator. Kernels are launched on the stream the
// hook names for "like" (CuPy's / torch's current stream, or the interface's "stream" entry), so
// they are ordered with the caller's other work on that stream; nothing synchronises (except
// the check of user-given pooling indices, which reads its verdict back).
#pragma once
#include <cuda_runtime.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <string>
#include <vector>

#include "common/conv_params.h"

namespace convcore::cuda_bind {

namespace py = pybind11;

enum class DType { F32, F64, I64 };

struct DeviceArray {
  py::object owner;  // keeps the producer's memory alive for the call
  void* ptr = nullptr;
  std::vector<int64_t> shape;
  DType dtype = DType::F32;
  int device = -1;  // -1: empty array (no pointer to ask about)
  int64_t numel() const;
  Shape4 shape4() const;
  template <typename T>
  const T* data() const { return static_cast<const T*>(ptr); }
  template <typename T>
  T* mutable_data() const { return static_cast<T*>(ptr); }
};

// Reads and checks one float argument (ndim < 0: any).
DeviceArray float_array(const py::handle& obj, const std::string& op, const char* name, int ndim);
// Same, and requires `want`'s dtype and device (for every argument after the first).
DeviceArray float_array_like(const py::handle& obj, const DeviceArray& want, const std::string& op,
                             const char* name, const char* first_name, int ndim);
// int64 pooling indices of the given shape, on `want`'s device.
DeviceArray index_array(const py::handle& obj, const DeviceArray& want,
                        const std::vector<int64_t>& shape, const std::string& op);

std::string shape_str(const std::vector<int64_t>& shape);

// Where a call runs: the device and stream of its first array; outputs are made like it.
class CallContext {
 public:
  explicit CallContext(const DeviceArray& like);
  ~CallContext();
  CallContext(const CallContext&) = delete;
  CallContext& operator=(const CallContext&) = delete;
  cudaStream_t stream() const { return stream_; }
  // A new C-contiguous output (NaN-poisoned under the test hook, as on the CPU).
  DeviceArray empty(DType dtype, const std::vector<int64_t>& shape) const;

 private:
  const DeviceArray& like_;
  int previous_device_ = -1;
  cudaStream_t stream_ = nullptr;
};

// Calls fn(float{}) or fn(double{}) by dtype.
template <typename Fn>
auto with_dtype(DType dtype, Fn&& fn) {
  if (dtype == DType::F32) return fn(float{});
  return fn(double{});
}

void set_array_hooks(py::object empty, py::object stream_of);
void set_debug_poison(bool on);

}  // namespace convcore::cuda_bind
