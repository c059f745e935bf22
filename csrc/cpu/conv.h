// The conv2d kernel family on the CPU: forward, gradient to the input, to the weight, to the bias.
// Every algorithm implements the same three entry points over one ConvParams; conv_transpose2d
// reuses them (see common/conv_params.h). Arrays are contiguous NCHW; outputs are write-only
// (the kernels never read what the caller put there).
#pragma once
#include <cstdint>
#include <vector>

#include "common/conv_params.h"
#include "common/select_algo.h"

namespace convcore::cpu {

// Dispatch by algorithm (Reference runs csrc/ref).
template <typename T>
void conv2d_forward(ConvAlgo algo, const ConvParams& p, const T* x, const T* w, const T* bias, T* y);
template <typename T>
void conv2d_backward_input(ConvAlgo algo, const ConvParams& p, const T* dy, const T* w, T* dx);
template <typename T>
void conv2d_backward_weight(ConvAlgo algo, const ConvParams& p, const T* dy, const T* x, T* dw);
// db[k] = sum over n, out_h, out_w of dy (double accumulator, so every algorithm agrees).
template <typename T>
void conv2d_backward_bias(const ConvParams& p, const T* dy, T* db);

// The algorithms, one file each.
template <typename T>
void conv2d_forward_direct(const ConvParams& p, const T* x, const T* w, const T* bias, T* y);
template <typename T>
void conv2d_backward_input_direct(const ConvParams& p, const T* dy, const T* w, T* dx);
template <typename T>
void conv2d_backward_weight_direct(const ConvParams& p, const T* dy, const T* x, T* dw);

template <typename T>
void conv2d_forward_im2col(const ConvParams& p, const T* x, const T* w, const T* bias, T* y);
template <typename T>
void conv2d_backward_input_im2col(const ConvParams& p, const T* dy, const T* w, T* dx);
template <typename T>
void conv2d_backward_weight_im2col(const ConvParams& p, const T* dy, const T* x, T* dw);

// float32 im2col forward without the column matrix: one implicit GEMM over the batch
// (conv_implicit_gemm.cpp); conv2d_forward_im2col<float> runs it.
void conv2d_forward_implicit_f32(const ConvParams& p, const float* x, const float* w,
                                 const float* bias, float* y);
// Helpers the float32 implicit-GEMM kernels share (conv_implicit_gemm.cpp, conv_broadcast_impl.inc):
// zero-padded copies (p's padding, planes of hp x wp) of `planes` consecutive planes of x;
void pad_planes_f32(const ConvParams& p, const float* x, int64_t planes, float* xpad);
// and, in a padded input of hp x wp planes, the offset of each row r = (c, ky, kx) of the
// column matrix relative to its output's tap (0, 0, 0).
std::vector<int64_t> col_row_offsets(const ConvParams& p, int64_t hp, int64_t wp);
// W' of the input gradient as a forward (backward_input_as_forward in common/conv_params.h):
// turned[g*C/groups + c][k][t] = w[g*K/groups + k][c][taps - 1 - t], threaded.
template <typename T>
void turn_weights(const ConvParams& p, const T* w, T* turned);
// float32 im2col backward-input as that forward over dY (backward_input_is_a_forward).
void conv2d_backward_input_implicit_f32(const ConvParams& p, const float* dy, const float* w,
                                        float* dx);
// float32 input gradient of a strided conv as one stride-1 forward over dY per phase of dX
// (conv_phases.cpp); _apply: dilation 1 and no phase needing negative padding; _win: the rule.
bool backward_input_phases_apply(const ConvParams& p);
bool backward_input_phases_win(const ConvParams& p);
void conv2d_backward_input_phases_f32(const ConvParams& p, const float* dy, const float* w,
                                      float* dx);
// float32 im2col backward-weight as one implicit GEMM whose K runs over the whole batch.
void conv2d_backward_weight_implicit_f32(const ConvParams& p, const float* dy, const float* x,
                                         float* dw);

template <typename T>
void depthwise_forward(const ConvParams& p, const T* x, const T* w, const T* bias, T* y);
template <typename T>
void depthwise_backward_input(const ConvParams& p, const T* dy, const T* w, T* dx);
template <typename T>
void depthwise_backward_weight(const ConvParams& p, const T* dy, const T* x, T* dw);

}  // namespace convcore::cpu

// Instantiates one kernel family's function for float and double.
#define CONVCORE_INSTANTIATE_FWD(fn)                                                   \
  template void fn<float>(const ConvParams&, const float*, const float*, const float*, float*); \
  template void fn<double>(const ConvParams&, const double*, const double*, const double*, double*);
#define CONVCORE_INSTANTIATE_BWD(fn)                                             \
  template void fn<float>(const ConvParams&, const float*, const float*, float*); \
  template void fn<double>(const ConvParams&, const double*, const double*, double*);
