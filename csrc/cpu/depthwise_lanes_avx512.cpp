// Depthwise 3x3 with channels in the lanes (depthwise_lanes_impl.inc) compiled with avx512 flags
// (see CMakeLists.txt): 16 channels a vector; tiles up to 20 x 20 padded (25.6 KB).
#include <omp.h>

#include <algorithm>
#include <cstdint>
#include <exception>

#include "common/conv_params.h"
#include "cpu/depthwise_isa.h"
#include "cpu/parallel.h"
#include "cpu/scratch.h"
#include "cpu/vec_lanes.h"

namespace convcore::cpu::avx512 {
namespace {
namespace lanes_impl {
constexpr int kVL = 16;
constexpr int64_t kMaxTileFloats = 20 * 20 * 16;
#include "cpu/depthwise_lanes_impl.inc"
}  // namespace lanes_impl
}  // namespace
}  // namespace convcore::cpu::avx512

// Outputs up to 8 wide (7x7 maps): (8,1024,7,7), 2 threads, forward 0.19 -> 0.10 ms, weight
// gradient 0.19 -> 0.12 against the rows in registers (depthwise_small_avx512.cpp), which stay
// even or ahead from 14x14 up (14x14 and 28x28/2 even; 56x56 and 112x112 0.55-0.77 against
// 0.81-0.90 ms here).
CONVCORE_DEFINE_DEPTHWISE_LANES_F32(avx512, 8)
