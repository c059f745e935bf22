// Bindings of the elementwise activations (cpu/activation.h): any shape, float32/float64,
// C-contiguous (the Python layer makes it so); kernels run without the GIL.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <optional>

#include "bindings/array.h"
#include "common/errors.h"
#include "cpu/activation.h"

namespace convcore::bind {
namespace {

// The result array: a new one, or `out` (any array of the result's dtype and shape, C-contiguous
// and writeable; it may be an input: the kernels read element i before writing it).
py::array result_array(const std::optional<py::array>& out, DType dtype, const py::array& like,
                       const std::string& op) {
  if (!out) return new_array(dtype, shape_of(like));
  check_float_array(*out, op, "out", -1);
  check_same_dtype(*out, dtype, op, "out", "the input");
  CC_CHECK_VALUE(shape_of(*out) == shape_of(like), op, ": out must have shape ", shape_str(like),
                 ", got ", shape_str(*out));
  CC_CHECK_VALUE((out->flags() & py::array::c_style) && out->writeable(), op,
                 ": out must be C-contiguous and writeable");
  return *out;
}

py::array relu_forward(const py::array& x, const std::optional<py::array>& out) {
  const std::string op = "relu";
  const DType dtype = check_float_array(x, op, "x", -1);
  py::array y = result_array(out, dtype, x, op);
  with_dtype(dtype, [&](auto tag) {
    using T = decltype(tag);
    py::gil_scoped_release nogil;
    cpu::relu_forward<T>(static_cast<int64_t>(x.size()), cdata<T>(x), mdata<T>(y));
  });
  return y;
}

py::array relu_backward(const py::array& dy, const py::array& y, const std::optional<py::array>& out) {
  const std::string op = "relu_backward";
  const DType dtype = check_float_array(y, op, "y", -1);
  check_float_array(dy, op, "dy", -1);
  check_same_dtype(dy, dtype, op, "dy", "y");
  CC_CHECK_VALUE(shape_of(dy) == shape_of(y), op, ": dy must have the shape of y ", shape_str(y),
                 ", got ", shape_str(dy));
  py::array dx = result_array(out, dtype, y, op);
  with_dtype(dtype, [&](auto tag) {
    using T = decltype(tag);
    py::gil_scoped_release nogil;
    cpu::relu_backward<T>(static_cast<int64_t>(y.size()), cdata<T>(dy), cdata<T>(y), mdata<T>(dx));
  });
  return dx;
}

void register_activation(py::module_& m) {
  using namespace pybind11::literals;
  m.def("relu_forward", &relu_forward, "x"_a, "out"_a = py::none());
  m.def("relu_backward", &relu_backward, "dy"_a, "y"_a, "out"_a = py::none());
}

}  // namespace
CONVCORE_REGISTER_BINDINGS(register_activation);
}  // namespace convcore::bind
