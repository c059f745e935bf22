// Internal interface between the float32 GEMM driver (gemm_f32.cpp) and its micro-kernels.
//
// A micro-kernel computes one mr x nr tile of C from packed panels:
//   a_panel: kc steps of `MR` floats (column p of the MR-row sliver of op(A)), rows past mr zero
//   b_panel: kc steps of `NR` floats (row p of the NR-column sliver of op(B)), columns past nr zero
// both 64-byte aligned, and writes only the top-left rows x cols of the tile:
//   C = alpha * acc + beta * C (+ bias[r]) (ReLU)
// C is not read when beta == 0. bias/relu are set only on the call that finishes the K sum.
// Full and partial tiles go through the same vector arithmetic, so an element's value never
// depends on where a tile boundary fell (that is what makes results thread-count independent).
#pragma once
#include <cstdint>

#include "cpu/cpu_features.h"

namespace convcore::cpu {

struct UkernelArgs {
  float alpha;
  float beta;
  const float* bias;  // bias for the tile's first row, or nullptr
  bool relu;
};

using GemmUkernelFn = void (*)(int64_t kc, const float* a_panel, const float* b_panel, float* c,
                               int64_t ldc, int64_t rows, int64_t cols, const UkernelArgs& args);

struct GemmUkernel {
  const char* name;
  Isa isa;
  int mr, nr;
  GemmUkernelFn fn;
};

#define CONVCORE_GEMM_UKERNEL(isa, name, mr, nr)                                          \
  void name(int64_t kc, const float* a_panel, const float* b_panel, float* c, int64_t ldc, \
            int64_t rows, int64_t cols, const UkernelArgs& args);
#include "cpu/gemm/kernels.inc"
#undef CONVCORE_GEMM_UKERNEL

// Every kernel of the manifest, in manifest order.
const GemmUkernel* gemm_ukernels(int* count);
// The default kernel for an ISA level (the first manifest line of that ISA).
const GemmUkernel& gemm_ukernel_for(Isa isa);
// By name; nullptr when there is none.
const GemmUkernel* gemm_ukernel_named(const char* name);
bool isa_supported(Isa isa);

// float32 GEMM with an explicit kernel and thread count (threads <= 1: the calling thread).
// The tests and bench use it to run every kernel; gemm<float> & co. call it with the defaults.
void gemm_f32_run(const GemmUkernel& uk, int threads, bool trans_a, bool trans_b, int64_t m,
                  int64_t n, int64_t k, float alpha, const float* a, int64_t lda, const float* b,
                  int64_t ldb, float beta, float* c, int64_t ldc, const float* bias, bool relu);

}  // namespace convcore::cpu
