// Winograd F(2x2,3x3) float32 forward (conv_winograd_f32_impl.inc) compiled with avx2 flags (see
// CMakeLists.txt).
#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <exception>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <omp.h>

#include "common/errors.h"
#include "cpu/conv_winograd.h"
#include "cpu/gemm/gemm.h"
#include "cpu/gemm/ukernel.h"
#include "cpu/parallel.h"
#include "cpu/prepared_weights.h"
#include "cpu/scratch.h"
#include "cpu/vec_lanes.h"

namespace convcore::cpu::avx2 {
namespace {
namespace wg_impl {
constexpr int kVL = 8;  // floats per 256-bit vector
#include "cpu/conv_winograd_f32_impl.inc"
}  // namespace wg_impl
}  // namespace

void winograd_forward_f32(int tile_m, const ConvParams& p, const float* x, const float* w,
                          const float* bias, float* y, int threads) {
  if (tile_m == 4) return wg_impl::winograd_forward<4>(p, x, w, bias, y, threads);
  wg_impl::winograd_forward<2>(p, x, w, bias, y, threads);
}

void winograd_f2_backward_weight_f32(const ConvParams& p, const float* dy, const float* x,
                                     float* dw, int threads) {
  wg_impl::winograd_f2_backward_weight(p, dy, x, dw, threads);
}
}  // namespace convcore::cpu::avx2
