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
 * With TAP_PAIR (column stride 2, dilation 1 along the row) a work-item owns two neighbouring taps (s, s+1)
 * of its row r: at stride 2, tap s reads the even elements of two consecutive vectors and tap s+1 the odd
 * ones, so one pair of loads feeds both, where a single tap needs the same two loads and a shuffle for half
 * of what they hold. The last tap of an odd S has no partner; its work-item skips the second half.
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
#define ROW_TAPS (TAP_PAIR ? 2 : TAP_RUN)
#if TAP_PAIR && (FLAT_PLANE || COL_STRIDE != 2)
#error "TAP_PAIR needs rows read at a column stride of 2 (COL_STRIDE 2, no FLAT_PLANE)"
#endif
#if TAP_RUN > 1 && (TAP_PAIR || ACROSS_IMAGES || COL_STRIDE != 1)
#error "TAP_RUN needs rows read at a column stride of 1 (COL_STRIDE 1), without TAP_PAIR or ACROSS_IMAGES"
#endif
/* Input vectors of one step, and the tile's second axis: BLOCK_C channels x TAP_RUN taps, channel-major. */
#define BLOCK_J (BLOCK_C * TAP_RUN)

#include "vector.h"

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
#if TAP_PAIR
    accv_t acc_next[BLOCK_K][BLOCK_C];  /* tap s + 1 */
#pragma unroll
    for (int i = 0; i < BLOCK_K; ++i)
#pragma unroll
        for (int j = 0; j < BLOCK_C; ++j)
            acc_next[i][j] = (accv_t)0;
    const bool has_next = s + 1 < S;
#endif

    /* Output rows whose tap r lands inside the input. */
    const int h_shift = r * dil_h - pad_top;
    const int w_shift = s * dil_w - pad_left;
    const int p_begin = FIRST_INSIDE(h_shift, stride_h);
    const int p_end = min(P, FIRST_PAST(h_shift, stride_h, H));

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
        const int last_tap = (TAP_RUN - 1) * dil_w;
        const bool loads_inside = (n * C + x_channel[0]) * plane + f_begin + shift >= 0 &&
                                  (n * C + x_channel[BLOCK_C - 1]) * plane + f_last + shift + last_tap + VEC <=
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
                                      col + (TAP_RUN - 1) * dil_w + LOAD_SPAN(col_stride) <= W;
                accv_t grad[BLOCK_K], input[BLOCK_J];
#if TAP_PAIR
                /* Short rows (16 output columns from 32 padded input ones) have no interior vectors at all:
                 * there one pair of loads still feeds both taps, each half masked on its own columns. */
                const bool full_lanes = lanes_valid == VEC;
#pragma unroll
                for (int i = 0; i < BLOCK_K; ++i) {
                    __global const real_t *grad_row = grad_begin + ((n * K + grad_channel[i]) * P + p) * Q;
                    grad[i] = full_lanes ? VLOAD(VEC, grad_row + q0)
                                         : load_lanes_masked(grad_row, q0, 1, Q, lanes_valid, grad_begin, grad_end);
                }
                __global const real_t *x_row[BLOCK_C];
#pragma unroll
                for (int j = 0; j < BLOCK_C; ++j)
                    x_row[j] = x_begin + ((n * C + x_channel[j]) * H + h) * W;
                accv_t input_next[BLOCK_C];
                if (interior) {
#pragma unroll
                    for (int j = 0; j < BLOCK_C; ++j) {
                        const accv_t low = VLOAD(VEC, x_row[j] + col);
                        const accv_t high = VLOAD(VEC, x_row[j] + col + VEC);
                        input[j] = (accv_t)(low.even, high.even);
                        input_next[j] = (accv_t)(low.odd, high.odd);
                    }
                } else {
                    const maskv_t even_column = lane_index() * (maskv_t)2 + (maskv_t)col;
                    const maskv_t lane_kept = lane_index() < (maskv_t)lanes_valid;
                    const maskv_t keep = even_column >= (maskv_t)0 && even_column < (maskv_t)W && lane_kept;
                    const maskv_t keep_next =
                        has_next ? (even_column >= (maskv_t)-1 && even_column < (maskv_t)(W - 1) && lane_kept)
                                 : (maskv_t)0;
#pragma unroll
                    for (int j = 0; j < BLOCK_C; ++j) {
                        if (x_row[j] + col >= x_begin && x_row[j] + col + 2 * VEC <= x_end) {
                            const accv_t low = VLOAD(VEC, x_row[j] + col);
                            const accv_t high = VLOAD(VEC, x_row[j] + col + VEC);
                            input[j] = KEEP_LANES((accv_t)(low.even, high.even), keep);
                            input_next[j] = KEEP_LANES((accv_t)(low.odd, high.odd), keep_next);
                        } else {
                            input[j] = load_lanes_masked(x_row[j], col, 2, W, lanes_valid, x_begin, x_end);
                            input_next[j] = has_next ? load_lanes_masked(x_row[j], col + 1, 2, W, lanes_valid,
                                                                         x_begin, x_end)
                                                     : (accv_t)0;
                        }
                    }
                }
#else
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
#endif
                OUTER_PRODUCT_ADD(acc, grad, input, BLOCK_J);
#if TAP_PAIR
                if (has_next) {
                    OUTER_PRODUCT_ADD(acc_next, grad, input_next, BLOCK_C);
                }
#endif
            }
        }
    }

#endif

    const int weight_count = K * Cg * R * S;
#pragma unroll
    for (int i = 0; i < BLOCK_K; ++i) {
#pragma unroll
        for (int j = 0; j < BLOCK_J; ++j) {
            const int c = c0 + j / TAP_RUN, tap = s + j % TAP_RUN;
            if (k0 + i >= Kg || c >= Cg || tap >= S)
                continue;
            const int index = (((g * Kg + k0 + i) * Cg + c) * R + r) * S + tap;
            const acc_t total = lane_sum(acc[i][j]);
            if (splits == 1)
                STORE(total, grad_weight, grad_weight_offset + index);
            else
                partial[split * weight_count + index] = total;
#if TAP_PAIR
            if (has_next) {
                const acc_t next_total = lane_sum(acc_next[i][j]);
                if (splits == 1)
                    STORE(next_total, grad_weight, grad_weight_offset + index + 1);
                else
                    partial[split * weight_count + index + 1] = next_total;
            }
#endif
        }
    }
}
