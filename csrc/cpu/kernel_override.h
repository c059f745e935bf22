// A test/bench hook that forces one kernel on (1) wherever it applies or off (0), or leaves the
// choice to its shape rule (-1); it starts from an environment variable read on first use.
#pragma once
#include <atomic>
#include <cstdlib>

namespace convcore::cpu {

class KernelOverride {
 public:
  explicit KernelOverride(const char* env_name) : env_name_(env_name) {}

  // -1 (the rule), 0 or 1
  int mode() {
    int v = mode_.load();
    if (v == -2) {
      const char* env = std::getenv(env_name_);
      int parsed = -1;
      if (env && (env[0] == '0' || env[0] == '1') && env[1] == 0) parsed = env[0] - '0';
      mode_.compare_exchange_strong(v, parsed);
      v = mode_.load();
    }
    return v;
  }
  // 0 or 1 force; anything else restores the rule. Returns the previous mode.
  int set(int mode) {
    const int before = this->mode();
    mode_ = (mode == 0 || mode == 1) ? mode : -1;
    return before;
  }

 private:
  const char* env_name_;
  std::atomic<int> mode_{-2};  // -2: not read from the environment yet
};

}  // namespace convcore::cpu
