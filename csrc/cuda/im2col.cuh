// im2col / col2im on the GPU, twin of cpu/im2col.h, for a batch of images and a channel range.
//
// The column matrix of one image has one row per (channel, ky, kx) of channels
// [c_begin, c_begin + channels) and one column per output position (oy, ox); element (r, q) is
// at col[image * col_image_stride + r * row_stride + q * col_stride]. The GEMM paths use
// row_stride = out_h*out_w, col_stride = 1; the book's layout (one row per output position) is
// row_stride = 1, col_stride = channels*kh*kw. Padding reads as zero.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

#include "common/conv_params.h"

namespace convcore::cuda {

struct ColLayout {
  int64_t row_stride, col_stride, image_stride;
};

// x points at image 0 of the batch (image stride p.c*p.h*p.w).
template <typename T>
void im2col(const ConvParams& p, int64_t images, int64_t c_begin, int64_t channels, const T* x,
            T* col, const ColLayout& layout, cudaStream_t stream);

// The adjoint: dx[image, c_begin + c, iy, ix] = the sum of the column entries that read it.
// Gathers (one thread per dx element, no atomics) and overwrites dx in the channel range.
template <typename T>
void col2im(const ConvParams& p, int64_t images, int64_t c_begin, int64_t channels, const T* col,
            const ColLayout& layout, T* dx, cudaStream_t stream);

}  // namespace convcore::cuda
