// Separable 1-D convolution: a depthwise kh x kw kernel given as a column pass (w_col (C, kh),
// along H, with the vertical stride/padding/dilation) followed by a row pass (w_row (C, kw), along
// W, with the horizontal ones). It equals a depthwise conv2d whose kernel of channel c is
// outer(w_col[c], w_row[c]), at kh + kw instead of kh * kw multiply-adds per output.
//
// Each pass is described by the ConvParams of the depthwise conv it is: the column pass by kernel
// (C, 1, kh, 1), the row pass by kernel (C, 1, 1, kw) over the column pass's output. Building
// both through make_conv_params gives the same validation and error messages as conv2d.
//
// The kernels work one output row at a time so the intermediate row (W wide) stays in L1:
// the column pass adds whole input rows into it (contiguous, vectorises along W), the row pass
// reads it back per tap. For stride_w > 1 the intermediate row is first split into its stride
// phases (element q goes to phase q % stride, slot q / stride), which turns the strided reads of
// every tap into contiguous ones.
#pragma once
#include <cstdint>
#include <string>

#include "common/separable1d_params.h"

namespace convcore::cpu {

// Separable1dParams and make_separable1d_params live in common/ (shared with the CUDA twin).
using convcore::Separable1dParams;
using convcore::make_separable1d_params;

// y = row_pass(column_pass(x)) + bias. x (N, C, H, W), w_col (C, kh), w_row (C, kw),
// bias (C,) or null, y (N, C, out_h, out_w).
template <typename T>
void separable1d_forward(const Separable1dParams& sp, const T* x, const T* w_col, const T* w_row,
                         const T* bias, T* y);

// Gradients; a null output pointer means "not needed" (its work is skipped). The intermediate
// column-pass output is recomputed row by row when dw_row is asked for.
template <typename T>
void separable1d_backward(const Separable1dParams& sp, const T* dy, const T* x, const T* w_col,
                          const T* w_row, T* dx, T* dw_col, T* dw_row, T* db);

}  // namespace convcore::cpu
