// Block-wide sums in a fixed order, so every reduction in csrc/cuda (weight and bias gradients,
// pooling) gives the same bits on every run: no atomics, no order that depends on scheduling.
#pragma once
#include <cuda_runtime.h>

namespace convcore::cuda {

// Threads per block of every reduction kernel (a power of two: the tree below halves it).
constexpr int kReduceBlock = 256;

// The sum of `value` over the kReduceBlock threads of the block, returned to every thread.
// A shared-memory tree: the pairing depends only on thread indices.
template <typename Acc>
__device__ Acc block_sum(Acc value) {
  __shared__ Acc partial[kReduceBlock];
  partial[threadIdx.x] = value;
  __syncthreads();
  for (int half = kReduceBlock / 2; half > 0; half >>= 1) {
    if (threadIdx.x < half) partial[threadIdx.x] += partial[threadIdx.x + half];
    __syncthreads();
  }
  const Acc total = partial[0];
  __syncthreads();  // the next call may overwrite `partial`
  return total;
}

}  // namespace convcore::cuda
