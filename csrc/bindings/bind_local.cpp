// Bindings of the locally connected / tiled convolution family (common/local_params.h):
// locally_connected2d (one kernel per output position) and tiled_conv2d (tile_h x tile_w kernels
// cycled over the output) share every entry point; `unshared` picks the validation.
// algo: "auto" runs cpu/locally_connected.cpp, "reference" the oracle in ref/.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <optional>

#include "bindings/array.h"
#include "common/errors.h"
#include "common/local_params.h"
#include "common/shapes.h"
#include "cpu/locally_connected.h"
#include "ref/local.h"

namespace convcore::bind {
namespace {

using OptArray = std::optional<py::array>;

struct LocalArgs {
  DType dtype;
  LocalParams lp;
  bool reference;
};

const char* op_name(bool unshared, bool backward) {
  if (unshared) return backward ? "locally_connected2d_backward" : "locally_connected2d";
  return backward ? "tiled_conv2d_backward" : "tiled_conv2d";
}

LocalArgs check_local(const std::string& op, const py::array& x, const py::array& w, Pair stride,
                      Pad4 padding, Pair dilation, bool unshared, const std::string& algo) {
  DType dtype = check_float_array(x, op, "x", 4);
  check_float_array(w, op, "w", 6);
  check_same_dtype(w, dtype, op, "w", "x");
  CC_CHECK_VALUE(algo == "auto" || algo == "reference", op,
                 ": unknown algo '", algo, "'; expected 'auto' or 'reference'");
  const Shape6 w_shape{w.shape(0), w.shape(1), w.shape(2), w.shape(3), w.shape(4), w.shape(5)};
  return {dtype, make_local_params(op, shape4(x), w_shape, stride, padding, dilation, unshared),
          algo == "reference"};
}

py::array local_forward(const py::array& x, const py::array& w, const OptArray& bias, Pair stride,
                        Pad4 padding, Pair dilation, bool unshared, const std::string& algo) {
  const std::string op = op_name(unshared, false);
  LocalArgs a = check_local(op, x, w, stride, padding, dilation, unshared, algo);
  const ConvParams& p = a.lp.conv;
  if (bias) {
    check_same_dtype(*bias, a.dtype, op, "bias", "x");
    const std::vector<int64_t> want{a.lp.tile_h, a.lp.tile_w, p.k};
    CC_CHECK_VALUE(shape_of(*bias) == want, op, ": bias must have shape w.shape[:3] = ",
                   convcore::shape_str(want), " (one per kernel), got ", shape_str(*bias));
  }
  py::array y = new_array(a.dtype, {p.n, p.k, p.out_h, p.out_w});
  with_dtype(a.dtype, [&](auto tag) {
    using T = decltype(tag);
    const T* b = bias ? cdata<T>(*bias) : nullptr;
    py::gil_scoped_release nogil;
    if (a.reference) ref::local_forward<T>(a.lp, cdata<T>(x), cdata<T>(w), b, mdata<T>(y));
    else cpu::local_forward<T>(a.lp, cdata<T>(x), cdata<T>(w), b, mdata<T>(y));
  });
  return y;
}

py::tuple local_backward(const py::array& dy, const py::array& x, const py::array& w, Pair stride,
                         Pad4 padding, Pair dilation, bool unshared, bool need_x, bool need_w,
                         bool need_b, const std::string& algo) {
  const std::string op = op_name(unshared, true);
  LocalArgs a = check_local(op, x, w, stride, padding, dilation, unshared, algo);
  const ConvParams& p = a.lp.conv;
  check_float_array(dy, op, "dy", 4);
  check_same_dtype(dy, a.dtype, op, "dy", "x");
  const std::vector<int64_t> out_shape{p.n, p.k, p.out_h, p.out_w};
  CC_CHECK_VALUE(shape_of(dy) == out_shape, op, ": dy has shape ", shape_str(dy),
                 " but the forward output has shape ", convcore::shape_str(out_shape));
  py::object dx = py::none(), dw = py::none(), db = py::none();
  with_dtype(a.dtype, [&](auto tag) {
    using T = decltype(tag);
    py::array dx_arr, dw_arr, db_arr;
    if (need_x) dx_arr = new_array(a.dtype, shape_of(x));
    if (need_w) dw_arr = new_array(a.dtype, shape_of(w));
    if (need_b) db_arr = new_array(a.dtype, {a.lp.tile_h, a.lp.tile_w, p.k});
    {
      py::gil_scoped_release nogil;
      const T* g = cdata<T>(dy);
      if (a.reference) {
        if (need_x) ref::local_backward_input<T>(a.lp, g, cdata<T>(w), mdata<T>(dx_arr));
        if (need_w) ref::local_backward_weight<T>(a.lp, g, cdata<T>(x), mdata<T>(dw_arr));
        if (need_b) ref::local_backward_bias<T>(a.lp, g, mdata<T>(db_arr));
      } else {
        if (need_x) cpu::local_backward_input<T>(a.lp, g, cdata<T>(w), mdata<T>(dx_arr));
        if (need_w) cpu::local_backward_weight<T>(a.lp, g, cdata<T>(x), mdata<T>(dw_arr));
        if (need_b) cpu::local_backward_bias<T>(a.lp, g, mdata<T>(db_arr));
      }
    }
    if (need_x) dx = dx_arr;
    if (need_w) dw = dw_arr;
    if (need_b) db = db_arr;
  });
  return py::make_tuple(dx, dw, db);
}

void register_local(py::module_& m) {
  using namespace pybind11::literals;
  m.def("local_forward", &local_forward, "x"_a, "w"_a, "bias"_a, "stride"_a, "padding"_a,
        "dilation"_a, "unshared"_a, "algo"_a);
  m.def("local_backward", &local_backward, "dy"_a, "x"_a, "w"_a, "stride"_a, "padding"_a,
        "dilation"_a, "unshared"_a, "need_x"_a, "need_w"_a, "need_b"_a, "algo"_a);
}

}  // namespace

CONVCORE_REGISTER_BINDINGS(register_local);

}  // namespace convcore::bind
