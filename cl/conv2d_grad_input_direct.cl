/*
 * Gradient with respect to the input, direct algorithm (a gather, no atomics):
 *   grad_input[n, g*Cg+c, h, w] = sum_{k<Kg, r<R, s<S} grad_output[n, g*Kg+k, p, q] * weight[g*Kg+k, c, r, s]
 * over the (p, q) with h = p*stride_h - pad_top + r*dil_h and w = q*stride_w - pad_left + s*dil_w,
 * i.e. p = (h + pad_top - r*dil_h) / stride_h when that division is exact and 0 <= p < P (same for q).
 * Layouts in common.h.
 *
 * With has_bias, bias[g*Cg+c] is added to every element of channel g*Cg+c: that makes this kernel the
 * forward pass of a transposed convolution (clconv.conv_transpose2d), whose bias has C entries.
 *
 * Each work-item owns BLOCK_C input channels x BLOCK_W consecutive input
 * columns of one input row, so a grad_output value is loaded once per BLOCK_C
 * channels.
 *
 * NDRange: dim0 = ceil(W / BLOCK_W) (rounded up to the work-group size),
 *          dim1 = H, dim2 = N * groups * ceil(Cg / BLOCK_C).
 */
#include "common.h"

#ifndef BLOCK_C
#define BLOCK_C 4
#endif
#ifndef BLOCK_W
#define BLOCK_W 4
#endif

__kernel void conv2d_grad_input_direct(
    __global const real_t *restrict grad_output, const int grad_output_offset,
    __global const real_t *restrict weight, const int weight_offset,
    __global const real_t *restrict bias, const int bias_offset, const int has_bias,
    __global real_t *restrict grad_input, const int grad_input_offset,
    CONV_GEOMETRY_PARAMS)
{
    const int Cg = C / groups;
    const int Kg = K / groups;
    const int c_blocks = DIV_UP(Cg, BLOCK_C);
    const int w0 = get_global_id(0) * BLOCK_W;
    const int h = get_global_id(1);
    int z = get_global_id(2);
    const int cb = z % c_blocks;
    z /= c_blocks;
    const int g = z % groups;
    const int n = z / groups;
    if (w0 >= W || n >= N)
        return;
    const int c_first = cb * BLOCK_C;  /* within the group */
    const int c_count = min(BLOCK_C, Cg - c_first);

    acc_t acc[BLOCK_C][BLOCK_W];
    for (int i = 0; i < BLOCK_C; ++i)
        for (int j = 0; j < BLOCK_W; ++j)
            acc[i][j] = (acc_t)0;

    const int RS = R * S;
    for (int kk = 0; kk < Kg; ++kk) {
        const int k = g * Kg + kk;
        const int grad_output_plane = grad_output_offset + (n * K + k) * P * Q;
        const int weight_base = weight_offset + (k * Cg + c_first) * RS;
        for (int r = 0; r < R; ++r) {
            const int h_shifted = h + pad_top - r * dil_h;
            if (h_shifted < 0 || h_shifted % stride_h != 0)
                continue;
            const int p = h_shifted / stride_h;
            if (p >= P)
                continue;
            const int grad_output_row = grad_output_plane + p * Q;
            for (int s = 0; s < S; ++s) {
                acc_t grad_values[BLOCK_W];
                for (int j = 0; j < BLOCK_W; ++j) {
                    const int w_shifted = w0 + j + pad_left - s * dil_w;
                    const int q = w_shifted / stride_w;
                    const bool hit = w_shifted >= 0 && w_shifted % stride_w == 0 && q < Q;
                    grad_values[j] = hit ? (acc_t)LOAD(grad_output, grad_output_row + q) : (acc_t)0;
                }
                for (int i = 0; i < BLOCK_C; ++i) {
                    const acc_t weight_value =
                        i < c_count ? (acc_t)LOAD(weight, weight_base + i * RS + r * S + s) : (acc_t)0;
                    for (int j = 0; j < BLOCK_W; ++j)
                        acc[i][j] += weight_value * grad_values[j];
                }
            }
        }
    }

    for (int i = 0; i < c_count; ++i) {
        const acc_t bias_value = has_bias ? (acc_t)LOAD(bias, bias_offset + g * Cg + c_first + i) : (acc_t)0;
        const int row = grad_input_offset + ((n * C + g * Cg + c_first + i) * H + h) * W;
        for (int j = 0; j < BLOCK_W; ++j)
            if (w0 + j < W)
                STORE(acc[i][j] + bias_value, grad_input, row + w0 + j);
    }
}
