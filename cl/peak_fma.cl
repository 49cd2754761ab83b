/*
 * Peak multiply-add throughput of a device, measured as clpeak does; `clconv bench` draws its roofline
 * with it. Every work-item runs CHAINS independent chains of VEC-lane multiply-adds,
 *   acc[c] = acc[c] * multiplier + addend        (iterations steps per chain)
 * Each step of a chain waits only for that chain's previous step, so CHAINS chains in flight hide the
 * latency of the multiply-add units and keep all of them busy. FLOPs counted: 2 per lane per step,
 *   global size * iterations * CHAINS * VEC * 2.
 * The step is written a * b + c, contracted into one fused multiply-add (FP_CONTRACT, on by default and
 * set here), not fma() or mad(): PyPI's PoCL 3.0 compiles those into a call to its kernel library per
 * vector, which measured 6-10x below the contracted form on the same CPU; elsewhere the three matched.
 * With 0 < multiplier < 1 every chain converges to addend / (1 - multiplier): no overflow and no
 * denormals (which CPUs process far more slowly). Multiplier and addend arrive as arguments so that the
 * compiler cannot fold the loop, and every lane is stored so that it cannot drop one.
 *
 * REAL_BITS: 32 measures float, 64 double. 16 is not measured: clconv's fp16 stores half and computes in
 * float, so its compute peak is the float one.
 * NDRange: dim0 = any multiple of the work-group size. out: VEC acc_t per work-item.
 */
#include "common.h"

#pragma OPENCL FP_CONTRACT ON

#if REAL_BITS == 16
#error "peak_fma measures float (REAL_BITS 32) or double (REAL_BITS 64) arithmetic"
#endif

/* Lanes per vector (4, 8 or 16): the device's vector register width, default 8. */
#ifndef VEC
#define VEC 8
#endif
/* Independent chains per work-item, default 8: at least the units' count times their latency in steps. */
#ifndef CHAINS
#define CHAINS 8
#endif

typedef CAT(ACC_NAME, VEC) accv_t;

__kernel void peak_fma(__global acc_t *restrict out, const acc_t multiplier, const acc_t addend,
                       const int iterations)
{
    const acc_t start = (acc_t)get_global_id(0) * addend;
    accv_t acc[CHAINS];
    for (int c = 0; c < CHAINS; ++c)
        acc[c] = (accv_t)(start + (acc_t)c);
    const accv_t m = (accv_t)multiplier;
    const accv_t a = (accv_t)addend;
    for (int i = 0; i < iterations; ++i) {
#pragma unroll
        for (int c = 0; c < CHAINS; ++c)
            acc[c] = acc[c] * m + a;
    }
    accv_t total = acc[0];
    for (int c = 1; c < CHAINS; ++c)
        total += acc[c];
    CAT(vstore, VEC)(total, get_global_id(0), out);
}
