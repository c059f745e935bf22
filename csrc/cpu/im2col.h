// im2col / col2im for one image (or one group of one image).
//
// The column matrix has one row per (channel, ky, kx) and one column per output position
// (oy, ox); element (r, q) is stored at col[r * row_stride + q * col_stride]. The GEMM paths use
// row_stride = out_h*out_w, col_stride = 1; the book's layout (one row per output position,
// columns ordered c, ky, kx) is the transpose: row_stride = 1, col_stride = channels*kh*kw.
// Padding reads as zero. col2im adds every column entry back onto its input position.
#pragma once
#include <cstdint>

#include "common/conv_params.h"

namespace convcore::cpu {

template <typename T>
void im2col_image(const ConvParams& p, int64_t channels, const T* x_image, T* col,
                  int64_t row_stride, int64_t col_stride);

// dx_image must be zeroed (or hold what the sums should be added to) by the caller.
template <typename T>
void col2im_image(const ConvParams& p, int64_t channels, const T* col, int64_t row_stride,
                  int64_t col_stride, T* dx_image);
// The same, for input rows [y_begin, y_end) only: bands of rows are disjoint sums, so threads can
// take one band each.
template <typename T>
void col2im_image_rows(const ConvParams& p, int64_t channels, const T* col, int64_t row_stride,
                       int64_t col_stride, T* dx_image, int64_t y_begin, int64_t y_end);

}  // namespace convcore::cpu
