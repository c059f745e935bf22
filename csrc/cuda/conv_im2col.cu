// im2col + GEMM convolution on the GPU, twin of cpu/conv_im2col.cpp, with our tiled GEMM
// (gemm.cu). Per group g, with W_g the (K/G) x (C/G*kh*kw) slice of w:
//   forward          y_g   = W_g  * col(x_g)        (batched over all images)
//   backward-weight  dW_g  = sum over images of dy_g * col(x_g)'   (one GEMM whose reduction
//                    runs over images and positions)
//   backward-input   dcol  = W_g' * dy_g, then col2im (a gather: no atomics)
// The forward and the weight gradient never build col(x): the GEMM reads its tiles straight from
// x (ConvPatches, an implicit GEMM). The input gradient goes through a column buffer, a chunk of
// images at a time: a chunk is as many images as fit in kChunkBytes (and the
// CONVCORE_MAX_WORKSPACE limit), so the workspace stays bounded however large the batch.
// Pointwise convs (1x1, stride 1, no padding) use the input as the column matrix directly.
#include <algorithm>

#include "common/select_algo.h"
#include "cuda/conv.h"
#include "cuda/gemm.cuh"
#include "cuda/im2col.cuh"
#include "cuda/launch.cuh"

namespace convcore::cuda {

namespace {

constexpr int64_t kChunkBytes = int64_t(256) << 20;

struct Im2colPlan {
  int64_t cpg, kpg, ckk, hw, ohw;
  int64_t chunk;  // images per chunk
  bool pointwise;
  ColLayout layout;  // the GEMM layout of the column buffer
};

template <typename T>
Im2colPlan make_plan(const ConvParams& p) {
  Im2colPlan s;
  s.cpg = p.c_per_group();
  s.kpg = p.k_per_group();
  s.ckk = s.cpg * p.kh * p.kw;
  s.hw = p.h * p.w;
  s.ohw = p.out_h * p.out_w;
  s.pointwise = p.is_pointwise();
  s.layout = ColLayout{s.ohw, 1, s.ckk * s.ohw};
  const int64_t per_image = std::max<int64_t>(1, s.ckk * s.ohw * int64_t(sizeof(T)));
  const int64_t budget = std::min(kChunkBytes, max_workspace_bytes());
  s.chunk = std::clamp<int64_t>(budget / per_image, 1, std::max<int64_t>(p.n, 1));
  return s;
}

template <typename T>
size_t column_bytes(const Im2colPlan& s) {
  return s.pointwise ? 0 : size_t(s.chunk * s.ckk * s.ohw) * sizeof(T);
}

// Calls step(first_image, images, group) for every chunk of images and every group, in order.
template <typename Step>
void for_each_chunk(const ConvParams& p, const Im2colPlan& s, Step&& step) {
  for (int64_t n0 = 0; n0 < p.n; n0 += s.chunk)
    for (int64_t g = 0; g < p.groups; ++g) step(n0, std::min(s.chunk, p.n - n0), g);
}

}  // namespace

// The group's column matrix as read straight from x (first image, first channel of group g).
template <typename T>
ConvPatches<T> patches(const ConvParams& p, const Im2colPlan& s, const T* x, int64_t g,
                       bool by_positions) {
  return {x + g * s.cpg * s.hw, p.c * s.hw, s.cpg, p.h, p.w, p.kh, p.kw, p.stride_h, p.stride_w,
          p.pad_top, p.pad_left, p.dil_h, p.dil_w, p.out_h, p.out_w, s.ohw, by_positions};
}

template <typename T>
void conv2d_forward_im2col(const ConvParams& p, const T* x, const T* w, const T* bias, T* y,
                           cudaStream_t stream) {
  // implicit GEMM: the column matrix is read from x inside the GEMM's tile loads, every image
  // of the batch at once (no workspace)
  const Im2colPlan s = make_plan<T>(p);
  for (int64_t g = 0; g < p.groups; ++g) {
    const GemmOperand<T> a{w + g * s.kpg * s.ckk, s.ckk, 1};
    const GemmShape shape{s.kpg, s.ohw, s.ckk, s.ckk, p.n};
    T* out = y + g * s.kpg * s.ohw;
    const T* row_bias = bias ? bias + g * s.kpg : nullptr;
    if (s.pointwise)
      gemm<T>(shape, a, {x + g * s.cpg * s.hw, s.hw, 1, p.c * s.hw}, out, s.ohw, p.k * s.ohw,
              false, row_bias, stream);
    else
      gemm_patches<T>(shape, a, patches(p, s, x, g, false), out, s.ohw, p.k * s.ohw, false,
                      row_bias, stream);
  }
}

template <typename T>
void conv2d_backward_input_im2col(const ConvParams& p, const T* dy, const T* w, T* dx,
                                  cudaStream_t stream) {
  const Im2colPlan s = make_plan<T>(p);
  DeviceBuffer col(column_bytes<T>(s), stream);
  for_each_chunk(p, s, [&](int64_t n0, int64_t images, int64_t g) {
    const GemmOperand<T> w_t{w + g * s.kpg * s.ckk, 1, s.ckk};  // W_g transposed
    const GemmOperand<T> grad{dy + (n0 * p.k + g * s.kpg) * s.ohw, s.ohw, 1, p.k * s.ohw};
    const GemmShape shape{s.ckk, s.ohw, s.kpg, s.kpg, images};
    if (s.pointwise) {
      gemm<T>(shape, w_t, grad, dx + (n0 * p.c + g * s.cpg) * s.hw, s.hw, p.c * s.hw, false,
              nullptr, stream);
    } else {
      gemm<T>(shape, w_t, grad, col.as<T>(), s.ohw, s.ckk * s.ohw, false, nullptr, stream);
      col2im(p, images, g * s.cpg, s.cpg, col.as<T>(), s.layout, dx + n0 * p.c * s.hw, stream);
    }
  });
}

template <typename T>
void conv2d_backward_weight_im2col(const ConvParams& p, const T* dy, const T* x, T* dw,
                                   cudaStream_t stream) {
  if (p.n == 0) {  // an empty sum: the gradient is zero
    CC_CUDA_CHECK(cudaMemsetAsync(dw, 0, size_t(p.weight_numel()) * sizeof(T), stream));
    return;
  }
  // one GEMM per group over the whole batch: reduction index = (image, output position), outer
  // stride per image, inner per position; the column matrix read from x (implicit GEMM), and k
  // split across the GPU when the weight tile alone cannot fill it (gemm.cu)
  const Im2colPlan s = make_plan<T>(p);
  for (int64_t g = 0; g < p.groups; ++g) {
    const GemmOperand<T> grad{dy + g * s.kpg * s.ohw, s.ohw, 1, 0, p.k * s.ohw};
    const GemmShape shape{s.kpg, s.ckk, p.n * s.ohw, s.ohw, 1};
    T* out = dw + g * s.kpg * s.ckk;
    if (s.pointwise)
      gemm<T>(shape, grad, {x + g * s.cpg * s.hw, 1, s.hw, 0, p.c * s.hw}, out, s.ckk, 0, false,
              nullptr, stream);
    else
      gemm_patches<T>(shape, grad, patches(p, s, x, g, true), out, s.ckk, 0, false, nullptr,
                      stream);
  }
}

CONVCORE_CUDA_INSTANTIATE_CONV(conv2d_forward_im2col, conv2d_backward_input_im2col,
                               conv2d_backward_weight_im2col)

}  // namespace convcore::cuda
