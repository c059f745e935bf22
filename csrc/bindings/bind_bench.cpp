// Bindings for the benchmark's machine probes (convcore._cpu._probe_*). Underscored: they are
// for convcore.bench and the tests, not part of the public API.
#include <pybind11/pybind11.h>

#include "bindings/array.h"
#include "common/errors.h"
#include "cpu/machine_probe.h"

namespace convcore::bind {
namespace {

py::dict probe_fma_peak(int threads, double seconds, int samples) {
  CC_CHECK_VALUE(threads >= 1, "_probe_fma_peak: threads must be >= 1, got ", threads);
  CC_CHECK_VALUE(seconds > 0.0, "_probe_fma_peak: seconds must be > 0, got ", seconds);
  CC_CHECK_VALUE(samples >= 1, "_probe_fma_peak: samples must be >= 1, got ", samples);
  cpu::FmaProbeResult r;
  {
    py::gil_scoped_release nogil;
    r = cpu::probe_fma_peak(threads, seconds, samples);
  }
  py::dict d;
  d["gflops"] = r.gflops;
  d["seconds"] = r.seconds;
  d["threads"] = r.threads;
  d["lanes"] = r.lanes;
  d["isa"] = r.isa;
  return d;
}

py::dict probe_bandwidth(int threads, int64_t nbytes, int passes) {
  CC_CHECK_VALUE(threads >= 1, "_probe_bandwidth: threads must be >= 1, got ", threads);
  CC_CHECK_VALUE(nbytes >= 4096, "_probe_bandwidth: nbytes must be >= 4096, got ", nbytes);
  CC_CHECK_VALUE(passes >= 1, "_probe_bandwidth: passes must be >= 1, got ", passes);
  cpu::BandwidthProbeResult r;
  {
    py::gil_scoped_release nogil;
    r = cpu::probe_bandwidth(threads, nbytes, passes);
  }
  CC_CHECK_VALUE(r.copy_gbs > 0.0, "_probe_bandwidth: could not allocate 3 arrays of ", nbytes, " bytes");
  py::dict d;
  d["copy_gbs"] = r.copy_gbs;
  d["triad_gbs"] = r.triad_gbs;
  d["gbs"] = r.copy_gbs > r.triad_gbs ? r.copy_gbs : r.triad_gbs;
  d["nbytes"] = r.nbytes;
  d["threads"] = r.threads;
  return d;
}

void register_bench(py::module_& m) {
  using namespace pybind11::literals;
  m.def("_probe_fma_peak", &probe_fma_peak, "threads"_a, "seconds"_a = 0.05, "samples"_a = 5,
        "Peak float32 FMA throughput (GFLOP/s) on the widest vectors in use: best of `samples` "
        "loops of `seconds` each on `threads` OpenMP threads. Returns a dict.");
  m.def("_probe_bandwidth", &probe_bandwidth, "threads"_a, "nbytes"_a, "passes"_a = 5,
        "Streaming bandwidth (GB/s): copy and triad over arrays of `nbytes` each, best of "
        "`passes`. Returns a dict with copy_gbs, triad_gbs and gbs (the larger).");
}

}  // namespace

CONVCORE_REGISTER_BINDINGS(register_bench);

}  // namespace convcore::bind
