// f32 GEMM micro-kernel, 14 x 32 tile, AVX-512: the default on AVX-512 CPUs. 28 zmm accumulators
// + 2 for B = 30 of 32 registers (see f32_gemm_avx512_tile.h for the budget).
#include "cpu/gemm/f32_gemm_avx512_tile.h"

namespace convcore::cpu {

void f32_gemm_14x32__avx512(int64_t kc, const float* a_panel, const float* b_panel, float* c,
                            int64_t ldc, int64_t rows, int64_t cols, const UkernelArgs& args) {
  avx512::f32_gemm_tile_x32<14>(kc, a_panel, b_panel, c, ldc, rows, cols, args);
}

}  // namespace convcore::cpu
