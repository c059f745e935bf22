// FMA throughput loops: the machine's float32 peak on one core, measured where the GEMM runs so
// "% of peak" compares against the clock and the vector width of that very run.
// Each runs `iters` rounds of kFmaPeakChains independent FMAs on the widest vectors of its ISA and
// returns a value that depends on all of them (so the loop cannot be optimised away).
// FLOPs done = iters * kFmaPeakChains * lanes * 2, lanes = 16 (avx512), 8 (avx2).
#pragma once
#include <cstdint>

namespace convcore::cpu {
// 12 chains: more than 2 ports x 4-5 cycles latency, fewer than the 16 registers AVX2 has.
constexpr int kFmaPeakChains = 12;
float fma_peak_loop_avx512(int64_t iters);
float fma_peak_loop_avx2(int64_t iters);
}  // namespace convcore::cpu
