// The grouped convolution (conv_grouped_impl.inc): the baseline SSE2 build, the per-ISA
// dispatch, and the rule for when the implicit GEMM runs it.
#include "cpu/conv_grouped.h"

#include <omp.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>
#include <exception>
#include <utility>
#include <vector>

#include "common/errors.h"
#include "cpu/conv.h"
#include "cpu/cpu_features.h"
#include "cpu/kernel_override.h"
#include "cpu/parallel.h"
#include "cpu/scratch.h"
#include "cpu/vec_lanes.h"

namespace convcore::cpu {

namespace {
namespace gc_impl {
constexpr int kVL = 4;     // baseline x86-64: SSE2, 128-bit vectors
constexpr int kRegs = 16;  // xmm registers
#include "cpu/conv_grouped_impl.inc"
}  // namespace gc_impl

KernelOverride& grouped_override_hook() {
  static KernelOverride hook("CONVCORE_CONV_GROUPED");
  return hook;
}

int grouped_override() { return grouped_override_hook().mode(); }
}  // namespace

int set_grouped_conv_override(int mode) { return grouped_override_hook().set(mode); }

bool grouped_conv_applies(const ConvParams& p) { return p.stride_w == 1; }  // any groups, 1 too

bool grouped_conv_wins(const ConvParams& p) {
  if (!grouped_conv_applies(p)) return false;
  const int mode = grouped_override();
  if (mode >= 0) return mode == 1;
  // Where a group's output channels fill less than a vector of the broadcast kernel. Two
  // threads, medians, broadcast -> this (bench/RESULTS.md, "Session 10"): AVX-512, ResNeXt's
  // (8,128,28,28) with 32 groups of 4: forward 1.34 -> 0.45 ms, input gradient 1.15 -> 0.47;
  // 8 per group 1.21 -> 0.74, 12 per group 0.475 -> 0.414; 16 per group it lost (0.61 -> 0.69).
  // AVX2 (8 lanes): 4 per group 0.98 -> 0.88, 8 per group it lost (0.51 -> 0.58).
  const int64_t lanes = active_isa() == Isa::Avx512 ? 16 : active_isa() == Isa::Avx2 ? 8 : 4;
  if (p.groups > 1) return p.k_per_group() < lanes && !p.is_depthwise();
  // One group with few input channels (a network's first layer): the broadcast kernel's sums
  // are short and its transposed stores weigh. AVX-512, 2 threads, medians of 2 x 30 calls,
  // broadcast / this: book.conv1 (100,1,28,28) -> 16 0.29 / 0.21 ms, -> 32 0.49 / 0.41;
  // (64,3,32,32) -> 16/32/64 1.44x / 1.49x / 1.11x; (32,4,32,32) -> 32 1.30x; 8 and 12
  // channels 1.18x, 1.12x; but (8,3,112,112) -> 32 0.83x and a 5x5 over one channel 0.98x. On
  // AVX2 (16 registers: one segment per 8 channels) it lost on every one of them (0.59-0.96x).
  return active_isa() == Isa::Avx512 && p.c_per_group() * p.kh * p.kw <= 36 && p.out_w <= 32;
}

void conv2d_forward_grouped_f32(const ConvParams& p, const float* x, const float* w,
                                const float* bias, float* y, int threads, bool turned) {
  CC_ASSERT(grouped_conv_applies(p));
  if (p.n * p.k * p.out_h * p.out_w == 0) return;
  switch (active_isa()) {
    case Isa::Avx512: return avx512::grouped_forward_f32(p, x, w, bias, y, threads, turned);
    case Isa::Avx2: return avx2::grouped_forward_f32(p, x, w, bias, y, threads, turned);
    case Isa::Scalar: return gc_impl::grouped_forward(p, x, w, bias, y, threads, turned);
  }
}

}  // namespace convcore::cpu
