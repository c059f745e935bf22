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

// The first output along one axis whose window holds no input element, or -1. Only dilation
// can make one (without it, padding <= kernel/2 and the ceil_mode rule keep every window
// overlapping the input), so the loop runs only then.
static int64_t first_empty_window(int64_t out, int64_t in, int64_t kernel, int64_t stride,
                                  int64_t pad, int64_t dilation) {
  if (dilation == 1) return -1;
  for (int64_t o = 0; o < out; ++o) {
    const int64_t start = o * stride - pad;
    // first tap at or after 0: k = ceil(-start / dilation) when start < 0
    const int64_t k = start >= 0 ? 0 : (-start + dilation - 1) / dilation;
    if (k >= kernel || start + k * dilation >= in) return o;
  }
  return -1;
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
  // With dilation a window can step over the whole input and see only padding (PyTorch then
  // returns -inf with an index outside the plane); we refuse such a configuration instead.
  const int64_t empty_row = first_empty_window(p.out_h, p.h, p.kh, p.stride_h, p.pad_h, p.dil_h);
  const int64_t empty_col = first_empty_window(p.out_w, p.w, p.kw, p.stride_w, p.pad_w, p.dil_w);
  CC_CHECK_VALUE(empty_row < 0 && empty_col < 0, op, ": with dilation=(", p.dil_h, ", ", p.dil_w,
                 ") and padding=(", p.pad_h, ", ", p.pad_w, ") on x.shape=",
                 shape_str({p.n, p.c, p.h, p.w}), " output ", empty_row >= 0 ? "row " : "column ",
                 empty_row >= 0 ? empty_row : empty_col,
                 " would pool over padding only; use less padding or dilation");
  return p;
}

PoolParams make_avg_pool_params(const std::string& op, const Shape4& x_shape, const Pair& kernel,
                                const Pair& stride, const Pair& padding, bool ceil_mode,
                                bool count_include_pad, bool has_divisor_override,
                                int64_t divisor_override) {
  CC_CHECK_VALUE(!has_divisor_override || (divisor_override > 0 && divisor_override < (int64_t(1) << 31)),
                 op, ": divisor_override must be a positive int, got ", divisor_override);
  PoolParams p = make_pool_params(op, x_shape, kernel, stride, padding, {1, 1}, ceil_mode);
  p.count_include_pad = count_include_pad;
  p.divisor_override = has_divisor_override ? divisor_override : 0;
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
