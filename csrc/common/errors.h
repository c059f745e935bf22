// Typed errors for user mistakes, and internal asserts for our own bugs.
//
// CC_CHECK_VALUE / CC_CHECK_TYPE throw convcore::ValueError / convcore::TypeError, which the
// bindings translate (in one place, bindings/module.cpp) into Python ValueError / TypeError.
// Nothing in convcore ever calls exit() or abort(): a bad argument must never take the user's
// interpreter down. CC_ASSERT is for conditions that only a convcore bug can break (kernels
// assert on params that validation already guaranteed).
#pragma once
#include <cstdio>
#include <stdexcept>
#include <string>
#include <type_traits>

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
// Messages are built by plain string appends, not std::ostringstream: an extension linked against
// a static libstdc++ (some toolchains do so by default; the lent GPU machine's /opt/gcc 13 did)
// shares the process with the system's shared one, and formatting a number through a stream's
// locale facets then crashed (segfault in basic_ostream::_M_insert<long>) instead of raising.
inline void append_part(std::string& out, const std::string& part) { out += part; }
inline void append_part(std::string& out, const char* part) { out += part; }
inline void append_part(std::string& out, char part) { out += part; }
template <typename T>
std::enable_if_t<std::is_integral_v<T>> append_part(std::string& out, T value) {
  out += std::to_string(value);
}
template <typename T>
std::enable_if_t<std::is_floating_point_v<T>> append_part(std::string& out, T value) {
  char buffer[32];
  std::snprintf(buffer, sizeof(buffer), "%g", static_cast<double>(value));
  out += buffer;
}
template <typename... Parts>
std::string concat(const Parts&... parts) {
  std::string out;
  (append_part(out, parts), ...);
  return out;
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
