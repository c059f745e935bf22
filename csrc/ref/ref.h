// Reference kernels: the simplest loops, a double accumulator, no SIMD flags and no FMA
// contraction (see CMakeLists.txt). They define what every fast kernel must compute, and serve
// as algo="reference".
#pragma once
#include "common/conv_params.h"
#include "common/pool_params.h"

namespace convcore::ref {

template <typename T>
void conv2d_forward(const ConvParams& p, const T* x, const T* w, const T* bias, T* y);
template <typename T>
void conv2d_backward_input(const ConvParams& p, const T* dy, const T* w, T* dx);
template <typename T>
void conv2d_backward_weight(const ConvParams& p, const T* dy, const T* x, T* dw);

// Pooling (csrc/ref/pool.cpp). Max pooling: PyTorch's rule, a tap wins when it is greater than
// the running maximum or is NaN (so ties keep the first maximum in (ky, kx) order, and a NaN
// wins over numbers and over an earlier NaN); indices are iy*W + ix in the input plane and may
// be null. The backward passes take the indices when given (already range-checked), otherwise
// they recompute them from x.
template <typename T>
void max_pool2d_forward(const PoolParams& p, const T* x, T* y, int64_t* indices);
template <typename T>
void max_pool2d_backward(const PoolParams& p, const T* dy, const int64_t* indices, const T* x, T* dx);
template <typename T>
void avg_pool2d_forward(const PoolParams& p, const T* x, T* y);
template <typename T>
void avg_pool2d_backward(const PoolParams& p, const T* dy, T* dx);
template <typename T>
void adaptive_avg_pool2d_forward(const PoolParams& p, const T* x, T* y);
template <typename T>
void adaptive_avg_pool2d_backward(const PoolParams& p, const T* dy, T* dx);
template <typename T>
void adaptive_max_pool2d_forward(const PoolParams& p, const T* x, T* y, int64_t* indices);

}  // namespace convcore::ref
