// Which convolution algorithm runs a call: one pure function of the params, bound to Python as
// convcore._cpu._select_algo so tests and the benchmark can see the choice.
#pragma once
#include <string>

#include "common/conv_params.h"

namespace convcore {

enum class ConvAlgo {
  Reference,  // csrc/ref: simplest loops, double accumulator; the oracle
  Direct,     // csrc/cpu/conv_direct.cpp: no workspace
  Im2col,     // csrc/cpu/conv_im2col.cpp: im2col + GEMM (1x1 convs skip the im2col)
  Depthwise,  // csrc/cpu/depthwise.cpp: groups == C, one input channel per group
  WinogradF2, // csrc/cpu/conv_winograd.cpp: F(2x2,3x3), 3x3 stride-1 forward (backward: im2col)
  WinogradF4, // csrc/cpu/conv_winograd.cpp: F(4x4,3x3), same domain, larger tile
};

// elem_bytes: 4 (float32) or 8 (float64); threads: the thread count the kernels will use.
// Picks the fastest algorithm whose workspace fits within max_workspace_bytes().
// weights_prepared: the call brings frozen weights whose prepared forms are kept across calls
// (cpu/prepared_weights.h), so work done on the weights alone is not paid per call.
ConvAlgo select_conv_algo(const ConvParams& p, int64_t elem_bytes = 4, int threads = 1,
                          bool weights_prepared = false);
// What "auto" runs for the input gradient: select_conv_algo's choice, except that Winograd (whose
// input gradient is a Winograd forward over dY, C and K swapped) stays only where that forward
// would take Winograd itself, with the tile it would take; else im2col.
ConvAlgo select_conv_backward_input_algo(const ConvParams& p, int64_t elem_bytes = 4, int threads = 1,
                                         bool weights_prepared = false);
// "auto" -> select_conv_algo; unknown names and algorithms that cannot run p -> ValueError;
// an explicit algorithm whose workspace exceeds the limit -> MemoryError.
ConvAlgo parse_conv_algo(const std::string& name, const ConvParams& p, const std::string& op,
                         int64_t elem_bytes = 4, int threads = 1, bool weights_prepared = false);

// Bytes of temporary memory an algorithm allocates for one call (forward or either backward,
// whichever needs most).
int64_t conv_workspace_bytes(ConvAlgo algo, const ConvParams& p, int64_t elem_bytes, int threads);
// The limit on one call's temporaries: CONVCORE_MAX_WORKSPACE (bytes, or with a K/M/G suffix),
// read once; unlimited when unset. set_max_workspace_bytes overrides it (< 0: unlimited).
int64_t max_workspace_bytes();
void set_max_workspace_bytes(int64_t bytes);
const char* conv_algo_name(ConvAlgo algo);
// The Winograd tile algo="winograd" runs for this element size.
ConvAlgo winograd_default_tile(int64_t elem_bytes);
// Shapes a Winograd algorithm computes: stride 1, dilation 1, groups 1, and a 3x3 kernel, or
// (float32 F(2x2,3x3) only, cpu/conv_winograd_f32_impl.inc) any kernel, as a sum of 3x3
// sub-kernels.
bool winograd_supports(ConvAlgo algo, const ConvParams& p, int64_t elem_bytes);

}  // namespace convcore
