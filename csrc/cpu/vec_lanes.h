// Lane helpers for the kernels written with GCC vector extensions (one source compiled per ISA):
// a kVL x kVL transpose in registers, and loads/stores of the first n lanes of a vector.
//
// Everything here has internal linkage: each ISA's translation unit gets its own definitions,
// built with that unit's flags (the masked forms exist only where the ISA has them), so the
// AVX-512 unit's store_lanes<16> and the baseline unit's generic one are never the same symbol.
#pragma once
#include <immintrin.h>

#include <cstdint>
#include <cstring>
#include <utility>

namespace convcore::cpu {
namespace {

template <int L>
struct LaneVec {
  typedef float F __attribute__((vector_size(4 * L)));
  typedef int32_t I __attribute__((vector_size(4 * L)));
};

// Round B of the transpose swaps the off-diagonal B x B blocks of every 2B x 2B block. Shuffle
// masks over the concatenation (row i, row i + B) with bit B of i clear: row i keeps its lanes
// without bit B and takes row i + B's lanes with it, moved down by B; row i + B the converse.
template <int L, int B, int... Lane>
typename LaneVec<L>::I swap_low_mask(std::integer_sequence<int, Lane...>) {
  return typename LaneVec<L>::I{((Lane & B) ? L + Lane - B : Lane)...};
}
template <int L, int B, int... Lane>
typename LaneVec<L>::I swap_high_mask(std::integer_sequence<int, Lane...>) {
  return typename LaneVec<L>::I{((Lane & B) ? L + Lane : Lane + B)...};
}

template <int L, int B>
inline void transpose_round(typename LaneVec<L>::F* rows) {
  const auto low = swap_low_mask<L, B>(std::make_integer_sequence<int, L>{});
  const auto high = swap_high_mask<L, B>(std::make_integer_sequence<int, L>{});
#pragma GCC unroll 16
  for (int i = 0; i < L; ++i) {
    if (i & B) continue;
    const typename LaneVec<L>::F a = rows[i], b = rows[i + B];
    rows[i] = __builtin_shuffle(a, b, low);
    rows[i + B] = __builtin_shuffle(a, b, high);
  }
}

// rows[i][l] -> rows[l][i]: log2(L) rounds of L two-source shuffles (64 for L = 16).
template <int L>
inline void transpose_block(typename LaneVec<L>::F* rows) {
  if constexpr (L >= 16) transpose_round<L, 8>(rows);
  if constexpr (L >= 8) transpose_round<L, 4>(rows);
  transpose_round<L, 2>(rows);
  transpose_round<L, 1>(rows);
}

// dst[0..n) = the first n lanes of v (0 < n <= L); nothing is written past them.
template <int L>
inline void store_lanes(float* dst, typename LaneVec<L>::F v, int64_t n) {
  std::memcpy(dst, &v, static_cast<size_t>(n) * sizeof(float));
}
// The first n lanes from src[0..n), the rest zero; nothing is read past src[n - 1].
template <int L>
inline typename LaneVec<L>::F load_lanes(const float* src, int64_t n) {
  typename LaneVec<L>::F v{};
  std::memcpy(&v, src, static_cast<size_t>(n) * sizeof(float));
  return v;
}

// a * b + c, one rounding (the FMA instruction where the unit is built for one).
template <int L>
inline typename LaneVec<L>::F fmadd_lanes(typename LaneVec<L>::F a, typename LaneVec<L>::F b,
                                          typename LaneVec<L>::F c) {
#if defined(__FMA__)
  if constexpr (L == 8) return (typename LaneVec<L>::F)_mm256_fmadd_ps((__m256)a, (__m256)b, (__m256)c);
#endif
#if defined(__AVX512F__)
  if constexpr (L == 16) return (typename LaneVec<L>::F)_mm512_fmadd_ps((__m512)a, (__m512)b, (__m512)c);
#endif
  typename LaneVec<L>::F r;
  for (int l = 0; l < L; ++l) r[l] = __builtin_fmaf(a[l], b[l], c[l]);
  return r;
}

#if defined(__AVX512F__)
// The mask of lanes [0, n) of 16: none for n <= 0, all for n >= 16.
inline __mmask16 first_lanes_mask16(int64_t n) {
  if (n <= 0) return 0;
  if (n >= 16) return 0xFFFF;
  return static_cast<__mmask16>((1u << n) - 1u);
}
template <>
inline void store_lanes<16>(float* dst, LaneVec<16>::F v, int64_t n) {
  _mm512_mask_storeu_ps(dst, first_lanes_mask16(n), (__m512)v);
}
template <>
inline LaneVec<16>::F load_lanes<16>(const float* src, int64_t n) {
  return (LaneVec<16>::F)_mm512_maskz_loadu_ps(first_lanes_mask16(n), src);
}
#endif
#if defined(__AVX2__)
inline __m256i first_lanes_mask8(int64_t n) {
  const LaneVec<8>::I lane{0, 1, 2, 3, 4, 5, 6, 7};
  return (__m256i)(lane < static_cast<int32_t>(n));
}
// No masked AVX2 store: AMD's cores run it as a long microcoded sequence (the depthwise lanes
// kernel's forward ran at half its weight gradient's speed, the broadcast convolution's 6-row
// tiles at 0.4x PyTorch on book.conv1). A whole vector is one move; a part, at most three:
// four lanes, two, one.
template <>
inline void store_lanes<8>(float* dst, LaneVec<8>::F v, int64_t n) {
  if (n == 8) return _mm256_storeu_ps(dst, (__m256)v);
  __m128 part = _mm256_castps256_ps128((__m256)v);
  if (n >= 4) {
    _mm_storeu_ps(dst, part);
    part = _mm256_extractf128_ps((__m256)v, 1);
    dst += 4;
    n -= 4;
  }
  if (n >= 2) {
    _mm_storel_pi(reinterpret_cast<__m64*>(dst), part);
    part = _mm_movehl_ps(part, part);
    dst += 2;
    n -= 2;
  }
  if (n == 1) _mm_store_ss(dst, part);
}
template <>
inline LaneVec<8>::F load_lanes<8>(const float* src, int64_t n) {
  if (n == 8) return (LaneVec<8>::F)_mm256_loadu_ps(src);
  return (LaneVec<8>::F)_mm256_maskload_ps(src, first_lanes_mask8(n));
}
#endif

}  // namespace
}  // namespace convcore::cpu
