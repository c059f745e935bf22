// convcore._cuda bindings of the locally connected / tiled convolution family, same names and
// arguments as the _cpu ones (bindings/bind_local.cpp), validated by make_local_params
// (csrc/common). algo: "auto" (T accumulators) or "reference" (double accumulators).
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "common/errors.h"
#include "common/local_params.h"
#include "cuda/device_array.h"
#include "cuda/locally_connected.h"

namespace convcore::cuda_bind {
namespace {

struct LocalArgs {
  DeviceArray x, w;
  LocalParams lp;
  bool reference;
};

const char* op_name(bool unshared, bool backward) {
  if (unshared) return backward ? "locally_connected2d_backward" : "locally_connected2d";
  return backward ? "tiled_conv2d_backward" : "tiled_conv2d";
}

LocalArgs check_local(const std::string& op, const py::object& x_obj, const py::object& w_obj,
                      const Pair& stride, const Pad4& padding, const Pair& dilation,
                      bool unshared, const std::string& algo) {
  LocalArgs a;
  a.x = float_array(x_obj, op, "x", 4);
  a.w = float_array_like(w_obj, a.x, op, "w", "x", 6);
  CC_CHECK_VALUE(algo == "auto" || algo == "reference", op, ": unknown algo '", algo,
                 "'; expected 'auto' or 'reference'");
  const Shape6 w_shape{a.w.shape[0], a.w.shape[1], a.w.shape[2],
                       a.w.shape[3], a.w.shape[4], a.w.shape[5]};
  a.lp = make_local_params(op, a.x.shape4(), w_shape, stride, padding, dilation, unshared);
  a.reference = algo == "reference";
  return a;
}

// Runs fn(T{}, Acc{}) for the call's dtype and algorithm.
template <typename Fn>
void with_types(DType dtype, bool reference, Fn&& fn) {
  if (dtype == DType::F64) return fn(double{}, double{});
  if (reference) return fn(float{}, double{});
  return fn(float{}, float{});
}

py::object local_forward(const py::object& x, const py::object& w, const py::object& bias,
                         Pair stride, Pad4 padding, Pair dilation, bool unshared,
                         const std::string& algo) {
  const std::string op = op_name(unshared, false);
  LocalArgs a = check_local(op, x, w, stride, padding, dilation, unshared, algo);
  const ConvParams& p = a.lp.conv;
  DeviceArray b;
  if (!bias.is_none()) {
    b = float_array_like(bias, a.x, op, "bias", "x", -1);
    const std::vector<int64_t> want{a.lp.tile_h, a.lp.tile_w, p.k};
    CC_CHECK_VALUE(b.shape == want, op, ": bias must have shape w.shape[:3] = ", shape_str(want),
                   " (one per kernel), got ", shape_str(b.shape));
  }
  CallContext ctx(a.x);
  DeviceArray y = ctx.empty(a.x.dtype, {p.n, p.k, p.out_h, p.out_w});
  with_types(a.x.dtype, a.reference, [&](auto t_tag, auto acc_tag) {
    using T = decltype(t_tag);
    using Acc = decltype(acc_tag);
    py::gil_scoped_release nogil;
    cuda::local_forward<T, Acc>(a.lp, a.x.data<T>(), a.w.data<T>(), b.data<T>(),
                                y.mutable_data<T>(), ctx.stream());
  });
  return y.owner;
}

py::tuple local_backward(const py::object& dy_obj, const py::object& x, const py::object& w,
                         Pair stride, Pad4 padding, Pair dilation, bool unshared, bool need_x,
                         bool need_w, bool need_b, const std::string& algo) {
  const std::string op = op_name(unshared, true);
  LocalArgs a = check_local(op, x, w, stride, padding, dilation, unshared, algo);
  const ConvParams& p = a.lp.conv;
  DeviceArray dy = float_array_like(dy_obj, a.x, op, "dy", "x", 4);
  const std::vector<int64_t> out_shape{p.n, p.k, p.out_h, p.out_w};
  CC_CHECK_VALUE(dy.shape == out_shape, op, ": dy has shape ", shape_str(dy.shape),
                 " but the forward output has shape ", shape_str(out_shape));
  CallContext ctx(a.x);
  DeviceArray dx, dw, db;
  if (need_x) dx = ctx.empty(a.x.dtype, a.x.shape);
  if (need_w) dw = ctx.empty(a.x.dtype, a.w.shape);
  if (need_b) db = ctx.empty(a.x.dtype, {a.lp.tile_h, a.lp.tile_w, p.k});
  with_types(a.x.dtype, a.reference, [&](auto t_tag, auto acc_tag) {
    using T = decltype(t_tag);
    using Acc = decltype(acc_tag);
    py::gil_scoped_release nogil;
    const T* g = dy.data<T>();
    if (need_x) cuda::local_backward_input<T, Acc>(a.lp, g, a.w.data<T>(), dx.mutable_data<T>(), ctx.stream());
    if (need_w) cuda::local_backward_weight<T, Acc>(a.lp, g, a.x.data<T>(), dw.mutable_data<T>(), ctx.stream());
    if (need_b) cuda::local_backward_bias<T, Acc>(a.lp, g, db.mutable_data<T>(), ctx.stream());
  });
  auto out = [](bool need, const DeviceArray& arr) { return need ? arr.owner : py::none(); };
  return py::make_tuple(out(need_x, dx), out(need_w, dw), out(need_b, db));
}

}  // namespace

void register_local(py::module_& m) {
  using namespace pybind11::literals;
  m.def("local_forward", &local_forward, "x"_a, "w"_a, "bias"_a, "stride"_a, "padding"_a,
        "dilation"_a, "unshared"_a, "algo"_a);
  m.def("local_backward", &local_backward, "dy"_a, "x"_a, "w"_a, "stride"_a, "padding"_a,
        "dilation"_a, "unshared"_a, "need_x"_a, "need_w"_a, "need_b"_a, "algo"_a);
}

}  // namespace convcore::cuda_bind
