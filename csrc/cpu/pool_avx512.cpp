// AVX-512 row kernels for float pooling: 16 outputs per vector along the output width.
// Loads are masked, so a partial last block (and the stride-2 pair load, which would touch one
// element past the last one it needs) never reads outside the window columns.
#include <immintrin.h>

#include <cstdint>

#include "cpu/pool.h"
#include "cpu/vec_lanes.h"

namespace convcore::cpu::avx512 {
namespace {

constexpr int64_t kLanes = 16;

// Elements p[j*stride] for the lanes in `lanes`; the others are zero.
struct StridedLoader {
  int64_t stride;
  __m512i lane_offsets;  // j*stride, for the gather
  __m512i even;          // 0, 2, 4, ... 30: picks the even elements of a 32-element pair

  explicit StridedLoader(int64_t s) : stride(s) {
    lane_offsets = _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                                      _mm512_set1_epi32(static_cast<int32_t>(s)));
    even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  }

  __m512 load(const float* p, int64_t lanes) const {
    if (stride == 1) return _mm512_maskz_loadu_ps(first_lanes_mask16(lanes), p);
    const int64_t span = (lanes - 1) * stride + 1;  // elements actually needed
    if (stride == 2) {
      const __m512 lo = _mm512_maskz_loadu_ps(first_lanes_mask16(span), p);
      const __m512 hi = _mm512_maskz_loadu_ps(first_lanes_mask16(span - 16), p + 16);
      return _mm512_permutex2var_ps(lo, even, hi);
    }
    return _mm512_mask_i32gather_ps(_mm512_setzero_ps(), first_lanes_mask16(lanes), lane_offsets, p, 4);
  }
};

void store_indices(int64_t* dst, __m512i idx32, int64_t lanes) {
  const __m512i lo = _mm512_cvtepi32_epi64(_mm512_castsi512_si256(idx32));
  const __m512i hi = _mm512_cvtepi32_epi64(_mm512_extracti64x4_epi64(idx32, 1));
  _mm512_mask_storeu_epi64(dst, static_cast<__mmask8>(first_lanes_mask16(lanes) & 0xFF), lo);
  _mm512_mask_storeu_epi64(dst + 8, static_cast<__mmask8>(first_lanes_mask16(lanes - 8) & 0xFF), hi);
}

// PyTorch's rule without indices: v replaces best when greater or NaN (NaN propagates).
inline __m512 max_keep_nan(__m512 best, __m512 v) {
  const __mmask16 take = _mm512_cmp_ps_mask(v, best, _CMP_GT_OQ) | _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
  return _mm512_mask_mov_ps(best, take, v);
}

// Windows 2 or 3 columns wide at stride 2, no column dilation (ResNet's and VGG's 2x2/2 pools,
// the 3x3/2 ones): each block of 16 outputs first combines its window rows column by column
// (two loads per row, plus one column for 3-wide windows), then the even, odd (and next even)
// columns of the result (permutes of data already in registers), instead of a strided load (two
// loads and a permute) per tap. Values only. The max takes the general kernel's rule (a later
// tap replaces when greater or NaN), so only which NaN comes out can differ, and any NaN gives
// NaN either way; the average sums down the columns first, then across.
bool rows_first_applies(const PoolRowF32& r) {
  return (r.kw == 2 || r.kw == 3) && r.stride_w == 2 && r.dil_w == 1;
}

// With kProbe, every loaded vector is also added into a running sum, and the call returns false
// when that sum holds a NaN (some input was NaN, or inf met -inf): a combine that may drop NaNs
// then has to be redone by one that keeps them. Without kProbe it returns true.
template <bool kProbe, typename Combine, typename Finish>
bool rows_first(const PoolRowF32& r, float* y, Combine combine, Finish finish) {
  const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  const __m512i odd = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
  // lanes 1..15 of the even columns, then the first lane of the column after the block
  const __m512i next_even = _mm512_setr_epi32(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16);
  const float* first = r.plane + r.first_row * r.width + r.col0;
  const int64_t row_step = r.dil_h * r.width;
  const bool three_wide = r.kw == 3;
  __m512 probe = _mm512_setzero_ps();
  auto load = [&](__mmask16 m, const float* p) {
    const __m512 v = _mm512_maskz_loadu_ps(m, p);
    if (kProbe) probe = _mm512_add_ps(probe, v);
    return v;
  };
  for (int64_t j0 = 0; j0 < r.count; j0 += kLanes) {
    const int64_t lanes = r.count - j0 < kLanes ? r.count - j0 : kLanes;
    const int64_t span = 2 * (lanes - 1) + r.kw;  // input columns of these outputs
    const __mmask16 m_lo = first_lanes_mask16(span), m_hi = first_lanes_mask16(span - 16), m_next = first_lanes_mask16(span - 32);
    const float* col = first + 2 * j0;
    __m512 lo = load(m_lo, col), hi = load(m_hi, col + 16);
    __m512 next = three_wide ? load(m_next, col + 32) : _mm512_setzero_ps();
    for (int64_t ry = 1; ry < r.rows; ++ry) {
      const float* row = col + ry * row_step;
      lo = combine(lo, load(m_lo, row));
      hi = combine(hi, load(m_hi, row + 16));
      if (three_wide) next = combine(next, load(m_next, row + 32));
    }
    const __m512 e = _mm512_permutex2var_ps(lo, even, hi);
    __m512 out = combine(e, _mm512_permutex2var_ps(lo, odd, hi));
    if (three_wide) out = combine(out, _mm512_permutex2var_ps(e, next_even, next));
    _mm512_mask_storeu_ps(y + j0, first_lanes_mask16(lanes), finish(out));
  }
  return !kProbe || _mm512_cmp_ps_mask(probe, probe, _CMP_UNORD_Q) == 0;
}

}  // namespace

void f32_maxpool_row(const PoolRowF32& r, float* y, int64_t* idx) {
  if (!idx && rows_first_applies(r)) {
    // vmaxps(v, best) keeps best on ties, as PyTorch's rule does, but also when v is NaN; a row
    // with a NaN (seen by the probe) is redone with the rule itself. One instruction per combine
    // instead of four: 3x3/2 rows about a fifth faster.
    const auto identity = [](__m512 v) { return v; };
    if (rows_first<true>(r, y, [](__m512 best, __m512 v) { return _mm512_max_ps(v, best); }, identity)) return;
    rows_first<false>(r, y, max_keep_nan, identity);
    return;
  }
  const StridedLoader loader(r.stride_w);
  const __m512i lane_cols = loader.lane_offsets;
  for (int64_t j0 = 0; j0 < r.count; j0 += kLanes) {
    const int64_t lanes = r.count - j0 < kLanes ? r.count - j0 : kLanes;
    const int64_t block_col = r.col0 + j0 * r.stride_w;
    __m512 best = _mm512_setzero_ps();
    __m512i best_index = _mm512_setzero_si512();
    bool first = true;
    for (int64_t ry = 0; ry < r.rows; ++ry) {
      const int64_t row_start = (r.first_row + ry * r.dil_h) * r.width;
      const float* row = r.plane + row_start;
      for (int64_t kx = 0; kx < r.kw; ++kx) {
        const int64_t col = block_col + kx * r.dil_w;
        const __m512 v = loader.load(row + col, lanes);
        if (first) {
          // The first tap is taken whatever it holds: it beats the -inf start or is NaN, or,
          // when it is -inf itself, PyTorch keeps the first valid position anyway.
          best = v;
          if (idx) best_index = _mm512_add_epi32(_mm512_set1_epi32(static_cast<int32_t>(row_start + col)), lane_cols);
          first = false;
          continue;
        }
        // PyTorch's rule: take v when v > best (so ties keep the first) or v is NaN.
        const __mmask16 take = _mm512_cmp_ps_mask(v, best, _CMP_GT_OQ) | _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
        best = _mm512_mask_mov_ps(best, take, v);
        if (idx)
          best_index = _mm512_mask_mov_epi32(
              best_index, take,
              _mm512_add_epi32(_mm512_set1_epi32(static_cast<int32_t>(row_start + col)), lane_cols));
      }
    }
    _mm512_mask_storeu_ps(y + j0, first_lanes_mask16(lanes), best);
    if (idx) store_indices(idx + j0, best_index, lanes);
  }
}

void f32_avgpool_row(const PoolRowF32& r, float divisor, float* y) {
  const __m512 div = _mm512_set1_ps(divisor);
  if (rows_first_applies(r))
    return (void)rows_first<false>(r, y, [](__m512 a, __m512 b) { return _mm512_add_ps(a, b); },
                                   [div](__m512 v) { return _mm512_div_ps(v, div); });
  const StridedLoader loader(r.stride_w);
  for (int64_t j0 = 0; j0 < r.count; j0 += kLanes) {
    const int64_t lanes = r.count - j0 < kLanes ? r.count - j0 : kLanes;
    const int64_t block_col = r.col0 + j0 * r.stride_w;
    __m512 sum = _mm512_setzero_ps();
    for (int64_t ry = 0; ry < r.rows; ++ry) {
      const float* row = r.plane + (r.first_row + ry * r.dil_h) * r.width + block_col;
      for (int64_t kx = 0; kx < r.kw; ++kx) sum = _mm512_add_ps(sum, loader.load(row + kx * r.dil_w, lanes));
    }
    _mm512_mask_storeu_ps(y + j0, first_lanes_mask16(lanes), _mm512_div_ps(sum, div));
  }
}

}  // namespace convcore::cpu::avx512
