/*
 * A channels-last tensor copied into the kernels' channels-first layout: out[n, c, s] = in[n, s, c], in
 * (N, S, C), out (N, C, S), S the product of the spatial sizes, so that one kernel serves NLC, NHWC and NDHWC
 * inputs (clconv/channels_last.py).
 *
 * Each work-item moves one block of LANES channels x LANES positions: LANES vector loads along C, a transpose
 * in registers, LANES vector stores along S. The divisions that place a block are paid once per block: one
 * element per work-item spent its time in integer divisions on CPUs (see unfold_depth.cl), and a block moved
 * element by element through a private array ran 2-4x slower than the registers on PoCL 3.1 and Intel's CPU
 * runtime. Blocks at the edges of C and S move only what lies inside, element by element, as every block does
 * with VECTOR_TRANSPOSE=0 (the variant a device falls back to where the vector one fails its check).
 *
 * LANES: 8 or 4 (4 where the compiler cannot build 8 lanes of acc_t, see DeviceInfo.vector_bits_limit).
 * NDRange: dim0 = DIV_UP(S, LANES), dim1 = N * DIV_UP(C, LANES) (each rounded up to the work-group shape).
 */
#include "common.h"

#ifndef LANES
#define LANES 8
#endif
#ifndef VECTOR_TRANSPOSE
#define VECTOR_TRANSPOSE 1
#endif

#define VECTOR CAT(ACC_NAME, LANES)
/* FOR_LANES(op) applies op to every lane index; COLUMN(i) gathers lane i of every loaded row. */
#if LANES == 8
#define FOR_LANES(op) op(0) op(1) op(2) op(3) op(4) op(5) op(6) op(7)
#define COLUMN(i) ((VECTOR)(row0.s##i, row1.s##i, row2.s##i, row3.s##i, row4.s##i, row5.s##i, row6.s##i, row7.s##i))
#elif LANES == 4
#define FOR_LANES(op) op(0) op(1) op(2) op(3)
#define COLUMN(i) ((VECTOR)(row0.s##i, row1.s##i, row2.s##i, row3.s##i))
#else
#error "LANES must be 4 or 8"
#endif
#define LOAD_ROW(i) const VECTOR row##i = VLOAD(LANES, in + from + i * C);
#define STORE_COLUMN(i) VSTORE(LANES, COLUMN(i), out + to + i * S);

__kernel void channels_first(
    __global const real_t *restrict in, const int in_offset,
    __global real_t *restrict out, const int out_offset,
    const int N, const int S, const int C)
{
    const int s_block = get_global_id(0);
    const int nc_block = get_global_id(1);
    const int c_blocks = DIV_UP(C, LANES);
    if (s_block * LANES >= S || nc_block >= N * c_blocks)
        return;
    const int n = nc_block / c_blocks;
    const int c0 = (nc_block - n * c_blocks) * LANES, s0 = s_block * LANES;
    const int s_count = min(LANES, S - s0), c_count = min(LANES, C - c0);
    const int from = in_offset + (n * S + s0) * C + c0;  /* in[n, s0, c0] */
    const int to = out_offset + (n * C + c0) * S + s0;   /* out[n, c0, s0] */
#if VECTOR_TRANSPOSE
    if (s_count == LANES && c_count == LANES) {
        FOR_LANES(LOAD_ROW)
        FOR_LANES(STORE_COLUMN)
        return;
    }
#endif
    for (int c = 0; c < c_count; ++c)
        for (int s = 0; s < s_count; ++s)
            STORE(LOAD(in, from + s * C + c), out, to + c * S + s);
}
