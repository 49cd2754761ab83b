/*
 * Second pass of the split reductions (grad_weight, grad_bias):
 *   out[i] = sum_{split < splits} partial[split * count + i]     (partial: acc_t, out: real_t)
 * summed in split order, so the result does not depend on scheduling.
 *
 * NDRange: dim0 = count (rounded up to the work-group size).
 */
#include "common.h"

__kernel void reduce_partials(
    __global const acc_t *restrict partial, const int count, const int splits,
    __global real_t *restrict out, const int out_offset)
{
    const int i = get_global_id(0);
    if (i >= count)
        return;
    acc_t total = (acc_t)0;
    for (int split = 0; split < splits; ++split)
        total += partial[split * count + i];
    STORE(total, out, out_offset + i);
}
