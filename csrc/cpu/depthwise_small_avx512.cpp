// Depthwise 3x3 convolution of small maps with a whole padded input row in one 512-bit vector
// (stride 1: up to 16 padded columns, e.g. 14x14 with pad 1 or 7x7) or two (stride 2: up to 32,
// e.g. 28x28 -> 14x14), AVX-512 only.
//
// Why: MobileNet's late layers (14x14 and 7x7 maps, 512-1024 channels) ran at 19-30% of the
// streaming bandwidth and at half of PyTorch's speed on the row kernels of depthwise_impl.inc,
// which set up a ring of padded rows per plane and spend a vector's loop on each 7- or 14-wide
// row. Here a plane never leaves registers: each input row is one masked load (zero padding
// comes from the mask and a lane shift, no padded copy), its three tap vectors are lane shifts
// of it (stride 2: its even and odd columns, and the even ones shifted), and each output row is
// nine FMAs and one masked store. A plane moves its bytes once.
//
// Every output is the bias plus the nine taps in (ky, kx) order, one FMA each, as the row
// kernels sum it.
#include <immintrin.h>

#include <algorithm>
#include <cstdint>
#include <vector>

#include "common/conv_params.h"
#include "cpu/depthwise_isa.h"
#include "cpu/parallel.h"

namespace convcore::cpu::avx512 {

namespace {

constexpr int64_t kMaxRows = 40;  // padded input rows a plane may have (h + pads)

// A padded row of stride-1 input: lanes [pl, pl + w) hold row[0 .. w), the rest zero. The load
// starts at the row and masks lanes past w; the shift by PL lanes brings in the left padding.
template <int PL>
inline __m512 padded_row(const float* row, __mmask16 in_mask) {
  const __m512i a = _mm512_castps_si512(_mm512_maskz_loadu_ps(in_mask, row));
  if constexpr (PL == 0) return _mm512_castsi512_ps(a);
  return _mm512_castsi512_ps(_mm512_alignr_epi32(a, _mm512_setzero_si512(), 16 - PL));
}

// The three tap vectors of a padded row p: t[kx][j] = p[j + kx].
inline void taps_stride1(__m512 p, __m512* t) {
  const __m512i z = _mm512_setzero_si512(), pi = _mm512_castps_si512(p);
  t[0] = p;
  t[1] = _mm512_castsi512_ps(_mm512_alignr_epi32(z, pi, 1));
  t[2] = _mm512_castsi512_ps(_mm512_alignr_epi32(z, pi, 2));
}

// Stride 2: the padded row spans lo (lanes 0-15) and hi (16-31); tap vectors
// t[kx][j] = p[2j + kx]: the even columns, the odd ones, the even ones from the next.
template <int PL>
inline void taps_stride2(const float* row, __mmask16 mask_a, __mmask16 mask_b, __m512* t) {
  const __m512i a = _mm512_castps_si512(_mm512_maskz_loadu_ps(mask_a, row));
  const __m512i b = _mm512_castps_si512(_mm512_maskz_loadu_ps(mask_b, row + 16));
  __m512i lo = a, hi = b;
  if constexpr (PL > 0) {
    lo = _mm512_alignr_epi32(a, _mm512_setzero_si512(), 16 - PL);
    hi = _mm512_alignr_epi32(b, a, 16 - PL);
  }
  const __m512i even = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
  const __m512i odd = _mm512_set_epi32(31, 29, 27, 25, 23, 21, 19, 17, 15, 13, 11, 9, 7, 5, 3, 1);
  const __m512 e = _mm512_permutex2var_ps(_mm512_castsi512_ps(lo), even, _mm512_castsi512_ps(hi));
  t[0] = e;
  t[1] = _mm512_permutex2var_ps(_mm512_castsi512_ps(lo), odd, _mm512_castsi512_ps(hi));
  t[2] = _mm512_castsi512_ps(_mm512_alignr_epi32(_mm512_setzero_si512(), _mm512_castps_si512(e), 1));
}

inline __mmask16 low_lanes(int64_t count) {
  return static_cast<__mmask16>(count >= 16 ? 0xFFFF : (1u << count) - 1);
}

// One plane: x (h x w) -> y (out_h x out_w).
template <int SW, int PL>
void plane(const ConvParams& p, const float* x, const float* wk, float bias, float* y) {
  const int64_t hp = p.h + p.pad_top + p.pad_bottom;
  __m512 tv[kMaxRows][3];
  const __mmask16 mask_a = low_lanes(p.w), mask_b = low_lanes(std::max<int64_t>(0, p.w - 16));
  for (int64_t r = 0; r < hp; ++r) {
    const int64_t iy = r - p.pad_top;
    if (iy < 0 || iy >= p.h) {
      tv[r][0] = tv[r][1] = tv[r][2] = _mm512_setzero_ps();
      continue;
    }
    const float* row = x + iy * p.w;
    if constexpr (SW == 1) taps_stride1(padded_row<PL>(row, mask_a), tv[r]);
    else taps_stride2<PL>(row, mask_a, mask_b, tv[r]);
  }
  __m512 wv[9];
  for (int t = 0; t < 9; ++t) wv[t] = _mm512_set1_ps(wk[t]);
  const __m512 bv = _mm512_set1_ps(bias);
  const __mmask16 out_mask = low_lanes(p.out_w);
  for (int64_t oy = 0; oy < p.out_h; ++oy) {
    const __m512(*rows)[3] = tv + oy * p.stride_h;
    __m512 acc = bv;
    for (int ky = 0; ky < 3; ++ky)
      for (int kx = 0; kx < 3; ++kx) acc = _mm512_fmadd_ps(wv[ky * 3 + kx], rows[ky][kx], acc);
    _mm512_mask_storeu_ps(y + oy * p.out_w, out_mask, acc);
  }
}

template <int SW, int PL>
void all_planes(const ConvParams& p, const float* x, const float* w, const float* bias, float* y) {
  const int64_t planes = p.n * p.c, in_plane = p.h * p.w, out_plane = p.out_h * p.out_w;
#pragma omp parallel for schedule(static) num_threads(num_threads())
  for (int64_t i = 0; i < planes; ++i) {
    if (interrupted()) continue;  // Ctrl-C: see cpu/parallel.h
    const int64_t c = i % p.c;
    plane<SW, PL>(p, x + i * in_plane, w + c * 9, bias ? bias[c] : 0.0f, y + i * out_plane);
  }
}

template <int SW>
void dispatch_pad(const ConvParams& p, const float* x, const float* w, const float* bias, float* y) {
  switch (p.pad_left) {
    case 0: return all_planes<SW, 0>(p, x, w, bias, y);
    case 1: return all_planes<SW, 1>(p, x, w, bias, y);
    default: return all_planes<SW, 2>(p, x, w, bias, y);
  }
}

}  // namespace

bool depthwise_small_map_applies(const ConvParams& p) {
  if (p.channel_multiplier() != 1 || p.kh != 3 || p.kw != 3 || p.dil_h != 1 || p.dil_w != 1)
    return false;
  if (p.stride_h != p.stride_w || (p.stride_w != 1 && p.stride_w != 2)) return false;
  if (p.pad_left > 2 || p.pad_top > 2 || p.pad_bottom > 2 || p.pad_right > 2) return false;
  const int64_t wp = p.w + p.pad_left + p.pad_right, hp = p.h + p.pad_top + p.pad_bottom;
  // the last output reads padded columns up to (out_w - 1) * stride + 2, which must lie in the
  // vectors; the stride-2 odd/even split of 32 lanes leaves 16 per tap vector
  return hp <= kMaxRows && p.out_w <= 16 && wp <= 16 * p.stride_w &&
         (p.out_w - 1) * p.stride_w + 2 < 16 * p.stride_w;
}

void depthwise_forward_small_map_f32(const ConvParams& p, const float* x, const float* w,
                                     const float* bias, float* y) {
  if (p.stride_w == 1) return dispatch_pad<1>(p, x, w, bias, y);
  dispatch_pad<2>(p, x, w, bias, y);
}

}  // namespace convcore::cpu::avx512
