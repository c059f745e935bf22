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
};

ConvAlgo select_conv_algo(const ConvParams& p);
// "auto" -> select_conv_algo; unknown names and algorithms that cannot run p -> ValueError.
ConvAlgo parse_conv_algo(const std::string& name, const ConvParams& p, const std::string& op);
const char* conv_algo_name(ConvAlgo algo);

}  // namespace convcore
