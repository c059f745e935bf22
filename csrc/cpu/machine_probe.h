// Machine probes for the benchmark: how fast this CPU can do FMAs and stream memory, measured
// in the same run as the kernels they judge (the VM's clock and even its CPU model move between
// runs, so a peak from a datasheet or yesterday's run would make every "% of peak" wrong).
#pragma once
#include <cstdint>

namespace convcore::cpu {

struct FmaProbeResult {
  double gflops = 0.0;   // best sample: 2 FLOP per FMA lane, summed over threads
  double seconds = 0.0;  // wall time of that sample
  int threads = 0;
  int lanes = 0;         // float32 lanes per vector the loop used (16 zmm, 8 ymm, 4 xmm/scalar)
  const char* isa = "";  // which loop ran: "avx512", "avx2" or "scalar"
};

// Runs `samples` samples of an FMA loop lasting about `seconds` each on `threads` threads
// (OpenMP; each thread keeps independent accumulators) and returns the fastest sample.
FmaProbeResult probe_fma_peak(int threads, double seconds, int samples);

struct BandwidthProbeResult {
  double copy_gbs = 0.0;   // b[i] = a[i]: counts 2 * nbytes per pass (read + write, STREAM's rule)
  double triad_gbs = 0.0;  // a[i] = b[i] + s * c[i]: counts 3 * nbytes per pass
  int64_t nbytes = 0;      // size of each array
  int threads = 0;
};

// Streams arrays of `nbytes` each (callers pass several times the L2 size so the reads come from
// DRAM or at least from beyond the private caches); best of `passes` passes of each kernel.
BandwidthProbeResult probe_bandwidth(int threads, int64_t nbytes, int passes);

// Per-ISA FMA inner loops: run `blocks` blocks of a fixed number of FMAs per lane on independent
// accumulators and return the number of FMA lane-operations done (so the caller can count FLOPs).
// Each returns a value derived from the accumulators so the compiler cannot drop the loop.
namespace avx512 {
int64_t fma_blocks(int64_t blocks, float* sink);
constexpr int kLanes = 16;
}
namespace avx2 {
int64_t fma_blocks(int64_t blocks, float* sink);
constexpr int kLanes = 8;
}

}  // namespace convcore::cpu
