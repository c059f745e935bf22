// Winograd minimal filtering for stride-1, undilated, ungrouped conv2d (Lavin & Gray, "Fast
// Algorithms for Convolutional Neural Networks", 2016):
//   Y = A^T [ (G g G^T) (.) (B^T d B) ] A
// and its gradients: dX as the same forward over dY with the kernel turned, dW (float32) by the
// transposed algorithm F(3x3,2x2), dW = G^T [ sum over tiles (A dY A^T) (.) (B^T X B) ] G.
// F(2x2,3x3) turns 36 multiplies per 2x2 output tile into 16; F(4x4,3x3) 144 into 36, at the
// price of larger transform constants (and so larger rounding error; bench/RESULTS.md measures it).
#pragma once
#include <cstdint>

#include "common/conv_params.h"

namespace convcore::cpu {

// tile_m: 2 for F(2x2,3x3), 4 for F(4x4,3x3). p must be one winograd_supports
// (common/select_algo.h) accepts for that tile and T: float32 F(2x2,3x3) runs the driver of
// conv_winograd_f32_impl.inc (any kernel, as 3x3 sub-kernels), float32 F(4x4,3x3) the same
// driver (3x3 only), float64 the generic one in conv_winograd.cpp (3x3 only).
template <typename T>
void conv2d_forward_winograd(int tile_m, const ConvParams& p, const T* x, const T* w, const T* bias,
                             T* y);

// The input gradient of a convolution Winograd supports, where it is a stride-1 forward over dY
// (backward_input_is_a_forward, common/conv_params.h): that forward, with the same tile.
template <typename T>
void conv2d_backward_input_winograd(int tile_m, const ConvParams& p, const T* dy, const T* w, T* dx);

// The transforms of one tile in float64, as the kernel runs them (for the tests):
//   kernel: g (3x3) -> G g G^T (alpha x alpha); input: d (alpha x alpha) -> B^T d B;
//   output: M (alpha x alpha) -> A^T M A (m x m). alpha = tile_m + 2.
void winograd_kernel_tile(int tile_m, const double* g, double* u);
void winograd_input_tile(int tile_m, const double* d, double* v);
void winograd_output_tile(int tile_m, const double* m, double* y);
// The matrices themselves, row-major: BT (alpha x alpha), G (alpha x 3), AT (tile_m x alpha).
void winograd_matrices(int tile_m, double* bt, double* g, double* at);

// Builds of the float32 F(2x2,3x3) and F(4x4,3x3) forward (conv_winograd_f32_impl.inc):
// transforms vectorized over tiles, products on the GEMM micro-kernels.
// conv2d_forward_winograd<float> runs the one of the active ISA (SSE2 in conv_winograd.cpp for
// the scalar level).
// The weight gradient of a 3x3 stride-1 convolution by F(3x3,2x2) (same file) likewise.
void winograd_forward_f32_sse2(int tile_m, const ConvParams& p, const float* x, const float* w,
                               const float* bias, float* y, int threads);
void winograd_f2_backward_weight_f32_sse2(const ConvParams& p, const float* dy, const float* x,
                                          float* dw, int threads);
namespace avx2 {
void winograd_forward_f32(int tile_m, const ConvParams& p, const float* x, const float* w,
                          const float* bias, float* y, int threads);
void winograd_f2_backward_weight_f32(const ConvParams& p, const float* dy, const float* x,
                                     float* dw, int threads);
}
namespace avx512 {
void winograd_forward_f32(int tile_m, const ConvParams& p, const float* x, const float* w,
                          const float* bias, float* y, int threads);
void winograd_f2_backward_weight_f32(const ConvParams& p, const float* dy, const float* x,
                                     float* dw, int threads);
}

// The weight gradient under a Winograd algorithm (either tile): float32, 3x3 kernels and
// winograd_weight_grad_wins(p): the F(3x3,2x2) driver; otherwise im2col's.
bool winograd_weight_grad_wins(const ConvParams& p);
template <typename T>
void conv2d_backward_weight_winograd(const ConvParams& p, const T* dy, const T* x, T* dw);

}  // namespace convcore::cpu
