// Elementwise activations for the book-style layers (Relu), native so that they run threaded in the
// same OpenMP pool as the convolutions instead of as single-threaded NumPy passes.
#pragma once
#include <cstdint>

namespace convcore::cpu {

// y = x where x > 0 or x is NaN, else 0 (the book's `out[x <= 0] = 0`, which keeps NaN).
template <typename T>
void relu_forward(int64_t count, const T* x, T* y);

// dx = dy where y > 0 or y is NaN, else 0, from the forward's OUTPUT y: y <= 0 exactly where
// x <= 0, so the layer need not keep x or a mask.
template <typename T>
void relu_backward(int64_t count, const T* dy, const T* y, T* dx);

}  // namespace convcore::cpu
