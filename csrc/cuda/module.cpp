// convcore._cuda: the CUDA extension. Importable on machines with no GPU and no driver (the
// runtime is linked statically); device_info() says what it finds.
#include <cuda_runtime.h>
#include <pybind11/pybind11.h>

#include "cuda/launch.cuh"

namespace py = pybind11;

PYBIND11_MODULE(_cuda, m) {
  m.doc() = "convcore CUDA kernels (internal)";
  m.def("device_info", [] {
    py::dict info;
    info["built"] = true;
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
  });
}
