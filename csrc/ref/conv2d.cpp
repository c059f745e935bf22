// Reference conv2d: forward, gradient to input, gradient to weight. Each output element is one
// double-precision sum over exactly the terms the definition names:
//   y[n,k,oy,ox] = b[k] + sum_{cg,ky,kx} w[k,cg,ky,kx] * x[n, g*C/G + cg, oy*sh - pt + ky*dh, ox*sw - pl + kx*dw]
// with g = k / (K/G) and out-of-range input positions reading as zero padding.
#include <cstdint>

#include "cpu/parallel.h"
#include "ref/ref.h"

namespace convcore::ref {

namespace {
struct Idx {
  const ConvParams& p;
  int64_t x(int64_t n, int64_t c, int64_t iy, int64_t ix) const { return ((n * p.c + c) * p.h + iy) * p.w + ix; }
  int64_t y(int64_t n, int64_t k, int64_t oy, int64_t ox) const { return ((n * p.k + k) * p.out_h + oy) * p.out_w + ox; }
  int64_t w(int64_t k, int64_t cg, int64_t ky, int64_t kx) const { return ((k * p.c_per_group() + cg) * p.kh + ky) * p.kw + kx; }
};
}  // namespace

template <typename T>
void conv2d_forward(const ConvParams& p, const T* x, const T* w, const T* bias, T* y) {
  const Idx at{p};
  const int64_t cpg = p.c_per_group(), kpg = p.k_per_group();
#pragma omp parallel for collapse(2) schedule(static) num_threads(cpu::num_threads())
  for (int64_t n = 0; n < p.n; ++n)
    for (int64_t k = 0; k < p.k; ++k) {
      if (cpu::interrupted()) continue;  // Ctrl-C: see cpu/parallel.h
      const int64_t g = k / kpg;
      for (int64_t oy = 0; oy < p.out_h; ++oy)
        for (int64_t ox = 0; ox < p.out_w; ++ox) {
          double acc = bias ? double(bias[k]) : 0.0;
          for (int64_t cg = 0; cg < cpg; ++cg)
            for (int64_t ky = 0; ky < p.kh; ++ky) {
              const int64_t iy = oy * p.stride_h - p.pad_top + ky * p.dil_h;
              if (iy < 0 || iy >= p.h) continue;
              for (int64_t kx = 0; kx < p.kw; ++kx) {
                const int64_t ix = ox * p.stride_w - p.pad_left + kx * p.dil_w;
                if (ix < 0 || ix >= p.w) continue;
                acc += double(x[at.x(n, g * cpg + cg, iy, ix)]) * double(w[at.w(k, cg, ky, kx)]);
              }
            }
          y[at.y(n, k, oy, ox)] = T(acc);
        }
    }
}

// dx[n,c,iy,ix] = sum over the (k, ky, kx) whose window puts a tap on (iy, ix):
//   oy = (iy + pt - ky*dh) / sh must be a whole number in [0, out_h), likewise ox.
template <typename T>
void conv2d_backward_input(const ConvParams& p, const T* dy, const T* w, T* dx) {
  const Idx at{p};
  const int64_t cpg = p.c_per_group(), kpg = p.k_per_group();
#pragma omp parallel for collapse(2) schedule(static) num_threads(cpu::num_threads())
  for (int64_t n = 0; n < p.n; ++n)
    for (int64_t c = 0; c < p.c; ++c) {
      if (cpu::interrupted()) continue;  // Ctrl-C: see cpu/parallel.h
      const int64_t g = c / cpg, cg = c % cpg;
      for (int64_t iy = 0; iy < p.h; ++iy)
        for (int64_t ix = 0; ix < p.w; ++ix) {
          double acc = 0.0;
          for (int64_t k = g * kpg; k < (g + 1) * kpg; ++k)
            for (int64_t ky = 0; ky < p.kh; ++ky) {
              const int64_t ty = iy + p.pad_top - ky * p.dil_h;
              if (ty < 0 || ty % p.stride_h != 0 || ty / p.stride_h >= p.out_h) continue;
              for (int64_t kx = 0; kx < p.kw; ++kx) {
                const int64_t tx = ix + p.pad_left - kx * p.dil_w;
                if (tx < 0 || tx % p.stride_w != 0 || tx / p.stride_w >= p.out_w) continue;
                acc += double(dy[at.y(n, k, ty / p.stride_h, tx / p.stride_w)]) *
                       double(w[at.w(k, cg, ky, kx)]);
              }
            }
          dx[at.x(n, c, iy, ix)] = T(acc);
        }
    }
}

template <typename T>
void conv2d_backward_weight(const ConvParams& p, const T* dy, const T* x, T* dw) {
  const Idx at{p};
  const int64_t cpg = p.c_per_group(), kpg = p.k_per_group();
#pragma omp parallel for collapse(2) schedule(static) num_threads(cpu::num_threads())
  for (int64_t k = 0; k < p.k; ++k)
    for (int64_t cg = 0; cg < cpg; ++cg) {
      if (cpu::interrupted()) continue;  // Ctrl-C: see cpu/parallel.h
      const int64_t c = (k / kpg) * cpg + cg;
      for (int64_t ky = 0; ky < p.kh; ++ky)
        for (int64_t kx = 0; kx < p.kw; ++kx) {
          double acc = 0.0;
          for (int64_t n = 0; n < p.n; ++n)
            for (int64_t oy = 0; oy < p.out_h; ++oy) {
              const int64_t iy = oy * p.stride_h - p.pad_top + ky * p.dil_h;
              if (iy < 0 || iy >= p.h) continue;
              for (int64_t ox = 0; ox < p.out_w; ++ox) {
                const int64_t ix = ox * p.stride_w - p.pad_left + kx * p.dil_w;
                if (ix < 0 || ix >= p.w) continue;
                acc += double(dy[at.y(n, k, oy, ox)]) * double(x[at.x(n, c, iy, ix)]);
              }
            }
          dw[at.w(k, cg, ky, kx)] = T(acc);
        }
    }
}

template void conv2d_forward<float>(const ConvParams&, const float*, const float*, const float*, float*);
template void conv2d_forward<double>(const ConvParams&, const double*, const double*, const double*, double*);
template void conv2d_backward_input<float>(const ConvParams&, const float*, const float*, float*);
template void conv2d_backward_input<double>(const ConvParams&, const double*, const double*, double*);
template void conv2d_backward_weight<float>(const ConvParams&, const float*, const float*, float*);
template void conv2d_backward_weight<double>(const ConvParams&, const double*, const double*, double*);

}  // namespace convcore::ref
