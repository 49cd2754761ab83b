"""The geometry of one 3-D convolution layer, validated once, and the 2-D layer that computes it.

Layouts: x is (N, C, D, H, W), weight is (K, C/groups, T, R, S), y is (N, K, D_out, P, Q): D, T and D_out
are the depth axis (frames of a video, slices of a scan) of the input, the kernel and the output.

A 3-D layer runs as one 2-D layer (:attr:`Conv3DParams.layer`): the input is unfolded along depth into
``cols`` (N, D_out, C, T, H, W), where ``cols[n, d, c, t] = x[n, c, d*stride_d - pad_front + t*dil_d]`` (zero
outside the input), which is the 2-D input (N*D_out, C*T, H, W) of a layer with the weight read as
(K, C/groups * T, R, S): its output (N*D_out, K, P, Q) is y with the depth and channel axes swapped.
clconv/plan_3d.py runs the passes that way; the unfolded input costs T times the input's memory.

stride and dilation: an int or a (d, h, w) triple. padding: an int, (pd, ph, pw), one (before, after) pair
per axis, "valid", or "same" (stride 1).
"""

from __future__ import annotations

import dataclasses
import typing

import numpy as np

from . import params
from .params import Conv2DParams, ConvTranspose2DParams, dtype_name

#: stride and dilation of a 3-D layer: an int or a (d, h, w) triple.
Triple = typing.Union[int, typing.Tuple[int, int, int]]
#: padding of a 3-D layer: an int, (pd, ph, pw), ((front, back), (top, bottom), (left, right)), "valid" or "same".
Padding3D = typing.Union[int, str, typing.Tuple[int, int, int], typing.Tuple[typing.Tuple[int, int], ...]]

AXES = "dhw"


def _pairs(padding: tuple) -> tuple:
    """(front, back, top, bottom, left, right) -> ((front, back), (top, bottom), (left, right))."""
    return tuple(zip(padding[0::2], padding[1::2]))


@dataclasses.dataclass(frozen=True)
class Conv3DParams:
    """Everything that fixes the shape of a 3-D convolution and its passes."""

    N: int
    C: int
    D: int
    H: int
    W: int
    K: int
    T: int
    R: int
    S: int
    stride: tuple[int, int, int] = (1, 1, 1)
    padding: tuple[int, int, int, int, int, int] = (0,) * 6  # front, back, top, bottom, left, right
    dilation: tuple[int, int, int] = (1, 1, 1)
    groups: int = 1
    dtype: np.dtype = np.dtype(np.float32)

    @classmethod
    def create(cls, input_shape, weight_shape, stride=1, padding=0, dilation=1, groups=1, dtype=np.float32,
               input_name="x", weight_name="weight") -> "Conv3DParams":
        """Validate user arguments and build the params (raises ValueError/TypeError naming the argument)."""
        (N, C, D, H, W), (K, Cg, T, R, S), stride, dilation, groups = params.layer_arguments(
            input_name, input_shape, "(N, C, D, H, W)", weight_name, weight_shape, "(K, C/groups, T, R, S)",
            stride, dilation, groups, AXES)
        params.check_channels(C, K, Cg, groups, input_name, weight_name)
        padding = params.normalize_padding(padding, (T, R, S), stride, dilation, AXES)
        dtype = params._supported_dtype(dtype)
        layer = cls(N, C, D, H, W, K, T, R, S, stride, padding, dilation, groups, dtype)
        padded = tuple(size + before + after for size, before, after in zip((D, H, W), padding[0::2], padding[1::2]))
        if any(span > size for span, size in zip(layer.dilated_kernel, padded)):
            raise ValueError(
                f"dilated kernel {'x'.join(map(str, layer.dilated_kernel))} (weight {T}x{R}x{S}, dilation "
                f"{dilation}) is larger than the padded input {'x'.join(map(str, padded))} ({input_name} "
                f"{D}x{H}x{W}, padding {padding})")
        params._check_tensor_sizes(layer, input_name, weight_name)
        # The unfolded input and the 2-D layer's output are tensors of their own, indexed by the same kernels.
        params._check_tensor_sizes(layer.layer, f"{input_name} unfolded along depth", weight_name)
        return layer

    # -- derived sizes -------------------------------------------------------------------------
    @property
    def dilated_kernel(self) -> tuple[int, int, int]:
        return tuple(dil * (taps - 1) + 1 for dil, taps in zip(self.dilation, (self.T, self.R, self.S)))

    def _out_size(self, axis: int, size: int) -> int:
        span = size + self.padding[2 * axis] + self.padding[2 * axis + 1] - self.dilated_kernel[axis]
        return span // self.stride[axis] + 1

    @property
    def D_out(self) -> int:
        return self._out_size(0, self.D)

    @property
    def P(self) -> int:
        return self._out_size(1, self.H)

    @property
    def Q(self) -> int:
        return self._out_size(2, self.W)

    @property
    def C_per_group(self) -> int:
        return self.C // self.groups

    @property
    def input_shape(self) -> tuple[int, int, int, int, int]:
        return (self.N, self.C, self.D, self.H, self.W)

    @property
    def weight_shape(self) -> tuple[int, int, int, int, int]:
        return (self.K, self.C_per_group, self.T, self.R, self.S)

    @property
    def output_shape(self) -> tuple[int, int, int, int, int]:
        return (self.N, self.K, self.D_out, self.P, self.Q)

    @property
    def bias_shape(self) -> tuple[int]:
        return (self.K,)

    @property
    def layer(self) -> Conv2DParams:
        """The 2-D layer that computes this one on the input unfolded along depth (see the module docstring)."""
        return Conv2DParams(self.N * self.D_out, self.C * self.T, self.H, self.W, self.K, self.R, self.S,
                            self.stride[1:], self.padding[2:], self.dilation[1:], self.groups, self.dtype)

    @property
    def unfolded_shape(self) -> tuple[int, ...]:
        """The input unfolded along depth, (N, D_out, C, T, H, W)."""
        return (self.N, self.D_out, self.C, self.T, self.H, self.W)

    def result_shape(self, pass_name: str) -> tuple[int, ...]:
        return params.result_shape(self, pass_name)

    @property
    def conv_args(self) -> dict:
        """stride, padding (one (before, after) pair per axis), dilation and groups as the 3-D functions take
        them."""
        return {"stride": self.stride, "padding": _pairs(self.padding), "dilation": self.dilation,
                "groups": self.groups}

    def flops(self, pass_name: str = "forward") -> int:
        """Multiply-adds x 2 of a pass (the 2-D layer's: the same products), as Conv2DParams.flops counts."""
        return self.layer.flops(pass_name)

    def bytes_moved(self, pass_name: str = "forward") -> int:
        """Minimum bytes each pass reads and writes (every tensor of the 3-D layer once)."""
        return params.bytes_moved(self, pass_name)

    def with_dtype(self, dtype) -> "Conv3DParams":
        return dataclasses.replace(self, dtype=np.dtype(dtype))

    @property
    def label(self) -> str:
        """Readable id such as ``3x3x3-s1-p1-d1-g1-fp32`` (values that differ per axis spelled out)."""
        return params.layer_label((self.T, self.R, self.S), self.stride, self.padding, self.dilation, self.groups,
                                  self.dtype)

    def describe(self) -> str:
        return (f"x{self.input_shape} w{self.weight_shape} -> y{self.output_shape} stride={self.stride} "
                f"padding(f,b,t,b,l,r)={self.padding} dilation={self.dilation} groups={self.groups} "
                f"{dtype_name(self.dtype)}")


# -- per-pass entry points: the call's arrays in, validated params out (as params.forward_params etc.) ----

CONV3D = params.EntryPoints(Conv3DParams, "(N, C, D, H, W)", "(K, C/groups, T, R, S)", "(N, K, D_out, P, Q)")
forward_params = CONV3D.forward
grad_input_params = CONV3D.grad_input
grad_weight_params = CONV3D.grad_weight


def grad_bias_params(grad_output) -> Conv2DParams:
    """The bias gradient of a 3-D layer is the 2-D one of grad_output (N, K, D_out, P, Q) read as
    (N, K, D_out*P, Q): the 1x1 depthwise 2-D layer of that shape (params.grad_bias_params)."""
    N, K, D, P, Q = CONV3D.grad_output_shape(grad_output)
    return params.Conv2DParams.create((N, K, D * P, Q), (K, 1, 1, 1), groups=K, dtype=grad_output.dtype,
                                      input_name="grad_output")


# -- transposed convolution -------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class ConvTranspose3DParams(ConvTranspose2DParams):
    """A transposed 3-D convolution, described by the 3-D convolution whose input gradient it is (``conv``,
    a :class:`Conv3DParams`), as :class:`clconv.params.ConvTranspose2DParams` describes a 2-D one.

    Layouts: x (N, C_in, D, H, W), weight (C_in, C_out/groups, kD, kH, kW), y (N, C_out, D_out, H_out, W_out),
    each output size as PyTorch's ``conv_transpose3d`` computes it.
    """

    @classmethod
    def create(cls, input_shape, weight_shape, stride=1, padding=0, output_padding=0, groups=1, dilation=1,
               dtype=np.float32, input_name="x", weight_name="weight") -> "ConvTranspose3DParams":
        """Validate user arguments and build the params (raises ValueError/TypeError naming the argument)."""
        (N, C_in, D, H, W), (K, C_out_g, T, R, S), stride, dilation, groups = params.layer_arguments(
            input_name, input_shape, "(N, C_in, D, H, W)", weight_name, weight_shape,
            "(C_in, C_out/groups, kD, kH, kW)", stride, dilation, groups, AXES)
        if C_in % groups:
            raise ValueError(f"groups={groups} must divide the input channels C_in={C_in} "
                             f"({params._dim(input_name, 1)})")
        if K != C_in:
            raise ValueError(f"channel mismatch: {input_name} has C_in={C_in} channels but "
                             f"{params._dim(weight_name, 0)}={K}; a transposed convolution's weight is "
                             f"(C_in, C_out/groups, kD, kH, kW)")
        if isinstance(padding, str):
            raise ValueError(f"padding must be an int, (pd, ph, pw) or one (before, after) pair per axis for a "
                             f"transposed convolution ('same' and 'valid' are not defined there), got {padding!r}")
        padding = params.normalize_padding(padding, (T, R, S), stride, dilation, AXES)
        output_padding = params.output_padding_axes(output_padding, stride, dilation, AXES)
        dtype = params._supported_dtype(dtype)
        axes = [params.transposed_axis(*axis, input_name) for axis in zip(
            AXES, (D, H, W), stride, dilation, (T, R, S), padding[0::2], padding[1::2], output_padding)]
        conv_padding = sum(((before, after) for before, (_, after) in zip(padding[0::2], axes)), ())
        conv = Conv3DParams(N, C_out_g * groups, *(size for size, _ in axes), C_in, T, R, S, stride, conv_padding,
                            dilation, groups, dtype)
        layer = cls(conv, padding, output_padding)
        params._check_tensor_sizes(layer, input_name, weight_name)
        params._check_tensor_sizes(conv.layer, "grad_output unfolded along depth", weight_name)
        return layer

    @property
    def conv_args(self) -> dict:
        """stride, padding (one (before, after) pair per axis), output_padding, groups and dilation as the
        transposed 3-D functions take them."""
        return {"stride": self.conv.stride, "padding": _pairs(self.padding), "output_padding": self.output_padding,
                "groups": self.conv.groups, "dilation": self.conv.dilation}

    def describe(self) -> str:
        return (f"x{self.input_shape} w{self.weight_shape} -> y{self.output_shape} (transposed) "
                f"stride={self.conv.stride} padding(f,b,t,b,l,r)={self.padding} "
                f"output_padding={self.output_padding} dilation={self.conv.dilation} groups={self.conv.groups} "
                f"{dtype_name(self.dtype)}")


TRANSPOSED3D = params.EntryPoints(ConvTranspose3DParams, "(N, C_in, D, H, W)",
                                  "(C_in, C_out/groups, kD, kH, kW)", "(N, C_out, D_out, H_out, W_out)", "(C_out,)")
transpose_forward_params = TRANSPOSED3D.forward
transpose_grad_input_params = TRANSPOSED3D.grad_input
transpose_grad_weight_params = TRANSPOSED3D.grad_weight
