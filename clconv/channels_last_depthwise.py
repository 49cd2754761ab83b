"""Depthwise layers on channels-last inputs, read in place with the channels in the vector lanes.

A depthwise layer (groups == C == K: MobileNet's 3x3 layers) sends each input channel to one output channel
alone, so its passes have no product over the channels to vectorise and the plan's kernels run them with
vectors along the rows, on channels-first memory. Channels-last memory (N, *spatial, C) holds instead VEC
consecutive channels of one position as one vector, and these layers are all memory traffic, where converting
the inputs first (clconv.channels_last) cost as much as the pass. So three kernels read that memory as it lies,
one channel per lane (cl/depthwise_lanes.h):

- forward, x channels-last: cl/conv2d_depthwise_channels_last.cl;
- input gradient, grad_output channels-last: cl/conv2d_grad_input_depthwise_channels_last.cl;
- weight gradient, x and grad_output both channels-last: cl/conv2d_grad_weight_depthwise_channels_last.cl,
  summed over the batch's output rows in fixed splits.

Forward pass and input gradient read the (C, 1, R, S) weight transposed to (R, S, C), copied for each call.
The outputs stay channels-first, as every pass's output is; a weight gradient with one input channels-first
converts the other.
"""

from __future__ import annotations

import functools

import numpy as np

from . import channels_last
from .algorithms import base
from .algorithms.base import DeviceTensor, KernelLauncher, accumulator_bytes, bias_args, div_up
from .algorithms.tiled import channel_lanes_columns, column_stride_define, widest_lanes
from .kernel_signatures import ChannelLanesArgs, DepthwiseGradWeightArgs, GradInputLanesArgs
from .params import Conv2DParams

#: The inputs of each pass that must be channels-last for the pass to run here.
CHANNELS_LAST_OPERANDS = {"forward": ("x",), "grad_input": ("grad_output",), "grad_weight": ("x", "grad_output")}

# Output columns per work-item of the forward pass and input gradient: 8 vector accumulators, a quarter of
# AVX-512's registers, which leaves room for the weight and input vectors.
MOST_COLUMNS = 8
# Accumulators of a weight-gradient work-item (TAP_ROWS rows of S taps): whole 3x3 and 5x5 kernels.
MOST_TAP_ACCUMULATORS = 25


def is_depthwise(params: Conv2DParams) -> bool:
    """Whether a layer has one input and one output channel per group, at least two channels (a vector's)."""
    return params.groups == params.C == params.K and params.C >= 2


def reads_in_place(params: Conv2DParams, pass_name: str, channels_last_inputs,
                   max_workspace_bytes: int | None = None) -> bool:
    """Whether ``pass_name`` of ``params`` runs on this module's kernels, given the names of the pass's inputs
    that are channels-last (``channels_last_inputs``): not where the forward pass's or input gradient's weight copy
    exceeds ``max_workspace_bytes`` (the weight gradient's partial sums keep within it by themselves)."""
    operands = CHANNELS_LAST_OPERANDS.get(pass_name)
    copy_fits = (pass_name == "grad_weight" or max_workspace_bytes is None
                 or params.C * params.R * params.S * params.dtype.itemsize <= max_workspace_bytes)
    return (bool(operands) and is_depthwise(params) and copy_fits
            and all(name in channels_last_inputs for name in operands))


class DepthwiseChannelsLast(KernelLauncher):
    """Launches the three depthwise channels-last kernels for one dtype on one target."""

    def __init__(self, target, dtype):
        super().__init__(target, dtype)
        self.widest = widest_lanes(np.dtype(dtype), target.info)

    def lanes(self, channels: int) -> int:
        """Channels per vector: the device's widest vector, narrowed to fit ``channels`` (>= 2)."""
        lanes = self.widest
        while lanes > channels:
            lanes //= 2
        return lanes

    def _local(self, p: Conv2DParams) -> tuple:
        """The work-group of the forward pass and input gradient: consecutive columns of one channel vector, or on
        PoCL, where a layer has 4 channel vectors or more, consecutive channel vectors of one column block (one
        position's channels are contiguous in memory). Measured on Zen 4 (PoCL 3.1, end to end, alternating): 8
        channel vectors per work-group 1.25x faster than 8 column blocks on MobileNet-v2 features.14.dw (60
        vectors, 7x7 planes), 1.03-1.15x on features.2.dw-s2 (6), 0.83-1.0x on features.1.dw (2); Intel's runtime
        0.89-1.19x, no rule, so it keeps the columns."""
        if self.target.info.implementation == "pocl" and div_up(p.C, self.lanes(p.C)) >= 4:
            return (1, self.local_width, 1)
        return (self.local_width, 1, 1)

    def _weight_by_tap(self, p: Conv2DParams, weight: DeviceTensor, wait_for):
        """The (C, 1, R, S) weight copied as (R, S, C), and the copy's event."""
        return channels_last.transposed(self.target, p.dtype, weight, p.C, p.R * p.S, wait_for)

    def forward(self, p: Conv2DParams, x: DeviceTensor, weight: DeviceTensor, bias, y: DeviceTensor, wait_for):
        """y (channels-first) from x's channels-last memory; returns the last event."""
        by_tap, copied = self._weight_by_tap(p, weight, wait_for)
        lanes, columns = self.lanes(p.C), channel_lanes_columns(p.Q, MOST_COLUMNS)
        args = ChannelLanesArgs(x=x.buffer, x_offset=x.offset, weight_by_tap=by_tap, **bias_args(bias),
                                y=y.buffer, y_offset=y.offset, **base.conv_geometry(p)._asdict())
        defines = {"VEC": lanes, "COLUMNS": columns, **column_stride_define(p.stride[1])}
        size = (p.P * div_up(p.Q, columns), div_up(p.C, lanes), p.N)
        return self.launch("conv2d_depthwise_channels_last", defines, size, self._local(p), args, [copied])

    def grad_input(self, p: Conv2DParams, grad_output: DeviceTensor, weight: DeviceTensor, bias,
                   grad_input: DeviceTensor, wait_for):
        """grad_input (channels-first) from grad_output's channels-last memory; ``bias`` (C entries) as
        Conv2DPlan.grad_input adds it."""
        by_tap, copied = self._weight_by_tap(p, weight, wait_for)
        lanes, columns = self.lanes(p.C), channel_lanes_columns(p.W, MOST_COLUMNS)
        args = GradInputLanesArgs(grad_output=grad_output.buffer, grad_output_offset=grad_output.offset,
                                  weight_by_tap=by_tap, **bias_args(bias), grad_input=grad_input.buffer,
                                  grad_input_offset=grad_input.offset, **base.conv_geometry(p)._asdict())
        defines = {"VEC": lanes, "COLUMNS": columns, **column_stride_define(p.stride[1])}
        size = (p.H * div_up(p.W, columns), div_up(p.C, lanes), p.N)
        return self.launch("conv2d_grad_input_depthwise_channels_last", defines, size, self._local(p), args,
                           [copied])

    def grad_weight(self, p: Conv2DParams, x: DeviceTensor, grad_output: DeviceTensor, grad_weight: DeviceTensor,
                    wait_for, max_workspace_bytes=None):
        """grad_weight from the channels-last memory of x and grad_output. The sum runs in a fixed order: the
        batch's N * P output rows in splits fixed by the layer (enough work-items to fill the device, as
        clconv.algorithms.base.split_batch cuts them, within ``max_workspace_bytes`` of partial sums), each split
        row by row, then the splits in order."""
        lanes = self.lanes(p.C)
        tap_rows = max(1, min(p.R, MOST_TAP_ACCUMULATORS // p.S))
        items = div_up(p.C, lanes) * div_up(p.R, tap_rows)
        count = p.C * p.R * p.S
        rows_per_split, splits = base.split_batch(p.N * p.P, items, base.REDUCTION_TARGET_ITEMS, count,
                                                  accumulator_bytes(p), max_workspace_bytes)
        defines = {"VEC": lanes, "TAP_ROWS": tap_rows, "S_TAPS": p.S}
        size = (div_up(p.C, lanes), div_up(p.R, tap_rows), splits)
        # One work-item per work-group on CPUs: groups of 8 splits measured 1.0-1.25x slower on PoCL 3.1 (Zen 4,
        # MobileNet-v2's depthwise layers) and no faster on Intel's runtime. GPUs take groups along the splits, as a
        # layer may have a single channel vector and row of taps.
        info = self.target.info
        local = (1, 1, 1) if info.type == "CPU" else (1, 1, min(self.local_width, info.device.max_work_item_sizes[2]))

        def launch_split(partial):
            args = DepthwiseGradWeightArgs(x=x.buffer, x_offset=x.offset, grad_output=grad_output.buffer,
                                           grad_output_offset=grad_output.offset, partial=partial,
                                           grad_weight=grad_weight.buffer, grad_weight_offset=grad_weight.offset,
                                           rows_per_split=rows_per_split, splits=splits,
                                           **base.conv_geometry(p)._asdict())
            return self.launch("conv2d_grad_weight_depthwise_channels_last", defines, size, local, args, wait_for)

        return self.sum_in_splits(count, splits, accumulator_bytes(p), grad_weight, launch_split)


@functools.lru_cache(maxsize=32)
def launcher(target, dtype) -> DepthwiseChannelsLast:
    """The launcher of one dtype on one target, its kernels built once."""
    return DepthwiseChannelsLast(target, np.dtype(dtype))
