// The depthwise kernels of depthwise_impl.inc compiled with avx2 flags (see CMakeLists.txt).
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>

#include "common/conv_params.h"
#include "cpu/conv.h"
#include "cpu/depthwise_isa.h"
#include "cpu/parallel.h"

namespace convcore::cpu::avx2 {
namespace {
namespace dw_impl {
using T = float;
constexpr int kVL = 8;  // floats per 256-bit vector
#include "cpu/depthwise_impl.inc"
}  // namespace dw_impl
}  // namespace
}  // namespace convcore::cpu::avx2

CONVCORE_DEFINE_DEPTHWISE_F32(avx2)
