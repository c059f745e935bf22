// f32 GEMM micro-kernel, 4 x 8 tile, portable C++ (built for baseline x86-64 or any CPU): the
// fallback when neither AVX2+FMA nor AVX-512 is usable. 32 accumulators fit the 16 SSE registers
// as 8 vectors of 4 when the compiler vectorises the j loop; no FMA contraction is available there,
// so results are the plain multiply-then-add sums.
#include <cstdint>

#include "cpu/gemm/ukernel.h"

namespace convcore::cpu {
namespace scalar {
namespace {
constexpr int kMr = 4, kNr = 8;
}  // namespace
}  // namespace scalar

void f32_gemm_4x8__scalar(int64_t kc, const float* a, const float* b, float* c, int64_t ldc,
                          int64_t rows, int64_t cols, const UkernelArgs& args) {
  using namespace scalar;
  float acc[kMr][kNr] = {};
  for (int64_t p = 0; p < kc; ++p) {
    for (int r = 0; r < kMr; ++r)
      for (int j = 0; j < kNr; ++j) acc[r][j] += a[r] * b[j];
    a += kMr;
    b += kNr;
  }
  const float alpha = args.alpha, beta = args.beta;
  for (int64_t r = 0; r < rows; ++r) {
    float* c_row = c + r * ldc;
    const float bias = args.bias ? args.bias[r] : 0.0f;
    for (int64_t j = 0; j < cols; ++j) {
      float v = acc[r][j];
      if (alpha != 1.0f) v *= alpha;
      if (beta != 0.0f) v = beta == 1.0f ? v + c_row[j] : v + beta * c_row[j];
      if (args.bias) v += bias;
      if (args.relu && v < 0.0f) v = 0.0f;  // keeps NaN, like the SIMD max(0, x)
      c_row[j] = v;
    }
  }
}

}  // namespace convcore::cpu
