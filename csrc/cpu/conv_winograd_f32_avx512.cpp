// Winograd F(2x2,3x3) float32 forward (conv_winograd_f32_impl.inc) compiled with avx512 flags (see
// CMakeLists.txt).
#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <exception>
#include <vector>

#include "cpu/conv_winograd.h"
#include "cpu/gemm/ukernel.h"
#include "cpu/parallel.h"
#include "cpu/scratch.h"

namespace convcore::cpu::avx512 {
namespace {
namespace wg_impl {
constexpr int kVL = 16;  // floats per 512-bit vector
#include "cpu/conv_winograd_f32_impl.inc"
}  // namespace wg_impl
}  // namespace

void winograd_f2_forward_f32(const ConvParams& p, const float* x, const float* w, const float* bias,
                             float* y, int threads) {
  wg_impl::winograd_f2_forward(p, x, w, bias, y, threads);
}
}  // namespace convcore::cpu::avx512
