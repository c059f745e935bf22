// The AVX-512 MR x 32 float32 micro-kernel body, shared by the f32_gemm_*x32_avx512.cpp files and
// included by nothing else: it is compiled with AVX-512 flags and must stay in those files only.
// Everything here has internal linkage (anonymous namespace), so no AVX-512 copy of an inline
// function can be picked by the linker for a caller built for baseline x86-64.
//
// Register budget (32 zmm): 2*MR accumulators + 2 B vectors; A is broadcast straight from memory
// (vfmadd231ps zmm, zmm, m32{1to16}), so it costs no register. MR = 14 gives 28 accumulators,
// enough to cover 2 FMA ports x 4-cycle latency (8 chains) more than three times over, and per
// k step 16 loads (2 B + 14 broadcasts) against 28 FMAs, under the 2 loads/cycle SPR sustains.
#pragma once
#include <immintrin.h>

#include <cstdint>

#include "cpu/gemm/ukernel.h"

namespace convcore::cpu::avx512 {
namespace {

constexpr int kNr = 32;
constexpr int kPrefetchSteps = 16;

template <int MR>
inline __attribute__((always_inline)) void f32_gemm_tile_x32(
    int64_t kc, const float* a, const float* b, float* c, int64_t ldc, int64_t rows, int64_t cols,
    const UkernelArgs& args) {
  // Start pulling the C tile in now: its rows are ldc apart (a 4 KB stride at n = 1024 that the
  // hardware prefetchers do not follow), and the K loop below is long enough to hide the misses.
  // A row of 32 floats spans at most 3 cache lines; prefetches never fault, so no bounds checks.
#pragma GCC unroll 16
  for (int r = 0; r < MR; ++r) {
    if (r >= rows) break;
    _mm_prefetch(reinterpret_cast<const char*>(c + r * ldc), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(c + r * ldc + 31), _MM_HINT_T0);
  }
  __m512 acc_lo[MR], acc_hi[MR];
#pragma GCC unroll 16
  for (int r = 0; r < MR; ++r) {
    acc_lo[r] = _mm512_setzero_ps();
    acc_hi[r] = _mm512_setzero_ps();
  }
  for (int64_t p = 0; p < kc; ++p) {
    // The B micro-panel streams from L2 (see the blocking in gemm_f32.cpp): pull both of its
    // lines, and A's, kPrefetchSteps k steps (2 KB of B) ahead. Worth 1-2% of peak at 1024^3;
    // prefetches past the panel's end are harmless (they never fault).
    _mm_prefetch(reinterpret_cast<const char*>(b + kPrefetchSteps * kNr), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(b + kPrefetchSteps * kNr + 16), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(a + kPrefetchSteps * MR), _MM_HINT_T0);
    const __m512 b_lo = _mm512_load_ps(b);
    const __m512 b_hi = _mm512_load_ps(b + 16);
#pragma GCC unroll 16
    for (int r = 0; r < MR; ++r) {
      const __m512 a_r = _mm512_set1_ps(a[r]);
      acc_lo[r] = _mm512_fmadd_ps(a_r, b_lo, acc_lo[r]);
      acc_hi[r] = _mm512_fmadd_ps(a_r, b_hi, acc_hi[r]);
    }
    a += MR;
    b += kNr;
  }

  // Column masks make edge tiles use the same arithmetic as full ones; masked-off lanes are
  // neither loaded nor stored, so nothing past the caller's C is touched.
  const __mmask16 mask_lo =
      cols >= 16 ? __mmask16(0xffff) : __mmask16((1u << cols) - 1u);
  const __mmask16 mask_hi =
      cols >= 32 ? __mmask16(0xffff) : cols > 16 ? __mmask16((1u << (cols - 16)) - 1u) : __mmask16(0);
  const float alpha = args.alpha, beta = args.beta;
  const __m512 alpha_v = _mm512_set1_ps(alpha), beta_v = _mm512_set1_ps(beta);
  const __m512 zero = _mm512_setzero_ps();
#pragma GCC unroll 16
  for (int r = 0; r < MR; ++r) {
    if (r >= rows) break;
    float* c_row = c + r * ldc;
    __m512 lo = acc_lo[r], hi = acc_hi[r];
    if (alpha != 1.0f) {
      lo = _mm512_mul_ps(lo, alpha_v);
      hi = _mm512_mul_ps(hi, alpha_v);
    }
    if (beta != 0.0f) {  // beta == 0: C is write-only and may hold NaN
      const __m512 c_lo = _mm512_maskz_loadu_ps(mask_lo, c_row);
      const __m512 c_hi = _mm512_maskz_loadu_ps(mask_hi, c_row + 16);
      if (beta == 1.0f) {
        lo = _mm512_add_ps(lo, c_lo);
        hi = _mm512_add_ps(hi, c_hi);
      } else {
        lo = _mm512_fmadd_ps(beta_v, c_lo, lo);
        hi = _mm512_fmadd_ps(beta_v, c_hi, hi);
      }
    }
    if (args.bias) {
      const __m512 bias_v = _mm512_set1_ps(args.bias[r]);
      lo = _mm512_add_ps(lo, bias_v);
      hi = _mm512_add_ps(hi, bias_v);
    }
    if (args.relu) {  // max(0, x) returns x when x is NaN: ReLU keeps NaN
      lo = _mm512_max_ps(zero, lo);
      hi = _mm512_max_ps(zero, hi);
    }
    _mm512_mask_storeu_ps(c_row, mask_lo, lo);
    _mm512_mask_storeu_ps(c_row + 16, mask_hi, hi);
  }
}

}  // namespace
}  // namespace convcore::cpu::avx512
