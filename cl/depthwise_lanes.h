/*
 * What the depthwise kernels on channels-last memory share (cl/conv2d_depthwise_channels_last.cl,
 * cl/conv2d_grad_input_depthwise_channels_last.cl, cl/conv2d_grad_weight_depthwise_channels_last.cl): a
 * depthwise layer has one input and one output channel per group (groups == C == K), so channel c of the output
 * reads channel c of the input alone, and in (N, H, W, C) memory VEC consecutive channels of one position are
 * one vector load. Each kernel keeps VEC channels in the lanes of its vectors, every lane a channel of its own,
 * so nothing is broadcast and no lane is ever summed with another.
 *
 * The channels are cut into DIV_UP(C, VEC) vectors, C >= VEC (the host picks VEC so); the last vector starts at
 * C - VEC instead, overlapping the one before, and stores only its own lanes, so that every channel is written
 * once. Include common.h, define VEC and include vector.h first.
 */
#ifndef CLCONV_DEPTHWISE_LANES_H
#define CLCONV_DEPTHWISE_LANES_H

#define CHANNEL_VECTORS(C) DIV_UP((C), VEC)

/* The first channel of channel vector `vector` of C. */
inline int vector_first_channel(int vector, int C)
{
    return min(vector * VEC, C - VEC);
}

#ifdef COLUMNS
/* acc[j] for columns j >= first_column, lanes >= first_lane, into a channels-first output: lane l of column j
 * goes to out[start + l * plane + j], `start` being lane 0's element of column 0 and `plane` the elements
 * between two channels. The lanes go through a private copy, as in cl/conv2d_channel_lanes.cl. */
inline void store_columns(const accv_t acc[COLUMNS], int first_lane, int first_column, __global real_t *out,
                          int start, int plane)
{
    acc_t lanes[COLUMNS][VEC];
#pragma unroll
    for (int j = 0; j < COLUMNS; ++j)
        CAT(vstore, VEC)(acc[j], 0, lanes[j]);
    for (int lane = first_lane; lane < VEC; ++lane)
        for (int j = first_column; j < COLUMNS; ++j)
            STORE(lanes[j][lane], out, start + lane * plane + j);
}
#endif

#endif /* CLCONV_DEPTHWISE_LANES_H */
