// The grouped convolution of conv_grouped_impl.inc compiled with avx2 flags (see CMakeLists.txt).
#include <omp.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>
#include <exception>
#include <utility>
#include <vector>

#include "cpu/conv.h"
#include "cpu/conv_grouped.h"
#include "cpu/parallel.h"
#include "cpu/scratch.h"
#include "cpu/vec_lanes.h"

namespace convcore::cpu::avx2 {
namespace {
namespace gc_impl {
constexpr int kVL = 8;    // floats per 256-bit vector
constexpr int kRegs = 16;  // vector registers
#include "cpu/conv_grouped_impl.inc"
}  // namespace gc_impl
}  // namespace
}  // namespace convcore::cpu::avx2

CONVCORE_DEFINE_GROUPED_F32(avx2)
