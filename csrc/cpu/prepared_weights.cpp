#include "cpu/prepared_weights.h"

#include "cpu/parallel.h"

namespace convcore::cpu {

namespace {
thread_local PreparedWeights* t_active = nullptr;
}  // namespace

bool PreparedWeights::knows(const void* source) const {
  if (source == source_) return true;
  std::lock_guard<std::mutex> lock(mutex_);
  for (const auto& entry : forms_)
    if (entry.second.data->get() == source) return true;
  return false;
}

const float* PreparedWeights::form(const void* source, const std::string& name, size_t floats,
                                   const std::function<void(float*)>& build) {
  if (!knows(source)) return nullptr;
  std::lock_guard<std::mutex> lock(mutex_);
  const auto key = std::make_pair(source, name + "/" + std::to_string(floats));
  auto found = forms_.find(key);
  if (found == forms_.end()) {
    Form fresh{std::make_unique<AlignedFloats>(floats), false};
    build(fresh.data->get());  // may throw: then nothing is stored
    found = forms_.emplace(key, std::move(fresh)).first;
  } else if (!found->second.complete) {
    build(found->second.data->get());
  }
  found->second.complete = !interrupted();
  return found->second.data->get();
}

size_t PreparedWeights::bytes() const {
  std::lock_guard<std::mutex> lock(mutex_);
  size_t total = 0;
  for (const auto& entry : forms_) total += entry.second.data->size() * sizeof(float);
  return total;
}

size_t PreparedWeights::count() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return forms_.size();
}

PreparedWeights* active_prepared_weights() { return t_active; }

PreparedWeightsScope::PreparedWeightsScope(PreparedWeights* prepared) : previous_(t_active) {
  t_active = prepared;
}

PreparedWeightsScope::~PreparedWeightsScope() { t_active = previous_; }

const float* prepared_form(const void* source, const std::string& name, size_t floats,
                           const std::function<void(float*)>& build) {
  PreparedWeights* prepared = active_prepared_weights();
  return prepared ? prepared->form(source, name, floats, build) : nullptr;
}

}  // namespace convcore::cpu
