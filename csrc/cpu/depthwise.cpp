// Depthwise convolution (groups == C; K = C * multiplier, output channel k reads input channel
// k / multiplier). Parallel over (image, input channel) so one thread owns an input plane and
// all the output planes made from it; the fast SIMD variants replace the tap loops per ISA.
#include <algorithm>

#include "cpu/conv.h"
#include "cpu/conv_taps.h"
#include "cpu/parallel.h"

namespace convcore::cpu {

template <typename T>
void depthwise_forward(const ConvParams& p, const T* x, const T* w, const T* bias, T* y) {
  const int64_t mult = p.channel_multiplier();
  const int64_t in_plane = p.h * p.w, out_plane = p.out_h * p.out_w, taps = p.kh * p.kw;
#pragma omp parallel for collapse(2) schedule(static) num_threads(num_threads())
  for (int64_t n = 0; n < p.n; ++n)
    for (int64_t c = 0; c < p.c; ++c) {
      const T* in = x + (n * p.c + c) * in_plane;
      for (int64_t k = c * mult; k < (c + 1) * mult; ++k) {
        T* out = y + (n * p.k + k) * out_plane;
        std::fill(out, out + out_plane, bias ? bias[k] : T(0));
        for (int64_t tap = 0; tap < taps; ++tap)
          accumulate_tap(p, tap_window(p, tap / p.kw, tap % p.kw), w[k * taps + tap], in, out);
      }
    }
}

template <typename T>
void depthwise_backward_input(const ConvParams& p, const T* dy, const T* w, T* dx) {
  const int64_t mult = p.channel_multiplier();
  const int64_t in_plane = p.h * p.w, out_plane = p.out_h * p.out_w, taps = p.kh * p.kw;
#pragma omp parallel for collapse(2) schedule(static) num_threads(num_threads())
  for (int64_t n = 0; n < p.n; ++n)
    for (int64_t c = 0; c < p.c; ++c) {
      T* grad_in = dx + (n * p.c + c) * in_plane;
      std::fill(grad_in, grad_in + in_plane, T(0));
      for (int64_t k = c * mult; k < (c + 1) * mult; ++k)
        for (int64_t tap = 0; tap < taps; ++tap)
          scatter_tap(p, tap_window(p, tap / p.kw, tap % p.kw), w[k * taps + tap],
                      dy + (n * p.k + k) * out_plane, grad_in);
    }
}

template <typename T>
void depthwise_backward_weight(const ConvParams& p, const T* dy, const T* x, T* dw) {
  const int64_t mult = p.channel_multiplier();
  const int64_t in_plane = p.h * p.w, out_plane = p.out_h * p.out_w, taps = p.kh * p.kw;
#pragma omp parallel for collapse(2) schedule(static) num_threads(num_threads())
  for (int64_t k = 0; k < p.k; ++k)
    for (int64_t tap = 0; tap < taps; ++tap) {
      const TapWindow t = tap_window(p, tap / p.kw, tap % p.kw);
      double acc = 0.0;
      for (int64_t n = 0; n < p.n; ++n)
        acc += dot_tap(p, t, dy + (n * p.k + k) * out_plane, x + (n * p.c + k / mult) * in_plane);
      dw[k * taps + tap] = T(acc);
    }
}

CONVCORE_INSTANTIATE_FWD(depthwise_forward)
CONVCORE_INSTANTIATE_BWD(depthwise_backward_input)
CONVCORE_INSTANTIATE_BWD(depthwise_backward_weight)

}  // namespace convcore::cpu
