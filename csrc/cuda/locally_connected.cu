// Locally connected / tiled convolution on the GPU (see locally_connected.h). Output (oy, ox)
// uses kernel t = (oy % tile_h) * tile_w + ox % tile_w. One thread per element of what is
// written: y; dx (gathering, over k and the taps, the outputs that read the pixel); dw (over
// images and the output positions of its tile class that read inside the image); db (over images
// and its tile class's positions). The work per element is K*C*kh*kw at most, as in conv2d's
// direct kernels (conv_direct.cu), whose index helpers these share.
#include "cuda/conv_index.cuh"
#include "cuda/launch.cuh"
#include "cuda/locally_connected.h"

namespace convcore::cuda {

namespace {

constexpr int kBlock = 256;

// LocalParams' helpers are host functions: their device twins
__device__ inline int64_t tile_of(const LocalParams& lp, int64_t oy, int64_t ox) {
  return (oy % lp.tile_h) * lp.tile_w + ox % lp.tile_w;
}
__device__ inline int64_t ckk(const LocalParams& lp) {
  return lp.conv.c * lp.conv.kh * lp.conv.kw;
}
__device__ inline int64_t kernel_numel(const LocalParams& lp) { return lp.conv.k * ckk(lp); }
// The first output coordinate at or after lo of the tile class whose coordinates are
// phase mod period (oy % tile_h == ty): phase + period * ceil((lo - phase) / period).
__device__ inline int64_t first_of_class(int64_t lo, int64_t phase, int64_t period) {
  return lo <= phase ? phase : phase + (lo - phase + period - 1) / period * period;
}

template <typename T, typename Acc>
__global__ void local_forward_kernel(LocalParams lp, const T* __restrict__ x,
                                     const T* __restrict__ w, const T* __restrict__ bias,
                                     T* __restrict__ y, int64_t total) {
  const ConvParams& p = lp.conv;
  CC_GRID_STRIDE(i, total) {
    const Nchw o = split_nchw(i, p.k, p.out_h, p.out_w);
    const int64_t t = tile_of(lp, o.y, o.x);
    const int64_t iy0 = o.y * p.stride_h - p.pad_top, ix0 = o.x * p.stride_w - p.pad_left;
    const TapRange rows = tap_range(iy0, p.dil_h, p.h, p.kh);
    const TapRange cols = tap_range(ix0, p.dil_w, p.w, p.kw);
    const T* wk = w + t * kernel_numel(lp) + o.c * ckk(lp);
    Acc acc = bias ? Acc(bias[t * p.k + o.c]) : Acc(0);
    for (int64_t c = 0; c < p.c; ++c) {
      const T* plane = x + (o.n * p.c + c) * p.h * p.w;
      const T* taps = wk + c * p.kh * p.kw;
      for (int64_t ky = rows.lo; ky < rows.hi; ++ky) {
        const T* row = plane + (iy0 + ky * p.dil_h) * p.w + ix0;
        for (int64_t kx = cols.lo; kx < cols.hi; ++kx)
          acc += Acc(taps[ky * p.kw + kx]) * Acc(row[kx * p.dil_w]);
      }
    }
    y[i] = T(acc);
  }
}

template <typename T, typename Acc>
__global__ void local_backward_input_kernel(LocalParams lp, const T* __restrict__ dy,
                                            const T* __restrict__ w, T* __restrict__ dx,
                                            int64_t total) {
  const ConvParams& p = lp.conv;
  CC_GRID_STRIDE(i, total) {
    const Nchw in = split_nchw(i, p.c, p.h, p.w);
    Acc acc = Acc(0);
    for_each_source_tap(p, in.y, in.x, [&](int64_t ky, int64_t kx, int64_t oy, int64_t ox) {
      const T* wt = w + tile_of(lp, oy, ox) * kernel_numel(lp) + (in.c * p.kh + ky) * p.kw + kx;
      const T* grad = dy + (in.n * p.k * p.out_h + oy) * p.out_w + ox;
      for (int64_t k = 0; k < p.k; ++k) acc += Acc(grad[k * p.out_h * p.out_w]) * Acc(wt[k * ckk(lp)]);
    });
    dx[i] = T(acc);
  }
}

// dw[t, k, c, ky, kx]: the outputs of tile class t (oy = ty + j*tile_h, ox = tx + i*tile_w) whose
// tap (ky, kx) reads inside the image, over every image.
template <typename T, typename Acc>
__global__ void local_backward_weight_kernel(LocalParams lp, const T* __restrict__ dy,
                                             const T* __restrict__ x, T* __restrict__ dw,
                                             int64_t total) {
  const ConvParams& p = lp.conv;
  CC_GRID_STRIDE(i, total) {
    const int64_t kx = i % p.kw, ky = (i / p.kw) % p.kh, c = (i / (p.kw * p.kh)) % p.c;
    const int64_t k = (i / ckk(lp)) % p.k, t = i / kernel_numel(lp);
    const int64_t ty = t / lp.tile_w, tx = t % lp.tile_w;
    const int64_t off_y = ky * p.dil_h - p.pad_top, off_x = kx * p.dil_w - p.pad_left;
    const TapRange rows = output_range(off_y, p.stride_h, p.h, p.out_h);
    const TapRange cols = output_range(off_x, p.stride_w, p.w, p.out_w);
    const int64_t oy0 = first_of_class(rows.lo, ty, lp.tile_h);
    const int64_t ox0 = first_of_class(cols.lo, tx, lp.tile_w);
    Acc acc = Acc(0);
    for (int64_t n = 0; n < p.n; ++n) {
      const T* grad = dy + (n * p.k + k) * p.out_h * p.out_w;
      const T* plane = x + (n * p.c + c) * p.h * p.w;
      for (int64_t oy = oy0; oy < rows.hi; oy += lp.tile_h) {
        const T* src = plane + (oy * p.stride_h + off_y) * p.w + off_x;
        for (int64_t ox = ox0; ox < cols.hi; ox += lp.tile_w)
          acc += Acc(grad[oy * p.out_w + ox]) * Acc(src[ox * p.stride_w]);
      }
    }
    dw[i] = T(acc);
  }
}

template <typename T, typename Acc>
__global__ void local_backward_bias_kernel(LocalParams lp, const T* __restrict__ dy,
                                           T* __restrict__ db, int64_t total) {
  const ConvParams& p = lp.conv;
  CC_GRID_STRIDE(i, total) {  // i = t * K + k
    const int64_t k = i % p.k, t = i / p.k, ty = t / lp.tile_w, tx = t % lp.tile_w;
    Acc acc = Acc(0);
    for (int64_t n = 0; n < p.n; ++n) {
      const T* grad = dy + (n * p.k + k) * p.out_h * p.out_w;
      for (int64_t oy = ty; oy < p.out_h; oy += lp.tile_h)
        for (int64_t ox = tx; ox < p.out_w; ox += lp.tile_w) acc += Acc(grad[oy * p.out_w + ox]);
    }
    db[i] = T(acc);
  }
}

}  // namespace

template <typename T, typename Acc>
void local_forward(const LocalParams& lp, const T* x, const T* w, const T* bias, T* y,
                   cudaStream_t stream) {
  const int64_t total = lp.conv.output_numel();
  CC_CUDA_LAUNCH((local_forward_kernel<T, Acc>), total, kBlock, stream, lp, x, w, bias, y, total);
}

template <typename T, typename Acc>
void local_backward_input(const LocalParams& lp, const T* dy, const T* w, T* dx,
                          cudaStream_t stream) {
  const int64_t total = lp.conv.input_numel();
  CC_CUDA_LAUNCH((local_backward_input_kernel<T, Acc>), total, kBlock, stream, lp, dy, w, dx, total);
}

template <typename T, typename Acc>
void local_backward_weight(const LocalParams& lp, const T* dy, const T* x, T* dw,
                           cudaStream_t stream) {
  const int64_t total = lp.weight_numel();
  CC_CUDA_LAUNCH((local_backward_weight_kernel<T, Acc>), total, kBlock, stream, lp, dy, x, dw,
                 total);
}

template <typename T, typename Acc>
void local_backward_bias(const LocalParams& lp, const T* dy, T* db, cudaStream_t stream) {
  const int64_t total = lp.bias_numel();
  CC_CUDA_LAUNCH((local_backward_bias_kernel<T, Acc>), total, kBlock, stream, lp, dy, db, total);
}

#define CONVCORE_CUDA_INSTANTIATE_LOCAL(T, Acc)                                                  \
  template void local_forward<T, Acc>(const LocalParams&, const T*, const T*, const T*, T*,     \
                                      cudaStream_t);                                           \
  template void local_backward_input<T, Acc>(const LocalParams&, const T*, const T*, T*,         \
                                             cudaStream_t);                                    \
  template void local_backward_weight<T, Acc>(const LocalParams&, const T*, const T*, T*,        \
                                              cudaStream_t);                                   \
  template void local_backward_bias<T, Acc>(const LocalParams&, const T*, T*, cudaStream_t);
CONVCORE_CUDA_INSTANTIATE_LOCAL(float, float)
CONVCORE_CUDA_INSTANTIATE_LOCAL(float, double)
CONVCORE_CUDA_INSTANTIATE_LOCAL(double, double)

}  // namespace convcore::cuda
