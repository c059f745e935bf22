#include "common/select_algo.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <mutex>

#include "common/errors.h"

namespace convcore {

namespace {
constexpr int64_t kUnlimited = std::numeric_limits<int64_t>::max();
std::atomic<int64_t> g_max_workspace{-2};  // -2: not read from the environment yet

int64_t parse_bytes(const char* text) {
  char* end = nullptr;
  const double value = std::strtod(text, &end);
  if (end == text || value < 0) return kUnlimited;  // unparseable: no limit (documented)
  double scale = 1;
  if (*end == 'k' || *end == 'K') scale = 1024.0;
  else if (*end == 'm' || *end == 'M') scale = 1024.0 * 1024;
  else if (*end == 'g' || *end == 'G') scale = 1024.0 * 1024 * 1024;
  const double bytes = value * scale;
  return bytes >= 9.0e18 ? kUnlimited : static_cast<int64_t>(bytes);
}
}  // namespace

int64_t max_workspace_bytes() {
  int64_t v = g_max_workspace.load();
  if (v == -2) {
    const char* env = std::getenv("CONVCORE_MAX_WORKSPACE");
    int64_t parsed = env ? parse_bytes(env) : kUnlimited;
    g_max_workspace.compare_exchange_strong(v, parsed);
    v = g_max_workspace.load();
  }
  return v;
}

void set_max_workspace_bytes(int64_t bytes) { g_max_workspace = bytes < 0 ? kUnlimited : bytes; }

int64_t conv_workspace_bytes(ConvAlgo algo, const ConvParams& p, int64_t elem_bytes, int threads) {
  const double t = threads > 0 ? threads : 1;
  double elems = 0;
  if (algo == ConvAlgo::Im2col) {
    const double ckk = double(p.c_per_group()) * double(p.kh) * double(p.kw);
    // one column matrix per thread (none for pointwise), plus per-thread weight-gradient partials
    const double cols = p.is_pointwise() ? 0.0 : t * ckk * double(p.out_h) * double(p.out_w);
    elems = cols + (t - 1) * double(p.k) * ckk;
    if (elem_bytes == 4) {  // float (implicit GEMM): a padded copy of x, the packed weights,
                            // and one weight-gradient partial per thread
      const double hp = double(p.h + p.pad_top + p.pad_bottom), wp = double(p.w + p.pad_left + p.pad_right);
      const double padded = (hp == p.h && wp == p.w) ? 0.0 : double(p.n) * double(p.c) * hp * wp;
      elems = std::max(elems, padded + double(p.k + 16 * p.groups) * ckk + t * double(p.k) * ckk);
    }
  } else if (algo == ConvAlgo::Depthwise) {
    elems = t * double(p.h + p.pad_top + p.pad_bottom) * double(p.w + p.pad_left + p.pad_right);
  } else if (algo == ConvAlgo::WinogradF2 || algo == ConvAlgo::WinogradF4) {
    // transformed kernels, plus one chunk (at most 8M elements) of transformed tiles
    const double m = algo == ConvAlgo::WinogradF2 ? 2 : 4, points = (m + 2) * (m + 2);
    const double tiles_h = std::ceil(double(p.out_h) / m), tiles_w = std::ceil(double(p.out_w) / m);
    const double tiles = double(p.n) * tiles_h * tiles_w;
    elems = points * double(p.k) * double(p.c) +
            std::min(points * double(p.c + p.k) * tiles, std::max(8.0 * (1 << 20), points * double(p.c + p.k)));
    if (elem_bytes == 4) {
      // the per-ISA float32 driver (cpu/conv_winograd_f32_impl.inc): x split into padded planes
      // of m column phases, the kernels' transforms packed (K padded to 14 rows), and per
      // thread one chunk (at most 256 tiles) of transformed tiles and products
      // (kernels past 3x3 as 3x3 sub-kernels: cv virtual channels, planes 3 rows/columns wider
      // per extra sub-kernel)
      const double blocks_h = double((p.kh + 2) / 3), blocks_w = double((p.kw + 2) / 3);
      const double cv = double(p.c) * blocks_h * blocks_w;
      const double planes = double(p.n) * double(p.c) * (m * tiles_h + 3 * blocks_h) * m *
                            (tiles_w + 2 * blocks_w + 17);
      elems = planes + points * double(p.k + 14) * cv +
              t * points * (cv + double(p.k) + 16) * std::min(tiles + 16, 272.0);
    }
  }
  const double bytes = elems * double(elem_bytes);
  return bytes >= 9.0e18 ? kUnlimited : static_cast<int64_t>(bytes);
}

namespace {
// With prepared (frozen) weights the kernels' transform is paid once, not per call, and Winograd
// wins on smaller maps: one image, 2 threads, forward / input gradient, im2col-or-broadcast vs
// Winograd with prepared weights: NIN's conv4_1024 (12x12, 384 -> 1024, 36 tiles) 6.2 / 6.9 ->
// 5.0 / 4.9 ms (3.1 / 3.1 once few tiles ran as the GEMM's rows: conv_winograd_f32_impl.inc,
// tiles_as_rows), (14x14, 256 -> 256, 49 tiles) 1.29 / 1.37 -> 0.75 / 0.80 ms. At 16 tiles it
// lost with 128 channels (7x7: 0.12 -> 0.19 ms) and, before the tile-rows products, with 512
// (2.0 -> 3.6 ms); with them (256+ channels both sides) 2.0 -> 1.1 ms.
constexpr int64_t kPreparedMinTiles = 32;
constexpr int64_t kPreparedMinTilesWide = 16;  // 256+ input and output channels
// Where Winograd beats im2col+GEMM on this project's measurements (bench/RESULTS.md, "Winograd",
// interleaved medians on 1 and 2 threads) while staying within the error bound documented there;
// Im2col means "not here".
ConvAlgo select_winograd(const ConvParams& p, int64_t elem_bytes, bool weights_prepared) {
  // 5x5 runs as four 3x3 sub-kernels (float32 only: winograd_supports), 1.56x fewer multiplies
  // than direct: 1.05-1.2x faster than im2col from 64 channels on 28+ pixel maps (NIN's conv2,
  // 53x53 96 -> 256: 1.09x on 2 threads, 1.2x on one; fwd and dx alike), even at 32 channels;
  // 7x7 (nine sub-kernels, 1.36x fewer) only 1.02-1.05x, left to im2col.
  if (p.kh != p.kw || (p.kh != 3 && p.kh != 5) ||
      !winograd_supports(winograd_default_tile(elem_bytes), p, elem_bytes))
    return ConvAlgo::Im2col;
  // float64: F(4x4,3x3) (error <= 3.5e-14) was 1.6-5.1x faster on every 3x3 row from C=16 up
  // (book.conv2..6, r50.3x3.*), slower only at C=1 (book.conv1, 0.72x).
  if (elem_bytes == 8) return p.c >= 16 ? ConvAlgo::WinogradF4 : ConvAlgo::Im2col;
  // float32: F(2x2,3x3) is within the 1e-5 bound at any channel count (F(4x4,3x3): below). Its own
  // driver (cpu/conv_winograd_f32_impl.inc) against im2col, one thread, thread CPU time,
  // interleaved medians, AVX-512 and AVX2 builds alike (bench/RESULTS.md, "Session 4"): 3x3
  // from 32 input and 64 output channels won on every map measured: ResNet-50's rows
  // 1.28-1.62x, VGG's 112x112 row and VGG-16 at 256 px 1.4-1.9x, NIN's conv3 1.3-1.5x, the
  // DeepConvNet 8x8 rows (32/64 -> 64) 1.16-1.25x, 28x28 and 56x56 with 32 -> 64 1.13-1.34x;
  // even at 14x14 with 32 -> 64 (0.96-0.98x). It lost with fewer channels (the DeepConvNet rows
  // with 16 -> 32 and 32 -> 32: 0.69-0.88x) and on NIN's conv4_1024 (12x12, one image: 36
  // tiles, 0.84-0.89x: the kernels' transform is not repaid). 5x5 (four sub-kernels) from 64
  // channels on maps 24+ wide.
  const int64_t tiles = p.n * ((p.out_h + 1) / 2) * ((p.out_w + 1) / 2);
  const int64_t min_tiles = !weights_prepared                 ? 128
                           : (p.k >= 256 && p.c >= 256) ? kPreparedMinTilesWide
                                                        : kPreparedMinTiles;
  if (tiles < min_tiles) return ConvAlgo::Im2col;
  // Session 10 (2 threads, medians of 2 x 21, im2col / Winograd): 3x3 with 24-63 output channels
  // won from 40 input channels on, every map tried: 64 -> 32 at 8x8 (book.conv5's input gradient
  // as a forward) 1.11 / 0.96 ms, 14x14 3.35 / 2.92, 28x28 4.38 / 3.74, 128 -> 32 and 256 -> 32
  // 1.2x, 48 -> 32 and 40 -> 32 1.12x, 64 -> 24 at 14x14 3.31 / 2.41 (AVX2 1.04-1.15x); 32 -> 32
  // only 1.0-1.04x and 64 -> 16 lost (0.62 / 0.68).
  // F(4x4,3x3) (2.25x fewer multiplies than F(2x2,3x3), but larger transform constants; points
  // 0, 1, -1, 2, -1/2: cpu/conv_winograd.cpp): in float32 its max-norm error, worst of 150 random
  // layers, is 2.0e-6 at 16 input channels, 2.8e-6 at 32, 3.6e-6 at 64, 5.5e-6 at 128 and 6.0e-6
  // at 256 (bench/RESULTS.md, session 11; with Lavin & Gray's points -2 for -1/2 it was 2.7x larger,
  // 1.04e-5 at 32), within the 1e-5 bound. Session 11, 2 threads, medians of 15, im2col / F(2x2)
  // / F(4x4) ms, AVX-512 (AVX2): book.conv4 (14x14 pad 2, 32 -> 32) 2.06 / 1.74 / 1.37 (2.90 /
  // 2.37 / 1.52), its input gradient 1.76 / 1.61 / 1.34, book.conv5 (8x8, 32 -> 64) 1.08 / 0.83 /
  // 0.67 (1.28 / 0.90 / 0.67), book.conv6 (64 -> 64) 2.11 / 1.46 / 1.14 (2.38 / 1.61 / 1.17),
  // 32 -> 32 at 8x8 0.57 / 0.52 / 0.41, 28x28 64 -> 32 1.07 / 0.90 / 0.61, ResNet-50's 56x56
  // 64 -> 64 8.6 / 6.2 / 4.3 (11.7 / 7.0 / 5.3), 28x28 128 -> 128 8.2 / 4.9 / 3.4 (8.7 / 5.1 /
  // 3.6), 14x14 256 -> 256 8.0 / 5.1 / 4.6 (9.8 / 5.5 / 4.8), VGG's 112x112 128 -> 128 75 / 39 /
  // 29 (72 / 42 / 30), 8x8 128 -> 128 2.7 / 1.6 / 1.1 (3.0 / 2.0 / 1.9). 7x7 maps with 512
  // channels lost (7.2 / 8.0; its 36 kernel transforms of 2.4 M weights a call), so not past 256.
  // With 16 input channels it won where 2-4 tile rows stack in a vector
  // (maps 8-16 wide; conv_winograd_f32_impl.inc, stacked_rows): book.conv3 (14x14, 16 -> 32)
  // 0.89 / 0.99 / 0.79 (1.00 / 1.33 / 0.87), 16 -> 64 at 14x14 1.77 / 1.73 / 1.36 (1.99 / 3.78 /
  // 1.72), 16 -> 32 at 8x8; on wider maps only on AVX-512 (28x28 16 -> 32 1.28 / 1.41 / 0.89, on
  // AVX2 1.18 / 1.56 / 1.17; 56x56 lost on AVX2), and 16 output channels lost (book.conv2).
  // Tiles past the map's edge are computed whole: 10x10 maps (12x12 computed, 1.44x) lost to
  // F(2x2) (32 -> 48: 0.79 / 0.93 ms), 14x14 (16x16, 1.31x) still won; so at most 8/7 a side.
  const bool wide = p.k >= 64;
  const bool f4_channels = p.c >= 32 || (p.c >= 16 && p.out_w <= 16);
  auto f4_fits = [](int64_t out) { return out >= 8 && 7 * ((out + 3) / 4 * 4) <= 8 * out; };
  if (p.kh == 3 && f4_channels && p.c <= 256 && p.k >= 32 && f4_fits(p.out_h) && f4_fits(p.out_w))
    return ConvAlgo::WinogradF4;
  if (p.kh == 3 && ((wide && p.c >= 32) || (p.k >= 24 && p.c >= 40))) return ConvAlgo::WinogradF2;
  if (p.kh == 5 && wide && p.c >= 64 && p.out_w >= 24) return ConvAlgo::WinogradF2;
  return ConvAlgo::Im2col;
}
}  // namespace

ConvAlgo select_conv_algo(const ConvParams& p, int64_t elem_bytes, int threads,
                          bool weights_prepared) {
  if (p.is_depthwise()) return ConvAlgo::Depthwise;
  // im2col+GEMM (for float32 the implicit GEMM of cpu/conv_implicit_gemm.cpp) wins once each
  // output reuses enough inputs for the GEMM's blocking to pay off: bench row book.conv1
  // (C/groups*kh*kw = 9) runs its forward in 0.73 ms as im2col against 2.39 ms direct (Run 2,
  // one thread). Below 8 the packing costs more than it saves.
  if (p.c_per_group() * p.kh * p.kw < 8) return ConvAlgo::Direct;
  // Over the workspace limit, direct convolution computes the same thing with no buffer.
  if (conv_workspace_bytes(ConvAlgo::Im2col, p, elem_bytes, threads) > max_workspace_bytes())
    return ConvAlgo::Direct;
  const ConvAlgo winograd = select_winograd(p, elem_bytes, weights_prepared);
  if (winograd != ConvAlgo::Im2col &&
      conv_workspace_bytes(winograd, p, elem_bytes, threads) <= max_workspace_bytes())
    return winograd;
  return ConvAlgo::Im2col;
}

ConvAlgo select_conv_backward_input_algo(const ConvParams& p, int64_t elem_bytes, int threads,
                                         bool weights_prepared) {
  const ConvAlgo algo = select_conv_algo(p, elem_bytes, threads, weights_prepared);
  if (algo != ConvAlgo::WinogradF2 && algo != ConvAlgo::WinogradF4) return algo;
  // (no forward form: the dispatch runs im2col's gradient whatever the algorithm)
  if (!backward_input_is_a_forward(p)) return algo;
  // the tile that forward would take (an F(2x2) forward 384 -> 32 at 8x8 has an F(4x4) gradient,
  // 32 -> 384), or im2col where it would take none
  const ConvParams q = backward_input_as_forward(p);
  const ConvAlgo tile = select_winograd(q, elem_bytes, weights_prepared);
  if (tile == ConvAlgo::Im2col || conv_workspace_bytes(tile, q, elem_bytes, threads) > max_workspace_bytes())
    return ConvAlgo::Im2col;
  return tile;
}

// float32: F(2x2,3x3), whose error matches im2col's (about 6e-7 at C=512); F(4x4,3x3)'s larger
// transform constants make it 5-10x larger (up to 6e-6 at C=256), within the 1e-5 float32 bound
// of the tests: "auto" takes it up to 256 input channels (select_winograd), and algo="winograd"
// means F(2x2,3x3). float64: F(4x4,3x3), at most 3.5e-14. Figures: bench/RESULTS.md, "Winograd"
// error table and session 11.
bool winograd_supports(ConvAlgo algo, const ConvParams& p, int64_t elem_bytes) {
  if (p.stride_h != 1 || p.stride_w != 1 || p.dil_h != 1 || p.dil_w != 1 || p.groups != 1)
    return false;
  if (algo == ConvAlgo::WinogradF2 && elem_bytes == 4) return true;
  return (algo == ConvAlgo::WinogradF2 || algo == ConvAlgo::WinogradF4) && p.kh == 3 && p.kw == 3;
}

ConvAlgo winograd_default_tile(int64_t elem_bytes) {
  return elem_bytes == 4 ? ConvAlgo::WinogradF2 : ConvAlgo::WinogradF4;
}

ConvAlgo parse_conv_algo(const std::string& name, const ConvParams& p, const std::string& op,
                         int64_t elem_bytes, int threads, bool weights_prepared) {
  if (name == "auto") return select_conv_algo(p, elem_bytes, threads, weights_prepared);
  if (name == "im2col") {
    const int64_t need = conv_workspace_bytes(ConvAlgo::Im2col, p, elem_bytes, threads);
    if (need > max_workspace_bytes())
      throw MemoryError(detail::concat(op, ": algo='im2col' needs ", need,
                                       " bytes of workspace, over the CONVCORE_MAX_WORKSPACE limit of ",
                                       max_workspace_bytes(), " bytes; use algo='direct' or 'auto'"));
    return ConvAlgo::Im2col;
  }
  if (name == "winograd" || name == "winograd_2x2" || name == "winograd_4x4") {
    // "winograd": the tile bench/RESULTS.md ("Winograd") documents for the dtype
    const ConvAlgo algo = name == "winograd_2x2"   ? ConvAlgo::WinogradF2
                          : name == "winograd_4x4" ? ConvAlgo::WinogradF4
                                                   : winograd_default_tile(elem_bytes);
    CC_CHECK_VALUE(winograd_supports(algo, p, elem_bytes), op, ": algo='", name, "' needs ",
                   algo == ConvAlgo::WinogradF2 && elem_bytes == 4 ? "" : "a 3x3 kernel, ",
                   "stride 1, dilation 1 and groups 1",
                   algo == ConvAlgo::WinogradF2 && elem_bytes == 4
                       ? ""
                       : " (kernels other than 3x3: float32 winograd_2x2 only)",
                   ", got ", p.describe());
    return algo;
  }
  if (name == "reference") return ConvAlgo::Reference;
  if (name == "direct") return ConvAlgo::Direct;
  if (name == "depthwise") {
    CC_CHECK_VALUE(p.is_depthwise(), op,
                   ": algo='depthwise' needs groups == C (one input channel per group), got groups=",
                   p.groups, " with C=", p.c);
    return ConvAlgo::Depthwise;
  }
  throw ValueError(detail::concat(op, ": unknown algo '", name,
                                  "'; expected one of 'auto', 'direct', 'im2col', 'depthwise', 'reference'"));
}

const char* conv_algo_name(ConvAlgo algo) {
  switch (algo) {
    case ConvAlgo::Reference: return "reference";
    case ConvAlgo::Direct: return "direct";
    case ConvAlgo::Im2col: return "im2col";
    case ConvAlgo::Depthwise: return "depthwise";
    case ConvAlgo::WinogradF2: return "winograd_2x2";
    case ConvAlgo::WinogradF4: return "winograd_4x4";
  }
  return "?";
}

}  // namespace convcore
