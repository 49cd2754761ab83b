/*
 * Tiled direct correlation: the forward pass and the input gradient.
 *
 *   out[n, g*Co+co, p, q] = bias[g*Co+co]
 *       + sum_{ci<Ci, r<R, s<S} in[n, g*Ci+ci, p*stride_h + offset_h + r*dil_h, q*stride_w + offset_w + s*dil_w]
 *                               * weight[weight_offset + g*ws_group + co*ws_co + ci*ws_ci + r*ws_r + s*ws_s]
 *
 * Input rows/columns outside [0, Hin) x [0, Win) read zero. Tensors are N, channels, rows, columns.
 * Forward:            in = x, out = y, Ci = C/groups, Co = K/groups, offset = -padding, the weight
 *                     strides of (K, C/groups, R, S).
 * Input gradient:     in = grad_output, out = grad_input, Ci = K/groups, Co = C/groups, weight strides
 *                     that swap the channel axes and walk the taps backwards (the kernel flipped); see
 *                     clconv/algorithms/tiled.py for the offsets of each phase.
 *
 * The computed grid (p < Hout, q < Wout) lands in the output tensor (rows out_height, columns out_width)
 * at row p*out_step_h + out_start_h and column q*out_step_w + out_start_w: steps of 1 for the forward
 * pass; for the input gradient at stride > 1 each launch fills one phase (h mod stride_h, w mod stride_w)
 * of grad_input, a stride-1 correlation of grad_output with the taps that reach that phase.
 *
 * Each work-item owns BLOCK_K output channels x BLOCK_V output vectors of VEC lanes per channel: one
 * vector on each of BLOCK_V consecutive output rows (VEC consecutive columns of each), or, on whole planes
 * (FLAT_PLANE below), BLOCK_V consecutive vectors of the plane; BLOCK_K*BLOCK_V accumulator vectors. Every (ci, r, s) step loads BLOCK_V input vectors and
 * BLOCK_K weights and issues BLOCK_K*BLOCK_V vector multiply-adds: register tiles and vectors along the
 * contiguous axis, which is what pays on CPUs; no local memory and no barriers.
 *
 * NDRange: dim0 = ceil(Wout / VEC), dim1 = ceil(Hout / BLOCK_V), dim2 = N * groups * ceil(Co / BLOCK_K)
 * (each rounded up to the work-group shape).
 *
 * FLAT_PLANE (stride 1, Wout <= Win, and the grid filling the output tensor one to one, as in every
 * same-padded forward pass and input gradient, and unpadded forward passes): the vectors run along whole
 * planes instead of rows, so short rows (7, 14 columns) still fill 16-lane vectors. The plane is a grid
 * of Hout rows Win wide, so that every tap reads the input at one offset from the output position; where
 * Wout < Win the last Win - Wout columns of each row are computed and not stored. A work-item owns BLOCK_V
 * consecutive vectors of that grid, and NDRange dim0 = ceil(Hout * Win / (VEC * BLOCK_V)), dim1 = 1.
 *
 * ACROSS_IMAGES (with FLAT_PLANE): the grids of the batch's images are one sequence of N * Hout * Win elements,
 * so that a grid that is not a whole number of tiles (14 x 14 = 196, 3.06 tiles of 4 vectors of 16) leaves no
 * mostly empty tile at its end: a vector that crosses from one image into the next takes its lanes from both,
 * two loads whose lanes are masked apart. NDRange dim0 = ceil(N * Hout * Win / (VEC * BLOCK_V)), dim1 = 1,
 * dim2 = groups * ceil(Co / BLOCK_K). The host sets it only where a grid holds at least VEC elements, so that
 * no vector spans three images.
 *
 * WHOLE_ROWS (stride 1, no dilation, input rows of at most VEC elements; TAPS_R, TAPS_S and OFFSET_W fixed at
 * compile time): each input row is one vector, loaded once per channel with its lanes past the row zeroed, and
 * tap s reads it rotated by s + OFFSET_W lanes (a shuffle), which brings zero lanes in where the tap falls off
 * either end of the row (the host checks that every rotation does); each loaded row serves every tap row of the
 * tile's BLOCK_V output rows that reads it. Rows of 7 or 14 columns otherwise take a masked load per tap, and
 * with one or two channels per group (depthwise layers) nothing shares its masks. NDRange as for row tiles.
 *
 * CHANNELS_INNER (a tile on several rows, many input channels per group): the channel loop runs inside the
 * taps' instead of outside them, so that where each vector of a tap starts, its lane masks at the row edges
 * and whether its loads stay inside the buffer are worked out once per tap and not once per channel and tap; a
 * masked vector is then one load and a blend. Rows of strided layers, whose edge vectors are most of their
 * vectors, gain the most; with one channel per group the setup has nothing to amortise it (see tiled.py).
 */
#include "common.h"

#ifndef VEC
#define VEC 16
#endif
#ifndef BLOCK_K
#define BLOCK_K 8
#endif
#ifndef BLOCK_V
#define BLOCK_V 2
#endif
#ifndef FLAT_PLANE
#define FLAT_PLANE 0
#endif
#ifndef ACROSS_IMAGES
#define ACROSS_IMAGES 0
#endif
#if ACROSS_IMAGES && !FLAT_PLANE
#error "ACROSS_IMAGES joins whole planes (FLAT_PLANE) of consecutive images"
#endif
#ifndef ALONG_ROW
#define ALONG_ROW 0
#endif
#ifndef CHANNELS_INNER
#define CHANNELS_INNER 0
#endif
#if CHANNELS_INNER && (FLAT_PLANE || ALONG_ROW)
#error "CHANNELS_INNER is for tiles on several rows (no FLAT_PLANE or ALONG_ROW), whose vectors share their columns"
#endif
#ifndef WHOLE_ROWS
#define WHOLE_ROWS 0
#endif
#if WHOLE_ROWS && (FLAT_PLANE || ALONG_ROW || CHANNELS_INNER || !defined(TAPS_R) || !defined(TAPS_S) || \
                   !defined(OFFSET_W))
#error "WHOLE_ROWS is a tile on several rows with TAPS_R, TAPS_S and OFFSET_W defined"
#endif
/* Where vector b of a row tile lies: on row p0 + TILE_ROW(b), from column q0 + TILE_COL(b). */
#if ALONG_ROW
#define TILE_ROW(b) 0
#define TILE_COL(b) ((b) * VEC)
#else
#define TILE_ROW(b) (b)
#define TILE_COL(b) 0
#endif

#include "vector.h"

/* acc[i][b] += w_i * x[b] for the weight w_i of output channel i at `tap` (its offset past weight_co[i]): the
 * multiply-adds of one (channel, tap) step. */
#define WEIGHTED_ADD(acc, x, tap) \
    _Pragma("unroll") for (int i = 0; i < BLOCK_K; ++i) { \
        const acc_t w = (acc_t)LOAD(weight, weight_co[i] + (tap)); \
        _Pragma("unroll") for (int b = 0; b < BLOCK_V; ++b) \
            acc[i][b] = MULADD((accv_t)w, x[b], acc[i][b]); \
    }

/* ACROSS_IMAGES: the channel loop of one tap, reading vector b at in_at + vector_at[b] in each channel, and with
 * CROSSING the next image's lanes of the vectors that cross too. The two images' lanes are added, each masked to
 * zero, rather than picked by one select() between two loads, which PoCL 3.1 compiles into an aligned load for
 * vload_half (see cl/conv2d_grad_weight_tiled.cl). */
#define JOINED_CHANNEL_LOOP(CROSSING) \
    for (int ci = 0; ci < Ci; ++ci, in_at += plane) { \
        accv_t x[BLOCK_V]; \
        _Pragma("unroll") for (int b = 0; b < BLOCK_V; ++b) { \
            __global const real_t *at = in_at + vector_at[b]; \
            x[b] = inside ? KEEP_LANES(VLOAD(VEC, at), keep_here[b]) \
                          : load_lanes_kept(at, keep_here[b], in_begin, in_end); \
            if ((CROSSING) && crosses[b]) \
                x[b] += inside ? KEEP_LANES(VLOAD(VEC, at + image_jump), keep_next[b]) \
                               : load_lanes_kept(at + image_jump, keep_next[b], in_begin, in_end); \
        } \
        WEIGHTED_ADD(acc, x, ci * ws_ci + tap); \
    }

__kernel void conv2d_tiled(
    __global const real_t *restrict in, const int in_offset,
    __global const real_t *restrict weight, const int weight_offset,
    __global const real_t *restrict bias, const int bias_offset, const int has_bias,
    __global real_t *restrict out, const int out_offset,
    const int out_height, const int out_width, const int out_step_h, const int out_step_w,
    const int out_start_h, const int out_start_w,
    const int N, const int Ci, const int Hin, const int Win,
    const int Co, const int R, const int S, const int Hout, const int Wout, const int groups,
    const int stride_h, const int stride_w, const int offset_h, const int offset_w,
    const int dil_h, const int dil_w,
    const int ws_group, const int ws_co, const int ws_ci, const int ws_r, const int ws_s)
{
    const int co_blocks = DIV_UP(Co, BLOCK_K);
    int z = get_global_id(2);
    const int cb = z % co_blocks;
    z /= co_blocks;
    const int g = z % groups;
    const int n = z / groups;
#if ACROSS_IMAGES
    const int grid_plane = Hout * Win;
    const int grid_end = N * grid_plane;  /* n is 0: the images are along dim0 */
    const int f0 = get_global_id(0) * (VEC * BLOCK_V);
    if (f0 >= grid_end || n > 0)
        return;
#elif FLAT_PLANE
    const int grid_plane = Hout * Win;
    const int grid_end = grid_plane;  /* one image's grid */
    const int f0 = get_global_id(0) * (VEC * BLOCK_V);
    if (f0 >= grid_end || n >= N)
        return;
#elif ALONG_ROW
    const int q0 = get_global_id(0) * (VEC * BLOCK_V);
    const int p0 = get_global_id(1);
    if (q0 >= Wout || p0 >= Hout || n >= N)
        return;
#else
    const int q0 = get_global_id(0) * VEC;
    const int p0 = get_global_id(1) * BLOCK_V;
    if (q0 >= Wout || p0 >= Hout || n >= N)
        return;
#endif
    const int co0 = cb * BLOCK_K;
    const int co_count = min(BLOCK_K, Co - co0);

    accv_t acc[BLOCK_K][BLOCK_V];
    #pragma unroll
    for (int i = 0; i < BLOCK_K; ++i)
        #pragma unroll
        for (int b = 0; b < BLOCK_V; ++b)
            acc[i][b] = (accv_t)0;

    /* Channels past Co repeat the last real one, so the loop needs no branch; they are not stored. */
    int weight_co[BLOCK_K];
    #pragma unroll
    for (int i = 0; i < BLOCK_K; ++i)
        weight_co[i] = weight_offset + g * ws_group + min(co0 + i, Co - 1) * ws_co;

    const int plane = Hin * Win;
    __global const real_t *in_begin = in + in_offset;
    __global const real_t *in_end = in_begin + N * groups * Ci * plane;
#if ACROSS_IMAGES
    /* Vector b starts at element i_b of image n_b's grid (f0 + b*VEC = n_b * grid_plane + i_b); its lanes past
     * that grid's end are elements of image n_b + 1's, the lane index minus grid_plane. Image n's element i of
     * channel ci, shifted by a tap, lies at in_group + ci*plane + n*(groups*Ci*plane) + i + shift, that is at
     * in_group + ci*plane + shift + (n*grid_plane + i) + n*image_jump: each vector is read at vector_at[b] past
     * in_group + ci*plane + shift, its next image's lanes image_jump further. As with one image, the masks
     * depend on the tap only, and since grid_plane is a whole number of rows the column of every lane is
     * (f0 + b*VEC + j) mod Win, across the boundary too. */
    const maskv_t lane = lane_index();
    const int image_jump = groups * Ci * plane - grid_plane;
    int vector_at[BLOCK_V];
    bool crosses[BLOCK_V];
    /* Per lane: its element of the whole sequence, of image n_b's grid (grid_plane and more: the next image's),
     * of its own image's grid, and its column. */
    maskv_t f_lane[BLOCK_V], i_from_first[BLOCK_V], i_lane[BLOCK_V], q_lane[BLOCK_V];
#pragma unroll
    for (int b = 0; b < BLOCK_V; ++b) {
        const int f = f0 + b * VEC;
        const int image = min(f / grid_plane, N - 1);
        f_lane[b] = lane + (maskv_t)f;
        i_from_first[b] = lane + (maskv_t)(f - image * grid_plane);
        i_lane[b] = i_from_first[b] >= (maskv_t)grid_plane ? i_from_first[b] - (maskv_t)grid_plane : i_from_first[b];
        q_lane[b] = lanes_mod(f, Win);
        vector_at[b] = f + image * image_jump;
        crosses[b] = image + 1 < N && f - image * grid_plane + VEC > grid_plane;
    }
    /* Whether a vector of the tile crosses into the next image, and the lowest and highest element the tile
     * reads in a channel, from vector_at (which grows with b). */
    bool tile_crosses = false;
    const int read_first = vector_at[0];
    int read_last = vector_at[BLOCK_V - 1] + VEC;
#pragma unroll
    for (int b = 0; b < BLOCK_V; ++b) {
        tile_crosses = tile_crosses || crosses[b];
        read_last = crosses[b] ? max(read_last, vector_at[b] + image_jump + VEC) : read_last;
    }
    __global const real_t *in_group = in_begin + g * Ci * plane;
    for (int r = 0; r < R; ++r) {
        const int row_shift = (r * dil_h + offset_h) * Win;
        for (int s = 0; s < S; ++s) {
            const int shift = row_shift + s * dil_w + offset_w;
            maskv_t keep_here[BLOCK_V], keep_next[BLOCK_V];
#pragma unroll
            for (int b = 0; b < BLOCK_V; ++b) {
                const maskv_t column = q_lane[b] + (maskv_t)(s * dil_w + offset_w);
                const maskv_t at = i_lane[b] + (maskv_t)row_shift;
                /* Masks made here from comparisons, none kept from the prologue in an array: Oclgrind 21.10 gave 1,
                 * not -1, for the true lanes of a vector && one of whose operands was such a mask. PoCL 3.1 ran the
                 * channel loop up to 5% slower with the masks combined by & instead of &&. */
                const maskv_t keep = column >= (maskv_t)0 && column < (maskv_t)Win && at >= (maskv_t)0 &&
                                     at < (maskv_t)plane && f_lane[b] < (maskv_t)grid_end;
                keep_here[b] = keep && i_from_first[b] < (maskv_t)grid_plane;
                keep_next[b] = keep && i_from_first[b] >= (maskv_t)grid_plane;
            }
            const int tap = r * ws_r + s * ws_s;
            __global const real_t *in_at = in_group + shift;
            const bool inside = in_at + read_first >= in_begin && in_at + (Ci - 1) * plane + read_last <= in_end;
            /* Two versions of the channel loop: tiles inside one image (most of them on planes of several tiles)
             * run the loop of one image, with no branch; the others load the next image's lanes of the vectors
             * that cross. Measured on Zen 4 (PoCL 3.1), a loop with the second load for every vector, masked,
             * ran 0.7-0.85x as fast as images one at a time. */
            if (tile_crosses)
                JOINED_CHANNEL_LOOP(1)
            else
                JOINED_CHANNEL_LOOP(0)
        }
    }
#elif FLAT_PLANE
    /* Lane j of vector b is grid element f = f0 + b*VEC + j, output row f / Win, column q = f % Win.
     * With stride 1, tap (r, s) reads input element f + row_shift + col_shift, kept where its row and
     * column lie inside the input. The masks depend on the tap only, so the channel loop runs innermost
     * and reuses them. */
    const maskv_t lane = lane_index();
    maskv_t f_lane[BLOCK_V], q_lane[BLOCK_V];
#pragma unroll
    for (int b = 0; b < BLOCK_V; ++b) {
        f_lane[b] = lane + (maskv_t)(f0 + b * VEC);
        q_lane[b] = lanes_mod(f0 + b * VEC, Win);
    }
    __global const real_t *in_first = in_begin + (n * groups + g) * Ci * plane;
    for (int r = 0; r < R; ++r) {
        const int row_shift = (r * dil_h + offset_h) * Win;
        for (int s = 0; s < S; ++s) {
            const int col_shift = s * dil_w + offset_w;
            maskv_t keep[BLOCK_V];
#pragma unroll
            for (int b = 0; b < BLOCK_V; ++b) {
                const maskv_t column = q_lane[b] + (maskv_t)col_shift;
                const maskv_t at = f_lane[b] + (maskv_t)row_shift;
                keep[b] = column >= (maskv_t)0 && column < (maskv_t)Win && at >= (maskv_t)0 &&
                          at < (maskv_t)plane && f_lane[b] < (maskv_t)grid_plane;
            }
            const int tap = r * ws_r + s * ws_s;
            __global const real_t *in_at = in_first + f0 + row_shift + col_shift;
            /* Whether the tile's loads in every channel lie inside the buffer (the first channel and the last
             * bound them), so that each vector is one load and a blend. */
            const bool inside = in_at >= in_begin && in_at + (Ci - 1) * plane + BLOCK_V * VEC <= in_end;
            for (int ci = 0; ci < Ci; ++ci, in_at += plane) {
                accv_t x[BLOCK_V];
#pragma unroll
                for (int b = 0; b < BLOCK_V; ++b)
                    x[b] = inside ? KEEP_LANES(VLOAD(VEC, in_at + b * VEC), keep[b])
                                  : load_lanes_kept(in_at + b * VEC, keep[b], in_begin, in_end);
                WEIGHTED_ADD(acc, x, ci * ws_ci + tap);
            }
        }
    }
#elif WHOLE_ROWS
    /* Tile row b's output row p0 + b reads, at tap row r, input row p0 + b + r + offset_h: row j = b + r of the
     * BLOCK_V + TAPS_R - 1 rows from p0 + offset_h, each loaded once per channel. Unrolled, the tap row of every
     * (j, b) pair is known at compile time. */
    const maskv_t in_row = lane_index() < (maskv_t)Win;
    __global const real_t *in_plane = in_begin + (n * groups + g) * Ci * plane;
    for (int ci = 0; ci < Ci; ++ci, in_plane += plane) {
        acc_t w[BLOCK_K][TAPS_R][TAPS_S];
#pragma unroll
        for (int i = 0; i < BLOCK_K; ++i)
#pragma unroll
            for (int r = 0; r < TAPS_R; ++r)
#pragma unroll
                for (int s = 0; s < TAPS_S; ++s)
                    w[i][r][s] = (acc_t)LOAD(weight, weight_co[i] + ci * ws_ci + r * ws_r + s * ws_s);
#pragma unroll
        for (int j = 0; j < BLOCK_V + TAPS_R - 1; ++j) {
            const int row = p0 + j + offset_h;
            accv_t x = (accv_t)0;
            if (row >= 0 && row < Hin)
                x = load_lanes_kept(in_plane + row * Win, in_row, in_begin, in_end);
            accv_t tap_lanes[TAPS_S];
#pragma unroll
            for (int s = 0; s < TAPS_S; ++s)
                tap_lanes[s] = ROTATE_LANES(x, s + OFFSET_W);
#pragma unroll
            for (int b = 0; b < BLOCK_V; ++b) {
                const int r = j - b;
                if (r < 0 || r >= TAPS_R)
                    continue;
#pragma unroll
                for (int i = 0; i < BLOCK_K; ++i)
#pragma unroll
                    for (int s = 0; s < TAPS_S; ++s)
                        acc[i][b] = MULADD((accv_t)w[i][r][s], tap_lanes[s], acc[i][b]);
            }
        }
    }
#elif CHANNELS_INNER
    const int col_stride = COLUMN_STRIDE(stride_w);
    const int col_first = q0 * col_stride + offset_w;
    /* Columns this tile reads for tap s: col_first + s*dil_w + j*col_stride, j < VEC. */
    const bool vector_stride = col_stride <= 2;
    const maskv_t lane = lane_index();
    __global const real_t *in_first = in_begin + (n * groups + g) * Ci * plane;
    for (int r = 0; r < R; ++r) {
        for (int s = 0; s < S; ++s) {
            /* Where each vector of the tap starts in a channel's plane, and which of its lanes lie inside the
             * input, for every channel. A row outside the input reads row 0, all lanes masked. */
            const int col = col_first + s * dil_w;  /* the same for every row of the tile */
            int at[BLOCK_V], lanes_valid[BLOCK_V];
            maskv_t keep[BLOCK_V];
            bool interior = vector_stride && col >= 0 && col + LOAD_SPAN(col_stride) <= Win;
#pragma unroll
            for (int b = 0; b < BLOCK_V; ++b) {
                const int row = (p0 + TILE_ROW(b)) * stride_h + offset_h + r * dil_h;
                const bool row_inside = row >= 0 && row < Hin;
                at[b] = (row_inside ? row : 0) * Win;
                lanes_valid[b] = row_inside ? VEC : 0;
                keep[b] = (maskv_t)0;
                interior = interior && row_inside;
            }
            /* Whether the tile's loads in every channel lie inside the buffer (the first channel and the last
             * bound them), so that a masked vector is one load and a blend; worked out only for taps that need
             * masks. */
            bool inside = false;
            if (!interior && vector_stride) {
                const maskv_t column = lane * (maskv_t)col_stride + (maskv_t)col;
                const maskv_t column_kept = column >= (maskv_t)0 && column < (maskv_t)Win;
                inside = true;
#pragma unroll
                for (int b = 0; b < BLOCK_V; ++b) {
                    keep[b] = lanes_valid[b] ? column_kept : (maskv_t)0;
                    inside = inside && in_first + at[b] + col >= in_begin &&
                             in_first + (Ci - 1) * plane + at[b] + col + LOAD_SPAN(col_stride) <= in_end;
                }
            }
            const int tap = r * ws_r + s * ws_s;
            __global const real_t *in_plane = in_first;
            for (int ci = 0; ci < Ci; ++ci, in_plane += plane) {
                accv_t x[BLOCK_V];
#pragma unroll
                for (int b = 0; b < BLOCK_V; ++b) {
                    if (interior)
                        x[b] = load_lanes(in_plane + at[b] + col, col_stride);
                    else if (inside)
                        x[b] = KEEP_LANES(load_lanes(in_plane + at[b] + col, col_stride), keep[b]);
                    else
                        x[b] = load_lanes_masked(in_plane + at[b], col, col_stride, Win, lanes_valid[b], in_begin,
                                                 in_end);
                }
                WEIGHTED_ADD(acc, x, ci * ws_ci + tap);
            }
        }
    }
#else
    const int col_stride = COLUMN_STRIDE(stride_w);
    const int col_first = q0 * col_stride + offset_w;
    /* Columns this tile reads for tap s: col_first + s*dil_w + j*col_stride, j < VEC. */
    const bool vector_stride = col_stride <= 2;
    for (int ci = 0; ci < Ci; ++ci) {
        __global const real_t *in_plane = in + in_offset + (n * groups * Ci + g * Ci + ci) * plane;
        for (int r = 0; r < R; ++r) {
            int rows[BLOCK_V];
            #pragma unroll
            for (int b = 0; b < BLOCK_V; ++b)
                rows[b] = (p0 + TILE_ROW(b)) * stride_h + offset_h + r * dil_h;
            for (int s = 0; s < S; ++s) {
                accv_t x[BLOCK_V];
                #pragma unroll
                for (int b = 0; b < BLOCK_V; ++b) {
                    const int col = col_first + TILE_COL(b) * col_stride + s * dil_w;
                    const bool interior = vector_stride && col >= 0 && col + LOAD_SPAN(col_stride) <= Win;
                    if (rows[b] < 0 || rows[b] >= Hin)
                        x[b] = (accv_t)0;
                    else if (interior)
                        x[b] = load_lanes(in_plane + rows[b] * Win + col, col_stride);
                    else
                        x[b] = load_lanes_masked(in_plane + rows[b] * Win, col, col_stride, Win, VEC, in_begin, in_end);
                }
                WEIGHTED_ADD(acc, x, ci * ws_ci + r * ws_r + s * ws_s);
            }
        }
    }

#endif

    /* Constant trip counts with guards inside: indexing acc with a runtime bound would force the whole
     * tile out of registers into memory. */
    const int out_channels = groups * Co;
#pragma unroll
    for (int i = 0; i < BLOCK_K; ++i) {
        const int co = g * Co + co0 + i;
        const acc_t bias_value = (has_bias && i < co_count) ? (acc_t)LOAD(bias, bias_offset + co) : (acc_t)0;
#if FLAT_PLANE
        /* f counts grid elements from image n's first (image 0's across images, where n is 0). */
        const int out_plane_size = Hout * Wout;
        __global real_t *out_channel = out + out_offset + (n * out_channels + co) * out_plane_size;
#pragma unroll
        for (int b = 0; b < BLOCK_V; ++b) {
            const int f = f0 + b * VEC;
            if (i >= co_count || f >= grid_end)
                continue;
            const accv_t result = acc[i][b] + (accv_t)bias_value;
            const int image = ACROSS_IMAGES ? f / grid_plane : 0, i_first = f - image * grid_plane;
            if (Wout == Win && i_first + VEC <= grid_plane) {
                VSTORE(VEC, result, out_channel + image * out_channels * out_plane_size + i_first);
            } else {
                /* Grid element i of an image is output (i / Win, i % Win), stored where that column exists; lanes
                 * past the grid's end belong to the next image's (across images only). */
                acc_t lanes[VEC];
                CAT(vstore, VEC)(result, 0, lanes);
                for (int j = 0; j < min(VEC, grid_end - f); ++j) {
                    const int next = i_first + j >= grid_plane;
                    const int at = i_first + j - next * grid_plane;
                    const int p = at / Win, q = at - p * Win;
                    if (q < Wout)
                        STORE(lanes[j], out_channel, (image + next) * out_channels * out_plane_size + p * Wout + q);
                }
            }
        }
#else
#pragma unroll
        for (int b = 0; b < BLOCK_V; ++b) {
            const int p = p0 + TILE_ROW(b);
            const int q = q0 + TILE_COL(b);
            if (i >= co_count || p >= Hout || q >= Wout)
                continue;
            __global real_t *out_row =
                out + out_offset + ((n * out_channels + co) * out_height + p * out_step_h + out_start_h) * out_width;
            const accv_t result = acc[i][b] + (accv_t)bias_value;
            if (out_step_w == 1 && q + VEC <= Wout) {
                VSTORE(VEC, result, out_row + out_start_w + q);
#if WHOLE_ROWS
            } else if (out_step_h == 1 && out_step_w == 1 && out_start_w == 0 && out_width == Wout &&
                       (p + out_start_h) * out_width + VEC <= (min(p0 + BLOCK_V, Hout) + out_start_h) * out_width) {
                /* A vector store past the row's end, into the rows this work-item stores next (b ascending):
                 * the last of them is stored lane by lane and overwrites what spilled into it. */
                VSTORE(VEC, result, out_row);
#endif
            } else {
                acc_t lanes[VEC];
                CAT(vstore, VEC)(result, 0, lanes);
                for (int j = 0; j < min(VEC, Wout - q); ++j)
                    STORE(lanes[j], out_row, (q + j) * out_step_w + out_start_w);
            }
        }
#endif
    }
}
