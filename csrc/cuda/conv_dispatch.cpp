// Routes a conv2d call on the GPU to the algorithm chosen (twin of cpu/conv_dispatch.cpp).
#include "common/errors.h"
#include "cuda/conv.h"

namespace convcore::cuda {

ConvAlgo select_cuda_conv_algo(const ConvParams& p) {
  if (p.is_depthwise()) return ConvAlgo::Depthwise;
  // The GPU's im2col path builds no column matrix (implicit GEMMs, conv_im2col.cu): its only
  // workspace, the split-k partials, shrinks to fit CONVCORE_MAX_WORKSPACE (to none at worst).
  return ConvAlgo::Im2col;
}

template <typename T>
void conv2d_forward(ConvAlgo algo, const ConvParams& p, const T* x, const T* w, const T* bias,
                    T* y, cudaStream_t stream) {
  switch (algo) {
    case ConvAlgo::Reference: return conv2d_forward_direct<T, double>(p, x, w, bias, y, stream);
    case ConvAlgo::Direct: return conv2d_forward_direct<T, T>(p, x, w, bias, y, stream);
    case ConvAlgo::Im2col: return conv2d_forward_im2col(p, x, w, bias, y, stream);
    case ConvAlgo::Depthwise: CC_ASSERT(p.is_depthwise()); return depthwise_forward(p, x, w, bias, y, stream);
  }
}

template <typename T>
void conv2d_backward_input(ConvAlgo algo, const ConvParams& p, const T* dy, const T* w, T* dx,
                           cudaStream_t stream) {
  switch (algo) {
    case ConvAlgo::Reference: return conv2d_backward_input_direct<T, double>(p, dy, w, dx, stream);
    case ConvAlgo::Direct: return conv2d_backward_input_direct<T, T>(p, dy, w, dx, stream);
    case ConvAlgo::Im2col: return conv2d_backward_input_im2col(p, dy, w, dx, stream);
    case ConvAlgo::Depthwise: CC_ASSERT(p.is_depthwise()); return depthwise_backward_input(p, dy, w, dx, stream);
  }
}

template <typename T>
void conv2d_backward_weight(ConvAlgo algo, const ConvParams& p, const T* dy, const T* x, T* dw,
                            cudaStream_t stream) {
  switch (algo) {
    case ConvAlgo::Reference: return conv2d_backward_weight_direct<T, double>(p, dy, x, dw, stream);
    case ConvAlgo::Direct: return conv2d_backward_weight_direct<T, T>(p, dy, x, dw, stream);
    case ConvAlgo::Im2col: return conv2d_backward_weight_im2col(p, dy, x, dw, stream);
    case ConvAlgo::Depthwise: CC_ASSERT(p.is_depthwise()); return depthwise_backward_weight(p, dy, x, dw, stream);
  }
}

#define CONVCORE_CUDA_INSTANTIATE_DISPATCH(T)                                                  \
  template void conv2d_forward<T>(ConvAlgo, const ConvParams&, const T*, const T*, const T*, T*, \
                                  cudaStream_t);                                               \
  template void conv2d_backward_input<T>(ConvAlgo, const ConvParams&, const T*, const T*, T*,    \
                                         cudaStream_t);                                        \
  template void conv2d_backward_weight<T>(ConvAlgo, const ConvParams&, const T*, const T*, T*,   \
                                          cudaStream_t);
CONVCORE_CUDA_INSTANTIATE_DISPATCH(float)
CONVCORE_CUDA_INSTANTIATE_DISPATCH(double)

}  // namespace convcore::cuda
