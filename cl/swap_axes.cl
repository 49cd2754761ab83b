/*
 * A copy of a tensor with its two middle axes swapped: out[a, m, b, e] = in[a, b, m, e], in (A, B, M, E),
 * out (A, M, B, E). A 3-D layer's output and output gradient move between (N, K, D_out, P*Q) and the 2-D
 * layout (N, D_out, K, P*Q) this way (clconv/plan_3d.py).
 *
 * Each work-item copies one contiguous run of E elements (see unfold_depth.cl for why not one element).
 *
 * NDRange: dim0 = M * B, dim1 = A (each rounded up to the work-group shape).
 */
#include "common.h"

__kernel void swap_axes(
    __global const real_t *restrict in, const int in_offset,
    __global real_t *restrict out, const int out_offset,
    const int A, const int B, const int M, const int E)
{
    const int mb = get_global_id(0);
    const int a = get_global_id(1);
    if (mb >= M * B || a >= A)
        return;
    const int b = mb % B, m = mb / B;
    const int from = in_offset + ((a * B + b) * M + m) * E;
    const int to = out_offset + (a * M * B + mb) * E;
    for (int e = 0; e < E; ++e)
        STORE(LOAD(in, from + e), out, to + e);
}
