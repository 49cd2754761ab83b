/*
 * Gradient with respect to the bias, deterministic:
 *   grad_bias[k] = sum_{n<N, p<P, q<Q} grad_output[n,k,p,q]      (grad_output: N, K, P, Q)
 *
 * As in conv2d_grad_weight_direct.cl the batch is cut into `splits` fixed
 * chunks; each work-item sums one chunk of one channel in a fixed order and
 * writes grad_bias directly (one chunk) or an acc_t partial [split][K] that
 * reduce_partials.cl adds in split order.
 *
 * NDRange: dim0 = K (rounded up to the work-group size), dim1 = splits.
 */
#include "common.h"

__kernel void conv2d_grad_bias_direct(
    __global const real_t *restrict grad_output, const int grad_output_offset,
    __global acc_t *restrict partial,
    __global real_t *restrict grad_bias, const int grad_bias_offset,
    const int n_per_split, const int splits, const int N, const int K, const int PQ)
{
    const int k = get_global_id(0);
    const int split = get_global_id(1);
    if (k >= K)
        return;
    const int n_begin = split * n_per_split;
    const int n_end = min(N, n_begin + n_per_split);
    acc_t total = (acc_t)0;
    for (int n = n_begin; n < n_end; ++n) {
        const int plane = grad_output_offset + (n * K + k) * PQ;
        for (int i = 0; i < PQ; ++i)
            total += (acc_t)LOAD(grad_output, plane + i);
    }
    if (splits == 1)
        STORE(total, grad_bias, grad_bias_offset + k);
    else
        partial[split * K + k] = total;
}
