// Portable blocked GEMM: packs op(B) panels so the inner loop walks contiguous memory and
// accumulates rows of C; the compiler vectorises the j loop at whatever ISA the file is built for
// (baseline x86-64 here). Correct for every shape and transpose: it is the reference the packed
// float32 micro-kernel driver (gemm_f32.cpp) is tested against, and the double path (gemm.cpp).
#include <algorithm>
#include <vector>

#include "cpu/gemm/gemm.h"

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
void gemm_apply_epilogue(int64_t m, int64_t n, T* c, int64_t ldc, const GemmEpilogue<T>& ep) {
  if (!ep.bias && !ep.relu) return;
  for (int64_t i = 0; i < m; ++i) {
    T* row = c + i * ldc;
    const T bias = ep.bias ? ep.bias[i] : T(0);
    for (int64_t j = 0; j < n; ++j) {
      T v = ep.bias ? row[j] + bias : row[j];
      if (ep.relu && v < T(0)) v = T(0);  // keeps NaN, like the SIMD max(0, x)
      row[j] = v;
    }
  }
}

template void gemm_apply_epilogue<float>(int64_t, int64_t, float*, int64_t,
                                         const GemmEpilogue<float>&);
template void gemm_apply_epilogue<double>(int64_t, int64_t, double*, int64_t,
                                          const GemmEpilogue<double>&);

}  // namespace convcore::cpu
