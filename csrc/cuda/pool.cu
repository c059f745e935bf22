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

// One window along one axis: taps start + t*dil for t in [0, count), some possibly outside.
struct Window {
  int64_t start, count, dil;
};

__device__ inline Window window_y(const PoolParams& p, PoolWindows kind, int64_t oy) {
  if (kind == PoolWindows::Adaptive) {
    const int64_t lo = adaptive_start(oy, p.h, p.out_h);
    return {lo, adaptive_end(oy, p.h, p.out_h) - lo, 1};
  }
  return {oy * p.stride_h - p.pad_h, p.kh, p.dil_h};
}
__device__ inline Window window_x(const PoolParams& p, PoolWindows kind, int64_t ox) {
  if (kind == PoolWindows::Adaptive) {
    const int64_t lo = adaptive_start(ox, p.w, p.out_w);
    return {lo, adaptive_end(ox, p.w, p.out_w) - lo, 1};
  }
  return {ox * p.stride_w - p.pad_w, p.kw, p.dil_w};
}
__device__ inline bool window_holds(const Window& win, int64_t i) {
  const int64_t d = i - win.start;
  return d >= 0 && d % win.dil == 0 && d / win.dil < win.count;
}

template <typename T>
__global__ void max_forward_kernel(PoolParams p, PoolWindows kind, const T* __restrict__ x,
                                   T* __restrict__ y, int64_t* __restrict__ indices,
                                   int64_t total) {
  CC_GRID_STRIDE(i, total) {
    const int64_t ox = i % p.out_w, oy = (i / p.out_w) % p.out_h, plane = i / (p.out_w * p.out_h);
    const Window wy = window_y(p, kind, oy), wx = window_x(p, kind, ox);
    const T* src = x + plane * p.h * p.w;
    T best = -T(INFINITY);
    int64_t best_index = -1;
    for (int64_t ky = 0; ky < wy.count; ++ky) {
      const int64_t iy = wy.start + ky * wy.dil;
      if (iy < 0 || iy >= p.h) continue;
      for (int64_t kx = 0; kx < wx.count; ++kx) {
        const int64_t ix = wx.start + kx * wx.dil;
        if (ix < 0 || ix >= p.w) continue;
        const T v = src[iy * p.w + ix];
        if (best_index < 0) best_index = iy * p.w + ix;  // all -inf: the first valid tap
        if (v > best || isnan(v)) {
          best = v;
          best_index = iy * p.w + ix;
        }
      }
    }
    if (y) y[i] = best;
    if (indices) indices[i] = best_index;
  }
}

// The outputs along one axis whose window can hold input coordinate `in`.
__device__ inline TapRange candidate_outputs(const PoolParams& p, PoolWindows kind, bool rows,
                                             int64_t in) {
  const int64_t extent = rows ? p.h : p.w, out = rows ? p.out_h : p.out_w;
  if (kind == PoolWindows::Adaptive) {
    // start(o) <= in  and  end(o) > in  <=>  floor(in*out/extent) <= o < ceil((in+1)*out/extent)
    int64_t lo = (in * out) / extent, hi = ((in + 1) * out + extent - 1) / extent;
    return {lo, hi < out ? hi : out};
  }
  // strided windows: o*stride - pad <= in <= o*stride - pad + dil*(k-1)
  const int64_t stride = rows ? p.stride_h : p.stride_w, pad = rows ? p.pad_h : p.pad_w;
  const int64_t span = (rows ? p.dil_h : p.dil_w) * ((rows ? p.kh : p.kw) - 1);
  const int64_t first = in + pad - span;
  int64_t lo = first <= 0 ? 0 : (first + stride - 1) / stride;
  int64_t hi = (in + pad) / stride + 1;
  return {lo, hi < out ? hi : out};
}

template <typename T>
__global__ void max_backward_gather_kernel(PoolParams p, PoolWindows kind, const T* __restrict__ dy,
                                           const int64_t* __restrict__ indices,
                                           T* __restrict__ dx, int64_t total) {
  CC_GRID_STRIDE(i, total) {
    const int64_t ix = i % p.w, iy = (i / p.w) % p.h, plane = i / (p.w * p.h);
    const int64_t me = iy * p.w + ix, base = plane * p.out_h * p.out_w;
    const TapRange oys = candidate_outputs(p, kind, true, iy);
    const TapRange oxs = candidate_outputs(p, kind, false, ix);
    double acc = 0.0;
    for (int64_t oy = oys.lo; oy < oys.hi; ++oy)
      for (int64_t ox = oxs.lo; ox < oxs.hi; ++ox) {
        const int64_t o = base + oy * p.out_w + ox;
        if (indices[o] == me) acc += double(dy[o]);
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
__device__ inline int64_t average_window(const PoolParams& p, PoolWindows kind, int64_t oy,
                                         int64_t ox, AvgSpan* rows, AvgSpan* cols) {
  if (kind == PoolWindows::Adaptive) {
    *rows = {adaptive_start(oy, p.h, p.out_h), adaptive_end(oy, p.h, p.out_h), 0};
    *cols = {adaptive_start(ox, p.w, p.out_w), adaptive_end(ox, p.w, p.out_w), 0};
    return (rows->end - rows->begin) * (cols->end - cols->begin);
  }
  *rows = avg_pool_span(oy, p.stride_h, p.pad_h, p.kh, p.h);
  *cols = avg_pool_span(ox, p.stride_w, p.pad_w, p.kw, p.w);
  return avg_pool_divisor(p, *rows, *cols);
}

template <typename T>
__global__ void avg_forward_kernel(PoolParams p, PoolWindows kind, const T* __restrict__ x,
                                   T* __restrict__ y, int64_t total) {
  CC_GRID_STRIDE(i, total) {
    const int64_t ox = i % p.out_w, oy = (i / p.out_w) % p.out_h, plane = i / (p.out_w * p.out_h);
    AvgSpan rows, cols;
    const int64_t divisor = average_window(p, kind, oy, ox, &rows, &cols);
    const T* src = x + plane * p.h * p.w;
    double sum = 0.0;
    for (int64_t iy = rows.begin; iy < rows.end; ++iy)
      for (int64_t ix = cols.begin; ix < cols.end; ++ix) sum += double(src[iy * p.w + ix]);
    y[i] = T(sum / double(divisor));
  }
}

template <typename T>
__global__ void avg_backward_kernel(PoolParams p, PoolWindows kind, const T* __restrict__ dy,
                                    T* __restrict__ dx, int64_t total) {
  CC_GRID_STRIDE(i, total) {
    const int64_t ix = i % p.w, iy = (i / p.w) % p.h, plane = i / (p.w * p.h);
    const TapRange oys = candidate_outputs(p, kind, true, iy);
    const TapRange oxs = candidate_outputs(p, kind, false, ix);
    const T* grad = dy + plane * p.out_h * p.out_w;
    double acc = 0.0;
    for (int64_t oy = oys.lo; oy < oys.hi; ++oy)
      for (int64_t ox = oxs.lo; ox < oxs.hi; ++ox) {
        AvgSpan rows, cols;
        const int64_t divisor = average_window(p, kind, oy, ox, &rows, &cols);
        // the candidate range is exact for unclipped windows; clipping can only shrink them
        if (iy < rows.begin || iy >= rows.end || ix < cols.begin || ix >= cols.end) continue;
        acc += double(grad[oy * p.out_w + ox]) / double(divisor);
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
    if (!window_holds(window_y(p, kind, oy), v / p.w) || !window_holds(window_x(p, kind, ox), v % p.w))
      result[1] = 1;
  }
}

int64_t outputs(const PoolParams& p) { return p.planes() * p.out_h * p.out_w; }
int64_t inputs(const PoolParams& p) { return p.planes() * p.h * p.w; }

}  // namespace

template <typename T>
void max_pool2d_forward(const PoolParams& p, PoolWindows windows, const T* x, T* y,
                        int64_t* indices, cudaStream_t stream) {
  CC_CUDA_LAUNCH(max_forward_kernel<T>, outputs(p), kBlock, stream, p, windows, x, y, indices,
                 outputs(p));
}

template <typename T>
void max_pool2d_backward(const PoolParams& p, PoolWindows windows, const T* dy,
                         const int64_t* indices, bool indices_in_windows, const T* x, T* dx,
                         cudaStream_t stream) {
  DeviceBuffer recomputed(indices ? 0 : size_t(outputs(p)) * sizeof(int64_t), stream);
  if (!indices) {
    max_pool2d_forward<T>(p, windows, x, nullptr, recomputed.as<int64_t>(), stream);
    indices = recomputed.as<int64_t>();
    indices_in_windows = true;
  }
  if (indices_in_windows)
    CC_CUDA_LAUNCH(max_backward_gather_kernel<T>, inputs(p), kBlock, stream, p, windows, dy,
                   indices, dx, inputs(p));
  else
    CC_CUDA_LAUNCH(max_backward_scatter_kernel<T>, p.planes(), 64, stream, p, dy, indices, dx,
                   p.planes());
}

template <typename T>
void avg_pool2d_forward(const PoolParams& p, const T* x, T* y, cudaStream_t stream) {
  CC_CUDA_LAUNCH(avg_forward_kernel<T>, outputs(p), kBlock, stream, p, PoolWindows::Strided, x, y,
                 outputs(p));
}
template <typename T>
void avg_pool2d_backward(const PoolParams& p, const T* dy, T* dx, cudaStream_t stream) {
  CC_CUDA_LAUNCH(avg_backward_kernel<T>, inputs(p), kBlock, stream, p, PoolWindows::Strided, dy, dx,
                 inputs(p));
}
template <typename T>
void adaptive_avg_pool2d_forward(const PoolParams& p, const T* x, T* y, cudaStream_t stream) {
  CC_CUDA_LAUNCH(avg_forward_kernel<T>, outputs(p), kBlock, stream, p, PoolWindows::Adaptive, x, y,
                 outputs(p));
}
template <typename T>
void adaptive_avg_pool2d_backward(const PoolParams& p, const T* dy, T* dx, cudaStream_t stream) {
  CC_CUDA_LAUNCH(avg_backward_kernel<T>, inputs(p), kBlock, stream, p, PoolWindows::Adaptive, dy,
                 dx, inputs(p));
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
