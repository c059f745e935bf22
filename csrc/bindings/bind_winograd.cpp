// Test hooks of the Winograd transforms (cpu/conv_winograd.h): the matrices and the float64 tile
// transforms the kernel runs, so tests can check them against NumPy products one tile at a time.
// The convolution itself is reached through conv2d(..., algo="winograd").
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include "bindings/array.h"
#include "common/errors.h"
#include "cpu/conv_winograd.h"

namespace convcore::bind {
namespace {

using F64 = py::array_t<double, py::array::c_style | py::array::forcecast>;

int check_tile(int tile_m) {
  CC_CHECK_VALUE(tile_m == 2 || tile_m == 4, "_winograd: tile_m must be 2 or 4, got ", tile_m);
  return tile_m;
}

F64 transform(const char* what, int tile_m, const F64& in) {
  const int m = check_tile(tile_m), alpha = m + 2;
  const std::string w = what;
  const int64_t in_side = w == "kernel" ? 3 : alpha, out_side = w == "output" ? m : alpha;
  CC_CHECK_VALUE(in.ndim() == 2 && in.shape(0) == in_side && in.shape(1) == in_side,
                 "_winograd_", w, "_tile: expected a ", in_side, "x", in_side, " array");
  F64 out({out_side, out_side});
  if (w == "kernel") cpu::winograd_kernel_tile(m, in.data(), out.mutable_data());
  else if (w == "input") cpu::winograd_input_tile(m, in.data(), out.mutable_data());
  else cpu::winograd_output_tile(m, in.data(), out.mutable_data());
  return out;
}

void register_winograd(py::module_& mod) {
  using namespace pybind11::literals;
  mod.def("_winograd_matrices", [](int tile_m) {
    const int m = check_tile(tile_m), alpha = m + 2;
    F64 bt({alpha, alpha}), g({alpha, 3}), at({m, alpha});
    cpu::winograd_matrices(m, bt.mutable_data(), g.mutable_data(), at.mutable_data());
    return py::make_tuple(bt, g, at);
  }, "tile_m"_a);
  mod.def("_winograd_kernel_tile", [](int m, const F64& g) { return transform("kernel", m, g); },
          "tile_m"_a, "g"_a);
  mod.def("_winograd_input_tile", [](int m, const F64& d) { return transform("input", m, d); },
          "tile_m"_a, "d"_a);
  mod.def("_winograd_output_tile", [](int m, const F64& t) { return transform("output", m, t); },
          "tile_m"_a, "m"_a);
}

}  // namespace

CONVCORE_REGISTER_BINDINGS(register_winograd);

}  // namespace convcore::bind
