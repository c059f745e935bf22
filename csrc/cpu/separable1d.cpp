// Separable 1-D convolution kernels (see separable1d.h): a column pass and a row pass, each with
// forward, gradient to its input and gradient to its 1-D weights, composed one output row at a
// time by the forward and backward drivers at the bottom.
#include "cpu/separable1d.h"

#include <algorithm>
#include <type_traits>
#include <vector>

#include "common/errors.h"
#include "common/shapes.h"
#include "cpu/conv.h"
#include "cpu/conv_taps.h"
#include "cpu/cpu_features.h"
#include "cpu/depthwise_isa.h"
#include "cpu/parallel.h"

namespace convcore::cpu {

namespace {

// ---- row pass -------------------------------------------------------------------------------
// out[j] += w[t] * in[j*stride - pad_left + t*dil] for the j where that column is inside the row.

struct RowTap {
  int64_t lo, hi;  // outputs [lo, hi) read inside the row
  int64_t src;     // where output lo's input sits in the source buffer (row or phase layout)
};

// Phase layout of a row of width w for stride s: phase r holds columns r, r+s, r+2s, ... and
// starts after the earlier phases, so the buffer is exactly w long (even when s > w).
inline int64_t phase_start(int64_t w, int64_t s, int64_t r) { return r * (w / s) + std::min(r, w % s); }

struct RowPlan {
  int64_t in_w = 0, out_w = 0, stride = 1;
  std::vector<RowTap> taps;
  bool phased() const { return stride > 1; }
};

RowPlan make_row_plan(const ConvParams& p) {
  RowPlan plan;
  plan.in_w = p.w;
  plan.out_w = p.out_w;
  plan.stride = p.stride_w;
  for (int64_t t = 0; t < p.kw; ++t) {
    const Span s = valid_outputs(p.out_w, p.w, p.stride_w, p.pad_left, t * p.dil_w);
    int64_t src = 0;
    if (s.lo < s.hi) {
      const int64_t first = s.lo * p.stride_w - p.pad_left + t * p.dil_w;  // in [0, w)
      src = plan.phased()
                ? phase_start(p.w, p.stride_w, first % p.stride_w) + first / p.stride_w
                : first;
    }
    plan.taps.push_back({s.lo, s.hi, src});
  }
  return plan;
}

template <typename T>
void split_phases(const RowPlan& plan, const T* row, T* phases) {
  const int64_t w = plan.in_w, s = plan.stride;
  for (int64_t r = 0; r < std::min(s, w); ++r) {
    T* dst = phases + phase_start(w, s, r);
    for (int64_t q = r, m = 0; q < w; q += s, ++m) dst[m] = row[q];
  }
}

template <typename T>
void merge_phases(const RowPlan& plan, const T* phases, T* row) {
  const int64_t w = plan.in_w, s = plan.stride;
  for (int64_t r = 0; r < std::min(s, w); ++r) {
    const T* src = phases + phase_start(w, s, r);
    for (int64_t q = r, m = 0; q < w; q += s, ++m) row[q] = src[m];
  }
}

// `in` is the row itself (stride 1) or its phase layout (stride > 1).
template <typename T>
void row_forward(const RowPlan& plan, const T* __restrict in, const T* w_row, T bias,
                 T* __restrict out) {
  std::fill(out, out + plan.out_w, bias);
  for (size_t t = 0; t < plan.taps.size(); ++t) {
    const RowTap& tap = plan.taps[t];
    const T wv = w_row[t];
    const T* __restrict src = in + tap.src;
    T* __restrict dst = out + tap.lo;
    for (int64_t j = 0, n = tap.hi - tap.lo; j < n; ++j) dst[j] += wv * src[j];
  }
}

// The transpose of row_forward: grad_in (row or phase layout, overwritten) from grad_out.
template <typename T>
void row_backward_input(const RowPlan& plan, const T* __restrict grad_out, const T* w_row,
                        T* __restrict grad_in) {
  std::fill(grad_in, grad_in + plan.in_w, T(0));
  for (size_t t = 0; t < plan.taps.size(); ++t) {
    const RowTap& tap = plan.taps[t];
    const T wv = w_row[t];
    const T* __restrict src = grad_out + tap.lo;
    T* __restrict dst = grad_in + tap.src;
    for (int64_t j = 0, n = tap.hi - tap.lo; j < n; ++j) dst[j] += wv * src[j];
  }
}

// acc[t] += sum_j grad_out[j] * in[tap t of j]: one row's share of the row-weight gradient.
template <typename T>
void row_backward_weight(const RowPlan& plan, const T* __restrict grad_out, const T* __restrict in,
                         double* acc) {
  for (size_t t = 0; t < plan.taps.size(); ++t) {
    const RowTap& tap = plan.taps[t];
    const T* src = in + tap.src;
    const T* g = grad_out + tap.lo;
    T sum = 0;  // a row sum in T vectorises; rows are summed in double by the caller's acc
    for (int64_t j = 0, n = tap.hi - tap.lo; j < n; ++j) sum += g[j] * src[j];
    acc[t] += double(sum);
  }
}

// ---- column pass ----------------------------------------------------------------------------
// Output row oy of a plane is a weighted sum of whole input rows oy*stride - pad_top + t*dil.

inline int64_t column_input_row(const ConvParams& p, int64_t oy, int64_t t) {
  return oy * p.stride_h - p.pad_top + t * p.dil_h;
}

template <typename T>
void column_forward_row(const ConvParams& p, const T* x_plane, const T* w_col, int64_t oy,
                        T* __restrict out_row) {
  std::fill(out_row, out_row + p.w, T(0));
  for (int64_t t = 0; t < p.kh; ++t) {
    const int64_t iy = column_input_row(p, oy, t);
    if (iy < 0 || iy >= p.h) continue;
    const T wv = w_col[t];
    const T* __restrict in = x_plane + iy * p.w;
    for (int64_t j = 0; j < p.w; ++j) out_row[j] += wv * in[j];
  }
}

template <typename T>
void column_backward_input_row(const ConvParams& p, const T* __restrict grad_row, const T* w_col,
                               int64_t oy, T* grad_plane) {
  for (int64_t t = 0; t < p.kh; ++t) {
    const int64_t iy = column_input_row(p, oy, t);
    if (iy < 0 || iy >= p.h) continue;
    const T wv = w_col[t];
    T* __restrict dst = grad_plane + iy * p.w;
    for (int64_t j = 0; j < p.w; ++j) dst[j] += wv * grad_row[j];
  }
}

template <typename T>
void column_backward_weight_row(const ConvParams& p, const T* __restrict grad_row,
                                const T* x_plane, int64_t oy, double* acc) {
  for (int64_t t = 0; t < p.kh; ++t) {
    const int64_t iy = column_input_row(p, oy, t);
    if (iy < 0 || iy >= p.h) continue;
    const T* __restrict in = x_plane + iy * p.w;
    T sum = 0;
    for (int64_t j = 0; j < p.w; ++j) sum += grad_row[j] * in[j];
    acc[t] += double(sum);
  }
}

}  // namespace

// ---- drivers --------------------------------------------------------------------------------

template <typename T>
void separable1d_forward(const Separable1dParams& sp, const T* x, const T* w_col, const T* w_row,
                         const T* bias, T* y) {
  if constexpr (std::is_same_v<T, float>) {
    // Register-blocked per-ISA build (depthwise_impl.inc): the loops below are compiled for
    // baseline x86-64 only and would lose to our own AVX2/AVX-512 2-D depthwise kernel.
    if (sp.row.stride_w == 1) {
      switch (active_isa()) {
        case Isa::Avx512:
          if (avx512::depthwise_rank1_in_registers_applies(sp.col, sp.row))
            return avx512::depthwise_rank1_forward_in_registers_f32(sp.col, sp.row, x, w_col, w_row,
                                                                    bias, y);
          return avx512::depthwise_rank1_forward_f32(sp.col, sp.row, x, w_col, w_row, bias, y);
        case Isa::Avx2: return avx2::depthwise_rank1_forward_f32(sp.col, sp.row, x, w_col, w_row, bias, y);
        default: break;
      }
    }
  }
  const ConvParams& pc = sp.col;
  const RowPlan plan = make_row_plan(sp.row);
  const int64_t channels = pc.c, kh = pc.kh, kw = sp.row.kw;
  const int64_t in_plane = pc.h * pc.w, out_w = sp.out_w(), out_plane = sp.out_h() * out_w;
#pragma omp parallel num_threads(num_threads())
  {
    std::vector<T> mid_row(pc.w), phases(plan.phased() ? pc.w : 0);
#pragma omp for collapse(2) schedule(static)
    for (int64_t n = 0; n < sp.n(); ++n)
      for (int64_t c = 0; c < channels; ++c) {
        if (interrupted()) continue;  // Ctrl-C: see cpu/parallel.h
        const T* x_plane = x + (n * channels + c) * in_plane;
        T* y_plane = y + (n * channels + c) * out_plane;
        const T b = bias ? bias[c] : T(0);
        for (int64_t oy = 0; oy < sp.out_h(); ++oy) {
          column_forward_row(pc, x_plane, w_col + c * kh, oy, mid_row.data());
          const T* row_in = mid_row.data();
          if (plan.phased()) {
            split_phases(plan, mid_row.data(), phases.data());
            row_in = phases.data();
          }
          row_forward(plan, row_in, w_row + c * kw, b, y_plane + oy * out_w);
        }
      }
  }
}

template <typename T>
void separable1d_backward(const Separable1dParams& sp, const T* dy, const T* x, const T* w_col,
                          const T* w_row, T* dx, T* dw_col, T* dw_row, T* db) {
  const ConvParams& pc = sp.col;
  const RowPlan plan = make_row_plan(sp.row);
  const int64_t channels = pc.c, kh = pc.kh, kw = sp.row.kw;
  const int64_t in_plane = pc.h * pc.w, out_w = sp.out_w(), out_plane = sp.out_h() * out_w;
  const bool need_mid_grad = dx || dw_col;

  // One (image, channel) plane, row by row: the intermediate row (for dw_row) and its gradient
  // (for dx and dw_col) live only in the per-thread buffers.
  auto plane = [&](int64_t n, int64_t c, T* mid_row, T* mid_grad, T* phases, double* acc_col,
                   double* acc_row) {
    const T* x_plane = x + (n * channels + c) * in_plane;
    const T* dy_plane = dy + (n * channels + c) * out_plane;
    T* dx_plane = dx ? dx + (n * channels + c) * in_plane : nullptr;
    const T* wc = w_col + c * kh;
    const T* wr = w_row + c * kw;
    if (dx_plane) std::fill(dx_plane, dx_plane + in_plane, T(0));
    for (int64_t oy = 0; oy < sp.out_h(); ++oy) {
      const T* dy_row = dy_plane + oy * out_w;
      if (dw_row) {
        column_forward_row(pc, x_plane, wc, oy, mid_row);
        const T* row_in = mid_row;
        if (plan.phased()) {
          split_phases(plan, mid_row, phases);
          row_in = phases;
        }
        row_backward_weight(plan, dy_row, row_in, acc_row);
      }
      if (need_mid_grad) {
        if (plan.phased()) {
          row_backward_input(plan, dy_row, wr, phases);
          merge_phases(plan, phases, mid_grad);
        } else {
          row_backward_input(plan, dy_row, wr, mid_grad);
        }
        if (dw_col) column_backward_weight_row(pc, mid_grad, x_plane, oy, acc_col);
        if (dx_plane) column_backward_input_row(pc, mid_grad, wc, oy, dx_plane);
      }
    }
  };

#pragma omp parallel num_threads(num_threads())
  {
    std::vector<T> mid_row(pc.w), mid_grad(pc.w), phases(plan.phased() ? pc.w : 0);
    if (dw_col || dw_row) {
      // Weight gradients sum over images: one thread owns a channel, so no reduction is needed.
      std::vector<double> acc_col(kh), acc_row(kw);
#pragma omp for schedule(static)
      for (int64_t c = 0; c < channels; ++c) {
        if (interrupted()) continue;  // Ctrl-C: see cpu/parallel.h
        std::fill(acc_col.begin(), acc_col.end(), 0.0);
        std::fill(acc_row.begin(), acc_row.end(), 0.0);
        for (int64_t n = 0; n < sp.n(); ++n)
          plane(n, c, mid_row.data(), mid_grad.data(), phases.data(), acc_col.data(),
                acc_row.data());
        if (dw_col)
          for (int64_t t = 0; t < kh; ++t) dw_col[c * kh + t] = T(acc_col[t]);
        if (dw_row)
          for (int64_t t = 0; t < kw; ++t) dw_row[c * kw + t] = T(acc_row[t]);
      }
    } else if (dx) {
#pragma omp for collapse(2) schedule(static)
      for (int64_t n = 0; n < sp.n(); ++n)
        for (int64_t c = 0; c < channels; ++c)
          if (!interrupted()) plane(n, c, mid_row.data(), mid_grad.data(), phases.data(), nullptr, nullptr);
    }
  }
  if (db) conv2d_backward_bias(sp.row, dy, db);  // row.k == C and row.out_* are dy's extents
}

#define CONVCORE_INSTANTIATE_SEPARABLE1D(T)                                                     \
  template void separable1d_forward<T>(const Separable1dParams&, const T*, const T*, const T*,   \
                                       const T*, T*);                                            \
  template void separable1d_backward<T>(const Separable1dParams&, const T*, const T*, const T*,  \
                                        const T*, T*, T*, T*, T*);
CONVCORE_INSTANTIATE_SEPARABLE1D(float)
CONVCORE_INSTANTIATE_SEPARABLE1D(double)

}  // namespace convcore::cpu
