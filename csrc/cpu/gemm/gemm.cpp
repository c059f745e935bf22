// The gemm.h entry points: float goes to the packed micro-kernel driver (gemm_f32.cpp) with the
// kernel of the active ISA; double stays on the portable gemm_generic.
#include <algorithm>
#include <type_traits>

#include "cpu/gemm/gemm.h"
#include "cpu/gemm/ukernel.h"
#include "cpu/parallel.h"

namespace convcore::cpu {

namespace {

// double: each thread takes a block of rows (columns when C is short and wide) and runs the
// generic kernel on it, so an element's sum does not depend on the thread count.
void gemm_generic_parallel(int threads, bool trans_a, bool trans_b, int64_t m, int64_t n,
                           int64_t k, double alpha, const double* a, int64_t lda, const double* b,
                           int64_t ldb, double beta, double* c, int64_t ldc,
                           const GemmEpilogue<double>& ep) {
  if (threads <= 1 || double(m) * double(n) * double(k) < 1e5) {
    gemm_generic(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    gemm_apply_epilogue(m, n, c, ldc, ep);
    return;
  }
  const bool split_rows = m >= n;
  const int64_t extent = split_rows ? m : n;
  const int64_t chunk = std::max<int64_t>(1, (extent + threads - 1) / threads);
#pragma omp parallel for schedule(static) num_threads(threads)
  for (int64_t start = 0; start < extent; start += chunk) {
    const int64_t len = std::min(chunk, extent - start);
    if (split_rows) {
      const double* a_blk = trans_a ? a + start : a + start * lda;
      double* c_blk = c + start * ldc;
      gemm_generic(trans_a, trans_b, len, n, k, alpha, a_blk, lda, b, ldb, beta, c_blk, ldc);
      gemm_apply_epilogue(len, n, c_blk, ldc, GemmEpilogue<double>{ep.bias ? ep.bias + start : nullptr, ep.relu});
    } else {
      const double* b_blk = trans_b ? b + start * ldb : b + start;
      gemm_generic(trans_a, trans_b, m, len, k, alpha, a, lda, b_blk, ldb, beta, c + start, ldc);
      gemm_apply_epilogue(m, len, c + start, ldc, ep);
    }
  }
}

template <typename T>
void run(int threads, bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, T alpha,
         const T* a, int64_t lda, const T* b, int64_t ldb, T beta, T* c, int64_t ldc,
         const GemmEpilogue<T>& ep) {
  if constexpr (std::is_same_v<T, float>) {
    gemm_f32_run(gemm_ukernel_for(active_isa()), threads, trans_a, trans_b, m, n, k, alpha, a,
                 lda, b, ldb, beta, c, ldc, ep.bias, ep.relu);
  } else {
    gemm_generic_parallel(threads, trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c,
                          ldc, ep);
  }
}

}  // namespace

template <typename T>
void gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, T alpha, const T* a,
          int64_t lda, const T* b, int64_t ldb, T beta, T* c, int64_t ldc) {
  run<T>(1, trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, GemmEpilogue<T>{});
}

template <typename T>
void gemm_parallel(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, T alpha,
                   const T* a, int64_t lda, const T* b, int64_t ldb, T beta, T* c, int64_t ldc) {
  run<T>(num_threads(), trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc,
         GemmEpilogue<T>{});
}

template <typename T>
void gemm_ex(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, T alpha, const T* a,
             int64_t lda, const T* b, int64_t ldb, T beta, T* c, int64_t ldc,
             const GemmEpilogue<T>& ep) {
  run<T>(1, trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, ep);
}

template <typename T>
void gemm_parallel_ex(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, T alpha,
                      const T* a, int64_t lda, const T* b, int64_t ldb, T beta, T* c, int64_t ldc,
                      const GemmEpilogue<T>& ep) {
  run<T>(num_threads(), trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, ep);
}

#define CONVCORE_INSTANTIATE_GEMM(T)                                                           \
  template void gemm<T>(bool, bool, int64_t, int64_t, int64_t, T, const T*, int64_t, const T*,  \
                        int64_t, T, T*, int64_t);                                               \
  template void gemm_parallel<T>(bool, bool, int64_t, int64_t, int64_t, T, const T*, int64_t,   \
                                 const T*, int64_t, T, T*, int64_t);                            \
  template void gemm_ex<T>(bool, bool, int64_t, int64_t, int64_t, T, const T*, int64_t,         \
                           const T*, int64_t, T, T*, int64_t, const GemmEpilogue<T>&);          \
  template void gemm_parallel_ex<T>(bool, bool, int64_t, int64_t, int64_t, T, const T*, int64_t, \
                                    const T*, int64_t, T, T*, int64_t, const GemmEpilogue<T>&);
CONVCORE_INSTANTIATE_GEMM(float)
CONVCORE_INSTANTIATE_GEMM(double)
#undef CONVCORE_INSTANTIATE_GEMM

}  // namespace convcore::cpu
