// AVX2 row kernels for float pooling: 8 outputs per vector along the output width (built with
// -mavx2 -mfma; written with GCC/Clang vector extensions, which those flags turn into ymm code).
//
// Two shapes of work (bench rows maxpool.*, avgpool.*):
// - Values only (max without indices, average): the window is separable, so the kh rows are
//   first reduced column by column, then across. For 2- and 3-wide windows at stride 2 (the
//   bench's shapes) that all happens in registers (rows_first); other shapes reduce into an
//   L1-resident column buffer that the kw horizontal taps then read (separable_row).
// - Max with indices: the taps run in PyTorch's row-major order with its rule (take v when
//   v > best or v is NaN), so ties and NaNs pick the same position as the reference; a
//   separable order cannot keep that rule.
// AVX2 has no masked loads for floats that fit this code, so every load stays inside the image
// row: blocks whose last lane would read past it are done one output at a time.
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>

#include "cpu/pool.h"

namespace convcore::cpu::avx2 {
namespace {

constexpr int kVL = 8;
typedef float Vec __attribute__((vector_size(32)));
typedef int32_t IVec __attribute__((vector_size(32)));

inline Vec vload(const float* p) {
  Vec v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
inline void vstore(float* p, Vec v) { std::memcpy(p, &v, sizeof v); }
inline Vec vsplat(float s) { return Vec{} + s; }

// Lanes p[0], p[2], ..., p[2*kVL-2]: reads p[0 .. 2*kVL-1).
inline Vec load_even(const float* p) {
  const IVec even = {0, 2, 4, 6, 8, 10, 12, 14};
  return __builtin_shuffle(vload(p), vload(p + kVL), even);
}

// Lanes p[i*stride]; stride 2 reads one element past the last lane (see vector_outputs).
inline Vec load_strided(const float* p, int64_t stride) {
  if (stride == 1) return vload(p);
  if (stride == 2) return load_even(p);
  Vec v;
  for (int i = 0; i < kVL; ++i) v[i] = p[i * stride];
  return v;
}

// PyTorch's max rule, lane by lane: v replaces best when v > best or v is NaN.
inline IVec takes(Vec v, Vec best) { return (v > best) | (v != v); }
inline Vec max_rule(Vec v, Vec best) { return takes(v, best) ? v : best; }
inline float max_rule(float v, float best) { return (v > best || v != v) ? v : best; }

// Outputs [0, vec_count) can be done a full vector at a time without reading past the row end
// (stride 2 loads one element more than it uses).
int64_t vector_outputs(const PoolRowF32& r) {
  const int64_t extra = r.stride_w == 2 ? 1 : 0;
  // last column read by output j's last tap: col0 + j*stride + (kw-1)*dil + extra < width
  const int64_t room = r.width - 1 - extra - r.col0 - (r.kw - 1) * r.dil_w;
  if (room < 0) return 0;
  const int64_t fit = room / r.stride_w + 1;  // outputs j < fit stay inside the row
  const int64_t n = fit < r.count ? fit : r.count;
  return n / kVL * kVL;
}

// Per-thread column buffer for the separable (values-only) form.
float* column_buffer(int64_t n) {
  thread_local std::vector<float> buf;
  if (int64_t(buf.size()) < n) buf.resize(static_cast<size_t>(n));
  return buf.data();
}

// Reduces the window rows column by column into buf[0, cols) (max rule or sum), then combines
// the kw horizontal taps into y[0, count) (averages divided by `divisor`).
template <bool kMax>
void separable_row(const PoolRowF32& r, float divisor, float* y) {
  const int64_t cols = (r.count - 1) * r.stride_w + (r.kw - 1) * r.dil_w + 1;
  // Horizontal vectors read up to round_up(count)*stride + (kw-1)*dil + 1: keep that in buf.
  const int64_t rounded = (r.count + kVL - 1) / kVL * kVL;
  float* buf = column_buffer(rounded * r.stride_w + (r.kw - 1) * r.dil_w + 2 * kVL);
  const float* first = r.plane + r.first_row * r.width + r.col0;
  const int64_t row_step = r.dil_h * r.width;
  auto columns_at = [&](int64_t j) {  // buf[j, j + kVL)
    Vec acc = vload(first + j);
    for (int64_t ry = 1; ry < r.rows; ++ry) {
      const Vec v = vload(first + ry * row_step + j);
      acc = kMax ? max_rule(v, acc) : acc + v;
    }
    vstore(buf + j, acc);
  };
  int64_t j = 0;
  for (; j + kVL <= cols; j += kVL) columns_at(j);
  // The last partial vector as a whole one ending at the last column: it recomputes a few
  // columns to the same values. Column by column, the tail of 7 columns (3x3/2 on 112 wide)
  // took a third of the row (perf).
  if (j < cols && cols >= kVL) {
    columns_at(cols - kVL);
    j = cols;
  }
  for (; j < cols; ++j) {
    float acc = first[j];
    for (int64_t ry = 1; ry < r.rows; ++ry) {
      const float v = first[ry * row_step + j];
      acc = kMax ? max_rule(v, acc) : acc + v;
    }
    buf[j] = acc;
  }
  // Horizontal taps over buf (its slack lanes feed only outputs that are not stored).
  const Vec vdivisor = vsplat(divisor);
  for (int64_t o = 0; o < r.count; o += kVL) {
    Vec acc;
    for (int64_t kx = 0; kx < r.kw; ++kx) {
      const Vec v = load_strided(buf + o * r.stride_w + kx * r.dil_w, r.stride_w);
      acc = kx == 0 ? v : (kMax ? max_rule(v, acc) : acc + v);
    }
    if (!kMax) acc = acc / vdivisor;  // a division, as the portable path and the reference do
    if (o + kVL <= r.count) {
      vstore(y + o, acc);
    } else {
      float tail[kVL];
      vstore(tail, acc);
      std::memcpy(y + o, tail, sizeof(float) * (r.count - o));
    }
  }
}

// Windows 2 or 3 columns wide at stride 2, no column dilation (the 2x2/2 and 3x3/2 pools),
// values only: per block of 8 outputs the window rows are combined column by column in
// registers, over vectors at columns 0 and 8 of the block (and 2 and 10 for 3-wide windows),
// then vshufps picks the even and odd columns (and the next even ones) in the same
// lane-interleaved order, so one vpermpd after the combines puts the outputs in order. No
// column buffer: its stores and the unaligned reloads that straddled them were half of the
// separable form's time on 3x3/2 rows.
enum class Combine {
  kSum,
  kMaxRule,  // PyTorch's max rule (NaN kept): two compares, an or and a blend per combine
  kMaxFast,  // vmaxps(v, acc): keeps acc on ties like the rule, but also drops a NaN v
};

bool rows_first_applies(const PoolRowF32& r) {
  return (r.kw == 2 || r.kw == 3) && r.stride_w == 2 && r.dil_w == 1;
}

// With kMaxFast every loaded value also goes into a running sum, and the call returns false when
// that sum is NaN (a NaN input, or inf meeting -inf): the row must then be redone with kMaxRule.
// Otherwise it returns true.
template <Combine kOp>
bool rows_first(const PoolRowF32& r, float divisor, float* y) {
  auto combine = [](auto acc, auto v) {
    if constexpr (kOp == Combine::kSum) return acc + v;
    else if constexpr (kOp == Combine::kMaxRule) return max_rule(v, acc);
    else if constexpr (std::is_same_v<decltype(acc), float>) return v > acc ? v : acc;
    else return Vec(__builtin_ia32_maxps256(v, acc));
  };
  const bool three_wide = r.kw == 3;
  const float* first = r.plane + r.first_row * r.width + r.col0;
  const int64_t row_step = r.dil_h * r.width;
  Vec probe{};
  float probe1 = 0.0f;
  auto load = [&](const float* p) {
    const Vec v = vload(p);
    if (kOp == Combine::kMaxFast) probe += v;
    return v;
  };
  const Vec vdivisor = vsplat(divisor);
  auto block = [&](int64_t j0) {  // outputs [j0, j0 + 8)
    const float* col = first + 2 * j0;
    Vec at0 = load(col), at8 = load(col + 8), at2{}, at10{};
    if (three_wide) at2 = load(col + 2), at10 = load(col + 10);
    for (int64_t ry = 1; ry < r.rows; ++ry) {
      const float* row = col + ry * row_step;
      at0 = combine(at0, load(row));
      at8 = combine(at8, load(row + 8));
      if (three_wide) at2 = combine(at2, load(row + 2)), at10 = combine(at10, load(row + 10));
    }
    // vshufps order: outputs 0 1 4 5 | 2 3 6 7
    const IVec even = {0, 2, 8, 10, 4, 6, 12, 14}, odd = {1, 3, 9, 11, 5, 7, 13, 15};
    Vec out = combine(__builtin_shuffle(at0, at8, even), __builtin_shuffle(at0, at8, odd));
    if (three_wide) out = combine(out, __builtin_shuffle(at2, at10, even));
    out = __builtin_shuffle(out, IVec{0, 1, 4, 5, 2, 3, 6, 7});
    if (kOp == Combine::kSum) out = out / vdivisor;  // a division, as the portable path and the reference do
    vstore(y + j0, out);
  };
  // A block reads up to column 2*j0 + 15 (+ 17 when 3 wide; the last of those is outside the
  // window, so it can only send a row to the exact pass). Blocks stay inside the image row.
  const int64_t reach = three_wide ? 17 : 15;
  auto block_fits = [&](int64_t j0) { return r.col0 + 2 * j0 + reach < r.width; };
  int64_t j = 0;
  for (; j + kVL <= r.count && block_fits(j); j += kVL) block(j);
  if (j < r.count && r.count >= kVL && block_fits(r.count - kVL)) {
    block(r.count - kVL);  // the last outputs as a whole block, recomputing a few to the same values
    j = r.count;
  }
  for (; j < r.count; ++j) {  // near the row end: one output at a time
    const float* col = first + 2 * j;
    float acc = 0.0f;
    for (int64_t ry = 0; ry < r.rows; ++ry)
      for (int64_t kx = 0; kx < r.kw; ++kx) {
        const float v = col[ry * row_step + kx];
        if (kOp == Combine::kMaxFast) probe1 += v;
        acc = ry == 0 && kx == 0 ? v : combine(acc, v);
      }
    y[j] = kOp == Combine::kSum ? acc / divisor : acc;
  }
  if (kOp != Combine::kMaxFast) return true;
  for (int i = 0; i < kVL; ++i) probe1 += probe[i];
  return probe1 == probe1;
}

}  // namespace

void f32_maxpool_row(const PoolRowF32& r, float* y, int64_t* idx) {
  if (!idx && rows_first_applies(r)) {
    // The fast max first; a row whose inputs hold a NaN is redone with PyTorch's rule.
    if (!rows_first<Combine::kMaxFast>(r, 1.0f, y)) rows_first<Combine::kMaxRule>(r, 1.0f, y);
    return;
  }
  if (!idx) return separable_row<true>(r, 1.0f, y);
  IVec lane_cols;
  for (int i = 0; i < kVL; ++i) lane_cols[i] = static_cast<int32_t>(i * r.stride_w);
  const int64_t vec_count = vector_outputs(r);
  for (int64_t j0 = 0; j0 < vec_count; j0 += kVL) {
    const int64_t block_col = r.col0 + j0 * r.stride_w;
    Vec best{};
    IVec best_index{};
    for (int64_t ry = 0; ry < r.rows; ++ry) {
      const int64_t row_start = (r.first_row + ry * r.dil_h) * r.width;
      for (int64_t kx = 0; kx < r.kw; ++kx) {
        const int64_t col = block_col + kx * r.dil_w;
        const Vec v = load_strided(r.plane + row_start + col, r.stride_w);
        const IVec at = lane_cols + static_cast<int32_t>(row_start + col);
        // The first tap is taken whatever it holds (see pool_avx512.cpp).
        const IVec take = (ry == 0 && kx == 0) ? IVec{} - 1 : takes(v, best);
        best = take ? v : best;
        best_index = take ? at : best_index;
      }
    }
    vstore(y + j0, best);
    for (int i = 0; i < kVL; ++i) idx[j0 + i] = best_index[i];
  }
  for (int64_t j = vec_count; j < r.count; ++j) {  // outputs too near the row end for a vector
    const int64_t block_col = r.col0 + j * r.stride_w;
    float best = 0.0f;
    int64_t best_index = 0;
    for (int64_t ry = 0; ry < r.rows; ++ry) {
      const int64_t row_start = (r.first_row + ry * r.dil_h) * r.width;
      for (int64_t kx = 0; kx < r.kw; ++kx) {
        const int64_t at = row_start + block_col + kx * r.dil_w;
        const float v = r.plane[at];
        if ((ry == 0 && kx == 0) || v > best || v != v) {
          best = v;
          best_index = at;
        }
      }
    }
    y[j] = best;
    idx[j] = best_index;
  }
}

void f32_avgpool_row(const PoolRowF32& r, float divisor, float* y) {
  if (rows_first_applies(r)) {
    rows_first<Combine::kSum>(r, divisor, y);
    return;
  }
  separable_row<false>(r, divisor, y);
}

}  // namespace convcore::cpu::avx2
