// Checked CUDA runtime calls and stream-ordered workspace, usable from plain C++ (.cpp) files;
// launch.cuh adds the kernel-launch helper for .cu files. Errors are thrown as C++ exceptions
// (never exit()), which the bindings turn into Python RuntimeError.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>
#include <stdexcept>
#include <string>

namespace convcore::cuda {

struct CudaError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

inline void check(cudaError_t status, const char* what, const char* file, int line) {
  if (status != cudaSuccess) {
    throw CudaError(std::string("CUDA error in ") + what + " (" + file + ":" + std::to_string(line) +
                    "): " + cudaGetErrorString(status));
  }
}

// Stream-ordered temporary device memory (cudaMallocAsync on the caller's stream, freed on it
// when the owner goes out of scope), so a workspace is never released before the kernels that
// use it have run, and no device-wide synchronisation is needed.
class DeviceBuffer {
 public:
  DeviceBuffer(size_t bytes, cudaStream_t stream) : stream_(stream) {
    if (bytes > 0) check(cudaMallocAsync(&ptr_, bytes, stream), "cudaMallocAsync", __FILE__, __LINE__);
  }
  ~DeviceBuffer() {
    if (ptr_) cudaFreeAsync(ptr_, stream_);  // no throw from a destructor; a failure here is sticky anyway
  }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  template <typename T>
  T* as() const { return static_cast<T*>(ptr_); }

 private:
  void* ptr_ = nullptr;
  cudaStream_t stream_;
};

}  // namespace convcore::cuda

#define CC_CUDA_CHECK(expr) ::convcore::cuda::check((expr), #expr, __FILE__, __LINE__)
