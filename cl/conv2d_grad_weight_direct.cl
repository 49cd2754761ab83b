/*
 * Gradient with respect to the weights, direct algorithm, deterministic:
 *   grad_weight[k,c,r,s] = sum_{n<N, p<P, q<Q} grad_output[n,k,p,q] * x[n, g*Cg+c, h, w]
 * with g = k / Kg, h = p*stride_h - pad_top + r*dil_h, w = q*stride_w - pad_left + s*dil_w
 * (layouts in common.h).
 *
 * The batch is cut into `splits` fixed chunks of `n_per_split` images so
 * that small weight tensors still give the device enough work-items. Each
 * work-item sums, in a fixed order, one chunk for BLOCK_K output channels of
 * one (c, r, s); with one chunk it writes grad_weight directly, otherwise it
 * writes acc_t partial sums [split][K][Cg][R][S] that reduce_partials.cl adds
 * in split order. No atomics, so repeated runs are bit-identical.
 *
 * NDRange: dim0 = Cg*R*S (rounded up to the work-group size),
 *          dim1 = groups * ceil(Kg / BLOCK_K), dim2 = splits.
 */
#include "common.h"

#ifndef BLOCK_K
#define BLOCK_K 4
#endif

__kernel void conv2d_grad_weight_direct(
    GRAD_WEIGHT_PARAMS)
{
    const int Cg = C / groups;
    const int Kg = K / groups;
    const int k_blocks = DIV_UP(Kg, BLOCK_K);
    const int crs = get_global_id(0);
    const int gk = get_global_id(1);
    const int split = get_global_id(2);
    if (crs >= Cg * R * S)
        return;
    const int s = crs % S;
    const int r = (crs / S) % R;
    const int c = crs / (R * S);
    const int g = gk / k_blocks;
    const int k0 = g * Kg + (gk % k_blocks) * BLOCK_K;
    const int k_count = min(BLOCK_K, g * Kg + Kg - k0);

    /* Output rows/columns whose tap (r, s) lands inside the input. */
    const int h_shift = r * dil_h - pad_top;
    const int w_shift = s * dil_w - pad_left;
    const int p_begin = FIRST_INSIDE(h_shift, stride_h);
    const int p_end = min(P, FIRST_PAST(h_shift, stride_h, H));
    const int q_begin = FIRST_INSIDE(w_shift, stride_w);
    const int q_end = min(Q, FIRST_PAST(w_shift, stride_w, W));

    acc_t acc[BLOCK_K];
    for (int i = 0; i < BLOCK_K; ++i)
        acc[i] = (acc_t)0;

    const int n_begin = split * n_per_split;
    const int n_end = min(N, n_begin + n_per_split);
    const int PQ = P * Q;
    for (int n = n_begin; n < n_end; ++n) {
        const int x_plane = x_offset + (n * C + g * Cg + c) * H * W;
        const int grad_plane = grad_output_offset + (n * K + k0) * PQ;
        for (int p = p_begin; p < p_end; ++p) {
            const int x_row = x_plane + (p * stride_h + h_shift) * W + w_shift;
            const int grad_row = grad_plane + p * Q;
            for (int q = q_begin; q < q_end; ++q) {
                const acc_t x_value = (acc_t)LOAD(x, x_row + q * stride_w);
                for (int i = 0; i < BLOCK_K; ++i)
                    if (i < k_count)
                        acc[i] += (acc_t)LOAD(grad_output, grad_row + i * PQ + q) * x_value;
            }
        }
    }

    const int weight_count = K * Cg * R * S;
    for (int i = 0; i < k_count; ++i) {
        const int index = (k0 + i) * Cg * R * S + crs;
        if (splits == 1)
            STORE(acc[i], grad_weight, grad_weight_offset + index);
        else
            partial[split * weight_count + index] = acc[i];
    }
}
