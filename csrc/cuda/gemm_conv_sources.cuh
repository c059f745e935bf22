// The B operands of the convolution GEMMs (gemm.cu's gemm_patches / gemm_grad_patches): the
// column matrix of an implicit GEMM, gathered from x or dy inside the tile loads instead of being
// built by an im2col pass. Same interface as gemm.cu's StridedSource: n_fast() says which index
// runs along a thread's run of loads, start() places a thread at its tile's columns and first k,
// fetch() hands it the run's values of one 8-deep k slice (zero outside the matrix, the k range
// of its split, or the image: the padding) and moves it 8 k on.
// Included by gemm.cu only (device code; the kernel is instantiated there).
#pragma once
#include <cstdint>

#include "cuda/gemm.cuh"

namespace convcore::cuda {
namespace {

// The B operand as the column matrix of a convolution, read straight from x (implicit GEMM:
// no column buffer). Forward: k = (c, ky, kx), j = output position, batch = image. Weight
// gradient (by_positions): k = (image, output position), j = (c, ky, kx), batch 1.
template <typename T>
struct PatchSource {
  ConvPatches<T> g;
  __host__ __device__ bool n_fast() const { return !g.by_positions; }

  // the thread's fixed index (a tap for by_positions, else a position) and its k cursor
  struct Thread {
    const T* base;
    bool j_valid[4];
    int64_t iy0[4], ix0[4];   // forward: input origin of each of the run's positions
    int64_t a, b, c;          // k cursor: (c, ky, kx) forward; (image, oy, ox) by_positions
  };
  __device__ void split_k(int64_t k, Thread& t) const {
    if (g.by_positions) {
      const int64_t q = k % g.out_positions;
      t.a = k / g.out_positions, t.b = q / g.out_w, t.c = q % g.out_w;
    } else {
      const int64_t taps = g.kh * g.kw, r = k % taps;
      t.a = k / taps, t.b = r / g.kw, t.c = r % g.kw;
    }
  }
  // one step of the k cursor (c moves fastest)
  __device__ void step(Thread& t) const {
    if (g.by_positions) {
      if (++t.c == g.out_w) { t.c = 0; if (++t.b == g.out_h) { t.b = 0; ++t.a; } }
    } else {
      if (++t.c == g.kw) { t.c = 0; if (++t.b == g.kh) { t.b = 0; ++t.a; } }
    }
  }
  __device__ Thread start(int64_t batch, int64_t j0, int64_t k) const {
    Thread t;
    t.base = g.x + batch * g.image_stride;
#pragma unroll
    for (int q = 0; q < 4; ++q) {
      const int64_t j = j0 + (g.by_positions ? 0 : q);
      t.j_valid[q] = j < (g.by_positions ? g.channels * g.kh * g.kw : g.out_positions);
      if (g.by_positions) {  // j = (c, ky, kx): the tap's offsets, the same for every q
        const int64_t taps = g.kh * g.kw, r = j % taps;
        t.iy0[q] = (r / g.kw) * g.dil_h - g.pad_top;
        t.ix0[q] = (r % g.kw) * g.dil_w - g.pad_left;
        t.base = g.x + (j / taps) * g.h * g.w;
      } else {
        t.iy0[q] = (j / g.out_w) * g.stride_h - g.pad_top;
        t.ix0[q] = (j % g.out_w) * g.stride_w - g.pad_left;
      }
    }
    split_k(k, t);
    return t;
  }
  __device__ T read(const Thread& t, int64_t image, int64_t c, int64_t iy, int64_t ix) const {
    return (iy >= 0 && iy < g.h && ix >= 0 && ix < g.w)
               ? t.base[image * g.image_stride + c * g.h * g.w + iy * g.w + ix]
               : T(0);
  }
  template <int kLoad>
  __device__ void fetch(Thread& t, bool along_j, int64_t gk, int64_t, int64_t k_end,
                        T (&out)[kLoad]) const {
    static_assert(kLoad == 4, "PatchSource runs are 4 long");
    if (!g.by_positions) {  // along j: 4 positions of one (c, ky, kx)
      const bool k_ok = gk < k_end;
#pragma unroll
      for (int q = 0; q < kLoad; ++q)
        out[q] = (k_ok && t.j_valid[q])
                     ? read(t, 0, t.a, t.iy0[q] + t.b * g.dil_h, t.ix0[q] + t.c * g.dil_w)
                     : T(0);
      for (int s = 0; s < 8; ++s) step(t);
    } else {  // along k: 4 consecutive (image, oy, ox) of one tap
      Thread run = t;
#pragma unroll
      for (int q = 0; q < kLoad; ++q) {
        out[q] = (gk + q < k_end && t.j_valid[0])
                     ? read(t, run.a, 0, run.b * g.stride_h + t.iy0[0], run.c * g.stride_w + t.ix0[0])
                     : T(0);
        step(run);
      }
      for (int s = 0; s < 8; ++s) step(t);
    }
    (void)along_j;
  }
};

// The B operand of the input gradient: dy gathered through the conv's taps (ConvGradPatches).
// Each thread's run is 4 consecutive input positions of one (kc, ky, kx).
template <typename T>
struct GradPatchSource {
  ConvGradPatches<T> g;
  __host__ __device__ bool n_fast() const { return true; }

  struct Thread {
    const T* base;
    bool j_valid[4];
    int iy[4], ix[4];  // input position + padding: the tap's dy row is (iy - ky*dh) / sh
    int64_t a, b, c;   // k cursor (kc, ky, kx), kx fastest
  };
  __device__ Thread start(int64_t batch, int64_t j0, int64_t k) const {
    Thread t;
    t.base = g.dy + batch * g.image_stride;
#pragma unroll
    for (int q = 0; q < 4; ++q) {
      const int64_t j = j0 + q;
      t.j_valid[q] = j < g.h * g.w;
      t.iy[q] = int(j / g.w + g.pad_top);
      t.ix[q] = int(j % g.w + g.pad_left);
    }
    const int64_t taps = g.kh * g.kw, r = k % taps;
    t.a = k / taps, t.b = r / g.kw, t.c = r % g.kw;
    return t;
  }
  // the dy index along one axis for tap offset `shifted` (input + pad - tap*dil), or -1
  __device__ static int source(int shifted, int stride, int extent) {
    if (shifted < 0) return -1;
    const int o = stride == 1 ? shifted : shifted / stride;
    return (o * stride == shifted && o < extent) ? o : -1;
  }
  template <int kLoad>
  __device__ void fetch(Thread& t, bool, int64_t gk, int64_t, int64_t k_end,
                        T (&out)[kLoad]) const {
    static_assert(kLoad == 4, "GradPatchSource runs are 4 long");
    const bool k_ok = gk < k_end;
    const T* plane = t.base + t.a * g.out_h * g.out_w;
    const int dy_off = int(t.b * g.dil_h), dx_off = int(t.c * g.dil_w);
#pragma unroll
    for (int q = 0; q < kLoad; ++q) {
      const int oy = source(t.iy[q] - dy_off, int(g.stride_h), int(g.out_h));
      const int ox = source(t.ix[q] - dx_off, int(g.stride_w), int(g.out_w));
      out[q] = (k_ok && t.j_valid[q] && oy >= 0 && ox >= 0) ? plane[int64_t(oy) * g.out_w + ox]
                                                             : T(0);
    }
    for (int s = 0; s < 8; ++s)
      if (++t.c == g.kw) { t.c = 0; if (++t.b == g.kh) { t.b = 0; ++t.a; } }
  }
};

}  // namespace
}  // namespace convcore::cuda
