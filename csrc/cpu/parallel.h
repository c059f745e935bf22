// One thread count for every OpenMP region in convcore, set by convcore.set_num_threads().
// Regions pass it explicitly (`num_threads(cpu::num_threads())`) rather than relying on
// omp_set_num_threads, whose setting belongs to the calling OS thread only.
//
// Cooperative interrupt (Ctrl-C): the bindings (bindings/interrupt.*) arm a SIGINT handler
// around a long call that sets one atomic flag; the outer loops of the long-running kernels
// skip their remaining iterations once it is set (`if (cpu::interrupted()) continue;`), and the
// binding then discards the half-written output and raises KeyboardInterrupt. Kernels never
// clear the flag: once set it stays set until the binding's call ends, so any loop that would
// consume a skipped iteration's results is skipped too.
#pragma once

#include <atomic>

namespace convcore::cpu {
int num_threads();
void set_num_threads(int n);  // n <= 0 restores the default (OpenMP's max threads at load time)

namespace detail {
extern std::atomic<bool> g_interrupted;  // lock-free, so a signal handler may set it
}
// Polled once per outer-loop iteration: one relaxed load, no cost worth measuring.
inline bool interrupted() { return detail::g_interrupted.load(std::memory_order_relaxed); }
// Async-signal-safe: what the SIGINT handler calls.
inline void request_interrupt() { detail::g_interrupted.store(true, std::memory_order_relaxed); }
// Only the bindings call this, when no kernel can still be reading the flag for a stopped call.
inline void clear_interrupt() { detail::g_interrupted.store(false, std::memory_order_relaxed); }
}  // namespace convcore::cpu
