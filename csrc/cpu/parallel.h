// One thread count for every OpenMP region in convcore, set by convcore.set_num_threads().
// Regions pass it explicitly (`num_threads(cpu::num_threads())`) rather than relying on
// omp_set_num_threads, whose setting belongs to the calling OS thread only.
#pragma once

namespace convcore::cpu {
int num_threads();
void set_num_threads(int n);  // n <= 0 restores the default (OpenMP's max threads at load time)
}  // namespace convcore::cpu
