// LocalParams: a locally connected or tiled convolution, validated once.
//
// Both ops hold one kernel per "tile class" of output positions: output (oy, ox) uses kernel
// (oy % tile_h, ox % tile_w) of w (tile_h, tile_w, K, C, kh, kw), with a bias (tile_h, tile_w, K)
// beside it. A locally connected layer (unshared convolution) is the tiled one with the tile as
// large as the output (every position its own kernel); tile 1x1 is an ordinary conv2d. The
// window geometry (stride, padding, dilation, out_h/out_w) is the ConvParams of the conv2d with a
// (K, C, kh, kw) kernel, so every extent check is make_conv_params's.
#pragma once
#include <array>
#include <cstdint>
#include <string>

#include "common/conv_params.h"

namespace convcore {

using Shape6 = std::array<int64_t, 6>;

struct LocalParams {
  ConvParams conv;              // groups == 1; conv.k, conv.kh, conv.kw from w
  int64_t tile_h = 1, tile_w = 1;

  int64_t tiles() const { return tile_h * tile_w; }
  int64_t tile_of(int64_t oy, int64_t ox) const { return (oy % tile_h) * tile_w + ox % tile_w; }
  // one kernel: K x (C*kh*kw) elements
  int64_t ckk() const { return conv.c * conv.kh * conv.kw; }
  int64_t kernel_numel() const { return conv.k * ckk(); }
  int64_t weight_numel() const { return tiles() * kernel_numel(); }
  int64_t bias_numel() const { return tiles() * conv.k; }
};

// unshared == true: locally_connected2d, which requires (tile_h, tile_w) == (out_h, out_w).
// `op` prefixes every error message.
LocalParams make_local_params(const std::string& op, const Shape4& x_shape, const Shape6& w_shape,
                              const Pair& stride, const Pad4& padding, const Pair& dilation,
                              bool unshared);

}  // namespace convcore
