// Reference locally connected / tiled convolution (csrc/ref/locally_connected.cpp): the oracle
// of cpu/locally_connected.cpp and algo="reference". w is (tiles, K, C, kh, kw) flattened as
// (tile_h, tile_w, K, C, kh, kw); bias and db are (tile_h, tile_w, K).
#pragma once
#include "common/local_params.h"

namespace convcore::ref {

template <typename T>
void local_forward(const LocalParams& lp, const T* x, const T* w, const T* bias, T* y);
template <typename T>
void local_backward_input(const LocalParams& lp, const T* dy, const T* w, T* dx);
template <typename T>
void local_backward_weight(const LocalParams& lp, const T* dy, const T* x, T* dw);
template <typename T>
void local_backward_bias(const LocalParams& lp, const T* dy, T* db);

}  // namespace convcore::ref
