// The pooling family on the CPU: max (with optional indices), average and adaptive pooling,
// forward and backward, over one PoolParams (common/pool_params.h). Same results as csrc/ref:
// max pooling and its indices bit for bit, averages up to float rounding.
//
// Forward passes thread over (plane, output row); backward passes thread over planes and
// scatter into their own plane only, so they are race-free and deterministic.
// Arrays are contiguous NCHW; outputs are write-only (never read before they are written).
#pragma once
#include <cstdint>

#include "common/pool_params.h"

namespace convcore::cpu {

template <typename T>
void max_pool2d_forward(const PoolParams& p, const T* x, T* y, int64_t* indices);
// indices may be null (then the argmax is recomputed from x); when given, every entry must be
// in [0, h*w) (see first_index_out_of_range).
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

// The flat position of the first index outside [0, h*w), or -1: indices handed in by the user
// are checked before any kernel trusts them.
int64_t first_index_out_of_range(const PoolParams& p, const int64_t* indices);

// One output row of the interior of a float pooling, where every window lies inside the image
// horizontally: outputs j in [0, count) pool columns col0 + j*stride_w + kx*dil_w over the
// `rows` input rows first_row, first_row + dil_h, ... (all inside the image).
struct PoolRowF32 {
  const float* plane;
  int64_t width;
  int64_t first_row, rows, dil_h;
  int64_t kw, dil_w, stride_w;
  int64_t col0, count;
};
// One set per ISA (pool_avx512.cpp, pool_avx2.cpp):
//   f32_maxpool_row: PyTorch's max rule as in ref.h; idx may be null. Needs h*w < 2**31
//                    (32-bit lane indices).
//   f32_avgpool_row: y[j] = window sum / divisor.
#define CONVCORE_DECLARE_POOL_ROWS(isa)                              \
  namespace isa {                                                    \
  void f32_maxpool_row(const PoolRowF32& r, float* y, int64_t* idx); \
  void f32_avgpool_row(const PoolRowF32& r, float divisor, float* y); \
  }
CONVCORE_DECLARE_POOL_ROWS(avx512)
CONVCORE_DECLARE_POOL_ROWS(avx2)
#undef CONVCORE_DECLARE_POOL_ROWS

}  // namespace convcore::cpu
