// The tiled GEMM of gemm.cuh. Each block computes a 128x128 (or, for m <= 64, 64x128) tile of C
// with 256 threads, 8x8 (4x8) outputs per thread, stepping through k in slices of 8 staged in
// double-buffered shared memory. Tile loads walk whichever index is contiguous in memory (chosen
// per operand from its strides), so plain and transposed operands both load coalesced;
// out-of-range rows/columns load as zero. When the tiles cannot fill the GPU (a small C with a
// long reduction, as in the conv weight gradient) k is split into ranges summed into separate
// partial matrices and added in a fixed order. Accumulation is in T in a fixed order per output:
// results are deterministic.
#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "common/select_algo.h"
#include "cuda/gemm.cuh"
#include "cuda/gemm_conv_sources.cuh"
#include "cuda/launch.cuh"

namespace convcore::cuda {

namespace {

constexpr int kThreads = 256;           // 16 x 16 threads per block
constexpr int64_t kMaxGridX = (int64_t(1) << 31) - 1;
constexpr int kMaxGridYZ = 65535;       // gridDim.y / gridDim.z limit; the kernel loops beyond it

template <typename T>
struct GemmArgs {
  GemmShape shape;
  GemmOperand<T> a;
  T* c;
  int64_t ldc, c_batch_stride;
  bool accumulate;
  const T* bias;
};

// Position of reduction index k along the operands, split as outer * k_inner + inner, advanced
// incrementally (no division per element: a tile moves every cursor forward by 8).
struct KCursor {
  int64_t outer, inner;
  __device__ KCursor(int64_t k, int64_t k_inner) : outer(k / k_inner), inner(k % k_inner) {}
  __device__ void advance(int64_t steps, int64_t k_inner) {
    inner += steps;
    while (inner >= k_inner) { inner -= k_inner; ++outer; }
  }
  __device__ int64_t offset(int64_t inner_stride, int64_t outer_stride) const {
    return outer * outer_stride + inner * inner_stride;
  }
};

// The B operand as a strided matrix (GemmOperand): element (k, j) at
// ptr + batch*batch_stride + outer*outer_stride + inner*row_stride + j*col_stride.
// A source hands each thread kLoad values of a k slice per fetch: along j (n_fast) or along k.
template <typename T>
struct StridedSource {
  GemmOperand<T> op;
  int64_t k_inner;
  __host__ __device__ bool n_fast() const { return op.col_stride == 1; }

  struct Thread {
    const T* base;
    int64_t j0;
    KCursor at;
  };
  __device__ Thread start(int64_t batch, int64_t j0, int64_t k) const {
    return {op.ptr + batch * op.batch_stride, j0, KCursor(k, k_inner)};
  }
  // values (k0.., j0..) for the thread's run, zero past n or k_end; moves the thread 8 k on
  template <int kLoad>
  __device__ void fetch(Thread& t, bool along_j, int64_t gk, int64_t n, int64_t k_end,
                        T (&out)[kLoad]) const {
#pragma unroll
    for (int q = 0; q < kLoad; ++q) {
      const int64_t gj = t.j0 + (along_j ? q : 0);
      KCursor at = t.at;
      if (!along_j) at.advance(q, k_inner);
      out[q] = (gj < n && gk + (along_j ? 0 : q) < k_end)
                   ? t.base[gj * op.col_stride + at.offset(op.row_stride, op.outer_stride)]
                   : T(0);
    }
    t.at.advance(8, k_inner);
  }
};

// TF32 (allow_tf32): operands rounded to TF32 (10 mantissa bits, round to nearest, ties away
// from zero: cvt.rna) as they are staged in shared memory, products on the tensor cores with
// mma.sync m16n8k8 (float32 accumulators). The CPU emulator has no tensor cores: it multiplies
// the same rounded operands with the plain per-thread FMAs (same rounding, other summation order).
#ifdef CONVCORE_CUDA_EMULATE
constexpr bool kTensorCores = false;
#else
constexpr bool kTensorCores = true;
#endif

template <typename T>
__device__ inline T round_tf32(T v) {
  if constexpr (std::is_same_v<T, float>) {
#ifdef CONVCORE_CUDA_EMULATE
    uint32_t bits;
    std::memcpy(&bits, &v, 4);
    if ((bits & 0x7f800000u) != 0x7f800000u) bits = (bits + 0x1000u) & 0xffffe000u;  // not inf/NaN
    std::memcpy(&v, &bits, 4);
    return v;
#else
    uint32_t bits;
    asm("cvt.rna.tf32.f32 %0, %1;" : "=r"(bits) : "f"(v));
    return __uint_as_float(bits & 0xffffe000u);
#endif
  } else {
    return v;  // float64 never takes the TF32 path
  }
}

#ifndef CONVCORE_CUDA_EMULATE
// d += a * b for one 16x8x8 TF32 tile: a (16x8, row-major fragment: a0 (g, t), a1 (g+8, t),
// a2 (g, t+4), a3 (g+8, t+4)), b (8x8, b0 (t, g), b1 (t+4, g)), d (16x8: d0,d1 (g, 2t..2t+1),
// d2,d3 (g+8, 2t..2t+1)), g = lane / 4, t = lane % 4 (PTX ISA, "Matrix Fragments for
// mma.m16n8k8", .tf32).
__device__ inline void mma_tf32(float (&d)[4], const uint32_t (&a)[4], const uint32_t (&b)[2]) {
  asm volatile(
      "mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
      "{%8,%9}, {%0,%1,%2,%3};"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}
#endif

// One tile of C per block: (16 * kRowsPerThread) x 128, 256 threads, each computing
// kRowsPerThread x 8 outputs as 4-wide groups spaced 64 apart (so a warp's shared-memory reads
// are broadcasts or 2-way conflicts at most). k advances in slices of 8, double-buffered: the
// next slice is fetched into registers while the current one is multiplied out of shared memory.
// Each thread loads the same k offsets of every slice, so its cursors advance by 8 per slice.
// blockIdx.z enumerates (batch, split): split s sums k in [s * k_per_split, (s + 1) * k_per_split)
// into its own partial matrix (c + s * split_stride); gemm() reduces the partials in order.
template <typename T, int kRowsPerThread, typename BSource, bool kTf32>
__global__ void __launch_bounds__(kThreads) gemm_tile_kernel(GemmArgs<T> g, BSource b_src,
                                                             int64_t splits, int64_t k_per_split,
                                                             int64_t split_stride) {
  constexpr int kBM = 16 * kRowsPerThread, kBN = 128, kBK = 8;
  constexpr int kLoadA = kBM * kBK / kThreads, kLoadB = kBN * kBK / kThreads;
  constexpr int kAcc = kRowsPerThread * 8;  // outputs per thread
  // rows padded by 4: the tensor-core fragment loads (lanes 4 apart in k) hit distinct banks
  __shared__ T a_tile[2][kBK][kBM + 4];  // a_tile[buf][kk][i]
  __shared__ T b_tile[2][kBK][kBN + 4];  // b_tile[buf][kk][j]
  const int tid = threadIdx.x, tx = tid % 16, ty = tid / 16;
  // Tensor cores (TF32): 8 warps as 2 x 4, each a (kBM/2) x 32 tile of kBM/32 x 4 mma tiles
  constexpr bool kMma = kTf32 && kTensorCores;
  constexpr int kMmaRows = kBM / 32;
  const int lane = tid % 32, warp = tid / 32, lane_g = lane / 4, lane_t = lane % 4;
  const int warp_row = (warp / 4) * (kBM / 2), warp_col = (warp % 4) * 32;
  // the tile row and column of this thread's output e (0 <= e < kAcc)
  auto out_row = [&](int e) {
    if constexpr (kMma) return warp_row + (e / 16) * 16 + lane_g + ((e % 4) / 2) * 8;
    else return ((e / 8) / 4) * 64 + ty * 4 + (e / 8) % 4;
  };
  auto out_col = [&](int e) {
    if constexpr (kMma) return warp_col + ((e / 4) % 4) * 8 + lane_t * 2 + e % 2;
    else return ((e % 8) / 4) * 64 + tx * 4 + e % 4;
  };
  const GemmShape& s = g.shape;
  // which tile index runs along consecutive threads' loads: the one contiguous in memory
  const bool a_k_fast = g.a.col_stride == 1;
  const bool b_n_fast = b_src.n_fast();
  // this thread's load slots: a run of kLoadA (kLoadB) elements along the contiguous index
  const int a_ii = a_k_fast ? tid / (kBK / kLoadA) : (tid % (kBM / kLoadA)) * kLoadA;
  const int a_kk = a_k_fast ? (tid % (kBK / kLoadA)) * kLoadA : tid / (kBM / kLoadA);
  const int b_jj = b_n_fast ? (tid % (kBN / kLoadB)) * kLoadB : tid / (kBK / kLoadB);
  const int b_kk = b_n_fast ? tid / (kBN / kLoadB) : (tid % (kBK / kLoadB)) * kLoadB;
  for (int64_t z = blockIdx.z; z < s.batch * splits; z += gridDim.z) {
    const int64_t batch = z / splits, split = z % splits;
    const int64_t k_begin = split * k_per_split;
    const int64_t k_end = k_begin + k_per_split < s.k ? k_begin + k_per_split : s.k;
    const T* a_base = g.a.ptr + batch * g.a.batch_stride;
    T* c_base = g.c + batch * g.c_batch_stride + split * split_stride;
    for (int64_t m0 = int64_t(blockIdx.y) * kBM; m0 < s.m; m0 += int64_t(gridDim.y) * kBM)
    for (int64_t n0 = int64_t(blockIdx.x) * kBN; n0 < s.n; n0 += int64_t(gridDim.x) * kBN) {
      T acc[kAcc];
#pragma unroll
      for (int e = 0; e < kAcc; ++e) acc[e] = T(0);

      KCursor a_at(k_begin + a_kk, s.k_inner);
      auto b_at = b_src.start(batch, n0 + b_jj, k_begin + b_kk);
      T a_next[kLoadA], b_next[kLoadB];
      // fetch slice k0 into a_next / b_next (zero outside the matrix or the split)
      auto fetch = [&](int64_t k0) {
#pragma unroll
        for (int q = 0; q < kLoadA; ++q) {
          const int64_t gi = m0 + a_ii + (a_k_fast ? 0 : q);
          KCursor at = a_at;
          if (a_k_fast) at.advance(q, s.k_inner);
          const int64_t gk = k0 + a_kk + (a_k_fast ? q : 0);
          a_next[q] = (gi < s.m && gk < k_end)
                          ? a_base[gi * g.a.row_stride + at.offset(g.a.col_stride, g.a.outer_stride)]
                          : T(0);
        }
        a_at.advance(kBK, s.k_inner);
        b_src.fetch(b_at, b_n_fast, k0 + b_kk, s.n, k_end, b_next);
      };
      auto stage = [&](int buf) {
#pragma unroll
        for (int q = 0; q < kLoadA; ++q) {
          const T v = kTf32 ? round_tf32(a_next[q]) : a_next[q];
          a_tile[buf][a_kk + (a_k_fast ? q : 0)][a_ii + (a_k_fast ? 0 : q)] = v;
        }
#pragma unroll
        for (int q = 0; q < kLoadB; ++q) {
          const T v = kTf32 ? round_tf32(b_next[q]) : b_next[q];
          b_tile[buf][b_kk + (b_n_fast ? 0 : q)][b_jj + (b_n_fast ? q : 0)] = v;
        }
      };

      int buf = 0;
      if (k_begin < k_end) {
        fetch(k_begin);
        stage(0);
      }
      __syncthreads();
      for (int64_t k0 = k_begin; k0 < k_end; k0 += kBK) {
        const bool more = k0 + kBK < k_end;
        if (more) fetch(k0 + kBK);  // global loads in flight while this slice is multiplied
        if constexpr (kMma) {
#ifndef CONVCORE_CUDA_EMULATE
          // the slice is one mma k-step: kMmaRows x 4 tiles of 16x8 per warp
          uint32_t a_frag[kMmaRows][4], b_frag[4][2];
#pragma unroll
          for (int mt = 0; mt < kMmaRows; ++mt) {
            const int r = warp_row + mt * 16 + lane_g;
            a_frag[mt][0] = __float_as_uint(a_tile[buf][lane_t][r]);
            a_frag[mt][1] = __float_as_uint(a_tile[buf][lane_t][r + 8]);
            a_frag[mt][2] = __float_as_uint(a_tile[buf][lane_t + 4][r]);
            a_frag[mt][3] = __float_as_uint(a_tile[buf][lane_t + 4][r + 8]);
          }
#pragma unroll
          for (int nt = 0; nt < 4; ++nt) {
            const int c = warp_col + nt * 8 + lane_g;
            b_frag[nt][0] = __float_as_uint(b_tile[buf][lane_t][c]);
            b_frag[nt][1] = __float_as_uint(b_tile[buf][lane_t + 4][c]);
          }
#pragma unroll
          for (int mt = 0; mt < kMmaRows; ++mt)
#pragma unroll
            for (int nt = 0; nt < 4; ++nt)
              mma_tf32(*reinterpret_cast<float(*)[4]>(&acc[(mt * 4 + nt) * 4]), a_frag[mt],
                       b_frag[nt]);
#endif
        } else {
#pragma unroll
          for (int kk = 0; kk < kBK; ++kk) {
            T a_reg[kRowsPerThread], b_reg[8];
#pragma unroll
            for (int i = 0; i < kRowsPerThread; ++i)
              a_reg[i] = a_tile[buf][kk][(i / 4) * 64 + ty * 4 + i % 4];
#pragma unroll
            for (int j = 0; j < 8; ++j) b_reg[j] = b_tile[buf][kk][(j / 4) * 64 + tx * 4 + j % 4];
#pragma unroll
            for (int i = 0; i < kRowsPerThread; ++i)
#pragma unroll
              for (int j = 0; j < 8; ++j) acc[i * 8 + j] += a_reg[i] * b_reg[j];
          }
        }
        if (more) stage(buf ^ 1);  // the other buffer: nobody reads it during this slice
        __syncthreads();
        buf ^= 1;
      }

#pragma unroll
      for (int e = 0; e < kAcc; ++e) {
        const int64_t gi = m0 + out_row(e), gj = n0 + out_col(e);
        if (gi >= s.m || gj >= s.n) continue;
        T* out = c_base + gi * g.ldc + gj;
        const T v = acc[e] + (g.bias ? g.bias[gi] : T(0));
        *out = g.accumulate ? *out + v : v;
      }
      __syncthreads();  // the next tile's first stage overwrites buffer 0
    }
  }
}

// c[i][j] (+)= bias[i] + sum over s of partial[s][i][j], s in order: the split-k reduction,
// deterministic.
template <typename T>
__global__ void sum_splits_kernel(const T* __restrict__ partial, int64_t splits, int64_t n,
                                  const T* __restrict__ bias, T* __restrict__ c, int64_t ldc,
                                  bool accumulate, int64_t total) {
  CC_GRID_STRIDE(e, total) {
    T sum = T(0);
    for (int64_t s = 0; s < splits; ++s) sum += partial[s * total + e];
    const int64_t i = e / n;
    if (bias) sum += bias[i];
    T* out = c + i * ldc + e % n;
    *out = accumulate ? *out + sum : sum;
  }
}

int multiprocessors() {
  static int cached[64] = {};
  int device = 0;
  if (cudaGetDevice(&device) != cudaSuccess || device < 0 || device >= 64) return 132;
  if (cached[device] == 0) {
    cudaDeviceProp prop{};
    const bool ok = cudaGetDeviceProperties(&prop, device) == cudaSuccess;
    cached[device] = ok && prop.multiProcessorCount > 0 ? prop.multiProcessorCount : 132;
  }
  return cached[device];
}


template <typename T, typename BSource>
void gemm_from(const GemmShape& shape, const GemmOperand<T>& a, const BSource& b_src, T* c,
               int64_t ldc, int64_t c_batch_stride, bool accumulate, const T* bias,
               cudaStream_t stream) {
  if (shape.m <= 0 || shape.n <= 0 || shape.batch <= 0) return;
  // k == 0: C = bias (or unchanged when accumulating); the kernel handles it with no k steps.
  GemmShape s = shape;
  // Tall tiles (128 rows) once m fills them; 64-row tiles for the conv paths' small m (K/groups).
  const bool tall = s.m > 64;
  const int64_t tile_m = tall ? 128 : 64, tile_n = 128;
  const int64_t tiles = ((s.m + tile_m - 1) / tile_m) * ((s.n + tile_n - 1) / tile_n) * s.batch;
  // Split k when the tiles alone cannot fill the GPU (the conv weight gradient: a small C, a
  // reduction over every image and position): each split sums a range of k into its own partial
  // matrix, then the partials are added in a fixed order. The split count depends only on the
  // shape and the GPU, so results are the same run to run.
  int64_t splits = 1;
  const int64_t wanted_blocks = 2 * int64_t(multiprocessors());
  if (s.batch == 1 && tiles < wanted_blocks && s.k >= 1024) {
    splits = std::min<int64_t>((wanted_blocks + tiles - 1) / tiles, s.k / 512);
    const int64_t partial_bytes = s.m * s.n * int64_t(sizeof(T));
    const int64_t budget = std::min<int64_t>(int64_t(256) << 20, max_workspace_bytes());
    splits = std::max<int64_t>(1, std::min<int64_t>(splits, budget / std::max<int64_t>(partial_bytes, 1)));
  }
  const int64_t k_per_split =
      splits > 1 ? ((s.k + splits - 1) / splits + 7) / 8 * 8 : std::max<int64_t>(s.k, 1);
  if (splits > 1) splits = (s.k + k_per_split - 1) / k_per_split;

  const int64_t tiles_n = (s.n + tile_n - 1) / tile_n, tiles_m = (s.m + tile_m - 1) / tile_m;
  const dim3 grid(static_cast<unsigned>(std::min(tiles_n, kMaxGridX)),
                  static_cast<unsigned>(std::min<int64_t>(tiles_m, kMaxGridYZ)),
                  static_cast<unsigned>(std::min<int64_t>(s.batch * splits, kMaxGridYZ)));
  auto run = [&](T* out, int64_t out_ld, int64_t out_batch_stride, bool acc, const T* row_bias,
                 int64_t split_stride) {
    const GemmArgs<T> args{s, a, out, out_ld, out_batch_stride, acc, row_bias};
    auto go = [&](auto kernel) {
      launch(kernel, grid, dim3(kThreads), 0, stream, args, b_src, splits, k_per_split,
             split_stride);
    };
    if constexpr (std::is_same_v<T, float>) {
      if (allow_tf32()) {  // float32 only: float64 has no TF32 variant
        if (tall) go(gemm_tile_kernel<T, 8, BSource, true>);
        else go(gemm_tile_kernel<T, 4, BSource, true>);
        return;
      }
    }
    if (tall) go(gemm_tile_kernel<T, 8, BSource, false>);
    else go(gemm_tile_kernel<T, 4, BSource, false>);
  };
  if (splits == 1) {
    run(c, ldc, c_batch_stride, accumulate, bias, 0);
    return;
  }
  const int64_t total = s.m * s.n;
  DeviceBuffer partial(size_t(splits * total) * sizeof(T), stream);
  run(partial.as<T>(), s.n, 0, false, nullptr, total);
  CC_CUDA_LAUNCH(sum_splits_kernel<T>, total, 256, stream, partial.as<T>(), splits, s.n, bias, c,
                 ldc, accumulate, total);
}

}  // namespace

namespace {
std::atomic<bool> g_allow_tf32{false};
}  // namespace

void set_allow_tf32(bool on) { g_allow_tf32.store(on); }
bool allow_tf32() { return g_allow_tf32.load(); }

template <typename T>
void gemm(const GemmShape& shape, const GemmOperand<T>& a, const GemmOperand<T>& b, T* c,
          int64_t ldc, int64_t c_batch_stride, bool accumulate, const T* bias, cudaStream_t stream) {
  GemmShape s = shape;
  if (s.k_inner <= 0) s.k_inner = s.k > 0 ? s.k : 1;
  gemm_from(s, a, StridedSource<T>{b, s.k_inner}, c, ldc, c_batch_stride, accumulate, bias, stream);
}

template <typename T>
void gemm_patches(const GemmShape& shape, const GemmOperand<T>& a, const ConvPatches<T>& b, T* c,
                  int64_t ldc, int64_t c_batch_stride, bool accumulate, const T* bias,
                  cudaStream_t stream) {
  GemmShape s = shape;
  if (s.k_inner <= 0) s.k_inner = s.k > 0 ? s.k : 1;
  gemm_from(s, a, PatchSource<T>{b}, c, ldc, c_batch_stride, accumulate, bias, stream);
}

template <typename T>
void gemm_grad_patches(const GemmShape& shape, const GemmOperand<T>& a,
                       const ConvGradPatches<T>& b, T* c, int64_t ldc, int64_t c_batch_stride,
                       cudaStream_t stream) {
  GemmShape s = shape;
  if (s.k_inner <= 0) s.k_inner = s.k > 0 ? s.k : 1;
  gemm_from(s, a, GradPatchSource<T>{b}, c, ldc, c_batch_stride, false, static_cast<const T*>(nullptr),
            stream);
}

template void gemm<float>(const GemmShape&, const GemmOperand<float>&, const GemmOperand<float>&,
                          float*, int64_t, int64_t, bool, const float*, cudaStream_t);
template void gemm<double>(const GemmShape&, const GemmOperand<double>&, const GemmOperand<double>&,
                           double*, int64_t, int64_t, bool, const double*, cudaStream_t);
template void gemm_grad_patches<float>(const GemmShape&, const GemmOperand<float>&,
                                       const ConvGradPatches<float>&, float*, int64_t, int64_t,
                                       cudaStream_t);
template void gemm_grad_patches<double>(const GemmShape&, const GemmOperand<double>&,
                                        const ConvGradPatches<double>&, double*, int64_t, int64_t,
                                        cudaStream_t);
template void gemm_patches<float>(const GemmShape&, const GemmOperand<float>&,
                                  const ConvPatches<float>&, float*, int64_t, int64_t, bool,
                                  const float*, cudaStream_t);
template void gemm_patches<double>(const GemmShape&, const GemmOperand<double>&,
                                   const ConvPatches<double>&, double*, int64_t, int64_t, bool,
                                   const double*, cudaStream_t);

}  // namespace convcore::cuda
