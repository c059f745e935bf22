// The AVX-512 FMA loop of the peak probe. 16 independent zmm accumulators: Sapphire Rapids has
// 2 FMA ports with 4-cycle latency, so 8 chains are the minimum to keep both busy; 16 leaves
// headroom for the loop overhead and for cores with longer latency.
#include <immintrin.h>

#include "cpu/machine_probe.h"

namespace convcore::cpu::avx512 {

namespace {
constexpr int kChains = 16;
constexpr int kStepsPerBlock = 64;
}  // namespace

int64_t fma_blocks(int64_t blocks, float* sink) {
  // acc = acc * a + b converges to b / (1 - a) = 1: no overflow, no denormals, whatever the count.
  const __m512 a = _mm512_set1_ps(0.999f);
  const __m512 b = _mm512_set1_ps(0.001f);
  __m512 acc[kChains];
  for (int i = 0; i < kChains; ++i) acc[i] = _mm512_set1_ps(static_cast<float>(i));
  for (int64_t blk = 0; blk < blocks; ++blk) {
    for (int s = 0; s < kStepsPerBlock; ++s) {
#pragma GCC unroll 16
      for (int i = 0; i < kChains; ++i) acc[i] = _mm512_fmadd_ps(acc[i], a, b);
    }
  }
  __m512 total = acc[0];
  for (int i = 1; i < kChains; ++i) total = _mm512_add_ps(total, acc[i]);
  *sink = _mm512_reduce_add_ps(total);
  return blocks * kStepsPerBlock * kChains * kLanes;
}

}  // namespace convcore::cpu::avx512
