// Routes a conv2d call to the algorithm chosen by common/select_algo.
#include <vector>

#include "common/errors.h"
#include "cpu/conv.h"
#include "cpu/conv_winograd.h"
#include "cpu/parallel.h"
#include "ref/ref.h"

namespace convcore::cpu {

template <typename T>
void conv2d_forward(ConvAlgo algo, const ConvParams& p, const T* x, const T* w, const T* bias, T* y) {
  switch (algo) {
    case ConvAlgo::Reference: return ref::conv2d_forward(p, x, w, bias, y);
    case ConvAlgo::Direct: return conv2d_forward_direct(p, x, w, bias, y);
    case ConvAlgo::Im2col: return conv2d_forward_im2col(p, x, w, bias, y);
    case ConvAlgo::Depthwise: CC_ASSERT(p.is_depthwise()); return depthwise_forward(p, x, w, bias, y);
    case ConvAlgo::WinogradF2: return conv2d_forward_winograd(2, p, x, w, bias, y);
    case ConvAlgo::WinogradF4: return conv2d_forward_winograd(4, p, x, w, bias, y);
  }
}

template <typename T>
void conv2d_backward_input(ConvAlgo algo, const ConvParams& p, const T* dy, const T* w, T* dx) {
  switch (algo) {
    case ConvAlgo::Reference: return ref::conv2d_backward_input(p, dy, w, dx);
    case ConvAlgo::Direct: return conv2d_backward_input_direct(p, dy, w, dx);
    case ConvAlgo::Im2col: return conv2d_backward_input_im2col(p, dy, w, dx);
    case ConvAlgo::Depthwise: CC_ASSERT(p.is_depthwise()); return depthwise_backward_input(p, dy, w, dx);
    // The input gradient is a Winograd forward over dY where it is a stride-1 forward at all;
    // the weight gradient (a correlation of x with dY) runs im2col+GEMM
    case ConvAlgo::WinogradF2:
    case ConvAlgo::WinogradF4:
      if (backward_input_is_a_forward(p))
        return conv2d_backward_input_winograd(algo == ConvAlgo::WinogradF2 ? 2 : 4, p, dy, w, dx);
      return conv2d_backward_input_im2col(p, dy, w, dx);
  }
}

template <typename T>
void conv2d_backward_weight(ConvAlgo algo, const ConvParams& p, const T* dy, const T* x, T* dw) {
  switch (algo) {
    case ConvAlgo::Reference: return ref::conv2d_backward_weight(p, dy, x, dw);
    case ConvAlgo::Direct: return conv2d_backward_weight_direct(p, dy, x, dw);
    case ConvAlgo::Im2col: return conv2d_backward_weight_im2col(p, dy, x, dw);
    case ConvAlgo::Depthwise: CC_ASSERT(p.is_depthwise()); return depthwise_backward_weight(p, dy, x, dw);
    case ConvAlgo::WinogradF2:
    case ConvAlgo::WinogradF4:
      return conv2d_backward_weight_winograd(p, dy, x, dw);
  }
}

template <typename T>
void conv2d_backward_bias(const ConvParams& p, const T* dy, T* db) {
  const int64_t plane = p.out_h * p.out_w;
#pragma omp parallel for schedule(static) num_threads(num_threads())
  for (int64_t k = 0; k < p.k; ++k) {
    double acc = 0.0;
    for (int64_t n = 0; n < p.n; ++n) {
      const T* src = dy + (n * p.k + k) * plane;
      // all in double: this pass is memory-bound, and a sum that cancels must not lose digits
#pragma omp simd reduction(+ : acc)
      for (int64_t i = 0; i < plane; ++i) acc += double(src[i]);
    }
    db[k] = T(acc);
  }
}

#define CONVCORE_INSTANTIATE_DISPATCH(T)                                                        \
  template void conv2d_forward<T>(ConvAlgo, const ConvParams&, const T*, const T*, const T*, T*); \
  template void conv2d_backward_input<T>(ConvAlgo, const ConvParams&, const T*, const T*, T*);    \
  template void conv2d_backward_weight<T>(ConvAlgo, const ConvParams&, const T*, const T*, T*);   \
  template void conv2d_backward_bias<T>(const ConvParams&, const T*, T*);
CONVCORE_INSTANTIATE_DISPATCH(float)
CONVCORE_INSTANTIATE_DISPATCH(double)

}  // namespace convcore::cpu
