/*
 * Forward pass, direct algorithm:
 *   y[n,k,p,q] = bias[k] + sum_{c<Cg, r<R, s<S} x[n, g*Cg+c, h, w] * weight[k,c,r,s]
 * with g = k / Kg, h = p*stride_h - pad_top + r*dil_h, w = q*stride_w - pad_left + s*dil_w
 * (layouts and padding rules in common.h).
 *
 * Each work-item owns a register tile of BLOCK_K output channels x BLOCK_Q
 * consecutive output columns of one output row: every input value loaded is
 * used BLOCK_K times and every weight BLOCK_Q times. No local memory, so it
 * suits CPUs and GPUs alike.
 *
 * NDRange: dim0 = ceil(Q / BLOCK_Q) (rounded up to the work-group size),
 *          dim1 = P, dim2 = N * groups * ceil(Kg / BLOCK_K).
 */
#include "common.h"

#ifndef BLOCK_K
#define BLOCK_K 4
#endif
#ifndef BLOCK_Q
#define BLOCK_Q 4
#endif

__kernel void conv2d_forward_direct(
    __global const real_t *restrict x, const int x_offset,
    __global const real_t *restrict weight, const int weight_offset,
    __global const real_t *restrict bias, const int bias_offset, const int has_bias,
    __global real_t *restrict y, const int y_offset,
    CONV_GEOMETRY_PARAMS)
{
    const int Cg = C / groups;
    const int Kg = K / groups;
    const int k_blocks = DIV_UP(Kg, BLOCK_K);
    const int q0 = get_global_id(0) * BLOCK_Q;
    const int p = get_global_id(1);
    int z = get_global_id(2);
    const int kb = z % k_blocks;
    z /= k_blocks;
    const int g = z % groups;
    const int n = z / groups;
    if (q0 >= Q || n >= N)
        return;
    const int k0 = g * Kg + kb * BLOCK_K;
    const int k_count = min(BLOCK_K, Kg - kb * BLOCK_K);

    acc_t acc[BLOCK_K][BLOCK_Q];
    for (int i = 0; i < BLOCK_K; ++i)
        for (int j = 0; j < BLOCK_Q; ++j)
            acc[i][j] = (acc_t)0;

    const int h_first = p * stride_h - pad_top;
    const int w_first = q0 * stride_w - pad_left;
    const int weight_k_stride = Cg * R * S;
    for (int c = 0; c < Cg; ++c) {
        const int x_plane = x_offset + (n * C + g * Cg + c) * H * W;
        const int weight_base = weight_offset + (k0 * Cg + c) * R * S;
        for (int r = 0; r < R; ++r) {
            const int h = h_first + r * dil_h;
            if (h < 0 || h >= H)
                continue;
            const int x_row = x_plane + h * W;
            for (int s = 0; s < S; ++s) {
                acc_t x_values[BLOCK_Q];
                for (int j = 0; j < BLOCK_Q; ++j) {
                    const int w = w_first + j * stride_w + s * dil_w;
                    x_values[j] = (w >= 0 && w < W) ? (acc_t)LOAD(x, x_row + w) : (acc_t)0;
                }
                for (int i = 0; i < BLOCK_K; ++i) {
                    const acc_t weight_value =
                        i < k_count ? (acc_t)LOAD(weight, weight_base + i * weight_k_stride + r * S + s) : (acc_t)0;
                    for (int j = 0; j < BLOCK_Q; ++j)
                        acc[i][j] += weight_value * x_values[j];
                }
            }
        }
    }

    for (int i = 0; i < k_count; ++i) {
        const acc_t bias_value = has_bias ? (acc_t)LOAD(bias, bias_offset + k0 + i) : (acc_t)0;
        const int y_row = y_offset + ((n * K + k0 + i) * P + p) * Q;
        for (int j = 0; j < BLOCK_Q; ++j)
            if (q0 + j < Q)
                STORE(acc[i][j] + bias_value, y, y_row + q0 + j);
    }
}
