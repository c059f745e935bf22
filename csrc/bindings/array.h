// The array boundary: every NumPy array that reaches a kernel passes through here.
// Checks (each failure a TypeError/ValueError naming the op and argument): float32/float64
// dtype, the expected ndim, C-contiguous, aligned, and equal dtypes across arguments.
// The Python layer already makes arrays contiguous; these checks keep direct callers of
// convcore._cpu from ever handing a kernel memory it would misread.
#pragma once
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <array>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "common/conv_params.h"

namespace convcore::bind {

namespace py = pybind11;

enum class DType { F32, F64 };

// Checks one float array argument; returns its dtype.
DType check_float_array(const py::array& a, const std::string& op, const char* name, int ndim);
// Same, and requires the dtype `want` (for every argument after the first).
void check_same_dtype(const py::array& a, DType want, const std::string& op, const char* name,
                      const char* first_name);
Shape4 shape4(const py::array& a);
std::vector<int64_t> shape_of(const py::array& a);
std::string shape_str(const py::array& a);

// A new C-contiguous output array whose first element is 64-byte aligned (a view of a slightly
// larger NumPy block; NumPy itself aligns to 16 bytes only). Why: the kernels store whole
// cache-line vectors along output rows; at a 16-byte offset every such store straddles two
// lines. With NumPy's allocation, outputs came 0 or 16 bytes past a line about half the time
// each: (8,64,56,56)->256 1x1 forward 4.75 ms aligned against 5.56 misaligned on 2 threads,
// 9.2 against 10.7 on one. PyTorch's allocator aligns to 64 always.
// When the test hook _set_debug_poison(True) is on, it is filled with NaN first, so an element
// a kernel forgets to write shows up in the tests.
constexpr uintptr_t kOutputAlign = 64;
py::array new_array(DType dtype, const std::vector<int64_t>& shape);
bool debug_poison();
void set_debug_poison(bool on);

template <typename T>
const T* cdata(const py::array& a) { return static_cast<const T*>(a.data()); }
template <typename T>
T* mdata(py::array& a) { return static_cast<T*>(a.mutable_data()); }

// Calls fn(float{}) or fn(double{}) by dtype.
template <typename Fn>
auto with_dtype(DType dtype, Fn&& fn) {
  if (dtype == DType::F32) return fn(float{});
  return fn(double{});
}

// Bindings self-register: each bind_*.cpp defines `static void register_x(py::module_&)` and
// `CONVCORE_REGISTER_BINDINGS(register_x)`, so adding a family edits no shared file.
using Registrar = void (*)(py::module_&);
int add_registrar(Registrar fn, int order);
void run_registrars(py::module_& m);

}  // namespace convcore::bind

#define CONVCORE_REGISTER_BINDINGS(fn) \
  static const int fn##_registered_ = ::convcore::bind::add_registrar(fn, __LINE__)
