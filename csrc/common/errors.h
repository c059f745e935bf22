// Typed errors for user mistakes, and internal asserts for our own bugs.
//
// CC_CHECK_VALUE / CC_CHECK_TYPE throw convcore::ValueError / convcore::TypeError, which the
// bindings translate (in one place, bindings/module.cpp) into Python ValueError / TypeError.
// Nothing in convcore ever calls exit() or abort(): a bad argument must never take the user's
// interpreter down. CC_ASSERT is for conditions that only a convcore bug can break (kernels
// assert on params that validation already guaranteed).
#pragma once
#include <sstream>
#include <stdexcept>
#include <string>

namespace convcore {

struct ValueError : std::runtime_error {
  using std::runtime_error::runtime_error;
};
struct TypeError : std::runtime_error {
  using std::runtime_error::runtime_error;
};
// A temporary buffer would exceed the configured workspace limit (CONVCORE_MAX_WORKSPACE).
struct MemoryError : std::runtime_error {
  using std::runtime_error::runtime_error;
};
struct InternalError : std::logic_error {
  using std::logic_error::logic_error;
};

namespace detail {
inline void append_all(std::ostringstream&) {}
template <typename T, typename... Rest>
void append_all(std::ostringstream& os, const T& first, const Rest&... rest) {
  os << first;
  append_all(os, rest...);
}
template <typename... Parts>
std::string concat(const Parts&... parts) {
  std::ostringstream os;
  append_all(os, parts...);
  return os.str();
}
}  // namespace detail

}  // namespace convcore

#define CC_CHECK_VALUE(cond, ...) \
  do { if (!(cond)) throw ::convcore::ValueError(::convcore::detail::concat(__VA_ARGS__)); } while (0)
#define CC_CHECK_TYPE(cond, ...) \
  do { if (!(cond)) throw ::convcore::TypeError(::convcore::detail::concat(__VA_ARGS__)); } while (0)
#define CC_ASSERT(cond)                                                                  \
  do {                                                                                   \
    if (!(cond))                                                                         \
      throw ::convcore::InternalError(::convcore::detail::concat(                        \
          "convcore internal error (please report a bug): ", #cond, " at ", __FILE__, ":", \
          __LINE__));                                                                    \
  } while (0)
