// convcore._cuda bindings of the pooling family, same names and arguments as the _cpu ones
// (bindings/bind_pool.cpp). algo: "auto" or "reference" (on the GPU both run the same kernels,
// which already sum in double and follow the reference's rules). Indices handed back by the user
// are checked (dtype, shape, device, range) before a kernel trusts them.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <optional>

#include "common/errors.h"
#include "cuda/device_array.h"
#include "cuda/pool.h"

namespace convcore::cuda_bind {
namespace {

using cuda::PoolWindows;

void check_algo(const std::string& algo, const std::string& op) {
  CC_CHECK_VALUE(algo == "auto" || algo == "reference", op,
                 ": algo must be 'auto' or 'reference', got '", algo, "'");
}

std::vector<int64_t> out_shape(const PoolParams& p) { return {p.n, p.c, p.out_h, p.out_w}; }

DeviceArray grad_array(const py::object& dy_obj, const DeviceArray& x, const PoolParams& p,
                       const std::string& op) {
  DeviceArray dy = float_array_like(dy_obj, x, op, "dy", "x", -1);
  CC_CHECK_VALUE(dy.shape == out_shape(p), op, ": dy has shape ", shape_str(dy.shape),
                 " but the forward output has shape ", shape_str(out_shape(p)));
  return dy;
}

// Forward of max / adaptive max pooling: y, or (y, indices).
py::object max_forward(const DeviceArray& x, const PoolParams& p, PoolWindows windows,
                       bool return_indices) {
  CallContext ctx(x);
  DeviceArray y = ctx.empty(x.dtype, out_shape(p));
  DeviceArray idx;
  if (return_indices) idx = ctx.empty(DType::I64, out_shape(p));
  with_dtype(x.dtype, [&](auto tag) {
    using T = decltype(tag);
    py::gil_scoped_release nogil;
    cuda::max_pool2d_forward<T>(p, windows, x.data<T>(), y.mutable_data<T>(),
                                return_indices ? idx.mutable_data<int64_t>() : nullptr, ctx.stream());
  });
  if (return_indices) return py::make_tuple(y.owner, idx.owner);
  return y.owner;
}

py::object max_backward(const py::object& dy_obj, const DeviceArray& x, const PoolParams& p,
                        PoolWindows windows, const py::object& indices, const std::string& op) {
  DeviceArray dy = grad_array(dy_obj, x, p, op);
  CallContext ctx(x);
  DeviceArray idx;
  bool in_windows = true;
  if (!indices.is_none()) {
    idx = index_array(indices, x, out_shape(p), op);
    cuda::IndexCheck check;
    {
      py::gil_scoped_release nogil;
      check = cuda::check_pool_indices(p, windows, idx.data<int64_t>(), ctx.stream());
    }
    CC_CHECK_VALUE(check.first_out_of_range < 0, op, ": indices must lie in [0, H*W) = [0, ",
                   p.h * p.w, "), got an index outside it at flat position ", check.first_out_of_range);
    in_windows = check.all_in_windows;
  }
  DeviceArray dx = ctx.empty(x.dtype, x.shape);
  with_dtype(x.dtype, [&](auto tag) {
    using T = decltype(tag);
    py::gil_scoped_release nogil;
    cuda::max_pool2d_backward<T>(p, windows, dy.data<T>(), idx.data<int64_t>(), in_windows,
                                 x.data<T>(), dx.mutable_data<T>(), ctx.stream());
  });
  return dx.owner;
}

py::object max_pool2d_forward(const py::object& x_obj, Pair kernel, Pair stride, Pair padding,
                              Pair dilation, bool ceil_mode, bool return_indices,
                              const std::string& algo) {
  const std::string op = "max_pool2d";
  DeviceArray x = float_array(x_obj, op, "x", 4);
  PoolParams p = make_pool_params(op, x.shape4(), kernel, stride, padding, dilation, ceil_mode);
  check_algo(algo, op);
  return max_forward(x, p, PoolWindows::Strided, return_indices);
}

py::object max_pool2d_backward(const py::object& dy, const py::object& x_obj, Pair kernel,
                               Pair stride, Pair padding, Pair dilation, bool ceil_mode,
                               const py::object& indices, const std::string& algo) {
  const std::string op = "max_pool2d_backward";
  DeviceArray x = float_array(x_obj, op, "x", 4);
  PoolParams p = make_pool_params(op, x.shape4(), kernel, stride, padding, dilation, ceil_mode);
  check_algo(algo, op);
  return max_backward(dy, x, p, PoolWindows::Strided, indices, op);
}

PoolParams avg_params(const std::string& op, const DeviceArray& x, Pair kernel, Pair stride,
                      Pair padding, bool ceil_mode, bool count_include_pad,
                      std::optional<int64_t> divisor_override) {
  return make_avg_pool_params(op, x.shape4(), kernel, stride, padding, ceil_mode, count_include_pad,
                              divisor_override.has_value(), divisor_override.value_or(0));
}

// Runs one pooling kernel fn(p, in, out, stream) into a new array of `shape`.
template <typename Kernel>
py::object run_pool(const DeviceArray& in, const PoolParams& p, const std::vector<int64_t>& shape,
                    Kernel&& kernel) {
  CallContext ctx(in);
  DeviceArray out = ctx.empty(in.dtype, shape);
  with_dtype(in.dtype, [&](auto tag) {
    using T = decltype(tag);
    py::gil_scoped_release nogil;
    kernel(p, in.data<T>(), out.mutable_data<T>(), ctx.stream());
  });
  return out.owner;
}

py::object avg_pool2d_forward(const py::object& x_obj, Pair kernel, Pair stride, Pair padding,
                              bool ceil_mode, bool count_include_pad,
                              std::optional<int64_t> divisor_override, const std::string& algo) {
  const std::string op = "avg_pool2d";
  DeviceArray x = float_array(x_obj, op, "x", 4);
  PoolParams p = avg_params(op, x, kernel, stride, padding, ceil_mode, count_include_pad, divisor_override);
  check_algo(algo, op);
  return run_pool(x, p, out_shape(p), [](const PoolParams& q, const auto* in, auto* out, cudaStream_t s) {
    cuda::avg_pool2d_forward(q, in, out, s);
  });
}

py::object avg_pool2d_backward(const py::object& dy_obj, const py::object& x_obj, Pair kernel,
                               Pair stride, Pair padding, bool ceil_mode, bool count_include_pad,
                               std::optional<int64_t> divisor_override, const std::string& algo) {
  const std::string op = "avg_pool2d_backward";
  DeviceArray x = float_array(x_obj, op, "x", 4);
  PoolParams p = avg_params(op, x, kernel, stride, padding, ceil_mode, count_include_pad, divisor_override);
  DeviceArray dy = grad_array(dy_obj, x, p, op);
  check_algo(algo, op);
  return run_pool(dy, p, x.shape, [](const PoolParams& q, const auto* in, auto* out, cudaStream_t s) {
    cuda::avg_pool2d_backward(q, in, out, s);
  });
}

// The backward passes take the output size from dy, which must match x in N and C.
PoolParams adaptive_params_from_dy(const std::string& op, const py::object& dy_obj, const DeviceArray& x) {
  DeviceArray dy = float_array(dy_obj, op, "dy", 4);
  CC_CHECK_VALUE(dy.shape[0] == x.shape[0] && dy.shape[1] == x.shape[1], op, ": dy has shape ",
                 shape_str(dy.shape), " but x has shape ", shape_str(x.shape), "; N and C must match");
  return make_adaptive_pool_params(op, x.shape4(), {dy.shape[2], dy.shape[3]});
}

py::object adaptive_avg_pool2d_forward(const py::object& x_obj, Pair output_size, const std::string& algo) {
  const std::string op = "adaptive_avg_pool2d";
  DeviceArray x = float_array(x_obj, op, "x", 4);
  PoolParams p = make_adaptive_pool_params(op, x.shape4(), output_size);
  check_algo(algo, op);
  return run_pool(x, p, out_shape(p), [](const PoolParams& q, const auto* in, auto* out, cudaStream_t s) {
    cuda::adaptive_avg_pool2d_forward(q, in, out, s);
  });
}

py::object adaptive_avg_pool2d_backward(const py::object& dy_obj, const py::object& x_obj,
                                        const std::string& algo) {
  const std::string op = "adaptive_avg_pool2d_backward";
  DeviceArray x = float_array(x_obj, op, "x", 4);
  PoolParams p = adaptive_params_from_dy(op, dy_obj, x);
  DeviceArray dy = grad_array(dy_obj, x, p, op);
  check_algo(algo, op);
  return run_pool(dy, p, x.shape, [](const PoolParams& q, const auto* in, auto* out, cudaStream_t s) {
    cuda::adaptive_avg_pool2d_backward(q, in, out, s);
  });
}

py::object adaptive_max_pool2d_forward(const py::object& x_obj, Pair output_size,
                                       bool return_indices, const std::string& algo) {
  const std::string op = "adaptive_max_pool2d";
  DeviceArray x = float_array(x_obj, op, "x", 4);
  PoolParams p = make_adaptive_pool_params(op, x.shape4(), output_size);
  check_algo(algo, op);
  return max_forward(x, p, PoolWindows::Adaptive, return_indices);
}

py::object adaptive_max_pool2d_backward(const py::object& dy, const py::object& x_obj,
                                        const py::object& indices, const std::string& algo) {
  const std::string op = "adaptive_max_pool2d_backward";
  DeviceArray x = float_array(x_obj, op, "x", 4);
  PoolParams p = adaptive_params_from_dy(op, dy, x);
  check_algo(algo, op);
  return max_backward(dy, x, p, PoolWindows::Adaptive, indices, op);
}

}  // namespace

void register_pool(py::module_& m) {
  using namespace pybind11::literals;
  m.def("max_pool2d_forward", &max_pool2d_forward, "x"_a, "kernel"_a, "stride"_a, "padding"_a,
        "dilation"_a, "ceil_mode"_a, "return_indices"_a, "algo"_a);
  m.def("max_pool2d_backward", &max_pool2d_backward, "dy"_a, "x"_a, "kernel"_a, "stride"_a,
        "padding"_a, "dilation"_a, "ceil_mode"_a, "indices"_a, "algo"_a);
  m.def("avg_pool2d_forward", &avg_pool2d_forward, "x"_a, "kernel"_a, "stride"_a, "padding"_a,
        "ceil_mode"_a, "count_include_pad"_a, "divisor_override"_a, "algo"_a);
  m.def("avg_pool2d_backward", &avg_pool2d_backward, "dy"_a, "x"_a, "kernel"_a, "stride"_a,
        "padding"_a, "ceil_mode"_a, "count_include_pad"_a, "divisor_override"_a, "algo"_a);
  m.def("adaptive_avg_pool2d_forward", &adaptive_avg_pool2d_forward, "x"_a, "output_size"_a, "algo"_a);
  m.def("adaptive_avg_pool2d_backward", &adaptive_avg_pool2d_backward, "dy"_a, "x"_a, "algo"_a);
  m.def("adaptive_max_pool2d_forward", &adaptive_max_pool2d_forward, "x"_a, "output_size"_a,
        "return_indices"_a, "algo"_a);
  m.def("adaptive_max_pool2d_backward", &adaptive_max_pool2d_backward, "dy"_a, "x"_a, "indices"_a,
        "algo"_a);
}

}  // namespace convcore::cuda_bind
