/*
 * The inverse of unfold_depth.cl's unfolding, for the input gradient of a 3-D layer (clconv/params_3d.py):
 * every input frame gathers the unfolded values that were copied from it,
 *   out[n, c, d, i] = bias[c] + sum_{t < T} cols[n, d_out, c, t, i]   over the t with
 *   d + pad_front - t*dil_d = d_out*stride_d, 0 <= d_out < D_out,
 * summed in order of t, so the result does not depend on scheduling. cols: (N, D_out, C, T, plane),
 * out: (N, C, D, plane). With has_bias, bias[c] is added (the forward pass of a transposed 3-D convolution).
 *
 * NDRange: dim0 = plane, dim1 = C, dim2 = N * D (each rounded up to the work-group shape).
 */
#include "common.h"

__kernel void fold_depth(
    __global const real_t *restrict cols, const int cols_offset,
    __global const real_t *restrict bias, const int bias_offset, const int has_bias,
    __global real_t *restrict out, const int out_offset,
    DEPTH_PARAMS)
{
    const int i = get_global_id(0);
    const int c = get_global_id(1);
    const int nd = get_global_id(2);
    if (i >= plane || c >= C || nd >= N * D)
        return;
    const int d = nd % D, n = nd / D;
    acc_t total = has_bias ? (acc_t)LOAD(bias, bias_offset + c) : (acc_t)0;
    for (int t = 0; t < T; ++t) {
        const int shifted = d + pad_front - t * dil_d;
        if (shifted < 0 || shifted % stride_d != 0 || shifted / stride_d >= D_out)
            continue;
        const int d_out = shifted / stride_d;
        total += (acc_t)LOAD(cols, cols_offset + (((n * D_out + d_out) * C + c) * T + t) * plane + i);
    }
    STORE(total, out, out_offset + ((n * C + c) * D + d) * plane + i);
}
