// The tiled GEMM of gemm.cuh. Each block computes a 64x64 tile of C with 256 threads, 4x4
// outputs per thread, stepping through k in slices of 16 staged in shared memory. Tile loads
// walk whichever index is contiguous in memory (chosen per operand from its strides), so both
// plain and transposed operands load coalesced. Out-of-range rows/columns load as zero.
// Accumulation is in T, in a fixed order per output: results are deterministic.
#include "cuda/gemm.cuh"
#include "cuda/launch.cuh"

namespace convcore::cuda {

namespace {

constexpr int kTileM = 64, kTileN = 64, kTileK = 16;
constexpr int kThreads = 256;           // 16 x 16 threads
constexpr int kPerThread = 4;           // 4 x 4 outputs per thread
constexpr int64_t kMaxGridX = (int64_t(1) << 31) - 1;
constexpr int kMaxGridYZ = 65535;       // gridDim.y / gridDim.z limit; the kernel loops beyond it

template <typename T>
struct GemmArgs {
  GemmShape shape;
  GemmOperand<T> a, b;
  T* c;
  int64_t ldc, c_batch_stride;
  bool accumulate;
  const T* bias;
};

// Offset of reduction index k along an operand (split as outer * k_inner + inner).
__device__ inline int64_t k_offset(int64_t k, int64_t k_inner, int64_t inner_stride,
                                   int64_t outer_stride) {
  return (k / k_inner) * outer_stride + (k % k_inner) * inner_stride;
}

template <typename T>
__global__ void __launch_bounds__(kThreads) gemm_tiled_kernel(GemmArgs<T> g) {
  __shared__ T a_tile[kTileK][kTileM + 1];  // a_tile[kk][i]; +1 avoids bank conflicts on stores
  __shared__ T b_tile[kTileK][kTileN + 1];  // b_tile[kk][j]
  const int tid = threadIdx.x, tx = tid % 16, ty = tid / 16;
  const GemmShape& s = g.shape;
  // which tile index runs fastest across threads while loading: the one contiguous in memory
  const bool a_k_fast = g.a.col_stride == 1;
  const bool b_n_fast = g.b.col_stride == 1;
  for (int64_t batch = blockIdx.z; batch < s.batch; batch += gridDim.z) {
    const T* a_base = g.a.ptr + batch * g.a.batch_stride;
    const T* b_base = g.b.ptr + batch * g.b.batch_stride;
    T* c_base = g.c + batch * g.c_batch_stride;
    for (int64_t m0 = int64_t(blockIdx.y) * kTileM; m0 < s.m; m0 += int64_t(gridDim.y) * kTileM)
    for (int64_t n0 = int64_t(blockIdx.x) * kTileN; n0 < s.n; n0 += int64_t(gridDim.x) * kTileN) {
      T acc[kPerThread][kPerThread];
#pragma unroll
      for (int i = 0; i < kPerThread; ++i)
#pragma unroll
        for (int j = 0; j < kPerThread; ++j) acc[i][j] = T(0);

      for (int64_t k0 = 0; k0 < s.k; k0 += kTileK) {
#pragma unroll
        for (int r = 0; r < kTileM * kTileK / kThreads; ++r) {
          const int e = tid + r * kThreads;
          const int kk = a_k_fast ? e % kTileK : e / kTileM;
          const int ii = a_k_fast ? e / kTileK : e % kTileM;
          const int64_t gi = m0 + ii, gk = k0 + kk;
          a_tile[kk][ii] = (gi < s.m && gk < s.k)
                               ? a_base[gi * g.a.row_stride +
                                        k_offset(gk, s.k_inner, g.a.col_stride, g.a.outer_stride)]
                               : T(0);
        }
#pragma unroll
        for (int r = 0; r < kTileN * kTileK / kThreads; ++r) {
          const int e = tid + r * kThreads;
          const int jj = b_n_fast ? e % kTileN : e / kTileK;
          const int kk = b_n_fast ? e / kTileN : e % kTileK;
          const int64_t gj = n0 + jj, gk = k0 + kk;
          b_tile[kk][jj] = (gj < s.n && gk < s.k)
                               ? b_base[gj * g.b.col_stride +
                                        k_offset(gk, s.k_inner, g.b.row_stride, g.b.outer_stride)]
                               : T(0);
        }
        __syncthreads();
#pragma unroll
        for (int kk = 0; kk < kTileK; ++kk) {
          T a_reg[kPerThread], b_reg[kPerThread];
#pragma unroll
          for (int i = 0; i < kPerThread; ++i) a_reg[i] = a_tile[kk][ty + 16 * i];
#pragma unroll
          for (int j = 0; j < kPerThread; ++j) b_reg[j] = b_tile[kk][tx + 16 * j];
#pragma unroll
          for (int i = 0; i < kPerThread; ++i)
#pragma unroll
            for (int j = 0; j < kPerThread; ++j) acc[i][j] += a_reg[i] * b_reg[j];
        }
        __syncthreads();
      }

#pragma unroll
      for (int i = 0; i < kPerThread; ++i) {
        const int64_t gi = m0 + ty + 16 * i;
        if (gi >= s.m) continue;
        const T row_bias = g.bias ? g.bias[gi] : T(0);
#pragma unroll
        for (int j = 0; j < kPerThread; ++j) {
          const int64_t gj = n0 + tx + 16 * j;
          if (gj >= s.n) continue;
          T* out = c_base + gi * g.ldc + gj;
          const T v = acc[i][j] + row_bias;
          *out = g.accumulate ? *out + v : v;
        }
      }
    }
  }
}

}  // namespace

template <typename T>
void gemm(const GemmShape& shape, const GemmOperand<T>& a, const GemmOperand<T>& b, T* c,
          int64_t ldc, int64_t c_batch_stride, bool accumulate, const T* bias, cudaStream_t stream) {
  if (shape.m <= 0 || shape.n <= 0 || shape.batch <= 0) return;
  // k == 0: C = bias (or unchanged when accumulating); the kernel handles it with no k steps.
  const int64_t tiles_n = (shape.n + kTileN - 1) / kTileN;
  const int64_t tiles_m = (shape.m + kTileM - 1) / kTileM;
  const dim3 grid(static_cast<unsigned>(tiles_n < kMaxGridX ? tiles_n : kMaxGridX),
                  static_cast<unsigned>(tiles_m < kMaxGridYZ ? tiles_m : kMaxGridYZ),
                  static_cast<unsigned>(shape.batch < kMaxGridYZ ? shape.batch : kMaxGridYZ));
  GemmShape s = shape;
  if (s.k_inner <= 0) s.k_inner = s.k > 0 ? s.k : 1;
  launch(gemm_tiled_kernel<T>, grid, dim3(kThreads), 0, stream,
         GemmArgs<T>{s, a, b, c, ldc, c_batch_stride, accumulate, bias});
}

template void gemm<float>(const GemmShape&, const GemmOperand<float>&, const GemmOperand<float>&,
                          float*, int64_t, int64_t, bool, const float*, cudaStream_t);
template void gemm<double>(const GemmShape&, const GemmOperand<double>&, const GemmOperand<double>&,
                           double*, int64_t, int64_t, bool, const double*, cudaStream_t);

}  // namespace convcore::cuda
