// The AVX2 FMA loop of the peak probe. 12 independent ymm accumulators: Zen 3 and Intel cores
// have 2 FMA ports with 4-5 cycle latency (8-10 chains needed); with only 16 ymm registers,
// 12 accumulators plus the two constants is the most that stays in registers.
#include <immintrin.h>

#include "cpu/machine_probe.h"

namespace convcore::cpu::avx2 {

namespace {
constexpr int kChains = 12;
constexpr int kStepsPerBlock = 64;
}  // namespace

int64_t fma_blocks(int64_t blocks, float* sink) {
  // acc = acc * a + b converges to b / (1 - a) = 1: no overflow, no denormals, whatever the count.
  const __m256 a = _mm256_set1_ps(0.999f);
  const __m256 b = _mm256_set1_ps(0.001f);
  __m256 acc[kChains];
  for (int i = 0; i < kChains; ++i) acc[i] = _mm256_set1_ps(static_cast<float>(i));
  for (int64_t blk = 0; blk < blocks; ++blk) {
    for (int s = 0; s < kStepsPerBlock; ++s) {
#pragma GCC unroll 12
      for (int i = 0; i < kChains; ++i) acc[i] = _mm256_fmadd_ps(acc[i], a, b);
    }
  }
  __m256 total = acc[0];
  for (int i = 1; i < kChains; ++i) total = _mm256_add_ps(total, acc[i]);
  alignas(32) float lanes[8];
  _mm256_store_ps(lanes, total);
  float sum = 0.0f;
  for (float v : lanes) sum += v;
  *sink = sum;
  return blocks * kStepsPerBlock * kChains * kLanes;
}

}  // namespace convcore::cpu::avx2
