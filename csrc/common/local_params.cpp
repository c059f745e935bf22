#include "common/local_params.h"

#include "common/errors.h"
#include "common/shapes.h"

namespace convcore {

LocalParams make_local_params(const std::string& op, const Shape4& x_shape, const Shape6& w_shape,
                              const Pair& stride, const Pad4& padding, const Pair& dilation,
                              bool unshared) {
  const std::string w_str =
      shape_str({w_shape[0], w_shape[1], w_shape[2], w_shape[3], w_shape[4], w_shape[5]});
  const char* layout = unshared ? "(out_h, out_w, K, C, kh, kw)" : "(t_h, t_w, K, C, kh, kw)";
  for (int64_t e : w_shape) {
    CC_CHECK_VALUE(e > 0 && e < (int64_t(1) << 40), op, ": w must be ", layout,
                   " with positive extents, got w.shape=", w_str);
  }
  CC_CHECK_VALUE(w_shape[3] == x_shape[1], op, ": x has ", x_shape[1], " channels but w.shape[3]=",
                 w_shape[3], " (w is ", layout, "; x.shape=",
                 shape_str({x_shape[0], x_shape[1], x_shape[2], x_shape[3]}), ", w.shape=", w_str, ")");
  LocalParams lp;
  lp.conv = make_conv_params(op, x_shape, {w_shape[2], w_shape[3], w_shape[4], w_shape[5]}, stride,
                             padding, dilation, 1);
  lp.tile_h = w_shape[0];
  lp.tile_w = w_shape[1];
  if (unshared) {
    CC_CHECK_VALUE(lp.tile_h == lp.conv.out_h && lp.tile_w == lp.conv.out_w, op,
                   ": w must hold one kernel per output position: w.shape[:2] must be (out_h, out_w) = (",
                   lp.conv.out_h, ", ", lp.conv.out_w, "), got w.shape=", w_str);
  }
  checked_numel({lp.tile_h, lp.tile_w, lp.conv.k, lp.conv.c, lp.conv.kh, lp.conv.kw}, op + ": w");
  // the workspace holds at least one image's rows: out_h*out_w x (C*kh*kw) and x K
  checked_numel({lp.conv.out_h, lp.conv.out_w, lp.ckk()}, op + ": workspace");
  return lp;
}

}  // namespace convcore
