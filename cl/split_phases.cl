/*
 * The phases of a strided layer's input as channels of their own, so that a stride-1 layer computes the
 * strided one (clconv/algorithms/phases.py):
 *   phased[n, (c*phases_h + a)*phases_w + b, i, j] = in[n, c, i*stride_h + a - pad_top, j*stride_w + b - pad_left]
 * zero where that lies in the padding. Phase (a, b) holds the input rows and columns that the taps r, s
 * with r mod stride_h = a, s mod stride_w = b read, one output step apart: tap (r, s) of the strided layer
 * is tap (r / stride_h, s / stride_w) of the stride-1 layer on that phase, read with unit-stride vectors.
 * in: (N, C, H, W); phased: (N, C*phases_h*phases_w, Hp, Wp).
 *
 * Each work-item writes one row of a phase (see unfold_depth.cl for why not one element).
 *
 * NDRange: dim0 = C * phases_h * phases_w * Hp, dim1 = N (each rounded up to the work-group shape).
 */
#include "common.h"

__kernel void split_phases(
    __global const real_t *restrict in, const int in_offset,
    __global real_t *restrict phased, const int phased_offset,
    const int N, const int C, const int H, const int W, const int Hp, const int Wp,
    const int stride_h, const int stride_w, const int pad_top, const int pad_left,
    const int phases_h, const int phases_w)
{
    const int row = get_global_id(0);
    const int n = get_global_id(1);
    const int rows = C * phases_h * phases_w * Hp;
    if (row >= rows || n >= N)
        return;
    const int i = row % Hp;
    const int cab = row / Hp;
    const int b = cab % phases_w;
    const int a = (cab / phases_w) % phases_h;
    const int c = cab / (phases_w * phases_h);
    const int h = i * stride_h + a - pad_top;
    const int to = phased_offset + (n * rows + row) * Wp;
    if (h < 0 || h >= H) {
        for (int j = 0; j < Wp; ++j)
            STORE((acc_t)0, phased, to + j);
        return;
    }
    const int from = in_offset + ((n * C + c) * H + h) * W;
    for (int j = 0; j < Wp; ++j) {
        const int w = j * stride_w + b - pad_left;
        STORE((w >= 0 && w < W) ? (acc_t)LOAD(in, from + w) : (acc_t)0, phased, to + j);
    }
}
