// Direct convolution on the GPU, twin of cpu/conv_direct.cpp: no workspace, one thread per output
// element for the forward and backward-input passes (the backward-input pass gathers the taps
// that read each input pixel), one block per weight element for backward-weight (a fixed-order
// block sum over images and output positions). Acc is the accumulator type: T for algo="direct",
// double for algo="reference", which makes this file the GPU's oracle as csrc/ref is the CPU's.
// Also here: the bias gradient and bias addition shared by every algorithm.
#include <algorithm>
#include <cstdint>

#include "cuda/conv.h"
#include "cuda/conv_index.cuh"
#include "cuda/launch.cuh"
#include "cuda/reduce.cuh"

namespace convcore::cuda {

namespace {

constexpr int kBlock = 256;

template <typename T, typename Acc>
__global__ void direct_forward_kernel(ConvParams p, const T* __restrict__ x, const T* __restrict__ w,
                                      const T* __restrict__ bias, T* __restrict__ y, int64_t total) {
  const int64_t cpg = p.c / p.groups, kpg = p.k / p.groups;
  CC_GRID_STRIDE(i, total) {
    const Nchw o = split_nchw(i, p.k, p.out_h, p.out_w);
    const int64_t c0 = (o.c / kpg) * cpg;
    const int64_t iy0 = o.y * p.stride_h - p.pad_top, ix0 = o.x * p.stride_w - p.pad_left;
    Acc acc = bias ? Acc(bias[o.c]) : Acc(0);
    for (int64_t cg = 0; cg < cpg; ++cg) {
      const T* plane = x + ((o.n * p.c + c0 + cg) * p.h) * p.w;
      const T* taps = w + ((o.c * cpg + cg) * p.kh) * p.kw;
      for (int64_t ky = 0; ky < p.kh; ++ky) {
        const int64_t iy = iy0 + ky * p.dil_h;
        if (iy < 0 || iy >= p.h) continue;
        for (int64_t kx = 0; kx < p.kw; ++kx) {
          const int64_t ix = ix0 + kx * p.dil_w;
          if (ix < 0 || ix >= p.w) continue;
          acc += Acc(plane[iy * p.w + ix]) * Acc(taps[ky * p.kw + kx]);
        }
      }
    }
    y[i] = T(acc);
  }
}

// dx[n, c, iy, ix] = sum over the k of c's group and the taps (ky, kx) that read (iy, ix).
template <typename T, typename Acc>
__global__ void direct_backward_input_kernel(ConvParams p, const T* __restrict__ dy,
                                             const T* __restrict__ w, T* __restrict__ dx,
                                             int64_t total) {
  const int64_t cpg = p.c / p.groups, kpg = p.k / p.groups;
  CC_GRID_STRIDE(i, total) {
    const Nchw in = split_nchw(i, p.c, p.h, p.w);
    const int64_t g = in.c / cpg, cg = in.c % cpg;
    Acc acc = Acc(0);
    for (int64_t k = g * kpg; k < (g + 1) * kpg; ++k) {
      const T* grad = dy + ((in.n * p.k + k) * p.out_h) * p.out_w;
      const T* taps = w + ((k * cpg + cg) * p.kh) * p.kw;
      for_each_source_tap(p, in.y, in.x, [&](int64_t ky, int64_t kx, int64_t oy, int64_t ox) {
        acc += Acc(grad[oy * p.out_w + ox]) * Acc(taps[ky * p.kw + kx]);
      });
    }
    dx[i] = T(acc);
  }
}

// One block per weight element (k, cg, ky, kx): its threads stride over (n, oy, ox).
template <typename T, typename Acc>
__global__ void direct_backward_weight_kernel(ConvParams p, const T* __restrict__ dy,
                                              const T* __restrict__ x, T* __restrict__ dw,
                                              int64_t weights) {
  const int64_t cpg = p.c / p.groups, kpg = p.k / p.groups;
  const int64_t positions = p.out_h * p.out_w, terms = p.n * positions;
  CC_BLOCK_STRIDE(item, weights) {
    const Nchw wi = split_nchw(item, cpg, p.kh, p.kw);  // (k, cg, ky, kx)
    const int64_t c = (wi.n / kpg) * cpg + wi.c;
    Acc acc = Acc(0);
    for (int64_t t = threadIdx.x; t < terms; t += blockDim.x) {
      const int64_t n = t / positions, pos = t % positions;
      const int64_t oy = pos / p.out_w, ox = pos % p.out_w;
      const int64_t iy = oy * p.stride_h - p.pad_top + wi.y * p.dil_h;
      const int64_t ix = ox * p.stride_w - p.pad_left + wi.x * p.dil_w;
      if (iy < 0 || iy >= p.h || ix < 0 || ix >= p.w) continue;
      acc += Acc(dy[(n * p.k + wi.n) * positions + pos]) * Acc(x[((n * p.c + c) * p.h + iy) * p.w + ix]);
    }
    const Acc total = block_sum(acc);
    if (threadIdx.x == 0) dw[item] = T(total);
  }
}

// Bias gradient, pass 1: block b = k * chunks + chunk sums dy[images of the chunk, k] in double
// (each chunk's images hold a contiguous run of planes: no division per term unless a chunk's
// terms pass 2^31) into partial[b]. Pass 2 adds each channel's chunks in chunk order. The chunk
// count depends only on the shape: the bits never change from run to run.
template <typename T>
__global__ void bias_partial_kernel(ConvParams p, const T* __restrict__ dy, int64_t chunks,
                                    int64_t images_per_chunk, double* __restrict__ partial) {
  const int64_t plane = p.out_h * p.out_w;
  CC_BLOCK_STRIDE(b, p.k * chunks) {
    const int64_t k = b / chunks, first = (b % chunks) * images_per_chunk;
    const int64_t images = images_per_chunk < p.n - first ? images_per_chunk : p.n - first;
    const int64_t terms = images > 0 ? images * plane : 0;
    double acc = 0.0;
    if (terms < (int64_t(1) << 31)) {
      const uint32_t plane32 = uint32_t(plane);
      for (uint32_t t = threadIdx.x; t < uint32_t(terms); t += blockDim.x)
        acc += double(dy[((first + t / plane32) * p.k + k) * plane + t % plane32]);
    } else {
      for (int64_t t = threadIdx.x; t < terms; t += blockDim.x)
        acc += double(dy[((first + t / plane) * p.k + k) * plane + t % plane]);
    }
    const double total = block_sum(acc);
    if (threadIdx.x == 0) partial[b] = total;
  }
}

template <typename T>
__global__ void bias_finish_kernel(const double* __restrict__ partial, int64_t chunks,
                                   T* __restrict__ db, int64_t channels) {
  CC_GRID_STRIDE(k, channels) {
    double acc = 0.0;
    for (int64_t c = 0; c < chunks; ++c) acc += partial[k * chunks + c];
    db[k] = T(acc);
  }
}

template <typename T>
__global__ void add_channel_bias_kernel(int64_t channels, int64_t plane, const T* __restrict__ bias,
                                        T* __restrict__ out, int64_t total) {
  CC_GRID_STRIDE(i, total) out[i] += bias[(i / plane) % channels];
}

}  // namespace

template <typename T, typename Acc>
void conv2d_forward_direct(const ConvParams& p, const T* x, const T* w, const T* bias, T* y,
                           cudaStream_t stream) {
  CC_CUDA_LAUNCH((direct_forward_kernel<T, Acc>), p.output_numel(), kBlock, stream, p, x, w, bias, y,
                 p.output_numel());
}

template <typename T, typename Acc>
void conv2d_backward_input_direct(const ConvParams& p, const T* dy, const T* w, T* dx,
                                  cudaStream_t stream) {
  CC_CUDA_LAUNCH((direct_backward_input_kernel<T, Acc>), p.input_numel(), kBlock, stream, p, dy, w,
                 dx, p.input_numel());
}

template <typename T, typename Acc>
void conv2d_backward_weight_direct(const ConvParams& p, const T* dy, const T* x, T* dw,
                                   cudaStream_t stream) {
  CC_CUDA_LAUNCH_BLOCKS((direct_backward_weight_kernel<T, Acc>), p.weight_numel(), kReduceBlock,
                        stream, p, dy, x, dw, p.weight_numel());
}

template <typename T>
void conv2d_backward_bias(const ConvParams& p, const T* dy, T* db, cudaStream_t stream) {
  if (p.k == 0) return;
  // about 2048 blocks (a few per SM on any GPU), at least 8K terms each
  const int64_t plane = std::max<int64_t>(p.out_h * p.out_w, 1);
  const int64_t most_chunks = std::max<int64_t>(1, (p.n * plane) / 8192);
  const int64_t chunks = std::clamp<int64_t>((2048 + p.k - 1) / p.k, 1, std::min(most_chunks, std::max<int64_t>(p.n, 1)));
  const int64_t images_per_chunk = (p.n + chunks - 1) / chunks;
  DeviceBuffer partial(size_t(p.k * chunks) * sizeof(double), stream);
  CC_CUDA_LAUNCH_BLOCKS(bias_partial_kernel<T>, p.k * chunks, kReduceBlock, stream, p, dy, chunks,
                        images_per_chunk, partial.as<double>());
  CC_CUDA_LAUNCH(bias_finish_kernel<T>, p.k, kReduceBlock, stream, partial.as<const double>(),
                 chunks, db, p.k);
}

template <typename T>
void add_channel_bias(int64_t images, int64_t channels, int64_t plane, const T* bias, T* out,
                      cudaStream_t stream) {
  const int64_t total = images * channels * plane;
  CC_CUDA_LAUNCH(add_channel_bias_kernel<T>, total, kBlock, stream, channels, plane, bias, out, total);
}

#define CONVCORE_CUDA_INSTANTIATE_DIRECT(T, Acc)                                                  \
  template void conv2d_forward_direct<T, Acc>(const ConvParams&, const T*, const T*, const T*,  \
                                              T*, cudaStream_t);                                \
  template void conv2d_backward_input_direct<T, Acc>(const ConvParams&, const T*, const T*, T*, \
                                                     cudaStream_t);                             \
  template void conv2d_backward_weight_direct<T, Acc>(const ConvParams&, const T*, const T*, T*, \
                                                      cudaStream_t);
CONVCORE_CUDA_INSTANTIATE_DIRECT(float, float)
CONVCORE_CUDA_INSTANTIATE_DIRECT(float, double)
CONVCORE_CUDA_INSTANTIATE_DIRECT(double, double)
template void conv2d_backward_bias<float>(const ConvParams&, const float*, float*, cudaStream_t);
template void conv2d_backward_bias<double>(const ConvParams&, const double*, double*, cudaStream_t);
template void add_channel_bias<float>(int64_t, int64_t, int64_t, const float*, float*, cudaStream_t);
template void add_channel_bias<double>(int64_t, int64_t, int64_t, const double*, double*, cudaStream_t);

}  // namespace convcore::cuda
