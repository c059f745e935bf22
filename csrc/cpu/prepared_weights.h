// Prepared forms of frozen weights, kept across calls (Python: convcore.FrozenWeights).
//
// Why: a convolution re-derives from its weights, on every call, forms that depend on nothing
// else: Winograd's transformed kernels packed for the GEMM micro-kernel, the turned kernel of the
// input gradient. With one image per call these cost as much as the products: on NIN's
// conv4_1024 (12x12 map, 384 -> 1024 channels) transforming 393k kernels was a third of the
// Winograd forward, which is why "auto" gives such maps to im2col. A network whose weights never
// change during a run (style transfer's feature network) can build them once. A NumPy array
// carries no version, so nothing is cached behind the caller's back: the caller snapshots the
// weights into a FrozenWeights, and calls that pass it bind its PreparedWeights to the calling
// thread (PreparedWeightsScope) for the kernels to find.
//
// Forms are keyed by their source (the frozen array's data, or another form this object holds,
// such as the turned kernel) and a name that says everything the layout depends on (algorithm,
// micro-kernel rows, channel counts). A kernel asks only with a source the object knows: a
// kernel handed a scratch buffer (whose contents change between calls) gets nullptr and builds
// its form as usual.
#pragma once
#include <cstddef>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>

#include "cpu/scratch.h"

namespace convcore::cpu {

class PreparedWeights {
 public:
  // source: the frozen weights' data (float32, never written while this object lives).
  explicit PreparedWeights(const void* source) : source_(source) {}
  PreparedWeights(const PreparedWeights&) = delete;
  PreparedWeights& operator=(const PreparedWeights&) = delete;

  const void* source() const { return source_; }
  // The weights themselves, or a form this object holds.
  bool knows(const void* source) const;
  // The form `name` of `source`, `floats` floats, built by build(dst) on its first use (on the
  // calling thread, under this object's lock: two threads never build one form twice). nullptr
  // when `source` is not known. A build that throws stores nothing; one that a Ctrl-C cut short
  // serves its (discarded) call and is built again next time.
  const float* form(const void* source, const std::string& name, size_t floats,
                    const std::function<void(float*)>& build);
  size_t bytes() const;    // held by the forms built so far
  size_t count() const;

 private:
  const void* source_;
  mutable std::mutex mutex_;
  struct Form {
    std::unique_ptr<AlignedFloats> data;
    bool complete;  // false: a Ctrl-C cut its build short; the next use builds it again
  };
  std::map<std::pair<const void*, std::string>, Form> forms_;
};

// The PreparedWeights bound to the call running on this thread, or nullptr.
PreparedWeights* active_prepared_weights();

// Binds `prepared` (may be nullptr) to the calling thread for this scope's lifetime.
class PreparedWeightsScope {
 public:
  explicit PreparedWeightsScope(PreparedWeights* prepared);
  ~PreparedWeightsScope();
  PreparedWeightsScope(const PreparedWeightsScope&) = delete;
  PreparedWeightsScope& operator=(const PreparedWeightsScope&) = delete;

 private:
  PreparedWeights* previous_;
};

// The form of `source` from the active PreparedWeights when it knows `source`; otherwise
// nullptr (the caller builds its form in its own buffer, as without prepared weights).
const float* prepared_form(const void* source, const std::string& name, size_t floats,
                           const std::function<void(float*)>& build);

}  // namespace convcore::cpu
