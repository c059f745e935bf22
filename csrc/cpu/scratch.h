// Scratch buffers that the calling thread keeps between calls.
//
// Why: a convolution on a few large arrays (a padded copy of x, packed weights: megabytes) that
// allocates them fresh each call pays a page fault per 4 KiB on first touch, plus the zeroing a
// std::vector does: on book.conv2 that was as long as the convolution itself, on NIN's
// conv4_1024 (14 MB of packed weights for one image) a third of it. A ScratchFloats lends the
// calling thread's cached buffer for its slot (grown as needed, kept up to kKeepBytes), or makes
// a fresh one when that slot is already lent (a nested call) or the request is larger. At
// most 64 MiB per slot stays allocated per calling thread.
#pragma once
#include <cstddef>
#include <memory>

namespace convcore::cpu {

// A 64-byte aligned float buffer (micro-kernels load packed panels with aligned loads);
// contents undefined.
class AlignedFloats {
 public:
  explicit AlignedFloats(size_t count);
  ~AlignedFloats();
  AlignedFloats(const AlignedFloats&) = delete;
  AlignedFloats& operator=(const AlignedFloats&) = delete;
  float* get() const { return data_; }
  size_t size() const { return count_; }

 private:
  float* data_;
  size_t count_;
};

// What a kernel uses a slot for; each kernel family owns its slots, so two buffers alive at
// once on one thread never share one.
enum class ScratchSlot {
  PaddedInput = 0,
  PackedWeights = 1,
  TurnedWeights = 2,
  ChannelLastGrad = 3,
  WinogradTiles = 4,
  WinogradProducts = 5,
  ColumnMatrix = 6,
  WinogradProductsT = 7,  // the tile-rows Winograd products, tiles x K
  Count = 8
};

class ScratchFloats {
 public:
  ScratchFloats(ScratchSlot slot, size_t count);  // 64-byte aligned, contents undefined
  ~ScratchFloats();
  ScratchFloats(const ScratchFloats&) = delete;
  ScratchFloats& operator=(const ScratchFloats&) = delete;
  float* get() const { return data_; }

  static constexpr size_t kKeepBytes = size_t(64) << 20;

 private:
  float* data_ = nullptr;
  bool* lent_flag_ = nullptr;
  std::unique_ptr<AlignedFloats> owned_;
};

}  // namespace convcore::cpu
