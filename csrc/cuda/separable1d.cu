// Separable 1-D convolution on the GPU (see separable1d.h). The CPU twin fuses the two passes row
// by row to keep the intermediate in L1; here each pass is one depthwise launch and the
// intermediate z (N, C, out_h, W) lives in a stream-ordered workspace: both passes are
// memory-bound, and z costs one extra write and read of an output-sized array.
#include "cuda/conv.h"
#include "cuda/launch.cuh"
#include "cuda/separable1d.h"

namespace convcore::cuda {

template <typename T>
void separable1d_forward(const Separable1dParams& sp, const T* x, const T* w_col, const T* w_row,
                         const T* bias, T* y, cudaStream_t stream) {
  DeviceBuffer z(size_t(sp.col.output_numel()) * sizeof(T), stream);
  depthwise_forward<T>(sp.col, x, w_col, nullptr, z.as<T>(), stream);
  depthwise_forward<T>(sp.row, z.as<T>(), w_row, bias, y, stream);
}

template <typename T>
void separable1d_backward(const Separable1dParams& sp, const T* dy, const T* x, const T* w_col,
                          const T* w_row, T* dx, T* dw_col, T* dw_row, T* db, cudaStream_t stream) {
  // z = column pass output (the row pass's input), dz = its gradient: the same shape
  const size_t mid_bytes = size_t(sp.col.output_numel()) * sizeof(T);
  if (db) conv2d_backward_bias<T>(sp.row, dy, db, stream);
  if (dw_row) {
    DeviceBuffer z(mid_bytes, stream);
    depthwise_forward<T>(sp.col, x, w_col, nullptr, z.as<T>(), stream);
    depthwise_backward_weight<T>(sp.row, dy, z.as<T>(), dw_row, stream);
  }
  if (dx || dw_col) {
    DeviceBuffer dz(mid_bytes, stream);
    depthwise_backward_input<T>(sp.row, dy, w_row, dz.as<T>(), stream);
    if (dx) depthwise_backward_input<T>(sp.col, dz.as<T>(), w_col, dx, stream);
    if (dw_col) depthwise_backward_weight<T>(sp.col, dz.as<T>(), x, dw_col, stream);
  }
}

#define CONVCORE_CUDA_INSTANTIATE_SEPARABLE(T)                                                   \
  template void separable1d_forward<T>(const Separable1dParams&, const T*, const T*, const T*,  \
                                       const T*, T*, cudaStream_t);                             \
  template void separable1d_backward<T>(const Separable1dParams&, const T*, const T*, const T*, \
                                        const T*, T*, T*, T*, T*, cudaStream_t);
CONVCORE_CUDA_INSTANTIATE_SEPARABLE(float)
CONVCORE_CUDA_INSTANTIATE_SEPARABLE(double)

}  // namespace convcore::cuda
