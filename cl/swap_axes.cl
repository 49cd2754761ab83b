/*
 * A copy of a tensor with its two middle axes swapped: out[a, m, b, e] = in[a, b, m, e], in (A, B, M, E),
 * out (A, M, B, E). A 3-D layer's output and output gradient move between (N, K, D_out, P*Q) and the 2-D
 * layout (N, D_out, K, P*Q) this way (clconv/conv3d.py).
 *
 * NDRange: dim0 = E, dim1 = M, dim2 = A * B (each rounded up to the work-group shape).
 */
#include "common.h"

__kernel void swap_axes(
    __global const real_t *restrict in, const int in_offset,
    __global real_t *restrict out, const int out_offset,
    const int A, const int B, const int M, const int E)
{
    const int e = get_global_id(0);
    const int m = get_global_id(1);
    const int ab = get_global_id(2);
    if (e >= E || m >= M || ab >= A * B)
        return;
    const int b = ab % B, a = ab / B;
    STORE((acc_t)LOAD(in, in_offset + (ab * M + m) * E + e), out, out_offset + ((a * M + m) * B + b) * E + e);
}
