#include "bindings/array.h"

#include <atomic>
#include <limits>

#include "common/errors.h"
#include "common/shapes.h"

namespace convcore::bind {

namespace {
std::atomic<bool> g_poison{false};
std::vector<Registrar>& registrars() {
  static std::vector<Registrar> list;
  return list;
}
}  // namespace

DType check_float_array(const py::array& a, const std::string& op, const char* name, int ndim) {
  DType dtype;
  if (a.dtype().is(py::dtype::of<float>())) dtype = DType::F32;
  else if (a.dtype().is(py::dtype::of<double>())) dtype = DType::F64;
  else
    throw TypeError(detail::concat(op, ": ", name, " must be float32 or float64, got dtype ",
                                   std::string(py::str(a.dtype()))));
  CC_CHECK_VALUE(ndim < 0 || a.ndim() == ndim, op, ": ", name, " must be ", ndim,
                 "-D, got shape ", shape_str(a));
  CC_CHECK_VALUE(a.flags() & py::array::c_style, op, ": ", name,
                 " must be C-contiguous (the Python API copies non-contiguous arrays), got strides of shape ",
                 shape_str(a));
  const auto addr = reinterpret_cast<std::uintptr_t>(a.data());
  const std::size_t align = dtype == DType::F32 ? alignof(float) : alignof(double);
  CC_CHECK_VALUE(addr % align == 0, op, ": ", name, " is not aligned to its element size");
  return dtype;
}

void check_same_dtype(const py::array& a, DType want, const std::string& op, const char* name,
                      const char* first_name) {
  DType got = check_float_array(a, op, name, -1);
  CC_CHECK_TYPE(got == want, op, ": ", name, " has dtype ", std::string(py::str(a.dtype())),
                " but ", first_name, " has ", want == DType::F32 ? "float32" : "float64",
                "; mixed dtypes are not supported");
}

Shape4 shape4(const py::array& a) {
  CC_ASSERT(a.ndim() == 4);
  return {a.shape(0), a.shape(1), a.shape(2), a.shape(3)};
}

std::vector<int64_t> shape_of(const py::array& a) {
  std::vector<int64_t> s(a.ndim());
  for (py::ssize_t i = 0; i < a.ndim(); ++i) s[i] = a.shape(i);
  return s;
}

std::string shape_str(const py::array& a) { return convcore::shape_str(shape_of(a)); }

namespace {
// The first element of `block` at or after a 64-byte boundary: the offset in elements.
template <typename T>
py::ssize_t aligned_offset(const py::array_t<T>& block) {
  const auto addr = reinterpret_cast<uintptr_t>(block.data());
  return static_cast<py::ssize_t>(((kOutputAlign - addr % kOutputAlign) % kOutputAlign) / sizeof(T));
}

template <typename T>
py::array new_aligned(const std::vector<int64_t>& shape) {
  std::vector<py::ssize_t> dims(shape.begin(), shape.end());
  py::ssize_t count = 1;
  for (py::ssize_t d : dims) count *= d;
  // NumPy's allocator guarantees 16 bytes; the block is one alignment longer, and the output is
  // a C-contiguous view of it from the first 64-byte boundary on.
  py::array_t<T> block(count + static_cast<py::ssize_t>(kOutputAlign / sizeof(T)));
  T* first = block.mutable_data() + aligned_offset(block);
  if (g_poison) std::fill(first, first + count, std::numeric_limits<T>::quiet_NaN());
  return py::array_t<T>(dims, first, block);
}
}  // namespace

py::array new_array(DType dtype, const std::vector<int64_t>& shape) {
  return dtype == DType::F32 ? new_aligned<float>(shape) : new_aligned<double>(shape);
}

bool debug_poison() { return g_poison; }
void set_debug_poison(bool on) { g_poison = on; }

int add_registrar(Registrar fn, int order) {
  registrars().push_back(fn);
  return order;
}

void run_registrars(py::module_& m) {
  for (Registrar fn : registrars()) fn(m);
}

}  // namespace convcore::bind
