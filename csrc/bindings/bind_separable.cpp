// Bindings of the separable 1-D convolution (cpu/separable1d.h): a depthwise kernel given as a
// column factor w_col (C, kh) and a row factor w_row (C, kw). Shapes are validated (through
// make_conv_params, once per pass) before any kernel runs; kernels run without the GIL.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <optional>

#include "bindings/array.h"
#include "bindings/interrupt.h"
#include "common/errors.h"
#include "common/shapes.h"
#include "cpu/separable1d.h"

namespace convcore::bind {
namespace {

using OptArray = std::optional<py::array>;

struct SeparableArgs {
  DType dtype;
  cpu::Separable1dParams sp;
};

// Checks x, w_col, w_row and builds the params; the factor checks come first so a wrong factor
// is reported under its own name rather than as a malformed (C, 1, kh, 1) kernel.
SeparableArgs check_separable(const std::string& op, const py::array& x, const py::array& w_col,
                              const py::array& w_row, const Pair& stride, const Pad4& padding,
                              const Pair& dilation) {
  DType dtype = check_float_array(x, op, "x", 4);
  check_float_array(w_col, op, "w_col", 2);
  check_same_dtype(w_col, dtype, op, "w_col", "x");
  check_float_array(w_row, op, "w_row", 2);
  check_same_dtype(w_row, dtype, op, "w_row", "x");
  const int64_t channels = x.shape(1);
  CC_CHECK_VALUE(w_col.shape(0) == channels && w_col.shape(1) > 0, op,
                 ": w_col must have shape (C, kh) with C=", channels, " (from x.shape=",
                 shape_str(x), ") and kh >= 1, got ", shape_str(w_col));
  CC_CHECK_VALUE(w_row.shape(0) == channels && w_row.shape(1) > 0, op,
                 ": w_row must have shape (C, kw) with C=", channels, " (from x.shape=",
                 shape_str(x), ") and kw >= 1, got ", shape_str(w_row));
  return {dtype, cpu::make_separable1d_params(op, shape4(x), w_col.shape(1), w_row.shape(1),
                                              stride, padding, dilation)};
}

py::array sepconv2d_1d_forward(const py::array& x, const py::array& w_col, const py::array& w_row,
                               const OptArray& bias, Pair stride, Pad4 padding, Pair dilation) {
  const std::string op = "sepconv2d_1d";
  SeparableArgs a = check_separable(op, x, w_col, w_row, stride, padding, dilation);
  const int64_t channels = a.sp.channels();
  if (bias) {
    check_same_dtype(*bias, a.dtype, op, "bias", "x");
    CC_CHECK_VALUE(bias->ndim() == 1 && bias->shape(0) == channels, op,
                   ": bias must have shape (", channels, ",), got ", shape_str(*bias));
  }
  py::array y = new_array(a.dtype, {a.sp.n(), channels, a.sp.out_h(), a.sp.out_w()});
  with_dtype(a.dtype, [&](auto tag) {
    using T = decltype(tag);
    const T* b = bias ? cdata<T>(*bias) : nullptr;
    run_interruptible(conv_work(a.sp.col) + conv_work(a.sp.row), [&] {
      cpu::separable1d_forward<T>(a.sp, cdata<T>(x), cdata<T>(w_col), cdata<T>(w_row), b,
                                  mdata<T>(y));
    });
  });
  return y;
}

py::tuple sepconv2d_1d_backward(const py::array& dy, const py::array& x, const py::array& w_col,
                                const py::array& w_row, Pair stride, Pad4 padding, Pair dilation,
                                bool need_x, bool need_w_col, bool need_w_row, bool need_b) {
  const std::string op = "sepconv2d_1d_backward";
  SeparableArgs a = check_separable(op, x, w_col, w_row, stride, padding, dilation);
  check_float_array(dy, op, "dy", 4);
  check_same_dtype(dy, a.dtype, op, "dy", "x");
  const std::vector<int64_t> out_shape{a.sp.n(), a.sp.channels(), a.sp.out_h(), a.sp.out_w()};
  CC_CHECK_VALUE(shape_of(dy) == out_shape, op, ": dy has shape ", shape_str(dy),
                 " but the forward output has shape ", convcore::shape_str(out_shape));
  py::object dx = py::none(), dw_col = py::none(), dw_row = py::none(), db = py::none();
  with_dtype(a.dtype, [&](auto tag) {
    using T = decltype(tag);
    py::array dx_arr, dwc_arr, dwr_arr, db_arr;
    if (need_x) dx_arr = new_array(a.dtype, shape_of(x));
    if (need_w_col) dwc_arr = new_array(a.dtype, shape_of(w_col));
    if (need_w_row) dwr_arr = new_array(a.dtype, shape_of(w_row));
    if (need_b) db_arr = new_array(a.dtype, {a.sp.channels()});
    run_interruptible(conv_work(a.sp.col) + conv_work(a.sp.row), [&] {
      cpu::separable1d_backward<T>(a.sp, cdata<T>(dy), cdata<T>(x), cdata<T>(w_col),
                                   cdata<T>(w_row), need_x ? mdata<T>(dx_arr) : nullptr,
                                   need_w_col ? mdata<T>(dwc_arr) : nullptr,
                                   need_w_row ? mdata<T>(dwr_arr) : nullptr,
                                   need_b ? mdata<T>(db_arr) : nullptr);
    });
    if (need_x) dx = dx_arr;
    if (need_w_col) dw_col = dwc_arr;
    if (need_w_row) dw_row = dwr_arr;
    if (need_b) db = db_arr;
  });
  return py::make_tuple(dx, dw_col, dw_row, db);
}

void register_separable(py::module_& m) {
  using namespace pybind11::literals;
  m.def("sepconv2d_1d_forward", &sepconv2d_1d_forward, "x"_a, "w_col"_a, "w_row"_a, "bias"_a,
        "stride"_a, "padding"_a, "dilation"_a);
  m.def("sepconv2d_1d_backward", &sepconv2d_1d_backward, "dy"_a, "x"_a, "w_col"_a, "w_row"_a,
        "stride"_a, "padding"_a, "dilation"_a, "need_x"_a, "need_w_col"_a, "need_w_row"_a,
        "need_b"_a);
}

}  // namespace

CONVCORE_REGISTER_BINDINGS(register_separable);

}  // namespace convcore::bind
