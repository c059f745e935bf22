// float32 convolution with output pixels in vector lanes and weights broadcast, per group
// (conv_grouped_impl.inc): for groups with few output channels, and on AVX-512 for a single
// group with few input channels (first layers). conv_implicit_gemm.cpp runs it for the forward
// (and the stride-1 input gradient, itself a forward over dY) when grouped_conv_wins(p).
#pragma once
#include <cstdint>

#include "common/conv_params.h"

namespace convcore::cpu {

// Geometry the kernel is written for: stride 1 along the width (any along the height), any groups.
bool grouped_conv_applies(const ConvParams& p);
// The shape rule: where it beat the broadcast convolution (bench/RESULTS.md, "Session 10").
bool grouped_conv_wins(const ConvParams& p);
// Test/bench hook: 1 runs it wherever it applies, 0 never, anything else restores the rule
// (the starting mode comes from CONVCORE_CONV_GROUPED=0|1). Returns the previous mode.
int set_grouped_conv_override(int mode);
// y = conv(x); runs the build for active_isa(). `turned` as in conv2d_forward_broadcast_f32.
void conv2d_forward_grouped_f32(const ConvParams& p, const float* x, const float* w,
                                const float* bias, float* y, int threads, bool turned = false);

}  // namespace convcore::cpu

// Per-ISA builds (conv_grouped_avx2.cpp, conv_grouped_avx512.cpp).
#define CONVCORE_DECLARE_GROUPED_F32(isa)                                                     \
  namespace convcore::cpu::isa {                                                              \
  void grouped_forward_f32(const ConvParams& p, const float* x, const float* w,               \
                           const float* bias, float* y, int threads, bool turned);            \
  }
CONVCORE_DECLARE_GROUPED_F32(avx2)
CONVCORE_DECLARE_GROUPED_F32(avx512)

#define CONVCORE_DEFINE_GROUPED_F32(isa)                                                      \
  namespace convcore::cpu::isa {                                                              \
  void grouped_forward_f32(const ConvParams& p, const float* x, const float* w,               \
                           const float* bias, float* y, int threads, bool turned) {           \
    gc_impl::grouped_forward(p, x, w, bias, y, threads, turned);                              \
  }                                                                                           \
  }
