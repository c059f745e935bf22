// im2col + GEMM convolution on the GPU, twin of cpu/conv_im2col.cpp, with our tiled GEMM
// (gemm.cu). Per group g, with W_g the (K/G) x (C/G*kh*kw) slice of w:
//   forward          y_g   = W_g  * col(x_g)        (batched over all images)
//   backward-weight  dW_g  = sum over images of dy_g * col(x_g)'   (one GEMM whose reduction
//                    runs over images and positions)
//   backward-input   dx_g  = col2im(W_g' * dy_g)   (as one GEMM whose B gathers dy per tap)
// None of them builds a column buffer: the GEMM reads its tiles straight from x or dy
// (ConvPatches / ConvGradPatches in gemm.cuh, implicit GEMMs), so the only workspace is the
// split-k partials of gemm.cu. Pointwise convs (1x1, stride 1, no padding) use the input as the
// column matrix directly.
#include <algorithm>

#include "common/select_algo.h"
#include "cuda/conv.h"
#include "cuda/gemm.cuh"
#include "cuda/launch.cuh"

namespace convcore::cuda {

namespace {

struct Im2colPlan {
  int64_t cpg, kpg, ckk, hw, ohw;
  bool pointwise;
};

Im2colPlan make_plan(const ConvParams& p) {
  Im2colPlan s;
  s.cpg = p.c_per_group();
  s.kpg = p.k_per_group();
  s.ckk = s.cpg * p.kh * p.kw;
  s.hw = p.h * p.w;
  s.ohw = p.out_h * p.out_w;
  s.pointwise = p.is_pointwise();
  return s;
}

// The group's column matrix as read straight from x (first image, first channel of group g).
template <typename T>
ConvPatches<T> patches(const ConvParams& p, const Im2colPlan& s, const T* x, int64_t g,
                       bool by_positions) {
  return {x + g * s.cpg * s.hw, p.c * s.hw, s.cpg, p.h, p.w, p.kh, p.kw, p.stride_h, p.stride_w,
          p.pad_top, p.pad_left, p.dil_h, p.dil_w, p.out_h, p.out_w, s.ohw, by_positions};
}

}  // namespace

template <typename T>
void conv2d_forward_im2col(const ConvParams& p, const T* x, const T* w, const T* bias, T* y,
                           cudaStream_t stream) {
  // implicit GEMM: the column matrix is read from x inside the GEMM's tile loads, every image
  // of the batch at once (no workspace)
  const Im2colPlan s = make_plan(p);
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
  // dx_g = W_g' * dy_g with col2im folded into the GEMM's B loads: row c of dx_g sums, over
  // k' = (kc, ky, kx), W[kc][c][ky][kx] times the dy value that tap reads (ConvGradPatches), so
  // there is no column buffer and no scatter: each dx element is written once
  const Im2colPlan s = make_plan(p);
  const int64_t taps = p.kh * p.kw;
  for (int64_t g = 0; g < p.groups; ++g) {
    const T* w_g = w + g * s.kpg * s.ckk;
    T* out = dx + g * s.cpg * s.hw;
    if (s.pointwise) {
      const GemmOperand<T> w_t{w_g, 1, s.ckk};  // W_g transposed
      const GemmOperand<T> grad{dy + g * s.kpg * s.ohw, s.ohw, 1, p.k * s.ohw};
      gemm<T>({s.ckk, s.ohw, s.kpg, s.kpg, p.n}, w_t, grad, out, s.hw, p.c * s.hw, false, nullptr,
              stream);
      continue;
    }
    // A(c, k') = W[kc][c][t] with k' = kc * taps + t: inner stride 1, outer (per kc) ckk
    const GemmOperand<T> a{w_g, taps, 1, 0, s.ckk};
    const ConvGradPatches<T> b{dy + g * s.kpg * s.ohw, p.k * s.ohw, s.kpg, p.h, p.w, p.kh, p.kw,
                               p.stride_h, p.stride_w, p.pad_top, p.pad_left, p.dil_h, p.dil_w,
                               p.out_h, p.out_w};
    gemm_grad_patches<T>({s.cpg, s.hw, s.kpg * taps, taps, p.n}, a, b, out, s.hw, p.c * s.hw,
                         stream);
  }
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
  const Im2colPlan s = make_plan(p);
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
