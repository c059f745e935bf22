// Test/bench bindings of the GEMM core (underscore names: not public API):
//   _gemm(a, b, c=None, trans_a, trans_b, alpha, beta, isa=None, threads=None, bias=None,
//         relu=False, ukernel=None) -> C
//   _gram(a, isa=None, threads=None) -> a a^T (float32; the upper triangle multiplied)
//   _gemm_ukernels() -> [(name, isa, mr, nr, supported_on_this_cpu)] in manifest order
//   _fma_peak(isa=None, sample_ms=10, samples=5) -> one core's FMA GFLOP/s, max over samples,
//     timed with the thread's CPU clock
// a, b and c may be row-strided views (unit stride along a row), which is how the tests reach
// lda/ldb/ldc larger than the minimum. A given c is updated in place and returned.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <time.h>

#include <chrono>
#include <optional>
#include <type_traits>

#include "bindings/array.h"
#include "common/errors.h"
#include "cpu/cpu_features.h"
#include "cpu/gemm/fma_peak.h"
#include "cpu/gemm/gemm.h"
#include "cpu/gemm/ukernel.h"
#include "cpu/parallel.h"

namespace convcore::bind {
namespace {

using OptArray = std::optional<py::array>;
const std::string kOp = "_gemm";

DType dtype_of(const py::array& x, const char* name) {
  if (x.dtype().is(py::dtype::of<float>())) return DType::F32;
  if (x.dtype().is(py::dtype::of<double>())) return DType::F64;
  throw TypeError(detail::concat(kOp, ": ", name, " must be float32 or float64, got dtype ",
                                 std::string(py::str(x.dtype()))));
}

// A 2-D matrix with unit column stride; returns its row stride in elements.
int64_t matrix_ld(const py::array& x, DType dtype, const char* name) {
  CC_CHECK_VALUE(x.ndim() == 2, kOp, ": ", name, " must be 2-D, got shape ", shape_str(x));
  CC_CHECK_TYPE(dtype_of(x, name) == dtype, kOp, ": ", name, " has dtype ",
                std::string(py::str(x.dtype())), " but a has ",
                dtype == DType::F32 ? "float32" : "float64");
  const int64_t item = static_cast<int64_t>(x.itemsize());
  const int64_t rows = x.shape(0), cols = x.shape(1);
  if (rows == 0 || cols == 0) return std::max<int64_t>(cols, 1);  // nothing is read: any strides
  CC_CHECK_VALUE(cols <= 1 || x.strides(1) == item, kOp, ": ", name,
                 " must have unit stride along its rows");
  CC_CHECK_VALUE(x.strides(0) % item == 0 && reinterpret_cast<std::uintptr_t>(x.data()) % item == 0,
                 kOp, ": ", name, " is not aligned to its element size");
  const int64_t ld = x.strides(0) / item;
  CC_CHECK_VALUE(rows <= 1 || ld >= cols, kOp, ": ", name,
                 " rows overlap or run backwards (row stride ", ld, " elements for ", cols,
                 " columns)");
  return rows <= 1 ? std::max<int64_t>(cols, 1) : ld;
}

const cpu::GemmUkernel& pick_ukernel(const std::optional<std::string>& isa,
                                     const std::optional<std::string>& ukernel) {
  if (ukernel) {
    const cpu::GemmUkernel* uk = cpu::gemm_ukernel_named(ukernel->c_str());
    CC_CHECK_VALUE(uk != nullptr, kOp, ": no micro-kernel named '", *ukernel, "'");
    CC_CHECK_VALUE(cpu::isa_supported(uk->isa), kOp, ": ", *ukernel, " needs ",
                   cpu::isa_name(uk->isa), ", which this CPU does not support");
    return *uk;
  }
  cpu::Isa level = cpu::active_isa();
  if (isa) {
    if (*isa == "scalar") level = cpu::Isa::Scalar;
    else if (*isa == "avx2") level = cpu::Isa::Avx2;
    else if (*isa == "avx512") level = cpu::Isa::Avx512;
    else throw ValueError(kOp + ": isa must be 'scalar', 'avx2' or 'avx512', got '" + *isa + "'");
    CC_CHECK_VALUE(cpu::isa_supported(level), kOp, ": this CPU does not support ", *isa);
  }
  return cpu::gemm_ukernel_for(level);
}

py::array gemm(const py::array& a, const py::array& b, OptArray c, bool trans_a, bool trans_b,
               double alpha, double beta, const std::optional<std::string>& isa,
               std::optional<int> threads, const OptArray& bias, bool relu,
               const std::optional<std::string>& ukernel) {
  const DType dtype = dtype_of(a, "a");
  const int64_t lda = matrix_ld(a, dtype, "a"), ldb = matrix_ld(b, dtype, "b");
  const int64_t m = trans_a ? a.shape(1) : a.shape(0), k = trans_a ? a.shape(0) : a.shape(1);
  const int64_t kb = trans_b ? b.shape(1) : b.shape(0), n = trans_b ? b.shape(0) : b.shape(1);
  CC_CHECK_VALUE(k == kb, kOp, ": op(a) is ", m, " x ", k, " but op(b) is ", kb, " x ", n);
  py::array out;
  if (c) {
    out = *c;
    CC_CHECK_VALUE(out.ndim() == 2 && out.shape(0) == m && out.shape(1) == n, kOp,
                   ": c must have shape (", m, ", ", n, "), got ", shape_str(out));
    CC_CHECK_VALUE(out.writeable(), kOp, ": c must be writeable");
  } else {
    CC_CHECK_VALUE(beta == 0.0, kOp, ": beta = ", beta, " needs a c to scale");
    out = new_array(dtype, {m, n});
  }
  const int64_t ldc = matrix_ld(out, dtype, "c");
  if (bias) {
    CC_CHECK_VALUE(bias->ndim() == 1 && bias->shape(0) == m, kOp, ": bias must have shape (", m,
                   ",), got ", shape_str(*bias));
    CC_CHECK_TYPE(dtype_of(*bias, "bias") == dtype, kOp, ": bias must have a's dtype");
    CC_CHECK_VALUE(m <= 1 || bias->strides(0) == bias->itemsize(), kOp, ": bias must be contiguous");
  }
  const int nthreads = threads ? *threads : cpu::num_threads();
  CC_CHECK_VALUE(nthreads >= 1, kOp, ": threads must be >= 1, got ", nthreads);
  const cpu::GemmUkernel& uk = pick_ukernel(isa, ukernel);
  with_dtype(dtype, [&](auto tag) {
    using T = decltype(tag);
    const T* bias_ptr = bias ? static_cast<const T*>(bias->data()) : nullptr;
    const T* a_ptr = static_cast<const T*>(a.data());
    const T* b_ptr = static_cast<const T*>(b.data());
    T* c_ptr = static_cast<T*>(out.mutable_data());
    py::gil_scoped_release nogil;
    if constexpr (std::is_same_v<T, float>) {
      cpu::gemm_f32_run(uk, nthreads, trans_a, trans_b, m, n, k, float(alpha), a_ptr, lda, b_ptr,
                        ldb, float(beta), c_ptr, ldc, bias_ptr, relu);
    } else {
      const cpu::GemmEpilogue<double> ep{bias_ptr, relu};
      if (nthreads == 1)
        cpu::gemm_ex<double>(trans_a, trans_b, m, n, k, alpha, a_ptr, lda, b_ptr, ldb, beta,
                             c_ptr, ldc, ep);
      else
        cpu::gemm_parallel_ex<double>(trans_a, trans_b, m, n, k, alpha, a_ptr, lda, b_ptr, ldb,
                                      beta, c_ptr, ldc, ep);
    }
  });
  return out;
}

// a a^T for a float32 matrix a (m x k, unit stride along rows): cpu::gram_f32_run.
py::array gram(const py::array& a, const std::optional<std::string>& isa, std::optional<int> threads) {
  const std::string op = "_gram";
  CC_CHECK_TYPE(dtype_of(a, "a") == DType::F32, op, ": a must be float32 (float64: _gemm)");
  const int64_t lda = matrix_ld(a, DType::F32, "a");
  const int64_t m = a.shape(0), k = a.shape(1);
  py::array out = new_array(DType::F32, {m, m});
  const int nthreads = threads ? *threads : cpu::num_threads();
  CC_CHECK_VALUE(nthreads >= 1, op, ": threads must be >= 1, got ", nthreads);
  const cpu::GemmUkernel& uk = pick_ukernel(isa, std::nullopt);
  const float* a_ptr = static_cast<const float*>(a.data());
  float* c_ptr = static_cast<float*>(out.mutable_data());
  py::gil_scoped_release nogil;
  cpu::gram_f32_run(uk, nthreads, m, k, a_ptr, lda, c_ptr, m);
  return out;
}

py::list gemm_ukernels() {
  int count = 0;
  const cpu::GemmUkernel* table = cpu::gemm_ukernels(&count);
  py::list out;
  for (int i = 0; i < count; ++i)
    out.append(py::make_tuple(table[i].name, cpu::isa_name(table[i].isa), table[i].mr,
                              table[i].nr, cpu::isa_supported(table[i].isa)));
  return out;
}

// The plain reference, for exact comparisons in the tests.
py::array gemm_generic_f32(const py::array& a, const py::array& b, bool trans_a, bool trans_b) {
  const int64_t lda = matrix_ld(a, DType::F32, "a"), ldb = matrix_ld(b, DType::F32, "b");
  const int64_t m = trans_a ? a.shape(1) : a.shape(0), k = trans_a ? a.shape(0) : a.shape(1);
  const int64_t kb = trans_b ? b.shape(1) : b.shape(0), n = trans_b ? b.shape(0) : b.shape(1);
  CC_CHECK_VALUE(k == kb, kOp, ": op(a) is ", m, " x ", k, " but op(b) is ", kb, " x ", n);
  py::array out = new_array(DType::F32, {m, n});
  const float* a_ptr = static_cast<const float*>(a.data());
  const float* b_ptr = static_cast<const float*>(b.data());
  float* c_ptr = static_cast<float*>(out.mutable_data());
  py::gil_scoped_release nogil;
  cpu::gemm_generic<float>(trans_a, trans_b, m, n, k, 1.0f, a_ptr, lda, b_ptr, ldb, 0.0f, c_ptr, n);
  return out;
}

// CPU time of the calling thread: on a shared machine the time we were descheduled is not the
// core's speed. Wall time where the clock is missing.
double thread_seconds() {
#ifdef CLOCK_THREAD_CPUTIME_ID
  timespec ts;
  if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) == 0) return ts.tv_sec + 1e-9 * ts.tv_nsec;
#endif
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

double fma_peak(const std::optional<std::string>& isa, double sample_ms, int samples) {
  cpu::Isa level = cpu::active_isa();
  if (isa) level = pick_ukernel(isa, std::nullopt).isa;
  CC_CHECK_VALUE(level != cpu::Isa::Scalar, "_fma_peak: needs avx2 or avx512, this run uses scalar");
  const bool wide = level == cpu::Isa::Avx512;
  const double flops_per_iter = 2.0 * cpu::kFmaPeakChains * (wide ? 16 : 8);
  auto run = [&](int64_t iters) {
    // The barriers pin the loop between the two clock reads: it touches no memory, so without
    // them (and with LTO) the compiler may move it across either call.
    const double t0 = thread_seconds();
    asm volatile("" : "+r"(iters) : : "memory");
    float sink = wide ? cpu::fma_peak_loop_avx512(iters) : cpu::fma_peak_loop_avx2(iters);
    asm volatile("" : : "x"(sink) : "memory");
    return thread_seconds() - t0;
  };
  py::gil_scoped_release nogil;
  int64_t iters = 1 << 12;  // grow until one sample takes sample_ms, then keep the best rate
  while (run(iters) < sample_ms * 1e-3 && iters < (int64_t(1) << 40)) iters *= 2;
  double best = 0;
  for (int s = 0; s < std::max(samples, 1); ++s) best = std::max(best, iters * flops_per_iter / run(iters));
  return best * 1e-9;
}

void register_gemm(py::module_& m) {
  using namespace pybind11::literals;
  m.def("_gram", &gram, "a"_a, "isa"_a = py::none(), "threads"_a = py::none());
  m.def("_gemm", &gemm, "a"_a, "b"_a, "c"_a = py::none(), "trans_a"_a = false,
        "trans_b"_a = false, "alpha"_a = 1.0, "beta"_a = 0.0, "isa"_a = py::none(),
        "threads"_a = py::none(), "bias"_a = py::none(), "relu"_a = false,
        "ukernel"_a = py::none(),
        "Test hook: C = relu?(alpha op(a) op(b) + beta c + bias[:, None]) with a chosen ISA or "
        "micro-kernel and thread count (threads=None: convcore's thread count).");
  m.def("_gemm_ukernels", &gemm_ukernels,
        "The float32 GEMM micro-kernel manifest: (name, isa, mr, nr, supported_on_this_cpu).");
  m.def("_fma_peak", &fma_peak, "isa"_a = py::none(), "sample_ms"_a = 10.0, "samples"_a = 5,
        "One core's float32 FMA peak in GFLOP/s on the widest vectors of isa (max of samples).");
  m.def("_gemm_generic", &gemm_generic_f32, "a"_a, "b"_a, "trans_a"_a = false,
        "trans_b"_a = false, "Test hook: the portable float32 reference GEMM (alpha 1, beta 0).");
}

}  // namespace

CONVCORE_REGISTER_BINDINGS(register_gemm);

}  // namespace convcore::bind
