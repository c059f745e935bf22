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

}  // namespace convcore::ref
