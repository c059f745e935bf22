// Separable 1-D convolution on the GPU, twin of cpu/separable1d.h: a column pass (C, 1, kh, 1)
// then a row pass (C, 1, 1, kw), each a depthwise conv run by depthwise.cu, over the
// Separable1dParams validated in csrc/common.
#pragma once
#include <cuda_runtime.h>

#include "common/separable1d_params.h"

namespace convcore::cuda {

template <typename T>
void separable1d_forward(const Separable1dParams& sp, const T* x, const T* w_col, const T* w_row,
                         const T* bias, T* y, cudaStream_t stream);

// A null output pointer means "not needed" (its work is skipped).
template <typename T>
void separable1d_backward(const Separable1dParams& sp, const T* dy, const T* x, const T* w_col,
                          const T* w_row, T* dx, T* dw_col, T* dw_row, T* db, cudaStream_t stream);

}  // namespace convcore::cuda
