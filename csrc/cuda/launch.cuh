// The one way convcore talks to the CUDA runtime: every call checked, every launch followed by
// a cudaGetLastError check, and errors thrown as C++ exceptions (never exit()), which the
// bindings turn into Python RuntimeError.
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

// Grid size for `total` threads in blocks of `block`, in int64 (large tensors pass 2^31 elements);
// kernels use grid-stride loops, so the grid is clamped to what the device accepts.
inline unsigned int grid_for(int64_t total, int block) {
  int64_t blocks = (total + block - 1) / block;
  const int64_t max_blocks = 65535LL * 32;  // plenty to fill any GPU; the loop covers the rest
  if (blocks > max_blocks) blocks = max_blocks;
  return static_cast<unsigned int>(blocks < 1 ? 1 : blocks);
}

}  // namespace convcore::cuda

#define CC_CUDA_CHECK(expr) ::convcore::cuda::check((expr), #expr, __FILE__, __LINE__)
// Launches kernel<<<grid, block, 0, stream>>>(args...) unless total == 0, then checks the launch.
#define CC_CUDA_LAUNCH(kernel, total, block, stream, ...)                                  \
  do {                                                                                   \
    if ((total) > 0) {                                                                   \
      kernel<<<::convcore::cuda::grid_for((total), (block)), (block), 0, (stream)>>>(__VA_ARGS__); \
      CC_CUDA_CHECK(cudaGetLastError());                                                 \
    }                                                                                    \
  } while (0)
