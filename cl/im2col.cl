/*
 * im2col: the input unfolded into the GEMM operand of a convolution; used by the benchmark's
 * "CLBlast im2col + GEMM" peer, not by clconv's own algorithms.
 *   col[n, (c*R + r)*S + s, p*Q + q] = x[n, c, p*stride_h - pad_top + r*dil_h, q*stride_w - pad_left + s*dil_w]
 * (zero where the tap falls in the padding). x: N, C, H, W; col: N, C*R*S, P*Q.
 *
 * NDRange: dim0 = P*Q, dim1 = C*R*S, dim2 = N.
 */
#include "common.h"

__kernel void im2col(__global const real_t *restrict x, __global real_t *restrict col,
                     const int N, const int C, const int H, const int W, const int R, const int S,
                     const int P, const int Q, const int stride_h, const int stride_w,
                     const int pad_top, const int pad_left, const int dil_h, const int dil_w)
{
    const int pq = get_global_id(0);
    const int crs = get_global_id(1);
    const int n = get_global_id(2);
    if (pq >= P * Q || crs >= C * R * S || n >= N)
        return;
    const int s = crs % S, r = (crs / S) % R, c = crs / (R * S);
    const int h = (pq / Q) * stride_h - pad_top + r * dil_h;
    const int w = (pq % Q) * stride_w - pad_left + s * dil_w;
    const bool inside = h >= 0 && h < H && w >= 0 && w < W;
    const acc_t value = inside ? (acc_t)LOAD(x, ((n * C + c) * H + h) * W + w) : (acc_t)0;
    STORE(value, col, (n * C * R * S + crs) * P * Q + pq);
}
