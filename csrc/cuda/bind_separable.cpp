// convcore._cuda bindings of the separable 1-D convolution, same names and arguments as the _cpu
// ones (bindings/bind_separable.cpp), validated by make_separable1d_params (csrc/common).
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "common/errors.h"
#include "cuda/device_array.h"
#include "cuda/separable1d.h"

namespace convcore::cuda_bind {
namespace {

struct SeparableArgs {
  DeviceArray x, w_col, w_row;
  Separable1dParams sp;
};

// The factor checks come first so a wrong factor is reported under its own name.
SeparableArgs check_separable(const std::string& op, const py::object& x_obj,
                              const py::object& w_col_obj, const py::object& w_row_obj,
                              const Pair& stride, const Pad4& padding, const Pair& dilation) {
  SeparableArgs a;
  a.x = float_array(x_obj, op, "x", 4);
  a.w_col = float_array_like(w_col_obj, a.x, op, "w_col", "x", 2);
  a.w_row = float_array_like(w_row_obj, a.x, op, "w_row", "x", 2);
  const int64_t channels = a.x.shape[1];
  CC_CHECK_VALUE(a.w_col.shape[0] == channels && a.w_col.shape[1] > 0, op,
                 ": w_col must have shape (C, kh) with C=", channels, " (from x.shape=",
                 shape_str(a.x.shape), ") and kh >= 1, got ", shape_str(a.w_col.shape));
  CC_CHECK_VALUE(a.w_row.shape[0] == channels && a.w_row.shape[1] > 0, op,
                 ": w_row must have shape (C, kw) with C=", channels, " (from x.shape=",
                 shape_str(a.x.shape), ") and kw >= 1, got ", shape_str(a.w_row.shape));
  a.sp = make_separable1d_params(op, a.x.shape4(), a.w_col.shape[1], a.w_row.shape[1], stride,
                                 padding, dilation);
  return a;
}

std::vector<int64_t> out_shape(const Separable1dParams& sp) {
  return {sp.n(), sp.channels(), sp.out_h(), sp.out_w()};
}

py::object sepconv2d_1d_forward(const py::object& x, const py::object& w_col,
                                const py::object& w_row, const py::object& bias, Pair stride,
                                Pad4 padding, Pair dilation) {
  const std::string op = "sepconv2d_1d";
  SeparableArgs a = check_separable(op, x, w_col, w_row, stride, padding, dilation);
  DeviceArray b;
  if (!bias.is_none()) {
    b = float_array_like(bias, a.x, op, "bias", "x", 1);
    CC_CHECK_VALUE(b.shape[0] == a.sp.channels(), op, ": bias must have shape (",
                   a.sp.channels(), ",), got ", shape_str(b.shape));
  }
  CallContext ctx(a.x);
  DeviceArray y = ctx.empty(a.x.dtype, out_shape(a.sp));
  with_dtype(a.x.dtype, [&](auto tag) {
    using T = decltype(tag);
    py::gil_scoped_release nogil;
    cuda::separable1d_forward<T>(a.sp, a.x.data<T>(), a.w_col.data<T>(), a.w_row.data<T>(),
                                 b.data<T>(), y.mutable_data<T>(), ctx.stream());
  });
  return y.owner;
}

py::tuple sepconv2d_1d_backward(const py::object& dy_obj, const py::object& x,
                                const py::object& w_col, const py::object& w_row, Pair stride,
                                Pad4 padding, Pair dilation, bool need_x, bool need_w_col,
                                bool need_w_row, bool need_b) {
  const std::string op = "sepconv2d_1d_backward";
  SeparableArgs a = check_separable(op, x, w_col, w_row, stride, padding, dilation);
  DeviceArray dy = float_array_like(dy_obj, a.x, op, "dy", "x", 4);
  CC_CHECK_VALUE(dy.shape == out_shape(a.sp), op, ": dy has shape ", shape_str(dy.shape),
                 " but the forward output has shape ", shape_str(out_shape(a.sp)));
  CallContext ctx(a.x);
  DeviceArray dx, dwc, dwr, db;
  if (need_x) dx = ctx.empty(a.x.dtype, a.x.shape);
  if (need_w_col) dwc = ctx.empty(a.x.dtype, a.w_col.shape);
  if (need_w_row) dwr = ctx.empty(a.x.dtype, a.w_row.shape);
  if (need_b) db = ctx.empty(a.x.dtype, {a.sp.channels()});
  with_dtype(a.x.dtype, [&](auto tag) {
    using T = decltype(tag);
    py::gil_scoped_release nogil;
    cuda::separable1d_backward<T>(a.sp, dy.data<T>(), a.x.data<T>(), a.w_col.data<T>(),
                                  a.w_row.data<T>(), dx.mutable_data<T>(), dwc.mutable_data<T>(),
                                  dwr.mutable_data<T>(), db.mutable_data<T>(), ctx.stream());
  });
  auto out = [](bool need, const DeviceArray& a) { return need ? a.owner : py::none(); };
  return py::make_tuple(out(need_x, dx), out(need_w_col, dwc), out(need_w_row, dwr), out(need_b, db));
}

}  // namespace

void register_separable(py::module_& m) {
  using namespace pybind11::literals;
  m.def("sepconv2d_1d_forward", &sepconv2d_1d_forward, "x"_a, "w_col"_a, "w_row"_a, "bias"_a,
        "stride"_a, "padding"_a, "dilation"_a);
  m.def("sepconv2d_1d_backward", &sepconv2d_1d_backward, "dy"_a, "x"_a, "w_col"_a, "w_row"_a,
        "stride"_a, "padding"_a, "dilation"_a, "need_x"_a, "need_w_col"_a, "need_w_row"_a,
        "need_b"_a);
}

}  // namespace convcore::cuda_bind
