#include "cpu/machine_probe.h"

#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <memory>
#include <vector>

#include "cpu/cpu_features.h"

namespace convcore::cpu {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// Portable fallback: 16 independent scalar multiply-add chains (the compiler may pack them into
// SSE vectors; either way each lane does 2 FLOP per step). Only reached without AVX2+FMA.
int64_t fma_blocks_scalar(int64_t blocks, float* sink) {
  constexpr int kChains = 16, kSteps = 64;
  float acc[kChains];
  for (int i = 0; i < kChains; ++i) acc[i] = static_cast<float>(i);
  for (int64_t blk = 0; blk < blocks; ++blk)
    for (int s = 0; s < kSteps; ++s)
      for (int i = 0; i < kChains; ++i) acc[i] = acc[i] * 0.999f + 0.001f;
  float sum = 0.0f;
  for (float v : acc) sum += v;
  *sink = sum;
  return blocks * kSteps * kChains;
}

struct FmaLoop {
  int64_t (*run)(int64_t, float*);
  int lanes;
  const char* isa;
};

FmaLoop fma_loop_for(Isa isa) {
  switch (isa) {
    case Isa::Avx512: return {&avx512::fma_blocks, avx512::kLanes, "avx512"};
    case Isa::Avx2: return {&avx2::fma_blocks, avx2::kLanes, "avx2"};
    default: return {&fma_blocks_scalar, 1, "scalar"};
  }
}

// One sample: every thread runs the loop for `seconds`, checking the clock between chunks of
// ~10 microseconds so the clock reads cost nothing measurable.
double fma_sample(const FmaLoop& loop, int threads, double seconds, double* wall) {
  constexpr int64_t kBlocksPerChunk = 64;
  std::vector<double> elapsed(threads, 0.0);
  std::vector<int64_t> lane_ops(threads, 0);
  std::vector<float> sinks(threads, 0.0f);
#pragma omp parallel num_threads(threads)
  {
    const int tid = omp_get_thread_num();
    int64_t ops = 0;
#pragma omp barrier
    const Clock::time_point t0 = Clock::now();
    double dt = 0.0;
    do {
      ops += loop.run(kBlocksPerChunk, &sinks[tid]);
      dt = seconds_since(t0);
    } while (dt < seconds);
    elapsed[tid] = dt;
    lane_ops[tid] = ops;
  }
  // The slowest thread bounds the wall time; a thread descheduled by a noisy neighbour lowers
  // the sample, and the max over samples filters that out.
  double longest = *std::max_element(elapsed.begin(), elapsed.end());
  int64_t total = 0;
  for (int64_t v : lane_ops) total += v;
  *wall = longest;
  volatile float keep = 0.0f;
  for (float s : sinks) keep = keep + s;
  (void)keep;
  return 2.0 * static_cast<double>(total) / longest * 1e-9;
}

struct FreeDeleter {
  void operator()(float* p) const { std::free(p); }
};
using Buffer = std::unique_ptr<float, FreeDeleter>;

Buffer alloc_buffer(int64_t count) {
  const size_t bytes = ((static_cast<size_t>(count) * sizeof(float) + 63) / 64) * 64;
  return Buffer(static_cast<float*>(std::aligned_alloc(64, bytes)));
}

}  // namespace

FmaProbeResult probe_fma_peak(int threads, double seconds, int samples) {
  threads = std::max(1, threads);
  samples = std::max(1, samples);
  seconds = std::clamp(seconds, 1e-3, 10.0);
  const FmaLoop loop = fma_loop_for(active_isa());
  FmaProbeResult best;
  best.threads = threads;
  best.lanes = loop.lanes;
  best.isa = loop.isa;
  // A short untimed run first: wakes the cores up to their turbo clock and spins up the pool.
  double wall = 0.0;
  fma_sample(loop, threads, std::min(seconds, 0.01), &wall);
  for (int s = 0; s < samples; ++s) {
    double gflops = fma_sample(loop, threads, seconds, &wall);
    if (gflops > best.gflops) {
      best.gflops = gflops;
      best.seconds = wall;
    }
  }
  return best;
}

BandwidthProbeResult probe_bandwidth(int threads, int64_t nbytes, int passes) {
  threads = std::max(1, threads);
  passes = std::max(1, passes);
  const int64_t count = std::max<int64_t>(nbytes / static_cast<int64_t>(sizeof(float)), 1024);
  Buffer a = alloc_buffer(count), b = alloc_buffer(count), c = alloc_buffer(count);
  BandwidthProbeResult r;
  r.threads = threads;
  r.nbytes = count * static_cast<int64_t>(sizeof(float));
  if (!a || !b || !c) return r;  // out of memory: report zeros rather than crash
  float* pa = a.get();
  float* pb = b.get();
  float* pc = c.get();
  // First touch with the same static schedule as the timed loops, so each thread's pages are
  // faulted in (and, on NUMA machines, placed) before timing starts.
#pragma omp parallel for schedule(static) num_threads(threads)
  for (int64_t i = 0; i < count; ++i) {
    pa[i] = 1.0f;
    pb[i] = 2.0f;
    pc[i] = 0.5f;
  }
  const double bytes = static_cast<double>(r.nbytes);
  const float scalar = 3.0f;
  // Pass 0 of each kernel is a warm-up and is not counted.
  for (int pass = 0; pass <= passes; ++pass) {
    Clock::time_point t0 = Clock::now();
#pragma omp parallel for schedule(static) num_threads(threads)
    for (int64_t i = 0; i < count; ++i) pb[i] = pa[i];
    double dt = seconds_since(t0);
    if (pass > 0) r.copy_gbs = std::max(r.copy_gbs, 2.0 * bytes / dt * 1e-9);

    t0 = Clock::now();
#pragma omp parallel for schedule(static) num_threads(threads)
    for (int64_t i = 0; i < count; ++i) pa[i] = pb[i] + scalar * pc[i];
    dt = seconds_since(t0);
    if (pass > 0) r.triad_gbs = std::max(r.triad_gbs, 3.0 * bytes / dt * 1e-9);
  }
  return r;
}

}  // namespace convcore::cpu
