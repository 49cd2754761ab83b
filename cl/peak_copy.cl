/*
 * Global memory bandwidth of a device, measured as STREAM's copy; `clconv bench` draws its roofline with
 * it. dst[i] = src[i] over two buffers much larger than the last-level cache, one VEC-float vector per
 * work-item. Bytes counted: the bytes read plus the bytes written, 2 * the size of a buffer. (A CPU reads
 * each line of dst into its cache before writing it; like STREAM, that traffic is not counted, so the
 * figure is what a kernel that reads and writes as much can expect.)
 *
 * NDRange: dim0 = the buffers' length in VEC-float vectors.
 */
#include "common.h"

/* Floats per vector (4, 8 or 16), default 16. */
#ifndef VEC
#define VEC 16
#endif

typedef CAT(float, VEC) floatv_t;

__kernel void peak_copy(__global const floatv_t *restrict src, __global floatv_t *restrict dst)
{
    const size_t i = get_global_id(0);
    dst[i] = src[i];
}
