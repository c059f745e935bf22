#include "bindings/interrupt.h"

#include <pythread.h>
#include <signal.h>

#include <mutex>

#include "cpu/parallel.h"

namespace convcore::bind::detail {
namespace {

// All state below is guarded by g_mutex except the flag itself (an atomic the handler sets).
std::mutex g_mutex;
// Counts the clears of the flag. A call on another thread compares it at its start and end: if
// the flag was cleared in between, the call may have seen it set and skipped work.
unsigned long g_episode = 0;
struct sigaction g_previous;

extern "C" void on_sigint(int) { cpu::request_interrupt(); }

unsigned long main_thread_ident() {
  static const unsigned long ident =
      py::module_::import("threading").attr("main_thread")().attr("ident").cast<unsigned long>();
  return ident;
}

// True when the current C-level SIGINT action belongs to Python (a Python-level handler is set);
// SIG_DFL and SIG_IGN are the user's choice and stay untouched.
bool python_handles(const struct sigaction& act) {
  if (act.sa_flags & SA_SIGINFO) return true;
  return act.sa_handler != SIG_DFL && act.sa_handler != SIG_IGN;
}

}  // namespace

InterruptScope::InterruptScope(bool arm) {
  main_thread_ = PyThread_get_thread_ident() == main_thread_ident();
  std::lock_guard<std::mutex> lock(g_mutex);
  episode_ = g_episode;
  // An unarmed main-thread call cannot see the flag: only an armed main-thread call sets it,
  // and the main thread runs one call at a time.
  if (!main_thread_ || !arm) return;
  struct sigaction ours {};
  ours.sa_handler = on_sigint;
  sigemptyset(&ours.sa_mask);
  ours.sa_flags = 0;  // no SA_RESTART needed: kernels make no system calls
  if (sigaction(SIGINT, &ours, &g_previous) != 0) return;
  armed_ = true;
  if (!python_handles(g_previous)) {  // put SIG_IGN / SIG_DFL straight back
    sigaction(SIGINT, &g_previous, nullptr);
    armed_ = false;
  }
}

bool InterruptScope::finish() {
  finished_ = true;
  std::lock_guard<std::mutex> lock(g_mutex);
  // Disarm first: after this no signal can set the flag until the next main-thread call, so a
  // clear below cannot lose one.
  if (armed_) sigaction(SIGINT, &g_previous, nullptr);
  const bool flag = cpu::interrupted();
  bool stopped = flag || g_episode != episode_;
  if (main_thread_ && flag) {
    // Only main-thread calls arm the handler, so the flag belongs to this call's episode.
    cpu::clear_interrupt();
    ++g_episode;
    // Hand the signal to Python: its handler runs at the next PyErr_CheckSignals.
    PyErr_SetInterrupt();
  }
  return stopped;
}

InterruptScope::~InterruptScope() {
  // Unwinding (an exception from the work): disarm and clear, but report nothing.
  if (!finished_) finish();
}

}  // namespace convcore::bind::detail
