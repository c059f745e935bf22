#include "common/conv_params.h"

#include <vector>

#include "common/errors.h"
#include "common/shapes.h"

namespace convcore {

namespace {

std::string s4(const Shape4& s) { return shape_str({s[0], s[1], s[2], s[3]}); }

void check_hyper(const std::string& op, const Pair& stride, const Pad4& padding,
                 const Pair& dilation, int64_t groups) {
  CC_CHECK_VALUE(stride[0] > 0 && stride[1] > 0, op, ": stride must be positive, got (",
                 stride[0], ", ", stride[1], ")");
  CC_CHECK_VALUE(dilation[0] > 0 && dilation[1] > 0, op, ": dilation must be positive, got (",
                 dilation[0], ", ", dilation[1], ")");
  CC_CHECK_VALUE(padding[0] >= 0 && padding[1] >= 0 && padding[2] >= 0 && padding[3] >= 0, op,
                 ": padding must be non-negative, got (top, bottom, left, right) = (", padding[0],
                 ", ", padding[1], ", ", padding[2], ", ", padding[3], ")");
  CC_CHECK_VALUE(groups > 0, op, ": groups must be positive, got ", groups);
  // Keeps every derived product (padded extents, offsets) far from int64 overflow.
  const int64_t limit = int64_t(1) << 31;
  for (int64_t v : {stride[0], stride[1], dilation[0], dilation[1], padding[0], padding[1],
                    padding[2], padding[3], groups}) {
    CC_CHECK_VALUE(v < limit, op, ": stride/padding/dilation/groups must be below 2^31, got ", v);
  }
}

void check_extents(const std::string& op, const char* name, const Shape4& s) {
  const int64_t limit = int64_t(1) << 40;
  for (int64_t e : s) {
    CC_CHECK_VALUE(e >= 0 && e < limit, op, ": ", name, ".shape=", s4(s),
                   " has a negative or absurdly large extent");
  }
}

void check_sizes(const std::string& op, const ConvParams& p) {
  checked_numel({p.n, p.c, p.h, p.w}, op + ": input");
  checked_numel({p.k, p.c_per_group(), p.kh, p.kw}, op + ": weight");
  checked_numel({p.n, p.k, p.out_h, p.out_w}, op + ": output");
  // the im2col buffer of one image: (C/groups * kh * kw) x (out_h * out_w)
  checked_numel({p.c_per_group(), p.kh, p.kw, p.out_h, p.out_w}, op + ": im2col workspace");
}

}  // namespace

std::string ConvParams::describe() const {
  return detail::concat("ConvParams(n=", n, ", c=", c, ", h=", h, ", w=", w, ", k=", k,
                        ", kh=", kh, ", kw=", kw, ", stride=(", stride_h, ", ", stride_w,
                        "), pad=(", pad_top, ", ", pad_bottom, ", ", pad_left, ", ", pad_right,
                        "), dil=(", dil_h, ", ", dil_w, "), groups=", groups, ", out=(", out_h,
                        ", ", out_w, "))");
}

ConvParams make_conv_params(const std::string& op, const Shape4& x_shape, const Shape4& w_shape,
                            const Pair& stride, const Pad4& padding, const Pair& dilation,
                            int64_t groups) {
  check_hyper(op, stride, padding, dilation, groups);
  check_extents(op, "x", x_shape);
  check_extents(op, "w", w_shape);
  const std::string shapes = " (x.shape=" + s4(x_shape) + ", w.shape=" + s4(w_shape) + ")";
  ConvParams p;
  p.n = x_shape[0]; p.c = x_shape[1]; p.h = x_shape[2]; p.w = x_shape[3];
  p.k = w_shape[0]; p.kh = w_shape[2]; p.kw = w_shape[3];
  p.stride_h = stride[0]; p.stride_w = stride[1];
  p.pad_top = padding[0]; p.pad_bottom = padding[1]; p.pad_left = padding[2]; p.pad_right = padding[3];
  p.dil_h = dilation[0]; p.dil_w = dilation[1];
  p.groups = groups;

  CC_CHECK_VALUE(p.c > 0 && p.h > 0 && p.w > 0, op, ": x must have non-empty channel and spatial extents", shapes);
  CC_CHECK_VALUE(p.k > 0 && p.kh > 0 && p.kw > 0 && w_shape[1] > 0, op, ": w must have non-empty extents", shapes);
  CC_CHECK_VALUE(p.c % groups == 0, op, ": x has ", p.c, " channels, which groups=", groups,
                 " does not divide", shapes);
  CC_CHECK_VALUE(p.k % groups == 0, op, ": w has ", p.k, " output channels, which groups=", groups,
                 " does not divide", shapes);
  CC_CHECK_VALUE(w_shape[1] * groups == p.c, op, ": x has ", p.c, " channels but groups=", groups,
                 " x w.shape[1]=", w_shape[1], " needs ", w_shape[1] * groups, shapes);
  // NB: a padded input smaller than the dilated kernel would make the "+1" of the output formula
  // produce a phantom output whose window reads outside the input.
  const int64_t span_h = p.dil_h * (p.kh - 1) + 1, span_w = p.dil_w * (p.kw - 1) + 1;
  CC_CHECK_VALUE(p.h + p.pad_top + p.pad_bottom >= span_h && p.w + p.pad_left + p.pad_right >= span_w,
                 op, ": padded input (", p.h + p.pad_top + p.pad_bottom, " x ",
                 p.w + p.pad_left + p.pad_right, ") is smaller than the dilated kernel (", span_h,
                 " x ", span_w, ")", shapes);
  p.out_h = conv_out_extent(p.h, p.kh, p.stride_h, p.pad_top, p.pad_bottom, p.dil_h);
  p.out_w = conv_out_extent(p.w, p.kw, p.stride_w, p.pad_left, p.pad_right, p.dil_w);
  CC_ASSERT(p.out_h > 0 && p.out_w > 0);
  check_sizes(op, p);
  return p;
}

bool backward_input_is_a_forward(const ConvParams& p) {
  const int64_t eh = p.dil_h * (p.kh - 1), ew = p.dil_w * (p.kw - 1);
  return p.stride_h == 1 && p.stride_w == 1 && p.pad_top <= eh && p.pad_bottom <= eh &&
         p.pad_left <= ew && p.pad_right <= ew && p.out_h == p.h + p.pad_top + p.pad_bottom - eh &&
         p.out_w == p.w + p.pad_left + p.pad_right - ew;
}

ConvParams backward_input_as_forward(const ConvParams& p) {
  CC_ASSERT(backward_input_is_a_forward(p));
  const int64_t eh = p.dil_h * (p.kh - 1), ew = p.dil_w * (p.kw - 1);
  const ConvParams q = make_conv_params(
      "conv2d_backward", {p.n, p.k, p.out_h, p.out_w}, {p.c, p.k_per_group(), p.kh, p.kw}, {1, 1},
      {eh - p.pad_top, eh - p.pad_bottom, ew - p.pad_left, ew - p.pad_right}, {p.dil_h, p.dil_w},
      p.groups);
  CC_ASSERT(q.out_h == p.h && q.out_w == p.w);
  return q;
}

ConvParams make_conv_transpose_params(const std::string& op, const Shape4& x_shape,
                                      const Shape4& w_shape, const Pair& stride,
                                      const Pad4& padding, const Pair& output_padding,
                                      const Pair& dilation, int64_t groups) {
  check_hyper(op, stride, padding, dilation, groups);
  check_extents(op, "x", x_shape);
  check_extents(op, "w", w_shape);
  const std::string shapes = " (x.shape=" + s4(x_shape) + ", w.shape=" + s4(w_shape) + ")";
  const int64_t c_in = x_shape[1];
  CC_CHECK_VALUE(c_in > 0 && x_shape[2] > 0 && x_shape[3] > 0, op,
                 ": x must have non-empty channel and spatial extents", shapes);
  CC_CHECK_VALUE(w_shape[0] > 0 && w_shape[1] > 0 && w_shape[2] > 0 && w_shape[3] > 0, op,
                 ": w must have non-empty extents", shapes);
  CC_CHECK_VALUE(w_shape[0] == c_in, op, ": x has ", c_in, " channels but w.shape[0]=", w_shape[0],
                 " (w is (C_in, C_out/groups, kh, kw))", shapes);
  CC_CHECK_VALUE(c_in % groups == 0, op, ": x has ", c_in, " channels, which groups=", groups,
                 " does not divide", shapes);
  for (int axis = 0; axis < 2; ++axis) {
    CC_CHECK_VALUE(output_padding[axis] >= 0 &&
                       (output_padding[axis] < stride[axis] || output_padding[axis] < dilation[axis]),
                   op, ": output_padding must be non-negative and smaller than stride or dilation, got output_padding=(",
                   output_padding[0], ", ", output_padding[1], ") with stride=(", stride[0], ", ",
                   stride[1], ") and dilation=(", dilation[0], ", ", dilation[1], ")");
  }
  ConvParams p;
  p.n = x_shape[0];
  p.c = w_shape[1] * groups;
  p.k = c_in;
  p.kh = w_shape[2]; p.kw = w_shape[3];
  p.stride_h = stride[0]; p.stride_w = stride[1];
  p.pad_top = padding[0]; p.pad_bottom = padding[1]; p.pad_left = padding[2]; p.pad_right = padding[3];
  p.dil_h = dilation[0]; p.dil_w = dilation[1];
  p.groups = groups;
  p.h = conv_transpose_out_extent(x_shape[2], p.kh, p.stride_h, p.pad_top, p.pad_bottom, p.dil_h, output_padding[0]);
  p.w = conv_transpose_out_extent(x_shape[3], p.kw, p.stride_w, p.pad_left, p.pad_right, p.dil_w, output_padding[1]);
  CC_CHECK_VALUE(p.h > 0 && p.w > 0, op, ": the output would be empty (", p.h, " x ", p.w,
                 "): padding too large for this input and kernel", shapes);
  p.out_h = x_shape[2];
  p.out_w = x_shape[3];
  // The forward conv of the output must cover every input position of the transposed conv.
  CC_ASSERT(conv_out_extent(p.h, p.kh, p.stride_h, p.pad_top, p.pad_bottom, p.dil_h) >= p.out_h);
  CC_ASSERT(conv_out_extent(p.w, p.kw, p.stride_w, p.pad_left, p.pad_right, p.dil_w) >= p.out_w);
  check_sizes(op, p);
  return p;
}

}  // namespace convcore
