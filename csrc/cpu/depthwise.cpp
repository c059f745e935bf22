// Depthwise convolution (groups == C; K = C * multiplier, output channel k reads input channel
// k / multiplier).
//
// The fast path is depthwise_impl.inc (register-blocked output vectors over a ring of padded
// input rows), compiled once per ISA: float runs the avx512/avx2 build chosen by active_isa(),
// double (and the scalar level) the baseline build in this file. Shapes whose padding is far
// larger than the input (absurd padding) use the tap-window kernels below, which skip padding.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>

#include "common/conv_params.h"
#include "cpu/conv.h"
#include "cpu/conv_taps.h"
#include "cpu/cpu_features.h"
#include "cpu/depthwise_isa.h"
#include "cpu/parallel.h"

namespace convcore::cpu {

namespace {
namespace base_f32 {
using T = float;
constexpr int kVL = 4;  // baseline x86-64: SSE2, 128-bit vectors
#include "cpu/depthwise_impl.inc"
}  // namespace base_f32
namespace base_f64 {
using T = double;
constexpr int kVL = 2;  // baseline x86-64: SSE2, 128-bit vectors
#include "cpu/depthwise_impl.inc"
}  // namespace base_f64

// True when a zero-padded copy of one plane stays within a small multiple of the plane itself.
bool padded_plane_is_cheap(const ConvParams& p) {
  const double padded = double(p.h + p.pad_top + p.pad_bottom) * double(p.w + p.pad_left + p.pad_right);
  return padded <= 4.0 * double(p.h) * double(p.w) + 65536.0;
}

// ---- tap-window fallback (no workspace) ----
template <typename T>
void forward_taps(const ConvParams& p, const T* x, const T* w, const T* bias, T* y) {
  const int64_t mult = p.channel_multiplier();
  const int64_t in_plane = p.h * p.w, out_plane = p.out_h * p.out_w, taps = p.kh * p.kw;
#pragma omp parallel for collapse(2) schedule(static) num_threads(num_threads())
  for (int64_t n = 0; n < p.n; ++n)
    for (int64_t k = 0; k < p.k; ++k) {
      if (interrupted()) continue;  // Ctrl-C: see cpu/parallel.h
      T* out = y + (n * p.k + k) * out_plane;
      std::fill(out, out + out_plane, bias ? bias[k] : T(0));
      for (int64_t tap = 0; tap < taps; ++tap)
        accumulate_tap(p, tap_window(p, tap / p.kw, tap % p.kw), w[k * taps + tap],
                       x + (n * p.c + k / mult) * in_plane, out);
    }
}

template <typename T>
void backward_input_taps(const ConvParams& p, const T* dy, const T* w, T* dx) {
  const int64_t mult = p.channel_multiplier();
  const int64_t in_plane = p.h * p.w, out_plane = p.out_h * p.out_w, taps = p.kh * p.kw;
#pragma omp parallel for collapse(2) schedule(static) num_threads(num_threads())
  for (int64_t n = 0; n < p.n; ++n)
    for (int64_t c = 0; c < p.c; ++c) {
      if (interrupted()) continue;  // Ctrl-C: see cpu/parallel.h
      T* grad_in = dx + (n * p.c + c) * in_plane;
      std::fill(grad_in, grad_in + in_plane, T(0));
      for (int64_t k = c * mult; k < (c + 1) * mult; ++k)
        for (int64_t tap = 0; tap < taps; ++tap)
          scatter_tap(p, tap_window(p, tap / p.kw, tap % p.kw), w[k * taps + tap],
                      dy + (n * p.k + k) * out_plane, grad_in);
    }
}

template <typename T>
void backward_weight_taps(const ConvParams& p, const T* dy, const T* x, T* dw) {
  const int64_t mult = p.channel_multiplier();
  const int64_t in_plane = p.h * p.w, out_plane = p.out_h * p.out_w, taps = p.kh * p.kw;
#pragma omp parallel for collapse(2) schedule(static) num_threads(num_threads())
  for (int64_t k = 0; k < p.k; ++k)
    for (int64_t tap = 0; tap < taps; ++tap) {
      if (interrupted()) continue;  // Ctrl-C: see cpu/parallel.h
      const TapWindow t = tap_window(p, tap / p.kw, tap % p.kw);
      double acc = 0.0;
      for (int64_t n = 0; n < p.n; ++n)
        acc += dot_tap(p, t, dy + (n * p.k + k) * out_plane, x + (n * p.c + k / mult) * in_plane);
      dw[k * taps + tap] = T(acc);
    }
}
}  // namespace

template <>
void depthwise_forward<float>(const ConvParams& p, const float* x, const float* w, const float* b, float* y) {
  if (!padded_plane_is_cheap(p)) return forward_taps(p, x, w, b, y);
  switch (active_isa()) {
    case Isa::Avx512:
      if (avx512::depthwise_pair_planes_applies(p))
        return avx512::depthwise_forward_pair_planes_f32(p, x, w, b, y);
      if (avx512::depthwise_channels_in_lanes_applies(p))
        return avx512::depthwise_forward_channels_in_lanes_f32(p, x, w, b, y);
      if (avx512::depthwise_in_registers_applies(p))
        return avx512::depthwise_forward_in_registers_f32(p, x, w, b, y);
      return avx512::depthwise_forward_f32(p, x, w, b, y);
    case Isa::Avx2:
      if (avx2::depthwise_channels_in_lanes_applies(p))
        return avx2::depthwise_forward_channels_in_lanes_f32(p, x, w, b, y);
      return avx2::depthwise_forward_f32(p, x, w, b, y);
    default: return base_f32::dw_forward(p, x, w, b, y);
  }
}
template <>
void depthwise_forward<double>(const ConvParams& p, const double* x, const double* w, const double* b, double* y) {
  if (!padded_plane_is_cheap(p)) return forward_taps(p, x, w, b, y);
  base_f64::dw_forward(p, x, w, b, y);
}

namespace {
// Stride 1's input gradient as the forward over dy with each kernel turned (common/conv_params.h),
// on `forward` where `applies` takes that forward's geometry; false where it does not.
template <typename Applies, typename Forward>
bool turned_forward(const ConvParams& p, const float* dy, const float* w, float* dx,
                    Applies applies, Forward forward) {
  if (p.channel_multiplier() != 1 || !backward_input_is_a_forward(p)) return false;
  const ConvParams q = backward_input_as_forward(p);
  if (!applies(q)) return false;
  const std::vector<float> turned = base_f32::flipped_kernels(p, w);
  forward(q, dy, turned.data(), nullptr, dx);
  return true;
}
}  // namespace

template <>
void depthwise_backward_input<float>(const ConvParams& p, const float* dy, const float* w, float* dx) {
  if (!padded_plane_is_cheap(p)) return backward_input_taps(p, dy, w, dx);
  switch (active_isa()) {
    case Isa::Avx512:
      if (turned_forward(p, dy, w, dx, avx512::depthwise_pair_planes_applies,
                         avx512::depthwise_forward_pair_planes_f32) ||
          turned_forward(p, dy, w, dx, avx512::depthwise_channels_in_lanes_applies,
                         avx512::depthwise_forward_channels_in_lanes_f32) ||
          turned_forward(p, dy, w, dx, avx512::depthwise_in_registers_applies,
                         avx512::depthwise_forward_in_registers_f32))
        return;
      if (p.stride_w == 2 && avx512::depthwise_in_registers_applies(p))
        return avx512::depthwise_backward_input_stride2_in_registers_f32(p, dy, w, dx);
      return avx512::depthwise_backward_input_f32(p, dy, w, dx);
    case Isa::Avx2:
      if (turned_forward(p, dy, w, dx, avx2::depthwise_channels_in_lanes_applies,
                         avx2::depthwise_forward_channels_in_lanes_f32))
        return;
      if (p.stride_w == 2 && avx2::depthwise_channels_in_lanes_applies(p))
        return avx2::depthwise_backward_input_channels_in_lanes_f32(p, dy, w, dx);
      return avx2::depthwise_backward_input_f32(p, dy, w, dx);
    default: return base_f32::dw_backward_input(p, dy, w, dx);
  }
}
template <>
void depthwise_backward_input<double>(const ConvParams& p, const double* dy, const double* w, double* dx) {
  if (!padded_plane_is_cheap(p)) return backward_input_taps(p, dy, w, dx);
  base_f64::dw_backward_input(p, dy, w, dx);
}

template <>
void depthwise_backward_weight<float>(const ConvParams& p, const float* dy, const float* x, float* dw) {
  if (!padded_plane_is_cheap(p)) return backward_weight_taps(p, dy, x, dw);
  switch (active_isa()) {
    case Isa::Avx512:
      if (avx512::depthwise_pair_planes_applies(p))
        return avx512::depthwise_backward_weight_pair_planes_f32(p, dy, x, dw);
      if (avx512::depthwise_channels_in_lanes_applies(p))
        return avx512::depthwise_backward_weight_channels_in_lanes_f32(p, dy, x, dw);
      if (avx512::depthwise_in_registers_applies(p))
        return avx512::depthwise_backward_weight_in_registers_f32(p, dy, x, dw);
      return avx512::depthwise_backward_weight_f32(p, dy, x, dw);
    case Isa::Avx2:
      if (avx2::depthwise_channels_in_lanes_applies(p))
        return avx2::depthwise_backward_weight_channels_in_lanes_f32(p, dy, x, dw);
      return avx2::depthwise_backward_weight_f32(p, dy, x, dw);
    default: return base_f32::dw_backward_weight(p, dy, x, dw);
  }
}
template <>
void depthwise_backward_weight<double>(const ConvParams& p, const double* dy, const double* x, double* dw) {
  if (!padded_plane_is_cheap(p)) return backward_weight_taps(p, dy, x, dw);
  base_f64::dw_backward_weight(p, dy, x, dw);
}

}  // namespace convcore::cpu
