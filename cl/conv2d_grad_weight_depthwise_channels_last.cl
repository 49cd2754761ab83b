/*
 * Weight gradient of a depthwise layer (groups == C == K) on channels-last x and grad_output, both read in
 * their (N, H, W, C) and (N, P, Q, C) memory with nothing converted, VEC channels in the lanes
 * (cl/depthwise_lanes.h):
 *
 *   grad_weight[c, 0, r, s] = sum_{n < N, p < P, q < Q} grad_output[n, p, q, c] * x[n, h, w, c]
 *
 * with h = p*stride_h - pad_top + r*dil_h, w = q*stride_w - pad_left + s*dil_w (taps outside the image add
 * nothing). Each work-item owns one channel vector x TAP_ROWS rows of S taps (S_TAPS, fixed at compile time,
 * so that the accumulators are registers): every output position loads one grad_output vector and, for each tap,
 * one x vector, one vector multiply-add each. Columns are checked only where some tap reaches outside the row.
 *
 * The output rows of the batch (n * P + p, N * P of them) are cut into `splits` chunks of rows_per_split; each
 * chunk is summed row by row and column by column in ascending order into `partial` (split-major, grad_weight's
 * layout within a split), which reduce_partials.cl adds in split order, or, with one split, straight into
 * grad_weight: repeated runs are bit-identical.
 *
 * NDRange: dim0 = DIV_UP(C, VEC), dim1 = DIV_UP(R, TAP_ROWS), dim2 = splits.
 */
#include "common.h"

#ifndef VEC
#define VEC 16
#endif
#ifndef TAP_ROWS
#define TAP_ROWS 3
#endif
#ifndef S_TAPS
#define S_TAPS 3
#endif
#include "vector.h"
#include "depthwise_lanes.h"

__kernel void conv2d_grad_weight_depthwise_channels_last(
    __global const real_t *restrict x, const int x_offset,
    __global const real_t *restrict grad_output, const int grad_output_offset,
    __global acc_t *restrict partial,
    __global real_t *restrict grad_weight, const int grad_weight_offset,
    const int rows_per_split, const int splits,
    CONV_GEOMETRY_PARAMS)
{
    const int vector = get_global_id(0);
    const int r0 = get_global_id(1) * TAP_ROWS;
    const int split = get_global_id(2);
    if (vector >= CHANNEL_VECTORS(C) || r0 >= R || split >= splits)
        return;
    const int c0 = vector_first_channel(vector, C);

    accv_t acc[TAP_ROWS][S_TAPS];
#pragma unroll
    for (int i = 0; i < TAP_ROWS; ++i)
#pragma unroll
        for (int s = 0; s < S_TAPS; ++s)
            acc[i][s] = (accv_t)0;

    /* The columns at which every tap of a row reads inside it. */
    const int inside_begin = FIRST_INSIDE(-pad_left, stride_w);
    const int inside_end = FIRST_PAST(-pad_left + (S_TAPS - 1) * dil_w, stride_w, W);
    const int end_row = min(N * P, (split + 1) * rows_per_split);
    for (int out_row = split * rows_per_split; out_row < end_row; ++out_row) {
        const int n = out_row / P;
        const int p = out_row % P;
        __global const real_t *gradient = grad_output + grad_output_offset + out_row * Q * C + c0;
        __global const real_t *x_rows[TAP_ROWS];
        bool row_inside[TAP_ROWS];
#pragma unroll
        for (int i = 0; i < TAP_ROWS; ++i) {
            const int h = p * stride_h - pad_top + (r0 + i) * dil_h;
            row_inside[i] = r0 + i < R && h >= 0 && h < H;
            x_rows[i] = x + x_offset + ((n * H + h) * W - pad_left) * C + c0;
        }
        for (int q = 0; q < Q; ++q) {
            const accv_t g = VLOAD(VEC, gradient + q * C);
            const bool columns_inside = q >= inside_begin && q < inside_end;
            const int w_first = q * stride_w;  /* + pad_left */
#pragma unroll
            for (int i = 0; i < TAP_ROWS; ++i) {
                if (!row_inside[i])
                    continue;
#pragma unroll
                for (int s = 0; s < S_TAPS; ++s) {
                    const int column = w_first + s * dil_w;  /* w + pad_left */
                    if (columns_inside || (column >= pad_left && column - pad_left < W))
                        acc[i][s] = MULADD(VLOAD(VEC, x_rows[i] + column * C), g, acc[i][s]);
                }
            }
        }
    }

    const int first_lane = vector * VEC - c0;
    const int taps = R * S_TAPS;
#pragma unroll
    for (int i = 0; i < TAP_ROWS; ++i) {
        if (r0 + i >= R)
            continue;
#pragma unroll
        for (int s = 0; s < S_TAPS; ++s) {
            acc_t lanes[VEC];
            CAT(vstore, VEC)(acc[i][s], 0, lanes);
            const int tap = (r0 + i) * S_TAPS + s;
            for (int lane = first_lane; lane < VEC; ++lane) {
                const int index = (c0 + lane) * taps + tap;
                if (partial)
                    partial[split * C * taps + index] = lanes[lane];
                else
                    STORE(lanes[lane], grad_weight, grad_weight_offset + index);
            }
        }
    }
}
