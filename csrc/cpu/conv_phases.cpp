// float32 input gradient of a strided convolution (and so conv_transpose2d's forward) as
// stride_h * stride_w stride-1 convolutions of dY, one per phase of dX.
//
// Why: the im2col form multiplies W^T by dY into a column matrix and scatters it back (col2im);
// the convT.2x row (4x4 kernels, stride 2) spent 2.6 ms there against PyTorch's 2.6. dX's rows
// a + s*m (a < s) take only the kernel rows ky = r + s*j with r = (a + pad_top) mod s: for each
// phase (a, b) of dX that is a correlation of dY with a J x I sub-kernel (turned, channel axes
// swapped), a stride-1 forward convolution that the broadcast kernels run with no column matrix;
// a last pass interleaves the phases into dX. (Prototyped in Python over the native kernels:
// 4x4/2 2.93 -> 2.59 ms, 7x7/2 18.1 -> 14.8, 5x5/2 15.6 -> 14.8, but 3x3/2 2.96 -> 3.06: its
// phases are 2x2, 2x1, 1x2 and 1x1 sub-kernels, too short a sum each.)
#include <omp.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "common/select_algo.h"
#include "cpu/conv.h"
#include "cpu/parallel.h"
#include "cpu/scratch.h"

namespace convcore::cpu {

namespace {

// One axis of one phase: dX indices a, a + s, ... (count of them), the kernel taps r, r + s, ...
// (taps of them), and the padding of dY the stride-1 correlation needs before (may be negative:
// then the phase form does not apply) and after.
struct PhaseAxis {
  int64_t count, first_tap, taps, pad_before, pad_after;
};

PhaseAxis phase_axis(int64_t a, int64_t stride, int64_t pad, int64_t kernel, int64_t in_extent,
                     int64_t out_extent) {
  PhaseAxis ax{};
  ax.count = a < in_extent ? (in_extent - a + stride - 1) / stride : 0;
  ax.first_tap = (a + pad) % stride;
  ax.taps = ax.first_tap < kernel ? (kernel - ax.first_tap + stride - 1) / stride : 0;
  const int64_t base = (a + pad) / stride;  // dY index of dX index a at tap first_tap
  // dX[a + s*m] = sum_j dY[base + m - j] * w[first_tap + s*j]: a correlation over dY from index
  // base - (taps - 1), i.e. padded by taps - 1 - base before, and reaching dY index
  // base + count - 1, padded after by what lies past out_extent
  ax.pad_before = ax.taps - 1 - base;
  ax.pad_after = base + ax.count - out_extent;
  return ax;
}

// The phases of dX along its rows (stride_h of them) and columns (stride_w).
struct PhaseAxes {
  std::vector<PhaseAxis> rows, cols;
  explicit PhaseAxes(const ConvParams& p) {
    for (int64_t a = 0; a < p.stride_h; ++a)
      rows.push_back(phase_axis(a, p.stride_h, p.pad_top, p.kh, p.h, p.out_h));
    for (int64_t b = 0; b < p.stride_w; ++b)
      cols.push_back(phase_axis(b, p.stride_w, p.pad_left, p.kw, p.w, p.out_w));
  }
};

// A phase some tap reaches but whose correlation would need negative padding of dY.
bool needs_cropping(const std::vector<PhaseAxis>& axes) {
  for (const PhaseAxis& ax : axes)
    if (ax.count > 0 && ax.taps > 0 && (ax.pad_before < 0 || ax.pad_after < 0)) return true;
  return false;
}

}  // namespace

bool backward_input_phases_apply(const ConvParams& p) {
  if (p.stride_h < 2 && p.stride_w < 2) return false;
  if (p.dil_h != 1 || p.dil_w != 1) return false;
  const PhaseAxes axes(p);
  return !needs_cropping(axes.rows) && !needs_cropping(axes.cols);
}

// Where the prototype won: every phase's sub-kernel at least 2 taps each way (kernels at least
// twice the stride: 4x4/2, 5x5/2, 7x7/2, not 3x3/2), and at least 16 dX channels per group (the
// phase convolutions' outputs: the stem's 3 made its input gradient 3x slower).
bool backward_input_phases_win(const ConvParams& p) {
  return backward_input_phases_apply(p) && p.kh >= 2 * p.stride_h && p.kw >= 2 * p.stride_w &&
         p.c_per_group() >= 16;
}

void conv2d_backward_input_phases_f32(const ConvParams& p, const float* dy, const float* w,
                                      float* dx) {
  const int64_t sh = p.stride_h, sw = p.stride_w, kpg = p.k_per_group(), cpg = p.c_per_group();
  const int64_t plane = p.h * p.w;
  const PhaseAxes axes(p);
  // the phases' outputs, each (n, c, count_h, count_w), one after another
  std::vector<int64_t> offset(static_cast<size_t>(sh * sw + 1), 0);
  for (int64_t a = 0; a < sh; ++a)
    for (int64_t b = 0; b < sw; ++b)
      offset[static_cast<size_t>(a * sw + b + 1)] =
          offset[static_cast<size_t>(a * sw + b)] +
          p.n * p.c * axes.rows[static_cast<size_t>(a)].count * axes.cols[static_cast<size_t>(b)].count;
  const ScratchFloats phases(ScratchSlot::ColumnMatrix, static_cast<size_t>(offset.back()));
  std::vector<float> sub;
  for (int64_t a = 0; a < sh; ++a)
    for (int64_t b = 0; b < sw; ++b) {
      const PhaseAxis& ay = axes.rows[static_cast<size_t>(a)];
      const PhaseAxis& ax = axes.cols[static_cast<size_t>(b)];
      float* out = phases.get() + offset[static_cast<size_t>(a * sw + b)];
      const int64_t count = p.n * p.c * ay.count * ax.count;
      if (count == 0) continue;
      if (ay.taps == 0 || ax.taps == 0) {  // no kernel tap reaches this phase
        std::fill(out, out + count, 0.0f);
        continue;
      }
      // the sub-kernel as a forward's weights (C, K/groups, J, I): taps turned, channels swapped
      sub.resize(static_cast<size_t>(p.c * kpg * ay.taps * ax.taps));
      for (int64_t gc = 0; gc < p.c; ++gc) {
        const int64_t g = gc / cpg, c = gc % cpg;
        for (int64_t k = 0; k < kpg; ++k)
          for (int64_t j = 0; j < ay.taps; ++j)
            for (int64_t i = 0; i < ax.taps; ++i) {
              const int64_t ky = ay.first_tap + sh * (ay.taps - 1 - j);
              const int64_t kx = ax.first_tap + sw * (ax.taps - 1 - i);
              sub[static_cast<size_t>(((gc * kpg + k) * ay.taps + j) * ax.taps + i)] =
                  w[(((g * kpg + k) * cpg + c) * p.kh + ky) * p.kw + kx];
            }
      }
      const ConvParams q = make_conv_params(
          "conv2d_backward", {p.n, p.k, p.out_h, p.out_w}, {p.c, kpg, ay.taps, ax.taps}, {1, 1},
          {ay.pad_before, ay.pad_after, ax.pad_before, ax.pad_after}, {1, 1}, p.groups);
      conv2d_forward<float>(select_conv_algo(q, 4, num_threads()), q, dy, sub.data(), nullptr, out);
    }
  // dX[n][c][a + sh*m][b + sw*l] = phase (a, b)[n][c][m][l]
#pragma omp parallel for schedule(static) num_threads(num_threads())
  for (int64_t nc = 0; nc < p.n * p.c; ++nc) {
    float* dst = dx + nc * plane;
    if (sw == 2) {
      // a dX row from two phase rows in one pass, element by element in turn: the loop
      // vectorizes (unpack shuffles), where one phase at a time stored every other float.
      // (convT.2x: the interleave 9.3% -> 3.4% of a call's samples, perf; the call 10% faster)
      const int64_t cols0 = axes.cols[0].count, cols1 = axes.cols[1].count;  // cols1 <= cols0
      for (int64_t a = 0; a < sh; ++a) {
        const int64_t rows = axes.rows[static_cast<size_t>(a)].count;
        const float* src0 = phases.get() + offset[static_cast<size_t>(a * 2)] + nc * rows * cols0;
        const float* src1 = phases.get() + offset[static_cast<size_t>(a * 2 + 1)] + nc * rows * cols1;
        for (int64_t m = 0; m < rows; ++m) {
          float* row = dst + (a + sh * m) * p.w;
          const float* even = src0 + m * cols0;
          const float* odd = src1 + m * cols1;
          for (int64_t l = 0; l < cols1; ++l) {
            row[2 * l] = even[l];
            row[2 * l + 1] = odd[l];
          }
          if (cols0 > cols1) row[2 * cols1] = even[cols1];
        }
      }
      continue;
    }
    for (int64_t a = 0; a < sh; ++a)
      for (int64_t b = 0; b < sw; ++b) {
        const int64_t rows = axes.rows[static_cast<size_t>(a)].count;
        const int64_t cols = axes.cols[static_cast<size_t>(b)].count;
        const float* src = phases.get() + offset[static_cast<size_t>(a * sw + b)] + nc * rows * cols;
        for (int64_t m = 0; m < rows; ++m)
          for (int64_t l = 0; l < cols; ++l) dst[(a + sh * m) * p.w + b + sw * l] = src[m * cols + l];
      }
  }
}

}  // namespace convcore::cpu
