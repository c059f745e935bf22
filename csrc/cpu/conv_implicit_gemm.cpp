// float32 conv2d forward as one implicit GEMM over the whole batch (the im2col algorithm's float
// path; conv_im2col.cpp routes float here). Per group g:
//   Y_g (K/G x N*OHW) = W_g (K/G x CKK) * col (CKK x N*OHW)
// where the columns run over (image, oy, ox) of every image at once. Nothing is materialised:
// - the weights are packed once into the micro-kernel's A panels and shared by the threads;
// - each B micro-panel (KC rows x NR columns of col) is packed straight from the input image(s)
//   (padding read as zero), so the column matrix never exists and the packed block stays in L2;
// - bias is added by the micro-kernel when it finishes the K sum (fused epilogue).
// Why: with one image per GEMM, the DeepConvNet maps give N = OHW = 64..256 (a few panels), the
// column matrix is written and re-read through memory, and A is re-packed for every image.
//
// Threads split the columns (whole micro-panels) into contiguous ranges. A panel that straddles
// two images is computed into a local tile and merged with the same additions the micro-kernel
// would do (C + acc, + bias), so every element goes through the same operations whatever the
// thread count or where a panel boundary falls: results are bit-identical for any thread count.
#include <omp.h>
#include <xmmintrin.h>

#include <algorithm>
#include <cstdlib>
#include <exception>
#include <memory>
#include <vector>

#include "common/errors.h"
#include "cpu/conv.h"
#include "cpu/conv_broadcast.h"
#include "cpu/conv_grouped.h"
#include "cpu/cpu_features.h"
#include "common/select_algo.h"
#include "cpu/gemm/gemm.h"
#include "cpu/gemm/ukernel.h"
#include "cpu/im2col.h"
#include "cpu/parallel.h"
#include "cpu/scratch.h"

namespace convcore::cpu {

namespace {

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// The input as the packer reads it: x itself, or when the conv pads, a copy with the padding
// written out as zeros. With the padding in memory every tap of every output lies inside the
// array, so packing needs no bounds tests: it is one short copy per (column run, row of col).
// The copy lives in the calling thread's scratch buffer (cpu/scratch.h).
struct PaddedInput {
  const float* data;
  int64_t h, w;  // padded extents
  std::unique_ptr<ScratchFloats> storage;
};

PaddedInput pad_input(const ConvParams& p, const float* x, int threads) {
  const int64_t hp = p.h + p.pad_top + p.pad_bottom, wp = p.w + p.pad_left + p.pad_right;
  if (hp == p.h && wp == p.w) return {x, p.h, p.w, nullptr};
  auto storage = std::make_unique<ScratchFloats>(ScratchSlot::PaddedInput,
                                                 static_cast<size_t>(p.n * p.c * hp * wp));
  float* xp = storage->get();
#pragma omp parallel for schedule(static) num_threads(threads)
  for (int64_t plane = 0; plane < p.n * p.c; ++plane)
    pad_planes_f32(p, x + plane * p.h * p.w, 1, xp + plane * hp * wp);
  const float* data = xp;
  return {data, hp, wp, std::move(storage)};
}

// A run of consecutive columns of one panel that share (image, oy): for a given row of col
// (c, ky, kx) their samples lie on one padded input row, stride_w apart.
struct Segment {
  int64_t panel, lane, len;  // panel index within the chunk, first lane, number of columns
  int64_t base;              // padded-input offset of the first column at c = ky = kx = 0; -1: zeros
};

// Splits columns [j0, j0 + count) (global (image, oy, ox) order) into segments, panel by panel.
void split_segments(const ConvParams& p, const PaddedInput& in, int64_t j0, int64_t count,
                    int64_t panels, int nr, std::vector<Segment>& segs) {
  segs.clear();
  const int64_t ohw = p.out_h * p.out_w;
  for (int64_t pj = 0; pj < panels; ++pj) {
    int64_t lane = 0;
    while (lane < nr) {
      const int64_t j = pj * nr + lane;
      if (j >= count) {  // the last panel's lanes past the final output read as zero
        segs.push_back({pj, lane, nr - lane, -1});
        break;
      }
      const int64_t g = j0 + j, image = g / ohw, q = g % ohw;
      const int64_t oy = q / p.out_w, ox = q % p.out_w;
      const int64_t len = std::min({int64_t(nr) - lane, p.out_w - ox, count - j});
      segs.push_back({pj, lane, len,
                      (image * p.c * in.h + oy * p.stride_h) * in.w + ox * p.stride_w});
      lane += len;
    }
  }
}

// Runs here are 1-32 floats: a libc memcpy/memset call costs more than the copy (it measured 15%
// of book.conv2's forward), and GCC turns plain copy loops into such calls unless told not to.
#define CONVCORE_NO_LIBC_CALLS __attribute__((optimize("no-tree-loop-distribute-patterns")))
CONVCORE_NO_LIBC_CALLS inline void copy_short(float* dst, const float* src, int64_t count) {
  int64_t t = 0;
  for (; t + 4 <= count; t += 4) _mm_storeu_ps(dst + t, _mm_loadu_ps(src + t));
  if (t < count) dst[t] = src[t];
  if (t + 1 < count) dst[t + 1] = src[t + 1];
  if (t + 2 < count) dst[t + 2] = src[t + 2];
}

// Packs rows [r0, r0 + kb) of the (implicit) column matrix, for the chunk's segments, into
// panels of kb x nr floats. x_group points at channel 0 of the group in image 0 of the padded
// input; row_off[r] is row r's offset (c, ky, kx) in it.
CONVCORE_NO_LIBC_CALLS void pack_b_from_image(const ConvParams& p, const float* x_group,
                                              const int64_t* row_off,
                                              const std::vector<Segment>& segs, int64_t r0,
                                              int64_t kb, int nr, float* dst) {
  const int64_t sw = p.stride_w;
  for (int64_t r = r0; r < r0 + kb; ++r) {
    const float* x_row = x_group + row_off[r];
    float* row_dst = dst + (r - r0) * nr;
    for (const Segment& s : segs) {
      float* d = row_dst + s.panel * kb * nr + s.lane;
      if (s.base < 0) {
        for (int64_t t = 0; t < s.len; ++t) d[t] = 0.0f;
      } else if (sw == 1) {
        copy_short(d, x_row + s.base, s.len);
      } else {
        const float* src = x_row + s.base;
        for (int64_t t = 0; t < s.len; ++t) d[t] = src[t * sw];
      }
    }
  }
}

}  // namespace

// Without libc calls too: the DeepConvNet rows are 8-28 floats, and as three memset/memmove calls
// a row the padding took 7.5% of (100,16,14,14)->32's forward on one thread (perf). Inline:
// book.conv3 / conv4 / conv1 forward 2-3% / 3% / 1% faster on 2 threads (separate-process A/B,
// 6 pairs each, noisy host).
CONVCORE_NO_LIBC_CALLS void pad_planes_f32(const ConvParams& p, const float* x, int64_t planes, float* xpad) {
  const int64_t hp = p.h + p.pad_top + p.pad_bottom, wp = p.w + p.pad_left + p.pad_right;
  for (int64_t i = 0; i < planes; ++i) {
    const float* src = x + i * p.h * p.w;
    float* dst = xpad + i * hp * wp;
    for (int64_t q = 0; q < p.pad_top * wp + p.pad_left; ++q) dst[q] = 0.0f;
    for (int64_t iy = 0; iy < p.h; ++iy) {
      float* row = dst + (p.pad_top + iy) * wp + p.pad_left;
      const float* in = src + iy * p.w;
      copy_short(row, in, p.w);
      // this row's right padding and the next row's left padding are one run
      const int64_t gap = iy + 1 < p.h ? p.pad_right + p.pad_left : p.pad_right;
      for (int64_t j = 0; j < gap; ++j) row[p.w + j] = 0.0f;
    }
    for (int64_t q = (p.pad_top + p.h) * wp; q < hp * wp; ++q) dst[q] = 0.0f;
  }
}

std::vector<int64_t> col_row_offsets(const ConvParams& p, int64_t hp, int64_t wp) {
  const int64_t ckk = p.c_per_group() * p.kh * p.kw;
  std::vector<int64_t> row_off(static_cast<size_t>(ckk));
  for (int64_t r = 0; r < ckk; ++r) {
    const int64_t c = r / (p.kh * p.kw), ky = (r / p.kw) % p.kh, kx = r % p.kw;
    row_off[r] = (c * hp + ky * p.dil_h) * wp + kx * p.dil_w;
  }
  return row_off;
}

void conv2d_forward_implicit_f32(const ConvParams& p, const float* x, const float* w,
                                 const float* bias, float* y) {
  const int64_t kpg = p.k_per_group(), cpg = p.c_per_group();
  const int64_t ckk = cpg * p.kh * p.kw, ohw = p.out_h * p.out_w;
  const int64_t total_cols = p.n * ohw;
  if (total_cols == 0 || kpg == 0) return;
  const GemmUkernel& uk = gemm_ukernel_for_rows(active_isa(), kpg);
  const int mr = uk.mr, nr = uk.nr;
  CC_ASSERT(mr <= 16 && nr <= 32);  // the straddling-panel tile below
  const GemmBlocking blk = gemm_blocking_for(uk);
  const int64_t kc = gemm_k_block(ckk, blk), k_blocks = ceil_div(ckk, kc);
  const int64_t m_panels = ceil_div(kpg, mr);
  // Goto's order: a B chunk (kc x chunk columns, about 192 KB) stays in L2 while A blocks of
  // mc rows (also from L2) pass over it; each B micro-panel stays in L1 across one A block.
  const int64_t chunk_panels = std::max<int64_t>(1, (48 * 1024) / (kc * nr));
  const int64_t mc_panels = std::max<int64_t>(1, blk.mc / mr);
  const int64_t total_panels = ceil_div(total_cols, nr);

  int threads = num_threads();
  if (p.macs() < 2e5) threads = 1;  // a fork/join costs more than such a conv
  threads = static_cast<int>(std::min<int64_t>(threads, total_panels));
  if (grouped_conv_wins(p))  // few channels per group: pixels in the lanes (conv_grouped.h)
    return conv2d_forward_grouped_f32(p, x, w, bias, y, threads);
  if (broadcast_conv_wins(p))  // the column matrix read in place: no packing (conv_broadcast.h)
    return conv2d_forward_broadcast_f32(p, x, w, bias, y, threads);

  // A for every (group, K block): m_panels panels of kc x mr (the last K block uses fewer rows).
  const int64_t a_block = m_panels * mr * kc;
  AlignedFloats a_pack(static_cast<size_t>(p.groups * k_blocks * a_block));
#pragma omp parallel for collapse(2) schedule(static) num_threads(threads)
  for (int64_t g = 0; g < p.groups; ++g)
    for (int64_t b = 0; b < k_blocks; ++b) {
      const int64_t kb = std::min(kc, ckk - b * kc);
      gemm_pack_a(false, w + g * kpg * ckk + b * kc, ckk, kpg, kb, mr,
                  a_pack.get() + (g * k_blocks + b) * a_block);
    }

  const PaddedInput in = pad_input(p, x, threads);
  const std::vector<int64_t> row_off = col_row_offsets(p, in.h, in.w);

  std::exception_ptr error;
#pragma omp parallel num_threads(threads)
  {
    const int t = omp_get_thread_num(), nt = omp_get_num_threads();
    const int64_t first = total_panels * t / nt, last = total_panels * (t + 1) / nt;
    try {
      AlignedFloats b_pack(static_cast<size_t>(chunk_panels * nr * kc));
      alignas(64) float tile[16 * 32];  // a straddling panel's mr x nr result (ldc = nr)
      std::vector<Segment> segs;
      for (int64_t c0 = first; c0 < last; c0 += chunk_panels) {
        if (interrupted()) break;  // Ctrl-C: see cpu/parallel.h
        const int64_t panels = std::min(chunk_panels, last - c0);
        const int64_t j0 = c0 * nr, count = std::min(panels * nr, total_cols - j0);
        split_segments(p, in, j0, count, panels, nr, segs);
        for (int64_t g = 0; g < p.groups; ++g) {
          const float* x_group = in.data + g * cpg * in.h * in.w;
          for (int64_t b = 0; b < k_blocks; ++b) {
            const int64_t kb = std::min(kc, ckk - b * kc);
            const bool first_k = b == 0, last_k = b == k_blocks - 1;
            pack_b_from_image(p, x_group, row_off.data(), segs, b * kc, kb, nr, b_pack.get());
            const float* a_base = a_pack.get() + (g * k_blocks + b) * a_block;
            for (int64_t ic = 0; ic < m_panels; ic += mc_panels)
            for (int64_t pj = 0; pj < panels; ++pj) {
              const float* b_panel = b_pack.get() + pj * kb * nr;
              const int64_t j = j0 + pj * nr, cols = std::min<int64_t>(nr, j0 + count - j);
              const int64_t image = j / ohw, q = j % ohw;
              const bool straddles = q + cols > ohw;
              for (int64_t ip = ic; ip < std::min(m_panels, ic + mc_panels); ++ip) {
                const int64_t row0 = ip * mr, rows = std::min<int64_t>(mr, kpg - row0);
                const float* a_panel = a_base + ip * mr * kb;
                const float* bias_rows = (last_k && bias) ? bias + g * kpg + row0 : nullptr;
                if (!straddles) {
                  float* c = y + (image * p.k + g * kpg + row0) * ohw + q;
                  uk.fn(kb, a_panel, b_panel, c, ohw, rows, cols,
                        UkernelArgs{1.0f, first_k ? 0.0f : 1.0f, bias_rows, false});
                  continue;
                }
                uk.fn(kb, a_panel, b_panel, tile, nr, rows, cols,
                      UkernelArgs{1.0f, 0.0f, nullptr, false});
                // the micro-kernel's own epilogue, in the same order: (acc + C) + bias
                for (int64_t r = 0; r < rows; ++r)
                  for (int64_t jj = 0; jj < cols; ++jj) {
                    const int64_t gj = j + jj, img = gj / ohw;
                    float* out = y + (img * p.k + g * kpg + row0 + r) * ohw + gj % ohw;
                    float v = tile[r * nr + jj];
                    if (!first_k) v = v + *out;
                    if (bias_rows) v = v + bias_rows[r];
                    *out = v;
                  }
              }
            }
          }
        }
      }
    } catch (...) {
#pragma omp critical(convcore_implicit_gemm_error)
      if (!error) error = std::current_exception();
    }
  }
  if (error) std::rethrow_exception(error);
}

}  // namespace convcore::cpu

namespace convcore::cpu {

template <typename T>
void turn_weights(const ConvParams& p, const T* w, T* turned) {
  const int64_t kpg = p.k_per_group(), cpg = p.c_per_group(), taps = p.kh * p.kw;
#pragma omp parallel for schedule(static) num_threads(num_threads())
  for (int64_t gc = 0; gc < p.c; ++gc) {
    const int64_t g = gc / cpg, c = gc % cpg;
    for (int64_t k = 0; k < kpg; ++k) {
      const T* src = w + ((g * kpg + k) * cpg + c) * taps;
      T* dst = turned + (gc * kpg + k) * taps;
      for (int64_t t = 0; t < taps; ++t) dst[t] = src[taps - 1 - t];
    }
  }
}

template void turn_weights<float>(const ConvParams&, const float*, float*);
template void turn_weights<double>(const ConvParams&, const double*, double*);

void conv2d_backward_input_implicit_f32(const ConvParams& p, const float* dy, const float* w,
                                        float* dx) {
  const ConvParams q = backward_input_as_forward(p);
  if (q.n * q.out_h * q.out_w == 0 || q.k == 0) return;
  if (grouped_conv_wins(q))
    return conv2d_forward_grouped_f32(q, dy, w, nullptr, dx, q.macs() < 2e5 ? 1 : num_threads(),
                                      /*turned=*/true);
  if (broadcast_conv_wins(q))  // packs its kernel straight from w, turned (conv_broadcast.h)
    return conv2d_forward_broadcast_f32(q, dy, w, nullptr, dx, q.macs() < 2e5 ? 1 : num_threads(),
                                        /*turned=*/true);
  // (a scratch buffer, filled by all threads: for NIN's conv4_1024 these are 14 MB per call)
  const ScratchFloats turned(ScratchSlot::TurnedWeights,
                             static_cast<size_t>(p.c * p.k_per_group() * p.kh * p.kw));
  turn_weights(p, w, turned.get());
  conv2d_forward_implicit_f32(q, dy, turned.get(), nullptr, dx);
}

}  // namespace convcore::cpu

namespace convcore::cpu {

namespace {

// A run of consecutive output positions of one K block that share (image, oy).
struct PositionRun {
  int64_t offset, len;  // first position within the block, number of positions
  int64_t x_base;       // padded-input offset of the first position at c = ky = kx = 0
  int64_t dy_base;      // dy offset of the first position in output channel 0
};

void split_positions(const ConvParams& p, const PaddedInput& in, int64_t p0, int64_t count,
                     std::vector<PositionRun>& runs) {
  runs.clear();
  const int64_t ohw = p.out_h * p.out_w;
  for (int64_t off = 0; off < count;) {
    const int64_t g = p0 + off, image = g / ohw, q = g % ohw;
    const int64_t oy = q / p.out_w, ox = q % p.out_w;
    const int64_t len = std::min(p.out_w - ox, count - off);
    runs.push_back({off, len, (image * p.c * in.h + oy * p.stride_h) * in.w + ox * p.stride_w,
                    image * p.k * ohw + q});
    off += len;
  }
}

}  // namespace

// dW^T_g (CKK x K/G) = col (CKK x N*OHW) * dY_g^T (N*OHW x K/G): the long dimension, every
// output position of every image, is the GEMM's K. The micro-kernel's A panels (CKK rows of col)
// are packed straight from the padded input, its B panels from dY; each thread sums a contiguous
// range of K blocks into its own dW^T, and the partial sums are added in thread order (the same
// order every run at a fixed thread count).
namespace {
// Where the weight gradient runs as one GEMM over an explicit column matrix of every image: few
// positions in all (N * out_h * out_w), or 1x1 kernels on small maps with many output channels.
// The other two paths split the sum over positions into blocks of about 384 per thread and
// re-pack (or re-copy) the input for each: with one image of 12x12 (NIN's conv4_1024, 144
// positions) that is one block on one thread, and with 7x7 maps the copies run in rows of 7.
// Two threads, medians: (1,384,12,12) -> 1024 3x3 46.5 -> 5.2 ms, (1,512,32,32) -> 512 62 -> 28,
// (1,256,26,26) -> 384 13.4 -> 7.2, ResNet-50's (8,512,7,7) 27.5 -> 11.1, its 1x1 (8,512,14,14)
// 6.0 -> 4.7; even at 784-1568 positions ((8,256,14,14), (4,512,14,14)); worse from 6272
// ((8,128,28,28): 11.2 -> 18.5) and on the DeepConvNet rows (N = 100: 2.8 -> 5.8).
bool batched_weight_grad_wins(const ConvParams& p) {
  const int64_t positions = p.n * p.out_h * p.out_w;
  if (p.groups != 1 || p.c * p.kh * p.kw < 64 || p.k < 32) return false;
  return positions <= 2048 ||
         (p.kh == 1 && p.kw == 1 && p.out_h * p.out_w <= 256 && p.k >= 128);
}

// dW (K x CKK) = dY (K x N*OHW) col^T, col (CKK x N*OHW) = the im2col of every image side by
// side, dY copied to one row per output channel; the project's GEMM (trans_b) does the rest.
void conv2d_backward_weight_batched_f32(const ConvParams& p, const float* dy, const float* x,
                                        float* dw) {
  const int64_t ckk = p.c * p.kh * p.kw, ohw = p.out_h * p.out_w, np_ = p.n * ohw;
  const ScratchFloats col(ScratchSlot::PaddedInput, static_cast<size_t>(ckk * np_));
  const ScratchFloats dy_rows(ScratchSlot::ChannelLastGrad, static_cast<size_t>(p.k * np_));
  // im2col by (image, block of 16 channels): rows of channel c start at c * kh * kw
  const int64_t c_blocks = ceil_div(p.c, int64_t(16));
#pragma omp parallel num_threads(num_threads())
  {
#pragma omp for schedule(static) nowait
    for (int64_t i = 0; i < p.n * c_blocks; ++i) {
      const int64_t n = i / c_blocks, c0 = (i % c_blocks) * 16, cs = std::min<int64_t>(16, p.c - c0);
      im2col_image(p, cs, x + (n * p.c + c0) * p.h * p.w, col.get() + c0 * p.kh * p.kw * np_ + n * ohw,
                   np_, 1);
    }
#pragma omp for schedule(static)
    for (int64_t i = 0; i < p.k * p.n; ++i) {
      const int64_t k = i / p.n, n = i % p.n;
      std::copy(dy + (n * p.k + k) * ohw, dy + (n * p.k + k + 1) * ohw, dy_rows.get() + k * np_ + n * ohw);
    }
  }
  gemm_parallel<float>(false, true, p.k, ckk, np_, 1.0f, dy_rows.get(), np_, col.get(), np_, 0.0f,
                       dw, ckk);
}
}  // namespace

void conv2d_backward_weight_implicit_f32(const ConvParams& p, const float* dy, const float* x,
                                         float* dw) {
  const int64_t kpg = p.k_per_group(), cpg = p.c_per_group();
  const int64_t ckk = cpg * p.kh * p.kw, ohw = p.out_h * p.out_w, total = p.n * ohw;
  const int64_t dw_elems = p.k * ckk;
  if (total == 0) {
    std::fill(dw, dw + dw_elems, 0.0f);
    return;
  }
  // (its column matrix and dY copy must fit the workspace limit, CONVCORE_MAX_WORKSPACE)
  if (batched_weight_grad_wins(p) &&
      double(ckk + p.k) * double(total) * 4 <= double(max_workspace_bytes()))
    return conv2d_backward_weight_batched_f32(p, dy, x, dw);
  if (broadcast_weight_grad_wins(p))  // channel-last copies, no packing (conv_broadcast.h)
    return conv2d_backward_weight_broadcast_f32(p, dy, x, dw, p.macs() < 2e5 ? 1 : num_threads());
  const GemmUkernel& uk = gemm_ukernel_for_shape(active_isa(), ckk, kpg);
  const int mr = uk.mr, nr = uk.nr;
  CC_ASSERT(mr <= kMaxPanelWidth && nr <= kMaxPanelWidth);
  const GemmBlocking blk = gemm_blocking_for(uk);
  const int64_t kc = gemm_k_block(total, blk), k_blocks = ceil_div(total, kc);
  const int64_t m_panels = ceil_div(ckk, mr), n_panels = ceil_div(kpg, nr);
  const int64_t mc_panels = std::max<int64_t>(1, blk.mc / mr);
  int threads = num_threads();
  if (p.macs() < 2e5) threads = 1;
  threads = static_cast<int>(std::min<int64_t>(threads, k_blocks));

  const PaddedInput in = pad_input(p, x, threads);
  const std::vector<int64_t> row_off = col_row_offsets(p, in.h, in.w);
  // partial[t] = thread t's dW^T for every group (g, r, k) with ldc = kpg
  std::vector<float> partials(static_cast<size_t>(threads * dw_elems));
  std::vector<char> used(static_cast<size_t>(threads), 0);

  std::exception_ptr error;
#pragma omp parallel num_threads(threads)
  {
    const int t = omp_get_thread_num(), nt = omp_get_num_threads();
    const int64_t first = k_blocks * t / nt, last = k_blocks * (t + 1) / nt;
    float* acc = partials.data() + t * dw_elems;
    try {
      AlignedFloats a_pack(static_cast<size_t>(mc_panels * mr * kc));
      AlignedFloats b_pack(static_cast<size_t>(n_panels * nr * kc));
      std::vector<PositionRun> runs;
      for (int64_t b = first; b < last; ++b) {
        if (interrupted()) break;  // Ctrl-C: see cpu/parallel.h
        const int64_t p0 = b * kc, kb = std::min(kc, total - p0);
        const bool first_k = b == first;
        split_positions(p, in, p0, kb, runs);
        for (int64_t g = 0; g < p.groups; ++g) {
          // B: kb positions x kpg output channels of dY (columns past kpg zero)
          float* bp = b_pack.get();
          const float* rows[kMaxPanelWidth];
          for (int64_t jp = 0; jp < n_panels; ++jp) {
            float* panel = bp + jp * kb * nr;
            const int cols = static_cast<int>(std::min<int64_t>(nr, kpg - jp * nr));
            for (const PositionRun& run : runs) {
              for (int j = 0; j < cols; ++j)
                rows[j] = dy + run.dy_base + (g * kpg + jp * nr + j) * ohw;
              gemm_transpose_rows_into_panel(rows, cols, run.len, 1, nr, panel + run.offset * nr);
            }
          }
          const float* x_group = in.data + g * cpg * in.h * in.w;
          float* acc_group = acc + g * ckk * kpg;
          for (int64_t ic = 0; ic < m_panels; ic += mc_panels) {
            const int64_t ic_end = std::min(m_panels, ic + mc_panels);
            // A: rows of col (c, ky, kx) x kb positions, read from the padded input
            for (int64_t ip = ic; ip < ic_end; ++ip) {
              float* panel = a_pack.get() + (ip - ic) * mr * kb;
              const int count = static_cast<int>(std::min<int64_t>(mr, ckk - ip * mr));
              for (const PositionRun& run : runs) {
                for (int j = 0; j < count; ++j)
                  rows[j] = x_group + row_off[ip * mr + j] + run.x_base;
                gemm_transpose_rows_into_panel(rows, count, run.len, p.stride_w, mr,
                                               panel + run.offset * mr);
              }
            }
            for (int64_t ip = ic; ip < ic_end; ++ip)
              for (int64_t jp = 0; jp < n_panels; ++jp) {
                const int64_t rows = std::min<int64_t>(mr, ckk - ip * mr);
                const int64_t cols = std::min<int64_t>(nr, kpg - jp * nr);
                uk.fn(kb, a_pack.get() + (ip - ic) * mr * kb, bp + jp * kb * nr,
                      acc_group + ip * mr * kpg + jp * nr, kpg, rows, cols,
                      UkernelArgs{1.0f, first_k ? 0.0f : 1.0f, nullptr, false});
              }
          }
        }
      }
      used[t] = first < last;
    } catch (...) {
#pragma omp critical(convcore_implicit_gemm_error)
      if (!error) error = std::current_exception();
    }
  }
  if (error) std::rethrow_exception(error);

  // dw[g][k][r] = sum over threads, in thread order, of partial[t][g][r][k]
#pragma omp parallel for schedule(static) num_threads(threads)
  for (int64_t gk = 0; gk < p.k; ++gk) {
    const int64_t g = gk / kpg, k = gk % kpg;
    float* out = dw + gk * ckk;
    std::fill(out, out + ckk, 0.0f);
    for (int t = 0; t < threads; ++t) {
      if (!used[t]) continue;
      const float* part = partials.data() + t * dw_elems + g * ckk * kpg + k;
      for (int64_t r = 0; r < ckk; ++r) out[r] += part[r * kpg];
    }
  }
}

}  // namespace convcore::cpu
