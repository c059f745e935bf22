// ConvParams: every extent of one convolution, validated once, in int64.
//
// Built only by make_conv_params / make_conv_transpose_params, which throw ValueError naming the
// argument and the shapes. Kernels (reference, CPU, CUDA) take `const ConvParams&` and trust it.
//
// A transposed convolution is described by the ConvParams of the forward convolution whose
// gradient it is: its output plays the role of the convolution's input (n, c, h, w) and its
// input the role of the convolution's output (n, k, out_h, out_w). So conv_transpose2d forward
// runs the conv backward-input kernel, and its backward runs conv forward / backward-weight.
#pragma once
#include <array>
#include <cstdint>
#include <string>

namespace convcore {

struct ConvParams {
  int64_t n = 0, c = 0, h = 0, w = 0;     // input  (N, C, H, W)
  int64_t k = 0, kh = 0, kw = 0;          // weight (K, C/groups, kh, kw)
  int64_t stride_h = 1, stride_w = 1;
  int64_t pad_top = 0, pad_bottom = 0, pad_left = 0, pad_right = 0;
  int64_t dil_h = 1, dil_w = 1;
  int64_t groups = 1;
  int64_t out_h = 0, out_w = 0;           // output (N, K, out_h, out_w)

  int64_t c_per_group() const { return c / groups; }
  int64_t k_per_group() const { return k / groups; }
  // depthwise: every group sees one input channel (K may be a multiple of C: channel multiplier)
  bool is_depthwise() const { return groups == c && c_per_group() == 1 && groups > 1; }
  int64_t channel_multiplier() const { return k / groups; }
  // The input plane is itself the im2col matrix. NB: out_h == h must be checked too: a transposed
  // conv with output_padding >= stride (allowed when below the dilation) describes a 1x1 conv whose
  // out_h is smaller than h.
  bool is_pointwise() const {
    return kh == 1 && kw == 1 && stride_h == 1 && stride_w == 1 && pad_top == 0 &&
           pad_bottom == 0 && pad_left == 0 && pad_right == 0 && out_h == h && out_w == w;
  }
  int64_t input_numel() const { return n * c * h * w; }
  int64_t weight_numel() const { return k * c_per_group() * kh * kw; }
  int64_t output_numel() const { return n * k * out_h * out_w; }
  // multiply-adds of the forward pass (the bench's FLOP count is twice this)
  double macs() const {
    return double(n) * double(k) * double(out_h) * double(out_w) * double(c_per_group()) *
           double(kh) * double(kw);
  }
  std::string describe() const;
};

using Shape4 = std::array<int64_t, 4>;
using Pair = std::array<int64_t, 2>;
using Pad4 = std::array<int64_t, 4>;  // top, bottom, left, right

// `op` prefixes every error message ("conv2d: ...").
ConvParams make_conv_params(const std::string& op, const Shape4& x_shape, const Shape4& w_shape,
                            const Pair& stride, const Pad4& padding, const Pair& dilation,
                            int64_t groups);

// With stride 1, the input gradient is itself a convolution: dX = conv(dY, W') over dY padded by
// (dilated kernel extent - 1 - pad) on each side, where W'[c][k] is W[k][c] turned by 180
// degrees (per group). That padding must not be negative: every pad <= dil * (kernel - 1); and
// the outputs must cover the input exactly (a transposed conv's params may carry extra rows from
// output_padding that no output reads: their gradient is zero, which this form does not write).
bool backward_input_is_a_forward(const ConvParams& p);
// The params of that forward: dY in, K/groups -> C/groups channels per group, the same kernel
// extent, dilation and groups, the padding above; p must pass backward_input_is_a_forward.
ConvParams backward_input_as_forward(const ConvParams& p);

// x: (N, C_in, H, W); w: (C_in, C_out/groups, kh, kw) as in PyTorch.
ConvParams make_conv_transpose_params(const std::string& op, const Shape4& x_shape,
                                      const Shape4& w_shape, const Pair& stride,
                                      const Pad4& padding, const Pair& output_padding,
                                      const Pair& dilation, int64_t groups);

}  // namespace convcore
