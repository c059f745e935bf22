// The broadcast convolution (conv_broadcast_impl.inc): the baseline SSE2 build, the per-ISA
// dispatch, and the rule for when the implicit GEMM runs it.
#include "cpu/conv_broadcast.h"

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
namespace bc_impl {
constexpr int kVL = 4;       // baseline x86-64: SSE2, 128-bit vectors
constexpr int kMaxAcc = 12;  // 16 xmm less the weights and a broadcast
#include "cpu/conv_broadcast_impl.inc"
}  // namespace bc_impl
}  // namespace

namespace {
KernelOverride& broadcast_override_hook() {
  static KernelOverride hook("CONVCORE_CONV_BROADCAST");
  return hook;
}

int broadcast_override() { return broadcast_override_hook().mode(); }
}  // namespace

int set_broadcast_conv_override(int mode) { return broadcast_override_hook().set(mode); }

bool broadcast_conv_applies(const ConvParams& p) {
  return p.stride_w == 1 || p.stride_w == 2 || p.stride_w == 4;
}

// One thread, thread CPU time, medians (bench/RESULTS.md, "Broadcast convolution"): it beat the
// packed-B implicit GEMM on every suite row it applies to (1.2-1.65x on the DeepConvNet maps,
// 1.2x on ResNet-50's 3x3 and 1x1 rows, 1.5x on the 7x7/2 stem) but two: VGG's 112x112 row
// (0.98x: large maps are where packing costs least) and a 1x1 conv with 64 input channels
// (0.95x: a short sum leaves the transposed tile store exposed), both within noise of even.
//
// 1x1 kernels with fewer than 256 input channels per group go to the packed GEMM instead: there
// the sum per output is as short as C, and the broadcast tile's transposed store dominated. Two
// threads, interleaved medians, broadcast / packed (bench/RESULTS.md, "Session 4"): NIN's cccp at
// 107x107 with 96 channels 3.13 / 1.40 ms, ResNet-50's 64 -> 256 at 56x56 10.1 / 5.4 ms; from 256
// channels on, even or better for broadcast (256 -> 64: 5.2 / 5.9 ms, 1024 -> 1024 at 12x12:
// 1.8 / 2.5 ms).
bool broadcast_conv_wins(const ConvParams& p) {
  if (!broadcast_conv_applies(p)) return false;
  const int mode = broadcast_override();
  if (mode >= 0) return mode == 1;
  if (p.kh == 1 && p.kw == 1 && p.c_per_group() < 256) return false;
  return true;
}

void conv2d_forward_broadcast_f32(const ConvParams& p, const float* x, const float* w,
                                  const float* bias, float* y, int threads, bool turned) {
  CC_ASSERT(broadcast_conv_applies(p));
  if (p.n * p.k * p.out_h * p.out_w == 0) return;
  switch (active_isa()) {
    case Isa::Avx512: return avx512::broadcast_forward_f32(p, x, w, bias, y, threads, turned);
    case Isa::Avx2: return avx2::broadcast_forward_f32(p, x, w, bias, y, threads, turned);
    case Isa::Scalar: return bc_impl::broadcast_forward(p, x, w, bias, y, threads, turned);
  }
}

// One thread, thread CPU time, packed / broadcast: 1.3-1.7x on 3x3 stride-1 maps from 3 input
// channels up (book.conv2-6, (8,64,56,56) 3x3 1.19x); it lost where the channel-last copies of
// x and dY cost as much as the sums (1x1: 0.59-0.67x on ResNet-50's 56x56 rows), where a tile
// has too few input channels to hide the FMA latency (C = 1: 0.87x) and on strided large
// kernels over 3 channels (7x7/2 stem 0.80x, NIN's 11x11/4 0.48x). At stride 2 from 8 input
// channels per group it wins for grouped convs (the packed GEMM's panels have only K/groups
// rows) and 7x7 kernels (2 threads, medians of 11, packed / broadcast, bench/RESULTS.md
// "Session 10"): ResNeXt's 3x3/2 with 32 groups of 8 at 56x56 8.3-9.3 / 5.3-5.9 ms (AVX2
// 8.2-10.3 / 3.9-4.8), of 16 at 28x28 4.4-4.7 / 2.9 (AVX2 4.2-4.6 / 3.3), (8,64,56,56) 7x7/2
// 16.3-16.7 / 12.9-13.2 (AVX2 16.4 / 15.4); dense 3x3/2 even (3.0 / 3.0, 5.4 / 5.5). 4x4/2 and
// 5x5/2 won by 10-21% on AVX-512 (the convT.2x row's 4x4/2: 2.70 / 2.33; (8,64,56,56) -> 128
// 5x5/2 15.2 / 13.6, (16,32,32,32) -> 64 2.9 / 2.3) but not on AVX2 (the 5x5 -> 128: 15.0 /
// 16.7; 4x4/2 5.5-7.0 / 6.0-6.6), where they stay packed.
bool broadcast_weight_grad_wins(const ConvParams& p) {
  const int mode = broadcast_override();
  if (mode >= 0) return mode == 1;
  if (p.kh * p.kw < 9 || p.c_per_group() < 3) return false;
  if (p.stride_w == 1) return true;
  if (p.stride_w != 2 || p.c_per_group() < 8) return false;
  return p.groups > 1 || p.kh * p.kw >= 49 || (p.kh * p.kw >= 16 && active_isa() == Isa::Avx512);
}

void conv2d_backward_weight_broadcast_f32(const ConvParams& p, const float* dy, const float* x,
                                          float* dw, int threads) {
  switch (active_isa()) {
    case Isa::Avx512: return avx512::broadcast_backward_weight_f32(p, dy, x, dw, threads);
    case Isa::Avx2: return avx2::broadcast_backward_weight_f32(p, dy, x, dw, threads);
    case Isa::Scalar: return bc_impl::broadcast_backward_weight(p, dy, x, dw, threads);
  }
}

}  // namespace convcore::cpu
