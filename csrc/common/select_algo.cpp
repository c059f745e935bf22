#include "common/select_algo.h"

#include "common/errors.h"

namespace convcore {

ConvAlgo select_conv_algo(const ConvParams& p) {
  if (p.is_depthwise()) return ConvAlgo::Depthwise;
  // im2col+GEMM wins once each output reuses enough inputs for the GEMM's blocking to pay off;
  // with tiny reductions (C/groups*kh*kw below 8) the im2col copy costs more than it saves.
  if (p.c_per_group() * p.kh * p.kw < 8) return ConvAlgo::Direct;
  return ConvAlgo::Im2col;
}

ConvAlgo parse_conv_algo(const std::string& name, const ConvParams& p, const std::string& op) {
  if (name == "auto") return select_conv_algo(p);
  if (name == "reference") return ConvAlgo::Reference;
  if (name == "direct") return ConvAlgo::Direct;
  if (name == "im2col") return ConvAlgo::Im2col;
  if (name == "depthwise") {
    CC_CHECK_VALUE(p.is_depthwise(), op,
                   ": algo='depthwise' needs groups == C (one input channel per group), got groups=",
                   p.groups, " with C=", p.c);
    return ConvAlgo::Depthwise;
  }
  throw ValueError(detail::concat(op, ": unknown algo '", name,
                                  "'; expected one of 'auto', 'direct', 'im2col', 'depthwise', 'reference'"));
}

const char* conv_algo_name(ConvAlgo algo) {
  switch (algo) {
    case ConvAlgo::Reference: return "reference";
    case ConvAlgo::Direct: return "direct";
    case ConvAlgo::Im2col: return "im2col";
    case ConvAlgo::Depthwise: return "depthwise";
  }
  return "?";
}

}  // namespace convcore
