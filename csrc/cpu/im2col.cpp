#include "cpu/im2col.h"

#include <algorithm>

#include "cpu/conv_taps.h"

namespace convcore::cpu {

template <typename T>
void im2col_image(const ConvParams& p, int64_t channels, const T* x_image, T* col,
                  int64_t row_stride, int64_t col_stride) {
  const int64_t in_plane = p.h * p.w;
  for (int64_t c = 0; c < channels; ++c)
    for (int64_t ky = 0; ky < p.kh; ++ky)
      for (int64_t kx = 0; kx < p.kw; ++kx) {
        T* row = col + ((c * p.kh + ky) * p.kw + kx) * row_stride;
        const T* in = x_image + c * in_plane;
        const TapWindow t = tap_window(p, ky, kx);
        for (int64_t oy = 0; oy < p.out_h; ++oy) {
          T* dst = row + oy * p.out_w * col_stride;
          if (oy < t.ys.lo || oy >= t.ys.hi) {
            for (int64_t ox = 0; ox < p.out_w; ++ox) dst[ox * col_stride] = T(0);
            continue;
          }
          const T* src = in + (t.in_y0 + (oy - t.ys.lo) * p.stride_h) * p.w + t.in_x0;
          for (int64_t ox = 0; ox < t.xs.lo; ++ox) dst[ox * col_stride] = T(0);
          if (col_stride == 1 && p.stride_w == 1) {
            for (int64_t ox = t.xs.lo; ox < t.xs.hi; ++ox) dst[ox] = src[ox - t.xs.lo];
          } else {
            for (int64_t ox = t.xs.lo; ox < t.xs.hi; ++ox)
              dst[ox * col_stride] = src[(ox - t.xs.lo) * p.stride_w];
          }
          for (int64_t ox = t.xs.hi; ox < p.out_w; ++ox) dst[ox * col_stride] = T(0);
        }
      }
}

template <typename T>
void col2im_image_rows(const ConvParams& p, int64_t channels, const T* col, int64_t row_stride,
                       int64_t col_stride, T* dx_image, int64_t y_begin, int64_t y_end) {
  const int64_t in_plane = p.h * p.w;
  auto ceil_div_signed = [](int64_t a, int64_t b) { return a >= 0 ? (a + b - 1) / b : -((-a) / b); };
  for (int64_t c = 0; c < channels; ++c)
    for (int64_t ky = 0; ky < p.kh; ++ky)
      for (int64_t kx = 0; kx < p.kw; ++kx) {
        const T* row = col + ((c * p.kh + ky) * p.kw + kx) * row_stride;
        T* in = dx_image + c * in_plane;
        const TapWindow t = tap_window(p, ky, kx);
        // the outputs oy whose input row t.in_y0 + (oy - lo) * stride_h lies in [y_begin, y_end)
        const int64_t oy_lo = std::max(t.ys.lo, t.ys.lo + ceil_div_signed(y_begin - t.in_y0, p.stride_h));
        const int64_t oy_hi = std::min(t.ys.hi, t.ys.lo + ceil_div_signed(y_end - t.in_y0, p.stride_h));
        for (int64_t oy = oy_lo; oy < oy_hi; ++oy) {
          const T* src = row + oy * p.out_w * col_stride;
          T* dst = in + (t.in_y0 + (oy - t.ys.lo) * p.stride_h) * p.w + t.in_x0;
          for (int64_t ox = t.xs.lo; ox < t.xs.hi; ++ox)
            dst[(ox - t.xs.lo) * p.stride_w] += src[ox * col_stride];
        }
      }
}

template <typename T>
void col2im_image(const ConvParams& p, int64_t channels, const T* col, int64_t row_stride,
                  int64_t col_stride, T* dx_image) {
  col2im_image_rows(p, channels, col, row_stride, col_stride, dx_image, 0, p.h);
}

template void im2col_image<float>(const ConvParams&, int64_t, const float*, float*, int64_t, int64_t);
template void im2col_image<double>(const ConvParams&, int64_t, const double*, double*, int64_t, int64_t);
template void col2im_image<float>(const ConvParams&, int64_t, const float*, int64_t, int64_t, float*);
template void col2im_image_rows<float>(const ConvParams&, int64_t, const float*, int64_t, int64_t, float*,
                                       int64_t, int64_t);
template void col2im_image_rows<double>(const ConvParams&, int64_t, const double*, int64_t, int64_t,
                                        double*, int64_t, int64_t);
template void col2im_image<double>(const ConvParams&, int64_t, const double*, int64_t, int64_t, double*);

}  // namespace convcore::cpu
