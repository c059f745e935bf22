// Pooling kernels: a portable path for every shape and dtype, and AVX-512 / AVX2 row kernels for
// the float interior (pool_avx512.cpp, pool_avx2.cpp), chosen at run time.
//
// Each output row splits into border columns (windows cut by the padding or the image edge,
// done one output at a time) and the interior, where every window lies inside the image
// horizontally, done a row at a time with the taps in the outer loop. The valid kernel rows of
// an output row are computed once, so the inner loops never test bounds.
#include "cpu/pool.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <type_traits>
#include <vector>

#include "cpu/cpu_features.h"
#include "cpu/parallel.h"

namespace convcore::cpu {
namespace {

// The kernel taps k in [begin, end) whose input position start + k*dilation lies in [0, in).
struct TapRange {
  int64_t begin, end;
};
TapRange valid_taps(int64_t start, int64_t kernel, int64_t dilation, int64_t in) {
  const int64_t begin = start >= 0 ? 0 : (-start + dilation - 1) / dilation;
  // last valid k: floor((in - 1 - start) / dilation), when start <= in - 1
  const int64_t end = start > in - 1 ? 0 : std::min(kernel, (in - 1 - start) / dilation + 1);
  return {begin, std::max(begin, end)};
}

// Outputs [lo, hi) whose whole window (span = dilation*(kernel-1)+1) lies inside [0, in).
TapRange interior_outputs(int64_t out, int64_t in, int64_t span, int64_t stride, int64_t pad) {
  const int64_t lo = std::min(out, (pad + stride - 1) / stride);
  const int64_t last_start = in - span + pad;  // o*stride <= last_start
  const int64_t hi = last_start < 0 ? 0 : std::min(out, last_start / stride + 1);
  return {lo, std::max(lo, hi)};
}

// The float row kernels of the active ISA, or null for the portable loops (scalar level, or a
// plane too large for the kernels' 32-bit lane indices).
struct RowKernels {
  void (*max_row)(const PoolRowF32&, float*, int64_t*);
  void (*avg_row)(const PoolRowF32&, float, float*);
};
const RowKernels* simd_rows(const PoolParams& p) {
  static const RowKernels k512{&avx512::f32_maxpool_row, &avx512::f32_avgpool_row};
  static const RowKernels k2{&avx2::f32_maxpool_row, &avx2::f32_avgpool_row};
  if (p.h * p.w >= (int64_t(1) << 31)) return nullptr;
  switch (active_isa()) {
    case Isa::Avx512: return &k512;
    case Isa::Avx2: return &k2;
    default: return nullptr;
  }
}

// The rows whose every kernel row lies inside the image: their kernel-row range is the whole
// kernel, known without the divisions valid_taps takes.
TapRange full_window_rows(const PoolParams& p) {
  return interior_outputs(p.out_h, p.h, p.dil_h * (p.kh - 1) + 1, p.stride_h, p.pad_h);
}

// Hands each thread the share of the planes*out_h output rows that `omp for schedule(static)`
// over them would, as runs of consecutive rows of one plane: rows(plane, oy_begin, oy_end).
// The row functions work out what depends on the shape alone once per run, not once per row
// (that setup, with its integer divisions, was a quarter of a 3x3/2 row's time on 112-wide
// planes); runs are capped so that Ctrl-C is still seen within a few rows.
template <typename RowsFn>
void for_each_row_run(const PoolParams& p, RowsFn rows) {
  constexpr int64_t kMaxRunRows = 64;
  const int64_t total = p.planes() * p.out_h;
#pragma omp parallel num_threads(num_threads())
  {
    const int64_t t = omp_get_thread_num(), nt = omp_get_num_threads();
    const int64_t end = total / nt * (t + 1) + std::min<int64_t>(total % nt, t + 1);
    for (int64_t at = total / nt * t + std::min<int64_t>(total % nt, t); at < end;) {
      if (interrupted()) break;  // Ctrl-C: see cpu/parallel.h
      const int64_t plane = at / p.out_h, oy = at % p.out_h;
      const int64_t oy_end = std::min({p.out_h, oy + (end - at), oy + kMaxRunRows});
      rows(plane, oy, oy_end);
      at += oy_end - oy;
    }
  }
}

// ---- max pooling -----------------------------------------------------------------------------

// Output rows [oy_begin, oy_end) of one plane of max pooling, into y_rows / idx_rows (the
// outputs of row oy_begin onwards; idx_rows may be null).
template <typename T>
void max_pool_rows(const PoolParams& p, const T* plane, int64_t oy_begin, int64_t oy_end, T* y_rows,
                   int64_t* idx_rows) {
  const TapRange interior = interior_outputs(p.out_w, p.w, p.dil_w * (p.kw - 1) + 1, p.stride_w, p.pad_w);
  const TapRange full_rows = full_window_rows(p);
  const int64_t count = interior.end - interior.begin;
  const int64_t col0 = interior.begin * p.stride_w - p.pad_w;
  const RowKernels* simd = std::is_same_v<T, float> ? simd_rows(p) : nullptr;

  for (int64_t oy = oy_begin; oy < oy_end; ++oy) {
    T* y_row = y_rows + (oy - oy_begin) * p.out_w;
    int64_t* idx_row = idx_rows ? idx_rows + (oy - oy_begin) * p.out_w : nullptr;
    const int64_t start_y = oy * p.stride_h - p.pad_h;
    const TapRange ky = oy >= full_rows.begin && oy < full_rows.end ? TapRange{0, p.kh}
                                                                     : valid_taps(start_y, p.kh, p.dil_h, p.h);
    auto one_output = [&](int64_t ox) {
      const int64_t start_x = ox * p.stride_w - p.pad_w;
      const TapRange kx = valid_taps(start_x, p.kw, p.dil_w, p.w);
      T best = -std::numeric_limits<T>::infinity();
      int64_t best_index = (start_y + ky.begin * p.dil_h) * p.w + start_x + kx.begin * p.dil_w;
      for (int64_t i = ky.begin; i < ky.end; ++i) {
        const int64_t row = (start_y + i * p.dil_h) * p.w;
        for (int64_t j = kx.begin; j < kx.end; ++j) {
          const int64_t at = row + start_x + j * p.dil_w;
          const T v = plane[at];
          if (v > best || std::isnan(v)) {
            best = v;
            best_index = at;
          }
        }
      }
      y_row[ox] = best;
      if (idx_row) idx_row[ox] = best_index;
    };
    for (int64_t ox = 0; ox < interior.begin; ++ox) one_output(ox);
    for (int64_t ox = interior.end; ox < p.out_w; ++ox) one_output(ox);
    if (count <= 0) continue;
    if constexpr (std::is_same_v<T, float>) {
      if (simd) {
        const PoolRowF32 r{plane, p.w, start_y + ky.begin * p.dil_h, ky.end - ky.begin, p.dil_h,
                           p.kw, p.dil_w, p.stride_w, col0, count};
        simd->max_row(r, y_row + interior.begin, idx_row ? idx_row + interior.begin : nullptr);
        continue;
      }
    }
    // Taps outer, outputs inner: the inner loop is a strided streaming pass.
    T* y = y_row + interior.begin;
    int64_t* idx = idx_row ? idx_row + interior.begin : nullptr;
    bool first = true;
    for (int64_t i = ky.begin; i < ky.end; ++i) {
      const int64_t row = (start_y + i * p.dil_h) * p.w;
      for (int64_t kx = 0; kx < p.kw; ++kx) {
        const int64_t base = row + col0 + kx * p.dil_w;
        const T* src = plane + base;
        if (first) {
          for (int64_t j = 0; j < count; ++j) y[j] = src[j * p.stride_w];
          if (idx)
            for (int64_t j = 0; j < count; ++j) idx[j] = base + j * p.stride_w;
          first = false;
        } else if (idx) {
          for (int64_t j = 0; j < count; ++j) {
            const T v = src[j * p.stride_w];
            if (v > y[j] || std::isnan(v)) {
              y[j] = v;
              idx[j] = base + j * p.stride_w;
            }
          }
        } else {
          for (int64_t j = 0; j < count; ++j) {
            const T v = src[j * p.stride_w];
            y[j] = (v > y[j] || v != v) ? v : y[j];
          }
        }
      }
    }
  }
}

// Per-thread scratch rows for the backward passes (one allocation per thread, not per row).
template <typename U>
struct Scratch {
  std::vector<U> data;
  U* get(int64_t n) {
    if (int64_t(data.size()) < n) data.resize(n);
    return data.data();
  }
};

// ---- average pooling -------------------------------------------------------------------------

// Output rows [oy_begin, oy_end) of one plane of average pooling, into y_rows (the outputs of
// row oy_begin onwards).
template <typename T>
void avg_pool_rows(const PoolParams& p, const T* plane, int64_t oy_begin, int64_t oy_end, T* y_rows) {
  const TapRange interior = interior_outputs(p.out_w, p.w, p.kw, p.stride_w, p.pad_w);
  const int64_t count = interior.end - interior.begin;
  const int64_t col0 = interior.begin * p.stride_w - p.pad_w;
  // Inside, the window's columns are never clipped: padded_len == kw == the clipped extent.
  const AvgSpan inner_cols{col0, col0 + p.kw, p.kw};
  const RowKernels* simd = std::is_same_v<T, float> ? simd_rows(p) : nullptr;
  for (int64_t oy = oy_begin; oy < oy_end; ++oy) {
    T* y_row = y_rows + (oy - oy_begin) * p.out_w;
    const AvgSpan rows = avg_pool_span(oy, p.stride_h, p.pad_h, p.kh, p.h);
    auto one_output = [&](int64_t ox) {
      const AvgSpan cols = avg_pool_span(ox, p.stride_w, p.pad_w, p.kw, p.w);
      T sum = 0;
      for (int64_t iy = rows.begin; iy < rows.end; ++iy)
        for (int64_t ix = cols.begin; ix < cols.end; ++ix) sum += plane[iy * p.w + ix];
      y_row[ox] = sum / T(avg_pool_divisor(p, rows, cols));
    };
    for (int64_t ox = 0; ox < interior.begin; ++ox) one_output(ox);
    for (int64_t ox = interior.end; ox < p.out_w; ++ox) one_output(ox);
    if (count <= 0) continue;
    const T divisor = T(avg_pool_divisor(p, rows, inner_cols));
    if constexpr (std::is_same_v<T, float>) {
      if (simd) {
        const PoolRowF32 r{plane, p.w, rows.begin, rows.end - rows.begin, 1, p.kw, 1, p.stride_w, col0, count};
        simd->avg_row(r, divisor, y_row + interior.begin);
        continue;
      }
    }
    T* y = y_row + interior.begin;
    std::fill(y, y + count, T(0));
    for (int64_t iy = rows.begin; iy < rows.end; ++iy)
      for (int64_t kx = 0; kx < p.kw; ++kx) {
        const T* src = plane + iy * p.w + col0 + kx;
        for (int64_t j = 0; j < count; ++j) y[j] += src[j * p.stride_w];
      }
    for (int64_t j = 0; j < count; ++j) y[j] /= divisor;
  }
}

// Sum of n contiguous values with independent partial sums (a plain loop is one long
// dependency chain, and the compiler may not reorder float additions).
template <typename T>
T sum_run(const T* v, int64_t n) {
  T part[8] = {};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int k = 0; k < 8; ++k) part[k] += v[i + k];
  T total = 0;
  for (; i < n; ++i) total += v[i];
  return total + ((part[0] + part[1]) + (part[2] + part[3])) + ((part[4] + part[5]) + (part[6] + part[7]));
}

}  // namespace

template <typename T>
void max_pool2d_forward(const PoolParams& p, const T* x, T* y, int64_t* indices) {
  const int64_t in_plane = p.h * p.w, out_plane = p.out_h * p.out_w;
  for_each_row_run(p, [&](int64_t pl, int64_t oy_begin, int64_t oy_end) {
    const int64_t o = pl * out_plane + oy_begin * p.out_w;
    max_pool_rows(p, x + pl * in_plane, oy_begin, oy_end, y + o, indices ? indices + o : nullptr);
  });
}

template <typename T>
void max_pool2d_backward(const PoolParams& p, const T* dy, const int64_t* indices, const T* x, T* dx) {
  const int64_t in_plane = p.h * p.w, out_plane = p.out_h * p.out_w;
#pragma omp parallel num_threads(num_threads())
  {
    Scratch<T> y_scratch;
    Scratch<int64_t> idx_scratch;
#pragma omp for schedule(static)
    for (int64_t pl = 0; pl < p.planes(); ++pl) {
      if (interrupted()) continue;  // Ctrl-C: see cpu/parallel.h
      T* grad_in = dx + pl * in_plane;
      const T* grad_out = dy + pl * out_plane;
      std::fill(grad_in, grad_in + in_plane, T(0));
      if (indices) {
        const int64_t* idx = indices + pl * out_plane;
        for (int64_t o = 0; o < out_plane; ++o) grad_in[idx[o]] += grad_out[o];
        continue;
      }
      T* y_row = y_scratch.get(p.out_w);
      int64_t* idx_row = idx_scratch.get(p.out_w);
      for (int64_t oy = 0; oy < p.out_h; ++oy) {
        max_pool_rows(p, x + pl * in_plane, oy, oy + 1, y_row, idx_row);
        const T* g = grad_out + oy * p.out_w;
        for (int64_t ox = 0; ox < p.out_w; ++ox) grad_in[idx_row[ox]] += g[ox];
      }
    }
  }
}

template <typename T>
void avg_pool2d_forward(const PoolParams& p, const T* x, T* y) {
  const int64_t in_plane = p.h * p.w, out_plane = p.out_h * p.out_w;
  for_each_row_run(p, [&](int64_t pl, int64_t oy_begin, int64_t oy_end) {
    avg_pool_rows(p, x + pl * in_plane, oy_begin, oy_end, y + pl * out_plane + oy_begin * p.out_w);
  });
}

template <typename T>
void avg_pool2d_backward(const PoolParams& p, const T* dy, T* dx) {
  const int64_t in_plane = p.h * p.w, out_plane = p.out_h * p.out_w;
  const TapRange interior = interior_outputs(p.out_w, p.w, p.kw, p.stride_w, p.pad_w);
  const int64_t count = interior.end - interior.begin;
  const int64_t col0 = interior.begin * p.stride_w - p.pad_w;
#pragma omp parallel num_threads(num_threads())
  {
    Scratch<T> g_scratch;
#pragma omp for schedule(static)
    for (int64_t pl = 0; pl < p.planes(); ++pl) {
      if (interrupted()) continue;  // Ctrl-C: see cpu/parallel.h
      T* grad_in = dx + pl * in_plane;
      std::fill(grad_in, grad_in + in_plane, T(0));
      T* g = g_scratch.get(p.out_w);
      for (int64_t oy = 0; oy < p.out_h; ++oy) {
        const AvgSpan rows = avg_pool_span(oy, p.stride_h, p.pad_h, p.kh, p.h);
        const T* grad_out = dy + pl * out_plane + oy * p.out_w;
        for (int64_t ox = 0; ox < p.out_w; ++ox)
          g[ox] = grad_out[ox] / T(avg_pool_divisor(p, rows, avg_pool_span(ox, p.stride_w, p.pad_w, p.kw, p.w)));
        auto one_output = [&](int64_t ox) {
          const AvgSpan cols = avg_pool_span(ox, p.stride_w, p.pad_w, p.kw, p.w);
          for (int64_t iy = rows.begin; iy < rows.end; ++iy)
            for (int64_t ix = cols.begin; ix < cols.end; ++ix) grad_in[iy * p.w + ix] += g[ox];
        };
        for (int64_t ox = 0; ox < interior.begin; ++ox) one_output(ox);
        for (int64_t ox = interior.end; ox < p.out_w; ++ox) one_output(ox);
        const T* g_in = g + interior.begin;
        for (int64_t iy = rows.begin; iy < rows.end; ++iy)
          for (int64_t kx = 0; kx < p.kw; ++kx) {
            T* dst = grad_in + iy * p.w + col0 + kx;
            for (int64_t j = 0; j < count; ++j) dst[j * p.stride_w] += g_in[j];
          }
      }
    }
  }
}

template <typename T>
void adaptive_avg_pool2d_forward(const PoolParams& p, const T* x, T* y) {
  const int64_t in_plane = p.h * p.w, out_plane = p.out_h * p.out_w;
#pragma omp parallel for collapse(2) schedule(static) num_threads(num_threads())
  for (int64_t pl = 0; pl < p.planes(); ++pl)
    for (int64_t oy = 0; oy < p.out_h; ++oy) {
      if (interrupted()) continue;  // Ctrl-C: see cpu/parallel.h
      const int64_t y0 = adaptive_start(oy, p.h, p.out_h), y1 = adaptive_end(oy, p.h, p.out_h);
      const T* plane = x + pl * in_plane;
      T* y_row = y + pl * out_plane + oy * p.out_w;
      for (int64_t ox = 0; ox < p.out_w; ++ox) {
        const int64_t x0 = adaptive_start(ox, p.w, p.out_w), x1 = adaptive_end(ox, p.w, p.out_w);
        T sum = 0;
        for (int64_t iy = y0; iy < y1; ++iy) sum += sum_run(plane + iy * p.w + x0, x1 - x0);
        y_row[ox] = sum / T((y1 - y0) * (x1 - x0));
      }
    }
}

template <typename T>
void adaptive_avg_pool2d_backward(const PoolParams& p, const T* dy, T* dx) {
  const int64_t in_plane = p.h * p.w, out_plane = p.out_h * p.out_w;
#pragma omp parallel for schedule(static) num_threads(num_threads())
  for (int64_t pl = 0; pl < p.planes(); ++pl) {
    if (interrupted()) continue;  // Ctrl-C: see cpu/parallel.h
    T* grad_in = dx + pl * in_plane;
    std::fill(grad_in, grad_in + in_plane, T(0));
    for (int64_t oy = 0; oy < p.out_h; ++oy) {
      const int64_t y0 = adaptive_start(oy, p.h, p.out_h), y1 = adaptive_end(oy, p.h, p.out_h);
      for (int64_t ox = 0; ox < p.out_w; ++ox) {
        const int64_t x0 = adaptive_start(ox, p.w, p.out_w), x1 = adaptive_end(ox, p.w, p.out_w);
        const T g = dy[pl * out_plane + oy * p.out_w + ox] / T((y1 - y0) * (x1 - x0));
        for (int64_t iy = y0; iy < y1; ++iy) {
          T* dst = grad_in + iy * p.w;
          for (int64_t ix = x0; ix < x1; ++ix) dst[ix] += g;
        }
      }
    }
  }
}

template <typename T>
void adaptive_max_pool2d_forward(const PoolParams& p, const T* x, T* y, int64_t* indices) {
  const int64_t in_plane = p.h * p.w, out_plane = p.out_h * p.out_w;
#pragma omp parallel for collapse(2) schedule(static) num_threads(num_threads())
  for (int64_t pl = 0; pl < p.planes(); ++pl)
    for (int64_t oy = 0; oy < p.out_h; ++oy) {
      if (interrupted()) continue;  // Ctrl-C: see cpu/parallel.h
      const int64_t y0 = adaptive_start(oy, p.h, p.out_h), y1 = adaptive_end(oy, p.h, p.out_h);
      const T* plane = x + pl * in_plane;
      const int64_t o = pl * out_plane + oy * p.out_w;
      for (int64_t ox = 0; ox < p.out_w; ++ox) {
        const int64_t x0 = adaptive_start(ox, p.w, p.out_w), x1 = adaptive_end(ox, p.w, p.out_w);
        T best = -std::numeric_limits<T>::infinity();
        int64_t best_index = y0 * p.w + x0;
        for (int64_t iy = y0; iy < y1; ++iy)
          for (int64_t ix = x0; ix < x1; ++ix) {
            const T v = plane[iy * p.w + ix];
            if (v > best || std::isnan(v)) {
              best = v;
              best_index = iy * p.w + ix;
            }
          }
        y[o + ox] = best;
        if (indices) indices[o + ox] = best_index;
      }
    }
}

int64_t first_index_out_of_range(const PoolParams& p, const int64_t* indices) {
  const int64_t total = p.planes() * p.out_h * p.out_w, limit = p.h * p.w;
  int64_t first_bad = total;
#pragma omp parallel for schedule(static) reduction(min : first_bad) num_threads(num_threads())
  for (int64_t i = 0; i < total; ++i)
    if ((indices[i] < 0 || indices[i] >= limit) && i < first_bad) first_bad = i;
  return first_bad == total ? -1 : first_bad;
}

#define CONVCORE_INSTANTIATE_CPU_POOL(T)                                                       \
  template void max_pool2d_forward<T>(const PoolParams&, const T*, T*, int64_t*);              \
  template void max_pool2d_backward<T>(const PoolParams&, const T*, const int64_t*, const T*, T*); \
  template void avg_pool2d_forward<T>(const PoolParams&, const T*, T*);                        \
  template void avg_pool2d_backward<T>(const PoolParams&, const T*, T*);                       \
  template void adaptive_avg_pool2d_forward<T>(const PoolParams&, const T*, T*);               \
  template void adaptive_avg_pool2d_backward<T>(const PoolParams&, const T*, T*);              \
  template void adaptive_max_pool2d_forward<T>(const PoolParams&, const T*, T*, int64_t*);
CONVCORE_INSTANTIATE_CPU_POOL(float)
CONVCORE_INSTANTIATE_CPU_POOL(double)

}  // namespace convcore::cpu
