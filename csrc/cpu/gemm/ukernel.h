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
// The default kernel for an ISA level: the first manifest line of that ISA, except on AMD Zen 4,
// whose AVX-512 default is the 8x32 tile (gemm_f32.cpp says why).
const GemmUkernel& gemm_ukernel_for(Isa isa);
// By name; nullptr when there is none.
const GemmUkernel* gemm_ukernel_named(const char* name);
bool isa_supported(Isa isa);
// The kernel of `isa` for a product with m rows: the default one unless another kernel of that
// ISA pads m to at least saving_percent fewer rows (m = 16 on AVX-512: 6x32 computes 18 rows,
// 14x32 28). Any kernel of one ISA gives the same results: each element is one FMA chain in k order.
const GemmUkernel& gemm_ukernel_for_rows(Isa isa, int64_t m, int saving_percent = 10);
// The kernel for an m x n product with few columns: any kernel of `isa` or, on AVX-512, of AVX2
// (same FMA chains, same results), whichever pads m x n to the smallest area; ties go to the
// manifest's order. n = 16 on AVX-512 runs 6x16 AVX2 rather than half-empty 32-wide tiles.
const GemmUkernel& gemm_ukernel_for_shape(Isa isa, int64_t m, int64_t n);

// Cache blocking of the packed driver for a kernel: K block, A block rows, B block columns.
struct GemmBlocking {
  int64_t kc, mc, nc;
};
GemmBlocking gemm_blocking_for(const GemmUkernel& uk);
// The K split every driver uses: ceil(k / kc) blocks of equal size (depends on k alone, so an
// element's sum order never depends on how m or n are partitioned).
int64_t gemm_k_block(int64_t k, const GemmBlocking& blk);

// The widest micro-panel any kernel packs (its mr or nr).
constexpr int kMaxPanelWidth = 64;

// dst[i * width + j] = src[j][i * step] for rows j < count and i < len (count <= width), zero for
// the columns past count: rows read at a stride of `step`, transposed into a micro-panel whose
// steps are `width` floats apart.
// The packers here and the implicit-GEMM weight gradient share it.
void gemm_transpose_rows_into_panel(const float* const* src, int count, int64_t len, int64_t step,
                                    int width, float* dst);

// Packs rows [0, mb) x columns [0, kb) of op(A) (a points at its (0, 0) element) into
// ceil(mb / mr) micro-panels of kb x mr floats each; rows past mb are zero. Drivers outside
// gemm_f32.cpp (the implicit-GEMM convolutions) share it.
void gemm_pack_a(bool trans_a, const float* a, int64_t lda, int64_t mb, int64_t kb, int mr,
                 float* dst);

// float32 GEMM with an explicit kernel and thread count (threads <= 1: the calling thread).
// The tests and bench use it to run every kernel; gemm<float> & co. call it with the defaults.
void gemm_f32_run(const GemmUkernel& uk, int threads, bool trans_a, bool trans_b, int64_t m,
                  int64_t n, int64_t k, float alpha, const float* a, int64_t lda, const float* b,
                  int64_t ldb, float beta, float* c, int64_t ldc, const float* bias, bool relu);

// C (m x m) = A A^T (A row-major, m x k), a Gram matrix: the triangle on and above the diagonal
// multiplied, the rest copied from it (gemm_f32.cpp says how and why the results equal
// gemm_f32_run's).
void gram_f32_run(const GemmUkernel& uk, int threads, int64_t m, int64_t k, const float* a,
                  int64_t lda, float* c, int64_t ldc);

}  // namespace convcore::cpu
