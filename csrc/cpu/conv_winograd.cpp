// Winograd F(2x2,3x3) and F(4x4,3x3) conv2d (see conv_winograd.h): the dispatch to the float32
// driver (conv_winograd_f32_impl.inc, built here for SSE2 and in the per-ISA files),
// the gradients, and the generic driver below, which float64 uses.
//
// Generic driver, per call: transform every 3x3 kernel once (in double, then rounded: weights are few), then in
// chunks of tiles: transform the input tiles into V[e][c][tile] (e = one of the alpha^2 points),
// run alpha^2 GEMMs M[e] (K x tiles) = U[e] (K x C) * V[e] (C x tiles) on the project's GEMM, and
// transform each M tile back to an m x m output block (cropped at the image edge, bias added).
// The GEMMs carry the work (alpha^2 * K * C multiply-adds per tile against 9 * m^2 * K * C for the
// direct form); the transforms are O(alpha^3) per tile and channel.
#include "cpu/conv_winograd.h"

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <exception>
#include <cstring>
#include <memory>
#include <string>
#include <utility>
#include <type_traits>
#include <vector>

#include "common/errors.h"
#include "common/select_algo.h"
#include "cpu/conv.h"
#include "cpu/cpu_features.h"
#include "cpu/gemm/gemm.h"
#include <omp.h>
#include "cpu/gemm/ukernel.h"
#include "cpu/parallel.h"
#include "cpu/prepared_weights.h"
#include "cpu/scratch.h"
#include "cpu/vec_lanes.h"

namespace convcore::cpu {

namespace {

// Interpolation points 0, 1, -1 (F(2x2)) and 0, 1, -1, 2, -1/2 (F(4x4)), plus infinity: the
// matrices of Lavin & Gray, section 4 (F(4x4) with other points: below).
template <int M>
struct Matrices;

template <>
struct Matrices<2> {
  static constexpr int alpha = 4;
  static constexpr double BT[4][4] = {{1, 0, -1, 0}, {0, 1, 1, 0}, {0, -1, 1, 0}, {0, 1, 0, -1}};
  static constexpr double G[4][3] = {{1, 0, 0}, {0.5, 0.5, 0.5}, {0.5, -0.5, 0.5}, {0, 0, 1}};
  static constexpr double AT[2][4] = {{1, 1, 1, 0}, {0, 1, -1, -1}};
};

template <>
struct Matrices<4> {
  // points 0, 1, -1, 2, -1/2 (and infinity) rather than Lavin & Gray's 0, 1, -1, 2, -2: the
  // float32 error of F(4x4,3x3) measured 2.3x lower in a NumPy model of the whole algorithm
  // (mean max-norm relative error 2.0e-6 against 4.6e-6 over 20 random 32-channel layers), as
  // Barabasz et al. ("Error analysis and improving the accuracy of Winograd convolution for deep
  // neural networks", 2020) found for this point set. B^T solves A^T [(G g) . (B^T d)] = the
  // correlation of d with g for A^T[i][j] = p_j^i and G[j][k] = p_j^k / prod_{l != j} (p_j - p_l).
  static constexpr int alpha = 6;
  static constexpr double BT[6][6] = {{1, 1.5, -2, -1.5, 1, 0},   {0, -1, -2.5, -0.5, 1, 0},
                                      {0, 1, 0.5, -2.5, 1, 0},    {0, -0.5, -1, 0.5, 1, 0},
                                      {0, 2, -1, -2, 1, 0},       {0, 1, 1.5, -2, -1.5, 1}};
  static constexpr double G[6][3] = {{1, 0, 0},
                                     {-1.0 / 3, -1.0 / 3, -1.0 / 3},
                                     {1.0 / 3, -1.0 / 3, 1.0 / 3},
                                     {1.0 / 15, 2.0 / 15, 4.0 / 15},
                                     {-16.0 / 15, 8.0 / 15, -4.0 / 15},
                                     {0, 0, 1}};
  static constexpr double AT[4][6] = {
      {1, 1, 1, 1, 1, 0}, {0, 1, -1, 2, -0.5, 0}, {0, 1, 1, 4, 0.25, 0}, {0, 1, -1, 8, -0.125, 1}};
};

// u (alpha x alpha) = G g G^T, in double.
template <int M>
void kernel_tile(const double* g, double* u) {
  using Mx = Matrices<M>;
  constexpr int A = Mx::alpha;
  double t[A][3];
  for (int i = 0; i < A; ++i)
    for (int j = 0; j < 3; ++j)
      t[i][j] = Mx::G[i][0] * g[0 * 3 + j] + Mx::G[i][1] * g[1 * 3 + j] + Mx::G[i][2] * g[2 * 3 + j];
  for (int i = 0; i < A; ++i)
    for (int j = 0; j < A; ++j)
      u[i * A + j] = t[i][0] * Mx::G[j][0] + t[i][1] * Mx::G[j][1] + t[i][2] * Mx::G[j][2];
}

// Tiles transformed at once: V and M of one chunk hold alpha^2 * (C + K) * tiles elements. The
// output transform gathers each tile from alpha^2 places of M (and the input transform scatters to
// alpha^2 places of V): more streams than hardware prefetchers follow, so a chunk must stay in
// cache (about kChunkBytes) or every gather waits on memory. But each chunk re-packs the
// transformed kernels U (K x C per point) in the GEMM, so a chunk has at least kMinChunk tiles.
constexpr int64_t kChunkBytes = int64_t(1) << 20;
constexpr int64_t kMinChunk = 64;
// Tiles per transform step: the transforms run on kLanes tiles side by side, so the innermost
// loops are over lanes and vectorize (the per-tile loops are too short and full of 0/1 terms).
constexpr int kLanes = 8;

// kLanes tiles side by side in one vector (GCC/Clang vector extension: the compiler emits the
// widest SIMD the file is built for, SSE2 in this portable file).
template <typename T>
struct LanesOf;
template <>
struct LanesOf<float> {
  typedef float type __attribute__((vector_size(kLanes * sizeof(float))));
};
template <>
struct LanesOf<double> {
  typedef double type __attribute__((vector_size(kLanes * sizeof(double))));
};
template <typename T>
using Lanes = typename LanesOf<T>::type;

// y = P x P^T on kLanes tiles at once, P (R x A) one of the constant matrices (a template
// argument, so with the loops unrolled completely every coefficient is a compile-time constant:
// the 0 entries vanish and nothing is converted at run time). The input transform is P = B^T,
// the output transform P = A^T.
template <int R, int A, const double (&P)[R][A], typename T>
inline void sandwich(const Lanes<T> (&x)[A][A], Lanes<T> (&y)[R][R]) {
  Lanes<T> t[R][A];
#pragma GCC unroll 8
  for (int i = 0; i < R; ++i)
#pragma GCC unroll 8
    for (int j = 0; j < A; ++j) {
      Lanes<T> s = {};
#pragma GCC unroll 8
      for (int l = 0; l < A; ++l)
        if (P[i][l] != 0) s += T(P[i][l]) * x[l][j];
      t[i][j] = s;
    }
#pragma GCC unroll 8
  for (int i = 0; i < R; ++i)
#pragma GCC unroll 8
    for (int j = 0; j < R; ++j) {
      Lanes<T> s = {};
#pragma GCC unroll 8
      for (int l = 0; l < A; ++l)
        if (P[j][l] != 0) s += t[i][l] * T(P[j][l]);
      y[i][j] = s;
    }
}

template <int M, typename T>
inline void input_tiles(const Lanes<T> (&d)[M + 2][M + 2], Lanes<T> (&v)[M + 2][M + 2]) {
  sandwich<M + 2, M + 2, Matrices<M>::BT, T>(d, v);
}

template <int M, typename T>
inline void output_tiles(const Lanes<T> (&m)[M + 2][M + 2], Lanes<T> (&y)[M][M]) {
  sandwich<M, M + 2, Matrices<M>::AT, T>(m, y);
}

// Where a tile's output block starts.
struct TileOrigin {
  int64_t n, oy, ox;
};

template <int M, typename T>
void forward(const ConvParams& p, const T* x, const T* w, const T* bias, T* y) {
  constexpr int A = Matrices<M>::alpha, E = A * A;
  const int64_t tiles_h = (p.out_h + M - 1) / M, tiles_w = (p.out_w + M - 1) / M;
  const int64_t tiles_per_image = tiles_h * tiles_w, total = p.n * tiles_per_image;
  const int64_t chunk = std::min<int64_t>(
      total, std::max<int64_t>(kMinChunk, kChunkBytes / (E * (p.c + p.k) * int64_t(sizeof(T)))));

  // U[e][k][c]: every kernel transformed once, in double
  std::unique_ptr<T[]> u(new T[size_t(E * p.k * p.c)]);
#pragma omp parallel for schedule(static) num_threads(num_threads())
  for (int64_t kc = 0; kc < p.k * p.c; ++kc) {
    double g[9], t[E];
    for (int i = 0; i < 9; ++i) g[i] = double(w[kc * 9 + i]);
    kernel_tile<M>(g, t);
    for (int e = 0; e < E; ++e) u[size_t(e * p.k * p.c + kc)] = T(t[e]);
  }

  // Threads take whole chunks (transforms and GEMMs on one thread, its own buffers): one
  // parallel region for the call instead of three barriers per chunk, which an oversubscribed
  // machine makes very expensive. Every output element is still written by one thread.
  const int64_t chunks = (total + chunk - 1) / chunk;
#pragma omp parallel num_threads(num_threads())
  {
  std::unique_ptr<T[]> v(new T[size_t(E * p.c * chunk)]), mm(new T[size_t(E * p.k * chunk)]);
  // (image, tile row, tile column) of every tile of a chunk, counted up once per chunk: the
  // transform loops run per channel and must not divide per tile
  std::vector<TileOrigin> origin(static_cast<size_t>(chunk));
#pragma omp for schedule(dynamic, 1)
  for (int64_t ci = 0; ci < chunks; ++ci) {
    const int64_t t0 = ci * chunk;
    const int64_t count = std::min(chunk, total - t0), blocks = (count + kLanes - 1) / kLanes;
    {
      TileOrigin o{t0 / tiles_per_image, (t0 % tiles_per_image) / tiles_w * M,
                   (t0 % tiles_w) * M};
      for (int64_t i = 0; i < count; ++i) {
        origin[size_t(i)] = o;
        if ((o.ox += M) >= tiles_w * M) {
          o.ox = 0;
          if ((o.oy += M) >= tiles_h * M) { o.oy = 0; ++o.n; }
        }
      }
    }
    // input tiles -> V[e][c][i]
    for (int64_t c = 0; c < p.c; ++c)
      for (int64_t blk = 0; blk < blocks; ++blk) {
        // gathered as plain scalars (lane q of element (a, b) at dd[a][b][q]) and then loaded
        // as whole vectors: inserting scalars into vector lanes one by one is several times slower
        T dd[A][A][kLanes];
        Lanes<T> d[A][A], tv[A][A];
        const int64_t i0 = blk * kLanes, lanes = std::min<int64_t>(kLanes, count - i0);
        for (int q = 0; q < kLanes; ++q) {
          if (q >= lanes) {  // past the chunk: zeros, never stored
            for (int a = 0; a < A; ++a)
              for (int b = 0; b < A; ++b) dd[a][b][q] = T(0);
            continue;
          }
          const TileOrigin& o = origin[size_t(i0 + q)];
          const int64_t y0 = o.oy - p.pad_top, x0 = o.ox - p.pad_left;
          const T* plane = x + (o.n * p.c + c) * p.h * p.w;
          const bool inside = y0 >= 0 && x0 >= 0 && y0 + A <= p.h && x0 + A <= p.w;
          for (int a = 0; a < A; ++a) {
            const int64_t iy = y0 + a;
            if (iy < 0 || iy >= p.h) {
              for (int b = 0; b < A; ++b) dd[a][b][q] = T(0);
              continue;
            }
            const T* row = plane + iy * p.w;
            if (inside) {
              for (int b = 0; b < A; ++b) dd[a][b][q] = row[x0 + b];
              continue;
            }
            for (int b = 0; b < A; ++b) {
              const int64_t ix = x0 + b;
              dd[a][b][q] = (ix >= 0 && ix < p.w) ? row[ix] : T(0);
            }
          }
        }
        std::memcpy(&d[0][0], &dd[0][0][0], sizeof(d));
        input_tiles<M, T>(d, tv);
        for (int e = 0; e < E; ++e) {
          T* dst = v.get() + (e * p.c + c) * count + i0;
          if (lanes == kLanes) std::memcpy(dst, &tv[e / A][e % A], sizeof(tv[0][0]));
          else for (int q = 0; q < lanes; ++q) dst[q] = tv[e / A][e % A][q];
        }
      }
    // M[e] (K x count) = U[e] (K x C) * V[e] (C x count)
    for (int e = 0; e < E; ++e)
      gemm<T>(false, false, p.k, count, p.c, T(1), u.get() + e * p.k * p.c, p.c,
              v.get() + e * p.c * count, count, T(0), mm.get() + e * p.k * count, count);
    // M tiles -> output blocks
    for (int64_t k = 0; k < p.k; ++k)
      for (int64_t blk = 0; blk < blocks; ++blk) {
        Lanes<T> m[A][A], out[M][M];
        const int64_t i0 = blk * kLanes, lanes = std::min<int64_t>(kLanes, count - i0);
        for (int e = 0; e < E; ++e) {
          const T* src = mm.get() + (e * p.k + k) * count + i0;
          if (lanes == kLanes) std::memcpy(&m[e / A][e % A], src, sizeof(m[0][0]));
          else for (int q = 0; q < kLanes; ++q) m[e / A][e % A][q] = q < lanes ? src[q] : T(0);
        }
        output_tiles<M, T>(m, out);
        T res[M][M][kLanes];
        std::memcpy(&res[0][0][0], &out[0][0], sizeof(res));
        const T b = bias ? bias[k] : T(0);
        for (int q = 0; q < lanes; ++q) {
          const TileOrigin& o = origin[size_t(i0 + q)];
          const int64_t oy0 = o.oy, ox0 = o.ox;
          T* plane = y + (o.n * p.k + k) * p.out_h * p.out_w;
          for (int a = 0; a < M && oy0 + a < p.out_h; ++a)
            for (int c2 = 0; c2 < M && ox0 + c2 < p.out_w; ++c2)
              plane[(oy0 + a) * p.out_w + ox0 + c2] = res[a][c2][q] + b;
        }
      }
  }
  }  // omp parallel
}

// One tile through the lane transforms (the tile in every lane), for the test hooks.
template <int M>
void input_tile_f64(const double* d, double* v) {
  constexpr int A = Matrices<M>::alpha;
  Lanes<double> dd[A][A], vv[A][A];
  for (int e = 0; e < A * A; ++e)
    for (int q = 0; q < kLanes; ++q) dd[e / A][e % A][q] = d[e];
  input_tiles<M, double>(dd, vv);
  for (int e = 0; e < A * A; ++e) v[e] = vv[e / A][e % A][kLanes - 1];
}

template <int M>
void output_tile_f64(const double* m, double* y) {
  constexpr int A = Matrices<M>::alpha;
  Lanes<double> mm[A][A], yy[M][M];
  for (int e = 0; e < A * A; ++e)
    for (int q = 0; q < kLanes; ++q) mm[e / A][e % A][q] = m[e];
  output_tiles<M, double>(mm, yy);
  for (int e = 0; e < M * M; ++e) y[e] = yy[e / M][e % M][kLanes - 1];
}

template <int M>
void matrices(double* bt, double* g, double* at) {
  using Mx = Matrices<M>;
  std::copy(&Mx::BT[0][0], &Mx::BT[0][0] + Mx::alpha * Mx::alpha, bt);
  std::copy(&Mx::G[0][0], &Mx::G[0][0] + Mx::alpha * 3, g);
  std::copy(&Mx::AT[0][0], &Mx::AT[0][0] + M * Mx::alpha, at);
}

}  // namespace

namespace {
namespace wg_impl {
constexpr int kVL = 4;  // baseline x86-64: SSE2, 128-bit vectors
#include "cpu/conv_winograd_f32_impl.inc"
}  // namespace wg_impl
}  // namespace

void winograd_forward_f32_sse2(int tile_m, const ConvParams& p, const float* x, const float* w,
                               const float* bias, float* y, int threads) {
  if (tile_m == 4) return wg_impl::winograd_forward<4>(p, x, w, bias, y, threads);
  wg_impl::winograd_forward<2>(p, x, w, bias, y, threads);
}

void winograd_f2_backward_weight_f32_sse2(const ConvParams& p, const float* dy, const float* x,
                                          float* dw, int threads) {
  wg_impl::winograd_f2_backward_weight(p, dy, x, dw, threads);
}

// F(3x3,2x2) against im2col's weight gradient, medians, one thread / two threads: ResNet-50's
// (8,256,14,14) 1.96x / 1.51x, (8,128,28,28) 1.30x / 1.22x, (8,512,7,7) 1.09x / 1.05x, (8,128,14,14)
// 1.85x / 1.71x, NIN's conv3 (1,256,26,26) -> 384 1.64x / 1.29x, VGG's (4,128,112,112) 1.81x (two);
// it lost with 64 channels or fewer (ResNet-50's 56x56 row 1.09x / 0.96x, the DeepConvNet rows
// 0.35-0.74x), where its 16 small GEMMs per chunk re-pack as much as they multiply.
bool winograd_weight_grad_wins(const ConvParams& p) {
  return p.kh == 3 && p.kw == 3 && p.c >= 128 && p.k >= 128;
}

template <typename T>
void conv2d_backward_weight_winograd(const ConvParams& p, const T* dy, const T* x, T* dw) {
  if constexpr (std::is_same_v<T, float>) {
    // whichever tile the forward ran (so no tile argument): F(3x3,2x2) needs only a 3x3 stride-1
    // kernel (tied to F(2x2), dW under F(4x4) forwards from 128 channels had fallen back to
    // im2col: VGG's f+b 122 -> 265 ms)
    if (winograd_weight_grad_wins(p)) {  // (3x3 kernels only)
      switch (active_isa()) {
        case Isa::Avx512: return avx512::winograd_f2_backward_weight_f32(p, dy, x, dw, num_threads());
        case Isa::Avx2: return avx2::winograd_f2_backward_weight_f32(p, dy, x, dw, num_threads());
        case Isa::Scalar: return winograd_f2_backward_weight_f32_sse2(p, dy, x, dw, num_threads());
      }
    }
  }
  conv2d_backward_weight_im2col(p, dy, x, dw);
}

template void conv2d_backward_weight_winograd<float>(const ConvParams&, const float*, const float*,
                                                     float*);
template void conv2d_backward_weight_winograd<double>(const ConvParams&, const double*, const double*,
                                                      double*);

template <typename T>
void conv2d_forward_winograd(int tile_m, const ConvParams& p, const T* x, const T* w, const T* bias,
                             T* y) {
  CC_ASSERT(tile_m == 2 || tile_m == 4);
  CC_ASSERT(winograd_supports(tile_m == 2 ? ConvAlgo::WinogradF2 : ConvAlgo::WinogradF4, p, sizeof(T)));
  if (p.n * p.k * p.out_h * p.out_w == 0) return;
  if constexpr (std::is_same_v<T, float>) {
    switch (active_isa()) {
      case Isa::Avx512: return avx512::winograd_forward_f32(tile_m, p, x, w, bias, y, num_threads());
      case Isa::Avx2: return avx2::winograd_forward_f32(tile_m, p, x, w, bias, y, num_threads());
      case Isa::Scalar: return winograd_forward_f32_sse2(tile_m, p, x, w, bias, y, num_threads());
    }
  }
  if (tile_m == 2) forward<2, T>(p, x, w, bias, y);
  else forward<4, T>(p, x, w, bias, y);
}

template <typename T>
void conv2d_backward_input_winograd(int tile_m, const ConvParams& p, const T* dy, const T* w, T* dx) {
  // dX = conv(dY, W'), W' = W turned by 180 degrees with its channel axes swapped, over dY padded
  // by kernel - 1 - pad: a stride-1 convolution (common/conv_params.h)
  const ConvParams q = backward_input_as_forward(p);
  const int64_t taps = p.kh * p.kw;
  auto run = [&](T* turned) {
    turn_weights(p, w, turned);
    conv2d_forward_winograd<T>(tile_m, q, dy, turned, nullptr, dx);
  };
  if constexpr (std::is_same_v<T, float>) {
    const size_t floats = static_cast<size_t>(p.c * p.k * taps);
    // frozen weights: the turned kernel is kept, and so (keyed by it) its transformed form
    const float* kept = prepared_form(w, "turned", floats, [&](float* dst) { turn_weights(p, w, dst); });
    if (kept) {
      conv2d_forward_winograd<T>(tile_m, q, dy, kept, nullptr, dx);
      return;
    }
    // the calling thread's buffer: for 512 x 512 channels of 3x3 these are 9 MB per call
    const ScratchFloats turned(ScratchSlot::TurnedWeights, floats);
    run(turned.get());
  } else {
    std::unique_ptr<T[]> turned(new T[size_t(p.c * p.k * taps)]);
    run(turned.get());
  }
}

void winograd_kernel_tile(int tile_m, const double* g, double* u) {
  CC_ASSERT(tile_m == 2 || tile_m == 4);
  if (tile_m == 2) kernel_tile<2>(g, u);
  else kernel_tile<4>(g, u);
}

void winograd_input_tile(int tile_m, const double* d, double* v) {
  CC_ASSERT(tile_m == 2 || tile_m == 4);
  if (tile_m == 2) input_tile_f64<2>(d, v);
  else input_tile_f64<4>(d, v);
}

void winograd_output_tile(int tile_m, const double* m, double* y) {
  CC_ASSERT(tile_m == 2 || tile_m == 4);
  if (tile_m == 2) output_tile_f64<2>(m, y);
  else output_tile_f64<4>(m, y);
}

void winograd_matrices(int tile_m, double* bt, double* g, double* at) {
  CC_ASSERT(tile_m == 2 || tile_m == 4);
  if (tile_m == 2) matrices<2>(bt, g, at);
  else matrices<4>(bt, g, at);
}

template void conv2d_forward_winograd<float>(int, const ConvParams&, const float*, const float*,
                                             const float*, float*);
template void conv2d_forward_winograd<double>(int, const ConvParams&, const double*, const double*,
                                              const double*, double*);
template void conv2d_backward_input_winograd<float>(int, const ConvParams&, const float*,
                                                    const float*, float*);
template void conv2d_backward_input_winograd<double>(int, const ConvParams&, const double*,
                                                     const double*, double*);

}  // namespace convcore::cpu
