// im2col + GEMM convolution. Per image and group:
//   forward:         Y_g (K/G x OHW)   = W_g (K/G x CKK) * col (CKK x OHW)
//   backward input:  col (CKK x OHW)   = W_g^T * dY_g, then col2im adds it onto dX
//   backward weight: dW_g (K/G x CKK) += dY_g * col^T
// with CKK = C/G*kh*kw. A pointwise (1x1, stride 1, no padding) conv needs no im2col: the image
// itself is the column matrix.
//
// float32 runs the implicit-GEMM kernels of conv_implicit_gemm.cpp instead (one GEMM over the
// whole batch, no column matrix): the forward and the weight gradient always, the input gradient
// when it is a stride-1 forward over dY with at least 32 channels per group. What follows is the
// double path and that fallback.
//
// Threads: with at least as many images as threads, each thread takes whole images (its own
// workspace, single-threaded GEMMs); otherwise images run one after another with the GEMM
// itself split across threads. Either way each element is computed in one fixed order, and the
// weight gradient reduces per-thread partial sums in thread order, so results are reproducible
// at a fixed thread count.
#include <omp.h>

#include <algorithm>
#include <memory>
#include <type_traits>
#include <vector>

#include "cpu/conv.h"
#include "cpu/conv_grouped.h"
#include "cpu/gemm/gemm.h"
#include "cpu/im2col.h"
#include "cpu/parallel.h"
#include "cpu/scratch.h"

namespace convcore::cpu {

namespace {

struct Im2colShape {
  int64_t cpg, kpg, ckk, ohw, in_plane;
  bool pointwise;
  explicit Im2colShape(const ConvParams& p)
      : cpg(p.c_per_group()), kpg(p.k_per_group()), ckk(p.c_per_group() * p.kh * p.kw),
        ohw(p.out_h * p.out_w), in_plane(p.h * p.w), pointwise(p.is_pointwise()) {}
  int64_t workspace() const { return pointwise ? 0 : ckk * ohw; }
};

// Calls fn(image, workspace, thread_slot, gemm_is_parallel) for every image. The workspace is
// uninitialised (every user writes it whole before reading it): a zeroed std::vector cost a pass
// over up to 17 MB per call (NIN's conv1 gradient) plus its page faults.
template <typename T, typename Fn>
void for_each_image(int64_t images, int64_t workspace_elems, Fn fn) {
  const int threads = num_threads();
  if (images >= threads && threads > 1) {
#pragma omp parallel num_threads(threads)
    {
      std::unique_ptr<T[]> workspace(new T[static_cast<size_t>(std::max<int64_t>(workspace_elems, 1))]);
      const int slot = omp_get_thread_num();
#pragma omp for schedule(static)
      for (int64_t n = 0; n < images; ++n) if (!interrupted()) fn(n, workspace.get(), slot, false);
    }
  } else if constexpr (std::is_same_v<T, float>) {
    // the calling thread's buffer, kept between calls (cpu/scratch.h)
    const ScratchFloats workspace(ScratchSlot::ColumnMatrix, static_cast<size_t>(workspace_elems));
    for (int64_t n = 0; n < images; ++n) if (!interrupted()) fn(n, workspace.get(), 0, threads > 1);
  } else {
    std::unique_ptr<T[]> workspace(new T[static_cast<size_t>(std::max<int64_t>(workspace_elems, 1))]);
    for (int64_t n = 0; n < images; ++n) if (!interrupted()) fn(n, workspace.get(), 0, threads > 1);
  }
}

template <typename T>
void run_gemm(bool parallel, bool ta, bool tb, int64_t m, int64_t n, int64_t k, const T* a,
              int64_t lda, const T* b, int64_t ldb, T beta, T* c, int64_t ldc) {
  if (parallel) gemm_parallel<T>(ta, tb, m, n, k, T(1), a, lda, b, ldb, beta, c, ldc);
  else gemm<T>(ta, tb, m, n, k, T(1), a, lda, b, ldb, beta, c, ldc);
}

}  // namespace

template <typename T>
void conv2d_forward_im2col(const ConvParams& p, const T* x, const T* w, const T* bias, T* y) {
  if constexpr (std::is_same_v<T, float>) {
    return conv2d_forward_implicit_f32(p, x, w, bias, y);
  }
  const Im2colShape s(p);
  for_each_image<T>(p.n, s.workspace(), [&](int64_t n, T* col, int, bool par) {
    for (int64_t g = 0; g < p.groups; ++g) {
      const T* x_group = x + (n * p.c + g * s.cpg) * s.in_plane;
      const T* columns = x_group;
      if (!s.pointwise) {
        im2col_image(p, s.cpg, x_group, col, s.ohw, 1);
        columns = col;
      }
      T* y_group = y + (n * p.k + g * s.kpg) * s.ohw;
      run_gemm<T>(par, false, false, s.kpg, s.ohw, s.ckk, w + g * s.kpg * s.ckk, s.ckk, columns,
                  s.ohw, T(0), y_group, s.ohw);
      if (bias) {
        for (int64_t kk = 0; kk < s.kpg; ++kk) {
          const T b = bias[g * s.kpg + kk];
          T* row = y_group + kk * s.ohw;
          for (int64_t q = 0; q < s.ohw; ++q) row[q] += b;
        }
      }
    }
  });
}

template <typename T>
void conv2d_backward_input_im2col(const ConvParams& p, const T* dy, const T* w, T* dx) {
  if constexpr (std::is_same_v<T, float>) {
    // As a forward over dY, the input gradient runs the broadcast kernel with C/groups output
    // channels in its vector lanes (cpu/conv_broadcast.h). One thread, thread CPU time: book.conv2
    // (C = 16) 7.2 ms per-image W^T * dY + col2im vs 4.2 ms as a forward, book.conv3 (C = 16)
    // 3.3 vs 2.0. Below 16 channels most lanes of an AVX-512 vector would idle; book.conv1
    // (C = 1) keeps the per-image path (0.9 ms vs 5.3 as a packed forward, Run 2). Groups of
    // fewer channels put pixels in the lanes instead (cpu/conv_grouped.h).
    if (backward_input_is_a_forward(p) &&
        (p.c_per_group() >= 16 || grouped_conv_wins(backward_input_as_forward(p))))
      return conv2d_backward_input_implicit_f32(p, dy, w, dx);
    if (backward_input_phases_win(p))  // strided: one stride-1 forward per phase (conv_phases.cpp)
      return conv2d_backward_input_phases_f32(p, dy, w, dx);
  }
  const Im2colShape s(p);
  for_each_image<T>(p.n, s.workspace(), [&](int64_t n, T* col, int, bool par) {
    for (int64_t g = 0; g < p.groups; ++g) {
      const T* dy_group = dy + (n * p.k + g * s.kpg) * s.ohw;
      T* dx_group = dx + (n * p.c + g * s.cpg) * s.in_plane;
      const T* w_group = w + g * s.kpg * s.ckk;
      if (s.pointwise) {
        run_gemm<T>(par, true, false, s.ckk, s.ohw, s.kpg, w_group, s.ckk, dy_group, s.ohw, T(0),
                    dx_group, s.ohw);
        continue;
      }
      run_gemm<T>(par, true, false, s.ckk, s.ohw, s.kpg, w_group, s.ckk, dy_group, s.ohw, T(0),
                  col, s.ohw);
      if (!par) {
        std::fill(dx_group, dx_group + s.cpg * s.in_plane, T(0));
        col2im_image(p, s.cpg, col, s.ohw, 1, dx_group);
        continue;
      }
      // fewer images than threads (one image: NIN's 11x11/4 conv1, whose col2im had run on one
      // thread for as long as the GEMM on two): the threads take bands of input rows
      const int threads = num_threads();
#pragma omp parallel for schedule(static) num_threads(threads)
      for (int band = 0; band < threads; ++band) {
        const int64_t y0 = p.h * band / threads, y1 = p.h * (band + 1) / threads;
        for (int64_t c = 0; c < s.cpg; ++c)
          std::fill(dx_group + c * s.in_plane + y0 * p.w, dx_group + c * s.in_plane + y1 * p.w, T(0));
        col2im_image_rows(p, s.cpg, col, s.ohw, 1, dx_group, y0, y1);
      }
    }
  });
}

template <typename T>
void conv2d_backward_weight_im2col(const ConvParams& p, const T* dy, const T* x, T* dw) {
  if constexpr (std::is_same_v<T, float>) {
    return conv2d_backward_weight_implicit_f32(p, dy, x, dw);
  }
  const Im2colShape s(p);
  const int64_t dw_elems = p.k * s.ckk;
  const int slots = std::max(1, num_threads());
  // partial[slot] holds one thread's sum over its images; slot 0 may be dw itself.
  std::vector<T> partials(static_cast<size_t>(dw_elems) * (slots - 1));
  auto partial_of = [&](int slot) { return slot == 0 ? dw : partials.data() + (slot - 1) * dw_elems; };
  std::fill(dw, dw + dw_elems, T(0));
  std::fill(partials.begin(), partials.end(), T(0));
  for_each_image<T>(p.n, s.workspace(), [&](int64_t n, T* col, int slot, bool par) {
    T* acc = partial_of(slot);
    for (int64_t g = 0; g < p.groups; ++g) {
      const T* x_group = x + (n * p.c + g * s.cpg) * s.in_plane;
      const T* columns = x_group;
      if (!s.pointwise) {
        im2col_image(p, s.cpg, x_group, col, s.ohw, 1);
        columns = col;
      }
      run_gemm<T>(par, false, true, s.kpg, s.ckk, s.ohw, dy + (n * p.k + g * s.kpg) * s.ohw,
                  s.ohw, columns, s.ohw, T(1), acc + g * s.kpg * s.ckk, s.ckk);
    }
  });
  for (int slot = 1; slot < slots; ++slot) {
    const T* part = partial_of(slot);
    for (int64_t i = 0; i < dw_elems; ++i) dw[i] += part[i];
  }
}

CONVCORE_INSTANTIATE_FWD(conv2d_forward_im2col)
CONVCORE_INSTANTIATE_BWD(conv2d_backward_input_im2col)
CONVCORE_INSTANTIATE_BWD(conv2d_backward_weight_im2col)

}  // namespace convcore::cpu
