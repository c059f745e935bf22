#include "cpu/scratch.h"

#include <cstdlib>
#include <new>

namespace convcore::cpu {

AlignedFloats::AlignedFloats(size_t count) : count_(count) {
  const size_t bytes = ((count * sizeof(float) + 63) / 64) * 64;
  data_ = static_cast<float*>(std::aligned_alloc(64, bytes > 0 ? bytes : 64));
  if (!data_) throw std::bad_alloc();
}

AlignedFloats::~AlignedFloats() { std::free(data_); }

namespace {
struct ThreadCache {
  std::unique_ptr<AlignedFloats> block[static_cast<int>(ScratchSlot::Count)];
  bool lent[static_cast<int>(ScratchSlot::Count)] = {};
};
thread_local ThreadCache t_cache;
}  // namespace

ScratchFloats::ScratchFloats(ScratchSlot slot, size_t count) {
  const int i = static_cast<int>(slot);
  ThreadCache& cache = t_cache;
  if (!cache.lent[i] && count * sizeof(float) <= kKeepBytes) {
    if (!cache.block[i] || cache.block[i]->size() < count) {
      cache.block[i].reset();  // free the old one before the larger one is made
      cache.block[i] = std::make_unique<AlignedFloats>(count);
    }
    data_ = cache.block[i]->get();
    lent_flag_ = &cache.lent[i];
    *lent_flag_ = true;
  } else {
    owned_ = std::make_unique<AlignedFloats>(count);
    data_ = owned_->get();
  }
}

ScratchFloats::~ScratchFloats() {
  if (lent_flag_) *lent_flag_ = false;
}

}  // namespace convcore::cpu
