/*
 * 1x1 layers (stride 1, no padding, one group) as matrix products over their channels (the weight gradient:
 * over its positions too):
 *
 *   out[n, i, j] = bias + sum_{m, r < R} A[n + m, r, i] * B[n + m, r, j]
 *
 *   A[n, r, i] at a + a_offset + n*a_batch + r*a_r + i*a_i  (any strides),
 *   B[n, r, j] at b + b_offset + n*b_batch + r*b_r + j      (rows contiguous along j; b_batch 0 for a weight),
 *   out[n, i, j] at out + out_offset + n*out_batch + i*out_i + j*out_j,
 *   bias: bias[j], or bias[i] with BIAS_ON_ROWS,
 *
 * where m is 0 and n the image a work-item computes, or with REDUCE_BATCH (weight gradients) m runs over the
 * n_per_split images of a split that starts at image n: with one split the sums go to out, with several
 * (partial not NULL) to the split's slice of partial, which reduce_partials adds up in split order.
 * Two callers map passes onto A, B and out: clconv/algorithms/tiled.py the forward pass and input gradient of
 * channels-first tensors (A the weight, B an image's channels, i an output channel, j a position), and
 * clconv/channels_last_pointwise.py every pass whose channels-last input it reads in place (B that input:
 * channels-last memory holds each position's channels contiguous, which is the operand the tile wants).
 *
 * Each work-item owns ROWS rows i x VECS vectors of VEC lanes along j: every step r loads VECS vectors of B
 * and ROWS elements of A, each broadcast, for ROWS*VECS vector multiply-adds (oneDNN's idea for its direct 1x1
 * kernels: broadcasts against vectors, several rows per register block). A tile's rows past I repeat row
 * I - 1 and are not stored; its lanes past J read zero. OUT_ALONG_J (out_j == 1) stores vectors along j,
 * else (out_i == 1: a channels-first output, the positions along i) vectors of ROWS rows, one per lane.
 *
 * NDRange: dim0 = DIV_UP(I, ROWS), dim1 = DIV_UP(J, VEC*VECS) times N, or times the splits with REDUCE_BATCH
 * (each rounded up to the work-group shape).
 */
#include "common.h"

#ifndef VEC
#define VEC 16
#endif
#ifndef ROWS
#define ROWS 8
#endif
#ifndef VECS
#define VECS 2
#endif
#ifndef REDUCE_BATCH
#define REDUCE_BATCH 0
#endif
#ifndef OUT_ALONG_J
#define OUT_ALONG_J 0
#endif
#ifndef BIAS_ON_ROWS
#define BIAS_ON_ROWS 0
#endif
#if ROWS != 4 && ROWS != 8 && ROWS != 16
#error "ROWS must be 4, 8 or 16: a vector of the tile's rows is stored along i"
#endif
#include "vector.h"

/* The multiply-adds of one step r, with the tile's B vectors loaded by LOAD_B(v). */
#define TILE_STEP(LOAD_B) { \
    accv_t b_row[VECS]; \
    _Pragma("unroll") for (int v = 0; v < VECS; ++v) \
        b_row[v] = LOAD_B(v); \
    _Pragma("unroll") for (int row = 0; row < ROWS; ++row) { \
        const accv_t a_value = (accv_t)((acc_t)LOAD(a_at, a_rows[row])); \
        _Pragma("unroll") for (int v = 0; v < VECS; ++v) \
            acc[row][v] = MULADD(a_value, b_row[v], acc[row][v]); \
    } \
}
#define LOAD_B_WHOLE(v) VLOAD(VEC, b_at + (v) * VEC)
#define LOAD_B_MASKED(v) load_lanes_kept(b_at + (v) * VEC, lane < (maskv_t)(lanes_left - (v) * VEC), b_begin, b_end)

__kernel void pointwise_product(
    __global const real_t *restrict a, const int a_offset, const int a_batch, const int a_r, const int a_i,
    __global const real_t *restrict b, const int b_offset, const int b_batch, const int b_r,
    __global const real_t *restrict bias, const int bias_offset, const int has_bias,
    __global real_t *restrict out, const int out_offset, const int out_batch, const int out_i, const int out_j,
    __global acc_t *restrict partial, const int n_per_split,
    const int N, const int I, const int J, const int R)
{
    const int i0 = get_global_id(0) * ROWS;
    const int j_tiles = DIV_UP(J, VEC * VECS);
#if REDUCE_BATCH
    const int split = get_global_id(1) / j_tiles, j_tile = get_global_id(1) - split * j_tiles;
    const int n = split * n_per_split, images = min(n_per_split, N - n);
    if (i0 >= I || images <= 0)
        return;
#else
    const int n = get_global_id(1) / j_tiles, j_tile = get_global_id(1) - n * j_tiles, images = 1;
    if (i0 >= I || n >= N)
        return;
#endif
    const int j0 = j_tile * VEC * VECS;
    const int lanes_left = J - j0;
    const maskv_t lane = lane_index();
    int a_rows[ROWS];
#pragma unroll
    for (int row = 0; row < ROWS; ++row)
        a_rows[row] = min(i0 + row, I - 1) * a_i;

    accv_t acc[ROWS][VECS];
#pragma unroll
    for (int v = 0; v < VECS; ++v) {
#if BIAS_ON_ROWS
#pragma unroll
        for (int row = 0; row < ROWS; ++row)
            acc[row][v] = has_bias ? (accv_t)((acc_t)LOAD(bias, bias_offset + min(i0 + row, I - 1))) : (accv_t)0;
#else
        accv_t start = (accv_t)0;
        if (has_bias)
            start = load_lanes_kept(bias + bias_offset + j0 + v * VEC, lane < (maskv_t)(lanes_left - v * VEC),
                                    bias + bias_offset, bias + bias_offset + J);
#pragma unroll
        for (int row = 0; row < ROWS; ++row)
            acc[row][v] = start;
#endif
    }

    /* Masked loads check that a whole vector lies inside B before reading it as one. */
    __global const real_t *const b_begin = b + b_offset;
    __global const real_t *const b_end = b + b_offset + (N - 1) * b_batch + (R - 1) * b_r + J;
    for (int m = 0; m < images; ++m) {
        __global const real_t *a_at = a + a_offset + (n + m) * a_batch;
        __global const real_t *b_at = b + b_offset + (n + m) * b_batch + j0;
        if (lanes_left >= VEC * VECS) {
            for (int r = 0; r < R; ++r, a_at += a_r, b_at += b_r)
                TILE_STEP(LOAD_B_WHOLE)
        } else {
            for (int r = 0; r < R; ++r, a_at += a_r, b_at += b_r)
                TILE_STEP(LOAD_B_MASKED)
        }
    }

    const int rows_left = I - i0;
#if REDUCE_BATCH
    if (partial) {
        /* One split of several: its sums go to its own slice of partial, in out's layout, for
         * reduce_partials to add in split order. */
        __global acc_t *const slice = partial + split * I * J + i0 * out_i + j0 * out_j;
#pragma unroll
        for (int row = 0; row < ROWS; ++row) {
#pragma unroll
            for (int v = 0; v < VECS; ++v) {
                acc_t lanes[VEC];
                CAT(vstore, VEC)(acc[row][v], 0, lanes);
                for (int l = 0; row < rows_left && l < min(VEC, lanes_left - v * VEC); ++l)
                    slice[row * out_i + (v * VEC + l) * out_j] = lanes[l];
            }
        }
        return;
    }
#endif
    __global real_t *const out_at = out + out_offset + n * out_batch + i0 * out_i + j0 * out_j;
    /* The register tile is indexed by constants only (unrolled loops, conditions inside), which keeps it out of
     * memory; the elements of partial vectors go through a private array. */
#if OUT_ALONG_J
#pragma unroll
    for (int row = 0; row < ROWS; ++row) {
#pragma unroll
        for (int v = 0; v < VECS; ++v) {
            __global real_t *const to = out_at + row * out_i + v * VEC;
            if (row < rows_left && lanes_left - v * VEC >= VEC) {
                VSTORE(VEC, acc[row][v], to);
            } else if (row < rows_left) {
                acc_t lanes[VEC];
                CAT(vstore, VEC)(acc[row][v], 0, lanes);
                for (int l = 0; l < lanes_left - v * VEC; ++l)
                    STORE(lanes[l], to, l);
            }
        }
    }
#else
    /* Transposed through a private array: lane l of the tile's rows becomes one vector of ROWS elements,
     * stored along i (out_i == 1 here), instead of ROWS elements stored one by one. */
#pragma unroll
    for (int v = 0; v < VECS; ++v) {
        acc_t by_lane[VEC][ROWS];
#pragma unroll
        for (int row = 0; row < ROWS; ++row) {
            acc_t lanes[VEC];
            CAT(vstore, VEC)(acc[row][v], 0, lanes);
#pragma unroll
            for (int l = 0; l < VEC; ++l)
                by_lane[l][row] = lanes[l];
        }
        const int lanes_here = min(VEC, lanes_left - v * VEC);
        for (int l = 0; l < lanes_here; ++l) {
            __global real_t *const to = out_at + (v * VEC + l) * out_j;
            if (rows_left >= ROWS && out_i == 1) {
                VSTORE(ROWS, CAT(vload, ROWS)(0, by_lane[l]), to);
            } else {
                for (int row = 0; row < min(ROWS, rows_left); ++row)
                    STORE(by_lane[l][row], to, row * out_i);
            }
        }
    }
#endif
}
