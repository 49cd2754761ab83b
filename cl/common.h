/*
 * clconv shared definitions: the storage type `real_t`, the accumulator
 * type `acc_t`, and element load/store helpers.
 *
 * REAL_BITS (16, 32 or 64) selects the dtype of every tensor argument.
 *   64: storage and accumulation in double (needs cl_khr_fp64).
 *   32: storage and accumulation in float.
 *   16: storage in half, read and written with vload_half/vstore_half_rte
 *       (core OpenCL 1.2, no cl_khr_fp16 needed), accumulation in float.
 *
 * Tensor layouts (row-major, innermost last):
 *   x      : N, C, H, W
 *   weight : K, C/groups, R, S
 *   y      : N, K, P, Q
 * with P = (H + pad_top + pad_bottom - dil_h*(R-1) - 1) / stride_h + 1 (likewise Q).
 * Output pixel (p, q) with kernel tap (r, s) reads input row
 * h = p*stride_h - pad_top + r*dil_h and column w = q*stride_w - pad_left + s*dil_w;
 * taps that land outside [0, H) x [0, W) read the zero padding.
 *
 * Every buffer argument comes with an element offset so that views into a
 * larger buffer (a batch slice of a pyopencl array) need no copy.
 */
#ifndef CLCONV_COMMON_H
#define CLCONV_COMMON_H

#ifndef REAL_BITS
#define REAL_BITS 32
#endif

#define CAT_(a, b) a##b
#define CAT(a, b) CAT_(a, b)

/* ACC_NAME is acc_t spelled as a macro, so that CAT(ACC_NAME, 8) names float8 or double8.
 * VLOAD/VSTORE move n consecutive elements between memory and an n-vector of acc_t.
 *
 * Global float and double vectors are loaded and stored through vector types aligned to their element
 * (TYPEn_u; vloadn asks no more of its address), not with vloadn/vstoren: PyPI's PoCL 3.0 calls its kernel
 * library for every one of those, spilling the register tile around each call (weight gradients 1.3-2.3x
 * slower there), where an access through such a type is one unaligned instruction on every compiler. */
#define UNALIGNED_VECTORS(type, bytes) \
    typedef type##2 type##2_u __attribute__((aligned(bytes))); \
    typedef type##4 type##4_u __attribute__((aligned(bytes))); \
    typedef type##8 type##8_u __attribute__((aligned(bytes))); \
    typedef type##16 type##16_u __attribute__((aligned(bytes)));
UNALIGNED_VECTORS(float, 4)
#if REAL_BITS == 64
#pragma OPENCL EXTENSION cl_khr_fp64 : enable
UNALIGNED_VECTORS(double, 8)
typedef double real_t;
#define ACC_NAME double
#define LOAD(ptr, i) ((ptr)[i])
#define STORE(value, ptr, i) ((ptr)[i] = (value))
#define VLOAD(n, ptr) (*(__global const CAT(CAT(double, n), _u) *)(ptr))
#define VSTORE(n, value, ptr) (*(__global CAT(CAT(double, n), _u) *)(ptr) = (value))
#elif REAL_BITS == 32
typedef float real_t;
#define ACC_NAME float
#define LOAD(ptr, i) ((ptr)[i])
#define STORE(value, ptr, i) ((ptr)[i] = (value))
#define VLOAD(n, ptr) (*(__global const CAT(CAT(float, n), _u) *)(ptr))
#define VSTORE(n, value, ptr) (*(__global CAT(CAT(float, n), _u) *)(ptr) = (value))
#elif REAL_BITS == 16
typedef half real_t;
#define ACC_NAME float
#define LOAD(ptr, i) vload_half((i), (ptr))
#define STORE(value, ptr, i) vstore_half_rte((value), (i), (ptr))
#define VLOAD(n, ptr) CAT(vload_half, n)(0, (ptr))
#define VSTORE(n, value, ptr) CAT(CAT(vstore_half, n), _rte)((value), 0, (ptr))
#else
#error "REAL_BITS must be 16, 32 or 64"
#endif

typedef ACC_NAME acc_t;

/* a*b + c, in the form each implementation compiles best (clconv/programs.py chooses):
 * - MULADD_CONTRACT (PoCL): written a*b + c and contracted into one fused multiply-add. PyPI's PoCL 3.0
 *   (LLVM 14) compiles fma() and mad() into a call to its kernel library per vector, 3x slower on whole
 *   convolutions (cl/peak_fma.cl: 6-10x on bare multiply-adds); PoCL 3.1 spilled fewer registers with it.
 * - else fma() where the device reports fused multiply-add (CL_FP_FMA), one hardware instruction: Intel's
 *   CPU runtime does not contract a*b + c, and ran 1.3-1.6x slower with it; mad() elsewhere. */
#if defined(MULADD_CONTRACT) && MULADD_CONTRACT
#pragma OPENCL FP_CONTRACT ON
#define MULADD(a, b, c) ((a) * (b) + (c))
#elif defined(USE_FMA) && USE_FMA
#define MULADD(a, b, c) fma((a), (b), (c))
#else
#define MULADD(a, b, c) mad((a), (b), (c))
#endif

/* A layer's shape and geometry as kernel parameters; clconv/kernel_signatures.py names them (ConvGeometry). */
#define CONV_GEOMETRY_PARAMS \
    const int N, const int C, const int H, const int W, \
    const int K, const int R, const int S, const int P, const int Q, \
    const int stride_h, const int stride_w, const int pad_top, const int pad_left, \
    const int dil_h, const int dil_w, const int groups

/* The weight-gradient kernels' parameters (GradWeightArgs in clconv/kernel_signatures.py): x, grad_output,
 * the split partial sums (NULL with one split), grad_weight, the batch split, the geometry. */
#define GRAD_WEIGHT_PARAMS \
    __global const real_t *restrict x, const int x_offset, \
    __global const real_t *restrict grad_output, const int grad_output_offset, \
    __global acc_t *restrict partial, \
    __global real_t *restrict grad_weight, const int grad_weight_offset, \
    const int n_per_split, const int splits, \
    CONV_GEOMETRY_PARAMS

/* The depth axis of a 3-D layer, as cl/unfold_depth.cl and cl/fold_depth.cl take it (DepthGeometry in
 * clconv/kernel_signatures.py): N images of C channels, D input frames, T kernel taps and D_out output frames
 * along depth, `plane` = H*W elements per frame, the depth stride, front padding and dilation. */
#define DEPTH_PARAMS \
    const int N, const int C, const int D, const int T, const int D_out, const int plane, \
    const int stride_d, const int pad_front, const int dil_d

/* Elements between x's channels and between its neighbouring columns, for kernels that read x one element at a
 * time: in (N, C, H, W) memory, or with X_CHANNELS_LAST in its channels-last (N, H, W, C) memory (the lanes
 * kernels, cl/conv2d_channel_lanes.cl and cl/conv2d_grad_weight_channel_lanes.cl). */
#if defined(X_CHANNELS_LAST) && X_CHANNELS_LAST
#define X_CHANNEL_STRIDE 1
#define X_PIXEL_STRIDE C
#else
#define X_CHANNEL_STRIDE (H * W)
#define X_PIXEL_STRIDE 1
#endif

/* Ceiling division for non-negative ints. */
#define DIV_UP(a, b) (((a) + (b) - 1) / (b))

/* First i >= 0 with i*stride + shift >= 0, and first i >= 0 with i*stride + shift >= limit. */
#define FIRST_INSIDE(shift, stride) ((shift) >= 0 ? 0 : DIV_UP(-(shift), (stride)))
#define FIRST_PAST(shift, stride, limit) ((limit) - (shift) <= 0 ? 0 : DIV_UP((limit) - (shift), (stride)))

#endif /* CLCONV_COMMON_H */
