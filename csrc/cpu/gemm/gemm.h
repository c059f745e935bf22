// Row-major GEMM used by every im2col/1x1 convolution path:
//   C (m x n) = alpha * op(A) * op(B) + beta * C
// op(A) is m x k (A stored k x m when trans_a), op(B) is k x n (B stored n x k when trans_b).
// lda/ldb/ldc are row strides in elements. beta == 0 means C is write-only (it may hold NaN).
//
// gemm() runs on the calling thread; gemm_parallel() splits the work over cpu::num_threads().
// The float version dispatches on the active ISA (see cpu_features.h); double is generic.
#pragma once
#include <cstdint>

namespace convcore::cpu {

template <typename T>
void gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, T alpha, const T* a,
          int64_t lda, const T* b, int64_t ldb, T beta, T* c, int64_t ldc);

template <typename T>
void gemm_parallel(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, T alpha,
                   const T* a, int64_t lda, const T* b, int64_t ldb, T beta, T* c, int64_t ldc);

// The portable blocked implementation every ISA-specific path is tested against.
template <typename T>
void gemm_generic(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, T alpha, const T* a,
                  int64_t lda, const T* b, int64_t ldb, T beta, T* c, int64_t ldc);

}  // namespace convcore::cpu
