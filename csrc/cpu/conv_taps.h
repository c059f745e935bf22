// Plane-at-a-time building blocks shared by the direct and depthwise kernels.
//
// A "tap" is one kernel position (ky, kx). For a fixed tap, the output positions whose input
// sample lies inside the image form a rectangle; computing its bounds once lets the inner loops
// run without per-element padding tests (and vectorise when stride_w == 1).
#pragma once
#include <algorithm>
#include <cstdint>

#include "common/conv_params.h"

namespace convcore::cpu {

struct Span {
  int64_t lo, hi;  // [lo, hi)
};

// Output positions o in [0, out_extent) with 0 <= o*stride - pad + tap_offset < in_extent.
inline Span valid_outputs(int64_t out_extent, int64_t in_extent, int64_t stride, int64_t pad,
                          int64_t tap_offset) {
  const int64_t first = pad - tap_offset;                 // need o*stride >= first
  const int64_t last = in_extent - 1 + pad - tap_offset;  // need o*stride <= last
  int64_t lo = first <= 0 ? 0 : (first + stride - 1) / stride;
  int64_t hi = last < 0 ? 0 : last / stride + 1;
  lo = std::min(lo, out_extent);
  hi = std::max(lo, std::min(hi, out_extent));
  return {lo, hi};
}

struct TapWindow {
  Span ys, xs;
  int64_t in_y0, in_x0;  // input position of output (ys.lo, xs.lo)
};

inline TapWindow tap_window(const ConvParams& p, int64_t ky, int64_t kx) {
  TapWindow t;
  t.ys = valid_outputs(p.out_h, p.h, p.stride_h, p.pad_top, ky * p.dil_h);
  t.xs = valid_outputs(p.out_w, p.w, p.stride_w, p.pad_left, kx * p.dil_w);
  t.in_y0 = t.ys.lo * p.stride_h - p.pad_top + ky * p.dil_h;
  t.in_x0 = t.xs.lo * p.stride_w - p.pad_left + kx * p.dil_w;
  return t;
}

// out_plane[oy, ox] += wv * in_plane[oy*sh - pt + ky*dh, ox*sw - pl + kx*dw] over the valid window.
template <typename T>
inline void accumulate_tap(const ConvParams& p, const TapWindow& t, T wv, const T* in_plane,
                           T* out_plane) {
  const int64_t width = t.xs.hi - t.xs.lo;
  for (int64_t oy = t.ys.lo; oy < t.ys.hi; ++oy) {
    const T* in_row = in_plane + (t.in_y0 + (oy - t.ys.lo) * p.stride_h) * p.w + t.in_x0;
    T* out_row = out_plane + oy * p.out_w + t.xs.lo;
    if (p.stride_w == 1) {
      for (int64_t j = 0; j < width; ++j) out_row[j] += wv * in_row[j];
    } else {
      for (int64_t j = 0; j < width; ++j) out_row[j] += wv * in_row[j * p.stride_w];
    }
  }
}

// The transpose of accumulate_tap: in_grad_plane[tap positions] += wv * out_grad_plane.
template <typename T>
inline void scatter_tap(const ConvParams& p, const TapWindow& t, T wv, const T* out_grad_plane,
                        T* in_grad_plane) {
  const int64_t width = t.xs.hi - t.xs.lo;
  for (int64_t oy = t.ys.lo; oy < t.ys.hi; ++oy) {
    T* in_row = in_grad_plane + (t.in_y0 + (oy - t.ys.lo) * p.stride_h) * p.w + t.in_x0;
    const T* out_row = out_grad_plane + oy * p.out_w + t.xs.lo;
    if (p.stride_w == 1) {
      for (int64_t j = 0; j < width; ++j) in_row[j] += wv * out_row[j];
    } else {
      for (int64_t j = 0; j < width; ++j) in_row[j * p.stride_w] += wv * out_row[j];
    }
  }
}

// sum over the valid window of out_grad_plane * input sample: one weight-gradient tap of one
// plane pair. Rows are summed in T (vectorisable), the row sums in double.
template <typename T>
inline double dot_tap(const ConvParams& p, const TapWindow& t, const T* out_grad_plane,
                      const T* in_plane) {
  const int64_t width = t.xs.hi - t.xs.lo;
  double total = 0.0;
  for (int64_t oy = t.ys.lo; oy < t.ys.hi; ++oy) {
    const T* in_row = in_plane + (t.in_y0 + (oy - t.ys.lo) * p.stride_h) * p.w + t.in_x0;
    const T* out_row = out_grad_plane + oy * p.out_w + t.xs.lo;
    T row = 0;
    if (p.stride_w == 1) {
      for (int64_t j = 0; j < width; ++j) row += out_row[j] * in_row[j];
    } else {
      for (int64_t j = 0; j < width; ++j) row += out_row[j] * in_row[j * p.stride_w];
    }
    total += double(row);
  }
  return total;
}

}  // namespace convcore::cpu
