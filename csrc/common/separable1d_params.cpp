// make_separable1d_params: see separable1d_params.h.
#include "common/separable1d_params.h"

#include "common/errors.h"
#include "common/shapes.h"

namespace convcore {

Separable1dParams make_separable1d_params(const std::string& op, const Shape4& x_shape,
                                          int64_t kh, int64_t kw, const Pair& stride,
                                          const Pad4& padding, const Pair& dilation) {
  // groups = C below; a channel-less x would otherwise be reported as a bad `groups`.
  CC_CHECK_VALUE(x_shape[1] > 0, op, ": x must have at least one channel, got x.shape=",
                 shape_str({x_shape[0], x_shape[1], x_shape[2], x_shape[3]}));
  const int64_t channels = x_shape[1];
  Separable1dParams sp;
  sp.col = make_conv_params(op + " (column pass)", x_shape, {channels, 1, kh, 1}, {stride[0], 1},
                            {padding[0], padding[1], 0, 0}, {dilation[0], 1}, channels);
  sp.row = make_conv_params(op + " (row pass)", {x_shape[0], channels, sp.col.out_h, x_shape[3]},
                            {channels, 1, 1, kw}, {1, stride[1]}, {0, 0, padding[2], padding[3]},
                            {1, dilation[1]}, channels);
  return sp;
}

}  // namespace convcore
