// convcore._cpu: the CPU extension module. This file holds what is shared by every binding (the
// exception translator, threads, backends info, shape formulas); each op family binds itself
// from its own bind_*.cpp through CONVCORE_REGISTER_BINDINGS.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "bindings/array.h"
#include "common/errors.h"
#include "common/select_algo.h"
#include "common/shapes.h"
#include "cpu/conv_broadcast.h"
#include "cpu/conv_grouped.h"
#include "cpu/cpu_features.h"
#include "cpu/parallel.h"

namespace py = pybind11;
using namespace convcore;

PYBIND11_MODULE(_cpu, m) {
  m.doc() = "convcore CPU kernels (internal; use convcore.functional)";

  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const ValueError& e) {
      PyErr_SetString(PyExc_ValueError, e.what());
    } catch (const TypeError& e) {
      PyErr_SetString(PyExc_TypeError, e.what());
    } catch (const MemoryError& e) {
      PyErr_SetString(PyExc_MemoryError, e.what());
    } catch (const InternalError& e) {
      PyErr_SetString(PyExc_RuntimeError, e.what());
    }
  });

  m.def("set_num_threads", &cpu::set_num_threads, py::arg("n"));
  m.def("get_num_threads", &cpu::num_threads);
  m.def("_set_debug_poison", &bind::set_debug_poison, py::arg("on"),
        "Test hook: fill every new output with NaN before the kernel runs.");

  m.def("cpu_info", [] {
    const auto& f = cpu::cpu_features();
    py::dict d;
    d["vendor"] = f.vendor;
    d["brand"] = f.brand;
    d["family"] = f.family;
    py::dict flags;
    flags["avx2"] = f.avx2; flags["fma"] = f.fma; flags["avx512f"] = f.avx512f;
    flags["avx512bw"] = f.avx512bw; flags["avx512vl"] = f.avx512vl; flags["avx512dq"] = f.avx512dq;
    d["features"] = flags;
    d["best_isa"] = cpu::isa_name(cpu::best_supported_isa());
    d["isa"] = cpu::isa_name(cpu::active_isa());
    return d;
  });
  m.def("_set_isa", [](const std::string& name) {
    cpu::Isa want;
    if (name == "scalar") want = cpu::Isa::Scalar;
    else if (name == "avx2") want = cpu::Isa::Avx2;
    else if (name == "avx512") want = cpu::Isa::Avx512;
    else throw ValueError("_set_isa: isa must be 'scalar', 'avx2' or 'avx512', got '" + name + "'");
    return std::string(cpu::isa_name(cpu::set_active_isa(want)));
  }, py::arg("isa"), "Force the kernel ISA (clamped to what the CPU supports); returns the level in use.");

  m.def("_set_conv_broadcast", &cpu::set_broadcast_conv_override, py::arg("mode"),
        "float32 conv forward: 1 runs the broadcast kernel (cpu/conv_broadcast.h) wherever it "
        "applies, 0 never, -1 the shape rule; returns the previous mode.");
  m.def("_set_conv_grouped", &cpu::set_grouped_conv_override, py::arg("mode"),
        "float32 grouped conv forward: 1 runs the pixels-in-lanes kernel (cpu/conv_grouped.h) "
        "wherever it applies, 0 never, -1 the shape rule; returns the previous mode.");

  m.def("_set_max_workspace", &set_max_workspace_bytes, py::arg("bytes"),
        "Limit on one call's temporary buffers in bytes (< 0: unlimited); overrides CONVCORE_MAX_WORKSPACE.");
  m.def("_get_max_workspace", &max_workspace_bytes);

  m.def("conv_out_extent", &conv_out_extent, py::arg("in_extent"), py::arg("kernel"),
        py::arg("stride"), py::arg("pad_before"), py::arg("pad_after"), py::arg("dilation"));
  m.def("conv_transpose_out_extent", &conv_transpose_out_extent, py::arg("in_extent"),
        py::arg("kernel"), py::arg("stride"), py::arg("pad_before"), py::arg("pad_after"),
        py::arg("dilation"), py::arg("output_padding"));
  m.def("pool_out_extent", &pool_out_extent, py::arg("in_extent"), py::arg("kernel"),
        py::arg("stride"), py::arg("pad_before"), py::arg("pad_after"), py::arg("dilation"),
        py::arg("ceil_mode"));

  bind::run_registrars(m);
}
