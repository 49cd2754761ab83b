/*
 * Input gradient of a depthwise layer (groups == C == K) on a channels-last grad_output, read in its
 * (N, P, Q, C) memory with nothing converted, VEC channels in the lanes (cl/depthwise_lanes.h):
 *
 *   grad_input[n, c, h, w] = bias[c] + sum_{r, s} grad_output[n, p, q, c] * weight[c, 0, r, s]
 *
 * over the taps that reach (h, w): h + pad_top - r*dil_h = p*stride_h and w + pad_left - s*dil_w = q*stride_w
 * with p < P, q < Q. bias (C entries, or none) is the forward pass's of a transposed convolution. The weight is
 * read from weight_by_tap, the (C, 1, R, S) weight transposed to (R, S, C) (clconv/channels_last_depthwise.py
 * copies it there for each call). Each work-item owns one channel vector x COLUMNS consecutive columns of one
 * row: for each tap row that reaches the row, each tap loads one weight vector and, for each of the columns it
 * reaches, one grad_output vector. Every element of grad_input is written, with the bias alone where no tap
 * reaches it; the output is channels-first.
 *
 * A row of W columns is cut into DIV_UP(W, COLUMNS) blocks (COLUMNS <= W), the last one overlapping the one
 * before, as in the forward pass. COL_STRIDE (vector.h) fixes a column stride of 1 or 2 at compile time, so that
 * the test of whether a tap reaches a column costs no division there.
 *
 * NDRange: dim0 = H * DIV_UP(W, COLUMNS), dim1 = DIV_UP(C, VEC), dim2 = N.
 */
#include "common.h"

#ifndef VEC
#define VEC 16
#endif
#ifndef COLUMNS
#define COLUMNS 8
#endif
#include "vector.h"
#include "depthwise_lanes.h"

__kernel void conv2d_grad_input_depthwise_channels_last(
    __global const real_t *restrict grad_output, const int grad_output_offset,
    __global const real_t *restrict weight_by_tap,
    __global const real_t *restrict bias, const int bias_offset, const int has_bias,
    __global real_t *restrict grad_input, const int grad_input_offset,
    CONV_GEOMETRY_PARAMS)
{
    const int column_blocks = DIV_UP(W, COLUMNS);
    const int h = get_global_id(0) / column_blocks;
    const int block_start = (get_global_id(0) % column_blocks) * COLUMNS;
    const int vector = get_global_id(1);
    const int n = get_global_id(2);
    if (h >= H || vector >= CHANNEL_VECTORS(C) || n >= N)
        return;
    const int c0 = vector_first_channel(vector, C);
    const int w0 = min(block_start, W - COLUMNS);

    const accv_t start = has_bias ? VLOAD(VEC, bias + bias_offset + c0) : (accv_t)0;
    accv_t acc[COLUMNS];
#pragma unroll
    for (int j = 0; j < COLUMNS; ++j)
        acc[j] = start;

    const int col_stride = COLUMN_STRIDE(stride_w);
    __global const real_t *image = grad_output + grad_output_offset + n * P * Q * C + c0;
    for (int r = 0; r < R; ++r) {
        const int reach = h + pad_top - r * dil_h;  /* p * stride_h */
        if (reach < 0 || reach % stride_h != 0 || reach / stride_h >= P)
            continue;
        __global const real_t *row = image + reach / stride_h * Q * C;
        __global const real_t *w_tap = weight_by_tap + r * S * C + c0;
        for (int s = 0; s < S; ++s, w_tap += C) {
            const accv_t weight = VLOAD(VEC, w_tap);
            const int first = w0 + pad_left - s * dil_w;  /* q * stride_w of column w0 */
#pragma unroll
            for (int j = 0; j < COLUMNS; ++j) {
                const int column = first + j;
                if (column >= 0 && column % col_stride == 0 && column / col_stride < Q)
                    acc[j] = MULADD(VLOAD(VEC, row + column / col_stride * C), weight, acc[j]);
            }
        }
    }
    store_columns(acc, vector * VEC - c0, block_start - w0, grad_input,
                  grad_input_offset + ((n * C + c0) * H + h) * W + w0, H * W);
}
