/*
 * What the forward and input-gradient kernels with the channels they write in the lanes share
 * (cl/conv2d_channel_lanes.cl, cl/conv2d_grad_input_channel_lanes.cl); included after vector.h, with BLOCK_K set.
 *
 * FIXED_ROW: a row's geometry compiled in by the host (clconv.algorithms.tiled.fixed_row_defines), so that with
 * the tap loops unrolled (UNROLL_TAPS) every column check is a constant.
 */
#ifndef FIXED_ROW
#define FIXED_ROW 0
#endif
#if FIXED_ROW
#define UNROLL_TAPS _Pragma("unroll")
#else
#define UNROLL_TAPS
#endif

/* One column's multiply-adds: element i of p, broadcast, times each of the BLOCK_K weight vectors, added to the
 * column's accumulators where `inside` (the column reads inside its row). With FIXED_ROW `inside` is a constant and
 * an element outside is left out, as rows outside the image are; otherwise it is read as zero. */
static inline __attribute__((always_inline)) void add_broadcast(accv_t acc[BLOCK_K], const accv_t weight[BLOCK_K],
                                                                __global const real_t *p, const int i,
                                                                const bool inside)
{
#if FIXED_ROW
    if (!inside)
        return;
    const accv_t element = (accv_t)((acc_t)LOAD(p, i));
#else
    const accv_t element = (accv_t)(inside ? (acc_t)LOAD(p, i) : (acc_t)0);
#endif
#pragma unroll
    for (int v = 0; v < BLOCK_K; ++v)
        acc[v] = MULADD(weight[v], element, acc[v]);
}
