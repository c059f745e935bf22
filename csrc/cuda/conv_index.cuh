// Index arithmetic shared by the direct and depthwise kernels (int64 throughout): which input
// pixel a tap reads, and which output a tap of a given input pixel came from (the gather form of
// the backward passes, which is what keeps them free of atomics).
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

#include "common/conv_params.h"

namespace convcore::cuda {

// Splits a flat NCHW index of an (n, channels, rows, cols) array.
struct Nchw {
  int64_t n, c, y, x;
};
__device__ inline Nchw split_nchw(int64_t i, int64_t channels, int64_t rows, int64_t cols) {
  Nchw r;
  r.x = i % cols;
  i /= cols;
  r.y = i % rows;
  i /= rows;
  r.c = i % channels;
  r.n = i / channels;
  return r;
}

// The output coordinate whose tap `t` (ky or kx) reads input coordinate `in`, or -1 when none
// does: (in + pad - t*dil) must be a non-negative multiple of stride below out.
__device__ inline int64_t source_output(int64_t in, int64_t t, int64_t pad, int64_t dil,
                                        int64_t stride, int64_t out) {
  const int64_t shifted = in + pad - t * dil;
  if (shifted < 0 || shifted % stride != 0) return -1;
  const int64_t o = shifted / stride;
  return o < out ? o : -1;
}

}  // namespace convcore::cuda

namespace convcore::cuda {

// The taps t in [lo, hi) for which start + t*dil lies in [0, extent): the loop bounds that
// replace a per-tap bounds check (start may be negative: padding).
struct TapRange {
  int64_t lo, hi;
};
__device__ inline TapRange tap_range(int64_t start, int64_t dil, int64_t extent, int64_t taps) {
  int64_t lo = start < 0 ? (-start + dil - 1) / dil : 0;
  int64_t hi = start < extent ? (extent - start + dil - 1) / dil : 0;
  if (hi > taps) hi = taps;
  if (lo > hi) lo = hi;
  return {lo, hi};
}

// The outputs o in [lo, hi) whose tap at offset `tap_offset` (= t*dil - pad) reads inside
// [0, extent): 0 <= o*stride + tap_offset < extent.
__device__ inline TapRange output_range(int64_t tap_offset, int64_t stride, int64_t extent,
                                        int64_t out) {
  int64_t lo = tap_offset < 0 ? (-tap_offset + stride - 1) / stride : 0;
  int64_t hi = extent - tap_offset > 0 ? (extent - tap_offset + stride - 1) / stride : 0;
  if (hi > out) hi = out;
  if (lo > hi) lo = hi;
  return {lo, hi};
}

}  // namespace convcore::cuda

// CC_GRID_STRIDE with a chosen index type I (int where the sizes fit: cheaper div/mod).
#define CC_GRID_STRIDE_AS(I, i, total)                                             \
  for (I i = I(blockIdx.x) * I(blockDim.x) + I(threadIdx.x); i < (total); \
       i += I(blockDim.x) * I(gridDim.x))

namespace convcore::cuda {
// i = (outer * rows + y) * cols + x: the (outer, y, x) of a flat index, in index type I.
template <typename I>
struct Split3 {
  I outer, y, x;
};
template <typename I>
__device__ inline Split3<I> split3(I i, I rows, I cols) {
  const I r = i / cols;
  return {r / rows, r % rows, i % cols};
}
}  // namespace convcore::cuda
