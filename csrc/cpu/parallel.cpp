#include "cpu/parallel.h"

#include <omp.h>

namespace convcore::cpu {
namespace {
int default_threads() {
  int n = omp_get_max_threads();
  return n > 0 ? n : 1;
}
std::atomic<int> g_threads{0};
}  // namespace

namespace detail {
std::atomic<bool> g_interrupted{false};
static_assert(std::atomic<bool>::is_always_lock_free, "the SIGINT handler needs a lock-free flag");
}  // namespace detail

int num_threads() {
  int n = g_threads.load(std::memory_order_relaxed);
  return n > 0 ? n : default_threads();
}

void set_num_threads(int n) { g_threads.store(n > 0 ? n : 0, std::memory_order_relaxed); }
}  // namespace convcore::cpu
