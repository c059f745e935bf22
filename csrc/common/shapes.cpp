#include "common/shapes.h"

#include <limits>

#include "common/errors.h"

namespace convcore {

namespace {
// floor division for a possibly negative numerator and a positive denominator
int64_t floor_div(int64_t a, int64_t b) {
  int64_t q = a / b;
  if ((a % b != 0) && (a < 0)) --q;
  return q;
}
}  // namespace

int64_t conv_out_extent(int64_t in, int64_t kernel, int64_t stride, int64_t pad_before,
                        int64_t pad_after, int64_t dilation) {
  // Bound to Python: a zero stride would otherwise be an integer division by zero (SIGFPE).
  CC_CHECK_VALUE(stride > 0, "conv_out_extent: stride must be positive, got ", stride);
  const int64_t span = dilation * (kernel - 1) + 1;
  return floor_div(in + pad_before + pad_after - span, stride) + 1;
}

int64_t conv_transpose_out_extent(int64_t in, int64_t kernel, int64_t stride, int64_t pad_before,
                                  int64_t pad_after, int64_t dilation, int64_t output_padding) {
  return (in - 1) * stride - pad_before - pad_after + dilation * (kernel - 1) + output_padding + 1;
}

int64_t pool_out_extent(int64_t in, int64_t kernel, int64_t stride, int64_t pad_before,
                        int64_t pad_after, int64_t dilation, bool ceil_mode) {
  CC_CHECK_VALUE(stride > 0, "pool_out_extent: stride must be positive, got ", stride);
  const int64_t span = dilation * (kernel - 1) + 1;
  const int64_t room = in + pad_before + pad_after - span;
  int64_t out = (ceil_mode ? floor_div(room + stride - 1, stride) : floor_div(room, stride)) + 1;
  // NB: with ceil_mode the extra window may start in the trailing padding; drop it then.
  if (ceil_mode && out > 0 && (out - 1) * stride >= in + pad_before) --out;
  return out;
}

int64_t checked_numel(const std::vector<int64_t>& extents, const std::string& what) {
  // The byte count of a float64 array must fit in int64 too (NumPy refuses larger arrays with a
  // message that names neither the op nor the shape): at most 2^60 - 1 elements.
  constexpr int64_t max_elements = std::numeric_limits<int64_t>::max() / 8;
  int64_t total = 1;
  for (int64_t e : extents) {
    CC_CHECK_VALUE(e >= 0, what, ": negative extent in shape ", shape_str(extents));
    if (e != 0 && total > max_elements / e) {
      throw ValueError(detail::concat(what, ": shape ", shape_str(extents),
                                      " has more elements than fit in int64 (as bytes: at most "
                                      "2^60 - 1 elements)"));
    }
    total *= e;
  }
  return total;
}

std::string shape_str(const std::vector<int64_t>& extents) {
  std::string s = "(";
  for (size_t i = 0; i < extents.size(); ++i) {
    if (i) s += ", ";
    s += std::to_string(extents[i]);
  }
  if (extents.size() == 1) s += ",";
  return s + ")";
}

}  // namespace convcore
