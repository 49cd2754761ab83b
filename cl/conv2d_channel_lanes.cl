/*
 * Forward pass of an unpadded, stride-1, undilated, ungrouped convolution with the output channels in the
 * vector lanes (oneDNN's idea for its blocked layouts, here without changing the tensors' layout):
 *
 *   y[n, k, p, q] = bias[k] + sum_{c, r, s} x[n, c, p + r, q + s] * weight[k, c, r, s]
 *
 * read from weight_by_tap, the weight transposed to (C, R, S, K) (clconv/algorithms/tiled.py copies it there
 * for each call), so that one tap's VEC consecutive output channels are one vector. Each work-item owns VEC
 * output channels x COLUMNS consecutive output columns of one row: every tap loads one weight vector and
 * broadcasts COLUMNS input elements against it, COLUMNS vector multiply-adds with every lane used whatever
 * the plane's width (vectors along a plane use Q of every W lanes there: LeNet-5 conv2, 10 of 14), no lane
 * masks, and no weight broadcast per multiply-add.
 *
 * A row of Q columns is cut into DIV_UP(Q, COLUMNS) blocks (COLUMNS <= Q); the last block starts at
 * Q - COLUMNS instead, overlapping the one before, and stores only its own columns, so that every load
 * stays inside the row and every column is written once. The output is channels-first: each lane goes to
 * its own channel's plane, one row of COLUMNS values per channel.
 *
 * NDRange: dim0 = P * DIV_UP(Q, COLUMNS), dim1 = K / VEC (K a multiple of VEC), dim2 = N.
 */
#include "common.h"

#ifndef VEC
#define VEC 16
#endif
#ifndef COLUMNS
#define COLUMNS 8
#endif
#include "vector.h"

/* A vector's lanes, one by one, without vstoren (a library call per use on PyPI's PoCL 3.0). */
typedef union {
    accv_t vector;
    acc_t lane[VEC];
} lanes_t;

__kernel void conv2d_channel_lanes(
    __global const real_t *restrict x, const int x_offset,
    __global const real_t *restrict weight_by_tap,
    __global const real_t *restrict bias, const int bias_offset, const int has_bias,
    __global real_t *restrict y, const int y_offset,
    const int N, const int C, const int H, const int W, const int K, const int R, const int S,
    const int P, const int Q)
{
    const int column_blocks = DIV_UP(Q, COLUMNS);
    const int p = get_global_id(0) / column_blocks;
    const int block_start = (get_global_id(0) % column_blocks) * COLUMNS;
    const int k0 = get_global_id(1) * VEC;
    const int n = get_global_id(2);
    if (p >= P || k0 >= K || n >= N)
        return;
    const int q0 = min(block_start, Q - COLUMNS);

    accv_t acc[COLUMNS];
    const accv_t start = has_bias ? VLOAD(VEC, bias + bias_offset + k0) : (accv_t)0;
#pragma unroll
    for (int j = 0; j < COLUMNS; ++j)
        acc[j] = start;

    __global const real_t *x_rows = x + x_offset + n * C * H * W + p * W + q0;
    __global const real_t *w_tap = weight_by_tap + k0;
    for (int c = 0; c < C; ++c) {
        for (int r = 0; r < R; ++r) {
            __global const real_t *row = x_rows + (c * H + r) * W;
            for (int s = 0; s < S; ++s, w_tap += K) {
                const accv_t w = VLOAD(VEC, w_tap);
#pragma unroll
                for (int j = 0; j < COLUMNS; ++j)
                    acc[j] = MULADD((accv_t)((acc_t)LOAD(row, j + s)), w, acc[j]);
            }
        }
    }

    lanes_t tile[COLUMNS];
#pragma unroll
    for (int j = 0; j < COLUMNS; ++j)
        tile[j].vector = acc[j];
    const int first = block_start - q0;  /* columns of the block before, in the overlapping last block */
    for (int lane = 0; lane < VEC; ++lane) {
        const int out_row = y_offset + ((n * K + k0 + lane) * P + p) * Q + q0;
        for (int j = first; j < COLUMNS; ++j)
            STORE(tile[j].lane[lane], y, out_row + j);
    }
}
