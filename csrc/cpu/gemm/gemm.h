// Row-major GEMM used by every im2col/1x1 convolution path:
//   C (m x n) = alpha * op(A) * op(B) + beta * C
// op(A) is m x k (A stored k x m when trans_a), op(B) is k x n (B stored n x k when trans_b).
// lda/ldb/ldc are row strides in elements. beta == 0 means C is write-only (it may hold NaN).
// alpha == 0 or k == 0 means A and B are not read.
//
// gemm() runs on the calling thread; gemm_parallel() splits the work over cpu::num_threads().
// The float version dispatches on the active ISA (see cpu_features.h) to the packed, register-
// blocked micro-kernels listed in kernels.inc; double is generic. Every element of C is computed
// by one thread in one fixed order that does not depend on the thread count, so float results are
// identical for any number of threads.
#pragma once
#include <cstdint>

namespace convcore::cpu {

// Fused epilogue, applied once, after the full K sum:
//   C[i][j] = relu?( alpha * sum_p op(A)[i][p] op(B)[p][j] + beta * C[i][j] + bias[i] )
// bias holds one value per row of C (conv output channels are the rows); nullptr means none.
// ReLU keeps NaN (it is max(0, x) with x passed through when it is NaN).
template <typename T>
struct GemmEpilogue {
  const T* bias = nullptr;
  bool relu = false;
};

template <typename T>
void gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, T alpha, const T* a,
          int64_t lda, const T* b, int64_t ldb, T beta, T* c, int64_t ldc);

template <typename T>
void gemm_parallel(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, T alpha,
                   const T* a, int64_t lda, const T* b, int64_t ldb, T beta, T* c, int64_t ldc);

// gemm / gemm_parallel with the fused epilogue.
template <typename T>
void gemm_ex(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, T alpha, const T* a,
             int64_t lda, const T* b, int64_t ldb, T beta, T* c, int64_t ldc,
             const GemmEpilogue<T>& ep);

template <typename T>
void gemm_parallel_ex(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, T alpha,
                      const T* a, int64_t lda, const T* b, int64_t ldb, T beta, T* c, int64_t ldc,
                      const GemmEpilogue<T>& ep);

// The portable blocked implementation every ISA-specific path is tested against.
template <typename T>
void gemm_generic(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, T alpha, const T* a,
                  int64_t lda, const T* b, int64_t ldb, T beta, T* c, int64_t ldc);

// Applies bias/ReLU to an m x n block of C in place (the generic paths' epilogue).
template <typename T>
void gemm_apply_epilogue(int64_t m, int64_t n, T* c, int64_t ldc, const GemmEpilogue<T>& ep);

}  // namespace convcore::cpu
