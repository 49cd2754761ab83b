/*
 * Vectors of VEC lanes running along a tensor row (VEC must be 2, 4, 8 or 16; include common.h first).
 *
 * accv_t is a VEC-vector of acc_t. Loads take a column stride of 1 (consecutive elements) or 2 (every
 * other element, the even lanes of two consecutive vectors); other strides fall back to one load per
 * lane. Masked loads zero the lanes whose column lies outside [0, width) or whose index is not below
 * lanes_valid: a masked lane must be zero, not whatever memory holds (0 * Inf would be NaN).
 */
#ifndef CLCONV_VECTOR_H
#define CLCONV_VECTOR_H

#if VEC != 2 && VEC != 4 && VEC != 8 && VEC != 16
#error "VEC must be 2, 4, 8 or 16"
#endif

typedef CAT(ACC_NAME, VEC) accv_t;
/* select() needs an integer mask with lanes as wide as the data's. */
#if REAL_BITS == 64
#define MASK_NAME long
#else
#define MASK_NAME int
#endif
typedef CAT(MASK_NAME, VEC) maskv_t;

/* The lanes of value where keep is set, zero elsewhere: select((accv_t)0, value, keep), which the OpenCL C
 * vector ?: is defined to equal, written as ?: because compilers turn that into one blend, where PyPI's
 * PoCL 3.0 calls its kernel library for select() and spills the tile's registers around every call. */
#define KEEP_LANES(value, keep) ((keep) ? (value) : (accv_t)0)

/* The lane indices 0, 1, ..., VEC-1, as a literal: built from a table with vloadn and convert_, they were
 * two kernel-library calls per use on PyPI's PoCL 3.0, which does not inline those. */
#if VEC == 2
#define LANE_INDICES (maskv_t)(0, 1)
#elif VEC == 4
#define LANE_INDICES (maskv_t)(0, 1, 2, 3)
#elif VEC == 8
#define LANE_INDICES (maskv_t)(0, 1, 2, 3, 4, 5, 6, 7)
#else
#define LANE_INDICES (maskv_t)(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15)
#endif
inline maskv_t lane_index(void)
{
    return LANE_INDICES;
}

/* Lane j of x's lanes (j + k) mod VEC, for k known at compile time: one permute, its indices a constant. */
#define LANE_INDICES_TYPE CAT(CAT(u, MASK_NAME), VEC)
#define ROTATED_INDICES(k) CAT(as_, LANE_INDICES_TYPE)((LANE_INDICES + (maskv_t)(k)) & (maskv_t)(VEC - 1))
#define ROTATE_LANES(x, k) ((k) % VEC == 0 ? (x) : shuffle((x), ROTATED_INDICES(k)))

/* (start + j) % m in lane j, for start >= 0 and m >= 1: one scalar division and a conditional subtraction per
 * m below VEC, where a vector % is a division per lane (16 of them at every work-item's start, which cost
 * more than the main loop of a small weight gradient). */
inline maskv_t lanes_mod(int start, int m)
{
    maskv_t q = lane_index() + (maskv_t)(start % m);
    for (int k = 0; k * m < VEC - 1; ++k)
        q = q >= (maskv_t)m ? q - (maskv_t)m : q;
    return q;
}

/* COL_STRIDE, when 1 or 2, is the column stride fixed at compile time, so that the loads inside the hot
 * loops carry no branch on it; 0 means the kernel reads the stride from its argument. */
#ifndef COL_STRIDE
#define COL_STRIDE 0
#endif
#define COLUMN_STRIDE(runtime_stride) (COL_STRIDE ? COL_STRIDE : (runtime_stride))

/* Elements a vector load at column stride 1 or 2 reads. */
#define LOAD_SPAN(stride) ((stride) == 1 ? VEC : 2 * VEC)

/* VEC lanes from p, p + stride, ... for stride 1 or 2; reads LOAD_SPAN(stride) elements, unchecked. */
inline accv_t load_lanes(__global const real_t *p, int stride)
{
    if (stride == 1)
        return VLOAD(VEC, p);
    const accv_t low = VLOAD(VEC, p);
    const accv_t high = VLOAD(VEC, p + VEC);
    return (accv_t)(low.even, high.even);
}

/* Lanes j < lanes_valid of row[col + j*stride] where that column is in [0, width), zero elsewhere.
 * One or two vector loads when every element they read lies in [buffer_begin, buffer_end). */
inline accv_t load_lanes_masked(__global const real_t *row, int col, int stride, int width, int lanes_valid,
                                __global const real_t *buffer_begin, __global const real_t *buffer_end)
{
    if (stride <= 2 && row + col >= buffer_begin && row + col + LOAD_SPAN(stride) <= buffer_end) {
        const maskv_t lane = lane_index();
        const maskv_t column = lane * (maskv_t)stride + (maskv_t)col;
        const maskv_t keep = column >= (maskv_t)0 && column < (maskv_t)width && lane < (maskv_t)lanes_valid;
        return KEEP_LANES(load_lanes(row + col, stride), keep);
    }
    acc_t values[VEC];
    for (int j = 0; j < VEC; ++j) {
        const int c = col + j * stride;
        values[j] = (j < lanes_valid && c >= 0 && c < width) ? (acc_t)LOAD(row, c) : (acc_t)0;
    }
    return CAT(vload, VEC)(0, values);
}

/* VEC consecutive elements from p, with the lanes whose keep is false set to zero. One vector load when
 * all of them lie in [buffer_begin, buffer_end), one load per kept lane otherwise. */
inline accv_t load_lanes_kept(__global const real_t *p, maskv_t keep,
                              __global const real_t *buffer_begin, __global const real_t *buffer_end)
{
    if (p >= buffer_begin && p + VEC <= buffer_end)
        return KEEP_LANES(VLOAD(VEC, p), keep);
    MASK_NAME kept[VEC];
    CAT(vstore, VEC)(keep, 0, kept);
    acc_t values[VEC];
    for (int j = 0; j < VEC; ++j)
        values[j] = kept[j] ? (acc_t)LOAD(p, j) : (acc_t)0;
    return CAT(vload, VEC)(0, values);
}

/* The sums of the even lanes and of the odd lanes, in a fixed order: halves added pairwise (lanes j and
 * j + VEC/2 first, which keeps each lane's parity), a few vector adds instead of VEC - 2 scalar ones. */
inline CAT(ACC_NAME, 2) lane_pair_sums(accv_t v)
{
#if VEC == 16
    const CAT(ACC_NAME, 8) v8 = v.lo + v.hi;
#elif VEC == 8
    const CAT(ACC_NAME, 8) v8 = v;
#endif
#if VEC >= 8
    const CAT(ACC_NAME, 4) v4 = v8.lo + v8.hi;
#elif VEC == 4
    const CAT(ACC_NAME, 4) v4 = v;
#endif
#if VEC >= 4
    return v4.lo + v4.hi;
#else
    return v;
#endif
}

/* Sum of the lanes in a fixed order (the pair sums added), which cost as much as the whole main loop on
 * 7 x 7 planes when added one lane at a time. */
inline acc_t lane_sum(accv_t v)
{
    const CAT(ACC_NAME, 2) v2 = lane_pair_sums(v);
    return v2.lo + v2.hi;
}

#endif /* CLCONV_VECTOR_H */
