// Winograd F(2x2,3x3) float32 forward (conv_winograd_f32_impl.inc) compiled with avx512 flags (see
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

namespace convcore::cpu::avx512 {
namespace {
namespace wg_impl {
constexpr int kVL = 16;  // floats per 512-bit vector
#include "cpu/conv_winograd_f32_impl.inc"
}  // namespace wg_impl
// The same driver with 8-lane (256-bit) transforms, for maps whose tile rows fill 16 lanes
// poorly: 2 tiles a row stack 4 rows in 8 lanes (but 8 rows in 16: more than a run stacks), 5-7
// tiles use 5-7 of 8 lanes but of 16. The products still run on the AVX-512 micro-kernel.
// DeepConvNet's 8x8 rows, two threads, before tile rows stacked: 2.33 -> 1.80 ms (64 -> 64).
namespace wg_impl_half {
constexpr int kVL = 8;
#include "cpu/conv_winograd_f32_impl.inc"
}  // namespace wg_impl_half

// Fraction of transform lanes a tile row of tiles_w tiles fills with vectors of `lanes`: all of
// them where whole tile rows stack in a vector (`stacks`: that build's tile_rows_per_vector > 1),
// else one row's tiles over the vectors it needs. With 4 tiles a row both builds stack, and the
// 16-lane one (4 rows a vector) ran 2-4% faster than the 8-lane one (2 rows): book.conv3-6, 2
// threads.
double lane_use(int64_t tiles_w, int64_t lanes, bool stacks) {
  if (stacks) return 1.0;
  return double(tiles_w) / double(lanes * ((tiles_w + lanes - 1) / lanes));
}
}  // namespace

void winograd_forward_f32(int tile_m, const ConvParams& p, const float* x, const float* w,
                          const float* bias, float* y, int threads) {
  const int64_t tiles_w = (p.out_w + tile_m - 1) / tile_m;
  const bool half = lane_use(tiles_w, 8, wg_impl_half::tile_rows_per_vector(tiles_w) > 1) >
                    lane_use(tiles_w, 16, wg_impl::tile_rows_per_vector(tiles_w) > 1);
  if (tile_m == 4)
    return half ? wg_impl_half::winograd_forward<4>(p, x, w, bias, y, threads)
                : wg_impl::winograd_forward<4>(p, x, w, bias, y, threads);
  if (half) return wg_impl_half::winograd_forward<2>(p, x, w, bias, y, threads);
  wg_impl::winograd_forward<2>(p, x, w, bias, y, threads);
}

void winograd_f2_backward_weight_f32(const ConvParams& p, const float* dy, const float* x,
                                     float* dw, int threads) {
  wg_impl::winograd_f2_backward_weight(p, dy, x, dw, threads);
}
}  // namespace convcore::cpu::avx512
