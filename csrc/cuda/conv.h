// The conv2d kernel family on the GPU, twin of cpu/conv.h: forward, gradient to the input, to
// the weight, to the bias, over one ConvParams validated in csrc/common. conv_transpose2d and
// conv1d reuse these entry points exactly as on the CPU (see common/conv_params.h).
//
// All pointers are device pointers to contiguous NCHW arrays on the current device; every
// launch goes to `stream` (the caller's), nothing synchronises. Outputs are write-only.
// Backward passes gather (each output element is summed by one thread or one block in a fixed
// order): results are deterministic, and no atomics are used.
#pragma once
#include <cuda_runtime.h>

#include "common/conv_params.h"
#include "common/select_algo.h"

namespace convcore::cuda {

// What "auto" runs on the GPU: depthwise when groups == C, else im2col + our tiled GEMM.
ConvAlgo select_cuda_conv_algo(const ConvParams& p);

// Dispatch by algorithm. Reference runs the direct kernels with double accumulators.
template <typename T>
void conv2d_forward(ConvAlgo algo, const ConvParams& p, const T* x, const T* w, const T* bias,
                    T* y, cudaStream_t stream);
template <typename T>
void conv2d_backward_input(ConvAlgo algo, const ConvParams& p, const T* dy, const T* w, T* dx,
                           cudaStream_t stream);
template <typename T>
void conv2d_backward_weight(ConvAlgo algo, const ConvParams& p, const T* dy, const T* x, T* dw,
                            cudaStream_t stream);
// db[k] = sum over n, out_h, out_w of dy (double accumulator, fixed order).
template <typename T>
void conv2d_backward_bias(const ConvParams& p, const T* dy, T* db, cudaStream_t stream);
// out[n, c, :, :] += bias[c] over an (images, channels, plane) array (conv_transpose2d's bias).
template <typename T>
void add_channel_bias(int64_t images, int64_t channels, int64_t plane, const T* bias, T* out,
                      cudaStream_t stream);

// conv_direct.cu: one thread per output element, no workspace. Acc = double for "reference".
template <typename T, typename Acc>
void conv2d_forward_direct(const ConvParams& p, const T* x, const T* w, const T* bias, T* y,
                           cudaStream_t stream);
template <typename T, typename Acc>
void conv2d_backward_input_direct(const ConvParams& p, const T* dy, const T* w, T* dx,
                                  cudaStream_t stream);
template <typename T, typename Acc>
void conv2d_backward_weight_direct(const ConvParams& p, const T* dy, const T* x, T* dw,
                                   cudaStream_t stream);

// conv_im2col.cu: the im2col formulation as implicit GEMMs on the tiled GEMM (gemm.cu): the
// column matrix is read from x (or dy) inside the GEMM, never built.
template <typename T>
void conv2d_forward_im2col(const ConvParams& p, const T* x, const T* w, const T* bias, T* y,
                           cudaStream_t stream);
template <typename T>
void conv2d_backward_input_im2col(const ConvParams& p, const T* dy, const T* w, T* dx,
                                  cudaStream_t stream);
template <typename T>
void conv2d_backward_weight_im2col(const ConvParams& p, const T* dy, const T* x, T* dw,
                                   cudaStream_t stream);

// depthwise.cu: one input channel per group (K = C * multiplier). Also runs the two passes of
// the separable 1-D convolution, which are depthwise convs with (C, 1, kh, 1) / (C, 1, 1, kw)
// kernels (groups may then be 1 when C == 1).
template <typename T>
void depthwise_forward(const ConvParams& p, const T* x, const T* w, const T* bias, T* y,
                       cudaStream_t stream);
template <typename T>
void depthwise_backward_input(const ConvParams& p, const T* dy, const T* w, T* dx,
                              cudaStream_t stream);
template <typename T>
void depthwise_backward_weight(const ConvParams& p, const T* dy, const T* x, T* dw,
                               cudaStream_t stream);

}  // namespace convcore::cuda

// Instantiates one algorithm's three entry points for float and double.
#define CONVCORE_CUDA_INSTANTIATE_CONV(fwd, bwd_input, bwd_weight)                              \
  template void fwd<float>(const ConvParams&, const float*, const float*, const float*, float*, \
                           cudaStream_t);                                                      \
  template void fwd<double>(const ConvParams&, const double*, const double*, const double*,    \
                            double*, cudaStream_t);                                            \
  template void bwd_input<float>(const ConvParams&, const float*, const float*, float*,        \
                                 cudaStream_t);                                                \
  template void bwd_input<double>(const ConvParams&, const double*, const double*, double*,    \
                                  cudaStream_t);                                               \
  template void bwd_weight<float>(const ConvParams&, const float*, const float*, float*,        \
                                  cudaStream_t);                                               \
  template void bwd_weight<double>(const ConvParams&, const double*, const double*, double*,   \
                                   cudaStream_t);
