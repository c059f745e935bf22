// The broadcast convolution of conv_broadcast_impl.inc compiled with avx2 flags (see CMakeLists.txt).
#include <omp.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>
#include <exception>
#include <utility>
#include <vector>

#include "cpu/conv.h"
#include "cpu/conv_broadcast.h"
#include "cpu/parallel.h"
#include "cpu/scratch.h"
#include "cpu/vec_lanes.h"

namespace convcore::cpu::avx2 {
namespace {
namespace bc_impl {
constexpr int kVL = 8;      // floats per 256-bit vector
constexpr int kMaxAcc = 12;  // accumulator registers: 16 ymm less the weights and a broadcast
#include "cpu/conv_broadcast_impl.inc"
}  // namespace bc_impl
}  // namespace
}  // namespace convcore::cpu::avx2

CONVCORE_DEFINE_BROADCAST_F32(avx2)
