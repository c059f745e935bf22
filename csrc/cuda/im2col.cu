// im2col / col2im kernels (see im2col.cuh): one thread per column entry for im2col, one thread
// per input pixel for col2im, which gathers the (ky, kx) taps that read it (conv_index.cuh), so
// overlapping windows need no atomics.
#include "cuda/conv_index.cuh"
#include "cuda/im2col.cuh"
#include "cuda/launch.cuh"

namespace convcore::cuda {

namespace {

constexpr int kBlock = 256;

template <typename T>
__global__ void im2col_kernel(ConvParams p, int64_t c_begin, int64_t channels,
                              const T* __restrict__ x, T* __restrict__ col, ColLayout layout,
                              int64_t total) {
  const int64_t positions = p.out_h * p.out_w, taps = p.kh * p.kw;
  CC_GRID_STRIDE(i, total) {
    // i runs over (image, channel, ky, kx, oy, ox) with ox fastest: reads along x rows
    const int64_t q = i % positions;
    const int64_t rest = i / positions;
    const int64_t r = rest % (channels * taps), image = rest / (channels * taps);
    const int64_t c = r / taps, ky = (r % taps) / p.kw, kx = r % p.kw;
    const int64_t iy = (q / p.out_w) * p.stride_h - p.pad_top + ky * p.dil_h;
    const int64_t ix = (q % p.out_w) * p.stride_w - p.pad_left + kx * p.dil_w;
    T v = T(0);
    if (iy >= 0 && iy < p.h && ix >= 0 && ix < p.w)
      v = x[((image * p.c + c_begin + c) * p.h + iy) * p.w + ix];
    col[image * layout.image_stride + r * layout.row_stride + q * layout.col_stride] = v;
  }
}

template <typename T>
__global__ void col2im_kernel(ConvParams p, int64_t c_begin, int64_t channels,
                              const T* __restrict__ col, ColLayout layout, T* __restrict__ dx,
                              int64_t total) {
  CC_GRID_STRIDE(i, total) {
    const Nchw in = split_nchw(i, channels, p.h, p.w);
    const T* src = col + in.n * layout.image_stride;
    T acc = T(0);
    for_each_source_tap(p, in.y, in.x, [&](int64_t ky, int64_t kx, int64_t oy, int64_t ox) {
      const int64_t r = (in.c * p.kh + ky) * p.kw + kx;
      acc += src[r * layout.row_stride + (oy * p.out_w + ox) * layout.col_stride];
    });
    dx[((in.n * p.c + c_begin + in.c) * p.h + in.y) * p.w + in.x] = acc;
  }
}

}  // namespace

template <typename T>
void im2col(const ConvParams& p, int64_t images, int64_t c_begin, int64_t channels, const T* x,
            T* col, const ColLayout& layout, cudaStream_t stream) {
  const int64_t total = images * channels * p.kh * p.kw * p.out_h * p.out_w;
  CC_CUDA_LAUNCH(im2col_kernel<T>, total, kBlock, stream, p, c_begin, channels, x, col, layout, total);
}

template <typename T>
void col2im(const ConvParams& p, int64_t images, int64_t c_begin, int64_t channels, const T* col,
            const ColLayout& layout, T* dx, cudaStream_t stream) {
  const int64_t total = images * channels * p.h * p.w;
  CC_CUDA_LAUNCH(col2im_kernel<T>, total, kBlock, stream, p, c_begin, channels, col, layout, dx, total);
}

#define CONVCORE_CUDA_INSTANTIATE_IM2COL(T)                                                     \
  template void im2col<T>(const ConvParams&, int64_t, int64_t, int64_t, const T*, T*,          \
                          const ColLayout&, cudaStream_t);                                     \
  template void col2im<T>(const ConvParams&, int64_t, int64_t, int64_t, const T*,              \
                          const ColLayout&, T*, cudaStream_t);
CONVCORE_CUDA_INSTANTIATE_IM2COL(float)
CONVCORE_CUDA_INSTANTIATE_IM2COL(double)

}  // namespace convcore::cuda
