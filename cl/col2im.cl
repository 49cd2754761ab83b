/*
 * col2im: the adjoint of im2col.cl, written as a gather (no atomics); used by the benchmark's
 * "CLBlast im2col + GEMM" peer for the input gradient.
 *   grad_input[n, c, h, w] = sum over (r, s) and the (p, q) with h = p*stride_h - pad_top + r*dil_h and
 *                            w = q*stride_w - pad_left + s*dil_w of col[n, (c*R + r)*S + s, p*Q + q]
 * col: N, C*R*S, P*Q; grad_input: N, C, H, W.
 *
 * NDRange: dim0 = W, dim1 = H, dim2 = N*C.
 */
#include "common.h"

__kernel void col2im(__global const real_t *restrict col, __global real_t *restrict grad_input,
                     const int N, const int C, const int H, const int W, const int R, const int S,
                     const int P, const int Q, const int stride_h, const int stride_w,
                     const int pad_top, const int pad_left, const int dil_h, const int dil_w)
{
    const int w = get_global_id(0);
    const int h = get_global_id(1);
    const int nc = get_global_id(2);
    if (w >= W || h >= H || nc >= N * C)
        return;
    const int n = nc / C, c = nc % C;
    acc_t total = (acc_t)0;
    for (int r = 0; r < R; ++r) {
        const int ph = h + pad_top - r * dil_h;
        if (ph < 0 || ph % stride_h != 0 || ph / stride_h >= P)
            continue;
        for (int s = 0; s < S; ++s) {
            const int qw = w + pad_left - s * dil_w;
            if (qw < 0 || qw % stride_w != 0 || qw / stride_w >= Q)
                continue;
            total += (acc_t)LOAD(col, (n * C * R * S + (c * R + r) * S + s) * P * Q + (ph / stride_h) * Q + qw / stride_w);
        }
    }
    STORE(total, grad_input, ((n * C + c) * H + h) * W + w);
}
