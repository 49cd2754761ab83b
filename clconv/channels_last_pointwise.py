"""1x1 layers on channels-last inputs, read in place by cl/pointwise_product.cl.

A 1x1 layer with stride 1, no padding and one group is a matrix product over its channels, and channels-last
memory (N, *spatial, C) is that product's operand with the channels of each position contiguous, which is
what the kernel's broadcast tile reads. So these passes skip the conversion into channels-first memory
(clconv.channels_last), which costs an extra pass over the input on layers that are all memory traffic:

- forward, x channels-last: y[n, k, s] = sum_c x[n, s, c] * weight[c, k] (i = s, j = k, r = c), with the
  (K, C) weight transposed first, K*C elements;
- input gradient, grad_output channels-last: dx[n, c, s] = sum_k grad_output[n, s, k] * weight[k, c]
  (i = s, j = c, r = k), the weight as it is;
- weight gradient, x or grad_output channels-last, summed over the batch and positions:
  dw[k, c] = sum_{n, s} grad_output[n, k, s] * x[n, s, c] (i = k, j = c, r = s) with x channels-last,
  else the same with the two swapped (i = c, j = k) and dw written transposed.

The outputs stay channels-first, as every pass's output is. The bias gradient and every other layer convert.
"""

from __future__ import annotations

import functools
import math

import numpy as np

from . import channels_last
from .algorithms import base
from .algorithms.base import DeviceTensor, KernelLauncher, accumulator_bytes, bias_args, div_up
from .algorithms.tiled import matrix_product_applies, matrix_product_tile, widest_lanes
from .kernel_signatures import PointwiseProductArgs
from .params import Conv2DParams

#: The input of each pass that this module reads in place when it is channels-last (either one for the
#: weight gradient).
CHANNELS_LAST_OPERANDS = {"forward": ("x",), "grad_input": ("grad_output",), "grad_weight": ("x", "grad_output")}


def reads_in_place(params: Conv2DParams, pass_name: str, channels_last_inputs) -> bool:
    """Whether ``pass_name`` of ``params`` runs on this module's kernel, given the names of the pass's inputs
    that are channels-last (``channels_last_inputs``)."""
    return matrix_product_applies(params) and any(
        name in channels_last_inputs for name in CHANNELS_LAST_OPERANDS.get(pass_name, ()))


class PointwiseChannelsLast(KernelLauncher):
    """Launches cl/pointwise_product.cl for one dtype on one target, with the device's matrix-product tile."""

    def __init__(self, target, dtype):
        super().__init__(target, dtype)
        rows, vectors = matrix_product_tile(target.info)
        self.tile = {"VEC": widest_lanes(np.dtype(dtype), target.info), "ROWS": rows, "VECS": vectors}

    def tile_for(self, J: int) -> dict:
        """The tile of a product with J columns: this device's, or where one vector covers J (MobileNet-v2's
        16-channel layers) one vector of twice the rows, so that no multiply-add lands on lanes past J."""
        if J <= self.tile["VEC"] and self.tile["VECS"] > 1:
            return dict(self.tile, ROWS=2 * self.tile["ROWS"], VECS=1)
        return self.tile

    def tiles(self, rows: int, columns: int) -> tuple[int, int]:
        """The work-items of one image (or one split) of a product of ``rows`` x ``columns`` (I x J): (along i,
        along j)."""
        tile = self.tile_for(columns)
        return div_up(rows, tile["ROWS"]), div_up(columns, tile["VEC"] * tile["VECS"])

    def _product(self, args: PointwiseProductArgs, splits: int | None, wait_for):
        """Launch the kernel: per image, or (``splits`` given) summed over the batch in that many splits."""
        defines = dict(self.tile_for(args.J), REDUCE_BATCH=int(splits is not None), OUT_ALONG_J=int(args.out_j == 1))
        i_tiles, j_tiles = self.tiles(args.I, args.J)
        size = (i_tiles, j_tiles * (splits if splits is not None else args.N))
        return self.launch("pointwise_product", defines, size, (self.local_width, 1), args, wait_for)

    def forward(self, p: Conv2DParams, x: DeviceTensor, weight: DeviceTensor, bias, y: DeviceTensor, wait_for):
        """y (channels-first) from x's channels-last memory; returns the last event."""
        # The (K, C) weight as (C, K).
        weight_by_channel, transposed = channels_last.transposed(self.target, p.dtype, weight, p.K, p.C, wait_for)
        plane = p.H * p.W
        args = PointwiseProductArgs(
            a=x.buffer, a_offset=x.offset, a_batch=plane * p.C, a_r=1, a_i=p.C,
            b=weight_by_channel, b_offset=0, b_batch=0, b_r=p.K, **bias_args(bias),
            out=y.buffer, out_offset=y.offset, out_batch=p.K * plane, out_i=1, out_j=plane,
            partial=None, n_per_split=1, N=p.N, I=plane, J=p.K, R=p.C)
        return self._product(args, None, [transposed])

    def grad_input(self, p: Conv2DParams, grad_output: DeviceTensor, weight: DeviceTensor, bias,
                   grad_input: DeviceTensor, wait_for):
        """grad_input (channels-first) from grad_output's channels-last memory; ``bias`` (C entries) as
        Conv2DPlan.grad_input adds it."""
        plane = p.H * p.W
        args = PointwiseProductArgs(
            a=grad_output.buffer, a_offset=grad_output.offset, a_batch=plane * p.K, a_r=1, a_i=p.K,
            b=weight.buffer, b_offset=weight.offset, b_batch=0, b_r=p.C, **bias_args(bias),
            out=grad_input.buffer, out_offset=grad_input.offset, out_batch=p.C * plane, out_i=1, out_j=plane,
            partial=None, n_per_split=1, N=p.N, I=plane, J=p.C, R=p.K)
        return self._product(args, None, wait_for)

    def grad_weight(self, p: Conv2DParams, x: DeviceTensor, x_last: bool, grad_output: DeviceTensor,
                    grad_output_last: bool, grad_weight: DeviceTensor, wait_for, max_workspace_bytes=None):
        """grad_weight from x and grad_output, each channels-last where ``x_last`` / ``grad_output_last`` say
        (at least one is). The sum runs in a fixed order: the batch in splits fixed by the layer and the tile
        (enough work-items to fill the device, as clconv.algorithms.base.split_batch cuts them, within
        ``max_workspace_bytes`` of partial sums), each split image by image and position by position, then the
        splits in order."""
        plane = p.H * p.W

        def operand_strides(channels: int, last: bool) -> dict:
            # (batch, position, channel) strides of a tensor of ``channels`` channels
            return {"batch": plane * channels, "r": channels if last else 1, "i": 1 if last else plane}

        if x_last:
            a, a_channels, a_last, b, j_channels, out_i, out_j = grad_output, p.K, grad_output_last, x, p.C, p.C, 1
        else:
            a, a_channels, a_last, b, j_channels, out_i, out_j = x, p.C, False, grad_output, p.K, 1, p.C
        a_strides = operand_strides(a_channels, a_last)
        count, acc_bytes = p.K * p.C, accumulator_bytes(p)
        n_per_split, splits = base.split_batch(p.N, math.prod(self.tiles(a_channels, j_channels)),
                                               base.REDUCTION_TARGET_ITEMS, count, acc_bytes, max_workspace_bytes)

        def launch_split(partial):
            args = PointwiseProductArgs(
                a=a.buffer, a_offset=a.offset, a_batch=a_strides["batch"], a_r=a_strides["r"], a_i=a_strides["i"],
                b=b.buffer, b_offset=b.offset, b_batch=plane * j_channels, b_r=j_channels, **bias_args(None),
                out=grad_weight.buffer, out_offset=grad_weight.offset, out_batch=0, out_i=out_i, out_j=out_j,
                partial=partial, n_per_split=n_per_split, N=p.N, I=a_channels, J=j_channels, R=plane)
            return self._product(args, splits, wait_for)

        return self.sum_in_splits(count, splits, acc_bytes, grad_weight, launch_split)


@functools.lru_cache(maxsize=32)
def launcher(target, dtype) -> PointwiseChannelsLast:
    """The launcher of one dtype on one target, its kernels built once."""
    return PointwiseChannelsLast(target, np.dtype(dtype))
