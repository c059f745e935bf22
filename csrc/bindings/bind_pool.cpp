// Bindings of the pooling family: max, average and adaptive pooling, forward and backward.
// Shapes are validated by make_*pool_params before any kernel runs; indices handed back by the
// user are checked (dtype, shape, range) before a kernel trusts them; kernels run without the GIL.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <limits>
#include <optional>

#include "bindings/array.h"
#include "bindings/interrupt.h"
#include "common/errors.h"
#include "common/pool_params.h"
#include "common/shapes.h"
#include "cpu/pool.h"
#include "ref/ref.h"

namespace convcore::bind {
namespace {

using OptArray = std::optional<py::array>;

bool parse_pool_algo(const std::string& algo, const std::string& op) {
  CC_CHECK_VALUE(algo == "auto" || algo == "reference", op,
                 ": algo must be 'auto' or 'reference', got '", algo, "'");
  return algo == "reference";
}

std::vector<int64_t> out_shape(const PoolParams& p) { return {p.n, p.c, p.out_h, p.out_w}; }

void check_dy(const py::array& dy, DType dtype, const PoolParams& p, const std::string& op) {
  check_float_array(dy, op, "dy", -1);
  check_same_dtype(dy, dtype, op, "dy", "x");
  CC_CHECK_VALUE(shape_of(dy) == out_shape(p), op, ": dy has shape ", shape_str(dy),
                 " but the forward output has shape ", convcore::shape_str(out_shape(p)));
}

py::array new_index_array(const std::vector<int64_t>& shape) {
  py::array_t<int64_t> a(shape);
  // Poisoned like float outputs, with a value no kernel could produce.
  if (debug_poison()) std::fill(a.mutable_data(), a.mutable_data() + a.size(), std::numeric_limits<int64_t>::min());
  return a;
}

const int64_t* check_indices(const OptArray& indices, const PoolParams& p, const std::string& op) {
  if (!indices) return nullptr;
  const py::array& idx = *indices;
  CC_CHECK_TYPE(idx.dtype().is(py::dtype::of<int64_t>()), op, ": indices must be int64, got dtype ",
                std::string(py::str(idx.dtype())));
  CC_CHECK_VALUE(shape_of(idx) == out_shape(p), op, ": indices has shape ", shape_str(idx),
                 " but the forward output has shape ", convcore::shape_str(out_shape(p)));
  CC_CHECK_VALUE((idx.flags() & py::array::c_style) &&
                     reinterpret_cast<std::uintptr_t>(idx.data()) % alignof(int64_t) == 0,
                 op, ": indices must be C-contiguous and aligned");
  const int64_t* data = static_cast<const int64_t*>(idx.data());
  int64_t bad;
  {
    py::gil_scoped_release nogil;
    bad = cpu::first_index_out_of_range(p, data);
  }
  CC_CHECK_VALUE(bad < 0, op, ": indices must lie in [0, H*W) = [0, ", p.h * p.w,
                 "), got ", bad < 0 ? 0 : data[bad], " at flat position ", bad);
  return data;
}

// ---- max pooling -----------------------------------------------------------------------------

py::object max_pool2d_forward(const py::array& x, Pair kernel, Pair stride, Pair padding,
                              Pair dilation, bool ceil_mode, bool return_indices,
                              const std::string& algo) {
  const std::string op = "max_pool2d";
  DType dtype = check_float_array(x, op, "x", 4);
  PoolParams p = make_pool_params(op, shape4(x), kernel, stride, padding, dilation, ceil_mode);
  const bool reference = parse_pool_algo(algo, op);
  py::array y = new_array(dtype, out_shape(p));
  py::array idx;
  if (return_indices) idx = new_index_array(out_shape(p));
  with_dtype(dtype, [&](auto tag) {
    using T = decltype(tag);
    int64_t* idx_data = return_indices ? static_cast<int64_t*>(idx.mutable_data()) : nullptr;
    run_interruptible(pool_work(p), [&] {
      if (reference) ref::max_pool2d_forward<T>(p, cdata<T>(x), mdata<T>(y), idx_data);
      else cpu::max_pool2d_forward<T>(p, cdata<T>(x), mdata<T>(y), idx_data);
    });
  });
  if (return_indices) return py::make_tuple(y, idx);
  return y;
}

py::array max_pool2d_backward(const py::array& dy, const py::array& x, Pair kernel, Pair stride,
                              Pair padding, Pair dilation, bool ceil_mode, const OptArray& indices,
                              const std::string& algo) {
  const std::string op = "max_pool2d_backward";
  DType dtype = check_float_array(x, op, "x", 4);
  PoolParams p = make_pool_params(op, shape4(x), kernel, stride, padding, dilation, ceil_mode);
  check_dy(dy, dtype, p, op);
  const bool reference = parse_pool_algo(algo, op);
  const int64_t* idx = check_indices(indices, p, op);
  py::array dx = new_array(dtype, shape_of(x));
  with_dtype(dtype, [&](auto tag) {
    using T = decltype(tag);
    run_interruptible(pool_work(p), [&] {
      if (reference) ref::max_pool2d_backward<T>(p, cdata<T>(dy), idx, cdata<T>(x), mdata<T>(dx));
      else cpu::max_pool2d_backward<T>(p, cdata<T>(dy), idx, cdata<T>(x), mdata<T>(dx));
    });
  });
  return dx;
}

// ---- average pooling -------------------------------------------------------------------------

PoolParams avg_params(const std::string& op, const py::array& x, Pair kernel, Pair stride,
                      Pair padding, bool ceil_mode, bool count_include_pad,
                      std::optional<int64_t> divisor_override) {
  return make_avg_pool_params(op, shape4(x), kernel, stride, padding, ceil_mode, count_include_pad,
                              divisor_override.has_value(), divisor_override.value_or(0));
}

py::array avg_pool2d_forward(const py::array& x, Pair kernel, Pair stride, Pair padding,
                             bool ceil_mode, bool count_include_pad,
                             std::optional<int64_t> divisor_override, const std::string& algo) {
  const std::string op = "avg_pool2d";
  DType dtype = check_float_array(x, op, "x", 4);
  PoolParams p = avg_params(op, x, kernel, stride, padding, ceil_mode, count_include_pad, divisor_override);
  const bool reference = parse_pool_algo(algo, op);
  py::array y = new_array(dtype, out_shape(p));
  with_dtype(dtype, [&](auto tag) {
    using T = decltype(tag);
    run_interruptible(pool_work(p), [&] {
      if (reference) ref::avg_pool2d_forward<T>(p, cdata<T>(x), mdata<T>(y));
      else cpu::avg_pool2d_forward<T>(p, cdata<T>(x), mdata<T>(y));
    });
  });
  return y;
}

py::array avg_pool2d_backward(const py::array& dy, const py::array& x, Pair kernel, Pair stride,
                              Pair padding, bool ceil_mode, bool count_include_pad,
                              std::optional<int64_t> divisor_override, const std::string& algo) {
  const std::string op = "avg_pool2d_backward";
  DType dtype = check_float_array(x, op, "x", 4);
  PoolParams p = avg_params(op, x, kernel, stride, padding, ceil_mode, count_include_pad, divisor_override);
  check_dy(dy, dtype, p, op);
  const bool reference = parse_pool_algo(algo, op);
  py::array dx = new_array(dtype, shape_of(x));
  with_dtype(dtype, [&](auto tag) {
    using T = decltype(tag);
    run_interruptible(pool_work(p), [&] {
      if (reference) ref::avg_pool2d_backward<T>(p, cdata<T>(dy), mdata<T>(dx));
      else cpu::avg_pool2d_backward<T>(p, cdata<T>(dy), mdata<T>(dx));
    });
  });
  return dx;
}

// ---- adaptive pooling ------------------------------------------------------------------------

// The backward passes take the output size from dy, which must match x in N and C.
PoolParams adaptive_params_from_dy(const std::string& op, const py::array& dy, const py::array& x) {
  check_float_array(dy, op, "dy", 4);
  CC_CHECK_VALUE(dy.shape(0) == x.shape(0) && dy.shape(1) == x.shape(1), op, ": dy has shape ",
                 shape_str(dy), " but x has shape ", shape_str(x), "; N and C must match");
  return make_adaptive_pool_params(op, shape4(x), {dy.shape(2), dy.shape(3)});
}

py::array adaptive_avg_pool2d_forward(const py::array& x, Pair output_size, const std::string& algo) {
  const std::string op = "adaptive_avg_pool2d";
  DType dtype = check_float_array(x, op, "x", 4);
  PoolParams p = make_adaptive_pool_params(op, shape4(x), output_size);
  const bool reference = parse_pool_algo(algo, op);
  py::array y = new_array(dtype, out_shape(p));
  with_dtype(dtype, [&](auto tag) {
    using T = decltype(tag);
    run_interruptible(pool_work(p), [&] {
      if (reference) ref::adaptive_avg_pool2d_forward<T>(p, cdata<T>(x), mdata<T>(y));
      else cpu::adaptive_avg_pool2d_forward<T>(p, cdata<T>(x), mdata<T>(y));
    });
  });
  return y;
}

py::array adaptive_avg_pool2d_backward(const py::array& dy, const py::array& x, const std::string& algo) {
  const std::string op = "adaptive_avg_pool2d_backward";
  DType dtype = check_float_array(x, op, "x", 4);
  PoolParams p = adaptive_params_from_dy(op, dy, x);
  check_dy(dy, dtype, p, op);
  const bool reference = parse_pool_algo(algo, op);
  py::array dx = new_array(dtype, shape_of(x));
  with_dtype(dtype, [&](auto tag) {
    using T = decltype(tag);
    run_interruptible(pool_work(p), [&] {
      if (reference) ref::adaptive_avg_pool2d_backward<T>(p, cdata<T>(dy), mdata<T>(dx));
      else cpu::adaptive_avg_pool2d_backward<T>(p, cdata<T>(dy), mdata<T>(dx));
    });
  });
  return dx;
}

py::object adaptive_max_pool2d_forward(const py::array& x, Pair output_size, bool return_indices,
                                       const std::string& algo) {
  const std::string op = "adaptive_max_pool2d";
  DType dtype = check_float_array(x, op, "x", 4);
  PoolParams p = make_adaptive_pool_params(op, shape4(x), output_size);
  const bool reference = parse_pool_algo(algo, op);
  py::array y = new_array(dtype, out_shape(p));
  py::array idx;
  if (return_indices) idx = new_index_array(out_shape(p));
  with_dtype(dtype, [&](auto tag) {
    using T = decltype(tag);
    int64_t* idx_data = return_indices ? static_cast<int64_t*>(idx.mutable_data()) : nullptr;
    run_interruptible(pool_work(p), [&] {
      if (reference) ref::adaptive_max_pool2d_forward<T>(p, cdata<T>(x), mdata<T>(y), idx_data);
      else cpu::adaptive_max_pool2d_forward<T>(p, cdata<T>(x), mdata<T>(y), idx_data);
    });
  });
  if (return_indices) return py::make_tuple(y, idx);
  return y;
}

// The gradient goes to each window's argmax: the same scatter as max pooling with indices.
py::array adaptive_max_pool2d_backward(const py::array& dy, const py::array& x,
                                       const OptArray& indices, const std::string& algo) {
  const std::string op = "adaptive_max_pool2d_backward";
  DType dtype = check_float_array(x, op, "x", 4);
  PoolParams p = adaptive_params_from_dy(op, dy, x);
  check_dy(dy, dtype, p, op);
  const bool reference = parse_pool_algo(algo, op);
  const int64_t* given = check_indices(indices, p, op);
  py::array dx = new_array(dtype, shape_of(x));
  with_dtype(dtype, [&](auto tag) {
    using T = decltype(tag);
    run_interruptible(pool_work(p), [&] {
      std::vector<int64_t> recomputed;
      std::vector<T> unused_y;
      const int64_t* idx = given;
      if (!idx) {
        recomputed.resize(p.planes() * p.out_h * p.out_w);
        unused_y.resize(recomputed.size());
        if (reference) ref::adaptive_max_pool2d_forward<T>(p, cdata<T>(x), unused_y.data(), recomputed.data());
        else cpu::adaptive_max_pool2d_forward<T>(p, cdata<T>(x), unused_y.data(), recomputed.data());
        idx = recomputed.data();
      }
      if (reference) ref::max_pool2d_backward<T>(p, cdata<T>(dy), idx, cdata<T>(x), mdata<T>(dx));
      else cpu::max_pool2d_backward<T>(p, cdata<T>(dy), idx, cdata<T>(x), mdata<T>(dx));
    });
  });
  return dx;
}

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

}  // namespace

CONVCORE_REGISTER_BINDINGS(register_pool);

}  // namespace convcore::bind
