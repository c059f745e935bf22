// Direct convolution: no workspace; each (image, output channel) plane is built tap by tap
// with conv_taps.h. Parallel over planes, so every element is written by one thread in a fixed
// order and the result does not depend on the thread count.
#include <algorithm>

#include "cpu/conv.h"
#include "cpu/conv_taps.h"
#include "cpu/parallel.h"

namespace convcore::cpu {

template <typename T>
void conv2d_forward_direct(const ConvParams& p, const T* x, const T* w, const T* bias, T* y) {
  const int64_t cpg = p.c_per_group(), kpg = p.k_per_group();
  const int64_t in_plane = p.h * p.w, out_plane = p.out_h * p.out_w, taps = p.kh * p.kw;
#pragma omp parallel for collapse(2) schedule(static) num_threads(num_threads())
  for (int64_t n = 0; n < p.n; ++n)
    for (int64_t k = 0; k < p.k; ++k) {
      if (interrupted()) continue;  // Ctrl-C: see cpu/parallel.h
      T* out = y + (n * p.k + k) * out_plane;
      std::fill(out, out + out_plane, bias ? bias[k] : T(0));
      const int64_t c0 = (k / kpg) * cpg;
      for (int64_t cg = 0; cg < cpg; ++cg) {
        const T* in = x + (n * p.c + c0 + cg) * in_plane;
        const T* wk = w + (k * cpg + cg) * taps;
        for (int64_t ky = 0; ky < p.kh; ++ky)
          for (int64_t kx = 0; kx < p.kw; ++kx)
            accumulate_tap(p, tap_window(p, ky, kx), wk[ky * p.kw + kx], in, out);
      }
    }
}

template <typename T>
void conv2d_backward_input_direct(const ConvParams& p, const T* dy, const T* w, T* dx) {
  const int64_t cpg = p.c_per_group(), kpg = p.k_per_group();
  const int64_t in_plane = p.h * p.w, out_plane = p.out_h * p.out_w, taps = p.kh * p.kw;
#pragma omp parallel for collapse(2) schedule(static) num_threads(num_threads())
  for (int64_t n = 0; n < p.n; ++n)
    for (int64_t c = 0; c < p.c; ++c) {
      if (interrupted()) continue;  // Ctrl-C: see cpu/parallel.h
      T* grad_in = dx + (n * p.c + c) * in_plane;
      std::fill(grad_in, grad_in + in_plane, T(0));
      const int64_t g = c / cpg, cg = c % cpg;
      for (int64_t k = g * kpg; k < (g + 1) * kpg; ++k) {
        const T* grad_out = dy + (n * p.k + k) * out_plane;
        const T* wk = w + (k * cpg + cg) * taps;
        for (int64_t ky = 0; ky < p.kh; ++ky)
          for (int64_t kx = 0; kx < p.kw; ++kx)
            scatter_tap(p, tap_window(p, ky, kx), wk[ky * p.kw + kx], grad_out, grad_in);
      }
    }
}

template <typename T>
void conv2d_backward_weight_direct(const ConvParams& p, const T* dy, const T* x, T* dw) {
  const int64_t cpg = p.c_per_group(), kpg = p.k_per_group();
  const int64_t in_plane = p.h * p.w, out_plane = p.out_h * p.out_w, taps = p.kh * p.kw;
#pragma omp parallel for collapse(2) schedule(static) num_threads(num_threads())
  for (int64_t k = 0; k < p.k; ++k)
    for (int64_t cg = 0; cg < cpg; ++cg) {
      if (interrupted()) continue;  // Ctrl-C: see cpu/parallel.h
      const int64_t c = (k / kpg) * cpg + cg;
      for (int64_t ky = 0; ky < p.kh; ++ky)
        for (int64_t kx = 0; kx < p.kw; ++kx) {
          const TapWindow t = tap_window(p, ky, kx);
          double acc = 0.0;
          for (int64_t n = 0; n < p.n; ++n)
            acc += dot_tap(p, t, dy + (n * p.k + k) * out_plane, x + (n * p.c + c) * in_plane);
          dw[(k * cpg + cg) * taps + ky * p.kw + kx] = T(acc);
        }
    }
}

CONVCORE_INSTANTIATE_FWD(conv2d_forward_direct)
CONVCORE_INSTANTIATE_BWD(conv2d_backward_input_direct)
CONVCORE_INSTANTIATE_BWD(conv2d_backward_weight_direct)

}  // namespace convcore::cpu
