// f32 GEMM micro-kernel, 6 x 32 tile, AVX-512: 12 accumulators, still enough independent FMA
// chains for 2 ports x 4 cycles; kept as the comparison point for the 14-row tile (it wastes less
// on matrices with few rows, but loads 1 B vector per 6 FMAs instead of per 14).
#include "cpu/gemm/f32_gemm_avx512_tile.h"

namespace convcore::cpu {

void f32_gemm_6x32__avx512(int64_t kc, const float* a_panel, const float* b_panel, float* c,
                           int64_t ldc, int64_t rows, int64_t cols, const UkernelArgs& args) {
  avx512::f32_gemm_tile_x32<6>(kc, a_panel, b_panel, c, ldc, rows, cols, args);
}

}  // namespace convcore::cpu
