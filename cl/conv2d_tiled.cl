/*
 * Tiled direct correlation: the forward pass, and the input gradient at stride 1.
 *
 *   out[n, g*Co+co, p, q] = bias[g*Co+co]
 *       + sum_{ci<Ci, r<R, s<S} in[n, g*Ci+ci, p*stride_h + offset_h + r*dil_h, q*stride_w + offset_w + s*dil_w]
 *                               * weight[weight_offset + g*ws_group + co*ws_co + ci*ws_ci + r*ws_r + s*ws_s]
 *
 * Input rows/columns outside [0, Hin) x [0, Win) read zero. Tensors are N, channels, rows, columns.
 * Forward:            in = x, out = y, Ci = C/groups, Co = K/groups, offset = -padding, the weight
 *                     strides of (K, C/groups, R, S).
 * Input gradient (stride 1): in = grad_output, out = grad_input, Ci = K/groups, Co = C/groups,
 *                     offset_h = pad_top - (R-1)*dil_h (likewise w), and weight strides that swap the
 *                     channel axes and walk r and s backwards (the kernel flipped).
 *
 * Each work-item owns BLOCK_K output channels x BLOCK_P output rows x VEC consecutive output columns,
 * held as BLOCK_K*BLOCK_P vectors of VEC lanes. Every (ci, r, s) step loads BLOCK_P input vectors and
 * BLOCK_K weights and issues BLOCK_K*BLOCK_P vector multiply-adds: register tiles and vectors along the
 * contiguous axis, which is what pays on CPUs; no local memory and no barriers.
 *
 * NDRange: dim0 = ceil(Wout / VEC), dim1 = ceil(Hout / BLOCK_P), dim2 = N * groups * ceil(Co / BLOCK_K)
 * (each rounded up to the work-group shape).
 */
#include "common.h"

#ifndef VEC
#define VEC 16
#endif
#ifndef BLOCK_K
#define BLOCK_K 8
#endif
#ifndef BLOCK_P
#define BLOCK_P 2
#endif

typedef CAT(ACC_NAME, VEC) accv_t;
/* select() needs an integer mask with lanes as wide as the data's. */
#if REAL_BITS == 64
#define MASK_NAME long
#else
#define MASK_NAME int
#endif
typedef CAT(MASK_NAME, VEC) maskv_t;

__constant int lane_ids[16] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};

/* VEC input values starting at column `col`, every `stride`-th, zero outside [0, width).
 * At unit stride, when the whole vector lies inside the buffer (it may straddle a row edge into the
 * padding), one vector load and a lane mask replace VEC scalar loads. */
inline accv_t load_row_masked(__global const real_t *row, int col, int stride, int width,
                              __global const real_t *buffer_begin, __global const real_t *buffer_end)
{
    if (stride == 1 && row + col >= buffer_begin && row + col + VEC <= buffer_end) {
        const maskv_t lane = CAT(convert_, CAT(MASK_NAME, VEC))(CAT(vload, VEC)(0, lane_ids)) + (maskv_t)col;
        return select((accv_t)0, VLOAD(VEC, row + col), lane >= (maskv_t)0 && lane < (maskv_t)width);
    }
    acc_t values[VEC];
    #pragma unroll
    for (int j = 0; j < VEC; ++j) {
        const int c = col + j * stride;
        values[j] = (c >= 0 && c < width) ? (acc_t)LOAD(row, c) : (acc_t)0;
    }
    return CAT(vload, VEC)(0, values);
}

__kernel void conv2d_tiled(
    __global const real_t *restrict in, const int in_offset,
    __global const real_t *restrict weight, const int weight_offset,
    __global const real_t *restrict bias, const int bias_offset, const int has_bias,
    __global real_t *restrict out, const int out_offset,
    const int N, const int Ci, const int Hin, const int Win,
    const int Co, const int R, const int S, const int Hout, const int Wout, const int groups,
    const int stride_h, const int stride_w, const int offset_h, const int offset_w,
    const int dil_h, const int dil_w,
    const int ws_group, const int ws_co, const int ws_ci, const int ws_r, const int ws_s)
{
    const int co_blocks = DIV_UP(Co, BLOCK_K);
    const int q0 = get_global_id(0) * VEC;
    const int p0 = get_global_id(1) * BLOCK_P;
    int z = get_global_id(2);
    const int cb = z % co_blocks;
    z /= co_blocks;
    const int g = z % groups;
    const int n = z / groups;
    if (q0 >= Wout || p0 >= Hout || n >= N)
        return;
    const int co0 = cb * BLOCK_K;
    const int co_count = min(BLOCK_K, Co - co0);

    accv_t acc[BLOCK_K][BLOCK_P];
    #pragma unroll
    for (int i = 0; i < BLOCK_K; ++i)
        #pragma unroll
        for (int b = 0; b < BLOCK_P; ++b)
            acc[i][b] = (accv_t)0;

    /* Channels past Co repeat the last real one, so the loop needs no branch; they are not stored. */
    int weight_co[BLOCK_K];
    #pragma unroll
    for (int i = 0; i < BLOCK_K; ++i)
        weight_co[i] = weight_offset + g * ws_group + min(co0 + i, Co - 1) * ws_co;

    const int plane = Hin * Win;
    __global const real_t *in_begin = in + in_offset;
    __global const real_t *in_end = in_begin + N * groups * Ci * plane;
    const int col_first = q0 * stride_w + offset_w;
    /* Columns this tile reads for tap s: col_first + s*dil_w + j*stride_w, j < VEC. */
    const bool unit_stride = stride_w == 1;
    for (int ci = 0; ci < Ci; ++ci) {
        __global const real_t *in_plane = in + in_offset + (n * groups * Ci + g * Ci + ci) * plane;
        for (int r = 0; r < R; ++r) {
            int rows[BLOCK_P];
            #pragma unroll
            for (int b = 0; b < BLOCK_P; ++b)
                rows[b] = (p0 + b) * stride_h + offset_h + r * dil_h;
            for (int s = 0; s < S; ++s) {
                const int col = col_first + s * dil_w;
                const bool interior = unit_stride && col >= 0 && col + VEC <= Win;
                accv_t x[BLOCK_P];
                #pragma unroll
                for (int b = 0; b < BLOCK_P; ++b) {
                    if (rows[b] < 0 || rows[b] >= Hin)
                        x[b] = (accv_t)0;
                    else if (interior)
                        x[b] = VLOAD(VEC, in_plane + rows[b] * Win + col);
                    else
                        x[b] = load_row_masked(in_plane + rows[b] * Win, col, stride_w, Win, in_begin, in_end);
                }
                const int tap = ci * ws_ci + r * ws_r + s * ws_s;
                #pragma unroll
                for (int i = 0; i < BLOCK_K; ++i) {
                    const acc_t w = (acc_t)LOAD(weight, weight_co[i] + tap);
                    #pragma unroll
                    for (int b = 0; b < BLOCK_P; ++b)
                        acc[i][b] = MULADD((accv_t)w, x[b], acc[i][b]);
                }
            }
        }
    }

    /* Constant trip counts with guards inside: indexing acc with a runtime bound would force the whole
     * tile out of registers into memory. */
    const int out_channels = groups * Co;
#pragma unroll
    for (int i = 0; i < BLOCK_K; ++i) {
        const int co = g * Co + co0 + i;
        const acc_t bias_value = (has_bias && i < co_count) ? (acc_t)LOAD(bias, bias_offset + co) : (acc_t)0;
#pragma unroll
        for (int b = 0; b < BLOCK_P; ++b) {
            const int p = p0 + b;
            if (i >= co_count || p >= Hout)
                continue;
            __global real_t *out_row = out + out_offset + ((n * out_channels + co) * Hout + p) * Wout;
            const accv_t result = acc[i][b] + (accv_t)bias_value;
            if (q0 + VEC <= Wout) {
                VSTORE(VEC, result, out_row + q0);
            } else {
                acc_t lanes[VEC];
                CAT(vstore, VEC)(result, 0, lanes);
                for (int j = 0; j < Wout - q0; ++j)
                    STORE(lanes[j], out_row, q0 + j);
            }
        }
    }
}
