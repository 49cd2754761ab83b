"""The parameters of every kernel in ``cl/``, each list defined once on the Python side.

A kernel's arguments are a NamedTuple whose fields are the kernel's own parameter names, in the kernel's
order; a caller fills one in by name with plain Python values. Each field's annotation says what the kernel
takes there: :data:`Buffer` for a ``__global`` pointer, a NumPy scalar type for a scalar. From those,
:func:`scalar_dtypes` gives what ``Kernel.set_scalar_arg_dtypes`` needs; kernel_check.checked_kernel sets it
once per built kernel, as pyopencl's own elementwise and reduction kernels do.

Parameter lists that cl/common.h declares as macros (CONV_GEOMETRY_PARAMS, GRAD_WEIGHT_PARAMS) are field
groups here, joined as the macros are. A parameter named like a Python keyword takes a trailing underscore
(conv2d_tiled's ``in`` is ``in_``). tests/test_kernel_signatures.py compares every field name with the name
the compiled kernel reports for that position.
"""

import typing

import numpy as np
import pyopencl as cl

#: A ``__global`` pointer: a buffer, or None for NULL.
Buffer = typing.Optional[cl.MemoryObjectHolder]
#: acc_t of cl/common.h: double when REAL_BITS is 64, float otherwise (see :func:`scalar_dtypes`).
Accumulator = np.floating

# CONV_GEOMETRY_PARAMS (cl/common.h): a layer's shape and geometry.
_CONV_GEOMETRY = (
    ("N", np.int32), ("C", np.int32), ("H", np.int32), ("W", np.int32),
    ("K", np.int32), ("R", np.int32), ("S", np.int32), ("P", np.int32), ("Q", np.int32),
    ("stride_h", np.int32), ("stride_w", np.int32), ("pad_top", np.int32), ("pad_left", np.int32),
    ("dil_h", np.int32), ("dil_w", np.int32), ("groups", np.int32),
)

ConvGeometry = typing.NamedTuple("ConvGeometry", _CONV_GEOMETRY)

ForwardDirectArgs = typing.NamedTuple("ForwardDirectArgs", (
    ("x", Buffer), ("x_offset", np.int32),
    ("weight", Buffer), ("weight_offset", np.int32),
    ("bias", Buffer), ("bias_offset", np.int32), ("has_bias", np.int32),
    ("y", Buffer), ("y_offset", np.int32),
) + _CONV_GEOMETRY)

# bias: C entries added to grad_input (the forward pass of a transposed convolution), or None.
GradInputDirectArgs = typing.NamedTuple("GradInputDirectArgs", (
    ("grad_output", Buffer), ("grad_output_offset", np.int32),
    ("weight", Buffer), ("weight_offset", np.int32),
    ("bias", Buffer), ("bias_offset", np.int32), ("has_bias", np.int32),
    ("grad_input", Buffer), ("grad_input_offset", np.int32),
) + _CONV_GEOMETRY)

# GRAD_WEIGHT_PARAMS (cl/common.h): every weight-gradient kernel's. partial: the split partial sums, None
# with one split.
GradWeightArgs = typing.NamedTuple("GradWeightArgs", (
    ("x", Buffer), ("x_offset", np.int32),
    ("grad_output", Buffer), ("grad_output_offset", np.int32),
    ("partial", Buffer),
    ("grad_weight", Buffer), ("grad_weight_offset", np.int32),
    ("n_per_split", np.int32), ("splits", np.int32),
) + _CONV_GEOMETRY)

GradBiasDirectArgs = typing.NamedTuple("GradBiasDirectArgs", (
    ("grad_output", Buffer), ("grad_output_offset", np.int32),
    ("partial", Buffer),
    ("grad_bias", Buffer), ("grad_bias_offset", np.int32),
    ("n_per_split", np.int32), ("splits", np.int32), ("N", np.int32), ("K", np.int32), ("PQ", np.int32),
))

ReducePartialsArgs = typing.NamedTuple("ReducePartialsArgs", (
    ("partial", Buffer), ("count", np.int32), ("splits", np.int32),
    ("out", Buffer), ("out_offset", np.int32),
))

# cl/conv2d_tiled.cl's header explains each parameter.
CorrelationArgs = typing.NamedTuple("CorrelationArgs", (
    ("in_", Buffer), ("in_offset", np.int32),
    ("weight", Buffer), ("weight_offset", np.int32),
    ("bias", Buffer), ("bias_offset", np.int32), ("has_bias", np.int32),
    ("out", Buffer), ("out_offset", np.int32),
    ("out_height", np.int32), ("out_width", np.int32), ("out_step_h", np.int32), ("out_step_w", np.int32),
    ("out_start_h", np.int32), ("out_start_w", np.int32),
    ("N", np.int32), ("Ci", np.int32), ("Hin", np.int32), ("Win", np.int32),
    ("Co", np.int32), ("R", np.int32), ("S", np.int32), ("Hout", np.int32), ("Wout", np.int32),
    ("groups", np.int32),
    ("stride_h", np.int32), ("stride_w", np.int32), ("offset_h", np.int32), ("offset_w", np.int32),
    ("dil_h", np.int32), ("dil_w", np.int32),
    ("ws_group", np.int32), ("ws_co", np.int32), ("ws_ci", np.int32), ("ws_r", np.int32), ("ws_s", np.int32),
))

# cl/conv2d_channel_lanes.cl: a forward pass with the output channels in the lanes; weight_by_tap is the
# (K, C/groups, R, S) weight transposed to (C/groups, R, S, K), at offset 0.
ChannelLanesArgs = typing.NamedTuple("ChannelLanesArgs", (
    ("x", Buffer), ("x_offset", np.int32),
    ("weight_by_tap", Buffer),
    ("bias", Buffer), ("bias_offset", np.int32), ("has_bias", np.int32),
    ("y", Buffer), ("y_offset", np.int32),
) + _CONV_GEOMETRY)

# cl/conv2d_grad_input_channel_lanes.cl: an input gradient with the input channels in the lanes; weight_by_tap
# is the (K, C/groups, R, S) weight transposed to (R, S, K, C/groups), at offset 0; bias: C entries, or None.
GradInputLanesArgs = typing.NamedTuple("GradInputLanesArgs", (
    ("grad_output", Buffer), ("grad_output_offset", np.int32),
    ("weight_by_tap", Buffer),
    ("bias", Buffer), ("bias_offset", np.int32), ("has_bias", np.int32),
    ("grad_input", Buffer), ("grad_input_offset", np.int32),
) + _CONV_GEOMETRY)

# cl/conv2d_grad_weight_depthwise_channels_last.cl: GradWeightArgs with the batch's output rows (n * P + p) cut
# into splits of rows_per_split, not its images.
DepthwiseGradWeightArgs = typing.NamedTuple("DepthwiseGradWeightArgs", (
    ("x", Buffer), ("x_offset", np.int32),
    ("grad_output", Buffer), ("grad_output_offset", np.int32),
    ("partial", Buffer),
    ("grad_weight", Buffer), ("grad_weight_offset", np.int32),
    ("rows_per_split", np.int32), ("splits", np.int32),
) + _CONV_GEOMETRY)

# DEPTH_PARAMS (cl/common.h): the depth axis of a 3-D layer (clconv/params_3d.py).
_DEPTH_GEOMETRY = (
    ("N", np.int32), ("C", np.int32), ("D", np.int32), ("T", np.int32), ("D_out", np.int32), ("plane", np.int32),
    ("stride_d", np.int32), ("pad_front", np.int32), ("dil_d", np.int32),
)

DepthGeometry = typing.NamedTuple("DepthGeometry", _DEPTH_GEOMETRY)

UnfoldDepthArgs = typing.NamedTuple("UnfoldDepthArgs", (
    ("in_", Buffer), ("in_offset", np.int32), ("cols", Buffer), ("cols_offset", np.int32),
) + _DEPTH_GEOMETRY)

# bias: C entries added to every frame (the forward pass of a transposed 3-D convolution), or None.
FoldDepthArgs = typing.NamedTuple("FoldDepthArgs", (
    ("cols", Buffer), ("cols_offset", np.int32),
    ("bias", Buffer), ("bias_offset", np.int32), ("has_bias", np.int32),
    ("out", Buffer), ("out_offset", np.int32),
) + _DEPTH_GEOMETRY)

SwapAxesArgs = typing.NamedTuple("SwapAxesArgs", (
    ("in_", Buffer), ("in_offset", np.int32), ("out", Buffer), ("out_offset", np.int32),
    ("A", np.int32), ("B", np.int32), ("M", np.int32), ("E", np.int32),
))

SplitPhasesArgs = typing.NamedTuple("SplitPhasesArgs", (
    ("in_", Buffer), ("in_offset", np.int32), ("phased", Buffer), ("phased_offset", np.int32),
    ("N", np.int32), ("C", np.int32), ("H", np.int32), ("W", np.int32), ("Hp", np.int32), ("Wp", np.int32),
    ("stride_h", np.int32), ("stride_w", np.int32), ("pad_top", np.int32), ("pad_left", np.int32),
    ("phases_h", np.int32), ("phases_w", np.int32),
))

PhaseTapsArgs = typing.NamedTuple("PhaseTapsArgs", (
    ("plain", Buffer), ("plain_offset", np.int32), ("phased", Buffer), ("phased_offset", np.int32),
    ("to_phases", np.int32), ("KC", np.int32), ("R", np.int32), ("S", np.int32),
    ("stride_h", np.int32), ("stride_w", np.int32), ("phases_h", np.int32), ("phases_w", np.int32),
    ("Rp", np.int32), ("Sp", np.int32),
))

# in: (N, S, C) channels-last memory, out: (N, C, S), S the product of the spatial sizes (clconv/channels_last.py).
ChannelsFirstArgs = typing.NamedTuple("ChannelsFirstArgs", (
    ("in_", Buffer), ("in_offset", np.int32), ("out", Buffer), ("out_offset", np.int32),
    ("N", np.int32), ("S", np.int32), ("C", np.int32),
))

# out[n, i, j] = bias[j] + sum A[n, r, i] * B[n, r, j] of a 1x1 layer on channels-last memory
# (cl/pointwise_product.cl, clconv/channels_last_pointwise.py); strides in elements.
PointwiseProductArgs = typing.NamedTuple("PointwiseProductArgs", (
    ("a", Buffer), ("a_offset", np.int32), ("a_batch", np.int32), ("a_r", np.int32), ("a_i", np.int32),
    ("b", Buffer), ("b_offset", np.int32), ("b_batch", np.int32), ("b_r", np.int32),
    ("bias", Buffer), ("bias_offset", np.int32), ("has_bias", np.int32),
    ("out", Buffer), ("out_offset", np.int32), ("out_batch", np.int32), ("out_i", np.int32), ("out_j", np.int32),
    ("partial", Buffer), ("n_per_split", np.int32),
    ("N", np.int32), ("I", np.int32), ("J", np.int32), ("R", np.int32),
))

PeakFmaArgs = typing.NamedTuple("PeakFmaArgs", (
    ("out", Buffer), ("multiplier", Accumulator), ("addend", Accumulator), ("iterations", np.int32),
))

PeakCopyArgs = typing.NamedTuple("PeakCopyArgs", (("src", Buffer), ("dst", Buffer)))

#: Each kernel (also the name of its file, cl/<kernel>.cl) and the arguments it takes.
SIGNATURES = {
    "conv2d_forward_direct": ForwardDirectArgs,
    "conv2d_grad_input_direct": GradInputDirectArgs,
    "conv2d_grad_weight_direct": GradWeightArgs,
    "conv2d_grad_bias_direct": GradBiasDirectArgs,
    "reduce_partials": ReducePartialsArgs,
    "conv2d_tiled": CorrelationArgs,
    "conv2d_grad_weight_tiled": GradWeightArgs,
    # Its grad_output transposed to (N, P, Q, K), at offset 0.
    "conv2d_grad_weight_channel_lanes": GradWeightArgs,
    "conv2d_channel_lanes": ChannelLanesArgs,
    "conv2d_grad_input_channel_lanes": GradInputLanesArgs,
    # The forward and input-gradient kernels' weight_by_tap is the (C, 1, R, S) weight transposed to (R, S, C).
    "conv2d_depthwise_channels_last": ChannelLanesArgs,
    "conv2d_grad_input_depthwise_channels_last": GradInputLanesArgs,
    "conv2d_grad_weight_depthwise_channels_last": DepthwiseGradWeightArgs,
    "unfold_depth": UnfoldDepthArgs,
    "fold_depth": FoldDepthArgs,
    "swap_axes": SwapAxesArgs,
    "split_phases": SplitPhasesArgs,
    "phase_taps": PhaseTapsArgs,
    "channels_first": ChannelsFirstArgs,
    "pointwise_product": PointwiseProductArgs,
    "peak_fma": PeakFmaArgs,
    "peak_copy": PeakCopyArgs,
}


def check_args(kernel: str, args: tuple) -> None:
    """TypeError unless ``args`` were built as ``kernel``'s signature: a launch cannot pass one kernel's
    arguments to another."""
    expected = SIGNATURES[kernel]
    if type(args) is not expected:
        raise TypeError(f"{kernel} takes {expected.__name__}, got {type(args).__name__}")


def scalar_dtypes(kernel: str, defines: dict) -> list:
    """``Kernel.set_scalar_arg_dtypes``'s list for ``kernel`` built with ``defines``: None for a buffer, the
    dtype of each scalar (an acc_t's follows REAL_BITS, as cl/common.h does)."""
    accumulator = np.dtype(np.float64 if defines.get("REAL_BITS") == 64 else np.float32)
    dtypes = []
    for annotation in SIGNATURES[kernel].__annotations__.values():
        if annotation is Buffer:
            dtypes.append(None)
        elif annotation is Accumulator:
            dtypes.append(accumulator)
        else:
            dtypes.append(np.dtype(annotation))
    return dtypes
