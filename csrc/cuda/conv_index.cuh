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
// does: (in + pad - t*dil) must be a non-negative multiple of stride below out. I: int64_t, or
// int where the caller knows every index fits (32-bit division is several times cheaper).
template <typename I>
__device__ inline I source_output(I in, I t, I pad, I dil, I stride, I out) {
  const I shifted = in + pad - t * dil;
  if (shifted < 0) return -1;
  const I o = stride == 1 ? shifted : shifted / stride;
  if (o * stride != shifted) return -1;
  return o < out ? o : -1;
}

// The gather form of a backward pass, for input pixel (iy, ix): visit(ky, kx, oy, ox) for every
// tap (ky, kx) and the output (oy, ox) whose window reads the pixel through it.
template <typename Visit>
__device__ inline void for_each_source_tap(const ConvParams& p, int64_t iy, int64_t ix,
                                           Visit&& visit) {
  for (int64_t ky = 0; ky < p.kh; ++ky) {
    const int64_t oy = source_output(iy, ky, p.pad_top, p.dil_h, p.stride_h, p.out_h);
    if (oy < 0) continue;
    for (int64_t kx = 0; kx < p.kw; ++kx) {
      const int64_t ox = source_output(ix, kx, p.pad_left, p.dil_w, p.stride_w, p.out_w);
      if (ox >= 0) visit(ky, kx, oy, ox);
    }
  }
}

// The taps t in [lo, hi) for which start + t*dil lies in [0, extent): the loop bounds that
// replace a per-tap bounds check (start may be negative: padding). I as for source_output.
template <typename I>
struct TapRangeOf {
  I lo, hi;
};
using TapRange = TapRangeOf<int64_t>;
template <typename I>
__device__ inline TapRangeOf<I> tap_range(I start, I dil, I extent, I taps) {
  I lo = start < 0 ? (-start + dil - 1) / dil : 0;
  I hi = start < extent ? (extent - start + dil - 1) / dil : 0;
  if (hi > taps) hi = taps;
  if (lo > hi) lo = hi;
  return {lo, hi};
}

// The outputs o in [lo, hi) whose tap at offset `tap_offset` (= t*dil - pad) reads inside
// [0, extent): 0 <= o*stride + tap_offset < extent.
template <typename I>
__device__ inline TapRangeOf<I> output_range(I tap_offset, I stride, I extent, I out) {
  I lo = tap_offset < 0 ? (-tap_offset + stride - 1) / stride : 0;
  I hi = extent - tap_offset > 0 ? (extent - tap_offset + stride - 1) / stride : 0;
  if (hi > out) hi = out;
  if (lo > hi) lo = hi;
  return {lo, hi};
}

}  // namespace convcore::cuda

namespace convcore::cuda {
// The index type of a call's kernels: int (several times cheaper division) when every tensor of
// the call has fewer than kInt32IndexLimit elements, else int64_t. fn(int{}) or fn(int64_t{}).
constexpr int64_t kInt32IndexLimit = int64_t(1) << 30;
template <typename Fn>
void with_index_type(bool fits_int32, Fn&& fn) {
  if (fits_int32) fn(int{});
  else fn(int64_t{});
}
}  // namespace convcore::cuda

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
