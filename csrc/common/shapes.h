// Output-size formulas shared by every backend, the benchmark's FLOP counts and the tests
// (bound to Python as convcore._cpu.conv_out_extent etc.). All arithmetic is int64.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace convcore {

// Extent of a convolution output along one axis:
//   floor((in + pad_before + pad_after - dilation*(kernel-1) - 1) / stride) + 1
// Returns a value <= 0 when the padded input is smaller than the dilated kernel; callers reject it.
int64_t conv_out_extent(int64_t in, int64_t kernel, int64_t stride, int64_t pad_before,
                        int64_t pad_after, int64_t dilation);

// Extent of a transposed-convolution output along one axis (the inverse of the formula above,
// made unique by output_padding):
//   (in - 1)*stride - pad_before - pad_after + dilation*(kernel-1) + output_padding + 1
int64_t conv_transpose_out_extent(int64_t in, int64_t kernel, int64_t stride, int64_t pad_before,
                                  int64_t pad_after, int64_t dilation, int64_t output_padding);

// Extent of a pooling output. With ceil_mode the division rounds up, but (PyTorch's rule) the
// last window must start inside the image or the leading padding, never in the trailing padding.
int64_t pool_out_extent(int64_t in, int64_t kernel, int64_t stride, int64_t pad_before,
                        int64_t pad_after, int64_t dilation, bool ceil_mode);

// Product of extents, throwing ValueError (naming `what`) if any extent is negative or the
// product passes 2^60 - 1 (where a float64 array's byte count would overflow int64).
int64_t checked_numel(const std::vector<int64_t>& extents, const std::string& what);

std::string shape_str(const std::vector<int64_t>& extents);

}  // namespace convcore
