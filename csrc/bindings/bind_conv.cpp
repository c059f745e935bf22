// Bindings of the conv2d family: conv2d, conv_transpose2d (both through the same three kernels,
// see common/conv_params.h), im2col/col2im in the book's layout, and the algorithm selector.
// Shapes are validated by make_conv_params before any kernel runs; kernels run without the GIL.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <optional>

#include "bindings/array.h"
#include "bindings/interrupt.h"
#include "common/errors.h"
#include "common/shapes.h"
#include "cpu/conv.h"
#include "cpu/im2col.h"
#include "cpu/parallel.h"
#include "cpu/prepared_weights.h"

namespace convcore::bind {
namespace {

using OptArray = std::optional<py::array>;

struct ConvArgs {
  DType dtype;
  ConvParams p;
};

void check_bias(const OptArray& bias, DType dtype, int64_t channels, const std::string& op) {
  if (!bias) return;
  check_same_dtype(*bias, dtype, op, "bias", "x");
  CC_CHECK_VALUE(bias->ndim() == 1 && bias->shape(0) == channels, op, ": bias must have shape (",
                 channels, ",), got ", shape_str(*bias));
}

// convcore.FrozenWeights' native half: the snapshot array (kept alive here; its data is the
// source every prepared form derives from) and its forms (cpu/prepared_weights.h).
struct FrozenHandle {
  explicit FrozenHandle(const py::array& w) : weights(w), prepared(w.data()) {}
  py::array weights;
  cpu::PreparedWeights prepared;
};

// The prepared forms a call may use: nullptr without a handle, and for float64 (no float64
// kernel keeps forms). A handle must come with its own weights.
cpu::PreparedWeights* prepared_for(FrozenHandle* handle, const py::array& w, DType dtype,
                                   const std::string& op) {
  if (!handle) return nullptr;
  CC_CHECK_VALUE(handle->weights.data() == w.data(), op,
                 ": prepared belongs to another weight array than w");
  return dtype == DType::F32 ? &handle->prepared : nullptr;
}

void check_grad_shape(const py::array& dy, const std::vector<int64_t>& want, const std::string& op) {
  CC_CHECK_VALUE(shape_of(dy) == want, op, ": dy has shape ", shape_str(dy),
                 " but the forward output has shape ", convcore::shape_str(want));
}

py::array conv2d_forward(const py::array& x, const py::array& w, const OptArray& bias, Pair stride,
                         Pad4 padding, Pair dilation, int64_t groups, const std::string& algo_name,
                         const std::string& op, FrozenHandle* frozen) {
  DType dtype = check_float_array(x, op, "x", 4);
  check_float_array(w, op, "w", 4);
  check_same_dtype(w, dtype, op, "w", "x");
  ConvParams p = make_conv_params(op, shape4(x), shape4(w), stride, padding, dilation, groups);
  check_bias(bias, dtype, p.k, op);
  cpu::PreparedWeights* prepared = prepared_for(frozen, w, dtype, op);
  ConvAlgo algo = parse_conv_algo(algo_name, p, op, dtype == DType::F32 ? 4 : 8, cpu::num_threads(),
                                  prepared != nullptr);
  py::array y = new_array(dtype, {p.n, p.k, p.out_h, p.out_w});
  with_dtype(dtype, [&](auto tag) {
    using T = decltype(tag);
    const T* b = bias ? cdata<T>(*bias) : nullptr;
    run_interruptible(conv_work(p), [&] {
      const cpu::PreparedWeightsScope scope(prepared);
      cpu::conv2d_forward<T>(algo, p, cdata<T>(x), cdata<T>(w), b, mdata<T>(y));
    });
  });
  return y;
}

py::tuple conv2d_backward(const py::array& dy, const py::array& x, const py::array& w, Pair stride,
                          Pad4 padding, Pair dilation, int64_t groups, bool need_x, bool need_w,
                          bool need_b, const std::string& algo_name, const std::string& op,
                          FrozenHandle* frozen) {
  DType dtype = check_float_array(x, op, "x", 4);
  check_float_array(w, op, "w", 4);
  check_same_dtype(w, dtype, op, "w", "x");
  check_float_array(dy, op, "dy", 4);
  check_same_dtype(dy, dtype, op, "dy", "x");
  ConvParams p = make_conv_params(op, shape4(x), shape4(w), stride, padding, dilation, groups);
  check_grad_shape(dy, {p.n, p.k, p.out_h, p.out_w}, op);
  cpu::PreparedWeights* prepared = prepared_for(frozen, w, dtype, op);
  const int64_t elem_bytes = dtype == DType::F32 ? 4 : 8;
  ConvAlgo algo = parse_conv_algo(algo_name, p, op, elem_bytes, cpu::num_threads(),
                                  prepared != nullptr);
  const ConvAlgo algo_x = algo_name == "auto" ? select_conv_backward_input_algo(
                                                    p, elem_bytes, cpu::num_threads(),
                                                    prepared != nullptr)
                                              : algo;
  py::object dx = py::none(), dw = py::none(), db = py::none();
  with_dtype(dtype, [&](auto tag) {
    using T = decltype(tag);
    py::array dx_arr, dw_arr, db_arr;
    if (need_x) dx_arr = new_array(dtype, shape_of(x));
    if (need_w) dw_arr = new_array(dtype, shape_of(w));
    if (need_b) db_arr = new_array(dtype, {p.k});
    run_interruptible(conv_work(p), [&] {
      const cpu::PreparedWeightsScope scope(prepared);
      if (need_x) cpu::conv2d_backward_input<T>(algo_x, p, cdata<T>(dy), cdata<T>(w), mdata<T>(dx_arr));
      if (need_w) cpu::conv2d_backward_weight<T>(algo, p, cdata<T>(dy), cdata<T>(x), mdata<T>(dw_arr));
      if (need_b) cpu::conv2d_backward_bias<T>(p, cdata<T>(dy), mdata<T>(db_arr));
    });
    if (need_x) dx = dx_arr;
    if (need_w) dw = dw_arr;
    if (need_b) db = db_arr;
  });
  return py::make_tuple(dx, dw, db);
}

// Transposed convolution: p describes the forward conv whose gradient this is (p.c/h/w is our
// output, p.k/out_h/out_w our input), so forward = conv backward-input.
py::array conv_transpose2d_forward(const py::array& x, const py::array& w, const OptArray& bias,
                                   Pair stride, Pad4 padding, Pair output_padding, Pair dilation,
                                   int64_t groups, const std::string& algo_name) {
  const std::string op = "conv_transpose2d";
  DType dtype = check_float_array(x, op, "x", 4);
  check_float_array(w, op, "w", 4);
  check_same_dtype(w, dtype, op, "w", "x");
  ConvParams p = make_conv_transpose_params(op, shape4(x), shape4(w), stride, padding,
                                            output_padding, dilation, groups);
  check_bias(bias, dtype, p.c, op);
  ConvAlgo algo = parse_conv_algo(algo_name, p, op, dtype == DType::F32 ? 4 : 8, cpu::num_threads());
  py::array y = new_array(dtype, {p.n, p.c, p.h, p.w});
  with_dtype(dtype, [&](auto tag) {
    using T = decltype(tag);
    const T* b = bias ? cdata<T>(*bias) : nullptr;
    T* out = mdata<T>(y);
    run_interruptible(conv_work(p), [&] {
      cpu::conv2d_backward_input<T>(algo, p, cdata<T>(x), cdata<T>(w), out);
      if (b) {
        const int64_t plane = p.h * p.w;
        for (int64_t n = 0; n < p.n; ++n)
          for (int64_t c = 0; c < p.c; ++c) {
            T* dst = out + (n * p.c + c) * plane;
            for (int64_t i = 0; i < plane; ++i) dst[i] += b[c];
          }
      }
    });
  });
  return y;
}

py::tuple conv_transpose2d_backward(const py::array& dy, const py::array& x, const py::array& w,
                                    Pair stride, Pad4 padding, Pair output_padding, Pair dilation,
                                    int64_t groups, bool need_x, bool need_w, bool need_b,
                                    const std::string& algo_name) {
  const std::string op = "conv_transpose2d_backward";
  DType dtype = check_float_array(x, op, "x", 4);
  check_float_array(w, op, "w", 4);
  check_same_dtype(w, dtype, op, "w", "x");
  check_float_array(dy, op, "dy", 4);
  check_same_dtype(dy, dtype, op, "dy", "x");
  ConvParams p = make_conv_transpose_params(op, shape4(x), shape4(w), stride, padding,
                                            output_padding, dilation, groups);
  check_grad_shape(dy, {p.n, p.c, p.h, p.w}, op);
  ConvAlgo algo = parse_conv_algo(algo_name, p, op, dtype == DType::F32 ? 4 : 8, cpu::num_threads());
  py::object dx = py::none(), dw = py::none(), db = py::none();
  with_dtype(dtype, [&](auto tag) {
    using T = decltype(tag);
    py::array dx_arr, dw_arr, db_arr;
    if (need_x) dx_arr = new_array(dtype, shape_of(x));
    if (need_w) dw_arr = new_array(dtype, shape_of(w));
    if (need_b) db_arr = new_array(dtype, {p.c});
    run_interruptible(conv_work(p), [&] {
      if (need_x) cpu::conv2d_forward<T>(algo, p, cdata<T>(dy), cdata<T>(w), nullptr, mdata<T>(dx_arr));
      if (need_w) cpu::conv2d_backward_weight<T>(algo, p, cdata<T>(x), cdata<T>(dy), mdata<T>(dw_arr));
      if (need_b) {
        // db[c] = sum of dy over images and positions: the conv bias gradient of a conv whose
        // "output" is dy, i.e. params with k = c and out = (h, w).
        ConvParams q = p;
        q.k = p.c; q.out_h = p.h; q.out_w = p.w;
        cpu::conv2d_backward_bias<T>(q, cdata<T>(dy), mdata<T>(db_arr));
      }
    });
    if (need_x) dx = dx_arr;
    if (need_w) dw = dw_arr;
    if (need_b) db = db_arr;
  });
  return py::make_tuple(dx, dw, db);
}

// The book's im2col: rows = N*out_h*out_w in (n, y, x) order, columns = C*kh*kw in (c, ky, kx) order.
ConvParams im2col_params(const std::string& op, const Shape4& x_shape, int64_t kh, int64_t kw,
                         Pair stride, Pad4 padding, Pair dilation) {
  CC_CHECK_VALUE(kh > 0 && kw > 0, op, ": filter size must be positive, got (", kh, ", ", kw, ")");
  return make_conv_params(op, x_shape, {1, x_shape[1], kh, kw}, stride, padding, dilation, 1);
}

py::array im2col(const py::array& x, int64_t kh, int64_t kw, Pair stride, Pad4 padding, Pair dilation) {
  const std::string op = "im2col";
  DType dtype = check_float_array(x, op, "x", 4);
  ConvParams p = im2col_params(op, shape4(x), kh, kw, stride, padding, dilation);
  const int64_t ckk = p.c * p.kh * p.kw, ohw = p.out_h * p.out_w;
  py::array col = new_array(dtype, {p.n * ohw, ckk});
  with_dtype(dtype, [&](auto tag) {
    using T = decltype(tag);
    const T* src = cdata<T>(x);
    T* dst = mdata<T>(col);
    run_interruptible(conv_work(p), [&] {
#pragma omp parallel for schedule(static) num_threads(cpu::num_threads())
      for (int64_t n = 0; n < p.n; ++n)
        if (!cpu::interrupted())
          cpu::im2col_image(p, p.c, src + n * p.c * p.h * p.w, dst + n * ohw * ckk, 1, ckk);
    });
  });
  return col;
}

py::array col2im(const py::array& col, Shape4 x_shape, int64_t kh, int64_t kw, Pair stride,
                 Pad4 padding, Pair dilation) {
  const std::string op = "col2im";
  DType dtype = check_float_array(col, op, "col", 2);
  ConvParams p = im2col_params(op, x_shape, kh, kw, stride, padding, dilation);
  const int64_t ckk = p.c * p.kh * p.kw, ohw = p.out_h * p.out_w;
  CC_CHECK_VALUE(col.shape(0) == p.n * ohw && col.shape(1) == ckk, op, ": col has shape ",
                 shape_str(col), " but input_shape ", convcore::shape_str({x_shape[0], x_shape[1], x_shape[2], x_shape[3]}),
                 " with a ", kh, "x", kw, " filter needs (", p.n * ohw, ", ", ckk, ")");
  py::array x = new_array(dtype, {p.n, p.c, p.h, p.w});
  with_dtype(dtype, [&](auto tag) {
    using T = decltype(tag);
    const T* src = cdata<T>(col);
    T* dst = mdata<T>(x);
    const int64_t image = p.c * p.h * p.w;
    run_interruptible(conv_work(p), [&] {
#pragma omp parallel for schedule(static) num_threads(cpu::num_threads())
      for (int64_t n = 0; n < p.n; ++n) {
        if (cpu::interrupted()) continue;
        std::fill(dst + n * image, dst + (n + 1) * image, T(0));
        cpu::col2im_image(p, p.c, src + n * ohw * ckk, 1, ckk, dst + n * image);
      }
    });
  });
  return x;
}

void register_conv(py::module_& m) {
  using namespace pybind11::literals;
  // `op` names the public function in error messages (conv1d runs through these as well).
  py::class_<FrozenHandle>(m, "PreparedWeights",
                           "The prepared forms of frozen weights (convcore.FrozenWeights' native "
                           "half): built on first use, kept until this object goes")
      .def(py::init([](const py::array& w) {
             const std::string op = "PreparedWeights";
             check_float_array(w, op, "w", 4);
             CC_CHECK_VALUE(w.flags() & py::array::c_style, op, ": w must be C-contiguous");
             return std::make_unique<FrozenHandle>(w);
           }), "w"_a)
      .def_property_readonly("nbytes", [](const FrozenHandle& h) { return h.prepared.bytes(); },
                             "bytes held by the forms built so far")
      .def_property_readonly("forms", [](const FrozenHandle& h) { return h.prepared.count(); },
                             "how many forms have been built");
  m.def("conv2d_forward", &conv2d_forward, "x"_a, "w"_a, "bias"_a, "stride"_a, "padding"_a,
        "dilation"_a, "groups"_a, "algo"_a, "op"_a = "conv2d", "prepared"_a = nullptr);
  m.def("conv2d_backward", &conv2d_backward, "dy"_a, "x"_a, "w"_a, "stride"_a, "padding"_a,
        "dilation"_a, "groups"_a, "need_x"_a, "need_w"_a, "need_b"_a, "algo"_a,
        "op"_a = "conv2d_backward", "prepared"_a = nullptr);
  m.def("conv_transpose2d_forward", &conv_transpose2d_forward, "x"_a, "w"_a, "bias"_a, "stride"_a,
        "padding"_a, "output_padding"_a, "dilation"_a, "groups"_a, "algo"_a);
  m.def("conv_transpose2d_backward", &conv_transpose2d_backward, "dy"_a, "x"_a, "w"_a, "stride"_a,
        "padding"_a, "output_padding"_a, "dilation"_a, "groups"_a, "need_x"_a, "need_w"_a,
        "need_b"_a, "algo"_a);
  m.def("im2col", &im2col, "x"_a, "kh"_a, "kw"_a, "stride"_a, "padding"_a, "dilation"_a);
  m.def("col2im", &col2im, "col"_a, "x_shape"_a, "kh"_a, "kw"_a, "stride"_a, "padding"_a, "dilation"_a);
  m.def("_select_algo", [](Shape4 x_shape, Shape4 w_shape, Pair stride, Pad4 padding, Pair dilation,
                           int64_t groups) {
    return std::string(conv_algo_name(select_conv_algo(
        make_conv_params("_select_algo", x_shape, w_shape, stride, padding, dilation, groups), 4,
        cpu::num_threads())));
  }, "x_shape"_a, "w_shape"_a, "stride"_a, "padding"_a, "dilation"_a, "groups"_a);
}

}  // namespace

CONVCORE_REGISTER_BINDINGS(register_conv);

}  // namespace convcore::bind
