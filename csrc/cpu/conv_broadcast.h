// float32 convolution with output channels in vector lanes and input pixels broadcast from the
// zero-padded input (conv_broadcast_impl.inc): the implicit GEMM without a packed column panel.
// conv_implicit_gemm.cpp runs it for the forward (and the stride-1 input gradient, itself a
// forward over dY) when broadcast_conv_wins(p).
#pragma once
#include <cstdint>

#include "common/conv_params.h"

namespace convcore::cpu {

// Strides the kernel is compiled for (along the width; any stride along the height).
bool broadcast_conv_applies(const ConvParams& p);
// The shape rule: where it beat the packed-B implicit GEMM in bench/RESULTS.md.
bool broadcast_conv_wins(const ConvParams& p);
// dW = the weight gradient, as sums of broadcast x times dY over channel-last image copies;
// threads split the images and their partial sums are added in thread order.
void conv2d_backward_weight_broadcast_f32(const ConvParams& p, const float* dy, const float* x,
                                          float* dw, int threads);
// Where that beat the packed implicit GEMM's weight gradient.
bool broadcast_weight_grad_wins(const ConvParams& p);
// Test/bench hook: 1 runs it wherever it applies, 0 never, anything else restores the rule
// (the starting mode comes from CONVCORE_CONV_BROADCAST=0|1). Returns the previous mode.
int set_broadcast_conv_override(int mode);
// y = conv(x); runs the build for active_isa(). With `turned`, w holds the weights of the
// convolution whose stride-1 input gradient p is (K' = p.c, C' = p.k per group): the kernel p
// runs is w turned by 180 degrees with its two channel axes swapped, packed straight from w
// (no turned copy: for NIN's conv4_1024 that copy was 14 MB written and read per call).
void conv2d_forward_broadcast_f32(const ConvParams& p, const float* x, const float* w,
                                  const float* bias, float* y, int threads, bool turned = false);

}  // namespace convcore::cpu

// Per-ISA builds (conv_broadcast_avx2.cpp, conv_broadcast_avx512.cpp).
#define CONVCORE_DECLARE_BROADCAST_F32(isa)                                                     \
  namespace convcore::cpu::isa {                                                                \
  void broadcast_forward_f32(const ConvParams& p, const float* x, const float* w,               \
                             const float* bias, float* y, int threads, bool turned);            \
  void broadcast_backward_weight_f32(const ConvParams& p, const float* dy, const float* x,      \
                                     float* dw, int threads);                                   \
  }
CONVCORE_DECLARE_BROADCAST_F32(avx2)
CONVCORE_DECLARE_BROADCAST_F32(avx512)

// The includes conv_broadcast_impl.inc expects, then the ISA's definition of the entry point.
#define CONVCORE_DEFINE_BROADCAST_F32(isa)                                                      \
  namespace convcore::cpu::isa {                                                                \
  void broadcast_forward_f32(const ConvParams& p, const float* x, const float* w,               \
                             const float* bias, float* y, int threads, bool turned) {           \
    bc_impl::broadcast_forward(p, x, w, bias, y, threads, turned);                              \
  }                                                                                             \
  void broadcast_backward_weight_f32(const ConvParams& p, const float* dy, const float* x,      \
                                     float* dw, int threads) {                                  \
    bc_impl::broadcast_backward_weight(p, dy, x, dw, threads);                                  \
  }                                                                                             \
  }
