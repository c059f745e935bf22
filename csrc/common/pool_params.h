// PoolParams: every extent of one 2-D pooling, validated once, in int64 (see conv_params.h).
#pragma once
#include <cstdint>
#include <string>

#include "common/conv_params.h"

namespace convcore {

struct PoolParams {
  int64_t n = 0, c = 0, h = 0, w = 0;
  int64_t kh = 1, kw = 1;
  int64_t stride_h = 1, stride_w = 1;
  int64_t pad_h = 0, pad_w = 0;  // symmetric, as in PyTorch
  int64_t dil_h = 1, dil_w = 1;
  bool ceil_mode = false;
  int64_t out_h = 0, out_w = 0;
  int64_t planes() const { return n * c; }
  std::string describe() const;
};

PoolParams make_pool_params(const std::string& op, const Shape4& x_shape, const Pair& kernel,
                            const Pair& stride, const Pair& padding, const Pair& dilation,
                            bool ceil_mode);

// Adaptive pooling: output (out_h, out_w) given; window i spans
// [floor(i*in/out), ceil((i+1)*in/out)).
PoolParams make_adaptive_pool_params(const std::string& op, const Shape4& x_shape,
                                     const Pair& output_size);

inline int64_t adaptive_start(int64_t i, int64_t in, int64_t out) { return (i * in) / out; }
inline int64_t adaptive_end(int64_t i, int64_t in, int64_t out) {
  return ((i + 1) * in + out - 1) / out;
}

}  // namespace convcore
