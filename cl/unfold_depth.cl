/*
 * The input of a 3-D layer unfolded along depth, so that one 2-D layer computes the 3-D one
 * (clconv/params_3d.py):
 *   cols[n, d, c, t, i] = in[n, c, d*stride_d - pad_front + t*dil_d, i]   (zero where that depth is outside [0, D))
 * in: (N, C, D, plane), or with X_CHANNELS_LAST its channels-last (N, D, plane, C) memory, read there;
 * cols: (N, D_out, C, T, plane); i runs over one H x W plane (`plane` elements).
 *
 * Each work-item copies one whole plane, a contiguous run of cols (and of a channels-first input; a channels-last
 * one's plane lies C elements apart, the neighbouring work-items' channels between): indexing every element
 * separately spent its time in integer divisions, which CPUs do not vectorise (20x slower on PoCL 3.1).
 *
 * NDRange: dim0 = C * T, dim1 = N * D_out (each rounded up to the work-group shape).
 */
#include "common.h"

__kernel void unfold_depth(
    __global const real_t *restrict in, const int in_offset,
    __global real_t *restrict cols, const int cols_offset,
    DEPTH_PARAMS)
{
    const int ct = get_global_id(0);
    const int nd = get_global_id(1);
    if (ct >= C * T || nd >= N * D_out)
        return;
    const int t = ct % T, c = ct / T;
    const int d = nd % D_out, n = nd / D_out;
    const int depth = d * stride_d - pad_front + t * dil_d;
    const int to = cols_offset + (nd * C * T + ct) * plane;
    if (depth >= 0 && depth < D) {
#if defined(X_CHANNELS_LAST) && X_CHANNELS_LAST
        const int from = in_offset + (n * D + depth) * plane * C + c;
        for (int i = 0; i < plane; ++i)
            STORE(LOAD(in, from + i * C), cols, to + i);
#else
        const int from = in_offset + ((n * C + c) * D + depth) * plane;
        for (int i = 0; i < plane; ++i)
            STORE(LOAD(in, from + i), cols, to + i);
#endif
    } else {
        for (int i = 0; i < plane; ++i)
            STORE((acc_t)0, cols, to + i);
    }
}
