// The avx512 FMA peak loop (see fma_peak.h).
#include <immintrin.h>

#include "cpu/gemm/fma_peak.h"

namespace convcore::cpu {

__attribute__((noinline)) float fma_peak_loop_avx512(int64_t iters) {
  __m512 acc[kFmaPeakChains];
  for (int i = 0; i < kFmaPeakChains; ++i) acc[i] = _mm512_set1_ps(float(i));
  // x * acc + y with |x| < 1 stays finite for any number of rounds
  const __m512 x = _mm512_set1_ps(0.999f), y = _mm512_set1_ps(0.001f);
  for (int64_t it = 0; it < iters; ++it) {
#pragma GCC unroll 12
    for (int i = 0; i < kFmaPeakChains; ++i) acc[i] = _mm512_fmadd_ps(x, acc[i], y);
  }
  __m512 sum = acc[0];
  for (int i = 1; i < kFmaPeakChains; ++i) sum = _mm512_add_ps(sum, acc[i]);
  alignas(64) float lanes[512 / 32];
  _mm512_store_ps(lanes, sum);
  return lanes[0];
}

}  // namespace convcore::cpu
