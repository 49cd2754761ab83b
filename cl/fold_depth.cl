/*
 * The inverse of unfold_depth.cl's unfolding, for the input gradient of a 3-D layer (clconv/params_3d.py):
 * every input frame gathers the unfolded values that were copied from it,
 *   out[n, c, d, i] = bias[c] + sum_{t < T} cols[n, d_out, c, t, i]   over the t with
 *   d + pad_front - t*dil_d = d_out*stride_d, 0 <= d_out < D_out,
 * summed in order of t, so the result does not depend on scheduling. cols: (N, D_out, C, T, plane),
 * out: (N, C, D, plane). With has_bias, bias[c] is added (the forward pass of a transposed 3-D convolution).
 *
 * Each work-item writes one whole plane, FOLD_CHUNK elements at a time: which taps reach the frame is worked
 * out once per chunk, not per element (integer divisions do not vectorise), and the chunk's sums stay in
 * acc_t registers.
 *
 * NDRange: dim0 = C * D, dim1 = N (each rounded up to the work-group shape).
 */
#include "common.h"

#define FOLD_CHUNK 16

__kernel void fold_depth(
    __global const real_t *restrict cols, const int cols_offset,
    __global const real_t *restrict bias, const int bias_offset, const int has_bias,
    __global real_t *restrict out, const int out_offset,
    DEPTH_PARAMS)
{
    const int cd = get_global_id(0);
    const int n = get_global_id(1);
    if (cd >= C * D || n >= N)
        return;
    const int d = cd % D, c = cd / D;
    const acc_t bias_value = has_bias ? (acc_t)LOAD(bias, bias_offset + c) : (acc_t)0;
    const int to = out_offset + (n * C + c) * D * plane + d * plane;
    for (int i0 = 0; i0 < plane; i0 += FOLD_CHUNK) {
        const int count = min(FOLD_CHUNK, plane - i0);
        acc_t total[FOLD_CHUNK];
        for (int j = 0; j < FOLD_CHUNK; ++j)
            total[j] = bias_value;
        for (int t = 0; t < T; ++t) {
            const int shifted = d + pad_front - t * dil_d;
            if (shifted < 0 || shifted % stride_d != 0 || shifted / stride_d >= D_out)
                continue;
            const int from = cols_offset + (((n * D_out + shifted / stride_d) * C + c) * T + t) * plane + i0;
            if (count == FOLD_CHUNK) {
                for (int j = 0; j < FOLD_CHUNK; ++j)
                    total[j] += (acc_t)LOAD(cols, from + j);
            } else {
                for (int j = 0; j < count; ++j)
                    total[j] += (acc_t)LOAD(cols, from + j);
            }
        }
        for (int j = 0; j < count; ++j)
            STORE(total[j], out, to + i0 + j);
    }
}
