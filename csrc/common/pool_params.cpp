#include "common/pool_params.h"

#include "common/errors.h"
#include "common/shapes.h"

namespace convcore {

std::string PoolParams::describe() const {
  return detail::concat("PoolParams(n=", n, ", c=", c, ", h=", h, ", w=", w, ", kernel=(", kh,
                        ", ", kw, "), stride=(", stride_h, ", ", stride_w, "), pad=(", pad_h, ", ",
                        pad_w, "), dil=(", dil_h, ", ", dil_w, "), ceil_mode=", ceil_mode,
                        ", out=(", out_h, ", ", out_w, "))");
}

static void check_pool_input(const std::string& op, const Shape4& x_shape) {
  const std::string xs = shape_str({x_shape[0], x_shape[1], x_shape[2], x_shape[3]});
  const int64_t limit = int64_t(1) << 40;
  for (int64_t e : x_shape)
    CC_CHECK_VALUE(e >= 0 && e < limit, op, ": x.shape=", xs, " has a negative or absurdly large extent");
  CC_CHECK_VALUE(x_shape[1] > 0 && x_shape[2] > 0 && x_shape[3] > 0, op,
                 ": x must have non-empty channel and spatial extents (x.shape=", xs, ")");
  checked_numel({x_shape[0], x_shape[1], x_shape[2], x_shape[3]}, op + ": input");
}

PoolParams make_pool_params(const std::string& op, const Shape4& x_shape, const Pair& kernel,
                            const Pair& stride, const Pair& padding, const Pair& dilation,
                            bool ceil_mode) {
  check_pool_input(op, x_shape);
  const int64_t limit = int64_t(1) << 31;
  CC_CHECK_VALUE(kernel[0] > 0 && kernel[1] > 0 && kernel[0] < limit && kernel[1] < limit, op,
                 ": kernel_size must be positive, got (", kernel[0], ", ", kernel[1], ")");
  CC_CHECK_VALUE(stride[0] > 0 && stride[1] > 0 && stride[0] < limit && stride[1] < limit, op,
                 ": stride must be positive, got (", stride[0], ", ", stride[1], ")");
  CC_CHECK_VALUE(dilation[0] > 0 && dilation[1] > 0 && dilation[0] < limit && dilation[1] < limit,
                 op, ": dilation must be positive, got (", dilation[0], ", ", dilation[1], ")");
  CC_CHECK_VALUE(padding[0] >= 0 && padding[1] >= 0, op, ": padding must be non-negative, got (",
                 padding[0], ", ", padding[1], ")");
  PoolParams p;
  p.n = x_shape[0]; p.c = x_shape[1]; p.h = x_shape[2]; p.w = x_shape[3];
  p.kh = kernel[0]; p.kw = kernel[1];
  p.stride_h = stride[0]; p.stride_w = stride[1];
  p.pad_h = padding[0]; p.pad_w = padding[1];
  p.dil_h = dilation[0]; p.dil_w = dilation[1];
  p.ceil_mode = ceil_mode;
  // A window that lies wholly in the padding would have nothing to pool: PyTorch's rule.
  const int64_t span_h = p.dil_h * (p.kh - 1) + 1, span_w = p.dil_w * (p.kw - 1) + 1;
  CC_CHECK_VALUE(2 * p.pad_h <= span_h && 2 * p.pad_w <= span_w, op,
                 ": padding should be at most half of the effective kernel size, got padding=(",
                 p.pad_h, ", ", p.pad_w, ") with effective kernel (", span_h, ", ", span_w, ")");
  p.out_h = pool_out_extent(p.h, p.kh, p.stride_h, p.pad_h, p.pad_h, p.dil_h, ceil_mode);
  p.out_w = pool_out_extent(p.w, p.kw, p.stride_w, p.pad_w, p.pad_w, p.dil_w, ceil_mode);
  CC_CHECK_VALUE(p.out_h > 0 && p.out_w > 0, op, ": output would be empty (", p.out_h, " x ",
                 p.out_w, "): the padded input (", p.h + 2 * p.pad_h, " x ", p.w + 2 * p.pad_w,
                 ") is smaller than the dilated kernel (", span_h, " x ", span_w, ")");
  checked_numel({p.n, p.c, p.out_h, p.out_w}, op + ": output");
  return p;
}

PoolParams make_adaptive_pool_params(const std::string& op, const Shape4& x_shape,
                                     const Pair& output_size) {
  check_pool_input(op, x_shape);
  CC_CHECK_VALUE(output_size[0] > 0 && output_size[1] > 0 && output_size[0] < (int64_t(1) << 31) &&
                     output_size[1] < (int64_t(1) << 31),
                 op, ": output_size must be positive, got (", output_size[0], ", ", output_size[1], ")");
  PoolParams p;
  p.n = x_shape[0]; p.c = x_shape[1]; p.h = x_shape[2]; p.w = x_shape[3];
  p.out_h = output_size[0]; p.out_w = output_size[1];
  checked_numel({p.n, p.c, p.out_h, p.out_w}, op + ": output");
  return p;
}

}  // namespace convcore
