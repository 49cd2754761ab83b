/*
 * A weight (or weight gradient) moved between its layer's layout (K, Cg, R, S) and the phased layer's
 * (K, Cg, phases_h, phases_w, Rp, Sp) (clconv/algorithms/phases.py): tap (r, s) is tap (r / stride_h,
 * s / stride_w) of phase (r mod stride_h, s mod stride_w).
 *   to_phases = 1: phased[k, c, r%sh, s%sw, r/sh, s/sw] = plain[k, c, r, s]   (a weight, for the forward pass)
 *   to_phases = 0: plain[k, c, r, s] = phased[k, c, r%sh, s%sw, r/sh, s/sw]   (the weight gradient)
 * Slots of the phased layout that no tap maps to are neither read nor written.
 *
 * NDRange: dim0 = K * Cg * R * S (rounded up to the work-group size).
 */
#include "common.h"

__kernel void phase_taps(
    __global real_t *restrict plain, const int plain_offset,
    __global real_t *restrict phased, const int phased_offset, const int to_phases,
    const int KC, const int R, const int S, const int stride_h, const int stride_w,
    const int phases_h, const int phases_w, const int Rp, const int Sp)
{
    const int at = get_global_id(0);
    if (at >= KC * R * S)
        return;
    const int s = at % S;
    const int r = (at / S) % R;
    const int kc = at / (R * S);
    const int slot = ((((kc * phases_h + r % stride_h) * phases_w + s % stride_w) * Rp + r / stride_h) * Sp
                      + s / stride_w);
    if (to_phases)
        STORE((acc_t)LOAD(plain, plain_offset + at), phased, phased_offset + slot);
    else
        STORE((acc_t)LOAD(phased, phased_offset + slot), plain, plain_offset + at);
}
