// Reference locally connected / tiled convolution (see common/local_params.h): the definition in
// plain loops with double accumulators. Output (oy, ox) uses kernel t = tile_of(oy, ox):
//   y[n,k,oy,ox] = b[t,k] + sum_{c,ky,kx} w[t,k,c,ky,kx] * x[n, c, oy*sh - pt + ky*dh, ox*sw - pl + kx*dw]
#include "ref/local.h"

#include <vector>

namespace convcore::ref {

namespace {
// Input coordinate of tap (ky, kx) of output (oy, ox); false when it falls in the padding.
bool tap(const ConvParams& p, int64_t oy, int64_t ox, int64_t ky, int64_t kx, int64_t& iy, int64_t& ix) {
  iy = oy * p.stride_h - p.pad_top + ky * p.dil_h;
  ix = ox * p.stride_w - p.pad_left + kx * p.dil_w;
  return iy >= 0 && iy < p.h && ix >= 0 && ix < p.w;
}
}  // namespace

template <typename T>
void local_forward(const LocalParams& lp, const T* x, const T* w, const T* bias, T* y) {
  const ConvParams& p = lp.conv;
  for (int64_t n = 0; n < p.n; ++n)
    for (int64_t k = 0; k < p.k; ++k)
      for (int64_t oy = 0; oy < p.out_h; ++oy)
        for (int64_t ox = 0; ox < p.out_w; ++ox) {
          const int64_t t = lp.tile_of(oy, ox);
          const T* wk = w + t * lp.kernel_numel() + k * lp.ckk();
          double acc = bias ? double(bias[t * p.k + k]) : 0.0;
          for (int64_t c = 0; c < p.c; ++c)
            for (int64_t ky = 0; ky < p.kh; ++ky)
              for (int64_t kx = 0; kx < p.kw; ++kx) {
                int64_t iy, ix;
                if (!tap(p, oy, ox, ky, kx, iy, ix)) continue;
                acc += double(wk[(c * p.kh + ky) * p.kw + kx]) *
                       double(x[((n * p.c + c) * p.h + iy) * p.w + ix]);
              }
          y[((n * p.k + k) * p.out_h + oy) * p.out_w + ox] = T(acc);
        }
}

template <typename T>
void local_backward_input(const LocalParams& lp, const T* dy, const T* w, T* dx) {
  const ConvParams& p = lp.conv;
  std::vector<double> acc(size_t(p.c * p.h * p.w));
  for (int64_t n = 0; n < p.n; ++n) {
    std::fill(acc.begin(), acc.end(), 0.0);
    for (int64_t k = 0; k < p.k; ++k)
      for (int64_t oy = 0; oy < p.out_h; ++oy)
        for (int64_t ox = 0; ox < p.out_w; ++ox) {
          const double g = double(dy[((n * p.k + k) * p.out_h + oy) * p.out_w + ox]);
          const T* wk = w + lp.tile_of(oy, ox) * lp.kernel_numel() + k * lp.ckk();
          for (int64_t c = 0; c < p.c; ++c)
            for (int64_t ky = 0; ky < p.kh; ++ky)
              for (int64_t kx = 0; kx < p.kw; ++kx) {
                int64_t iy, ix;
                if (!tap(p, oy, ox, ky, kx, iy, ix)) continue;
                acc[size_t((c * p.h + iy) * p.w + ix)] += g * double(wk[(c * p.kh + ky) * p.kw + kx]);
              }
        }
    T* out = dx + n * p.c * p.h * p.w;
    for (size_t i = 0; i < acc.size(); ++i) out[i] = T(acc[i]);
  }
}

template <typename T>
void local_backward_weight(const LocalParams& lp, const T* dy, const T* x, T* dw) {
  const ConvParams& p = lp.conv;
  std::vector<double> acc(size_t(lp.weight_numel()), 0.0);
  for (int64_t n = 0; n < p.n; ++n)
    for (int64_t k = 0; k < p.k; ++k)
      for (int64_t oy = 0; oy < p.out_h; ++oy)
        for (int64_t ox = 0; ox < p.out_w; ++ox) {
          const double g = double(dy[((n * p.k + k) * p.out_h + oy) * p.out_w + ox]);
          double* ak = acc.data() + lp.tile_of(oy, ox) * lp.kernel_numel() + k * lp.ckk();
          for (int64_t c = 0; c < p.c; ++c)
            for (int64_t ky = 0; ky < p.kh; ++ky)
              for (int64_t kx = 0; kx < p.kw; ++kx) {
                int64_t iy, ix;
                if (!tap(p, oy, ox, ky, kx, iy, ix)) continue;
                ak[(c * p.kh + ky) * p.kw + kx] += g * double(x[((n * p.c + c) * p.h + iy) * p.w + ix]);
              }
        }
  for (size_t i = 0; i < acc.size(); ++i) dw[i] = T(acc[i]);
}

template <typename T>
void local_backward_bias(const LocalParams& lp, const T* dy, T* db) {
  const ConvParams& p = lp.conv;
  std::vector<double> acc(size_t(lp.bias_numel()), 0.0);
  for (int64_t n = 0; n < p.n; ++n)
    for (int64_t k = 0; k < p.k; ++k)
      for (int64_t oy = 0; oy < p.out_h; ++oy)
        for (int64_t ox = 0; ox < p.out_w; ++ox)
          acc[size_t(lp.tile_of(oy, ox) * p.k + k)] += double(dy[((n * p.k + k) * p.out_h + oy) * p.out_w + ox]);
  for (size_t i = 0; i < acc.size(); ++i) db[i] = T(acc[i]);
}

#define CONVCORE_INSTANTIATE_REF_LOCAL(T)                                                 \
  template void local_forward<T>(const LocalParams&, const T*, const T*, const T*, T*);   \
  template void local_backward_input<T>(const LocalParams&, const T*, const T*, T*);      \
  template void local_backward_weight<T>(const LocalParams&, const T*, const T*, T*);     \
  template void local_backward_bias<T>(const LocalParams&, const T*, T*);
CONVCORE_INSTANTIATE_REF_LOCAL(float)
CONVCORE_INSTANTIATE_REF_LOCAL(double)

}  // namespace convcore::ref
