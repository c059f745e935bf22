// Locally connected (unshared) and tiled convolution on the GPU, twin of cpu/locally_connected.h:
// same contract as ref/local.h, w (tile_h, tile_w, K, C, kh, kw), bias/db (tile_h, tile_w, K).
// Acc = double for algo="reference" (the GPU's oracle), T otherwise. Every gradient is a gather
// summed in a fixed order by one thread: deterministic, no atomics.
#pragma once
#include <cuda_runtime.h>

#include "common/local_params.h"

namespace convcore::cuda {

template <typename T, typename Acc>
void local_forward(const LocalParams& lp, const T* x, const T* w, const T* bias, T* y,
                   cudaStream_t stream);
template <typename T, typename Acc>
void local_backward_input(const LocalParams& lp, const T* dy, const T* w, T* dx,
                          cudaStream_t stream);
template <typename T, typename Acc>
void local_backward_weight(const LocalParams& lp, const T* dy, const T* x, T* dw,
                           cudaStream_t stream);
template <typename T, typename Acc>
void local_backward_bias(const LocalParams& lp, const T* dy, T* db, cudaStream_t stream);

}  // namespace convcore::cuda
