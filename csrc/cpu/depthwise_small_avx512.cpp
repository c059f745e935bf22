// Depthwise 3x3 convolution (multiplier 1) with whole input rows in 512-bit registers, AVX-512
// only:
//  - small maps, a padded row in one vector (stride 1: up to 16 padded columns, e.g. 14x14 with
//    pad 1, or 7x7) or two (stride 2: up to 32, e.g. 28x28 -> 14x14): forward and weight
//    gradient over the tap vectors of the whole plane;
//  - rows of up to 8 vectors (128 padded columns), stride 1 or 2: the forward in strips of up to
//    4 output vectors down the plane over a rolling window of three rows' tap vectors (stride 1)
//    or per output vector with the shared row in registers (stride 2), the weight gradient the
//    same ways (stride 1 on rows of up to 4 vectors over a rolling window of whole rows,
//    WideRows); stride 2's input gradient over a window of three padded rows of sums. Stride 1's
//    input gradient is the forward over dy with the kernels turned (depthwise.cpp);
//  - the separable 1-D form (rank-1 kernels up to 8 taps each way, stride 1): the column pass
//    over a rolling window of kh padded rows into middle-row vectors, the row pass by lane shifts.
//
// Why: MobileNet's depthwise layers ran at 19-67% of the streaming bandwidth, the late ones (14x14
// and 7x7 maps, 512-1024 channels) at half of PyTorch's speed, on the row kernels of
// depthwise_impl.inc, which copy each row into a ring of padded rows and set the ring up per
// plane. Here an input row is a masked load (zero padding comes from the mask and a lane shift,
// no padded copy), its three tap vectors are lane shifts of it (stride 2: its even and odd
// columns, and the even ones shifted), and each output vector is nine FMAs and one masked store:
// a plane moves its bytes once. The weight gradient reuses the tap vectors: nine FMAs of a dy
// vector per output vector into nine sums, one channel per thread.
//
// Every output is the bias plus the nine taps in (ky, kx) order, one FMA each, as the row
// kernels sum it (the forward is bit-identical to theirs).
#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <cstdint>
#include <type_traits>
#include <vector>

#include "common/conv_params.h"
#include "cpu/depthwise_isa.h"
#include "cpu/parallel.h"
#include "cpu/vec_lanes.h"

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

// The same across a row held in consecutive vectors: the tap vectors of vector `here`, its
// successor `next` supplying the lanes shifted in.
inline void taps_stride1_across(__m512i here, __m512i next, __m512* t) {
  t[0] = _mm512_castsi512_ps(here);
  t[1] = _mm512_castsi512_ps(_mm512_alignr_epi32(next, here, 1));
  t[2] = _mm512_castsi512_ps(_mm512_alignr_epi32(next, here, 2));
}

// Stride 2 across a row held in consecutive vectors: the tap vectors of 16 outputs whose padded
// columns start at vector lo, continue in hi and end in next's first lane: t[kx][j] = padded
// column 2j + kx (the even columns, the odd ones, the even ones shifted by one).
inline void taps_stride2_across(__m512 lo, __m512 hi, __m512 next, __m512* t) {
  const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  const __m512i odd = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
  const __m512i next_even = _mm512_setr_epi32(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16);
  const __m512 e = _mm512_permutex2var_ps(lo, even, hi);
  t[0] = e;
  t[1] = _mm512_permutex2var_ps(lo, odd, hi);
  t[2] = _mm512_permutex2var_ps(e, next_even, next);
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

// The tap vectors of every padded row of a plane x (h x w): tv[r][kx][j] is padded input
// (r, j * stride + kx).
template <int SW, int PL>
void plane_taps(const ConvParams& p, const float* x, __m512 (*tv)[3]) {
  const int64_t hp = p.h + p.pad_top + p.pad_bottom;
  const __mmask16 mask_a = first_lanes_mask16(p.w), mask_b = first_lanes_mask16(std::max<int64_t>(0, p.w - 16));
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
}

// One plane: x (h x w) -> y (out_h x out_w).
template <int SW, int PL>
void plane(const ConvParams& p, const float* x, const float* wk, float bias, float* y) {
  __m512 tv[kMaxRows][3];
  plane_taps<SW, PL>(p, x, tv);
  __m512 wv[9];
  for (int t = 0; t < 9; ++t) wv[t] = _mm512_set1_ps(wk[t]);
  const __m512 bv = _mm512_set1_ps(bias);
  const __mmask16 out_mask = first_lanes_mask16(p.out_w);
  for (int64_t oy = 0; oy < p.out_h; ++oy) {
    const __m512(*rows)[3] = tv + oy * p.stride_h;
    __m512 acc = bv;
    for (int ky = 0; ky < 3; ++ky)
      for (int kx = 0; kx < 3; ++kx) acc = _mm512_fmadd_ps(wv[ky * 3 + kx], rows[ky][kx], acc);
    _mm512_mask_storeu_ps(y + oy * p.out_w, out_mask, acc);
  }
}

// The walk the stride-1 kernels below share: output rows 0 .. out_h-1 of a 3x3 plane over a window
// of three padded rows' tap vectors, the loop unrolled by three so each row's vectors keep one
// place (registers, or where the compiler spills them) while they serve three output rows.
// load(r, taps) fills padded row r's vectors; row(oy, r0, r1, r2) takes output row oy's three.
template <typename Taps, typename Load, typename Row>
inline void roll_three_rows(int64_t out_h, Load load, Row row) {
  Taps a, b, c;
  load(0, a);
  load(1, b);
  for (int64_t oy = 0; oy < out_h; oy += 3) {
    load(oy + 2, c);
    row(oy, a, b, c);
    if (oy + 1 == out_h) break;
    load(oy + 3, a);
    row(oy + 1, b, c, a);
    if (oy + 2 == out_h) break;
    load(oy + 4, b);
    row(oy + 2, c, a, b);
  }
}

// acc + the nine taps of three padded rows' tap vectors, in (ky, kx) order
inline __m512 nine_taps(__m512 acc, const __m512* wv, const __m512* r0, const __m512* r1,
                        const __m512* r2) {
  for (int kx = 0; kx < 3; ++kx) acc = _mm512_fmadd_ps(wv[kx], r0[kx], acc);
  for (int kx = 0; kx < 3; ++kx) acc = _mm512_fmadd_ps(wv[3 + kx], r1[kx], acc);
  for (int kx = 0; kx < 3; ++kx) acc = _mm512_fmadd_ps(wv[6 + kx], r2[kx], acc);
  return acc;
}

// sums[ky * 3 + kx] += d * tap (ky, kx) of three padded rows' tap vectors (the weight gradient's
// twin of nine_taps)
inline void add_nine_products(__m512* sums, __m512 d, const __m512* r0, const __m512* r1,
                              const __m512* r2) {
  for (int kx = 0; kx < 3; ++kx) sums[kx] = _mm512_fmadd_ps(d, r0[kx], sums[kx]);
  for (int kx = 0; kx < 3; ++kx) sums[3 + kx] = _mm512_fmadd_ps(d, r1[kx], sums[3 + kx]);
  for (int kx = 0; kx < 3; ++kx) sums[6 + kx] = _mm512_fmadd_ps(d, r2[kx], sums[6 + kx]);
}

// Stride 1: the same sums over a window of three padded rows' tap vectors kept in registers, the
// loop unrolled by three so each row's vectors stay in one place while they serve three output
// rows. plane() writes every row's taps to the stack and reads nine back per output row, and on
// (8,512,14,14) one thread spent 30% of its time writing them and most of the rest in the FMAs'
// loads (perf): 91 ns a plane for 126 FMAs.
template <int PL>
void plane_rolling(const ConvParams& p, const float* x, const float* wk, float bias, float* y) {
  const __mmask16 in_mask = first_lanes_mask16(p.w), out_mask = first_lanes_mask16(p.out_w);
  __m512 wv[9];
  for (int t = 0; t < 9; ++t) wv[t] = _mm512_set1_ps(wk[t]);
  const __m512 bv = _mm512_set1_ps(bias);
  auto taps = [&](int64_t r, __m512* t) {  // padded row r's tap vectors
    const int64_t iy = r - p.pad_top;
    if (iy < 0 || iy >= p.h) {
      t[0] = t[1] = t[2] = _mm512_setzero_ps();
      return;
    }
    taps_stride1(padded_row<PL>(x + iy * p.w, in_mask), t);
  };
  auto out_row = [&](int64_t oy, const __m512* r0, const __m512* r1, const __m512* r2) {
    const __m512 acc = nine_taps(bv, wv, r0, r1, r2);
    _mm512_mask_storeu_ps(y + oy * p.out_w, out_mask, acc);
  };
  roll_three_rows<__m512[3]>(p.out_h, taps, out_row);
}

// Maps at most 7 wide at stride 1 (MobileNet's last depthwise layer: 7x7, pad 1, 1024 channels):
// a padded row fills under half a vector, so two planes share one. Plane A's padded row is lanes
// [0, pl + w + pr), plane B's values start at lane b0 + pl with b0 = w + max(pl, pr), so B's left
// padding lanes are zeros past A's values, and B's right padding comes in as the zeros the tap
// shifts bring past lane 15; outputs of A are lanes [0, out_w), of B [b0, b0 + out_w). On one
// plane a vector, 7 of 16 lanes did work and the plane (63 FMAs) took about 90 cycles, the
// channels-in-lanes kernel about 80 with its transposes; here two planes take the same 63 FMAs.
int64_t pair_offset(const ConvParams& p) { return p.w + std::max(p.pad_left, p.pad_right); }

// The address `lanes` floats before `row`, for a masked load or store whose first enabled lane
// is that far in (masked-off lanes are never touched).
inline const float* lanes_before(const float* row, int64_t lanes) {
  return reinterpret_cast<const float*>(reinterpret_cast<uintptr_t>(row) - 4 * static_cast<uintptr_t>(lanes));
}
inline float* lanes_before(float* row, int64_t lanes) {
  return reinterpret_cast<float*>(reinterpret_cast<uintptr_t>(row) - 4 * static_cast<uintptr_t>(lanes));
}

// One layer's geometry in the pair layout, set up once per call and handed to the loops by
// value. Why: the masked-store intrinsics may alias any memory, so sizes and masks read through
// the ConvParams reference (or a struct the OpenMP region shares) were reloaded after every
// store, and the per-pair mask setup, null-plane tests and two divisions came on top: in a
// standalone model of the kernel 36 ns a pair on one thread against 25 with the geometry in
// registers. Here (8,1024,7,7) on one thread went 0.166 -> 0.123 ms a call, on two (the suite's
// row) 86-106 us -> 66-99 us.
struct PairLayout {
  int64_t h, w, out_h, out_w, pad_top, pad_left, b0;
  __mmask16 in_a, in_b, out_a, out_b, lanes_b;  // A's/B's input lanes, output lanes; B's half
};

// `alone`: plane A without a partner (the last of an odd count): B's lanes load and store nothing.
PairLayout pair_layout(const ConvParams& p, bool alone = false) {
  const int64_t b0 = pair_offset(p);
  const __mmask16 row_bits = first_lanes_mask16(p.w), out_bits = first_lanes_mask16(p.out_w);
  return {p.h, p.w, p.out_h, p.out_w, p.pad_top, p.pad_left, b0,
          static_cast<__mmask16>(row_bits << p.pad_left),
          alone ? __mmask16{0} : static_cast<__mmask16>(row_bits << (b0 + p.pad_left)),
          out_bits,
          alone ? __mmask16{0} : static_cast<__mmask16>(out_bits << b0),
          static_cast<__mmask16>(0xFFFFu << b0)};
}

// Padded row r's tap vectors of planes xa and xb in the pair layout above: A's row a masked
// load into lanes [pl, pl + w) (in_a), B's into [b0 + pl, ...) (in_b; none when A is alone).
// (Inlined by force, as are the kernels below: called, it took the layout through memory.)
template <int kRows = 0>
__attribute__((always_inline)) inline void pair_taps(const PairLayout& g, const float* xa,
                                                     const float* xb, int64_t r, __m512* t) {
  const int64_t iy = r - (kRows ? 1 : g.pad_top);
  if (iy < 0 || iy >= (kRows ? kRows : g.h)) {
    t[0] = t[1] = t[2] = _mm512_setzero_ps();
    return;
  }
  __m512 row = _mm512_maskz_loadu_ps(g.in_a, lanes_before(xa + iy * g.w, g.pad_left));
  row = _mm512_mask_loadu_ps(row, g.in_b, lanes_before(xb + iy * g.w, g.b0 + g.pad_left));
  taps_stride1(row, t);
}

// A kernel's nine taps for plane A in lanes [0, b0) and plane B's from b0.
inline void pair_kernels(const PairLayout& g, const float* wa, const float* wb, __m512* wv) {
  for (int t = 0; t < 9; ++t)
    wv[t] = _mm512_mask_blend_ps(g.lanes_b, _mm512_set1_ps(wa[t]), _mm512_set1_ps(wb[t]));
}

// Planes xa and xb -> ya, yb with their kernels wa, wb and biases (xb = xa, yb = ya, wb = wa
// under an `alone` layout). The layout comes by value, a copy the loops keep in registers;
// kRows as pair_planes_forward_range's.
template <int kRows = 0>
__attribute__((always_inline)) inline void plane_pair_rolling(
    const PairLayout g, const float* xa, const float* xb, const float* wa, const float* wb,
    float bias_a, float bias_b, float* ya, float* yb) {
  __m512 wv[9];
  pair_kernels(g, wa, wb, wv);
  const __m512 bv = _mm512_mask_blend_ps(g.lanes_b, _mm512_set1_ps(bias_a), _mm512_set1_ps(bias_b));
  auto taps = [&](int64_t r, __m512* t) { pair_taps<kRows>(g, xa, xb, r, t); };
  auto out_row = [&](int64_t oy, const __m512* r0, const __m512* r1, const __m512* r2) {
    const __m512 acc = nine_taps(bv, wv, r0, r1, r2);
    _mm512_mask_storeu_ps(ya + oy * g.out_w, g.out_a, acc);
    _mm512_mask_storeu_ps(lanes_before(yb + oy * g.out_w, g.b0), g.out_b, acc);
  };
  roll_three_rows<__m512[3]>(kRows ? kRows : g.out_h, taps, out_row);
}

// Pairs [first, last) of a forward over c-channel planes (pair i: planes 2i and 2i + 1), the
// layout a by-value copy the loop keeps in registers. kRows: 0, or the plane's height and
// output height when both are that with one padding row above and below.
template <int kRows>
void pair_planes_forward_range(const PairLayout g, int64_t c, const float* x, const float* w,
                               const float* bias, float* y, int64_t first, int64_t last) {
  const int64_t in_plane = g.h * g.w, out_plane = g.out_h * g.out_w;
  int64_t ca = (2 * first) % c, cb = (2 * first + 1) % c;  // then stepped: no division a pair
  for (int64_t pair = first; pair < last; ++pair) {
    if (interrupted()) return;  // Ctrl-C: see cpu/parallel.h
    const int64_t a = 2 * pair;
    plane_pair_rolling<kRows>(g, x + a * in_plane, x + (a + 1) * in_plane, w + ca * 9, w + cb * 9,
                       bias ? bias[ca] : 0.0f, bias ? bias[cb] : 0.0f, y + a * out_plane,
                       y + (a + 1) * out_plane);
    ca = ca + 2 < c ? ca + 2 : ca + 2 - c;
    cb = cb + 2 < c ? cb + 2 : cb + 2 - c;
  }
}

using PlaneFn = void (*)(const ConvParams&, const float*, const float*, float, float*);

// fn over every (image, channel) plane of a forward, threads splitting the planes.
void each_plane(const ConvParams& p, const float* x, const float* w, const float* bias, float* y,
                PlaneFn fn) {
  const int64_t planes = p.n * p.c, in_plane = p.h * p.w, out_plane = p.out_h * p.out_w;
#pragma omp parallel for schedule(static) num_threads(num_threads())
  for (int64_t i = 0; i < planes; ++i) {
    if (interrupted()) continue;  // Ctrl-C: see cpu/parallel.h
    const int64_t c = i % p.c;
    fn(p, x + i * in_plane, w + c * 9, bias ? bias[c] : 0.0f, y + i * out_plane);
  }
}

template <int SW, int PL>
void all_planes(const ConvParams& p, const float* x, const float* w, const float* bias, float* y) {
  // (stride_h == stride_w: depthwise_3x3_small_pads)
  if constexpr (SW == 1) each_plane(p, x, w, bias, y, &plane_rolling<PL>);
  else each_plane(p, x, w, bias, y, &plane<SW, PL>);
}

// dW[c][ky][kx] = sum over images and output positions of dy * the padded input under the tap:
// per output row, nine vector FMAs of the dy row (zero past out_w: a masked load) into nine
// sums, reduced across lanes once per channel. A channel is one thread's, its images summed in
// order: the result does not depend on the thread count.
template <int SW, int PL>
void weight_gradient(const ConvParams& p, const float* dy, const float* x, float* dw) {
  const int64_t in_plane = p.h * p.w, out_plane = p.out_h * p.out_w;
  const __mmask16 out_mask = first_lanes_mask16(p.out_w);
#pragma omp parallel for schedule(static) num_threads(num_threads())
  for (int64_t c = 0; c < p.c; ++c) {
    if (interrupted()) continue;  // Ctrl-C: see cpu/parallel.h
    __m512 tv[kMaxRows][3];
    __m512 acc[9];
    for (int t = 0; t < 9; ++t) acc[t] = _mm512_setzero_ps();
    for (int64_t n = 0; n < p.n; ++n) {
      plane_taps<SW, PL>(p, x + (n * p.c + c) * in_plane, tv);
      const float* dy_plane = dy + (n * p.c + c) * out_plane;
      for (int64_t oy = 0; oy < p.out_h; ++oy) {
        const __m512 d = _mm512_maskz_loadu_ps(out_mask, dy_plane + oy * p.out_w);
        const __m512(*rows)[3] = tv + oy * p.stride_h;
        add_nine_products(acc, d, rows[0], rows[1], rows[2]);
      }
    }
    for (int t = 0; t < 9; ++t) dw[c * 9 + t] = _mm512_reduce_add_ps(acc[t]);
  }
}

// Wider maps: a padded row in NV vectors (up to 16 NV columns), three rows' tap vectors kept in a
// rolling window, the same nine FMAs per output vector. Against the ring-buffer row kernels of
// depthwise_impl.inc (the same sums: bit-identical), which copy each row into the ring first:
// stride 1, 2 threads, (8,128,56,56) 1.37 -> 0.66 ms, (8,32,112,112) 1.11 -> 0.63; stride 2,
// one thread, (8,64,112,112) 2.04 -> 1.70 ms, (2,128,56,56) 0.35 -> 0.12.
// padded[v], v < NV + 2: a row of input columns shifted right by PL lanes (the left padding),
// masked past the row's end: padded column c (lane c % 16 of vector c / 16) is row[c - PL].
template <int PL, int NV>
inline void load_padded_row(const float* row, const __mmask16* in_mask, __m512i* padded) {
  const __m512i zi = _mm512_setzero_si512();
  __m512i prev = zi;
  for (int v = 0; v < NV; ++v) {
    const __m512i u = _mm512_castps_si512(_mm512_maskz_loadu_ps(in_mask[v], row + 16 * v));
    padded[v] = PL == 0 ? u : _mm512_alignr_epi32(u, prev, (16 - PL) & 15);
    prev = u;
  }
  padded[NV] = PL == 0 ? zi : _mm512_alignr_epi32(zi, prev, (16 - PL) & 15);
  padded[NV + 1] = zi;
}

// v[j] shifted down by k lanes, continuing into next: (next:v) >> 32k bits, for k < 16
inline __m512 shift_down(__m512 v, __m512 next, int k) {
  const __m512i a = _mm512_castps_si512(v), b = _mm512_castps_si512(next);
  switch (k) {
    case 0: return v;
    case 1: return _mm512_castsi512_ps(_mm512_alignr_epi32(b, a, 1));
    case 2: return _mm512_castsi512_ps(_mm512_alignr_epi32(b, a, 2));
    case 3: return _mm512_castsi512_ps(_mm512_alignr_epi32(b, a, 3));
    case 4: return _mm512_castsi512_ps(_mm512_alignr_epi32(b, a, 4));
    case 5: return _mm512_castsi512_ps(_mm512_alignr_epi32(b, a, 5));
    case 6: return _mm512_castsi512_ps(_mm512_alignr_epi32(b, a, 6));
    default: return _mm512_castsi512_ps(_mm512_alignr_epi32(b, a, 7));
  }
}

// masks[v] for v < n: the lanes of vector v that a row of `columns` floats fills (16 a vector, the
// last ones partial or empty).
inline void row_vector_masks(int64_t columns, int n, __mmask16* masks) {
  for (int v = 0; v < n; ++v) masks[v] = first_lanes_mask16(std::clamp<int64_t>(columns - 16 * v, 0, 16));
}

// A stride-1 row of up to NV vectors, loaded whole: the tap vectors of its NV output vectors.
template <int PL, int NV>
struct WideRows {
  __mmask16 in_mask[NV];
  explicit WideRows(const ConvParams& p) {
    row_vector_masks(p.w, NV, in_mask);
  }
  // t[kx][v]: padded row r (of the plane x) at column 16 v + j + kx for lane j
  void load(const ConvParams& p, const float* x, int64_t r, __m512 (*t)[NV]) const {
    const int64_t iy = r - p.pad_top;
    if (iy < 0 || iy >= p.h) {
      for (int kx = 0; kx < 3; ++kx)
        for (int v = 0; v < NV; ++v) t[kx][v] = _mm512_setzero_ps();
      return;
    }
    __m512i padded[NV + 2];
    load_padded_row<PL, NV>(x + iy * p.w, in_mask, padded);
    for (int v = 0; v < NV; ++v) {
      __m512 tv[3];
      taps_stride1_across(padded[v], padded[v + 1], tv);
      for (int kx = 0; kx < 3; ++kx) t[kx][v] = tv[kx];
    }
  }
};

// What a plane of the wide kernels holds fixed: the masks of an output row's NO vectors, the nine
// weights and the bias, broadcast. Into the caller's local arrays: held in a struct and read
// through a pointer, the weights were reloaded after every store (vector types may alias floats),
// and the rolled kernel lost half its gain.
template <int NO>
inline void wide_plane_constants(const ConvParams& p, const float* wk, float bias, __mmask16* out_mask,
                                 __m512* wv, __m512& bv) {
  row_vector_masks(p.out_w, NO, out_mask);
  for (int t = 0; t < 9; ++t) wv[t] = _mm512_set1_ps(wk[t]);
  bv = _mm512_set1_ps(bias);
}

// Three padded rows' tap vectors of the wide kernels: [kx][vector].
template <int NV>
using WideTaps = __m512[3][NV];

// acc + the nine taps of vector v of three padded rows, in (ky, kx) order
template <int NV>
inline __m512 nine_taps_at(__m512 acc, const __m512* wv, const WideTaps<NV>& r0,
                           const WideTaps<NV>& r1, const WideTaps<NV>& r2, int v) {
  for (int kx = 0; kx < 3; ++kx) acc = _mm512_fmadd_ps(wv[kx], r0[kx][v], acc);
  for (int kx = 0; kx < 3; ++kx) acc = _mm512_fmadd_ps(wv[3 + kx], r1[kx][v], acc);
  for (int kx = 0; kx < 3; ++kx) acc = _mm512_fmadd_ps(wv[6 + kx], r2[kx][v], acc);
  return acc;
}

// sums[ky * 3 + kx] += d * tap (ky, kx) of vector v of three padded rows
template <int NV>
inline void add_nine_products(__m512* sums, __m512 d, const WideTaps<NV>& r0,
                              const WideTaps<NV>& r1, const WideTaps<NV>& r2, int v) {
  for (int kx = 0; kx < 3; ++kx) sums[kx] = _mm512_fmadd_ps(d, r0[kx][v], sums[kx]);
  for (int kx = 0; kx < 3; ++kx) sums[3 + kx] = _mm512_fmadd_ps(d, r1[kx][v], sums[3 + kx]);
  for (int kx = 0; kx < 3; ++kx) sums[6 + kx] = _mm512_fmadd_ps(d, r2[kx][v], sums[6 + kx]);
}

// masks[u] for padded vectors u < count of a row of w columns with pl columns of left padding:
// lane j of vector u is input column 16u + j - pl, enabled where that lies inside the row. A
// masked load of vector u from lanes_before(row + 16u, pl) reads it straight from the input row.
inline void padded_vector_masks(int64_t w, int64_t pl, int count, __mmask16* masks) {
  for (int u = 0; u < count; ++u) {
    const int64_t first = std::max<int64_t>(0, pl - 16 * u);
    const int64_t end = std::clamp<int64_t>(w + pl - 16 * u, 0, 16);
    masks[u] = first < end ? static_cast<__mmask16>(first_lanes_mask16(end) & ~first_lanes_mask16(first))
                           : static_cast<__mmask16>(0);
  }
}

// Stride 1 (both ways) in strips of at most kStripVectors output vectors: a strip's rolling window
// of three rows' tap vectors (3 x 3 x 4) is walked down the whole plane before the next strip. A
// window over a whole 112-wide row (8 vectors) held 72 tap vectors, more than the registers: every
// tap went through the stack, and one thread ran (8,32,112,112) at 1.19 ms where (8,128,56,56), the
// same outputs in rows of 4 vectors, took 0.78. A strip's padded vectors are masked loads straight
// off the input row (padded_vector_masks), so a strip starts anywhere in the row; and the eighth
// vector that 114 padded columns span, with no output lane, is skipped. (8,32,112,112): one thread
// 1.19-1.37 -> 0.83-0.91 ms, two 0.58-0.61 -> 0.39; (8,128,56,56) even (0.77-0.82 -> 0.77-0.79).
// Strips of 2 vectors re-read each row 4 times and ran slower (1.11 ms).
constexpr int kStripVectors = 4;

// Padded row r's tap vectors for a strip's output vectors [v0, v0 + CNT) (stride 1): its padded
// vectors v0 .. v0 + CNT, each a masked load straight off the input row (in_mask: the strip's own
// CNT + 1 masks), zeros for a padding row.
template <int PL, int CNT>
inline void strip_taps(const ConvParams& p, const float* x, const __mmask16* in_mask, int v0,
                       int64_t r, WideTaps<CNT>& t) {
  const int64_t iy = r - p.pad_top;
  if (iy < 0 || iy >= p.h) {
    for (int kx = 0; kx < 3; ++kx)
      for (int v = 0; v < CNT; ++v) t[kx][v] = _mm512_setzero_ps();
    return;
  }
  const float* row = x + iy * p.w + 16 * v0;
  __m512i next = _mm512_castps_si512(_mm512_maskz_loadu_ps(in_mask[0], lanes_before(row, PL)));
  for (int v = 0; v < CNT; ++v) {
    const __m512i here = next;
    next = _mm512_castps_si512(
        _mm512_maskz_loadu_ps(in_mask[v + 1], lanes_before(row + 16 * (v + 1), PL)));
    __m512 tv[3];
    taps_stride1_across(here, next, tv);
    for (int kx = 0; kx < 3; ++kx) t[kx][v] = tv[kx];
  }
}

// A strip's own masks, local copies (so they stay in mask registers): padded vectors
// [v0, v0 + CNT] (in_mask) and output vectors [v0, v0 + CNT) (out_mask) of the row's.
template <int CNT>
inline void strip_masks(const __mmask16* in_masks, const __mmask16* out_masks, int v0,
                        __mmask16* in_mask, __mmask16* out_mask) {
  for (int v = 0; v <= CNT; ++v) in_mask[v] = in_masks[v0 + v];
  for (int v = 0; v < CNT; ++v) out_mask[v] = out_masks[v0 + v];
}

// fn(std::integral_constant<int, CNT>{}, v0) for each strip [v0, v0 + CNT) of up to kMax (at most
// 4) of a row's `out_vectors` output vectors, in order.
template <int kMax, typename Fn>
inline void for_each_strip(int out_vectors, Fn fn) {
  static_assert(kMax >= 1 && kMax <= 4);
  for (int v0 = 0; v0 < out_vectors; v0 += kMax) {
    switch (std::min(kMax, out_vectors - v0)) {
      case 4: fn(std::integral_constant<int, 4>{}, v0); break;
      case 3: fn(std::integral_constant<int, 3>{}, v0); break;
      case 2: fn(std::integral_constant<int, 2>{}, v0); break;
      default: fn(std::integral_constant<int, 1>{}, v0); break;
    }
  }
}

// Output vectors [v0, v0 + CNT) of a plane: its padded vectors [v0, v0 + CNT] give their taps.
// (flatten: as weight_gradient_strip's, below)
template <int PL, int CNT>
__attribute__((flatten)) void wide_strip(const ConvParams& p, const float* x,
                                         const __mmask16* in_masks, const __mmask16* out_masks,
                                         const __m512* weights, __m512 bv, int v0, float* y) {
  // local copies: read through the pointers, the weights were reloaded after every store (vector
  // types may alias floats) and the strips ran 1.5x slower
  __m512 wv[9];
  for (int t = 0; t < 9; ++t) wv[t] = weights[t];
  __mmask16 in_mask[CNT + 1], out_mask[CNT];
  strip_masks<CNT>(in_masks, out_masks, v0, in_mask, out_mask);
  using Taps = WideTaps<CNT>;
  auto load = [&](int64_t r, Taps& t) { strip_taps<PL, CNT>(p, x, in_mask, v0, r, t); };
  auto out_row = [&](int64_t oy, const Taps& r0, const Taps& r1, const Taps& r2) {
    float* out = y + oy * p.out_w + 16 * v0;
    for (int v = 0; v < CNT; ++v)
      _mm512_mask_storeu_ps(out + 16 * v, out_mask[v], nine_taps_at<CNT>(bv, wv, r0, r1, r2, v));
  };
  roll_three_rows<Taps>(p.out_h, load, out_row);
}

template <int PL, int NV>
void wide_plane_strips(const ConvParams& p, const float* x, const float* wk, float bias, float* y) {
  __mmask16 in_mask[NV + 1];  // output vector v's taps come from padded vectors v and v + 1
  padded_vector_masks(p.w, PL, NV + 1, in_mask);
  __mmask16 out_mask[NV];
  __m512 wv[9], bv;
  wide_plane_constants<NV>(p, wk, bias, out_mask, wv, bv);
  // output vectors with lanes to store (112 columns: 7 of the 8 that 114 padded columns span)
  const int out_vectors = static_cast<int>(std::min<int64_t>(NV, (p.out_w + 15) / 16));
  for_each_strip<kStripVectors>(out_vectors, [&](auto cnt, int v0) {
    wide_strip<PL, decltype(cnt)::value>(p, x, in_mask, out_mask, wv, bv, v0, y);
  });
}

// Stride 2: padded row r's tap vectors of output vector v, t[kx][j] = padded column
// 2 (16 v + j) + kx (zeros outside the image): padded vectors 2v, 2v + 1, 2v + 2, each a masked
// load straight off the input row (in_mask: padded_vector_masks).
template <int PL>
inline void stride2_taps(const ConvParams& p, const float* x, const __mmask16* in_mask, int64_t r,
                         int v, __m512* t) {
  const int64_t iy = r - p.pad_top;
  if (iy < 0 || iy >= p.h) {
    t[0] = t[1] = t[2] = _mm512_setzero_ps();
    return;
  }
  const float* row = x + iy * p.w + 32 * v;  // padded vector 2v starts PL floats before it
  const __m512 lo = _mm512_maskz_loadu_ps(in_mask[2 * v], lanes_before(row, PL));
  const __m512 hi = _mm512_maskz_loadu_ps(in_mask[2 * v + 1], lanes_before(row + 16, PL));
  const __m512 next = _mm512_maskz_loadu_ps(in_mask[2 * v + 2], lanes_before(row + 32, PL));
  taps_stride2_across(lo, hi, next, t);
}

// Stride 2 (both ways): output row oy reads padded rows 2oy, 2oy + 1 and 2oy + 2. The odd row
// serves that output row alone and the next even row serves it and the next one, so per output
// vector the two new rows' tap vectors are made (two masked loads and three permutes a row: each
// padded vector loaded straight from the input row, its mask covering the padding, no lane
// shift) and the next even row's kept in registers for the following output row. A rolling
// window over whole rows made both rows' taps for the whole row first and kept all three rows on
// the stack: a tap vector was a store and up to three loads, and one thread ran (8,64,112,112)
// at 1.81 ms (17.7 GB/s, against its 25 GB/s streaming rate).
template <int PL, int NV>
void wide_plane_stride2(const ConvParams& p, const float* x, const float* wk, float bias, float* y) {
  constexpr int NO = (NV + 1) / 2;  // output vectors per row
  constexpr int NP = 2 * NO + 1;    // padded vectors they read: 2v, 2v + 1, 2v + 2 for vector v
  __mmask16 in_mask[NP];
  padded_vector_masks(p.w, PL, NP, in_mask);
  __mmask16 out_mask[NO];
  __m512 wv[9], bv;
  wide_plane_constants<NO>(p, wk, bias, out_mask, wv, bv);
  auto taps = [&](int64_t r, int v, __m512* t) { stride2_taps<PL>(p, x, in_mask, r, v, t); };
  __m512 top[NO][3];  // padded row 2oy's taps, per output vector
  for (int v = 0; v < NO; ++v) taps(0, v, top[v]);
  for (int64_t oy = 0; oy < p.out_h; ++oy) {
    float* out = y + oy * p.out_w;
    for (int v = 0; v < NO; ++v) {
      __m512 mid[3], bottom[3];
      taps(2 * oy + 1, v, mid);
      taps(2 * oy + 2, v, bottom);
      _mm512_mask_storeu_ps(out + 16 * v, out_mask[v], nine_taps(bv, wv, top[v], mid, bottom));
      for (int kx = 0; kx < 3; ++kx) top[v][kx] = bottom[kx];
    }
  }
}

// dW[c] for every channel c: add_plane(x plane, dy plane, sums) adds one image's products into
// nine vector sums, images in order, one channel a thread (the result does not depend on the
// thread count), the sums reduced across lanes at the end.
template <typename AddPlane>
void each_channel_sums(const ConvParams& p, const float* dy, const float* x, float* dw,
                       AddPlane add_plane) {
  const int64_t in_plane = p.h * p.w, out_plane = p.out_h * p.out_w;
#pragma omp parallel for schedule(static) num_threads(num_threads())
  for (int64_t c = 0; c < p.c; ++c) {
    if (interrupted()) continue;  // Ctrl-C: see cpu/parallel.h
    __m512 acc[9];
    for (int t = 0; t < 9; ++t) acc[t] = _mm512_setzero_ps();
    for (int64_t n = 0; n < p.n; ++n)
      add_plane(x + (n * p.c + c) * in_plane, dy + (n * p.c + c) * out_plane, acc);
    for (int t = 0; t < 9; ++t) dw[c * 9 + t] = _mm512_reduce_add_ps(acc[t]);
  }
}

// The weight gradient, stride 1, rows of up to 4 vectors: per output row and vector, the dy
// vector (zero past out_w) times each of the three rows' tap vectors into nine sums, over a
// window of whole rows unrolled by three (roll_three_rows); a channel per thread, images in order.
template <int PL, int NV>
void wide_weight_gradient_rolling(const ConvParams& p, const float* dy, const float* x, float* dw) {
  using Taps = WideTaps<NV>;
  const WideRows<PL, NV> rows_of(p);
  __mmask16 out_mask[NV];
  row_vector_masks(p.out_w, NV, out_mask);
  each_channel_sums(p, dy, x, dw, [&](const float* xp, const float* dyp, __m512* acc) {
    auto add_row = [&](int64_t oy, const Taps& r0, const Taps& r1, const Taps& r2) {
      for (int v = 0; v < NV; ++v) {
        const __m512 d = _mm512_maskz_loadu_ps(out_mask[v], dyp + oy * p.out_w + 16 * v);
        add_nine_products<NV>(acc, d, r0, r1, r2, v);
      }
    };
    roll_three_rows<Taps>(p.out_h, [&](int64_t r, Taps& t) { rows_of.load(p, xp, r, t); }, add_row);
  });
}

// Rows of more than kWeightStripVectors output vectors (112-wide maps: 7): the same sums in the
// forward's strips (wide_strip) of up to kWeightStripVectors output vectors, each walked down the
// plane over a rolling window of three rows' tap vectors. Over whole rows the window held 3 x 3 x
// 8 tap vectors, all through the stack. One thread, kernel alone, best of 5 runs: (8,32,112,112)
// 1.25 -> 1.04 ms, (2,32,112,112) in cache 0.286 -> 0.195. Strips of 2 (9 sums + 18 taps + dy in
// registers, but each plane walked 4 times) ran 1.48 and 0.257; and on rows of 2-4 vectors the
// strip form lost to the whole-row window ((8,256,28,28) 0.40 -> 0.57), so those keep it.
constexpr int kWeightStripVectors = 4;

// sums[9] += the products of output vectors [v0, v0 + CNT) of one plane (x, its dy)
// (flatten: everything it calls inlined, whatever the inliner's budget for this file has left.
// Left to the heuristics, the strip's tap loads went out of line and its taps through the stack
// once this file grew by the stride-2 weight gradient: (2,32,112,112) 0.20 -> 0.28 ms.)
template <int PL, int CNT>
__attribute__((flatten)) void weight_gradient_strip(const ConvParams& p, const float* x,
                                                    const float* dy, const __mmask16* in_masks,
                                                    const __mmask16* out_masks, int v0,
                                                    __m512* sums) {
  __m512 acc[9];  // local copies, in registers down the strip
  for (int t = 0; t < 9; ++t) acc[t] = sums[t];
  __mmask16 in_mask[CNT + 1], out_mask[CNT];
  strip_masks<CNT>(in_masks, out_masks, v0, in_mask, out_mask);
  using Taps = WideTaps<CNT>;
  auto load = [&](int64_t r, Taps& t) { strip_taps<PL, CNT>(p, x, in_mask, v0, r, t); };
  auto add_row = [&](int64_t oy, const Taps& r0, const Taps& r1, const Taps& r2) {
    const float* d_row = dy + oy * p.out_w + 16 * v0;
    for (int v = 0; v < CNT; ++v)
      add_nine_products<CNT>(acc, _mm512_maskz_loadu_ps(out_mask[v], d_row + 16 * v), r0, r1, r2, v);
  };
  roll_three_rows<Taps>(p.out_h, load, add_row);
  for (int t = 0; t < 9; ++t) sums[t] = acc[t];
}

template <int PL, int NV>
void wide_weight_gradient_strips(const ConvParams& p, const float* dy, const float* x, float* dw) {
  __mmask16 in_mask[NV + 1], out_mask[NV];
  padded_vector_masks(p.w, PL, NV + 1, in_mask);
  row_vector_masks(p.out_w, NV, out_mask);
  const int out_vectors = static_cast<int>(std::min<int64_t>(NV, (p.out_w + 15) / 16));
  each_channel_sums(p, dy, x, dw, [&](const float* xp, const float* dyp, __m512* acc) {
    for_each_strip<kWeightStripVectors>(out_vectors, [&](auto cnt, int v0) {
      weight_gradient_strip<PL, decltype(cnt)::value>(p, xp, dyp, in_mask, out_mask, v0, acc);
    });
  });
}

// Stride 2: the forward's walk (wide_plane_stride2), each output vector's dy times its three
// padded rows' taps into the nine sums, the shared even row's taps kept in registers for the next
// output row (9 sums + 3 x 4 kept + 6 new + dy: 28 registers on 112-wide maps). A whole-row
// window had kept all three rows' taps of every output vector, 36 tap vectors, on the stack.
// Kernel alone, best of runs, one thread / two: (8,64,112,112) 1.93 -> 1.56 / 0.87 -> 0.74 ms,
// (8,128,56,56) 0.58 -> 0.43 / 0.26 -> 0.18; 28x28 maps even.
template <int PL, int NV>
void wide_weight_gradient_stride2(const ConvParams& p, const float* dy, const float* x, float* dw) {
  constexpr int NO = (NV + 1) / 2;  // output vectors per row
  constexpr int NP = 2 * NO + 1;    // padded vectors they read
  __mmask16 in_mask[NP], out_mask[NO];
  padded_vector_masks(p.w, PL, NP, in_mask);
  row_vector_masks(p.out_w, NO, out_mask);
  each_channel_sums(p, dy, x, dw, [&](const float* xp, const float* dyp, __m512* acc) {
    __m512 top[NO][3];
    for (int v = 0; v < NO; ++v) stride2_taps<PL>(p, xp, in_mask, 0, v, top[v]);
    for (int64_t oy = 0; oy < p.out_h; ++oy)
      for (int v = 0; v < NO; ++v) {
        __m512 mid[3], bottom[3];
        stride2_taps<PL>(p, xp, in_mask, 2 * oy + 1, v, mid);
        stride2_taps<PL>(p, xp, in_mask, 2 * oy + 2, v, bottom);
        const __m512 d = _mm512_maskz_loadu_ps(out_mask[v], dyp + oy * p.out_w + 16 * v);
        add_nine_products(acc, d, top[v], mid, bottom);
        for (int kx = 0; kx < 3; ++kx) top[v][kx] = bottom[kx];
      }
  });
}

// fn<PL, NV>(args...) for the call's left pad and vectors per row
template <template <int, int> class Fn, typename... Args>
void wide_dispatch(const ConvParams& p, Args... args) {
  const int64_t nv = (p.w + p.pad_left + p.pad_right + 15) / 16;
  auto by_nv = [&](auto pl) {
    constexpr int PL = decltype(pl)::value;
    switch (nv) {
      case 1: return Fn<PL, 1>::run(p, args...);
      case 2: return Fn<PL, 2>::run(p, args...);
      case 3: return Fn<PL, 3>::run(p, args...);
      case 4: return Fn<PL, 4>::run(p, args...);
      case 5: return Fn<PL, 5>::run(p, args...);
      case 6: return Fn<PL, 6>::run(p, args...);
      case 7: return Fn<PL, 7>::run(p, args...);
      default: return Fn<PL, 8>::run(p, args...);
    }
  };
  switch (p.pad_left) {
    case 0: return by_nv(std::integral_constant<int, 0>{});
    case 1: return by_nv(std::integral_constant<int, 1>{});
    case 2: return by_nv(std::integral_constant<int, 2>{});
    default: return by_nv(std::integral_constant<int, 3>{});
  }
}

// A depthwise kernel given as outer(w_col, w_row) (the separable 1-D form, csrc/cpu/separable1d.h),
// strides and dilations 1, kernels up to 8 taps, left pad up to 3 (`col` carries the row padding
// too: it is the column pass over the padded width): per output row, the column pass sums the kh
// rows of a rolling window into a middle row (in registers, vector by vector), and the row pass
// adds its kw lane-shifted copies to the bias; kh + kw multiply-adds per output, in the order of
// dw_forward_rank1 (column taps from zero, then row taps from the bias): bit-identical to it.
template <int PL, int NV>
void rank1_plane(const ConvParams& col, const ConvParams& row, const float* x, const float* w_col,
                 const float* w_row, float bias, float* y) {
  const int64_t kh = col.kh, kw = row.kw, out_w = row.out_w;
  __mmask16 in_mask[NV], out_mask[NV];
  row_vector_masks(col.w, NV, in_mask);
  row_vector_masks(out_w, NV, out_mask);
  __m512 wc[8], wr[8];
  for (int64_t t = 0; t < kh; ++t) wc[t] = _mm512_set1_ps(w_col[t]);
  for (int64_t t = 0; t < kw; ++t) wr[t] = _mm512_set1_ps(w_row[t]);
  const __m512 bv = _mm512_set1_ps(bias);
  __m512i win[8][NV + 2];  // padded input rows, slot = row % kh
  auto load = [&](int64_t r) {
    const int64_t iy = r - col.pad_top;
    __m512i* dst = win[r % kh];
    if (iy < 0 || iy >= col.h) {
      for (int v = 0; v < NV + 2; ++v) dst[v] = _mm512_setzero_si512();
    } else {
      load_padded_row<PL, NV>(x + iy * col.w, in_mask, dst);
    }
  };
  for (int64_t r = 0; r + 1 < kh; ++r) load(r);
  for (int64_t oy = 0; oy < col.out_h; ++oy) {
    load(oy + kh - 1);
    __m512 mid[NV + 1];
    for (int v = 0; v <= NV; ++v) {
      __m512 acc = _mm512_setzero_ps();
      for (int64_t t = 0; t < kh; ++t)
        acc = _mm512_fmadd_ps(wc[t], _mm512_castsi512_ps(win[(oy + t) % kh][v]), acc);
      mid[v] = acc;
    }
    float* out = y + oy * out_w;
    for (int v = 0; v < NV; ++v) {
      __m512 acc = bv;
      for (int64_t t = 0; t < kw; ++t) acc = _mm512_fmadd_ps(wr[t], shift_down(mid[v], mid[v + 1], int(t)), acc);
      _mm512_mask_storeu_ps(out + 16 * v, out_mask[v], acc);
    }
  }
}

template <int PL, int NV>
struct Rank1Forward {
  static void run(const ConvParams& row, const ConvParams* col_p, const float* x,
                  const float* w_col, const float* w_row, const float* bias, float* y) {
    const ConvParams& col = *col_p;
    const int64_t planes = col.n * col.c, in_plane = col.h * col.w;
    const int64_t out_plane = row.out_h * row.out_w;
#pragma omp parallel for schedule(static) num_threads(num_threads())
    for (int64_t i = 0; i < planes; ++i) {
      if (interrupted()) continue;  // Ctrl-C: see cpu/parallel.h
      const int64_t c = i % col.c;
      rank1_plane<PL, NV>(col, row, x + i * in_plane, w_col + c * col.kh, w_row + c * row.kw,
                          bias ? bias[c] : 0.0f, y + i * out_plane);
    }
  }
};

template <int SW>
struct WideForward {
  template <int PL, int NV>
  struct Fn {
    static void run(const ConvParams& p, const float* x, const float* w, const float* bias,
                    float* y) {
      if constexpr (SW == 1) each_plane(p, x, w, bias, y, &wide_plane_strips<PL, NV>);
      else each_plane(p, x, w, bias, y, &wide_plane_stride2<PL, NV>);
    }
  };
};

template <int SW>
struct WideWeightGradient {
  template <int PL, int NV>
  struct Fn {
    static void run(const ConvParams& p, const float* dy, const float* x, float* dw) {
      if constexpr (SW == 1 && NV > kWeightStripVectors) wide_weight_gradient_strips<PL, NV>(p, dy, x, dw);
      else if constexpr (SW == 1) wide_weight_gradient_rolling<PL, NV>(p, dy, x, dw);
      else wide_weight_gradient_stride2<PL, NV>(p, dy, x, dw);
    }
  };
};

// Stride 2's input gradient (stride 1's is a forward over dy, see depthwise.cpp) on rows of NV
// vectors (up to 16 NV padded columns): each dy row is spread to the even lanes (lane 2 ox holds
// dy[ox]), shifted by kx lanes and added with weight w[ky][kx] into padded row 2 oy + ky, in
// (oy, ky, kx) order as the scatter kernel adds, over a window of three padded rows of sums;
// padded rows 2 oy and 2 oy + 1 are complete once dy row oy is added (later rows of dy reach
// 2 oy + 2 on), so each is stored then; rows no dy row reaches are zeros.
template <int PL, int NV>
void wide_input_gradient_stride2(const ConvParams& p, const float* dy, const float* w, float* dx) {
  constexpr int NE = NV + 1;  // spread vectors per dy row: lanes up to 2 out_w + 1
  const int64_t in_plane = p.h * p.w, out_plane = p.out_h * p.out_w;
  const int64_t hp = p.h + p.pad_top + p.pad_bottom;
  const int64_t nu = (p.out_w + 15) / 16;
  const __m512i spread_lo = _mm512_set_epi32(16, 7, 16, 6, 16, 5, 16, 4, 16, 3, 16, 2, 16, 1, 16, 0);
  const __m512i spread_hi =
      _mm512_set_epi32(16, 15, 16, 14, 16, 13, 16, 12, 16, 11, 16, 10, 16, 9, 16, 8);
  const __m512i zi = _mm512_setzero_si512();
  __mmask16 dy_mask[NV], store_mask[NV];
  row_vector_masks(p.out_w, NV, dy_mask);
  row_vector_masks(p.w, NV, store_mask);
  const int64_t planes = p.n * p.c;
#pragma omp parallel for schedule(static) num_threads(num_threads())
  for (int64_t i = 0; i < planes; ++i) {
    if (interrupted()) continue;  // Ctrl-C: see cpu/parallel.h
    const float* wk = w + (i % p.c) * 9;
    __m512 wv[9];
    for (int t = 0; t < 9; ++t) wv[t] = _mm512_set1_ps(wk[t]);
    const float* dy_plane = dy + i * out_plane;
    float* dx_plane = dx + i * in_plane;
    __m512 g[3][NV];  // padded rows r, r + 1, r + 2 of the window (slot = row % 3)
    for (int q = 0; q < 3; ++q)
      for (int v = 0; v < NV; ++v) g[q][v] = _mm512_setzero_ps();
    // stores padded row r (slot r % 3) into dx if it is an input row, then clears the slot
    auto flush = [&](int64_t r) {
      __m512* row = g[r % 3];
      const int64_t iy = r - p.pad_top;
      if (iy >= 0 && iy < p.h) {
        for (int v = 0; v < NV; ++v) {
          const __m512i cur = _mm512_castps_si512(row[v]);
          const __m512i nxt = v + 1 < NV ? _mm512_castps_si512(row[v + 1]) : zi;
          // lanes PL .. of the padded row: shifted down by PL
          _mm512_mask_storeu_ps(dx_plane + iy * p.w + 16 * v, store_mask[v],
                                _mm512_castsi512_ps(_mm512_alignr_epi32(nxt, cur, PL)));
        }
      }
      for (int v = 0; v < NV; ++v) row[v] = _mm512_setzero_ps();
    };
    for (int64_t oy = 0; oy < p.out_h; ++oy) {
      __m512i e[NE];
      for (int v = 0; v < NE; ++v) e[v] = zi;
      for (int64_t u = 0; u < nu && 2 * u + 1 < NE; ++u) {
        const __m512 d = _mm512_maskz_loadu_ps(dy_mask[u], dy_plane + oy * p.out_w + 16 * u);
        e[2 * u] = _mm512_castps_si512(_mm512_permutex2var_ps(d, spread_lo, _mm512_setzero_ps()));
        e[2 * u + 1] = _mm512_castps_si512(_mm512_permutex2var_ps(d, spread_hi, _mm512_setzero_ps()));
      }
      for (int v = 0; v < NV; ++v) {
        const __m512i prev = v > 0 ? e[v - 1] : zi;
        const __m512 s0 = _mm512_castsi512_ps(e[v]);
        const __m512 s1 = _mm512_castsi512_ps(_mm512_alignr_epi32(e[v], prev, 15));
        const __m512 s2 = _mm512_castsi512_ps(_mm512_alignr_epi32(e[v], prev, 14));
        for (int ky = 0; ky < 3; ++ky) {
          __m512& acc = g[(2 * oy + ky) % 3][v];
          acc = _mm512_fmadd_ps(wv[ky * 3 + 0], s0, acc);
          acc = _mm512_fmadd_ps(wv[ky * 3 + 1], s1, acc);
          acc = _mm512_fmadd_ps(wv[ky * 3 + 2], s2, acc);
        }
      }
      flush(2 * oy);
      flush(2 * oy + 1);
    }
    for (int64_t r = 2 * p.out_h; r < hp; ++r) flush(r);
  }
}

template <int PL, int NV>
struct WideInputGradientStride2 {
  static void run(const ConvParams& p, const float* dy, const float* w, float* dx) {
    wide_input_gradient_stride2<PL, NV>(p, dy, w, dx);
  }
};

template <int SW>
void dispatch_pad(const ConvParams& p, const float* x, const float* w, const float* bias, float* y) {
  switch (p.pad_left) {
    case 0: return all_planes<SW, 0>(p, x, w, bias, y);
    case 1: return all_planes<SW, 1>(p, x, w, bias, y);
    default: return all_planes<SW, 2>(p, x, w, bias, y);
  }
}

template <int SW>
void dispatch_pad_weight(const ConvParams& p, const float* dy, const float* x, float* dw) {
  switch (p.pad_left) {
    case 0: return weight_gradient<SW, 0>(p, dy, x, dw);
    case 1: return weight_gradient<SW, 1>(p, dy, x, dw);
    default: return weight_gradient<SW, 2>(p, dy, x, dw);
  }
}

bool small_map_applies(const ConvParams& p) {
  if (!depthwise_in_registers_applies(p)) return false;
  const int64_t wp = p.w + p.pad_left + p.pad_right, hp = p.h + p.pad_top + p.pad_bottom;
  // the last output reads padded columns up to (out_w - 1) * stride + 2, which must lie in the
  // vectors; the stride-2 odd/even split of 32 lanes leaves 16 per tap vector
  return hp <= kMaxRows && p.out_w <= 16 && wp <= 16 * p.stride_w &&
         (p.out_w - 1) * p.stride_w + 2 < 16 * p.stride_w;
}

}  // namespace

// Stride 1 or 2, 3x3, multiplier 1, pads up to 2, up to 128 padded columns (the wide-row kernels;
// maps whose padded rows fit one or two vectors take the small-map ones).
bool depthwise_in_registers_applies(const ConvParams& p) {
  return depthwise_3x3_small_pads(p) && p.w + p.pad_left + p.pad_right <= 128;
}

void depthwise_forward_in_registers_f32(const ConvParams& p, const float* x, const float* w,
                                        const float* bias, float* y) {
  const bool small = small_map_applies(p);
  if (p.stride_w == 1) {
    if (small) return dispatch_pad<1>(p, x, w, bias, y);
    return wide_dispatch<WideForward<1>::Fn>(p, x, w, bias, y);
  }
  if (small) return dispatch_pad<2>(p, x, w, bias, y);
  wide_dispatch<WideForward<2>::Fn>(p, x, w, bias, y);
}

void depthwise_backward_weight_in_registers_f32(const ConvParams& p, const float* dy,
                                                const float* x, float* dw) {
  const bool small = small_map_applies(p);
  if (p.stride_w == 1) {
    if (small) return dispatch_pad_weight<1>(p, dy, x, dw);
    return wide_dispatch<WideWeightGradient<1>::Fn>(p, dy, x, dw);
  }
  if (small) return dispatch_pad_weight<2>(p, dy, x, dw);
  wide_dispatch<WideWeightGradient<2>::Fn>(p, dy, x, dw);
}

void depthwise_backward_input_stride2_in_registers_f32(const ConvParams& p, const float* dy,
                                                       const float* w, float* dx) {
  wide_dispatch<WideInputGradientStride2>(p, dy, w, dx);
}

bool depthwise_pair_planes_applies(const ConvParams& p) {
  // B's values (lanes up to b0 + pl + w - 1) and outputs must lie in the vector
  const int64_t b0 = pair_offset(p);
  return depthwise_3x3_small_pads(p) && p.stride_w == 1 && p.pad_left <= 1 && p.pad_right <= 1 &&
         b0 + p.pad_left + p.w <= 16 && b0 + p.out_w <= 16;
}

// The weight gradient in the same layout: two images' planes of one channel share a vector (A's
// at lane 0, B's from b0), and so do their dy rows (zero between and past them), so each of the
// nine sums takes both images' products in their own lanes, reduced across lanes once per
// channel. (8,1024,7,7), two threads: 0.157 ms on the channels-in-lanes kernel (which transposes
// the planes) -> 0.085.
void depthwise_backward_weight_pair_planes_f32(const ConvParams& p, const float* dy, const float* x,
                                               float* dw) {
  const int64_t in_plane = p.h * p.w, out_plane = p.out_h * p.out_w;
  const PairLayout pair = pair_layout(p), alone = pair_layout(p, true);
#pragma omp parallel for schedule(static) num_threads(num_threads())
  for (int64_t c = 0; c < p.c; ++c) {
    if (interrupted()) continue;  // Ctrl-C: see cpu/parallel.h
    __m512 acc[9];
    for (int t = 0; t < 9; ++t) acc[t] = _mm512_setzero_ps();
    for (int64_t n = 0; n < p.n; n += 2) {  // images n and n + 1, in order: thread-count free
      const PairLayout& g = n + 1 < p.n ? pair : alone;  // alone: B is A again, masked off
      const float* xa = x + (n * p.c + c) * in_plane;
      const float* xb = n + 1 < p.n ? xa + p.c * in_plane : xa;
      const float* da = dy + (n * p.c + c) * out_plane;
      const float* db = n + 1 < p.n ? da + p.c * out_plane : da;
      auto taps = [&](int64_t r, __m512* t) { pair_taps(g, xa, xb, r, t); };
      auto out_row = [&](int64_t oy, const __m512* r0, const __m512* r1, const __m512* r2) {
        __m512 d = _mm512_maskz_loadu_ps(g.out_a, da + oy * g.out_w);
        d = _mm512_mask_loadu_ps(d, g.out_b, lanes_before(db + oy * g.out_w, g.b0));
        add_nine_products(acc, d, r0, r1, r2);
      };
      roll_three_rows<__m512[3]>(g.out_h, taps, out_row);
    }
    for (int t = 0; t < 9; ++t) dw[c * 9 + t] = _mm512_reduce_add_ps(acc[t]);
  }
}

void depthwise_forward_pair_planes_f32(const ConvParams& p, const float* x, const float* w,
                                       const float* bias, float* y) {
  const int64_t planes = p.n * p.c, pairs = planes / 2;
  const PairLayout g = pair_layout(p);
#pragma omp parallel num_threads(num_threads())
  {
    const int64_t threads = omp_get_num_threads(), t = omp_get_thread_num();
    const int64_t first = pairs * t / threads, last = pairs * (t + 1) / threads;
    // 7x7 maps padded by 1 (the last stage of ImageNet networks at 224 pixels: MobileNet's
    // 1024 channels) with the rows known to the compiler: the padding rows' tests and the
    // rolling window's exits fold away. (8,1024,7,7), kernel alone: one thread 0.122 -> 0.100
    // ms, two 0.059 -> 0.052.
    if (p.h == 7 && p.out_h == 7 && p.pad_top == 1)
      pair_planes_forward_range<7>(g, p.c, x, w, bias, y, first, last);
    else
      pair_planes_forward_range<0>(g, p.c, x, w, bias, y, first, last);
  }
  if (planes % 2 == 1 && !interrupted()) {  // the last plane alone
    const int64_t a = planes - 1, ca = a % p.c, in_plane = p.h * p.w, out_plane = p.out_h * p.out_w;
    const float b = bias ? bias[ca] : 0.0f;
    plane_pair_rolling(pair_layout(p, true), x + a * in_plane, x + a * in_plane, w + ca * 9, w + ca * 9,
                       b, b, y + a * out_plane, y + a * out_plane);
  }
}

bool depthwise_rank1_in_registers_applies(const ConvParams& col, const ConvParams& row) {
  return col.stride_h == 1 && col.dil_h == 1 && row.stride_w == 1 && row.dil_w == 1 &&
         col.kh <= 8 && row.kw <= 8 && row.pad_left <= 3 && row.pad_right <= 8 &&
         row.w + row.pad_left + row.pad_right <= 128;
}

void depthwise_rank1_forward_in_registers_f32(const ConvParams& col, const ConvParams& row,
                                              const float* x, const float* w_col,
                                              const float* w_row, const float* bias, float* y) {
  // the row pass's padding and width pick the template (wide_dispatch reads them from `row`)
  wide_dispatch<Rank1Forward>(row, &col, x, w_col, w_row, bias, y);
}

}  // namespace convcore::cpu::avx512
