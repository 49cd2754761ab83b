/*
 * Forward pass of a depthwise layer (groups == C == K) on a channels-last x, read in its (N, H, W, C) memory
 * with nothing converted, VEC channels in the lanes (cl/depthwise_lanes.h):
 *
 *   y[n, c, p, q] = bias[c] + sum_{r, s} x[n, h, w, c] * weight[c, 0, r, s]
 *
 * with h = p*stride_h - pad_top + r*dil_h, w = q*stride_w - pad_left + s*dil_w (inputs outside the image read
 * as zero), the weight read from weight_by_tap, the (C, 1, R, S) weight transposed to (R, S, C)
 * (clconv/channels_last_depthwise.py copies it there for each call), so that one tap's VEC channels are one
 * vector. Each work-item owns one channel vector x COLUMNS consecutive output columns of one row: every tap
 * loads one weight vector and COLUMNS input vectors, COLUMNS vector multiply-adds. The output is
 * channels-first, as every pass's is: each lane goes to its own channel's plane, one row of COLUMNS values.
 *
 * A row of Q columns is cut into DIV_UP(Q, COLUMNS) blocks (COLUMNS <= Q); the last block starts at
 * Q - COLUMNS instead, overlapping the one before, and stores only its own columns. Columns are checked one by
 * one only in the blocks where some tap reaches outside the row.
 *
 * NDRange: dim0 = P * DIV_UP(Q, COLUMNS), dim1 = DIV_UP(C, VEC), dim2 = N.
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

__kernel void conv2d_depthwise_channels_last(
    __global const real_t *restrict x, const int x_offset,
    __global const real_t *restrict weight_by_tap,
    __global const real_t *restrict bias, const int bias_offset, const int has_bias,
    __global real_t *restrict y, const int y_offset,
    CONV_GEOMETRY_PARAMS)
{
    const int column_blocks = DIV_UP(Q, COLUMNS);
    const int p = get_global_id(0) / column_blocks;
    const int block_start = (get_global_id(0) % column_blocks) * COLUMNS;
    const int vector = get_global_id(1);
    const int n = get_global_id(2);
    if (p >= P || vector >= CHANNEL_VECTORS(C) || n >= N)
        return;
    const int c0 = vector_first_channel(vector, C);
    const int q0 = min(block_start, Q - COLUMNS);

    const accv_t start = has_bias ? VLOAD(VEC, bias + bias_offset + c0) : (accv_t)0;
    accv_t acc[COLUMNS];
#pragma unroll
    for (int j = 0; j < COLUMNS; ++j)
        acc[j] = start;

    const int col_stride = COLUMN_STRIDE(stride_w);
    const int w0 = q0 * col_stride - pad_left;
    /* Whether every tap of every column of the block reads inside the row. */
    const bool columns_inside = w0 >= 0 && (q0 + COLUMNS - 1) * col_stride - pad_left + (S - 1) * dil_w < W;
    __global const real_t *x_image = x + x_offset + n * H * W * C + c0;
    for (int r = 0; r < R; ++r) {
        const int h = p * stride_h - pad_top + r * dil_h;
        if (h < 0 || h >= H)
            continue;
        __global const real_t *row = x_image + (h * W + w0) * C;
        __global const real_t *w_tap = weight_by_tap + r * S * C + c0;
        for (int s = 0; s < S; ++s, w_tap += C) {
            const accv_t weight = VLOAD(VEC, w_tap);
#pragma unroll
            for (int j = 0; j < COLUMNS; ++j) {
                const int column = j * col_stride + s * dil_w;  /* from w0 */
                if (columns_inside || (w0 + column >= 0 && w0 + column < W))
                    acc[j] = MULADD(VLOAD(VEC, row + column * C), weight, acc[j]);
            }
        }
    }
    store_columns(acc, vector * VEC - c0, block_start - q0, y, y_offset + ((n * C + c0) * P + p) * Q + q0, P * Q);
}
