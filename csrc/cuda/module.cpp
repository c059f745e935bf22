// convcore._cuda: the CUDA extension. Importable on machines with no GPU and no driver (the
// runtime is linked statically); device_info() says what it finds. Its op functions have the
// names and arguments of convcore._cpu's, taking GPU arrays (see device_array.h), so
// convcore.functional routes a call by choosing the module.
#include <cuda_runtime.h>
#include <pybind11/pybind11.h>

#include "common/errors.h"
#include "cuda/device_array.h"
#include "cuda/check.h"
#include "cuda/gemm.cuh"

namespace py = pybind11;

namespace convcore::cuda_bind {
void register_conv(py::module_& m);
void register_pool(py::module_& m);
void register_separable(py::module_& m);
void register_local(py::module_& m);
}  // namespace convcore::cuda_bind

namespace {

py::dict device_info() {
  py::dict info;
  info["built"] = true;
#ifdef CONVCORE_CUDA_EMULATE
  info["emulated"] = true;  // the CPU test harness, not a GPU (CONVCORE_CUDA_EMULATE)
#else
  info["emulated"] = false;
#endif
  int runtime = 0;
  cudaRuntimeGetVersion(&runtime);
  info["runtime_version"] = runtime;
  int driver = 0;
  cudaDriverGetVersion(&driver);
  info["driver_version"] = driver;
  int count = 0;
  cudaError_t status = cudaGetDeviceCount(&count);
  py::list devices;
  if (status == cudaSuccess) {
    for (int i = 0; i < count; ++i) {
      cudaDeviceProp prop;
      if (cudaGetDeviceProperties(&prop, i) != cudaSuccess) continue;
      py::dict d;
      d["name"] = std::string(prop.name);
      d["compute_capability"] = py::make_tuple(prop.major, prop.minor);
      d["memory_bytes"] = static_cast<long long>(prop.totalGlobalMem);
      d["multiprocessors"] = prop.multiProcessorCount;
      devices.append(d);
    }
  } else {
    cudaGetLastError();  // clear the sticky "no device"/"no driver" status
    info["reason"] = std::string(cudaGetErrorString(status));
  }
  info["devices"] = devices;
  info["available"] = py::len(devices) > 0;
  return info;
}

}  // namespace

PYBIND11_MODULE(_cuda, m) {
  m.doc() = "convcore CUDA kernels (internal; use convcore.functional)";
  // The same translation as convcore._cpu's: user mistakes become ValueError/TypeError/MemoryError.
  py::register_exception_translator([](std::exception_ptr e) {
    try {
      if (e) std::rethrow_exception(e);
    } catch (const convcore::ValueError& err) {
      PyErr_SetString(PyExc_ValueError, err.what());
    } catch (const convcore::TypeError& err) {
      PyErr_SetString(PyExc_TypeError, err.what());
    } catch (const convcore::MemoryError& err) {
      PyErr_SetString(PyExc_MemoryError, err.what());
    }
  });
  m.def("device_info", &device_info, "What the CUDA runtime finds: devices, versions");
  m.def("_set_array_hooks", &convcore::cuda_bind::set_array_hooks, py::arg("empty"),
        py::arg("stream_of"),
        "Installs empty(like, shape, dtype) -> new array and stream_of(like) -> int (convcore._gpu)");
  m.def("_set_allow_tf32", &convcore::cuda::set_allow_tf32, py::arg("on"),
        "float32 GEMMs (every non-depthwise conv) on TF32 tensor cores (convcore.set_allow_tf32)");
  m.def("_allow_tf32", &convcore::cuda::allow_tf32, "Whether float32 GEMMs use TF32");
  m.def("_set_debug_poison", &convcore::cuda_bind::set_debug_poison, py::arg("on"),
        "Test hook: fill every new output with NaN before the kernels run");
  m.def("_synchronize", [] {
    py::gil_scoped_release nogil;
    CC_CUDA_CHECK(cudaDeviceSynchronize());
  }, "Waits for all work on the current device (tests and the benchmark)");
  convcore::cuda_bind::register_conv(m);
  convcore::cuda_bind::register_pool(m);
  convcore::cuda_bind::register_separable(m);
  convcore::cuda_bind::register_local(m);
}
