// Pooling kernels (see pool.h). Forward: one thread per output, the window rules of
// common/pool_params.h and PyTorch's max rule (ties to the first maximum in (ky, kx) order, a NaN
// wins, -inf padding never does). Backward: one thread per input element, which enumerates the
// windows that can hold it (strided: one candidate output per tap; adaptive: a range of outputs)
// and sums their gradients in a fixed order, in double.
#include <cmath>
#include <limits>

#include "cuda/conv_index.cuh"
#include "cuda/launch.cuh"
#include "cuda/pool.h"

namespace convcore::cuda {

namespace {

constexpr int kBlock = 256;

// Index type I: int when every tensor of the call fits in 2^30 elements (32-bit div/mod, a few
// times cheaper than int64's), else int64_t. The params' extents, converted once per thread.
template <typename I>
struct Geo {
  I h, w, out_h, out_w, kh, kw, stride_h, stride_w, pad_h, pad_w, dil_h, dil_w;
  __device__ explicit Geo(const PoolParams& p)
      : h(I(p.h)), w(I(p.w)), out_h(I(p.out_h)), out_w(I(p.out_w)), kh(I(p.kh)), kw(I(p.kw)),
        stride_h(I(p.stride_h)), stride_w(I(p.stride_w)), pad_h(I(p.pad_h)), pad_w(I(p.pad_w)),
        dil_h(I(p.dil_h)), dil_w(I(p.dil_w)) {}
};

bool fits_int32(const PoolParams& p) {
  return p.planes() * p.h * p.w < kInt32IndexLimit &&
         p.planes() * p.out_h * p.out_w < kInt32IndexLimit;
}

// One window along one axis: taps start + t*dil for t in [0, count), some possibly outside.
template <typename I>
struct Window {
  I start, count, dil;
};

template <typename I>
__device__ inline Window<I> window_y(const Geo<I>& g, PoolWindows kind, I oy) {
  if (kind == PoolWindows::Adaptive) {
    const I lo = I(adaptive_start(oy, g.h, g.out_h));
    return {lo, I(adaptive_end(oy, g.h, g.out_h)) - lo, 1};
  }
  return {oy * g.stride_h - g.pad_h, g.kh, g.dil_h};
}
template <typename I>
__device__ inline Window<I> window_x(const Geo<I>& g, PoolWindows kind, I ox) {
  if (kind == PoolWindows::Adaptive) {
    const I lo = I(adaptive_start(ox, g.w, g.out_w));
    return {lo, I(adaptive_end(ox, g.w, g.out_w)) - lo, 1};
  }
  return {ox * g.stride_w - g.pad_w, g.kw, g.dil_w};
}
__device__ inline bool window_holds(const Window<int64_t>& win, int64_t i) {
  const int64_t d = i - win.start;
  return d >= 0 && d % win.dil == 0 && d / win.dil < win.count;
}

// Max pooling forward, one thread per output. Writes any of: the maximum, its flat index
// iy*W+ix (int64), its tap ky*kw+kx inside the window (uint8; the backward's recomputed argmax).
template <typename T, typename I>
__global__ void max_forward_kernel(PoolParams p, PoolWindows kind, const T* __restrict__ x,
                                   T* __restrict__ y, int64_t* __restrict__ indices,
                                   uint8_t* __restrict__ taps, I total) {
  const Geo<I> g(p);
  CC_GRID_STRIDE_AS(I, i, total) {
    const Split3<I> at = split3(i, g.out_h, g.out_w);
    const I ox = at.x, oy = at.y, plane = at.outer;
    const Window<I> wy = window_y(g, kind, oy), wx = window_x(g, kind, ox);
    const T* src = x + plane * g.h * g.w;
    T best = -T(INFINITY);
    I best_index = -1, best_tap = 0;
    for (I ky = 0; ky < wy.count; ++ky) {
      const I iy = wy.start + ky * wy.dil;
      if (iy < 0 || iy >= g.h) continue;
      for (I kx = 0; kx < wx.count; ++kx) {
        const I ix = wx.start + kx * wx.dil;
        if (ix < 0 || ix >= g.w) continue;
        const T v = src[iy * g.w + ix];
        // the first valid tap stands when all are -inf; a NaN wins; ties keep the first
        if (best_index < 0 || v > best || isnan(v)) {
          best = v;  // at the first valid tap: v, or -inf either way
          best_index = iy * g.w + ix;
          best_tap = ky * wx.count + kx;
        }
      }
    }
    if (y) y[i] = best;
    if (indices) indices[i] = best_index;
    if (taps) taps[i] = uint8_t(best_tap);
  }
}

// The outputs along one axis whose window can hold input coordinate `in`.
template <typename I>
struct Range {
  I lo, hi;
};
template <typename I>
__device__ inline Range<I> candidate_outputs(const Geo<I>& g, PoolWindows kind, bool rows, I in) {
  const I extent = rows ? g.h : g.w, out = rows ? g.out_h : g.out_w;
  if (kind == PoolWindows::Adaptive) {
    // start(o) <= in  and  end(o) > in  <=>  floor(in*out/extent) <= o < ceil((in+1)*out/extent)
    // (products in int64: in*out can pass 2^31 even when both tensors fit)
    const I lo = I((int64_t(in) * out) / extent);
    const I hi = I(((int64_t(in) + 1) * out + extent - 1) / extent);
    return {lo, hi < out ? hi : out};
  }
  // strided windows: o*stride - pad <= in <= o*stride - pad + dil*(k-1)
  const I stride = rows ? g.stride_h : g.stride_w, pad = rows ? g.pad_h : g.pad_w;
  const I span = (rows ? g.dil_h : g.dil_w) * ((rows ? g.kh : g.kw) - 1);
  const I first = in + pad - span;
  const I lo = first <= 0 ? 0 : (first + stride - 1) / stride;
  const I hi = (in + pad) / stride + 1;
  return {lo, hi < out ? hi : out};
}

// One thread per input element: the sum of dy over the candidate windows whose maximum it is,
// known either by flat index (indices) or by tap inside the window (taps, strided windows).
template <typename T, typename I>
__global__ void max_backward_gather_kernel(PoolParams p, PoolWindows kind, const T* __restrict__ dy,
                                           const int64_t* __restrict__ indices,
                                           const uint8_t* __restrict__ taps,
                                           T* __restrict__ dx, I total) {
  const Geo<I> g(p);
  CC_GRID_STRIDE_AS(I, i, total) {
    const Split3<I> at = split3(i, g.h, g.w);
    const I ix = at.x, iy = at.y, plane = at.outer;
    const I me = iy * g.w + ix, base = plane * g.out_h * g.out_w;
    const Range<I> oys = candidate_outputs(g, kind, true, iy);
    const Range<I> oxs = candidate_outputs(g, kind, false, ix);
    double acc = 0.0;
    for (I oy = oys.lo; oy < oys.hi; ++oy)
      for (I ox = oxs.lo; ox < oxs.hi; ++ox) {
        const I o = base + oy * g.out_w + ox;
        bool mine;
        if (taps) {
          const I t = I(taps[o]), ky = t / g.kw, kx = t - ky * g.kw;
          mine = oy * g.stride_h - g.pad_h + ky * g.dil_h == iy &&
                 ox * g.stride_w - g.pad_w + kx * g.dil_w == ix;
        } else {
          mine = indices[o] == int64_t(me);
        }
        if (mine) acc += double(dy[o]);
      }
    dx[i] = T(acc);
  }
}

// Indices outside their windows (hand-made): one thread per plane adds in output order.
template <typename T>
__global__ void max_backward_scatter_kernel(PoolParams p, const T* __restrict__ dy,
                                            const int64_t* __restrict__ indices,
                                            T* __restrict__ dx, int64_t planes) {
  const int64_t in_plane = p.h * p.w, out_plane = p.out_h * p.out_w;
  CC_GRID_STRIDE(plane, planes) {
    T* dst = dx + plane * in_plane;
    for (int64_t j = 0; j < in_plane; ++j) dst[j] = T(0);
    for (int64_t o = plane * out_plane; o < (plane + 1) * out_plane; ++o) dst[indices[o]] += dy[o];
  }
}

// The input rows/columns output (oy, ox) averages, and what its sum is divided by.
template <typename I>
__device__ inline I average_window(const PoolParams& p, const Geo<I>& g, PoolWindows kind, I oy,
                                   I ox, Range<I>* rows, Range<I>* cols) {
  if (kind == PoolWindows::Adaptive) {
    *rows = {I(adaptive_start(oy, g.h, g.out_h)), I(adaptive_end(oy, g.h, g.out_h))};
    *cols = {I(adaptive_start(ox, g.w, g.out_w)), I(adaptive_end(ox, g.w, g.out_w))};
    return (rows->hi - rows->lo) * (cols->hi - cols->lo);
  }
  // avg_pool_span (common/pool_params.h) in I: clip to the padded input, then to the input
  const I sy = oy * g.stride_h - g.pad_h, sx = ox * g.stride_w - g.pad_w;
  const I ey = sy + g.kh < g.h + g.pad_h ? sy + g.kh : g.h + g.pad_h;
  const I ex = sx + g.kw < g.w + g.pad_w ? sx + g.kw : g.w + g.pad_w;
  *rows = {sy > 0 ? sy : I(0), ey < g.h ? ey : g.h};
  *cols = {sx > 0 ? sx : I(0), ex < g.w ? ex : g.w};
  if (p.divisor_override != 0) return I(p.divisor_override);
  if (p.count_include_pad) return (ey - sy) * (ex - sx);
  return (rows->hi - rows->lo) * (cols->hi - cols->lo);
}

template <typename T, typename I>
__global__ void avg_forward_kernel(PoolParams p, PoolWindows kind, const T* __restrict__ x,
                                   T* __restrict__ y, I total) {
  const Geo<I> g(p);
  CC_GRID_STRIDE_AS(I, i, total) {
    const Split3<I> at = split3(i, g.out_h, g.out_w);
    const I ox = at.x, oy = at.y, plane = at.outer;
    Range<I> rows, cols;
    const I divisor = average_window(p, g, kind, oy, ox, &rows, &cols);
    const T* src = x + plane * g.h * g.w;
    double sum = 0.0;
    for (I iy = rows.lo; iy < rows.hi; ++iy)
      for (I ix = cols.lo; ix < cols.hi; ++ix) sum += double(src[iy * g.w + ix]);
    y[i] = T(sum / double(divisor));
  }
}

template <typename T, typename I>
__global__ void avg_backward_kernel(PoolParams p, PoolWindows kind, const T* __restrict__ dy,
                                    T* __restrict__ dx, I total) {
  const Geo<I> g(p);
  CC_GRID_STRIDE_AS(I, i, total) {
    const Split3<I> at = split3(i, g.h, g.w);
    const I ix = at.x, iy = at.y, plane = at.outer;
    const Range<I> oys = candidate_outputs(g, kind, true, iy);
    const Range<I> oxs = candidate_outputs(g, kind, false, ix);
    const T* grad = dy + plane * g.out_h * g.out_w;
    double acc = 0.0;
    for (I oy = oys.lo; oy < oys.hi; ++oy)
      for (I ox = oxs.lo; ox < oxs.hi; ++ox) {
        Range<I> rows, cols;
        const I divisor = average_window(p, g, kind, oy, ox, &rows, &cols);
        // the candidate range is exact for unclipped windows; clipping can only shrink them
        if (iy < rows.lo || iy >= rows.hi || ix < cols.lo || ix >= cols.hi) continue;
        acc += double(grad[oy * g.out_w + ox]) / double(divisor);
      }
    dx[i] = T(acc);
  }
}

// Each thread checks one index: out of range -> atomicMin of its flat position into result[0];
// outside its own window -> result[1] = 1. (Atomics only here, in validation: min and a flag do
// not depend on order.)
__global__ void check_indices_kernel(PoolParams p, PoolWindows kind,
                                     const int64_t* __restrict__ indices,
                                     unsigned long long* result, int64_t total) {
  CC_GRID_STRIDE(i, total) {
    const int64_t v = indices[i];
    if (v < 0 || v >= p.h * p.w) {
      atomicMin(&result[0], static_cast<unsigned long long>(i));
      continue;
    }
    const int64_t ox = i % p.out_w, oy = (i / p.out_w) % p.out_h;
    const Geo<int64_t> g(p);
    if (!window_holds(window_y(g, kind, oy), v / p.w) || !window_holds(window_x(g, kind, ox), v % p.w))
      result[1] = 1;
  }
}

int64_t outputs(const PoolParams& p) { return p.planes() * p.out_h * p.out_w; }
int64_t inputs(const PoolParams& p) { return p.planes() * p.h * p.w; }

}  // namespace

// Launches kernel<T, int> or kernel<T, int64_t> over `total` threads by fits_int32(p).
#define CC_POOL_LAUNCH(kernel, T, p, total, stream, ...)                                       \
  with_index_type(fits_int32(p), [&](auto index) {                                           \
    using I = decltype(index);                                                                \
    CC_CUDA_LAUNCH((kernel<T, I>), (total), kBlock, (stream), __VA_ARGS__, I(total));        \
  })

template <typename T>
void max_pool2d_forward(const PoolParams& p, PoolWindows windows, const T* x, T* y,
                        int64_t* indices, cudaStream_t stream) {
  CC_POOL_LAUNCH(max_forward_kernel, T, p, outputs(p), stream, p, windows, x, y, indices,
                 static_cast<uint8_t*>(nullptr));
}

template <typename T>
void max_pool2d_backward(const PoolParams& p, PoolWindows windows, const T* dy,
                         const int64_t* indices, bool indices_in_windows, const T* x, T* dx,
                         cudaStream_t stream) {
  const uint8_t* no_taps = nullptr;
  if (!indices && windows == PoolWindows::Strided && p.kh * p.kw <= 256) {
    // the argmax as a one-byte tap per window: an eighth of the int64 indices' traffic
    DeviceBuffer taps(size_t(outputs(p)), stream);
    CC_POOL_LAUNCH(max_forward_kernel, T, p, outputs(p), stream, p, windows, x,
                   static_cast<T*>(nullptr), static_cast<int64_t*>(nullptr), taps.as<uint8_t>());
    CC_POOL_LAUNCH(max_backward_gather_kernel, T, p, inputs(p), stream, p, windows, dy,
                   static_cast<const int64_t*>(nullptr), taps.as<const uint8_t>(), dx);
    return;
  }
  DeviceBuffer recomputed(indices ? 0 : size_t(outputs(p)) * sizeof(int64_t), stream);
  if (!indices) {
    max_pool2d_forward<T>(p, windows, x, nullptr, recomputed.as<int64_t>(), stream);
    indices = recomputed.as<int64_t>();
    indices_in_windows = true;
  }
  if (indices_in_windows)
    CC_POOL_LAUNCH(max_backward_gather_kernel, T, p, inputs(p), stream, p, windows, dy, indices,
                   no_taps, dx);
  else
    CC_CUDA_LAUNCH(max_backward_scatter_kernel<T>, p.planes(), 64, stream, p, dy, indices, dx,
                   p.planes());
}

template <typename T>
void avg_pool2d_forward(const PoolParams& p, const T* x, T* y, cudaStream_t stream) {
  CC_POOL_LAUNCH(avg_forward_kernel, T, p, outputs(p), stream, p, PoolWindows::Strided, x, y);
}
template <typename T>
void avg_pool2d_backward(const PoolParams& p, const T* dy, T* dx, cudaStream_t stream) {
  CC_POOL_LAUNCH(avg_backward_kernel, T, p, inputs(p), stream, p, PoolWindows::Strided, dy, dx);
}
template <typename T>
void adaptive_avg_pool2d_forward(const PoolParams& p, const T* x, T* y, cudaStream_t stream) {
  CC_POOL_LAUNCH(avg_forward_kernel, T, p, outputs(p), stream, p, PoolWindows::Adaptive, x, y);
}
template <typename T>
void adaptive_avg_pool2d_backward(const PoolParams& p, const T* dy, T* dx, cudaStream_t stream) {
  CC_POOL_LAUNCH(avg_backward_kernel, T, p, inputs(p), stream, p, PoolWindows::Adaptive, dy, dx);
}

IndexCheck check_pool_indices(const PoolParams& p, PoolWindows windows, const int64_t* indices,
                              cudaStream_t stream) {
  unsigned long long host[2] = {~0ULL, 0ULL};
  DeviceBuffer result(sizeof(host), stream);
  CC_CUDA_CHECK(cudaMemcpyAsync(result.as<unsigned long long>(), host, sizeof(host),
                                cudaMemcpyHostToDevice, stream));
  CC_CUDA_LAUNCH(check_indices_kernel, outputs(p), kBlock, stream, p, windows, indices,
                 result.as<unsigned long long>(), outputs(p));
  CC_CUDA_CHECK(cudaMemcpyAsync(host, result.as<unsigned long long>(), sizeof(host),
                                cudaMemcpyDeviceToHost, stream));
  CC_CUDA_CHECK(cudaStreamSynchronize(stream));
  return {host[0] == ~0ULL ? -1 : static_cast<int64_t>(host[0]), host[1] == 0};
}

#define CONVCORE_CUDA_INSTANTIATE_POOL(T)                                                        \
  template void max_pool2d_forward<T>(const PoolParams&, PoolWindows, const T*, T*, int64_t*,   \
                                      cudaStream_t);                                            \
  template void max_pool2d_backward<T>(const PoolParams&, PoolWindows, const T*, const int64_t*, \
                                       bool, const T*, T*, cudaStream_t);                       \
  template void avg_pool2d_forward<T>(const PoolParams&, const T*, T*, cudaStream_t);           \
  template void avg_pool2d_backward<T>(const PoolParams&, const T*, T*, cudaStream_t);          \
  template void adaptive_avg_pool2d_forward<T>(const PoolParams&, const T*, T*, cudaStream_t);  \
  template void adaptive_avg_pool2d_backward<T>(const PoolParams&, const T*, T*, cudaStream_t);
CONVCORE_CUDA_INSTANTIATE_POOL(float)
CONVCORE_CUDA_INSTANTIATE_POOL(double)

}  // namespace convcore::cuda
