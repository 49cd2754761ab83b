/*
 * Gradient with respect to the weights, tiled and vectorised, deterministic:
 *   grad_weight[k,c,r,s] = sum_{n<N, p<P, q<Q} grad_output[n,k,p,q] * x[n, g*Cg+c, h, w]
 * with g = k / Kg, h = p*stride_h - pad_top + r*dil_h, w = q*stride_w - pad_left + s*dil_w
 * (layouts in common.h).
 *
 * Each work-item owns BLOCK_K output channels x BLOCK_C input channels of one tap (r, s), as
 * BLOCK_K*BLOCK_C vectors of VEC lanes that run along q. Every step loads BLOCK_K grad_output vectors and
 * BLOCK_C input vectors and issues BLOCK_K*BLOCK_C vector multiply-adds; the lanes are added up once at
 * the end, in a fixed order. Lanes past Q, and input columns in the padding, are masked to zero (a
 * masked lane must be zero, not garbage: 0 * Inf would be NaN).
 *
 * With FLAT_PLANE (stride 1 and Q == W, as in every "same" convolution) the vectors run along whole
 * planes instead of rows, so short rows (7, 14 columns) still fill 16-lane vectors.
 *
 * With TAP_PAIR (column stride 2, dilation 1 along the row) a work-item owns TAP_RUN pairs of neighbouring
 * taps (s, s+1), (s+2, s+3), ... of its row r, and its vectors run along input columns instead: at stride 2,
 * output column q of tap s reads input column w = 2q + s - pad_left and tap s+1 the next one, so lanes 2i and
 * 2i+1 of one contiguous input vector serve output column q0 + i of both taps, against a grad_output vector
 * whose VEC/2 columns are each duplicated into a pair of lanes. The even lanes add up to tap s, the odd ones
 * to tap s+1. The input needs no shuffle (a single tap at stride 2 takes two loads and a shuffle for half of
 * what they hold), only each grad_output vector does. Taps past S (the partner of an odd S's last tap) are
 * computed and not stored.
 *
 * With TAP_RUN > 1 (column stride 1) a work-item owns TAP_RUN consecutive taps (s, s+1, ...) of its row r:
 * each grad_output vector then meets BLOCK_C * TAP_RUN input vectors (the same rows, shifted by one
 * dilation per tap, which come from the cache), so layers with few input channels per group (LeNet-5
 * conv1's one, depthwise layers' one) get tiles large enough to keep the multiply-adds ahead of the loads, and
 * grad_output is streamed once per run of taps instead of once per tap. Taps of the last run past S are
 * computed and not stored.
 *
 * As in the direct kernel the batch is cut into `splits` fixed chunks of `n_per_split` images; with one
 * chunk the result goes straight to grad_weight, otherwise acc_t partials [split][K][Cg][R][S] are added in
 * split order by reduce_partials.cl. No atomics: repeated runs are bit-identical.
 *
 * NDRange: dim0 = ceil(Cg / BLOCK_C) * R * ceil(S / ROW_TAPS) * groups * ceil(Kg / BLOCK_K), dim1 = 1, dim2 = splits
 * (each rounded up to the work-group shape).
 */
#include "common.h"

#ifndef VEC
#define VEC 16
#endif
#ifndef BLOCK_K
#define BLOCK_K 4
#endif
#ifndef BLOCK_C
#define BLOCK_C 4
#endif
#ifndef FLAT_PLANE
#define FLAT_PLANE 0
#endif
#ifndef K_GROUP
#define K_GROUP 1
#endif
#ifndef TAP_PAIR
#define TAP_PAIR 0
#endif
#ifndef ACROSS_IMAGES
#define ACROSS_IMAGES 0
#endif
#ifndef TAP_RUN
#define TAP_RUN 1
#endif
/* Taps of one row per work-item. */
#define ROW_TAPS (TAP_PAIR ? 2 * TAP_RUN : TAP_RUN)
#if TAP_PAIR && (FLAT_PLANE || ACROSS_IMAGES || COL_STRIDE != 2 || VEC < 4)
#error "TAP_PAIR needs rows read at a column stride of 2 (COL_STRIDE 2, no FLAT_PLANE) and VEC >= 4"
#endif
#if TAP_RUN > 1 && !TAP_PAIR && (ACROSS_IMAGES || COL_STRIDE != 1)
#error "TAP_RUN needs rows read at a column stride of 1 (COL_STRIDE 1) or TAP_PAIR, and no ACROSS_IMAGES"
#endif
/* Input vectors of one step, and the tile's second axis: BLOCK_C channels x TAP_RUN taps (or pairs of taps),
 * channel-major. */
#define BLOCK_J (BLOCK_C * TAP_RUN)

#include "vector.h"

#if TAP_PAIR
/* HALF = VEC / 2 as a literal (vector type names are pasted from it), and the VEC-vector whose lanes 2i and
 * 2i + 1 both hold lane i of a HALF-vector. */
#if VEC == 16
#define HALF 8
#define DUPLICATE_LANES(v) ((accv_t)((v).s00112233, (v).s44556677))
#elif VEC == 8
#define HALF 4
#define DUPLICATE_LANES(v) ((accv_t)((v).s0011, (v).s2233))
#else
#define HALF 2
#define DUPLICATE_LANES(v) ((accv_t)((v).s0011))
#endif
#endif

/* acc[i][j] += grad[i] * input[j] over a tile of BLOCK_K x width: the multiply-adds of one step. */
#define OUTER_PRODUCT_ADD(acc, grad, input, width) \
    _Pragma("unroll") for (int i = 0; i < BLOCK_K; ++i) \
        _Pragma("unroll") for (int j = 0; j < (width); ++j) \
            acc[i][j] = MULADD(grad[i], input[j], acc[i][j])

__kernel void conv2d_grad_weight_tiled(
    GRAD_WEIGHT_PARAMS)
{
    const int Cg = C / groups;
    const int Kg = K / groups;
    const int c_blocks = DIV_UP(Cg, BLOCK_C);
    const int k_blocks = DIV_UP(Kg, BLOCK_K);
    const int S_blocks = DIV_UP(S, ROW_TAPS);
    const int tap_blocks = c_blocks * R * S_blocks;
    const int kg_blocks = groups * k_blocks;
    const int t = get_global_id(0);
    if (t >= tap_blocks * kg_blocks)
        return;
    /* Consecutive work-items take K_GROUP output-channel blocks side by side for each (input block, tap):
     * those blocks' grad_output stays in cache while the input streams past once per group of blocks
     * instead of once per block. */
    const int group_first = t / (tap_blocks * K_GROUP) * K_GROUP;
    const int group_size = min(K_GROUP, kg_blocks - group_first);
    const int in_group = t - group_first * tap_blocks;
    const int gk = group_first + in_group % group_size;
    int z = in_group / group_size;
    const int s = (z % S_blocks) * ROW_TAPS;
    z /= S_blocks;
    const int r = z % R;
    const int c0 = (z / R) * BLOCK_C;
    const int g = gk / k_blocks;
    const int k0 = (gk % k_blocks) * BLOCK_K;
    const int split = get_global_id(2);
    if (split >= splits)
        return;

    accv_t acc[BLOCK_K][BLOCK_J];
#pragma unroll
    for (int i = 0; i < BLOCK_K; ++i)
#pragma unroll
        for (int j = 0; j < BLOCK_J; ++j)
            acc[i][j] = (accv_t)0;

    /* Output rows whose tap r lands inside the input. */
    const int h_shift = r * dil_h - pad_top;
    const int w_shift = s * dil_w - pad_left;
    const int p_begin = FIRST_INSIDE(h_shift, stride_h);
    const int p_end = min(P, FIRST_PAST(h_shift, stride_h, H));
    /* Input columns from the first tap of a run to its last one (TAP_RUN taps one dilation apart). */
    const int run_extent = (TAP_RUN - 1) * dil_w;

    /* Channels past the group's end repeat its last channel; their sums are not stored. */
    int x_channel[BLOCK_C], grad_channel[BLOCK_K];
#pragma unroll
    for (int j = 0; j < BLOCK_C; ++j)
        x_channel[j] = g * Cg + min(c0 + j, Cg - 1);
#pragma unroll
    for (int i = 0; i < BLOCK_K; ++i)
        grad_channel[i] = g * Kg + min(k0 + i, Kg - 1);

    __global const real_t *x_begin = x + x_offset;
    __global const real_t *x_end = x_begin + N * C * H * W;
    __global const real_t *grad_begin = grad_output + grad_output_offset;
    __global const real_t *grad_end = grad_begin + N * K * P * Q;
    const int n_begin = split * n_per_split;
    const int n_end = min(N, n_begin + n_per_split);
#if ACROSS_IMAGES
    /* A pointwise layer (1x1, stride 1, no padding, its planes seen as one row) reads whole planes unshifted,
     * so a channel's planes of consecutive images are read as one sequence: a plane that is not a whole
     * number of vectors (7 x 7 = 49, 3.06 vectors of 16) leaves no mostly-masked vector at its end, only one
     * vector per image that takes its lanes from two images. The host sets it only where a plane holds at
     * least VEC elements, so that no vector spans three images. */
    const int plane = P * Q;
    const maskv_t lane = lane_index();
    /* Channel offsets fixed here and one moving pointer per tensor, so that the loop adds no index
     * arithmetic to its loads. */
    int grad_offset[BLOCK_K], x_plane_offset[BLOCK_C];
#pragma unroll
    for (int i = 0; i < BLOCK_K; ++i)
        grad_offset[i] = grad_channel[i] * plane;
#pragma unroll
    for (int j = 0; j < BLOCK_C; ++j)
        x_plane_offset[j] = x_channel[j] * plane;
    __global const real_t *grad_at = grad_begin + n_begin * K * plane;  /* element f of image n, channel 0 */
    __global const real_t *x_at = x_begin + n_begin * C * plane;
    int n = n_begin, f = 0;
    while (n < n_end) {
        const int here = plane - f;  /* lanes left in image n's plane */
        accv_t grad[BLOCK_K], input[BLOCK_C];
        if (here >= VEC) {
#pragma unroll
            for (int i = 0; i < BLOCK_K; ++i)
                grad[i] = VLOAD(VEC, grad_at + grad_offset[i]);
#pragma unroll
            for (int j = 0; j < BLOCK_C; ++j)
                input[j] = VLOAD(VEC, x_at + x_plane_offset[j]);
        } else if (n + 1 < n_end) {
            /* The vector crosses into the next image at lane `here`: its lanes below that from image n, the
             * others from the next image's plane (lane j is its element j - here). Both loads lie inside the
             * buffer, as the next image's plane holds at least VEC elements. The two halves are added, each
             * masked to zero, rather than picked by one select(): PoCL 3.1 compiles a select() between two
             * vload_half results into an aligned load, which faults on an unaligned address. */
            const maskv_t in_first = lane < (maskv_t)here;
            const maskv_t in_next = ~in_first;
#pragma unroll
            for (int i = 0; i < BLOCK_K; ++i) {
                __global const real_t *at = grad_at + grad_offset[i];
                grad[i] = KEEP_LANES(VLOAD(VEC, at), in_first) +
                          KEEP_LANES(VLOAD(VEC, at + (K - 1) * plane), in_next);
            }
#pragma unroll
            for (int j = 0; j < BLOCK_C; ++j) {
                __global const real_t *at = x_at + x_plane_offset[j];
                input[j] = KEEP_LANES(VLOAD(VEC, at), in_first) +
                           KEEP_LANES(VLOAD(VEC, at + (C - 1) * plane), in_next);
            }
        } else {  /* the last image's last vector: lanes past its plane are zero */
            const maskv_t in_first = lane < (maskv_t)here;
#pragma unroll
            for (int i = 0; i < BLOCK_K; ++i)
                grad[i] = load_lanes_kept(grad_at + grad_offset[i], in_first, grad_begin, grad_end);
#pragma unroll
            for (int j = 0; j < BLOCK_C; ++j)
                input[j] = load_lanes_kept(x_at + x_plane_offset[j], in_first, x_begin, x_end);
        }
        OUTER_PRODUCT_ADD(acc, grad, input, BLOCK_C);
        f += VEC;
        grad_at += VEC;
        x_at += VEC;
        if (f >= plane) {  /* on into the next image */
            f -= plane;
            ++n;
            grad_at += (K - 1) * plane;
            x_at += (C - 1) * plane;
        }
    }
#elif FLAT_PLANE
    /* Stride 1 and Q == W: grad_output element f = p*Q + q meets input element f + shift of the same
     * plane, so both are read as whole planes in full vectors (rows p_begin <= p < p_end only). A lane is
     * kept where its input column q + w_shift lies inside the row; q per lane advances by VEC mod Q per
     * step, which one conditional subtraction keeps below Q. */
    const int f_begin = p_begin * Q;
    const int f_end = max(f_begin, p_end * Q);
    const int shift = h_shift * W + w_shift;
    const maskv_t lane = lane_index();
    const maskv_t q_first = lanes_mod(0, Q);
    const maskv_t q_step = (maskv_t)(VEC % Q);
    /* Taps with no column shift (every tap of a 1x1 layer) read whole rows: their full vectors need no mask. */
    const bool columns_inside = TAP_RUN == 1 && w_shift == 0;
    const int plane = H * W;
    const int f_last = f_begin + (DIV_UP(f_end - f_begin, VEC) - 1) * VEC;
    for (int n = n_begin; n < n_end; ++n) {
        /* Whether every input vector of this image lies inside the buffer, checked once here and not at
         * every load (channels ascend with j and taps with t, so the first and the last bound them all). */
        const bool loads_inside = (n * C + x_channel[0]) * plane + f_begin + shift >= 0 &&
                                  (n * C + x_channel[BLOCK_C - 1]) * plane + f_last + shift + run_extent + VEC <=
                                      N * C * plane;
        maskv_t q_lane = q_first;
        for (int f0 = f_begin; f0 < f_end; f0 += VEC) {
            const maskv_t in_range = lane < (maskv_t)(f_end - f0);
            maskv_t keep[TAP_RUN];
#pragma unroll
            for (int t = 0; t < TAP_RUN; ++t) {
                const maskv_t column = q_lane + (maskv_t)(w_shift + t * dil_w);
                keep[t] = column >= (maskv_t)0 && column < (maskv_t)W && in_range;
            }
            const bool full = f0 + VEC <= f_end;
            accv_t grad[BLOCK_K], input[BLOCK_J];
#pragma unroll
            for (int i = 0; i < BLOCK_K; ++i) {
                __global const real_t *grad_at = grad_begin + (n * K + grad_channel[i]) * P * Q + f0;
                grad[i] = full ? VLOAD(VEC, grad_at) : load_lanes_kept(grad_at, in_range, grad_begin, grad_end);
            }
#pragma unroll
            for (int j = 0; j < BLOCK_J; ++j) {
                const int t = j % TAP_RUN;
                __global const real_t *x_at =
                    x_begin + (n * C + x_channel[j / TAP_RUN]) * plane + f0 + shift + t * dil_w;
                if (full && columns_inside)
                    input[j] = VLOAD(VEC, x_at);
                else if (loads_inside)
                    input[j] = KEEP_LANES(VLOAD(VEC, x_at), keep[t]);
                else
                    input[j] = load_lanes_kept(x_at, keep[t], x_begin, x_end);
            }
            OUTER_PRODUCT_ADD(acc, grad, input, BLOCK_J);
            q_lane += q_step;
            q_lane = q_lane >= (maskv_t)Q ? q_lane - (maskv_t)Q : q_lane;
        }
    }
#elif TAP_PAIR
    const maskv_t lane = lane_index();
    const maskv_t lane_column = lane >> 1;  /* output column q0 + lane / 2 */
    /* The input vector of pair t starts at column w0 + 2t: the last pair's vector ends here past w0. */
    const int span = 2 * (TAP_RUN - 1) + VEC;
    /* Whether every load of this work-item lies inside its buffer, checked once here and not at every load
     * (images, rows, channels and columns all ascend, so the first and the last load bound them all). */
    const int q0_last = (Q - 1) / HALF * HALF;
    const bool loads_inside =
        n_begin >= n_end || p_begin >= p_end ||
        (((n_begin * C + x_channel[0]) * H + p_begin * stride_h + h_shift) * W + w_shift >= 0 &&
         (((n_end - 1) * C + x_channel[BLOCK_C - 1]) * H + (p_end - 1) * stride_h + h_shift) * W + 2 * q0_last +
                 w_shift + span <= N * C * H * W &&
         (((n_end - 1) * K + grad_channel[BLOCK_K - 1]) * P + p_end - 1) * Q + q0_last + HALF <= N * K * P * Q);
    for (int n = n_begin; n < n_end; ++n) {
        for (int p = p_begin; p < p_end; ++p) {
            const int h = p * stride_h + h_shift;
            __global const real_t *grad_row[BLOCK_K], *x_row[BLOCK_C];
#pragma unroll
            for (int i = 0; i < BLOCK_K; ++i)
                grad_row[i] = grad_begin + ((n * K + grad_channel[i]) * P + p) * Q;
#pragma unroll
            for (int j = 0; j < BLOCK_C; ++j)
                x_row[j] = x_begin + ((n * C + x_channel[j]) * H + h) * W;
            for (int q0 = 0; q0 < Q; q0 += HALF) {
                const int columns = Q - q0 >= HALF ? HALF : Q - q0;  /* min() is a library call on PoCL 3.0 */
                const int w0 = 2 * q0 + w_shift;
                const bool full = columns == HALF;
                /* Whole vectors inside their rows need no lane masks: the common case on wide rows. */
                const bool interior = full && w0 >= 0 && w0 + span <= W;
                const maskv_t column_kept = lane_column < (maskv_t)columns;
                maskv_t keep[TAP_RUN];
#pragma unroll
                for (int t = 0; t < TAP_RUN; ++t) {
                    const int w = w0 + 2 * t;
                    keep[t] = lane >= (maskv_t)-w && lane < (maskv_t)(W - w) && column_kept;
                }
                accv_t grad[BLOCK_K], input[BLOCK_J];
                if (interior) {
#pragma unroll
                    for (int i = 0; i < BLOCK_K; ++i)
                        grad[i] = DUPLICATE_LANES(VLOAD(HALF, grad_row[i] + q0));
#pragma unroll
                    for (int j = 0; j < BLOCK_J; ++j)
                        input[j] = VLOAD(VEC, x_row[j / TAP_RUN] + w0 + 2 * (j % TAP_RUN));
                } else if (loads_inside) {
#pragma unroll
                    for (int i = 0; i < BLOCK_K; ++i)
                        grad[i] = KEEP_LANES(DUPLICATE_LANES(VLOAD(HALF, grad_row[i] + q0)), column_kept);
#pragma unroll
                    for (int j = 0; j < BLOCK_J; ++j)
                        input[j] = KEEP_LANES(VLOAD(VEC, x_row[j / TAP_RUN] + w0 + 2 * (j % TAP_RUN)),
                                              keep[j % TAP_RUN]);
                } else {
#pragma unroll
                    for (int i = 0; i < BLOCK_K; ++i)
                        grad[i] = DUPLICATE_LANES(
                            load_lanes_kept(grad_row[i] + q0, lane < (maskv_t)columns, grad_begin, grad_end).lo);
#pragma unroll
                    for (int j = 0; j < BLOCK_J; ++j)
                        input[j] = load_lanes_kept(x_row[j / TAP_RUN] + w0 + 2 * (j % TAP_RUN), keep[j % TAP_RUN],
                                                   x_begin, x_end);
                }
                OUTER_PRODUCT_ADD(acc, grad, input, BLOCK_J);
            }
        }
    }
#else
    const int col_stride = COLUMN_STRIDE(stride_w);
    const bool vector_stride = col_stride <= 2;
    for (int n = n_begin; n < n_end; ++n) {
        for (int p = p_begin; p < p_end; ++p) {
            const int h = p * stride_h + h_shift;
            for (int q0 = 0; q0 < Q; q0 += VEC) {
                const int lanes_valid = q0 + VEC <= Q ? VEC : Q - q0;  /* min() is a library call on PoCL 3.0 */
                const int col = q0 * col_stride + w_shift;
                /* Whole vectors inside their rows need no lane masks: the common case on wide rows. */
                const bool interior = lanes_valid == VEC && vector_stride && col >= 0 &&
                                      col + run_extent + LOAD_SPAN(col_stride) <= W;
                accv_t grad[BLOCK_K], input[BLOCK_J];
#pragma unroll
                for (int i = 0; i < BLOCK_K; ++i) {
                    __global const real_t *grad_row = grad_begin + ((n * K + grad_channel[i]) * P + p) * Q;
                    grad[i] = interior ? load_lanes(grad_row + q0, 1)
                                       : load_lanes_masked(grad_row, q0, 1, Q, lanes_valid, grad_begin, grad_end);
                }
#pragma unroll
                for (int j = 0; j < BLOCK_J; ++j) {
                    __global const real_t *x_row = x_begin + ((n * C + x_channel[j / TAP_RUN]) * H + h) * W;
                    const int tap_col = col + (j % TAP_RUN) * dil_w;
                    input[j] = interior ? load_lanes(x_row + tap_col, col_stride)
                                        : load_lanes_masked(x_row, tap_col, col_stride, W, lanes_valid, x_begin,
                                                            x_end);
                }
                OUTER_PRODUCT_ADD(acc, grad, input, BLOCK_J);
            }
        }
    }

#endif

    const int weight_count = K * Cg * R * S;
#pragma unroll
    for (int i = 0; i < BLOCK_K; ++i) {
#pragma unroll
        for (int j = 0; j < BLOCK_J; ++j) {
            const int c = c0 + j / TAP_RUN;
            if (k0 + i >= Kg || c >= Cg)
                continue;
#if TAP_PAIR
            const CAT(ACC_NAME, 2) totals = lane_pair_sums(acc[i][j]);
            const acc_t tap_totals[2] = {totals.lo, totals.hi};
            const int first_tap = s + 2 * (j % TAP_RUN);
#else
            const acc_t tap_totals[1] = {lane_sum(acc[i][j])};
            const int first_tap = s + j % TAP_RUN;
#endif
#pragma unroll
            for (int t = 0; t < (TAP_PAIR ? 2 : 1); ++t) {
                if (first_tap + t >= S)
                    continue;
                const int index = (((g * Kg + k0 + i) * Cg + c) * R + r) * S + first_tap + t;
                if (splits == 1)
                    STORE(tap_totals[t], grad_weight, grad_weight_offset + index);
                else
                    partial[split * weight_count + index] = tap_totals[t];
            }
        }
    }
}
