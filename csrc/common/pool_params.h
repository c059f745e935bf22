// PoolParams: every extent of one 2-D pooling, validated once, in int64 (see conv_params.h).
#pragma once
#include <algorithm>
#include <cstdint>
#include <string>

#include "common/conv_params.h"

// The window helpers below are shared with the CUDA kernels (csrc/cuda/pool.cu).
#if defined(__CUDACC__)
#define CC_HOST_DEVICE __host__ __device__
#else
#define CC_HOST_DEVICE
#endif

namespace convcore {

struct PoolParams {
  int64_t n = 0, c = 0, h = 0, w = 0;
  int64_t kh = 1, kw = 1;
  int64_t stride_h = 1, stride_w = 1;
  int64_t pad_h = 0, pad_w = 0;  // symmetric, as in PyTorch
  int64_t dil_h = 1, dil_w = 1;
  bool ceil_mode = false;
  // Average pooling only: what the window sum is divided by (see avg_pool_divisor).
  bool count_include_pad = true;
  int64_t divisor_override = 0;  // 0: none
  int64_t out_h = 0, out_w = 0;
  int64_t planes() const { return n * c; }
  std::string describe() const;
};

PoolParams make_pool_params(const std::string& op, const Shape4& x_shape, const Pair& kernel,
                            const Pair& stride, const Pair& padding, const Pair& dilation,
                            bool ceil_mode);

// Average pooling: the same checks (dilation 1), plus divisor_override, which must be positive
// when given (0 here means "not given"; the bindings map None to 0 and reject an explicit 0).
PoolParams make_avg_pool_params(const std::string& op, const Shape4& x_shape, const Pair& kernel,
                                const Pair& stride, const Pair& padding, bool ceil_mode,
                                bool count_include_pad, bool has_divisor_override,
                                int64_t divisor_override);

// Adaptive pooling: output (out_h, out_w) given; window i spans
// [floor(i*in/out), ceil((i+1)*in/out)).
PoolParams make_adaptive_pool_params(const std::string& op, const Shape4& x_shape,
                                     const Pair& output_size);

CC_HOST_DEVICE inline int64_t adaptive_start(int64_t i, int64_t in, int64_t out) { return (i * in) / out; }
CC_HOST_DEVICE inline int64_t adaptive_end(int64_t i, int64_t in, int64_t out) {
  return ((i + 1) * in + out - 1) / out;
}

// One average-pooling window along one axis, PyTorch's rule: the window [o*stride - pad, +kernel)
// is first clipped to the padded input (ceil_mode can run it past the padded edge), which gives
// padded_len, the count_include_pad extent; then clipped to the input, which gives [begin, end).
struct AvgSpan {
  int64_t begin, end, padded_len;
};
CC_HOST_DEVICE inline AvgSpan avg_pool_span(int64_t o, int64_t stride, int64_t pad, int64_t kernel,
                                            int64_t in) {
  const int64_t start = o * stride - pad;
  const int64_t stop = start + kernel < in + pad ? start + kernel : in + pad;
  return {start > 0 ? start : 0, stop < in ? stop : in, stop - start};
}
CC_HOST_DEVICE inline int64_t avg_pool_divisor(const PoolParams& p, const AvgSpan& rows, const AvgSpan& cols) {
  if (p.divisor_override != 0) return p.divisor_override;
  if (p.count_include_pad) return rows.padded_len * cols.padded_len;
  return (rows.end - rows.begin) * (cols.end - cols.begin);
}

}  // namespace convcore
