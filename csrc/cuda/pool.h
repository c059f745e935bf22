// The pooling family on the GPU, twin of cpu/pool.h: max (with optional int64 indices), average
// and adaptive pooling, forward and backward, over one PoolParams validated in csrc/common.
// Device pointers, contiguous NCHW, launches on `stream`. Backward passes gather (one thread per
// input element sums the windows that hold it), so they are deterministic without atomics.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

#include "common/pool_params.h"

namespace convcore::cuda {

// Windows: strided (max_pool2d/avg_pool2d) or adaptive (adaptive_*_pool2d).
enum class PoolWindows { Strided, Adaptive };

// y may be null (only the indices are wanted); indices may be null.
template <typename T>
void max_pool2d_forward(const PoolParams& p, PoolWindows windows, const T* x, T* y,
                        int64_t* indices, cudaStream_t stream);

// indices: null (recomputed from x) or checked by check_pool_indices. When every index lies in
// its own window (always so for indices from the forward) the gather kernel runs; otherwise a
// slower one-thread-per-plane scatter, still deterministic.
template <typename T>
void max_pool2d_backward(const PoolParams& p, PoolWindows windows, const T* dy,
                         const int64_t* indices, bool indices_in_windows, const T* x, T* dx,
                         cudaStream_t stream);

template <typename T>
void avg_pool2d_forward(const PoolParams& p, const T* x, T* y, cudaStream_t stream);
template <typename T>
void avg_pool2d_backward(const PoolParams& p, const T* dy, T* dx, cudaStream_t stream);
template <typename T>
void adaptive_avg_pool2d_forward(const PoolParams& p, const T* x, T* y, cudaStream_t stream);
template <typename T>
void adaptive_avg_pool2d_backward(const PoolParams& p, const T* dy, T* dx, cudaStream_t stream);

// Checks indices handed in by the user (synchronises `stream` to read the answer back).
struct IndexCheck {
  int64_t first_out_of_range;  // flat position of the first index outside [0, h*w), or -1
  bool all_in_windows;         // every index lies inside its own output's window
};
IndexCheck check_pool_indices(const PoolParams& p, PoolWindows windows, const int64_t* indices,
                              cudaStream_t stream);

}  // namespace convcore::cuda
