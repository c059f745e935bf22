// Portable blocked GEMM: packs op(B) panels so the inner loop walks contiguous memory and
// accumulates rows of C; the compiler vectorises the j loop at whatever ISA the file is built for
// (baseline x86-64 here). Correct for every shape and transpose; the fast float paths live in the
// per-ISA files.
#include <omp.h>

#include <algorithm>
#include <vector>

#include "cpu/gemm/gemm.h"
#include "cpu/parallel.h"

namespace convcore::cpu {

namespace {
constexpr int64_t kBlockK = 256;
constexpr int64_t kBlockN = 512;
}  // namespace

template <typename T>
void gemm_generic(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, T alpha, const T* a,
                  int64_t lda, const T* b, int64_t ldb, T beta, T* c, int64_t ldc) {
  if (m <= 0 || n <= 0) return;
  for (int64_t i = 0; i < m; ++i) {
    T* crow = c + i * ldc;
    if (beta == T(0)) std::fill(crow, crow + n, T(0));
    else if (beta != T(1)) for (int64_t j = 0; j < n; ++j) crow[j] *= beta;
  }
  if (k <= 0 || alpha == T(0)) return;
  std::vector<T> panel(static_cast<size_t>(std::min(k, kBlockK) * std::min(n, kBlockN)));
  for (int64_t j0 = 0; j0 < n; j0 += kBlockN) {
    const int64_t nb = std::min(kBlockN, n - j0);
    for (int64_t p0 = 0; p0 < k; p0 += kBlockK) {
      const int64_t kb = std::min(kBlockK, k - p0);
      // panel[p][j] = op(B)[p0 + p][j0 + j]
      for (int64_t p = 0; p < kb; ++p) {
        T* dst = panel.data() + p * nb;
        if (!trans_b) {
          const T* src = b + (p0 + p) * ldb + j0;
          std::copy(src, src + nb, dst);
        } else {
          for (int64_t j = 0; j < nb; ++j) dst[j] = b[(j0 + j) * ldb + p0 + p];
        }
      }
      for (int64_t i = 0; i < m; ++i) {
        T* crow = c + i * ldc + j0;
        for (int64_t p = 0; p < kb; ++p) {
          const T av = alpha * (trans_a ? a[(p0 + p) * lda + i] : a[i * lda + p0 + p]);
          const T* prow = panel.data() + p * nb;
          for (int64_t j = 0; j < nb; ++j) crow[j] += av * prow[j];
        }
      }
    }
  }
}

template void gemm_generic<float>(bool, bool, int64_t, int64_t, int64_t, float, const float*,
                                  int64_t, const float*, int64_t, float, float*, int64_t);
template void gemm_generic<double>(bool, bool, int64_t, int64_t, int64_t, double, const double*,
                                   int64_t, const double*, int64_t, double, double*, int64_t);

template <typename T>
void gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, T alpha, const T* a,
          int64_t lda, const T* b, int64_t ldb, T beta, T* c, int64_t ldc) {
  gemm_generic(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

// Splits C into column blocks (rows when C is tall and narrow); each thread computes its own
// block, so the result does not depend on the thread count.
template <typename T>
void gemm_parallel(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, T alpha,
                   const T* a, int64_t lda, const T* b, int64_t ldb, T beta, T* c, int64_t ldc) {
  const int threads = num_threads();
  if (threads <= 1 || double(m) * double(n) * double(k) < 1e5) {
    gemm(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    return;
  }
  const bool split_rows = m >= n;
  const int64_t extent = split_rows ? m : n;
  const int64_t chunk = std::max<int64_t>(1, (extent + threads - 1) / threads);
#pragma omp parallel for schedule(static) num_threads(threads)
  for (int64_t start = 0; start < extent; start += chunk) {
    const int64_t len = std::min(chunk, extent - start);
    if (split_rows) {
      const T* a_blk = trans_a ? a + start : a + start * lda;
      gemm(trans_a, trans_b, len, n, k, alpha, a_blk, lda, b, ldb, beta, c + start * ldc, ldc);
    } else {
      const T* b_blk = trans_b ? b + start * ldb : b + start;
      gemm(trans_a, trans_b, m, len, k, alpha, a, lda, b_blk, ldb, beta, c + start, ldc);
    }
  }
}

template void gemm<float>(bool, bool, int64_t, int64_t, int64_t, float, const float*, int64_t,
                          const float*, int64_t, float, float*, int64_t);
template void gemm<double>(bool, bool, int64_t, int64_t, int64_t, double, const double*, int64_t,
                           const double*, int64_t, double, double*, int64_t);
template void gemm_parallel<float>(bool, bool, int64_t, int64_t, int64_t, float, const float*,
                                   int64_t, const float*, int64_t, float, float*, int64_t);
template void gemm_parallel<double>(bool, bool, int64_t, int64_t, int64_t, double, const double*,
                                    int64_t, const double*, int64_t, double, double*, int64_t);

}  // namespace convcore::cpu
