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

template <typename T>
__global__ void depthwise_forward_kernel(ConvParams p, const T* __restrict__ x,
                                         const T* __restrict__ w, const T* __restrict__ bias,
                                         T* __restrict__ y, int64_t total) {
  const int64_t multiplier = p.k / p.c;
  CC_GRID_STRIDE(i, total) {
    const Nchw o = split_nchw(i, p.k, p.out_h, p.out_w);
    const int64_t iy0 = o.y * p.stride_h - p.pad_top, ix0 = o.x * p.stride_w - p.pad_left;
    const TapRange rows = tap_range(iy0, p.dil_h, p.h, p.kh);
    const TapRange cols = tap_range(ix0, p.dil_w, p.w, p.kw);
    const T* plane = x + (o.n * p.c + o.c / multiplier) * p.h * p.w;
    const T* taps = w + o.c * p.kh * p.kw;
    T acc = bias ? bias[o.c] : T(0);
    for (int64_t ky = rows.lo; ky < rows.hi; ++ky) {
      const T* row = plane + (iy0 + ky * p.dil_h) * p.w + ix0;
      for (int64_t kx = cols.lo; kx < cols.hi; ++kx) acc += row[kx * p.dil_w] * taps[ky * p.kw + kx];
    }
    y[i] = acc;
  }
}

// dx[n, c, iy, ix] = sum over c's multiplier outputs and the taps that read (iy, ix).
template <typename T>
__global__ void depthwise_backward_input_kernel(ConvParams p, const T* __restrict__ dy,
                                                const T* __restrict__ w, T* __restrict__ dx,
                                                int64_t total) {
  const int64_t multiplier = p.k / p.c;
  CC_GRID_STRIDE(i, total) {
    const Nchw in = split_nchw(i, p.c, p.h, p.w);
    T acc = T(0);
    for (int64_t m = 0; m < multiplier; ++m) {
      const int64_t k = in.c * multiplier + m;
      const T* grad = dy + (in.n * p.k + k) * p.out_h * p.out_w;
      const T* taps = w + k * p.kh * p.kw;
      for (int64_t ky = 0; ky < p.kh; ++ky) {
        const int64_t oy = source_output(in.y, ky, p.pad_top, p.dil_h, p.stride_h, p.out_h);
        if (oy < 0) continue;
        for (int64_t kx = 0; kx < p.kw; ++kx) {
          const int64_t ox = source_output(in.x, kx, p.pad_left, p.dil_w, p.stride_w, p.out_w);
          if (ox >= 0) acc += grad[oy * p.out_w + ox] * taps[ky * p.kw + kx];
        }
      }
    }
    dx[i] = acc;
  }
}

// One block per (k, ky, kx); its threads stride over (n, oy, ox) restricted to the outputs whose
// tap reads inside the image.
template <typename T>
__global__ void depthwise_backward_weight_kernel(ConvParams p, const T* __restrict__ dy,
                                                 const T* __restrict__ x, T* __restrict__ dw,
                                                 int64_t weights) {
  const int64_t multiplier = p.k / p.c, taps = p.kh * p.kw;
  CC_BLOCK_STRIDE(item, weights) {
    const int64_t k = item / taps, ky = (item % taps) / p.kw, kx = item % p.kw;
    const int64_t off_y = ky * p.dil_h - p.pad_top, off_x = kx * p.dil_w - p.pad_left;
    const TapRange rows = output_range(off_y, p.stride_h, p.h, p.out_h);
    const TapRange cols = output_range(off_x, p.stride_w, p.w, p.out_w);
    const int64_t span_y = rows.hi - rows.lo, span_x = cols.hi - cols.lo;
    const int64_t terms = p.n * span_y * span_x;
    T acc = T(0);
    for (int64_t t = threadIdx.x; t < terms; t += blockDim.x) {
      const int64_t n = t / (span_y * span_x);
      const int64_t oy = rows.lo + (t / span_x) % span_y, ox = cols.lo + t % span_x;
      const T g = dy[((n * p.k + k) * p.out_h + oy) * p.out_w + ox];
      const T v = x[((n * p.c + k / multiplier) * p.h + oy * p.stride_h + off_y) * p.w +
                    ox * p.stride_w + off_x];
      acc += g * v;
    }
    const T total = block_sum(acc);
    if (threadIdx.x == 0) dw[item] = total;
  }
}

}  // namespace

template <typename T>
void depthwise_forward(const ConvParams& p, const T* x, const T* w, const T* bias, T* y,
                       cudaStream_t stream) {
  CC_CUDA_LAUNCH(depthwise_forward_kernel<T>, p.output_numel(), kBlock, stream, p, x, w, bias, y,
                 p.output_numel());
}

template <typename T>
void depthwise_backward_input(const ConvParams& p, const T* dy, const T* w, T* dx,
                              cudaStream_t stream) {
  CC_CUDA_LAUNCH(depthwise_backward_input_kernel<T>, p.input_numel(), kBlock, stream, p, dy, w, dx,
                 p.input_numel());
}

template <typename T>
void depthwise_backward_weight(const ConvParams& p, const T* dy, const T* x, T* dw,
                               cudaStream_t stream) {
  CC_CUDA_LAUNCH_BLOCKS(depthwise_backward_weight_kernel<T>, p.weight_numel(), kReduceBlock, stream,
                        p, dy, x, dw, p.weight_numel());
}

CONVCORE_CUDA_INSTANTIATE_CONV(depthwise_forward, depthwise_backward_input, depthwise_backward_weight)

}  // namespace convcore::cuda
