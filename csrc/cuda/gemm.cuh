// Our GEMM for the GPU (no cuBLAS): C = A * B (+ C) (+ bias per row), batched, with operands
// described by strides so that transposes, image batches and the per-group slices of the conv
// paths need no copies. Tiled through shared memory (gemm.cu).
//
// The reduction index k may itself be split as k = outer * k_inner + inner: element (i, k) of A
// is at  ptr + batch*batch_stride + i*row_stride + outer*outer_stride + inner*col_stride,
// and element (k, j) of B at  ptr + batch*batch_stride + outer*outer_stride + inner*row_stride +
// j*col_stride. The conv weight gradient uses this to sum over images (outer) and output
// positions (inner) in one GEMM, in a fixed order, instead of accumulating with atomics.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

namespace convcore::cuda {

template <typename T>
struct GemmOperand {
  const T* ptr;
  int64_t row_stride, col_stride;
  int64_t batch_stride = 0;
  int64_t outer_stride = 0;  // used only when k_inner < k
};

struct GemmShape {
  int64_t m, n, k;
  int64_t k_inner;  // == k when the reduction is not split
  int64_t batch;
};

// c: row-major with leading dimension ldc, batch stride c_batch_stride. accumulate: add to what
// C holds instead of overwriting it. bias: null or m values added to each row.
template <typename T>
void gemm(const GemmShape& shape, const GemmOperand<T>& a, const GemmOperand<T>& b, T* c,
          int64_t ldc, int64_t c_batch_stride, bool accumulate, const T* bias, cudaStream_t stream);

}  // namespace convcore::cuda
