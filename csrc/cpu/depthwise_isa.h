// Per-ISA builds of the float depthwise kernels in depthwise_impl.inc (see depthwise.cpp).
#pragma once
#include "common/conv_params.h"

#define CONVCORE_DECLARE_DEPTHWISE_F32(isa)                                                      \
  namespace convcore::cpu::isa {                                                                 \
  void depthwise_forward_f32(const ConvParams& p, const float* x, const float* w, const float* b, \
                             float* y);                                                          \
  void depthwise_backward_input_f32(const ConvParams& p, const float* dy, const float* w,        \
                                    float* dx);                                                  \
  void depthwise_backward_weight_f32(const ConvParams& p, const float* dy, const float* x,       \
                                     float* dw);                                                 \
  void depthwise_rank1_forward_f32(const ConvParams& col, const ConvParams& row, const float* x,  \
                                   const float* w_col, const float* w_row, const float* b,       \
                                   float* y);                                                    \
  }
CONVCORE_DECLARE_DEPTHWISE_F32(avx2)
CONVCORE_DECLARE_DEPTHWISE_F32(avx512)

namespace convcore::cpu {
// The depthwise geometry the in-register and channels-in-lanes kernels are written for: 3x3,
// multiplier 1, no dilation, the same stride 1 or 2 both ways, pads up to 2 on every side.
inline bool depthwise_3x3_small_pads(const ConvParams& p) {
  return p.channel_multiplier() == 1 && p.kh == 3 && p.kw == 3 && p.dil_h == 1 && p.dil_w == 1 &&
         p.stride_h == p.stride_w && (p.stride_w == 1 || p.stride_w == 2) && p.pad_top <= 2 &&
         p.pad_bottom <= 2 && p.pad_left <= 2 && p.pad_right <= 2;
}
}  // namespace convcore::cpu

// 3x3 depthwise (multiplier 1, stride 1 or 2, pads up to 2, padded rows up to 128 columns) with
// whole input rows in 512-bit registers (depthwise_small_avx512.cpp): forward, weight gradient,
// and stride 2's input gradient (stride 1's is the forward over dy with the kernels turned).
// Also the separable 1-D form (outer(w_col, w_row)), strides and dilations 1, up to 8 taps.
namespace convcore::cpu::avx512 {
bool depthwise_in_registers_applies(const ConvParams& p);
void depthwise_forward_in_registers_f32(const ConvParams& p, const float* x, const float* w,
                                        const float* bias, float* y);
void depthwise_backward_weight_in_registers_f32(const ConvParams& p, const float* dy,
                                                const float* x, float* dw);
void depthwise_backward_input_stride2_in_registers_f32(const ConvParams& p, const float* dy,
                                                       const float* w, float* dx);
// Maps at most 7 wide (pads up to 1), stride 1: two planes a vector (the 7x7 maps).
bool depthwise_pair_planes_applies(const ConvParams& p);
void depthwise_forward_pair_planes_f32(const ConvParams& p, const float* x, const float* w,
                                       const float* bias, float* y);
void depthwise_backward_weight_pair_planes_f32(const ConvParams& p, const float* dy, const float* x,
                                               float* dw);
bool depthwise_rank1_in_registers_applies(const ConvParams& col, const ConvParams& row);
void depthwise_rank1_forward_in_registers_f32(const ConvParams& col, const ConvParams& row,
                                              const float* x, const float* w_col,
                                              const float* w_row, const float* bias, float* y);
}

// Defines the three entry points of one ISA namespace from depthwise_impl.inc (T = float).
#define CONVCORE_DEFINE_DEPTHWISE_F32(isa)                                                       \
  namespace convcore::cpu::isa {                                                                 \
  void depthwise_forward_f32(const ConvParams& p, const float* x, const float* w, const float* b, \
                             float* y) { dw_impl::dw_forward(p, x, w, b, y); }                   \
  void depthwise_backward_input_f32(const ConvParams& p, const float* dy, const float* w,        \
                                    float* dx) { dw_impl::dw_backward_input(p, dy, w, dx); }     \
  void depthwise_backward_weight_f32(const ConvParams& p, const float* dy, const float* x,       \
                                     float* dw) { dw_impl::dw_backward_weight(p, dy, x, dw); }   \
  void depthwise_rank1_forward_f32(const ConvParams& col, const ConvParams& row, const float* x,  \
                                   const float* w_col, const float* w_row, const float* b,       \
                                   float* y) {                                                   \
    dw_impl::dw_forward_rank1(col, row, x, w_col, w_row, b, y);                                  \
  }                                                                                              \
  }

// 3x3 depthwise (multiplier 1, stride 1 or 2, pads up to 2) on small maps with a vector of
// channels in the lanes (depthwise_lanes_impl.inc, one build per ISA): where the maps are small
// enough for the ISA's rule (depthwise_lanes_<isa>.cpp), the forward, the weight gradient and
// the input gradient by scattering (run for stride 2; stride 1 runs the turned forward).
#define CONVCORE_DECLARE_DEPTHWISE_LANES_F32(isa)                                                \
  namespace convcore::cpu::isa {                                                                 \
  bool depthwise_channels_in_lanes_applies(const ConvParams& p);                                 \
  void depthwise_forward_channels_in_lanes_f32(const ConvParams& p, const float* x,              \
                                               const float* w, const float* bias, float* y);     \
  void depthwise_backward_weight_channels_in_lanes_f32(const ConvParams& p, const float* dy,     \
                                                       const float* x, float* dw);               \
  void depthwise_backward_input_channels_in_lanes_f32(const ConvParams& p, const float* dy,      \
                                                      const float* w, float* dx);                \
  }
CONVCORE_DECLARE_DEPTHWISE_LANES_F32(avx2)
CONVCORE_DECLARE_DEPTHWISE_LANES_F32(avx512)

// The rule: outputs at most `max_out_w` wide (the kernel's tile limit is the includer's).
#define CONVCORE_DEFINE_DEPTHWISE_LANES_F32(isa, max_out_w)                                      \
  namespace convcore::cpu::isa {                                                                 \
  bool depthwise_channels_in_lanes_applies(const ConvParams& p) {                                \
    return lanes_impl::lanes_apply(p, max_out_w);                                                \
  }                                                                                              \
  void depthwise_forward_channels_in_lanes_f32(const ConvParams& p, const float* x,              \
                                               const float* w, const float* bias, float* y) {    \
    lanes_impl::lanes_forward(p, x, w, bias, y);                                                 \
  }                                                                                              \
  void depthwise_backward_weight_channels_in_lanes_f32(const ConvParams& p, const float* dy,     \
                                                       const float* x, float* dw) {              \
    lanes_impl::lanes_backward_weight(p, dy, x, dw);                                             \
  }                                                                                              \
  void depthwise_backward_input_channels_in_lanes_f32(const ConvParams& p, const float* dy,      \
                                                      const float* w, float* dx) {               \
    lanes_impl::lanes_backward_input(p, dy, w, dx);                                              \
  }                                                                                              \
  }
