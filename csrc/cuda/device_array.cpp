// The GPU array boundary (see device_array.h).
#include "cuda/device_array.h"


#include "common/errors.h"
#include "cuda/check.h"

namespace convcore::cuda_bind {

namespace {

// Leaked on purpose: Python objects must not be released by static destructors after the
// interpreter has finalised.
py::object* g_empty_hook = nullptr;
py::object* g_stream_hook = nullptr;
bool g_poison = false;

const char* dtype_name(DType d) {
  switch (d) {
    case DType::F32: return "float32";
    case DType::F64: return "float64";
    case DType::I64: return "int64";
  }
  return "?";
}

int64_t item_size(DType d) { return d == DType::F32 ? 4 : 8; }

// Parses __cuda_array_interface__ (versions 2 and 3): shape, typestr, data, strides.
DeviceArray read_interface(const py::handle& obj, const std::string& op, const char* name) {
  CC_CHECK_TYPE(py::hasattr(obj, "__cuda_array_interface__"), op, ": ", name,
                " must be a GPU array (an object with __cuda_array_interface__, e.g. CuPy or a "
                "CUDA torch tensor) like the op's other arrays, got ",
                std::string(py::str(py::type::of(obj).attr("__name__"))));
  py::dict cai = obj.attr("__cuda_array_interface__");
  DeviceArray a;
  a.owner = py::reinterpret_borrow<py::object>(obj);
  for (auto v : py::tuple(cai["shape"])) a.shape.push_back(v.cast<int64_t>());
  const std::string typestr = cai["typestr"].cast<std::string>();
  if (typestr == "<f4") a.dtype = DType::F32;
  else if (typestr == "<f8") a.dtype = DType::F64;
  else if (typestr == "<i8") a.dtype = DType::I64;
  else throw TypeError(detail::concat(op, ": ", name, " must be float32 or float64, got typestr '", typestr, "'"));
  py::tuple data = cai["data"];
  a.ptr = reinterpret_cast<void*>(data[0].cast<uintptr_t>());
  if (cai.contains("strides") && !cai["strides"].is_none()) {
    // C-contiguous means these strides (extent-1 axes may carry any stride)
    py::tuple strides = cai["strides"];
    int64_t expect = item_size(a.dtype);
    for (int64_t i = int64_t(a.shape.size()) - 1; i >= 0; --i) {
      CC_CHECK_VALUE(a.shape[i] <= 1 || strides[i].cast<int64_t>() == expect, op, ": ", name,
                     " must be C-contiguous (convcore.functional makes it so)");
      expect *= a.shape[i];
    }
  }
  if (a.numel() > 0) {
    CC_CHECK_VALUE(reinterpret_cast<uintptr_t>(a.ptr) % item_size(a.dtype) == 0, op, ": ", name,
                   " must be aligned to its element size");
    cudaPointerAttributes attr{};
    const cudaError_t status = cudaPointerGetAttributes(&attr, a.ptr);
    if (status != cudaSuccess) cudaGetLastError();  // clear: reported below as a TypeError
    CC_CHECK_TYPE(status == cudaSuccess && (attr.type == cudaMemoryTypeDevice ||
                                            attr.type == cudaMemoryTypeManaged),
                  op, ": ", name, " does not point to CUDA device memory");
    a.device = attr.device;
  }
  return a;
}

void check_ndim(const DeviceArray& a, const std::string& op, const char* name, int ndim) {
  CC_CHECK_VALUE(ndim < 0 || int(a.shape.size()) == ndim, op, ": ", name, " must be ", ndim,
                 "-D, got shape ", shape_str(a.shape));
}

void check_same_device(const DeviceArray& a, const DeviceArray& want, const std::string& op,
                       const char* name) {
  CC_CHECK_VALUE(a.device < 0 || want.device < 0 || a.device == want.device, op, ": ", name,
                 " is on GPU ", a.device, " but the op's first array is on GPU ", want.device);
}

}  // namespace

int64_t DeviceArray::numel() const {
  int64_t n = 1;
  for (int64_t e : shape) n *= e;
  return n;
}

Shape4 DeviceArray::shape4() const {
  CC_ASSERT(shape.size() == 4);
  return {shape[0], shape[1], shape[2], shape[3]};
}

std::string shape_str(const std::vector<int64_t>& shape) {
  std::string out = "(";  // appends, not a stream: see detail::concat in common/errors.h
  for (size_t i = 0; i < shape.size(); ++i) out += (i ? ", " : "") + std::to_string(shape[i]);
  out += shape.size() == 1 ? ",)" : ")";
  return out;
}

DeviceArray float_array(const py::handle& obj, const std::string& op, const char* name, int ndim) {
  DeviceArray a = read_interface(obj, op, name);
  CC_CHECK_TYPE(a.dtype != DType::I64, op, ": ", name, " must be float32 or float64, got int64");
  check_ndim(a, op, name, ndim);
  return a;
}

DeviceArray float_array_like(const py::handle& obj, const DeviceArray& want, const std::string& op,
                             const char* name, const char* first_name, int ndim) {
  DeviceArray a = float_array(obj, op, name, ndim);
  CC_CHECK_TYPE(a.dtype == want.dtype, op, ": ", name, " has dtype ", dtype_name(a.dtype), " but ",
                first_name, " has ", dtype_name(want.dtype), "; mixed dtypes are not supported");
  check_same_device(a, want, op, name);
  return a;
}

DeviceArray index_array(const py::handle& obj, const DeviceArray& want,
                        const std::vector<int64_t>& shape, const std::string& op) {
  DeviceArray a = read_interface(obj, op, "indices");
  CC_CHECK_TYPE(a.dtype == DType::I64, op, ": indices must be int64, got ", dtype_name(a.dtype));
  CC_CHECK_VALUE(a.shape == shape, op, ": indices has shape ", shape_str(a.shape),
                 " but the forward output has shape ", shape_str(shape));
  check_same_device(a, want, op, "indices");
  return a;
}

CallContext::CallContext(const DeviceArray& like) : like_(like) {
  CC_CHECK_TYPE(g_empty_hook && g_stream_hook, "convcore._cuda: array hooks are not installed "
                "(import convcore, which installs them, instead of convcore._cuda alone)");
  CC_CUDA_CHECK(cudaGetDevice(&previous_device_));
  if (like.device >= 0 && like.device != previous_device_) CC_CUDA_CHECK(cudaSetDevice(like.device));
  stream_ = reinterpret_cast<cudaStream_t>((*g_stream_hook)(like.owner).cast<uintptr_t>());
}

CallContext::~CallContext() {
  int current = -1;
  if (cudaGetDevice(&current) == cudaSuccess && current != previous_device_) cudaSetDevice(previous_device_);
}

DeviceArray CallContext::empty(DType dtype, const std::vector<int64_t>& shape) const {
  py::tuple py_shape(shape.size());
  for (size_t i = 0; i < shape.size(); ++i) py_shape[i] = py::int_(shape[i]);
  py::object out = (*g_empty_hook)(like_.owner, py_shape, dtype_name(dtype));
  DeviceArray a = read_interface(out, "convcore._cuda", "a new output");
  CC_ASSERT(a.dtype == dtype && a.shape == shape);
  if (g_poison && a.numel() > 0) {
    // all-ones bytes are a NaN in float32 and float64; indices get 0x80... (a huge negative)
    CC_CUDA_CHECK(cudaMemsetAsync(a.ptr, dtype == DType::I64 ? 0x80 : 0xFF,
                                  size_t(a.numel() * item_size(dtype)), stream_));
  }
  return a;
}

void set_array_hooks(py::object empty, py::object stream_of) {
  delete g_empty_hook;
  delete g_stream_hook;
  g_empty_hook = new py::object(std::move(empty));
  g_stream_hook = new py::object(std::move(stream_of));
}

void set_debug_poison(bool on) { g_poison = on; }

}  // namespace convcore::cuda_bind
