// Ctrl-C during a long native call. Every binding runs its kernels through run_interruptible:
//   - on Python's main thread, while Python's own SIGINT handler is in place, a C-level handler is
//     installed for the duration of the call; it only sets cpu::interrupted() (async-signal-safe),
//     which the kernels' outer loops poll, so the call stops within one iteration instead of
//     running to its end;
//   - the previous handler is restored before the GIL is taken back, then the signal is handed to
//     Python (PyErr_SetInterrupt + PyErr_CheckSignals): its handler runs as if the signal had just
//     arrived, normally raising KeyboardInterrupt, and the half-written output is never returned;
//   - if that handler does not raise (a user handler that only logs), or if the call ran on another
//     thread and saw the flag of a main-thread interrupt, the work is simply run again from the
//     start: kernels write every output element, so a re-run leaves no trace of the stopped one.
// Where Python ignores SIGINT or uses the default action (SIG_IGN / SIG_DFL), nothing is installed.
// Nor is it for short calls: installing and restoring a handler costs two system calls (about
// 2 us, measured), a fifth of a tiny conv's whole call, while a Ctrl-C that arrives during a call
// under a millisecond is handled by Python right after it anyway.
#pragma once
#include <pybind11/pybind11.h>

#include "common/conv_params.h"
#include "common/pool_params.h"

namespace convcore::bind {

namespace py = pybind11;

namespace detail {
// Bookkeeping around one call (GIL held); see interrupt.cpp for why each step is ordered so.
class InterruptScope {
 public:
  explicit InterruptScope(bool arm);
  ~InterruptScope();
  // Disarms and reports whether the work may have been cut short (its output must be discarded).
  bool finish();

 private:
  bool main_thread_ = false;
  bool armed_ = false;
  bool finished_ = false;
  unsigned long episode_ = 0;
};
}  // namespace detail

// Below this many multiply-adds (or element visits) a call is not worth arming: well under a
// millisecond at the kernels' speed.
constexpr double kArmWork = double(1 << 20);

// Rough work of a call, for the arming threshold only (double: the products may pass int64).
inline double conv_work(const ConvParams& p) {
  return double(p.n) * double(p.k) * double(p.out_h) * double(p.out_w) *
         double(p.c_per_group()) * double(p.kh) * double(p.kw);
}
inline double pool_work(const PoolParams& p) {
  return double(p.planes()) * (double(p.h) * double(p.w) +
                               double(p.out_h) * double(p.out_w) * double(p.kh) * double(p.kw));
}

// Runs work() without the GIL, interruptible by Ctrl-C when `work_estimate` (conv_work,
// pool_work, ...) reaches kArmWork. Call with the GIL held.
template <typename Fn>
void run_interruptible(double work_estimate, Fn&& work) {
  for (;;) {
    bool stopped;
    {
      detail::InterruptScope scope(work_estimate >= kArmWork);
      {
        py::gil_scoped_release nogil;
        work();
      }
      stopped = scope.finish();
    }
    if (!stopped) return;
    if (PyErr_CheckSignals() != 0) throw py::error_already_set();
  }
}

}  // namespace convcore::bind
