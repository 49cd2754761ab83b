/*
 * Forward pass with the output channels in the vector lanes (oneDNN's idea for its blocked layouts, here
 * without changing the tensors' layout):
 *
 *   y[n, k, p, q] = bias[k] + sum_{c < Cg, r, s} x[n, g*Cg + c, h, w] * weight[k, c, r, s]
 *
 * with g = k / Kg, h = p*stride_h - pad_top + r*dil_h, w = q*stride_w - pad_left + s*dil_w (inputs outside
 * the image read as zero), the weight read from weight_by_tap, the weight transposed to (Cg, R, S, K)
 * (clconv/algorithms/tiled.py copies it there for each call), so that one tap's VEC consecutive output
 * channels are one vector. Each work-item owns BLOCK_K vectors of VEC output channels of one group x COLUMNS
 * consecutive output columns of one row: every tap loads BLOCK_K weight vectors and broadcasts COLUMNS input
 * elements against them, BLOCK_K * COLUMNS vector multiply-adds with every lane used whatever the plane's
 * width (vectors along a plane use Q of every W lanes there: LeNet-5 conv2, 10 of 14) and input columns read
 * one by one, so that a column stride costs nothing (vectors along a row at stride 2 take two loads and a
 * shuffle each).
 *
 * A row of Q columns is cut into DIV_UP(Q, COLUMNS) blocks (COLUMNS <= Q); the last block starts at
 * Q - COLUMNS instead, overlapping the one before, and stores only its own columns, so that every column is
 * written once. With PADDED, rows of taps outside the image are skipped, and columns are checked one by one
 * in the blocks where some tap reaches outside the row; without it (a layer with no padding, every tap of
 * which reads inside the image) no check is compiled: LeNet-5 conv2 ran 1.4x faster on PoCL 3.1 and 1.6x on
 * Intel's runtime without the checks that never failed there. With FIXED_ROW (set by the host for small tiles of
 * padded layers) the row's geometry is compiled in (FIXED_W, FIXED_Q, FIXED_S, FIXED_PAD_LEFT, FIXED_DIL_W): the
 * first and the last block of a row each get their own copy of the channel loop, in which every column check is a
 * constant once the column and tap loops are unrolled, so that a tap outside the row costs nothing, and the
 * blocks between (which the host checks lie inside the row) run a third copy with no check. A group's output
 * channels are a multiple of VEC (the host checks); its last block of vectors may be short, and then its vectors
 * past the group's end repeat the last one and are not stored. The output is channels-first: each lane goes to
 * its own channel's plane, one row of COLUMNS values per channel. x is read in (N, C, H, W) memory, or with
 * X_CHANNELS_LAST in its channels-last (N, H, W, C) memory, with nothing converted.
 *
 * NDRange: dim0 = P * DIV_UP(Q, COLUMNS), dim1 = groups * DIV_UP(Kg, VEC * BLOCK_K), dim2 = N.
 */
#include "common.h"

#ifndef VEC
#define VEC 16
#endif
#ifndef BLOCK_K
#define BLOCK_K 1
#endif
#ifndef COLUMNS
#define COLUMNS 8
#endif
#ifndef PADDED
#define PADDED 1
#endif
#include "vector.h"
#include "channel_lanes.h"

/* Adds every input channel's taps to the accumulators of a block of COLUMNS output columns of row p whose first
 * tap reads input column w0; `checked`: whether a column may read outside the row, and is then checked one by one.
 * With FIXED_ROW every argument that decides a check is a compile-time constant where this is inlined. */
static inline __attribute__((always_inline)) void accumulate_block(
    accv_t acc[COLUMNS][BLOCK_K], __global const real_t *x_image, __global const real_t *weight_by_tap,
    const int lane_channel[BLOCK_K], const int w0, const bool checked, const int C, const int Cg, const int H,
    const int W, const int K, const int p, const int stride_h, const int pad_top, const int dil_h, const int R,
    const int S, const int dil_w, const int col_stride)
{
    /* Whether every tap of every column of the block reads inside the row. */
    const bool columns_inside = !checked || (w0 >= 0 && w0 + (COLUMNS - 1) * col_stride + (S - 1) * dil_w < W);
    __global const real_t *w_channel = weight_by_tap;
    for (int c = 0; c < Cg; ++c, w_channel += R * S * K) {
        for (int r = 0; r < R; ++r) {
            const int h = p * stride_h - pad_top + r * dil_h;
#if PADDED
            if (h < 0 || h >= H)
                continue;
#endif
            __global const real_t *row = x_image + c * X_CHANNEL_STRIDE + (h * W + w0) * X_PIXEL_STRIDE;
            __global const real_t *w_tap = w_channel + r * S * K;
            UNROLL_TAPS
            for (int s = 0; s < S; ++s) {
                accv_t weight[BLOCK_K];
#pragma unroll
                for (int v = 0; v < BLOCK_K; ++v)
                    weight[v] = VLOAD(VEC, w_tap + s * K + lane_channel[v]);
#pragma unroll
                for (int j = 0; j < COLUMNS; ++j) {
                    const int column = j * col_stride + s * dil_w;  /* from w0 */
                    const bool inside = columns_inside || (w0 + column >= 0 && w0 + column < W);
                    add_broadcast(acc[j], weight, row, column * X_PIXEL_STRIDE, inside);
                }
            }
        }
    }
}

__kernel void conv2d_channel_lanes(
    __global const real_t *restrict x, const int x_offset,
    __global const real_t *restrict weight_by_tap,
    __global const real_t *restrict bias, const int bias_offset, const int has_bias,
    __global real_t *restrict y, const int y_offset,
    CONV_GEOMETRY_PARAMS)
{
    const int Cg = C / groups;
    const int Kg = K / groups;
    const int column_blocks = DIV_UP(Q, COLUMNS);
    const int k_blocks = DIV_UP(Kg, VEC * BLOCK_K);
    const int p = get_global_id(0) / column_blocks;
    const int block_start = (get_global_id(0) % column_blocks) * COLUMNS;
    const int g = get_global_id(1) / k_blocks;
    const int k0 = (get_global_id(1) % k_blocks) * VEC * BLOCK_K;  /* within the group */
    const int n = get_global_id(2);
    if (p >= P || g >= groups || n >= N)
        return;
    const int q0 = min(block_start, Q - COLUMNS);

    /* The first channel of each vector (past the group's end: its last vector). */
    int lane_channel[BLOCK_K];
#pragma unroll
    for (int v = 0; v < BLOCK_K; ++v)
        lane_channel[v] = g * Kg + min(k0 + v * VEC, Kg - VEC);

    accv_t acc[COLUMNS][BLOCK_K];
#pragma unroll
    for (int v = 0; v < BLOCK_K; ++v) {
        const accv_t start = has_bias ? VLOAD(VEC, bias + bias_offset + lane_channel[v]) : (accv_t)0;
#pragma unroll
        for (int j = 0; j < COLUMNS; ++j)
            acc[j][v] = start;
    }

    const int col_stride = COLUMN_STRIDE(stride_w);
    __global const real_t *x_image = x + x_offset + n * C * H * W + g * Cg * X_CHANNEL_STRIDE;
#if FIXED_ROW
    if (q0 == 0)
        accumulate_block(acc, x_image, weight_by_tap, lane_channel, -FIXED_PAD_LEFT, true, C, Cg, H, FIXED_W, K, p,
                         stride_h, pad_top, dil_h, R, FIXED_S, FIXED_DIL_W, col_stride);
    else if (q0 == FIXED_Q - COLUMNS)
        accumulate_block(acc, x_image, weight_by_tap, lane_channel, (FIXED_Q - COLUMNS) * col_stride - FIXED_PAD_LEFT,
                         true, C, Cg, H, FIXED_W, K, p, stride_h, pad_top, dil_h, R, FIXED_S, FIXED_DIL_W, col_stride);
    else
        accumulate_block(acc, x_image, weight_by_tap, lane_channel, q0 * col_stride - FIXED_PAD_LEFT, false, C, Cg,
                         H, FIXED_W, K, p, stride_h, pad_top, dil_h, R, FIXED_S, FIXED_DIL_W, col_stride);
#else
    accumulate_block(acc, x_image, weight_by_tap, lane_channel, q0 * col_stride - pad_left, PADDED, C, Cg, H, W, K, p,
                     stride_h, pad_top, dil_h, R, S, dil_w, col_stride);
#endif

    /* Lanes stored one by one from a private copy: a union of the vector and its lanes made PoCL 3.1 keep the
     * accumulators in memory throughout the weight gradient's loop (cl/conv2d_grad_weight_channel_lanes.cl). */
    const int first = block_start - q0;  /* columns of the block before, in the overlapping last block */
#pragma unroll
    for (int v = 0; v < BLOCK_K; ++v) {
        if (k0 + v * VEC >= Kg)
            continue;
        acc_t tile[COLUMNS][VEC];
#pragma unroll
        for (int j = 0; j < COLUMNS; ++j)
            CAT(vstore, VEC)(acc[j][v], 0, tile[j]);
        for (int lane = 0; lane < VEC; ++lane) {
            const int out_row = y_offset + ((n * K + lane_channel[v] + lane) * P + p) * Q + q0;
            for (int j = first; j < COLUMNS; ++j)
                STORE(tile[j][lane], y, out_row + j);
        }
    }
}
