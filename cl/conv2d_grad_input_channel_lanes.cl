/*
 * Gradient with respect to the input with the input channels in the vector lanes, for layers read at a column
 * stride (the forward pass of a strided transposed convolution, with a bias), padded dense stride-1 layers
 * (clconv.algorithms.tiled.padded_lanes_pay) and stride-1 layers whose grad_output is channels-last (read in place,
 * clconv.algorithms.tiled.lanes_in_place_config):
 *
 *   grad_input[n, c, h, w] = bias[c] + sum_{k < Kg, r, s} grad_output[n, g*Kg + k, p, q] * weight[g*Kg + k, c', r, s]
 *
 * with c = g*Cg + c', over the taps that reach (h, w): h + pad_top - r*dil_h = p*stride_h and
 * w + pad_left - s*dil_w = q*stride_w with p < P, q < Q. The weight is read from weight_by_tap, the
 * (K, Cg, R, S) weight transposed to (R, S, K, Cg) (clconv/algorithms/tiled.py copies it there for each call),
 * so that VEC consecutive input channels of one output channel and tap are one vector.
 *
 * The columns of one phase (w mod stride_w) are reached by the same taps, and consecutive ones read consecutive
 * columns of grad_output. Each work-item owns BLOCK_K vectors of VEC input channels of one group x COLUMNS
 * consecutive columns of one phase of one row: for each tap that reaches them and each output channel it loads
 * BLOCK_K weight vectors and broadcasts COLUMNS grad_output elements, one contiguous run of a row, against them.
 * The taps are worked out once per work-item, not per output channel; the tiled kernel instead runs every phase
 * as a launch of its own, with vectors along columns whose masks cost most on the short rows of strided layers.
 *
 * A phase of Wp columns is cut into DIV_UP(Wp, COLUMNS) blocks; the last starts at Wp - COLUMNS instead,
 * overlapping the one before, and stores only its own columns (a phase narrower than COLUMNS stores its Wp).
 * grad_output columns past its row are read as zero; with FIXED_ROW (stride-1 columns, small tiles: the host's
 * tiled.fixed_row_defines) the row's geometry is compiled in (FIXED_W, FIXED_Q, FIXED_S, FIXED_PAD_LEFT,
 * FIXED_DIL_W), and the first and the last block of a row each get their own copy of the loops, in which every
 * column check is a constant once the tap and column loops are unrolled, the blocks between (which the host checks
 * read inside grad_output's rows) a third copy with no check. A group's input channels are a multiple of VEC (the host
 * checks); its last block of vectors may be short, and then its vectors past the group's end repeat the last one
 * and are not stored. Every element of grad_input is written, with the bias alone where no tap reaches it.
 * grad_output is read in (N, K, P, Q) memory, or with GRAD_OUTPUT_CHANNELS_LAST in its channels-last
 * (N, P, Q, K) memory, with nothing converted.
 *
 * NDRange: dim0 = H * stride_w * DIV_UP(DIV_UP(W, stride_w), COLUMNS), dim1 = groups * DIV_UP(Cg, VEC * BLOCK_K),
 * dim2 = N.
 */
#include "common.h"

#ifndef VEC
#define VEC 16
#endif
#ifndef BLOCK_K
#define BLOCK_K 4
#endif
#ifndef COLUMNS
#define COLUMNS 6
#endif
#ifndef GRAD_OUTPUT_CHANNELS_LAST
#define GRAD_OUTPUT_CHANNELS_LAST 0
#endif
#if GRAD_OUTPUT_CHANNELS_LAST
#define GRAD_CHANNEL_STRIDE 1
#define GRAD_PIXEL_STRIDE K
#else
#define GRAD_CHANNEL_STRIDE (P * Q)
#define GRAD_PIXEL_STRIDE 1
#endif
#include "vector.h"
#include "channel_lanes.h"

/* Adds every tap that reaches the block of COLUMNS columns of one phase of row h, starting at the phase's column j0,
 * and every output channel of group g to the accumulators; `checked`: whether a tap may read grad_output columns
 * outside its row, which are then checked one by one. With FIXED_ROW every argument that decides a check is a
 * compile-time constant where this is inlined. */
static inline __attribute__((always_inline)) void accumulate_columns(
    accv_t acc[COLUMNS][BLOCK_K], __global const real_t *grad_image, __global const real_t *weight_by_tap,
    const int lane_channel[BLOCK_K], const int phase, const int j0, const bool checked, const int h, const int g,
    const int Kg, const int Cg, const int K, const int P, const int Q, const int R, const int S, const int stride_h,
    const int stride_w, const int pad_top, const int pad_left, const int dil_h, const int dil_w)
{
    for (int r = 0; r < R; ++r) {
        const int row_shift = h + pad_top - r * dil_h;
        if (row_shift % stride_h != 0)  /* zero exactly where the division is exact, negative shifts too */
            continue;
        const int p = row_shift / stride_h;
        if (p < 0 || p >= P)
            continue;
        UNROLL_TAPS
        for (int s = 0; s < S; ++s) {
            const int column_shift = phase + pad_left - s * dil_w;
            if (column_shift % stride_w != 0)
                continue;
            const int q0 = column_shift / stride_w + j0;  /* the grad_output column of the block's first */
            const bool columns_inside = !checked || (q0 >= 0 && q0 + COLUMNS <= Q);
            __global const real_t *grad_row = grad_image + (p * Q + q0) * GRAD_PIXEL_STRIDE;
            __global const real_t *w_tap = weight_by_tap + ((r * S + s) * K + g * Kg) * Cg;
            for (int k = 0; k < Kg; ++k, grad_row += GRAD_CHANNEL_STRIDE, w_tap += Cg) {
                accv_t weight[BLOCK_K];
#pragma unroll
                for (int v = 0; v < BLOCK_K; ++v)
                    weight[v] = VLOAD(VEC, w_tap + lane_channel[v]);
#pragma unroll
                for (int j = 0; j < COLUMNS; ++j) {
                    add_broadcast(acc[j], weight, grad_row, j * GRAD_PIXEL_STRIDE,
                                  columns_inside || (q0 + j >= 0 && q0 + j < Q));
                }
            }
        }
    }
}

__kernel void conv2d_grad_input_channel_lanes(
    __global const real_t *restrict grad_output, const int grad_output_offset,
    __global const real_t *restrict weight_by_tap,
    __global const real_t *restrict bias, const int bias_offset, const int has_bias,
    __global real_t *restrict grad_input, const int grad_input_offset,
    CONV_GEOMETRY_PARAMS)
{
    const int Cg = C / groups;
    const int Kg = K / groups;
    const int widest_phase = DIV_UP(W, stride_w);
    const int column_blocks = DIV_UP(widest_phase, COLUMNS);
    const int c_blocks = DIV_UP(Cg, VEC * BLOCK_K);
    int t = get_global_id(0);
    const int block = t % column_blocks;
    t /= column_blocks;
    const int phase = t % stride_w;
    const int h = t / stride_w;
    const int g = get_global_id(1) / c_blocks;
    const int c0 = (get_global_id(1) % c_blocks) * VEC * BLOCK_K;  /* within the group */
    const int n = get_global_id(2);
    const int phase_columns = DIV_UP(W - phase, stride_w);
    if (h >= H || g >= groups || n >= N || block * COLUMNS >= phase_columns)
        return;
    const int columns = min(COLUMNS, phase_columns);
    const int j0 = min(block * COLUMNS, phase_columns - columns);  /* the block's first column of the phase */

    /* Each vector's first channel within the group (past the group's end: its last vector). */
    int lane_channel[BLOCK_K];
#pragma unroll
    for (int v = 0; v < BLOCK_K; ++v)
        lane_channel[v] = min(c0 + v * VEC, Cg - VEC);

    accv_t acc[COLUMNS][BLOCK_K];
#pragma unroll
    for (int v = 0; v < BLOCK_K; ++v) {
        const accv_t start = has_bias ? VLOAD(VEC, bias + bias_offset + g * Cg + lane_channel[v]) : (accv_t)0;
#pragma unroll
        for (int j = 0; j < COLUMNS; ++j)
            acc[j][v] = start;
    }

    __global const real_t *grad_image = grad_output + grad_output_offset + n * K * P * Q + g * Kg * GRAD_CHANNEL_STRIDE;
#if FIXED_ROW
    /* Stride-1 columns (one phase) and the row's geometry known at compile time: in the first and the last block
     * every column check is a constant, and the blocks between (which the host checks read inside grad_output's
     * row at every tap) need none. */
    if (j0 == 0)
        accumulate_columns(acc, grad_image, weight_by_tap, lane_channel, 0, 0, true, h, g, Kg, Cg, K, P, FIXED_Q, R,
                           FIXED_S, stride_h, 1, pad_top, FIXED_PAD_LEFT, dil_h, FIXED_DIL_W);
    else if (j0 == FIXED_W - COLUMNS)
        accumulate_columns(acc, grad_image, weight_by_tap, lane_channel, 0, FIXED_W - COLUMNS, true, h, g, Kg, Cg, K,
                           P, FIXED_Q, R, FIXED_S, stride_h, 1, pad_top, FIXED_PAD_LEFT, dil_h, FIXED_DIL_W);
    else
        accumulate_columns(acc, grad_image, weight_by_tap, lane_channel, 0, j0, false, h, g, Kg, Cg, K, P, FIXED_Q, R,
                           FIXED_S, stride_h, 1, pad_top, FIXED_PAD_LEFT, dil_h, FIXED_DIL_W);
#else
    accumulate_columns(acc, grad_image, weight_by_tap, lane_channel, phase, j0, true, h, g, Kg, Cg, K, P, Q, R, S,
                       stride_h, stride_w, pad_top, pad_left, dil_h, dil_w);
#endif

    /* Lanes stored one by one from a private copy (see cl/conv2d_grad_weight_channel_lanes.cl). */
    const int first = block * COLUMNS - j0;  /* columns of the block before, in the overlapping last block */
#pragma unroll
    for (int v = 0; v < BLOCK_K; ++v) {
        if (c0 + v * VEC >= Cg)
            continue;
        acc_t tile[COLUMNS][VEC];
#pragma unroll
        for (int j = 0; j < COLUMNS; ++j)
            CAT(vstore, VEC)(acc[j][v], 0, tile[j]);
        for (int lane = 0; lane < VEC; ++lane) {
            const int out_row = grad_input_offset + ((n * C + g * Cg + lane_channel[v] + lane) * H + h) * W + phase;
            for (int j = first; j < columns; ++j)
                STORE(tile[j][lane], grad_input, out_row + (j0 + j) * stride_w);
        }
    }
}
