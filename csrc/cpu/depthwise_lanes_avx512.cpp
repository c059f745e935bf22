// Depthwise 3x3 convolution (multiplier 1) on small maps with 16 channels in the lanes of a
// 512-bit vector, AVX-512 only: 16 planes of one image are transposed (16 x 16 blocks in
// registers, cpu/vec_lanes.h) into a zero-padded channel-last tile in L1, each output is then
// nine FMAs of whole vectors read from the tile at aligned addresses, and 16 outputs at a time
// are transposed back into the planes. Forward (and so stride 1's input gradient, the forward
// over dy with the kernels turned) and the weight gradient.
//
// Why: on 7x7 maps (MobileNet's last layers, ResNet's conv5) a plane has 49 outputs. With a row
// in a vector (depthwise_small_avx512.cpp) 7 of 16 lanes work; taken flat (4 vectors a plane),
// every tap is a load split across cache lines, and either way a plane cost about 120 cycles
// against the 36 FMAs it needs: (8,1024,7,7) ran at 16-19 GB/s, 35-51% of the streaming rate.
// Here every lane works, the taps are aligned loads folded into the FMAs, and the transposes
// cost about 32 shuffles a plane.
//
// Every output is the bias plus the nine taps in (ky, kx) order, one FMA each: the forward is
// bit-identical to the row kernels. The weight gradient sums each tap over images in order, then
// positions in order, one channel per lane; threads split the channel blocks, so the result
// does not depend on the thread count.
#include <immintrin.h>

#include <algorithm>
#include <cstdint>
#include <exception>
#include <vector>

#include "common/conv_params.h"
#include "cpu/depthwise_isa.h"
#include "cpu/parallel.h"
#include "cpu/scratch.h"
#include "cpu/vec_lanes.h"

namespace convcore::cpu::avx512 {

namespace {

using V = LaneVec<16>::F;
constexpr int kLanes = 16;
// The largest padded map the tile holds (floats: hp * wp * 16, 25.6 KB at 20 x 20).
constexpr int64_t kMaxTileFloats = 20 * 20 * kLanes;

inline V fma(V a, V b, V c) { return (V)_mm512_fmadd_ps((__m512)a, (__m512)b, (__m512)c); }
inline V load(const float* aligned) { return (V)_mm512_load_ps(aligned); }

// The geometry of one call.
struct LaneTile {
  int64_t hp, wp;        // padded input extents
  int64_t in_plane, out_plane;
};

LaneTile lane_tile(const ConvParams& p) {
  return LaneTile{p.h + p.pad_top + p.pad_bottom, p.w + p.pad_left + p.pad_right, p.h * p.w,
                  p.out_h * p.out_w};
}

// tile[((iy + pad_top) * wp + ix + pad_left) * 16 + l] = plane l's (iy, ix), for `planes`
// planes `stride` floats apart (lanes past them zero); the padding is left as it is (zero).
// Positions are walked in order with a running tile pointer (no division per position).
void planes_into_tile(const ConvParams& p, const LaneTile& g, const float* x, int64_t stride,
                      int planes, float* tile) {
  float* dst = tile + (p.pad_top * g.wp + p.pad_left) * kLanes;
  const int64_t row_skip = (g.wp - p.w) * kLanes;  // from a row's end to the next row's start
  int64_t ix = 0;
  for (int64_t q0 = 0; q0 < g.in_plane; q0 += kLanes) {
    const int64_t count = std::min<int64_t>(kLanes, g.in_plane - q0);
    V rows[kLanes];
    for (int l = 0; l < kLanes; ++l)
      rows[l] = l < planes ? load_lanes<kLanes>(x + l * stride + q0, count) : V{};
    transpose_block<kLanes>(rows);
    for (int64_t q = 0; q < count; ++q) {
      _mm512_store_ps(dst, (__m512)rows[q]);
      dst += kLanes;
      if (++ix == p.w) ix = 0, dst += row_skip;
    }
  }
}

// v[t] lane l = values[l * 9 + t] for the `count` lanes given (the rest zero): nine per-lane
// kernels from `count` consecutive 3x3 kernels.
void kernels_into_lanes(const float* values, int count, V v[9]) {
  V rows[kLanes];
  for (int l = 0; l < kLanes; ++l) rows[l] = l < count ? load_lanes<kLanes>(values + l * 9, 9) : V{};
  transpose_block<kLanes>(rows);
  for (int t = 0; t < 9; ++t) v[t] = rows[t];
}

// A thread's zeroed tile: only interior positions are ever written, so the padding stays zero
// across the blocks of a call.
struct ZeroedTile {
  ScratchFloats buffer;
  explicit ZeroedTile(const LaneTile& g)
      : buffer(ScratchSlot::PaddedInput, static_cast<size_t>(g.hp * g.wp * kLanes)) {
    std::fill(buffer.get(), buffer.get() + g.hp * g.wp * kLanes, 0.0f);
  }
  float* get() const { return buffer.get(); }
};

template <int SW>
void forward_blocks(const ConvParams& p, const float* x, const float* w, const float* bias,
                    float* y) {
  const LaneTile g = lane_tile(p);
  const int64_t c_blocks = (p.c + kLanes - 1) / kLanes, blocks = p.n * c_blocks;
  std::exception_ptr error;
#pragma omp parallel num_threads(num_threads())
  {
    try {
      const ZeroedTile tile(g);
#pragma omp for schedule(static)
      for (int64_t b = 0; b < blocks; ++b) {
        if (interrupted()) continue;  // Ctrl-C: see cpu/parallel.h
        const int64_t n = b / c_blocks, c0 = (b % c_blocks) * kLanes;
        const int planes = static_cast<int>(std::min<int64_t>(kLanes, p.c - c0));
        planes_into_tile(p, g, x + (n * p.c + c0) * g.in_plane, g.in_plane, planes, tile.get());
        V wv[9];
        kernels_into_lanes(w + c0 * 9, planes, wv);
        const V bv = bias ? load_lanes<kLanes>(bias + c0, planes) : V{};
        float* y_block = y + (n * p.c + c0) * g.out_plane;
        // outputs in order, 16 at a time into `out`, then transposed into the planes
        V out[kLanes];
        int64_t done = 0;  // outputs already stored
        int q = 0;
        auto flush = [&] {
          for (int r = q; r < kLanes; ++r) out[r] = V{};
          transpose_block<kLanes>(out);
          for (int l = 0; l < planes; ++l) store_lanes<kLanes>(y_block + l * g.out_plane + done, out[l], q);
          done += q;
          q = 0;
        };
        const int64_t row_floats = g.wp * kLanes;
        for (int64_t oy = 0; oy < p.out_h; ++oy) {
          const float* r0 = tile.get() + oy * p.stride_h * row_floats;
          const float* r1 = r0 + row_floats;
          const float* r2 = r1 + row_floats;
          for (int64_t ox = 0; ox < p.out_w; ++ox, r0 += SW * kLanes, r1 += SW * kLanes, r2 += SW * kLanes) {
            V acc = bv;
            acc = fma(wv[0], load(r0), acc);
            acc = fma(wv[1], load(r0 + kLanes), acc);
            acc = fma(wv[2], load(r0 + 2 * kLanes), acc);
            acc = fma(wv[3], load(r1), acc);
            acc = fma(wv[4], load(r1 + kLanes), acc);
            acc = fma(wv[5], load(r1 + 2 * kLanes), acc);
            acc = fma(wv[6], load(r2), acc);
            acc = fma(wv[7], load(r2 + kLanes), acc);
            acc = fma(wv[8], load(r2 + 2 * kLanes), acc);
            out[q++] = acc;
            if (q == kLanes) flush();
          }
        }
        if (q > 0) flush();
      }
    } catch (...) {
#pragma omp critical(convcore_depthwise_lanes_error)
      if (!error) error = std::current_exception();
    }
  }
  if (error) std::rethrow_exception(error);
}

template <int SW>
void weight_gradient_blocks(const ConvParams& p, const float* dy, const float* x, float* dw) {
  const LaneTile g = lane_tile(p);
  const int64_t c_blocks = (p.c + kLanes - 1) / kLanes;
  std::exception_ptr error;
#pragma omp parallel num_threads(num_threads())
  {
    try {
      const ZeroedTile tile(g);
      const ScratchFloats dy_lanes(ScratchSlot::ChannelLastGrad,
                                   static_cast<size_t>((g.out_plane + kLanes) * kLanes));
#pragma omp for schedule(static)
      for (int64_t cb = 0; cb < c_blocks; ++cb) {
        if (interrupted()) continue;  // Ctrl-C: see cpu/parallel.h
        const int64_t c0 = cb * kLanes;
        const int planes = static_cast<int>(std::min<int64_t>(kLanes, p.c - c0));
        V acc[9] = {};
        for (int64_t n = 0; n < p.n; ++n) {
          planes_into_tile(p, g, x + (n * p.c + c0) * g.in_plane, g.in_plane, planes, tile.get());
          // dy of the block, channel-last: dy_lanes[o * 16 + l]
          const float* dy_block = dy + (n * p.c + c0) * g.out_plane;
          for (int64_t o0 = 0; o0 < g.out_plane; o0 += kLanes) {
            const int64_t count = std::min<int64_t>(kLanes, g.out_plane - o0);
            V rows[kLanes];
            for (int l = 0; l < kLanes; ++l)
              rows[l] = l < planes ? load_lanes<kLanes>(dy_block + l * g.out_plane + o0, count) : V{};
            transpose_block<kLanes>(rows);
            for (int64_t q = 0; q < count; ++q)
              _mm512_store_ps(dy_lanes.get() + (o0 + q) * kLanes, (__m512)rows[q]);
          }
          const float* d_at = dy_lanes.get();
          const int64_t row_floats = g.wp * kLanes;
          for (int64_t oy = 0; oy < p.out_h; ++oy) {
            const float* r0 = tile.get() + oy * p.stride_h * row_floats;
            const float* r1 = r0 + row_floats;
            const float* r2 = r1 + row_floats;
            for (int64_t ox = 0; ox < p.out_w;
                 ++ox, r0 += SW * kLanes, r1 += SW * kLanes, r2 += SW * kLanes, d_at += kLanes) {
              const V d = load(d_at);
              acc[0] = fma(d, load(r0), acc[0]);
              acc[1] = fma(d, load(r0 + kLanes), acc[1]);
              acc[2] = fma(d, load(r0 + 2 * kLanes), acc[2]);
              acc[3] = fma(d, load(r1), acc[3]);
              acc[4] = fma(d, load(r1 + kLanes), acc[4]);
              acc[5] = fma(d, load(r1 + 2 * kLanes), acc[5]);
              acc[6] = fma(d, load(r2), acc[6]);
              acc[7] = fma(d, load(r2 + kLanes), acc[7]);
              acc[8] = fma(d, load(r2 + 2 * kLanes), acc[8]);
            }
          }
        }
        // dw[c0 + l][t] = acc[t][l]
        V rows[kLanes];
        for (int t = 0; t < 9; ++t) rows[t] = acc[t];
        for (int t = 9; t < kLanes; ++t) rows[t] = V{};
        transpose_block<kLanes>(rows);
        for (int l = 0; l < planes; ++l) store_lanes<kLanes>(dw + (c0 + l) * 9, rows[l], 9);
      }
    } catch (...) {
#pragma omp critical(convcore_depthwise_lanes_error)
      if (!error) error = std::current_exception();
    }
  }
  if (error) std::rethrow_exception(error);
}

}  // namespace

bool depthwise_channels_in_lanes_applies(const ConvParams& p) {
  const int64_t hp = p.h + p.pad_top + p.pad_bottom, wp = p.w + p.pad_left + p.pad_right;
  return depthwise_in_registers_applies(p) && hp * wp * kLanes <= kMaxTileFloats &&
         p.out_w <= 8 && p.c >= kLanes;
}

void depthwise_forward_channels_in_lanes_f32(const ConvParams& p, const float* x, const float* w,
                                             const float* bias, float* y) {
  if (p.stride_w == 1) return forward_blocks<1>(p, x, w, bias, y);
  forward_blocks<2>(p, x, w, bias, y);
}

void depthwise_backward_weight_channels_in_lanes_f32(const ConvParams& p, const float* dy,
                                                     const float* x, float* dw) {
  if (p.stride_w == 1) return weight_gradient_blocks<1>(p, dy, x, dw);
  weight_gradient_blocks<2>(p, dy, x, dw);
}

}  // namespace convcore::cpu::avx512
