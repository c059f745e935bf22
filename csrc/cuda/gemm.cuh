// Our GEMM for the GPU (no cuBLAS): C = A * B (+ C) (+ bias per row), batched, with operands
// described by strides so that transposes, image batches and the per-group slices of the conv
// paths need no copies. Tiled through shared memory (gemm.cu).
//
// The reduction index k may itself be split as k = outer * k_inner + inner: element (i, k) of A
// is at  ptr + batch*batch_stride + i*row_stride + outer*outer_stride + inner*col_stride,
// and element (k, j) of B at  ptr + batch*batch_stride + outer*outer_stride + inner*row_stride +
// j*col_stride. The conv weight gradient uses this to sum over images (outer) and output
// positions (inner) in one GEMM, in a fixed order, instead of accumulating with atomics.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

namespace convcore::cuda {

template <typename T>
struct GemmOperand {
  const T* ptr;
  int64_t row_stride, col_stride;
  int64_t batch_stride = 0;
  int64_t outer_stride = 0;  // used only when k_inner < k
};

struct GemmShape {
  int64_t m, n, k;
  int64_t k_inner;  // == k when the reduction is not split
  int64_t batch;
};

// allow_tf32 (off by default; convcore.set_allow_tf32): float32 GEMMs round their operands to
// TF32 (10 mantissa bits) and multiply on the tensor cores. Each product then carries a relative
// error below 2^-10 + 2^-22 (two roundings of at most 2^-11), against 2^-23 for exact float32
// operands; the float32 accumulation is unchanged. float64 is never affected.
void set_allow_tf32(bool on);
bool allow_tf32();

// c: row-major with leading dimension ldc, batch stride c_batch_stride. accumulate: add to what
// C holds instead of overwriting it. bias: null or m values added to each row.
template <typename T>
void gemm(const GemmShape& shape, const GemmOperand<T>& a, const GemmOperand<T>& b, T* c,
          int64_t ldc, int64_t c_batch_stride, bool accumulate, const T* bias, cudaStream_t stream);

// The B operand of a convolution's GEMM read straight from x, with no column buffer (implicit
// GEMM). x points at the first image's channel c_begin; channels = the group's C/groups.
//   forward (by_positions false): B(k, j) = x[batch][c][oy*sh - pt + ky*dh][ox*sw - pl + kx*dw]
//     with k = (c, ky, kx) over channels*kh*kw, j = (oy, ox) over out_h*out_w, batch = image;
//   weight gradient (by_positions true): B(k, j) is the same value with k = (image, oy, ox)
//     over images*out_h*out_w and j = (c, ky, kx); batch 1.
// Taps outside the image read as zero (the padding).
template <typename T>
struct ConvPatches {
  const T* x;
  int64_t image_stride;  // C*H*W of the whole tensor
  int64_t channels, h, w, kh, kw, stride_h, stride_w, pad_top, pad_left, dil_h, dil_w;
  int64_t out_h, out_w, out_positions;
  bool by_positions;
};

// The B operand of the input gradient's GEMM read straight from dy (implicit GEMM):
//   B(k, j) = dy[batch][kc][oy][ox] with k = (kc, ky, kx) over channels*kh*kw, j = (iy, ix) over
//   h*w, oy = (iy + pt - ky*dh) / sh and ox likewise where those divide exactly and land inside
//   the out_h x out_w map, else zero. dy points at the first image's channel of the group.
template <typename T>
struct ConvGradPatches {
  const T* dy;
  int64_t image_stride;  // K*out_h*out_w of the whole tensor
  int64_t channels, h, w, kh, kw, stride_h, stride_w, pad_top, pad_left, dil_h, dil_w;
  int64_t out_h, out_w;
};

template <typename T>
void gemm_grad_patches(const GemmShape& shape, const GemmOperand<T>& a,
                       const ConvGradPatches<T>& b, T* c, int64_t ldc, int64_t c_batch_stride,
                       cudaStream_t stream);

template <typename T>
void gemm_patches(const GemmShape& shape, const GemmOperand<T>& a, const ConvPatches<T>& b, T* c,
                  int64_t ldc, int64_t c_batch_stride, bool accumulate, const T* bias,
                  cudaStream_t stream);

}  // namespace convcore::cuda
