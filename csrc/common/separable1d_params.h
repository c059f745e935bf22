// Separable1dParams: the two passes of a separable 1-D convolution (see cpu/separable1d.h), each
// described by the ConvParams of the depthwise conv it is: the column pass by kernel (C, 1, kh, 1),
// the row pass by kernel (C, 1, 1, kw) over the column pass's output. Built only by
// make_separable1d_params (through make_conv_params, so errors read as conv2d's); shared by the
// CPU and CUDA backends.
#pragma once
#include <cstdint>
#include <string>

#include "common/conv_params.h"

namespace convcore {

struct Separable1dParams {
  ConvParams col;  // x (N, C, H, W) -> z (N, C, out_h, W), kernel (C, 1, kh, 1)
  ConvParams row;  // z (N, C, out_h, W) -> y (N, C, out_h, out_w), kernel (C, 1, 1, kw)
  int64_t n() const { return col.n; }
  int64_t channels() const { return col.c; }
  int64_t out_h() const { return row.out_h; }
  int64_t out_w() const { return row.out_w; }
};

// Throws ValueError (prefixed by `op`) for anything make_conv_params rejects.
Separable1dParams make_separable1d_params(const std::string& op, const Shape4& x_shape,
                                          int64_t kh, int64_t kw, const Pair& stride,
                                          const Pad4& padding, const Pair& dilation);

}  // namespace convcore
