// The float32 GEMM driver: the kernel table built from kernels.inc, cache blocking, packing of
// op(A)/op(B) into micro-panels, and the thread split. Built for baseline x86-64: only the
// micro-kernels carry ISA flags.
//
// Loop nest (GotoBLAS/BLIS order):
//   jc over n by NC       B block (kc x NC, packed once per K block) stays in L3
//    pc over k by KC      the K block; first one applies beta, last one bias + ReLU
//     ic over m by MC     A block (MC x kc, packed) stays in L2
//      jr over NC by NR   one B micro-panel (kc x NR) stays in L1 across the ir loop
//       ir over MC by MR  micro-kernel: A micro-panel streams from L2
//
// The K split depends on k alone (ceil(k / KC) blocks of equal size), and each micro-kernel sums
// its K block in order from p = 0, so every element of C goes through the same operations for any
// m/n partition: results are the same for any thread count and any MC/NC.
#include <omp.h>
#include <xmmintrin.h>  // SSE (baseline x86-64): the 4x4 transposes of the packers

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <new>
#include <vector>

#include "common/errors.h"
#include "cpu/gemm/gemm.h"
#include "cpu/gemm/ukernel.h"
#include "cpu/parallel.h"

namespace convcore::cpu {

namespace {

constexpr GemmUkernel kUkernels[] = {
#define CONVCORE_GEMM_UKERNEL(isa, name, mr, nr) {#name, Isa::isa, mr, nr, &name},
#include "cpu/gemm/kernels.inc"
#undef CONVCORE_GEMM_UKERNEL
};
constexpr int kUkernelCount = sizeof(kUkernels) / sizeof(kUkernels[0]);

using Blocking = GemmBlocking;

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }
int64_t round_up(int64_t a, int64_t b) { return ceil_div(a, b) * b; }

}  // namespace

// AVX2 (Zen 3: 32 KB L1d, 512 KB L2; Haswell..: 32 KB / 256 KB): the textbook split. KC = 256
//   makes the B micro-panel (KC x NR = 16 KB) half of L1d, reused across the ir loop; MC = 120
//   makes the packed A block (MC x KC = 120 KB) fit a 256-512 KB L2 with room for C lines.
// AVX-512 (Sapphire Rapids: 48 KB L1d, 2 MB L2): measured, not derived. At 1024^3 on one core
//   (thread CPU time, FMA peak measured in the same run) MC = 504 / KC = 256 (A block in half of
//   L2) reached 70% of peak, MC = 56..84 reached 79-80%, and KC = 384 with the in-kernel B/A
//   prefetch 81-82%: a small A block stays in L1/L2 while the B block (KC x NC = 1.5 MB at
//   n = 1024) streams from L2 through the prefetches. So KC = 384, MC = 84 (6 micro-panels).
// NC bounds the packed B block (KC x NC floats), meant for L2/L3.
GemmBlocking gemm_blocking_for(const GemmUkernel& uk) {
  int64_t kc = 256, mc_target = 120, nc_target = 4096;
  if (uk.isa == Isa::Avx512) {
    kc = 384;
    mc_target = 84;
  }
  if (uk.isa == Isa::Scalar) mc_target = 64;
  const int64_t mc = std::max<int64_t>(uk.mr, mc_target / uk.mr * uk.mr);
  const int64_t nc = std::max<int64_t>(uk.nr, nc_target / uk.nr * uk.nr);
  return {kc, mc, nc};
}

int64_t gemm_k_block(int64_t k, const GemmBlocking& blk) {
  return ceil_div(k, ceil_div(k, blk.kc));  // equal K blocks: 300 -> 2 x 150, not 256 + 44
}

namespace {

// One growing, 64-byte aligned scratch buffer per thread and role: gemm() may run on many
// threads at once (conv workers each call it), so the buffers cannot be shared.
class PackBuffer {
 public:
  ~PackBuffer() { std::free(data_); }
  float* get(size_t count) {
    if (count > capacity_) {
      std::free(data_);
      const size_t bytes = round_up(static_cast<int64_t>(count * sizeof(float)), 64);
      data_ = static_cast<float*>(std::aligned_alloc(64, bytes));
      if (!data_) {
        capacity_ = 0;
        throw std::bad_alloc();
      }
      capacity_ = count;
    }
    return data_;
  }

 private:
  float* data_ = nullptr;
  size_t capacity_ = 0;
};
thread_local PackBuffer t_a_pack, t_b_pack;

}  // namespace

// dst[i * width + j] = src[j][i * step] for rows j < count and i < len, and zero for the columns
// count <= j < width: `count` rows, each read at a stride of `step`, transposed into a micro-panel
// whose steps i are `width` floats apart.
// With step 1, groups of four rows go through 4x4 SSE transposes (four row loads, four stores):
// element by element, the scattered stores had cost as much as the multiplies on long, thin
// products such as a Gram matrix F F^T of a 96 x 11449 feature map, and half of ResNet-50's 1x1
// weight gradient ((8,64,56,56) -> 256, perf).
void gemm_transpose_rows_into_panel(const float* const* src, int count, int64_t len, int64_t step,
                                    int width, float* dst) {
  int j = 0;
  if (step == 1) {
    for (; j + 4 <= count; j += 4) {
      const float *s0 = src[j], *s1 = src[j + 1], *s2 = src[j + 2], *s3 = src[j + 3];
      int64_t i = 0;
      for (; i + 4 <= len; i += 4) {
        __m128 r0 = _mm_loadu_ps(s0 + i), r1 = _mm_loadu_ps(s1 + i);
        __m128 r2 = _mm_loadu_ps(s2 + i), r3 = _mm_loadu_ps(s3 + i);
        _MM_TRANSPOSE4_PS(r0, r1, r2, r3);
        _mm_storeu_ps(dst + i * width + j, r0);
        _mm_storeu_ps(dst + (i + 1) * width + j, r1);
        _mm_storeu_ps(dst + (i + 2) * width + j, r2);
        _mm_storeu_ps(dst + (i + 3) * width + j, r3);
      }
      for (; i < len; ++i) {
        float* d = dst + i * width + j;
        d[0] = s0[i], d[1] = s1[i], d[2] = s2[i], d[3] = s3[i];
      }
    }
  }
  for (; j < count; ++j)
    for (int64_t i = 0; i < len; ++i) dst[i * width + j] = src[j][i * step];
  if (count < width)
    for (int64_t i = 0; i < len; ++i) std::fill(dst + i * width + count, dst + (i + 1) * width, 0.0f);
}

namespace {

// `rows` rows of a row-major matrix (ld floats apart) into a micro-panel of `width` columns (the
// columns past them zero).
void transpose_matrix_rows_into_panel(const float* src, int64_t ld, int64_t rows, int64_t kb,
                                      int width, float* dst) {
  CC_ASSERT(rows <= kMaxPanelWidth);
  const float* row[kMaxPanelWidth];
  for (int64_t r = 0; r < rows; ++r) row[r] = src + r * ld;
  gemm_transpose_rows_into_panel(row, static_cast<int>(rows), kb, 1, width, dst);
}

}  // namespace

void gemm_pack_a(bool trans_a, const float* a, int64_t lda, int64_t mb, int64_t kb, int mr,
            float* dst) {
  for (int64_t i0 = 0; i0 < mb; i0 += mr, dst += mr * kb) {
    const int64_t rows = std::min<int64_t>(mr, mb - i0);
    if (trans_a) {  // A stored k x m: each k step of the sliver is contiguous
      for (int64_t p = 0; p < kb; ++p) {
        const float* src = a + p * lda + i0;
        float* d = dst + p * mr;
        for (int64_t r = 0; r < rows; ++r) d[r] = src[r];
        for (int64_t r = rows; r < mr; ++r) d[r] = 0.0f;
      }
    } else {  // rows of A become the panel's columns
      transpose_matrix_rows_into_panel(a + i0 * lda, lda, rows, kb, mr, dst);
    }
  }
}

namespace {

// Packs rows [0, kb) x columns [0, nb) of op(B) into ceil(nb / nr) micro-panels of kb x nr
// floats; columns past nb are zero.
void pack_b(bool trans_b, const float* b, int64_t ldb, int64_t kb, int64_t nb, int nr,
            float* dst) {
  for (int64_t j0 = 0; j0 < nb; j0 += nr, dst += nr * kb) {
    const int64_t cols = std::min<int64_t>(nr, nb - j0);
    if (!trans_b) {
      for (int64_t p = 0; p < kb; ++p) {
        const float* src = b + p * ldb + j0;
        float* d = dst + p * nr;
        std::memcpy(d, src, sizeof(float) * cols);
        for (int64_t j = cols; j < nr; ++j) d[j] = 0.0f;
      }
    } else {  // B stored n x k: its rows become the panel's columns
      transpose_matrix_rows_into_panel(b + j0 * ldb, ldb, cols, kb, nr, dst);
    }
  }
}

// C = beta * C, then the epilogue: what is left of GEMM when alpha == 0 or k == 0.
void scale_and_epilogue(int64_t m, int64_t n, float beta, float* c, int64_t ldc,
                        const float* bias, bool relu) {
  for (int64_t i = 0; i < m; ++i) {
    float* row = c + i * ldc;
    if (beta == 0.0f) std::fill(row, row + n, 0.0f);
    else if (beta != 1.0f) for (int64_t j = 0; j < n; ++j) row[j] *= beta;
  }
  gemm_apply_epilogue<float>(m, n, c, ldc, GemmEpilogue<float>{bias, relu});
}

// For a symmetric product computed on and above the diagonal only: where this call's C block
// sits in the whole C (row and column of its first element).
struct UpperOnly {
  int64_t row0, col0;
};

// The whole loop nest on the calling thread; m, n, k > 0 and alpha != 0. With `upper`, micro-
// tiles lying wholly below the whole C's diagonal are skipped (left unwritten).
void gemm_f32_serial(const GemmUkernel& uk, const Blocking& blk, bool trans_a, bool trans_b,
                     int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda,
                     const float* b, int64_t ldb, float beta, float* c, int64_t ldc,
                     const float* bias, bool relu, const UpperOnly* upper = nullptr) {
  const int mr = uk.mr, nr = uk.nr;
  const int64_t kc = gemm_k_block(k, blk);
  const int64_t nc = std::min(blk.nc, round_up(n, nr));
  const int64_t mc = std::min(blk.mc, round_up(m, mr));
  float* b_pack = t_b_pack.get(static_cast<size_t>(kc * nc));
  float* a_pack = t_a_pack.get(static_cast<size_t>(kc * mc));

  for (int64_t jc = 0; jc < n; jc += nc) {
    const int64_t nb = std::min(nc, n - jc);
    for (int64_t pc = 0; pc < k; pc += kc) {
      const int64_t kb = std::min(kc, k - pc);
      const bool first = pc == 0, last = pc + kb == k;
      pack_b(trans_b, trans_b ? b + jc * ldb + pc : b + pc * ldb + jc, ldb, kb, nb, nr, b_pack);
      UkernelArgs args{alpha, first ? beta : 1.0f, nullptr, last && relu};
      for (int64_t ic = 0; ic < m; ic += mc) {
        const int64_t mb = std::min(mc, m - ic);
        gemm_pack_a(trans_a, trans_a ? a + pc * lda + ic : a + ic * lda + pc, lda, mb, kb, mr, a_pack);
        for (int64_t jr = 0; jr < nb; jr += nr) {
          const int64_t cols = std::min<int64_t>(nr, nb - jr);
          const float* b_panel = b_pack + jr * kb;
          for (int64_t ir = 0; ir < mb; ir += mr) {
            const int64_t rows = std::min<int64_t>(mr, mb - ir);
            // below the diagonal: the tile's last column comes before its first row
            if (upper && upper->col0 + jc + jr + cols <= upper->row0 + ic + ir) continue;
            args.bias = (last && bias) ? bias + ic + ir : nullptr;
            uk.fn(kb, a_pack + ir * kb, b_panel, c + (ic + ir) * ldc + jc + jr, ldc, rows, cols,
                  args);
          }
        }
      }
    }
  }
}

// Splits C into a tm x tn grid of blocks aligned to the tile (each thread one block), choosing
// the grid that minimises the largest block's padded area plus its packing traffic.
struct Grid {
  int tm, tn;
};
Grid choose_grid(int threads, int64_t m, int64_t n, int64_t k, int mr, int nr) {
  const int64_t m_tiles = ceil_div(m, mr), n_tiles = ceil_div(n, nr);
  Grid best{1, 1};
  double best_cost = -1;
  for (int tm = 1; tm <= threads; ++tm) {
    const int tn = threads / tm;
    if (tm > m_tiles || tn > n_tiles) continue;
    const double bm = double(ceil_div(m_tiles, tm) * mr), bn = double(ceil_div(n_tiles, tn) * nr);
    // FMAs of the largest block, plus the elements each thread packs (A block once per NC, the
    // B block once), weighted as a few FMAs each
    const double cost = bm * bn * double(k) + 4.0 * (bm + bn) * double(k);
    if (best_cost < 0 || cost < best_cost) {
      best_cost = cost;
      best = {tm, tn};
    }
  }
  return best;
}

}  // namespace

// C (m x m) = A A^T for row-major A (m x k): a Gram matrix. Only micro-tiles on or above the
// diagonal are multiplied (about half the FLOPs for m much larger than a tile), then the lower
// triangle is copied from the upper one. An element above the diagonal goes through exactly the
// operations gemm_f32_run(trans_b) gives it, and C[j][i] = C[i][j] exactly: the products
// a[i][p] a[j][p] do not depend on the order of their factors.
// Threads take bands of rows holding equal shares of the triangle: band t starts at row
// m (1 - sqrt(1 - t / threads)), rounded to the micro-kernel's rows, and computes only the
// columns from its first row on.
void gram_f32_run(const GemmUkernel& uk, int threads, int64_t m, int64_t k, const float* a,
                  int64_t lda, float* c, int64_t ldc) {
  if (m <= 0) return;
  if (k <= 0) {
    scale_and_epilogue(m, m, 0.0f, c, ldc, nullptr, false);
    return;
  }
  // Under 4 column panels the triangle saves a quarter of the tiles at most, while each band
  // packs all of A^T again: 2 threads, 96 x 11449, 1.38 ms as a GEMM, 1.64 as bands (from 256
  // rows on the bands win: 256 x 2809 1.89 -> 1.34, 384 x 676 0.96 -> 0.65, 1024 x 144 1.40
  // -> 1.29 ms). Same results either way.
  if (m < 4 * uk.nr) {
    gemm_f32_run(uk, threads, false, true, m, m, k, 1.0f, a, lda, a, lda, 0.0f, c, ldc, nullptr,
                 false);
    return;
  }
  const Blocking blk = gemm_blocking_for(uk);
  if (double(m) * double(m) * double(k) < 2e6) threads = 1;  // as gemm_f32_run
  const int64_t m_tiles = ceil_div(m, uk.mr);
  threads = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(threads, m_tiles)));
  std::vector<int64_t> edges(threads + 1, m);
  for (int t = 0; t < threads; ++t) {
    const double start = double(m_tiles) * (1.0 - std::sqrt(1.0 - double(t) / threads));
    edges[t] = std::min(m, static_cast<int64_t>(std::llround(start)) * uk.mr);
  }
  std::exception_ptr error;
#pragma omp parallel num_threads(threads)
  {
    const int t = omp_get_thread_num();
    const int64_t r0 = edges[t], r1 = edges[t + 1];
    if (r0 < r1) {
      try {
        const UpperOnly upper{r0, r0};
        gemm_f32_serial(uk, blk, false, true, r1 - r0, m - r0, k, 1.0f, a + r0 * lda, lda,
                        a + r0 * lda, lda, 0.0f, c + r0 * ldc + r0, ldc, nullptr, false, &upper);
      } catch (...) {
#pragma omp critical(convcore_gemm_error)
        if (!error) error = std::current_exception();
      }
    }
  }
  if (error) std::rethrow_exception(error);
  // the lower triangle from the upper, in blocks of 32 x 32 (one source block's rows are read
  // while its transposed destination stays in L1)
  constexpr int64_t kB = 32;
  const int64_t blocks = ceil_div(m, kB);
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads)
  for (int64_t bi = 0; bi < blocks; ++bi)
    for (int64_t bj = 0; bj <= bi; ++bj)
      for (int64_t i = bi * kB; i < std::min(m, (bi + 1) * kB); ++i)
        for (int64_t j = bj * kB; j < std::min(i, (bj + 1) * kB); ++j) c[i * ldc + j] = c[j * ldc + i];
}

const GemmUkernel* gemm_ukernels(int* count) {
  *count = kUkernelCount;
  return kUkernels;
}

// AMD's Zen 4 runs each 512-bit FMA as two 256-bit halves, one a cycle: there the 8-row tile won
// or tied against the 14-row one on every shape measured, square GEMMs included (session 9,
// bench/RESULTS.md: 1024^3 2-6% on one thread and 0-4% on two, 512^3 likewise, 2048x2048x1024
// even on one thread and 3% on two; ResNet-50's (8,256,14,14) Winograd products 10%). Intel's AVX-512 cores (two 512-bit FMA units, where
// the 14-row tile was tuned) and any other keep the manifest's first kernel.
namespace {
bool prefers_8_row_tile(Isa isa) {
  static const bool zen4 = cpu_features().vendor == "AuthenticAMD" && cpu_features().family == 0x19;
  return isa == Isa::Avx512 && zen4;
}
}  // namespace

const GemmUkernel& gemm_ukernel_for(Isa isa) {
  if (prefers_8_row_tile(isa))
    if (const GemmUkernel* uk = gemm_ukernel_named("f32_gemm_8x32__avx512")) return *uk;
  for (const GemmUkernel& uk : kUkernels)
    if (uk.isa == isa) return uk;
  for (const GemmUkernel& uk : kUkernels)  // the manifest always lists a scalar kernel
    if (uk.isa == Isa::Scalar) return uk;
  return kUkernels[0];
}

const GemmUkernel& gemm_ukernel_for_rows(Isa isa, int64_t m, int saving_percent) {
  const GemmUkernel* best = &gemm_ukernel_for(isa);
  for (const GemmUkernel& uk : kUkernels)
    if (uk.isa == best->isa &&
        100 * round_up(m, uk.mr) < (100 - saving_percent) * round_up(m, best->mr))
      best = &uk;
  return *best;
}

const GemmUkernel& gemm_ukernel_for_shape(Isa isa, int64_t m, int64_t n) {
  const GemmUkernel* best = &gemm_ukernel_for_rows(isa, m);
  const Isa level = best->isa;
  auto area = [&](const GemmUkernel& uk) { return round_up(m, uk.mr) * round_up(n, uk.nr); };
  for (const GemmUkernel& uk : kUkernels) {
    const bool usable = uk.isa == level || (level == Isa::Avx512 && uk.isa == Isa::Avx2);
    if (usable && area(uk) < area(*best)) best = &uk;
  }
  return *best;
}

const GemmUkernel* gemm_ukernel_named(const char* name) {
  for (const GemmUkernel& uk : kUkernels)
    if (std::strcmp(uk.name, name) == 0) return &uk;
  return nullptr;
}

bool isa_supported(Isa isa) {
  return static_cast<int>(isa) <= static_cast<int>(best_supported_isa());
}

void gemm_f32_run(const GemmUkernel& uk, int threads, bool trans_a, bool trans_b, int64_t m,
                  int64_t n, int64_t k, float alpha, const float* a, int64_t lda, const float* b,
                  int64_t ldb, float beta, float* c, int64_t ldc, const float* bias, bool relu) {
  if (m <= 0 || n <= 0) return;
  if (k <= 0 || alpha == 0.0f) {
    scale_and_epilogue(m, n, beta, c, ldc, bias, relu);
    return;
  }
  const Blocking blk = gemm_blocking_for(uk);
  // Below ~2 MFLOP a fork/join costs more than it saves.
  if (threads > 1 && double(m) * double(n) * double(k) < 1e6) threads = 1;
  const Grid grid = threads > 1 ? choose_grid(threads, m, n, k, uk.mr, uk.nr) : Grid{1, 1};
  if (grid.tm * grid.tn <= 1) {
    gemm_f32_serial(uk, blk, trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc,
                    bias, relu);
    return;
  }
  const int64_t block_m = ceil_div(ceil_div(m, uk.mr), grid.tm) * uk.mr;
  const int64_t block_n = ceil_div(ceil_div(n, uk.nr), grid.tn) * uk.nr;
  // An exception may not leave an OpenMP region (the runtime would terminate): keep the first
  // one (a failed pack-buffer allocation) and rethrow it on the calling thread.
  std::exception_ptr error;
#pragma omp parallel num_threads(grid.tm * grid.tn)
  {
    const int t = omp_get_thread_num();
    const int64_t i0 = (t / grid.tn) * block_m, j0 = (t % grid.tn) * block_n;
    if (i0 < m && j0 < n) {
      const int64_t mb = std::min(block_m, m - i0), nb = std::min(block_n, n - j0);
      try {
        gemm_f32_serial(uk, blk, trans_a, trans_b, mb, nb, k, alpha,
                        trans_a ? a + i0 : a + i0 * lda, lda, trans_b ? b + j0 * ldb : b + j0,
                        ldb, beta, c + i0 * ldc + j0, ldc, bias ? bias + i0 : nullptr, relu);
      } catch (...) {
#pragma omp critical(convcore_gemm_error)
        if (!error) error = std::current_exception();
      }
    }
  }
  if (error) std::rethrow_exception(error);
}

}  // namespace convcore::cpu
