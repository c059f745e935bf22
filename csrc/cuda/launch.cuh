// Kernel launches (for .cu files; cuda/check.h has the checked runtime calls): every launch
// followed by a cudaGetLastError check, errors thrown as C++ exceptions (never exit()).
//
// Launch conventions (every kernel in csrc/cuda follows them):
// - element-wise kernels take an int64 `total` and loop with CC_GRID_STRIDE(i, total), so a
//   grid clamped by grid_for still covers tensors past 2^31 elements;
// - block-per-item kernels (reductions) loop with CC_BLOCK_STRIDE(item, items);
// - launches go through launch() (or the macros over it): n == 0 launches nothing, the caller's
//   stream is used, and the launch status is checked.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>
#include <utility>

#include "cuda/check.h"

namespace convcore::cuda {

// Grid size for `total` work items in blocks of `block`, in int64 (large tensors pass 2^31
// elements); kernels use grid-stride loops, so the grid is clamped to a size that fills any GPU.
inline unsigned int grid_for(int64_t total, int block) {
  int64_t blocks = (total + block - 1) / block;
  const int64_t max_blocks = 65535LL * 32;
  if (blocks > max_blocks) blocks = max_blocks;
  return static_cast<unsigned int>(blocks < 1 ? 1 : blocks);
}

// Launches kernel<<<grid, block, smem, stream>>>(args...) unless the grid is empty, then checks
// the launch. Arguments are converted to the kernel's parameter types here, on the host.
template <typename... Params, typename... Args>
void launch(void (*kernel)(Params...), dim3 grid, dim3 block, size_t smem, cudaStream_t stream,
            Args&&... args) {
  if (grid.x == 0 || grid.y == 0 || grid.z == 0) return;
#ifdef CONVCORE_CUDA_EMULATE  // the CPU test harness (emulate/cuda_runtime.h)
  emu::launch(kernel, grid, block, std::forward<Args>(args)...);
#else
  kernel<<<grid, block, smem, stream>>>(std::forward<Args>(args)...);
#endif
  check(cudaGetLastError(), "kernel launch", __FILE__, __LINE__);
}

}  // namespace convcore::cuda


// Element-wise launch: `total` items, grid from grid_for (kernel loops with CC_GRID_STRIDE).
#define CC_CUDA_LAUNCH(kernel, total, block, stream, ...)                                      \
  do {                                                                                       \
    const int64_t cc_total_ = (total);                                                       \
    if (cc_total_ > 0)                                                                       \
      ::convcore::cuda::launch(kernel, dim3(::convcore::cuda::grid_for(cc_total_, (block))),  \
                               dim3(block), 0, (stream), __VA_ARGS__);                       \
  } while (0)
// Block-per-item launch: `items` blocks at most (kernel loops with CC_BLOCK_STRIDE).
#define CC_CUDA_LAUNCH_BLOCKS(kernel, items, block, stream, ...)                                \
  do {                                                                                       \
    const int64_t cc_items_ = (items);                                                       \
    if (cc_items_ > 0)                                                                       \
      ::convcore::cuda::launch(kernel, dim3(::convcore::cuda::grid_for(cc_items_, 1)),        \
                               dim3(block), 0, (stream), __VA_ARGS__);                       \
  } while (0)

#define CC_GRID_STRIDE(i, total)                                                    \
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < (total); \
       i += int64_t(blockDim.x) * gridDim.x)
#define CC_BLOCK_STRIDE(item, items) \
  for (int64_t item = blockIdx.x; item < (items); item += gridDim.x)
