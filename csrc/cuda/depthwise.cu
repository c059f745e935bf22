// Depthwise convolution on the GPU, twin of cpu/depthwise.cpp: every output channel k reads the
// one input channel k / multiplier. The per-channel work is small (kh*kw taps), so the kernels
// are bound by memory traffic: each computes its valid tap or output ranges once
// (conv_index.cuh) instead of testing every tap, and the weight gradient runs one block per
// (k, ky, kx) over exactly the outputs whose tap lands inside the image.
#include "cuda/conv.h"
#include "cuda/conv_index.cuh"
#include "cuda/launch.cuh"
#include "cuda/reduce.cuh"

namespace convcore::cuda {

namespace {

constexpr int kBlock = 256;

// The generic kernels (any kernel size, dilation, stride, multiplier), in index type I: int when
// every tensor of the call fits in 2^30 elements (fits_int32 below), else int64_t.
template <typename T, typename I>
__global__ void depthwise_forward_kernel(ConvParams p, const T* __restrict__ x,
                                         const T* __restrict__ w, const T* __restrict__ bias,
                                         T* __restrict__ y, I total) {
  const I H = I(p.h), W = I(p.w), K = I(p.k), C = I(p.c), KH = I(p.kh), KW = I(p.kw);
  const I multiplier = K / C;
  CC_GRID_STRIDE_AS(I, i, total) {
    const Split3<I> at = split3(i, I(p.out_h), I(p.out_w));  // outer = n*K + k
    const I k = at.outer % K, n = at.outer / K;
    const I iy0 = at.y * I(p.stride_h) - I(p.pad_top), ix0 = at.x * I(p.stride_w) - I(p.pad_left);
    const TapRangeOf<I> rows = tap_range(iy0, I(p.dil_h), H, KH);
    const TapRangeOf<I> cols = tap_range(ix0, I(p.dil_w), W, KW);
    const T* plane = x + (n * C + k / multiplier) * H * W;
    const T* taps = w + k * KH * KW;
    T acc = bias ? bias[k] : T(0);
    for (I ky = rows.lo; ky < rows.hi; ++ky) {
      const T* row = plane + (iy0 + ky * I(p.dil_h)) * W + ix0;
      for (I kx = cols.lo; kx < cols.hi; ++kx) acc += row[kx * I(p.dil_w)] * taps[ky * KW + kx];
    }
    y[i] = acc;
  }
}

// dx[n, c, iy, ix] = sum over c's multiplier outputs and the taps that read (iy, ix).
template <typename T, typename I>
__global__ void depthwise_backward_input_kernel(ConvParams p, const T* __restrict__ dy,
                                                const T* __restrict__ w, T* __restrict__ dx,
                                                I total) {
  const I K = I(p.k), C = I(p.c), KH = I(p.kh), KW = I(p.kw), OH = I(p.out_h), OW = I(p.out_w);
  const I multiplier = K / C;
  CC_GRID_STRIDE_AS(I, i, total) {
    const Split3<I> at = split3(i, I(p.h), I(p.w));  // outer = n*C + c
    const I c = at.outer % C, n = at.outer / C;
    T acc = T(0);
    for (I m = 0; m < multiplier; ++m) {
      const I k = c * multiplier + m;
      const T* grad = dy + (n * K + k) * OH * OW;
      const T* taps = w + k * KH * KW;
      for (I ky = 0; ky < KH; ++ky) {
        const I oy = source_output(at.y, ky, I(p.pad_top), I(p.dil_h), I(p.stride_h), OH);
        if (oy < 0) continue;
        for (I kx = 0; kx < KW; ++kx) {
          const I ox = source_output(at.x, kx, I(p.pad_left), I(p.dil_w), I(p.stride_w), OW);
          if (ox >= 0) acc += grad[oy * OW + ox] * taps[ky * KW + kx];
        }
      }
    }
    dx[i] = acc;
  }
}

// One block per (k, ky, kx); its threads stride over (n, oy, ox) restricted to the outputs whose
// tap reads inside the image.
template <typename T, typename I>
__global__ void depthwise_backward_weight_kernel(ConvParams p, const T* __restrict__ dy,
                                                 const T* __restrict__ x, T* __restrict__ dw,
                                                 int64_t weights) {
  const I K = I(p.k), C = I(p.c), H = I(p.h), W = I(p.w), OH = I(p.out_h), OW = I(p.out_w);
  const I multiplier = K / C, KW = I(p.kw), taps = I(p.kh) * KW;
  const I stride_h = I(p.stride_h), stride_w = I(p.stride_w);
  CC_BLOCK_STRIDE(item, weights) {
    const I k = I(item) / taps, ky = (I(item) % taps) / KW, kx = I(item) % KW;
    const I off_y = ky * I(p.dil_h) - I(p.pad_top), off_x = kx * I(p.dil_w) - I(p.pad_left);
    const TapRangeOf<I> rows = output_range(off_y, stride_h, H, OH);
    const TapRangeOf<I> cols = output_range(off_x, stride_w, W, OW);
    const I span_y = rows.hi - rows.lo, span_x = cols.hi - cols.lo;
    const I terms = I(p.n) * span_y * span_x;
    T acc = T(0);
    for (I t = I(threadIdx.x); t < terms; t += I(blockDim.x)) {
      const Split3<I> at = split3(t, span_y, span_x);  // outer = n
      const I oy = rows.lo + at.y, ox = cols.lo + at.x;
      const T g = dy[((at.outer * K + k) * OH + oy) * OW + ox];
      const T v = x[((at.outer * C + k / multiplier) * H + oy * stride_h + off_y) * W +
                    ox * stride_w + off_x];
      acc += g * v;
    }
    const T total = block_sum(acc);
    if (threadIdx.x == 0) dw[item] = total;
  }
}

// ---- 3x3 fast paths --------------------------------------------------------------------------
// 3x3 kernels, dilation 1, equal strides 1 or 2 (any pads, any multiplier): each thread owns a
// vertical strip of kStrip outputs (or inputs, for dx) in one column, so a warp's loads and stores
// are consecutive addresses along W (coalesced) and the rows a strip shares stay in registers.
// Index type I is int when every tensor fits in 2^30 elements (cheap 32-bit div/mod), else
// int64_t. The taps, strides and the pad parity are compile-time: every register array is
// indexed by constants.
constexpr int kStrip = 4;

bool fast_3x3(const ConvParams& p) {
  return p.kh == 3 && p.kw == 3 && p.dil_h == 1 && p.dil_w == 1 && p.stride_h == p.stride_w &&
         (p.stride_h == 1 || p.stride_h == 2) && p.pad_top >= 0 && p.pad_left >= 0;
}
bool fits_int32(const ConvParams& p) {
  return p.input_numel() < kInt32IndexLimit && p.output_numel() < kInt32IndexLimit &&
         p.weight_numel() < kInt32IndexLimit;
}
template <typename I>
__device__ inline bool inside(I v, I extent) { return v >= 0 && v < extent; }

// The input rows of one strip of kStrip outputs at stride S (top-left tap at (iy0, ix0) of
// `src`, an H x W plane): each in-image row is read once (its 3 columns, zero where col_ok is
// false), then visit(o, ky, v) runs for every output o of the strip whose tap row ky it is.
template <typename T, typename I, int S, typename Visit>
__device__ inline void visit_strip_rows(const T* src, I iy0, I ix0, I H, I W,
                                        const bool (&col_ok)[3], Visit visit) {
  constexpr int kRows = (kStrip - 1) * S + 3;
#pragma unroll
  for (int rr = 0; rr < kRows; ++rr) {
    const I iy = iy0 + rr;
    if (!inside<I>(iy, H)) continue;
    const T* row = src + iy * W + ix0;
    T v[3];
#pragma unroll
    for (int kx = 0; kx < 3; ++kx) v[kx] = col_ok[kx] ? row[kx] : T(0);
#pragma unroll
    for (int o = 0; o < kStrip; ++o) {
      const int ky = rr - o * S;
      if (ky >= 0 && ky <= 2) visit(o, ky, v);
    }
  }
}

// y[n, k, oy0 + o, ox] for o < kStrip: input rows iy0 .. iy0 + (kStrip-1)*S + 2, each read once.
template <typename T, typename I, int S>
__global__ void __launch_bounds__(256) dw3x3_forward_kernel(
    ConvParams p, const T* __restrict__ x, const T* __restrict__ w, const T* __restrict__ bias,
    T* __restrict__ y, I strips_y, I total) {
  const I H = I(p.h), W = I(p.w), OH = I(p.out_h), OW = I(p.out_w), K = I(p.k), C = I(p.c);
  const I mult = K / C;
  CC_GRID_STRIDE_AS(I, i, total) {
    const I ox = i % OW, r = i / OW;
    const I oy0 = (r % strips_y) * kStrip, plane = r / strips_y;  // plane = n*K + k
    const I k = plane % K, n = plane / K;
    const T* src = x + (n * C + k / mult) * H * W;
    const T* taps = w + k * 9;
    T wt[9];
#pragma unroll
    for (int t = 0; t < 9; ++t) wt[t] = taps[t];
    const T b = bias ? bias[k] : T(0);
    T acc[kStrip];
#pragma unroll
    for (int o = 0; o < kStrip; ++o) acc[o] = b;
    const I iy0 = oy0 * S - I(p.pad_top), ix0 = ox * S - I(p.pad_left);
    bool col_ok[3];
#pragma unroll
    for (int kx = 0; kx < 3; ++kx) col_ok[kx] = inside<I>(ix0 + kx, W);
    visit_strip_rows<T, I, S>(src, iy0, ix0, H, W, col_ok, [&](int o, int ky, const T(&v)[3]) {
#pragma unroll
      for (int kx = 0; kx < 3; ++kx)
        if (col_ok[kx]) acc[o] += v[kx] * wt[ky * 3 + kx];
    });
    T* dst = y + (plane * OH + oy0) * OW + ox;
#pragma unroll
    for (int o = 0; o < kStrip; ++o)
      if (oy0 + o < OH) dst[o * OW] = acc[o];
  }
}

// dx[n, c, iy0 + o, ix] for o < kStrip. With q = iy0 + pad_top (PAR = q mod S, the same for
// every strip since kStrip is a multiple of S), tap ky of row o reads dy row
// (q - PAR)/S + d where S*d = PAR + o - ky: compile-time for each (o, ky).
template <typename T, typename I, int S, int PAR>
__global__ void __launch_bounds__(256) dw3x3_backward_input_kernel(
    ConvParams p, const T* __restrict__ dy, const T* __restrict__ w, T* __restrict__ dx,
    I strips_y, I total) {
  static_assert(kStrip % S == 0, "strips must start at a multiple of the stride");
  const I H = I(p.h), W = I(p.w), OH = I(p.out_h), OW = I(p.out_w), K = I(p.k), C = I(p.c);
  const I mult = K / C;
  constexpr int kDlo = (PAR - 2 >= 0) ? (PAR - 2) / S : -((2 - PAR + S - 1) / S);
  constexpr int kDhi = (PAR + kStrip - 1) / S;
  CC_GRID_STRIDE_AS(I, i, total) {
    const I ix = i % W, r = i / W;
    const I iy0 = (r % strips_y) * kStrip, plane = r / strips_y;  // plane = n*C + c
    const I c = plane % C, n = plane / C;
    const I oy_base = (iy0 + I(p.pad_top) - PAR) / S;
    // columns: tap kx reads dy column (ix + pad_left - kx) / S when that divides exactly
    bool col_ok[3];
    I col[3];
#pragma unroll
    for (int kx = 0; kx < 3; ++kx) {
      const I t = ix + I(p.pad_left) - kx;
      col[kx] = t >= 0 ? t / S : I(0);
      col_ok[kx] = t >= 0 && t % S == 0 && col[kx] < OW;
    }
    T acc[kStrip];
#pragma unroll
    for (int o = 0; o < kStrip; ++o) acc[o] = T(0);
    for (I m = 0; m < mult; ++m) {
      const I k = c * mult + m;
      const T* grad = dy + (n * K + k) * OH * OW;
      T wt[9];
#pragma unroll
      for (int t = 0; t < 9; ++t) wt[t] = w[k * 9 + t];
#pragma unroll
      for (int d = kDlo; d <= kDhi; ++d) {
        const I oy = oy_base + d;
        if (!inside<I>(oy, OH)) continue;
        const T* row = grad + oy * OW;
        T v[3];
#pragma unroll
        for (int kx = 0; kx < 3; ++kx) v[kx] = col_ok[kx] ? row[col[kx]] : T(0);
#pragma unroll
        for (int o = 0; o < kStrip; ++o)
#pragma unroll
          for (int ky = 0; ky < 3; ++ky) {
            if (PAR + o - ky != S * d) continue;
#pragma unroll
            for (int kx = 0; kx < 3; ++kx)
              if (col_ok[kx]) acc[o] += v[kx] * wt[ky * 3 + kx];
          }
      }
    }
    T* dst = dx + (plane * H + iy0) * W + ix;
#pragma unroll
    for (int o = 0; o < kStrip; ++o)
      if (iy0 + o < H) dst[o * W] = acc[o];
  }
}

// Weight gradient, pass 1: block b = k*chunks + chunk sums the 9 tap products over its share of
// channel k's strips (n, strip, ox), in T, and writes them to partial[b*9 + tap] (block sums in
// a fixed tree: no atomics). Pass 2 adds each tap's chunks in chunk order.
template <typename T, typename I, int S>
__global__ void __launch_bounds__(kReduceBlock) dw3x3_weight_partial_kernel(
    ConvParams p, const T* __restrict__ dy, const T* __restrict__ x, T* __restrict__ partial,
    I strips_y, I chunks, I per_chunk, I items_per_k) {
  __shared__ T sums[9][kReduceBlock];
  const I H = I(p.h), W = I(p.w), OH = I(p.out_h), OW = I(p.out_w), K = I(p.k), C = I(p.c);
  const I mult = K / C;
  for (I b = I(blockIdx.x); b < K * chunks; b += I(gridDim.x)) {
    const I k = b / chunks, chunk = b % chunks;
    const I lo = chunk * per_chunk;
    const I hi = lo + per_chunk < items_per_k ? lo + per_chunk : items_per_k;
    T acc[9];
#pragma unroll
    for (int t = 0; t < 9; ++t) acc[t] = T(0);
    for (I j = lo + I(threadIdx.x); j < hi; j += I(blockDim.x)) {
      const I ox = j % OW, r = j / OW;
      const I oy0 = (r % strips_y) * kStrip, n = r / strips_y;
      const T* grad = dy + ((n * K + k) * OH + oy0) * OW + ox;
      const T* src = x + (n * C + k / mult) * H * W;
      T g[kStrip];
#pragma unroll
      for (int o = 0; o < kStrip; ++o) g[o] = oy0 + o < OH ? grad[o * OW] : T(0);
      const I iy0 = oy0 * S - I(p.pad_top), ix0 = ox * S - I(p.pad_left);
      bool col_ok[3];
#pragma unroll
      for (int kx = 0; kx < 3; ++kx) col_ok[kx] = inside<I>(ix0 + kx, W);
      visit_strip_rows<T, I, S>(src, iy0, ix0, H, W, col_ok, [&](int o, int ky, const T(&v)[3]) {
        if (oy0 + o >= OH) return;
#pragma unroll
        for (int kx = 0; kx < 3; ++kx)
          if (col_ok[kx]) acc[ky * 3 + kx] += g[o] * v[kx];
      });
    }
#pragma unroll
    for (int t = 0; t < 9; ++t) sums[t][threadIdx.x] = acc[t];
    __syncthreads();
    for (int half = kReduceBlock / 2; half > 0; half >>= 1) {
      if (int(threadIdx.x) < half) {
#pragma unroll
        for (int t = 0; t < 9; ++t) sums[t][threadIdx.x] += sums[t][threadIdx.x + half];
      }
      __syncthreads();
    }
    if (threadIdx.x < 9) partial[b * 9 + I(threadIdx.x)] = sums[threadIdx.x][0];
    __syncthreads();  // `sums` is reused by the next block item
  }
}

template <typename T>
__global__ void dw_weight_finish_kernel(const T* __restrict__ partial, T* __restrict__ dw,
                                        int64_t chunks, int64_t total) {
  CC_GRID_STRIDE(i, total) {  // i = k*9 + tap
    const int64_t k = i / 9, tap = i % 9;
    T acc = T(0);
    for (int64_t c = 0; c < chunks; ++c) acc += partial[(k * chunks + c) * 9 + tap];
    dw[i] = acc;
  }
}

template <typename T, typename I>
void forward_3x3(const ConvParams& p, const T* x, const T* w, const T* bias, T* y,
                 cudaStream_t stream) {
  const int64_t strips = (p.out_h + kStrip - 1) / kStrip;
  const int64_t total = p.n * p.k * strips * p.out_w;
  if (p.stride_h == 1)
    CC_CUDA_LAUNCH((dw3x3_forward_kernel<T, I, 1>), total, kBlock, stream, p, x, w, bias, y,
                   I(strips), I(total));
  else
    CC_CUDA_LAUNCH((dw3x3_forward_kernel<T, I, 2>), total, kBlock, stream, p, x, w, bias, y,
                   I(strips), I(total));
}

template <typename T, typename I>
void backward_input_3x3(const ConvParams& p, const T* dy, const T* w, T* dx, cudaStream_t stream) {
  const int64_t strips = (p.h + kStrip - 1) / kStrip;
  const int64_t total = p.n * p.c * strips * p.w;
  if (p.stride_h == 1)
    CC_CUDA_LAUNCH((dw3x3_backward_input_kernel<T, I, 1, 0>), total, kBlock, stream, p, dy, w, dx,
                   I(strips), I(total));
  else if (p.pad_top % 2 == 0)
    CC_CUDA_LAUNCH((dw3x3_backward_input_kernel<T, I, 2, 0>), total, kBlock, stream, p, dy, w, dx,
                   I(strips), I(total));
  else
    CC_CUDA_LAUNCH((dw3x3_backward_input_kernel<T, I, 2, 1>), total, kBlock, stream, p, dy, w, dx,
                   I(strips), I(total));
}

template <typename T, typename I>
void backward_weight_3x3(const ConvParams& p, const T* dy, const T* x, T* dw, cudaStream_t stream) {
  const int64_t strips = (p.out_h + kStrip - 1) / kStrip;
  const int64_t items = p.n * strips * p.out_w;  // per output channel
  // Enough blocks to fill the chip several times over, each with a few items per thread. The
  // split depends only on the shape, so the summation order (and the bits) never change.
  constexpr int64_t kTargetBlocks = 2048, kMinPerChunk = 4 * kReduceBlock;
  int64_t chunks = (kTargetBlocks + p.k - 1) / p.k;
  const int64_t most = (items + kMinPerChunk - 1) / kMinPerChunk;
  if (chunks > most) chunks = most;
  if (chunks < 1) chunks = 1;
  const int64_t per_chunk = (items + chunks - 1) / chunks;
  DeviceBuffer partial(size_t(p.k * chunks * 9) * sizeof(T), stream);
  if (p.stride_h == 1)
    CC_CUDA_LAUNCH_BLOCKS((dw3x3_weight_partial_kernel<T, I, 1>), p.k * chunks, kReduceBlock,
                          stream, p, dy, x, partial.as<T>(), I(strips), I(chunks), I(per_chunk),
                          I(items));
  else
    CC_CUDA_LAUNCH_BLOCKS((dw3x3_weight_partial_kernel<T, I, 2>), p.k * chunks, kReduceBlock,
                          stream, p, dy, x, partial.as<T>(), I(strips), I(chunks), I(per_chunk),
                          I(items));
  CC_CUDA_LAUNCH(dw_weight_finish_kernel<T>, p.k * 9, kBlock, stream, partial.as<T>(), dw, chunks,
                 p.k * 9);
}

}  // namespace

template <typename T>
void depthwise_forward(const ConvParams& p, const T* x, const T* w, const T* bias, T* y,
                       cudaStream_t stream) {
  with_index_type(fits_int32(p), [&](auto index) {
    using I = decltype(index);
    if (fast_3x3(p)) return forward_3x3<T, I>(p, x, w, bias, y, stream);
    CC_CUDA_LAUNCH((depthwise_forward_kernel<T, I>), p.output_numel(), kBlock, stream, p, x, w,
                   bias, y, I(p.output_numel()));
  });
}

template <typename T>
void depthwise_backward_input(const ConvParams& p, const T* dy, const T* w, T* dx,
                              cudaStream_t stream) {
  with_index_type(fits_int32(p), [&](auto index) {
    using I = decltype(index);
    if (fast_3x3(p)) return backward_input_3x3<T, I>(p, dy, w, dx, stream);
    CC_CUDA_LAUNCH((depthwise_backward_input_kernel<T, I>), p.input_numel(), kBlock, stream, p,
                   dy, w, dx, I(p.input_numel()));
  });
}

template <typename T>
void depthwise_backward_weight(const ConvParams& p, const T* dy, const T* x, T* dw,
                               cudaStream_t stream) {
  with_index_type(fits_int32(p), [&](auto index) {
    using I = decltype(index);
    if (fast_3x3(p)) return backward_weight_3x3<T, I>(p, dy, x, dw, stream);
    CC_CUDA_LAUNCH_BLOCKS((depthwise_backward_weight_kernel<T, I>), p.weight_numel(),
                          kReduceBlock, stream, p, dy, x, dw, p.weight_numel());
  });
}

CONVCORE_CUDA_INSTANTIATE_CONV(depthwise_forward, depthwise_backward_input, depthwise_backward_weight)

}  // namespace convcore::cuda
