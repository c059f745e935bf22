// f32 GEMM micro-kernel, 8 x 32 tile, AVX-512: 16 accumulators. For products whose row count is a
// multiple of 8 but not of 14 (convolutions with 16, 32, 64 or 128 output channels), where the
// 14-row tile pads 32 rows to 42 and the 6-row one to 36: it computes no padding rows and loads
// one B vector per 8 FMAs instead of per 6.
#include "cpu/gemm/f32_gemm_avx512_tile.h"

namespace convcore::cpu {

void f32_gemm_8x32__avx512(int64_t kc, const float* a_panel, const float* b_panel, float* c,
                           int64_t ldc, int64_t rows, int64_t cols, const UkernelArgs& args) {
  avx512::f32_gemm_tile_x32<8>(kc, a_panel, b_panel, c, ldc, rows, cols, args);
}

}  // namespace convcore::cpu
