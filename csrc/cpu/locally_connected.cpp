// Locally connected and tiled convolution as one GEMM per tile class.
//
// All outputs that share a kernel (the positions (oy, ox) with the same (oy % tile_h, ox % tile_w))
// form a class; gathering their input windows as rows of a matrix A (rows x C*kh*kw) turns the
// class into A * W_t^T, one GEMM on the project's packed kernels. Tile 1x1 is im2col+GEMM;
// a locally connected layer has one position per class, so its GEMMs have N rows and each kernel
// element is used N times: those layers are bound by reading their (large) weights, and the
// GEMM keeps that read to one pass per call.
//
// Work goes in chunks of images so the gathered rows stay within kChunkElems. Inside a chunk the
// rows are ordered class-major (then image, then position within the class), so each class's rows
// are one contiguous block. Every output element is written by one thread in a fixed order that
// does not depend on the thread count, as everywhere in convcore.
#include "cpu/locally_connected.h"

#include <algorithm>
#include <memory>
#include <vector>

#include "common/errors.h"
#include "cpu/gemm/gemm.h"
#include "cpu/parallel.h"

namespace convcore::cpu {

namespace {

// Rows gathered at once (elements of A plus the K-wide output rows), about 64 MB of float32.
constexpr int64_t kChunkElems = int64_t(16) << 20;

// Output positions grouped by tile class: class t holds order[start[t] .. start[t+1]).
struct ClassMap {
  std::vector<int64_t> order;   // oy * out_w + ox
  std::vector<int64_t> start;   // tiles + 1 entries
  int64_t count(int64_t t) const { return start[size_t(t + 1)] - start[size_t(t)]; }
};

ClassMap make_class_map(const LocalParams& lp) {
  const ConvParams& p = lp.conv;
  ClassMap m;
  m.start.assign(size_t(lp.tiles() + 1), 0);
  for (int64_t oy = 0; oy < p.out_h; ++oy)
    for (int64_t ox = 0; ox < p.out_w; ++ox) ++m.start[size_t(lp.tile_of(oy, ox) + 1)];
  for (int64_t t = 0; t < lp.tiles(); ++t) m.start[size_t(t + 1)] += m.start[size_t(t)];
  m.order.resize(size_t(p.out_h * p.out_w));
  std::vector<int64_t> fill(m.start.begin(), m.start.end() - 1);
  for (int64_t oy = 0; oy < p.out_h; ++oy)
    for (int64_t ox = 0; ox < p.out_w; ++ox)
      m.order[size_t(fill[size_t(lp.tile_of(oy, ox))]++)] = oy * p.out_w + ox;
  return m;
}

// A chunk of `images` images starting at n0; row r of class t, image j, i-th position of the class
// is images * start[t] + j * count(t) + i.
struct Chunk {
  int64_t n0, images;
};

int64_t images_per_chunk(const LocalParams& lp) {
  const ConvParams& p = lp.conv;
  const int64_t per_image = p.out_h * p.out_w * (lp.ckk() + p.k);
  return std::max<int64_t>(1, std::min<int64_t>(p.n, kChunkElems / std::max<int64_t>(1, per_image)));
}

// Calls fn(row, n, pos) for every row of the chunk, in parallel over rows.
template <typename Fn>
void for_each_row(const ClassMap& m, const Chunk& ch, Fn&& fn) {
  const int64_t positions = int64_t(m.order.size());
  const int64_t rows = ch.images * positions;
#pragma omp parallel for schedule(static) num_threads(num_threads())
  for (int64_t row = 0; row < rows; ++row) {
    // class t's block is rows [images*start[t], images*start[t+1]), so row/images (floored)
    // lies in [start[t], start[t+1]): the last class starting at or before it (never an empty one)
    const int64_t t = int64_t(std::upper_bound(m.start.begin(), m.start.end(), row / ch.images) -
                              m.start.begin()) - 1;
    const int64_t within = row - ch.images * m.start[size_t(t)];
    const int64_t cnt = m.count(t);
    const int64_t j = within / cnt, i = within % cnt;
    fn(row, ch.n0 + j, m.order[size_t(m.start[size_t(t)] + i)]);
  }
}

// Runs fn(t, rows_of_t, first_row, parallel) for every non-empty class: many classes are spread
// over threads with one-thread GEMMs; a few classes each get the parallel GEMM.
template <typename Fn>
void for_each_class(const ClassMap& m, const Chunk& ch, int64_t tiles, Fn&& fn) {
  if (tiles >= 2 * int64_t(num_threads())) {
#pragma omp parallel for schedule(dynamic, 1) num_threads(num_threads())
    for (int64_t t = 0; t < tiles; ++t)
      if (m.count(t) > 0) fn(t, ch.images * m.count(t), ch.images * m.start[size_t(t)], false);
  } else {
    for (int64_t t = 0; t < tiles; ++t)
      if (m.count(t) > 0) fn(t, ch.images * m.count(t), ch.images * m.start[size_t(t)], true);
  }
}

// One window, in (c, ky, kx) order, zeros where it covers padding.
template <typename T>
void gather_window(const ConvParams& p, const T* x_image, int64_t pos, T* dst) {
  const int64_t oy = pos / p.out_w, ox = pos % p.out_w;
  const int64_t y0 = oy * p.stride_h - p.pad_top, x0 = ox * p.stride_w - p.pad_left;
  for (int64_t c = 0; c < p.c; ++c) {
    const T* plane = x_image + c * p.h * p.w;
    for (int64_t ky = 0; ky < p.kh; ++ky) {
      const int64_t iy = y0 + ky * p.dil_h;
      T* out = dst + (c * p.kh + ky) * p.kw;
      if (iy < 0 || iy >= p.h) {
        std::fill(out, out + p.kw, T(0));
        continue;
      }
      const T* row = plane + iy * p.w;
      for (int64_t kx = 0; kx < p.kw; ++kx) {
        const int64_t ix = x0 + kx * p.dil_w;
        out[kx] = (ix >= 0 && ix < p.w) ? row[ix] : T(0);
      }
    }
  }
}

// The adjoint of gather_window: adds the window back onto the image.
template <typename T>
void scatter_window(const ConvParams& p, const T* src, int64_t pos, T* dx_image) {
  const int64_t oy = pos / p.out_w, ox = pos % p.out_w;
  const int64_t y0 = oy * p.stride_h - p.pad_top, x0 = ox * p.stride_w - p.pad_left;
  for (int64_t c = 0; c < p.c; ++c) {
    T* plane = dx_image + c * p.h * p.w;
    for (int64_t ky = 0; ky < p.kh; ++ky) {
      const int64_t iy = y0 + ky * p.dil_h;
      if (iy < 0 || iy >= p.h) continue;
      const T* in = src + (c * p.kh + ky) * p.kw;
      T* row = plane + iy * p.w;
      for (int64_t kx = 0; kx < p.kw; ++kx) {
        const int64_t ix = x0 + kx * p.dil_w;
        if (ix >= 0 && ix < p.w) row[ix] += in[kx];
      }
    }
  }
}

// Workspace every element of which is written before it is read (no zero fill).
template <typename T>
std::unique_ptr<T[]> workspace(int64_t elems) { return std::unique_ptr<T[]>(new T[size_t(elems)]); }

template <typename T>
void gather_x_rows(const LocalParams& lp, const ClassMap& m, const Chunk& ch, const T* x, T* a) {
  const ConvParams& p = lp.conv;
  const int64_t ckk = lp.ckk();
  for_each_row(m, ch, [&](int64_t row, int64_t n, int64_t pos) {
    gather_window(p, x + n * p.c * p.h * p.w, pos, a + row * ckk);
  });
}

template <typename T>
void gather_dy_rows(const LocalParams& lp, const ClassMap& m, const Chunk& ch, const T* dy, T* g) {
  const ConvParams& p = lp.conv;
  const int64_t plane = p.out_h * p.out_w;
  for_each_row(m, ch, [&](int64_t row, int64_t n, int64_t pos) {
    for (int64_t k = 0; k < p.k; ++k) g[row * p.k + k] = dy[(n * p.k + k) * plane + pos];
  });
}

template <typename T>
void class_gemm(bool parallel, bool ta, bool tb, int64_t m, int64_t n, int64_t k, const T* a,
                int64_t lda, const T* b, int64_t ldb, T beta, T* c, int64_t ldc) {
  if (parallel) gemm_parallel<T>(ta, tb, m, n, k, T(1), a, lda, b, ldb, beta, c, ldc);
  else gemm<T>(ta, tb, m, n, k, T(1), a, lda, b, ldb, beta, c, ldc);
}

}  // namespace

template <typename T>
void local_forward(const LocalParams& lp, const T* x, const T* w, const T* bias, T* y) {
  const ConvParams& p = lp.conv;
  const ClassMap m = make_class_map(lp);
  const int64_t ckk = lp.ckk(), plane = p.out_h * p.out_w, step = images_per_chunk(lp);
  auto a = workspace<T>(step * plane * ckk), out = workspace<T>(step * plane * p.k);
  for (int64_t n0 = 0; n0 < p.n; n0 += step) {
    const Chunk ch{n0, std::min(step, p.n - n0)};
    gather_x_rows(lp, m, ch, x, a.get());
    for_each_class(m, ch, lp.tiles(), [&](int64_t t, int64_t rows, int64_t first, bool par) {
      // out (rows x K) = A (rows x CKK) * W_t^T, W_t stored K x CKK
      class_gemm<T>(par, false, true, rows, p.k, ckk, a.get() + first * ckk, ckk,
                    w + t * lp.kernel_numel(), ckk, T(0), out.get() + first * p.k, p.k);
    });
    for_each_row(m, ch, [&](int64_t row, int64_t n, int64_t pos) {
      const int64_t t = lp.tile_of(pos / p.out_w, pos % p.out_w);
      for (int64_t k = 0; k < p.k; ++k) {
        const T v = out[row * p.k + k];
        y[(n * p.k + k) * plane + pos] = bias ? v + bias[t * p.k + k] : v;
      }
    });
  }
}

template <typename T>
void local_backward_weight(const LocalParams& lp, const T* dy, const T* x, T* dw) {
  const ConvParams& p = lp.conv;
  const ClassMap m = make_class_map(lp);
  const int64_t ckk = lp.ckk(), plane = p.out_h * p.out_w, step = images_per_chunk(lp);
  auto a = workspace<T>(step * plane * ckk), g = workspace<T>(step * plane * p.k);
  // classes with no position (tile larger than the output) keep a zero gradient
  std::fill(dw, dw + lp.weight_numel(), T(0));
  for (int64_t n0 = 0; n0 < p.n; n0 += step) {
    const Chunk ch{n0, std::min(step, p.n - n0)};
    gather_x_rows(lp, m, ch, x, a.get());
    gather_dy_rows(lp, m, ch, dy, g.get());
    for_each_class(m, ch, lp.tiles(), [&](int64_t t, int64_t rows, int64_t first, bool par) {
      // dW_t (K x CKK) += G^T (K x rows) * A (rows x CKK)
      class_gemm<T>(par, true, false, p.k, ckk, rows, g.get() + first * p.k, p.k,
                    a.get() + first * ckk, ckk, T(1), dw + t * lp.kernel_numel(), ckk);
    });
  }
}

template <typename T>
void local_backward_input(const LocalParams& lp, const T* dy, const T* w, T* dx) {
  const ConvParams& p = lp.conv;
  const ClassMap m = make_class_map(lp);
  const int64_t ckk = lp.ckk(), plane = p.out_h * p.out_w, step = images_per_chunk(lp);
  const int64_t image = p.c * p.h * p.w;
  auto da = workspace<T>(step * plane * ckk), g = workspace<T>(step * plane * p.k);
  for (int64_t n0 = 0; n0 < p.n; n0 += step) {
    const Chunk ch{n0, std::min(step, p.n - n0)};
    gather_dy_rows(lp, m, ch, dy, g.get());
    for_each_class(m, ch, lp.tiles(), [&](int64_t t, int64_t rows, int64_t first, bool par) {
      // dA (rows x CKK) = G (rows x K) * W_t (K x CKK)
      class_gemm<T>(par, false, false, rows, ckk, p.k, g.get() + first * p.k, p.k,
                    w + t * lp.kernel_numel(), ckk, T(0), da.get() + first * ckk, ckk);
    });
    // windows overlap, so one thread per image adds its rows back, class by class
#pragma omp parallel for schedule(static) num_threads(num_threads())
    for (int64_t j = 0; j < ch.images; ++j) {
      T* dx_image = dx + (ch.n0 + j) * image;
      std::fill(dx_image, dx_image + image, T(0));
      for (int64_t t = 0; t < lp.tiles(); ++t) {
        const int64_t cnt = m.count(t), first = ch.images * m.start[size_t(t)] + j * cnt;
        for (int64_t i = 0; i < cnt; ++i)
          scatter_window(p, da.get() + (first + i) * ckk, m.order[size_t(m.start[size_t(t)] + i)],
                         dx_image);
      }
    }
  }
}

template <typename T>
void local_backward_bias(const LocalParams& lp, const T* dy, T* db) {
  const ConvParams& p = lp.conv;
  const int64_t plane = p.out_h * p.out_w;
#pragma omp parallel num_threads(num_threads())
  {
    std::vector<double> acc(size_t(lp.tiles()));
#pragma omp for schedule(static)
    for (int64_t k = 0; k < p.k; ++k) {
      std::fill(acc.begin(), acc.end(), 0.0);
      for (int64_t n = 0; n < p.n; ++n) {
        const T* src = dy + (n * p.k + k) * plane;
        for (int64_t oy = 0; oy < p.out_h; ++oy)
          for (int64_t ox = 0; ox < p.out_w; ++ox)
            acc[size_t(lp.tile_of(oy, ox))] += double(src[oy * p.out_w + ox]);
      }
      for (int64_t t = 0; t < lp.tiles(); ++t) db[t * p.k + k] = T(acc[size_t(t)]);
    }
  }
}

#define CONVCORE_INSTANTIATE_LOCAL(T)                                                     \
  template void local_forward<T>(const LocalParams&, const T*, const T*, const T*, T*);   \
  template void local_backward_input<T>(const LocalParams&, const T*, const T*, T*);      \
  template void local_backward_weight<T>(const LocalParams&, const T*, const T*, T*);     \
  template void local_backward_bias<T>(const LocalParams&, const T*, T*);
CONVCORE_INSTANTIATE_LOCAL(float)
CONVCORE_INSTANTIATE_LOCAL(double)

}  // namespace convcore::cpu
