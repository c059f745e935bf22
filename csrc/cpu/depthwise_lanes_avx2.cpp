// Depthwise 3x3 with channels in the lanes (depthwise_lanes_impl.inc) compiled with avx2 flags
// (see CMakeLists.txt): 8 channels a vector, every map up to 112 outputs wide (tiles up to
// 114 x 114 padded, 416 KB: written once and read row by row, so L2 holds what is in use).
#include <omp.h>

#include <algorithm>
#include <cstdint>
#include <exception>

#include "common/conv_params.h"
#include "cpu/depthwise_isa.h"
#include "cpu/parallel.h"
#include "cpu/scratch.h"
#include "cpu/vec_lanes.h"

namespace convcore::cpu::avx2 {
namespace {
namespace lanes_impl {
constexpr int kVL = 8;
constexpr int64_t kMaxTileFloats = 114 * 114 * 8;
#include "cpu/depthwise_lanes_impl.inc"
}  // namespace lanes_impl
}  // namespace
}  // namespace convcore::cpu::avx2

// Against the AVX2 row kernels of depthwise_impl.inc, 2 threads (CONVCORE_ISA=avx2 on Zen 4),
// ms forward / weight gradient: (8,1024,7,7) 0.52 / 0.37 -> 0.10 / 0.13; (8,512,14,14) 0.66 /
// 1.38 -> 0.17 / 0.21; (8,256,28,28)/2 0.52 / 0.88 -> 0.15 / 0.17; (8,128,56,56) 1.3 / 1.8 ->
// 0.76 / 0.80; (8,32,112,112) 1.1 / 1.2 -> 0.74 / 0.79; (8,64,112,112)/2 1.0 / 1.3 -> 0.73 / 0.78.
CONVCORE_DEFINE_DEPTHWISE_LANES_F32(avx2, 112)
