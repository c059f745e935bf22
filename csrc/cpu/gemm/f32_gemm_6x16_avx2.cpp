// f32 GEMM micro-kernel, 6 x 16 tile, AVX2 + FMA (the Haswell..Zen 3 shape).
// Register budget (16 ymm): 12 accumulators (6 rows x 2 vectors of 8) + 2 B vectors + 1 A
// broadcast = 15. 12 independent FMA chains cover 2 ports x 4-5 cycles of latency; per k step
// 8 loads (2 B + 6 broadcasts) feed 12 FMAs, within the 2-3 loads/cycle of those cores.
// Edge columns use vmaskmovps lane masks, which neither read nor write masked-off lanes, so edge
// tiles run the same arithmetic as full ones and never touch memory past the caller's C.
#include <immintrin.h>

#include <algorithm>
#include <cstdint>

#include "cpu/gemm/ukernel.h"
#include "cpu/vec_lanes.h"

namespace convcore::cpu {
namespace avx2 {
namespace {
constexpr int kMr = 6, kNr = 16;
}  // namespace
}  // namespace avx2

void f32_gemm_6x16__avx2(int64_t kc, const float* a, const float* b, float* c, int64_t ldc,
                         int64_t rows, int64_t cols, const UkernelArgs& args) {
  using namespace avx2;
  // Start pulling the C tile in (rows ldc apart: a stride the hardware prefetchers do not follow);
  // a row of 16 floats spans at most 2 cache lines, and prefetches never fault.
#pragma GCC unroll 6
  for (int r = 0; r < kMr; ++r) {
    if (r >= rows) break;
    _mm_prefetch(reinterpret_cast<const char*>(c + r * ldc), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(c + r * ldc + 15), _MM_HINT_T0);
  }
  __m256 acc_lo[kMr], acc_hi[kMr];
#pragma GCC unroll 6
  for (int r = 0; r < kMr; ++r) acc_lo[r] = acc_hi[r] = _mm256_setzero_ps();
  for (int64_t p = 0; p < kc; ++p) {
    const __m256 b_lo = _mm256_load_ps(b), b_hi = _mm256_load_ps(b + 8);
#pragma GCC unroll 6
    for (int r = 0; r < kMr; ++r) {
      const __m256 a_r = _mm256_broadcast_ss(a + r);
      acc_lo[r] = _mm256_fmadd_ps(a_r, b_lo, acc_lo[r]);
      acc_hi[r] = _mm256_fmadd_ps(a_r, b_hi, acc_hi[r]);
    }
    a += kMr;
    b += kNr;
  }

  // lane j of the low/high half is live when j (resp. j + 8) < cols
  const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  const __m256i cols_v = _mm256_set1_epi32(static_cast<int>(cols));
  const __m256i mask_lo = _mm256_cmpgt_epi32(cols_v, lane);
  const __m256i mask_hi = _mm256_cmpgt_epi32(cols_v, _mm256_add_epi32(lane, _mm256_set1_epi32(8)));
  const bool full = cols == kNr;
  const float alpha = args.alpha, beta = args.beta;
  const __m256 alpha_v = _mm256_set1_ps(alpha), beta_v = _mm256_set1_ps(beta);
  const __m256 zero = _mm256_setzero_ps();
#pragma GCC unroll 6
  for (int r = 0; r < kMr; ++r) {
    if (r >= rows) break;
    float* c_row = c + r * ldc;
    __m256 lo = acc_lo[r], hi = acc_hi[r];
    if (alpha != 1.0f) {
      lo = _mm256_mul_ps(lo, alpha_v);
      hi = _mm256_mul_ps(hi, alpha_v);
    }
    if (beta != 0.0f) {  // beta == 0: C is write-only and may hold NaN
      const __m256 c_lo = full ? _mm256_loadu_ps(c_row) : _mm256_maskload_ps(c_row, mask_lo);
      const __m256 c_hi = full ? _mm256_loadu_ps(c_row + 8) : _mm256_maskload_ps(c_row + 8, mask_hi);
      if (beta == 1.0f) {
        lo = _mm256_add_ps(lo, c_lo);
        hi = _mm256_add_ps(hi, c_hi);
      } else {
        lo = _mm256_fmadd_ps(beta_v, c_lo, lo);
        hi = _mm256_fmadd_ps(beta_v, c_hi, hi);
      }
    }
    if (args.bias) {
      const __m256 bias_v = _mm256_set1_ps(args.bias[r]);
      lo = _mm256_add_ps(lo, bias_v);
      hi = _mm256_add_ps(hi, bias_v);
    }
    if (args.relu) {  // max(0, x) returns x when x is NaN: ReLU keeps NaN
      lo = _mm256_max_ps(zero, lo);
      hi = _mm256_max_ps(zero, hi);
    }
    if (full) {
      _mm256_storeu_ps(c_row, lo);
      _mm256_storeu_ps(c_row + 8, hi);
    } else {  // not the masked store: microcoded on AMD's cores (cpu/vec_lanes.h)
      store_lanes<8>(c_row, (LaneVec<8>::F)lo, std::min<int64_t>(cols, 8));
      if (cols > 8) store_lanes<8>(c_row + 8, (LaneVec<8>::F)hi, cols - 8);
    }
  }
}

}  // namespace convcore::cpu
