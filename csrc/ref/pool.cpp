// Reference pooling kernels: one output element at a time, straight from the definitions in
// common/pool_params.h; sums in double. Single-threaded on purpose: they define the answer.
#include <cmath>
#include <limits>
#include <vector>

#include "ref/ref.h"

namespace convcore::ref {

namespace {

// The argmax of one window, PyTorch's rule (see ref.h). start_* may be negative (padding).
template <typename T>
void window_argmax(const PoolParams& p, const T* plane, int64_t start_y, int64_t start_x, T* best_out,
                   int64_t* index_out) {
  T best = -std::numeric_limits<T>::infinity();
  int64_t best_index = -1;
  for (int64_t ky = 0; ky < p.kh; ++ky) {
    const int64_t iy = start_y + ky * p.dil_h;
    if (iy < 0 || iy >= p.h) continue;
    for (int64_t kx = 0; kx < p.kw; ++kx) {
      const int64_t ix = start_x + kx * p.dil_w;
      if (ix < 0 || ix >= p.w) continue;
      const T v = plane[iy * p.w + ix];
      if (best_index < 0) best_index = iy * p.w + ix;  // all -inf: the first valid tap
      if (v > best || std::isnan(v)) {
        best = v;
        best_index = iy * p.w + ix;
      }
    }
  }
  *best_out = best;
  *index_out = best_index;
}

}  // namespace

template <typename T>
void max_pool2d_forward(const PoolParams& p, const T* x, T* y, int64_t* indices) {
  const int64_t in_plane = p.h * p.w, out_plane = p.out_h * p.out_w;
  for (int64_t pl = 0; pl < p.planes(); ++pl)
    for (int64_t oy = 0; oy < p.out_h; ++oy)
      for (int64_t ox = 0; ox < p.out_w; ++ox) {
        T best;
        int64_t index;
        window_argmax(p, x + pl * in_plane, oy * p.stride_h - p.pad_h, ox * p.stride_w - p.pad_w,
                      &best, &index);
        const int64_t o = pl * out_plane + oy * p.out_w + ox;
        y[o] = best;
        if (indices) indices[o] = index;
      }
}

template <typename T>
void max_pool2d_backward(const PoolParams& p, const T* dy, const int64_t* indices, const T* x, T* dx) {
  const int64_t in_plane = p.h * p.w, out_plane = p.out_h * p.out_w;
  std::vector<double> acc(in_plane);
  for (int64_t pl = 0; pl < p.planes(); ++pl) {
    std::fill(acc.begin(), acc.end(), 0.0);
    for (int64_t oy = 0; oy < p.out_h; ++oy)
      for (int64_t ox = 0; ox < p.out_w; ++ox) {
        const int64_t o = pl * out_plane + oy * p.out_w + ox;
        int64_t index;
        if (indices) {
          index = indices[o];
        } else {
          T best;
          window_argmax(p, x + pl * in_plane, oy * p.stride_h - p.pad_h,
                        ox * p.stride_w - p.pad_w, &best, &index);
        }
        acc[index] += double(dy[o]);
      }
    for (int64_t i = 0; i < in_plane; ++i) dx[pl * in_plane + i] = T(acc[i]);
  }
}

template <typename T>
void avg_pool2d_forward(const PoolParams& p, const T* x, T* y) {
  const int64_t in_plane = p.h * p.w, out_plane = p.out_h * p.out_w;
  for (int64_t pl = 0; pl < p.planes(); ++pl)
    for (int64_t oy = 0; oy < p.out_h; ++oy) {
      const AvgSpan rows = avg_pool_span(oy, p.stride_h, p.pad_h, p.kh, p.h);
      for (int64_t ox = 0; ox < p.out_w; ++ox) {
        const AvgSpan cols = avg_pool_span(ox, p.stride_w, p.pad_w, p.kw, p.w);
        double sum = 0.0;
        for (int64_t iy = rows.begin; iy < rows.end; ++iy)
          for (int64_t ix = cols.begin; ix < cols.end; ++ix) sum += double(x[pl * in_plane + iy * p.w + ix]);
        y[pl * out_plane + oy * p.out_w + ox] = T(sum / double(avg_pool_divisor(p, rows, cols)));
      }
    }
}

template <typename T>
void avg_pool2d_backward(const PoolParams& p, const T* dy, T* dx) {
  const int64_t in_plane = p.h * p.w, out_plane = p.out_h * p.out_w;
  std::vector<double> acc(in_plane);
  for (int64_t pl = 0; pl < p.planes(); ++pl) {
    std::fill(acc.begin(), acc.end(), 0.0);
    for (int64_t oy = 0; oy < p.out_h; ++oy) {
      const AvgSpan rows = avg_pool_span(oy, p.stride_h, p.pad_h, p.kh, p.h);
      for (int64_t ox = 0; ox < p.out_w; ++ox) {
        const AvgSpan cols = avg_pool_span(ox, p.stride_w, p.pad_w, p.kw, p.w);
        const double g = double(dy[pl * out_plane + oy * p.out_w + ox]) /
                         double(avg_pool_divisor(p, rows, cols));
        for (int64_t iy = rows.begin; iy < rows.end; ++iy)
          for (int64_t ix = cols.begin; ix < cols.end; ++ix) acc[iy * p.w + ix] += g;
      }
    }
    for (int64_t i = 0; i < in_plane; ++i) dx[pl * in_plane + i] = T(acc[i]);
  }
}

template <typename T>
void adaptive_avg_pool2d_forward(const PoolParams& p, const T* x, T* y) {
  const int64_t in_plane = p.h * p.w, out_plane = p.out_h * p.out_w;
  for (int64_t pl = 0; pl < p.planes(); ++pl)
    for (int64_t oy = 0; oy < p.out_h; ++oy) {
      const int64_t y0 = adaptive_start(oy, p.h, p.out_h), y1 = adaptive_end(oy, p.h, p.out_h);
      for (int64_t ox = 0; ox < p.out_w; ++ox) {
        const int64_t x0 = adaptive_start(ox, p.w, p.out_w), x1 = adaptive_end(ox, p.w, p.out_w);
        double sum = 0.0;
        for (int64_t iy = y0; iy < y1; ++iy)
          for (int64_t ix = x0; ix < x1; ++ix) sum += double(x[pl * in_plane + iy * p.w + ix]);
        y[pl * out_plane + oy * p.out_w + ox] = T(sum / double((y1 - y0) * (x1 - x0)));
      }
    }
}

template <typename T>
void adaptive_avg_pool2d_backward(const PoolParams& p, const T* dy, T* dx) {
  const int64_t in_plane = p.h * p.w, out_plane = p.out_h * p.out_w;
  std::vector<double> acc(in_plane);
  for (int64_t pl = 0; pl < p.planes(); ++pl) {
    std::fill(acc.begin(), acc.end(), 0.0);
    for (int64_t oy = 0; oy < p.out_h; ++oy) {
      const int64_t y0 = adaptive_start(oy, p.h, p.out_h), y1 = adaptive_end(oy, p.h, p.out_h);
      for (int64_t ox = 0; ox < p.out_w; ++ox) {
        const int64_t x0 = adaptive_start(ox, p.w, p.out_w), x1 = adaptive_end(ox, p.w, p.out_w);
        const double g = double(dy[pl * out_plane + oy * p.out_w + ox]) / double((y1 - y0) * (x1 - x0));
        for (int64_t iy = y0; iy < y1; ++iy)
          for (int64_t ix = x0; ix < x1; ++ix) acc[iy * p.w + ix] += g;
      }
    }
    for (int64_t i = 0; i < in_plane; ++i) dx[pl * in_plane + i] = T(acc[i]);
  }
}

template <typename T>
void adaptive_max_pool2d_forward(const PoolParams& p, const T* x, T* y, int64_t* indices) {
  const int64_t in_plane = p.h * p.w, out_plane = p.out_h * p.out_w;
  for (int64_t pl = 0; pl < p.planes(); ++pl)
    for (int64_t oy = 0; oy < p.out_h; ++oy) {
      const int64_t y0 = adaptive_start(oy, p.h, p.out_h), y1 = adaptive_end(oy, p.h, p.out_h);
      for (int64_t ox = 0; ox < p.out_w; ++ox) {
        const int64_t x0 = adaptive_start(ox, p.w, p.out_w), x1 = adaptive_end(ox, p.w, p.out_w);
        T best = -std::numeric_limits<T>::infinity();
        int64_t best_index = y0 * p.w + x0;
        for (int64_t iy = y0; iy < y1; ++iy)
          for (int64_t ix = x0; ix < x1; ++ix) {
            const T v = x[pl * in_plane + iy * p.w + ix];
            if (v > best || std::isnan(v)) {
              best = v;
              best_index = iy * p.w + ix;
            }
          }
        y[pl * out_plane + oy * p.out_w + ox] = best;
        if (indices) indices[pl * out_plane + oy * p.out_w + ox] = best_index;
      }
    }
}

#define CONVCORE_INSTANTIATE_REF_POOL(T)                                                       \
  template void max_pool2d_forward<T>(const PoolParams&, const T*, T*, int64_t*);              \
  template void max_pool2d_backward<T>(const PoolParams&, const T*, const int64_t*, const T*, T*); \
  template void avg_pool2d_forward<T>(const PoolParams&, const T*, T*);                        \
  template void avg_pool2d_backward<T>(const PoolParams&, const T*, T*);                       \
  template void adaptive_avg_pool2d_forward<T>(const PoolParams&, const T*, T*);               \
  template void adaptive_avg_pool2d_backward<T>(const PoolParams&, const T*, T*);              \
  template void adaptive_max_pool2d_forward<T>(const PoolParams&, const T*, T*, int64_t*);
CONVCORE_INSTANTIATE_REF_POOL(float)
CONVCORE_INSTANTIATE_REF_POOL(double)

}  // namespace convcore::ref
