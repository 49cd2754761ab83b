/*
 * Gradient with respect to the weights with the output channels in the vector lanes (the idea of oneDNN's
 * blocked layouts, here for grad_output alone):
 *   grad_weight[k,c,r,s] = sum_{n<N, p<P, q<Q} grad_output[n,k,p,q] * x[n, g*Cg+c, h, w]
 * with g = k / Kg, h = p*stride_h - pad_top + r*dil_h, w = q*stride_w - pad_left + s*dil_w, read from
 * grad_output in (N, P, Q, K) memory, so that one position's VEC consecutive output channels are one vector:
 * a channels-last grad_output as it is, any other transposed there for each call (clconv/algorithms/tiled.py).
 * x is read in (N, C, H, W) memory, or with X_CHANNELS_LAST in its channels-last (N, H, W, C) memory;
 * grad_weight keeps its layout (common.h).
 *
 * Each work-item owns BLOCK_K vectors of VEC consecutive output channels of one group x BLOCK_C input
 * channels, at one tap (r, s): every output position loads BLOCK_K grad_output vectors and broadcasts
 * BLOCK_C input elements against them, BLOCK_K*BLOCK_C vector multiply-adds. Against
 * conv2d_grad_weight_tiled.cl, whose vectors run along the positions: no lane masks (the positions at which
 * the tap reads inside the input form a rectangle of output rows and columns, and only that is walked, so
 * padding costs nothing), every lane used whatever the plane's size, and no lanes added up at the end
 * (each lane is a weight of its own).
 *
 * The group's output channels must be a multiple of VEC (the host checks). A group's last block of vectors
 * may be short: its vectors past the group's end repeat the last one, and are not stored; likewise input
 * channels past the group's end repeat its last one. The batch is cut into `splits` chunks as in the tiled
 * kernel (partial sums added in split order by reduce_partials.cl); within a chunk images, rows and columns
 * are summed in ascending order: repeated runs are bit-identical.
 *
 * NDRange: dim0 = DIV_UP(Cg, BLOCK_C) * R * S, dim1 = groups * DIV_UP(Kg, VEC * BLOCK_K), dim2 = splits.
 */
#include "common.h"

#ifndef VEC
#define VEC 16
#endif
#ifndef BLOCK_K
#define BLOCK_K 4
#endif
#ifndef BLOCK_C
#define BLOCK_C 6
#endif
#include "vector.h"

__kernel void conv2d_grad_weight_channel_lanes(
    GRAD_WEIGHT_PARAMS)
{
    const int Cg = C / groups;
    const int Kg = K / groups;
    const int c_blocks = DIV_UP(Cg, BLOCK_C);
    const int k_blocks = DIV_UP(Kg, VEC * BLOCK_K);
    int t = get_global_id(0);
    const int s = t % S;
    t /= S;
    const int r = t % R;
    const int c_block = t / R;
    const int g = get_global_id(1) / k_blocks;
    const int k0 = (get_global_id(1) % k_blocks) * VEC * BLOCK_K;  /* within the group */
    const int split = get_global_id(2);
    if (c_block >= c_blocks || g >= groups || split >= splits)
        return;
    const int c0 = c_block * BLOCK_C;

    accv_t acc[BLOCK_C][BLOCK_K];
#pragma unroll
    for (int j = 0; j < BLOCK_C; ++j)
#pragma unroll
        for (int v = 0; v < BLOCK_K; ++v)
            acc[j][v] = (accv_t)0;

    /* The output positions at which tap (r, s) reads inside the input: rows [p_begin, p_end), columns
     * [q_begin, q_end). */
    const int h_shift = r * dil_h - pad_top;
    const int w_shift = s * dil_w - pad_left;
    const int p_begin = FIRST_INSIDE(h_shift, stride_h);
    const int p_end = min(P, FIRST_PAST(h_shift, stride_h, H));
    const int q_begin = FIRST_INSIDE(w_shift, stride_w);
    const int q_end = min(Q, FIRST_PAST(w_shift, stride_w, W));
    const int col_stride = COLUMN_STRIDE(stride_w);

    int x_channel[BLOCK_C], grad_lane[BLOCK_K];
#pragma unroll
    for (int j = 0; j < BLOCK_C; ++j)
        x_channel[j] = (g * Cg + min(c0 + j, Cg - 1)) * X_CHANNEL_STRIDE;
    const int last_vector = Kg - VEC;
#pragma unroll
    for (int v = 0; v < BLOCK_K; ++v)
        grad_lane[v] = g * Kg + min(k0 + v * VEC, last_vector);

    const int n_begin = split * n_per_split;
    const int n_end = min(N, n_begin + n_per_split);
    for (int n = n_begin; n < n_end; ++n) {
        __global const real_t *x_image = x + x_offset + n * C * H * W + w_shift * X_PIXEL_STRIDE;
        for (int p = p_begin; p < p_end; ++p) {
            __global const real_t *x_row = x_image + (p * stride_h + h_shift) * W * X_PIXEL_STRIDE;
            __global const real_t *grad_row = grad_output + grad_output_offset + ((n * P + p) * Q) * K;
            for (int q = q_begin; q < q_end; ++q) {
                accv_t grad[BLOCK_K];
#pragma unroll
                for (int v = 0; v < BLOCK_K; ++v)
                    grad[v] = VLOAD(VEC, grad_row + q * K + grad_lane[v]);
                const int w = q * col_stride * X_PIXEL_STRIDE;
#pragma unroll
                for (int j = 0; j < BLOCK_C; ++j) {
                    const accv_t input = (accv_t)((acc_t)LOAD(x_row + x_channel[j], w));
#pragma unroll
                    for (int v = 0; v < BLOCK_K; ++v)
                        acc[j][v] = MULADD(grad[v], input, acc[j][v]);
                }
            }
        }
    }

    const int weight_count = K * Cg * R * S;
#pragma unroll
    for (int j = 0; j < BLOCK_C; ++j) {
        const int c = c0 + j;
        if (c >= Cg)
            continue;
#pragma unroll
        for (int v = 0; v < BLOCK_K; ++v) {
            const int k_first = k0 + v * VEC;
            if (k_first >= Kg)
                continue;
            /* Lanes stored one by one from a private copy: a union of the vector and its lanes (which spares
             * PyPI's PoCL 3.0 a library call per vstoren) made PoCL 3.1 keep the accumulators in memory
             * throughout the loop above, 2.2x slower (ResNet-18 layer4.conv, Zen 5). */
            acc_t sums[VEC];
            CAT(vstore, VEC)(acc[j][v], 0, sums);
            for (int lane = 0; lane < VEC; ++lane) {
                const int index = (((g * Kg + k_first + lane) * Cg + c) * R + r) * S + s;
                if (splits == 1)
                    STORE(sums[lane], grad_weight, grad_weight_offset + index);
                else
                    partial[split * weight_count + index] = sums[lane];
            }
        }
    }
}
