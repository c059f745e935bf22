// convcore._cuda bindings of the conv2d family, same names and arguments as the _cpu ones
// (bindings/bind_conv.cpp), so convcore.functional routes a call by picking the module: conv2d,
// conv_transpose2d (through the same three kernels), im2col/col2im in the book's layout.
// Shapes are validated by csrc/common before any kernel runs; launches go to the caller's stream.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "common/errors.h"
#include "cuda/conv.h"
#include "cuda/device_array.h"
#include "cuda/im2col.cuh"

namespace convcore::cuda_bind {
namespace {

ConvAlgo cuda_algo(const std::string& name, const ConvParams& p, const std::string& op, DType dtype) {
  if (name == "auto") return cuda::select_cuda_conv_algo(p);
  return parse_conv_algo(name, p, op, dtype == DType::F32 ? 4 : 8, 1);
}

// bias: None or (channels,) of x's dtype and device.
DeviceArray optional_bias(const py::object& bias, const DeviceArray& x, int64_t channels,
                          const std::string& op) {
  if (bias.is_none()) return DeviceArray{};
  DeviceArray b = float_array_like(bias, x, op, "bias", "x", 1);
  CC_CHECK_VALUE(b.shape[0] == channels, op, ": bias must have shape (", channels, ",), got ",
                 shape_str(b.shape));
  return b;
}

void check_grad_shape(const DeviceArray& dy, const std::vector<int64_t>& want, const std::string& op) {
  CC_CHECK_VALUE(dy.shape == want, op, ": dy has shape ", shape_str(dy.shape),
                 " but the forward output has shape ", shape_str(want));
}

// The three outputs of a backward call; None where not asked for.
py::tuple grads(bool need_x, const DeviceArray& dx, bool need_w, const DeviceArray& dw, bool need_b,
                const DeviceArray& db) {
  return py::make_tuple(need_x ? dx.owner : py::none(), need_w ? dw.owner : py::none(),
                        need_b ? db.owner : py::none());
}

py::object conv2d_forward(const py::object& x_obj, const py::object& w_obj, const py::object& bias,
                          Pair stride, Pad4 padding, Pair dilation, int64_t groups,
                          const std::string& algo_name, const std::string& op) {
  DeviceArray x = float_array(x_obj, op, "x", 4);
  DeviceArray w = float_array_like(w_obj, x, op, "w", "x", 4);
  ConvParams p = make_conv_params(op, x.shape4(), w.shape4(), stride, padding, dilation, groups);
  DeviceArray b = optional_bias(bias, x, p.k, op);
  const ConvAlgo algo = cuda_algo(algo_name, p, op, x.dtype);
  CallContext ctx(x);
  DeviceArray y = ctx.empty(x.dtype, {p.n, p.k, p.out_h, p.out_w});
  with_dtype(x.dtype, [&](auto tag) {
    using T = decltype(tag);
    py::gil_scoped_release nogil;
    cuda::conv2d_forward<T>(algo, p, x.data<T>(), w.data<T>(), b.data<T>(), y.mutable_data<T>(),
                            ctx.stream());
  });
  return y.owner;
}

py::tuple conv2d_backward(const py::object& dy_obj, const py::object& x_obj, const py::object& w_obj,
                          Pair stride, Pad4 padding, Pair dilation, int64_t groups, bool need_x,
                          bool need_w, bool need_b, const std::string& algo_name,
                          const std::string& op) {
  DeviceArray x = float_array(x_obj, op, "x", 4);
  DeviceArray w = float_array_like(w_obj, x, op, "w", "x", 4);
  DeviceArray dy = float_array_like(dy_obj, x, op, "dy", "x", 4);
  ConvParams p = make_conv_params(op, x.shape4(), w.shape4(), stride, padding, dilation, groups);
  check_grad_shape(dy, {p.n, p.k, p.out_h, p.out_w}, op);
  const ConvAlgo algo = cuda_algo(algo_name, p, op, x.dtype);
  CallContext ctx(x);
  DeviceArray dx, dw, db;
  if (need_x) dx = ctx.empty(x.dtype, x.shape);
  if (need_w) dw = ctx.empty(x.dtype, w.shape);
  if (need_b) db = ctx.empty(x.dtype, {p.k});
  with_dtype(x.dtype, [&](auto tag) {
    using T = decltype(tag);
    py::gil_scoped_release nogil;
    if (need_x) cuda::conv2d_backward_input<T>(algo, p, dy.data<T>(), w.data<T>(), dx.mutable_data<T>(), ctx.stream());
    if (need_w) cuda::conv2d_backward_weight<T>(algo, p, dy.data<T>(), x.data<T>(), dw.mutable_data<T>(), ctx.stream());
    if (need_b) cuda::conv2d_backward_bias<T>(p, dy.data<T>(), db.mutable_data<T>(), ctx.stream());
  });
  return grads(need_x, dx, need_w, dw, need_b, db);
}

// Transposed convolution: p describes the forward conv whose gradient this is (p.c/h/w is our
// output, p.k/out_h/out_w our input), so forward = conv backward-input.
py::object conv_transpose2d_forward(const py::object& x_obj, const py::object& w_obj,
                                    const py::object& bias, Pair stride, Pad4 padding,
                                    Pair output_padding, Pair dilation, int64_t groups,
                                    const std::string& algo_name) {
  const std::string op = "conv_transpose2d";
  DeviceArray x = float_array(x_obj, op, "x", 4);
  DeviceArray w = float_array_like(w_obj, x, op, "w", "x", 4);
  ConvParams p = make_conv_transpose_params(op, x.shape4(), w.shape4(), stride, padding,
                                            output_padding, dilation, groups);
  DeviceArray b = optional_bias(bias, x, p.c, op);
  const ConvAlgo algo = cuda_algo(algo_name, p, op, x.dtype);
  CallContext ctx(x);
  DeviceArray y = ctx.empty(x.dtype, {p.n, p.c, p.h, p.w});
  with_dtype(x.dtype, [&](auto tag) {
    using T = decltype(tag);
    py::gil_scoped_release nogil;
    cuda::conv2d_backward_input<T>(algo, p, x.data<T>(), w.data<T>(), y.mutable_data<T>(), ctx.stream());
    if (b.ptr) cuda::add_channel_bias<T>(p.n, p.c, p.h * p.w, b.data<T>(), y.mutable_data<T>(), ctx.stream());
  });
  return y.owner;
}

py::tuple conv_transpose2d_backward(const py::object& dy_obj, const py::object& x_obj,
                                    const py::object& w_obj, Pair stride, Pad4 padding,
                                    Pair output_padding, Pair dilation, int64_t groups, bool need_x,
                                    bool need_w, bool need_b, const std::string& algo_name) {
  const std::string op = "conv_transpose2d_backward";
  DeviceArray x = float_array(x_obj, op, "x", 4);
  DeviceArray w = float_array_like(w_obj, x, op, "w", "x", 4);
  DeviceArray dy = float_array_like(dy_obj, x, op, "dy", "x", 4);
  ConvParams p = make_conv_transpose_params(op, x.shape4(), w.shape4(), stride, padding,
                                            output_padding, dilation, groups);
  check_grad_shape(dy, {p.n, p.c, p.h, p.w}, op);
  const ConvAlgo algo = cuda_algo(algo_name, p, op, x.dtype);
  CallContext ctx(x);
  DeviceArray dx, dw, db;
  if (need_x) dx = ctx.empty(x.dtype, x.shape);
  if (need_w) dw = ctx.empty(x.dtype, w.shape);
  if (need_b) db = ctx.empty(x.dtype, {p.c});
  with_dtype(x.dtype, [&](auto tag) {
    using T = decltype(tag);
    py::gil_scoped_release nogil;
    if (need_x) cuda::conv2d_forward<T>(algo, p, dy.data<T>(), w.data<T>(), nullptr, dx.mutable_data<T>(), ctx.stream());
    if (need_w) cuda::conv2d_backward_weight<T>(algo, p, x.data<T>(), dy.data<T>(), dw.mutable_data<T>(), ctx.stream());
    if (need_b) {
      // db[c] = sum of dy over images and positions: the bias gradient of a conv whose "output"
      // is dy, i.e. params with k = c and out = (h, w)
      ConvParams q = p;
      q.k = p.c;
      q.out_h = p.h;
      q.out_w = p.w;
      cuda::conv2d_backward_bias<T>(q, dy.data<T>(), db.mutable_data<T>(), ctx.stream());
    }
  });
  return grads(need_x, dx, need_w, dw, need_b, db);
}

// The book's im2col: rows = N*out_h*out_w in (n, y, x) order, columns = C*kh*kw in (c, ky, kx).
ConvParams im2col_params(const std::string& op, const Shape4& x_shape, int64_t kh, int64_t kw,
                         Pair stride, Pad4 padding, Pair dilation) {
  CC_CHECK_VALUE(kh > 0 && kw > 0, op, ": filter size must be positive, got (", kh, ", ", kw, ")");
  return make_conv_params(op, x_shape, {1, x_shape[1], kh, kw}, stride, padding, dilation, 1);
}

cuda::ColLayout book_layout(const ConvParams& p) {
  const int64_t ckk = p.c * p.kh * p.kw;
  return {1, ckk, p.out_h * p.out_w * ckk};
}

py::object im2col(const py::object& x_obj, int64_t kh, int64_t kw, Pair stride, Pad4 padding,
                  Pair dilation) {
  const std::string op = "im2col";
  DeviceArray x = float_array(x_obj, op, "x", 4);
  ConvParams p = im2col_params(op, x.shape4(), kh, kw, stride, padding, dilation);
  CallContext ctx(x);
  DeviceArray col = ctx.empty(x.dtype, {p.n * p.out_h * p.out_w, p.c * p.kh * p.kw});
  with_dtype(x.dtype, [&](auto tag) {
    using T = decltype(tag);
    py::gil_scoped_release nogil;
    cuda::im2col<T>(p, p.n, 0, p.c, x.data<T>(), col.mutable_data<T>(), book_layout(p), ctx.stream());
  });
  return col.owner;
}

py::object col2im(const py::object& col_obj, Shape4 x_shape, int64_t kh, int64_t kw, Pair stride,
                  Pad4 padding, Pair dilation) {
  const std::string op = "col2im";
  DeviceArray col = float_array(col_obj, op, "col", 2);
  ConvParams p = im2col_params(op, x_shape, kh, kw, stride, padding, dilation);
  const int64_t rows = p.n * p.out_h * p.out_w, ckk = p.c * p.kh * p.kw;
  CC_CHECK_VALUE(col.shape[0] == rows && col.shape[1] == ckk, op, ": col has shape ",
                 shape_str(col.shape), " but input_shape ",
                 shape_str({x_shape[0], x_shape[1], x_shape[2], x_shape[3]}), " with a ", kh, "x",
                 kw, " filter needs (", rows, ", ", ckk, ")");
  CallContext ctx(col);
  DeviceArray x = ctx.empty(col.dtype, {p.n, p.c, p.h, p.w});
  with_dtype(col.dtype, [&](auto tag) {
    using T = decltype(tag);
    py::gil_scoped_release nogil;
    cuda::col2im<T>(p, p.n, 0, p.c, col.data<T>(), book_layout(p), x.mutable_data<T>(), ctx.stream());
  });
  return x.owner;
}

}  // namespace

void register_conv(py::module_& m) {
  using namespace pybind11::literals;
  m.def("conv2d_forward", &conv2d_forward, "x"_a, "w"_a, "bias"_a, "stride"_a, "padding"_a,
        "dilation"_a, "groups"_a, "algo"_a, "op"_a = "conv2d");
  m.def("conv2d_backward", &conv2d_backward, "dy"_a, "x"_a, "w"_a, "stride"_a, "padding"_a,
        "dilation"_a, "groups"_a, "need_x"_a, "need_w"_a, "need_b"_a, "algo"_a,
        "op"_a = "conv2d_backward");
  m.def("conv_transpose2d_forward", &conv_transpose2d_forward, "x"_a, "w"_a, "bias"_a, "stride"_a,
        "padding"_a, "output_padding"_a, "dilation"_a, "groups"_a, "algo"_a);
  m.def("conv_transpose2d_backward", &conv_transpose2d_backward, "dy"_a, "x"_a, "w"_a, "stride"_a,
        "padding"_a, "output_padding"_a, "dilation"_a, "groups"_a, "need_x"_a, "need_w"_a,
        "need_b"_a, "algo"_a);
  m.def("im2col", &im2col, "x"_a, "kh"_a, "kw"_a, "stride"_a, "padding"_a, "dilation"_a);
  m.def("col2im", &col2im, "col"_a, "x_shape"_a, "kh"_a, "kw"_a, "stride"_a, "padding"_a, "dilation"_a);
  m.def("_select_algo", [](Shape4 x_shape, Shape4 w_shape, Pair stride, Pad4 padding, Pair dilation,
                           int64_t groups) {
    return std::string(conv_algo_name(cuda::select_cuda_conv_algo(
        make_conv_params("_select_algo", x_shape, w_shape, stride, padding, dilation, groups))));
  }, "x_shape"_a, "w_shape"_a, "stride"_a, "padding"_a, "dilation"_a, "groups"_a);
}

}  // namespace convcore::cuda_bind
