"""The tiled algorithm: register-tiled, vectorised direct kernels that need no im2col workspace.

Forward and the stride-1 input gradient share cl/conv2d_tiled.cl (the input gradient is a correlation
of grad_output with the flipped, channel-swapped kernel); the weight gradient uses
cl/conv2d_grad_weight_tiled.cl. The input gradient at stride > 1 and the bias gradient run the direct
kernels, with this algorithm's name on the plan.

Tile parameters are compile-time constants (``-D``); shapes are kernel arguments, so one build serves
every layer with the same tiles, dtype and device.
"""

from __future__ import annotations

import dataclasses
import threading

import numpy as np

from .. import programs
from ..params import Conv2DParams
from .direct import DirectAlgorithm, _div_up, _round_up, split_batch


@dataclasses.dataclass(frozen=True)
class TiledConfig:
    """Compile-time tile of the tiled kernels, and the work-group shape they launch with."""

    vec: int = 16  # output columns per work-item, as one vector
    block_k: int = 8  # output channels per work-item
    block_p: int = 2  # output rows per work-item
    local: tuple = (1, 1, 1)

    def defines(self) -> dict:
        return {"VEC": self.vec, "BLOCK_K": self.block_k, "BLOCK_P": self.block_p}


@dataclasses.dataclass(frozen=True)
class GradWeightConfig:
    """Compile-time tile of cl/conv2d_grad_weight_tiled.cl and its work-group shape."""

    vec: int = 16  # output columns per step, as one vector
    block_k: int = 4  # output channels per work-item
    block_c: int = 6  # input channels per work-item
    local: tuple = (1, 1, 1)
    target_items: int = 64  # work-items the batch split aims for

    def defines(self) -> dict:
        return {"VEC": self.vec, "BLOCK_K": self.block_k, "BLOCK_C": self.block_c}

    def items(self, p: Conv2DParams) -> int:
        """Work-items per batch chunk."""
        return (_div_up(p.C_per_group, self.block_c) * p.R * p.S * p.groups * _div_up(p.K_per_group, self.block_k))


def default_config(params: Conv2DParams, info, pass_name: str):
    """Heuristic tiles for an untuned layer: vector width matched to the output width.

    The vector covers consecutive output columns, so a width much larger than the row wastes lanes:
    7-wide rows take 8 lanes, wider rows 16. On GPUs each work-item should stay small and the
    work-group carries the parallelism.
    """
    width = params.W if pass_name == "grad_input" else params.Q
    if pass_name == "grad_weight":
        if info.type == "GPU":
            return GradWeightConfig(vec=4, block_k=4, block_c=4, local=(16, 4, 1), target_items=16384)
        return GradWeightConfig(vec=8 if width <= 8 else 16, block_k=4, block_c=6,
                                target_items=32 * info.compute_units)
    if info.type == "GPU":
        return TiledConfig(vec=4, block_k=4, block_p=2, local=(16, 4, 1))
    # 28 accumulator vectors + the input vector + a broadcast weight fill AVX-512's 32 registers.
    return TiledConfig(vec=8 if width <= 8 else 16, block_k=28, block_p=1, local=(1, 1, 4))


def _vector_tile(size: int, local: tuple) -> tuple:
    return tuple(_round_up(s, l) for s, l in zip(size, local))


KERNELS = {"forward": "conv2d_tiled", "grad_input": "conv2d_tiled", "grad_weight": "conv2d_grad_weight_tiled"}


class TiledAlgorithm:
    name = "tiled"

    @staticmethod
    def supports(params: Conv2DParams, info) -> bool:
        return True

    @staticmethod
    def workspace_bytes(params: Conv2DParams, pass_name: str, config=None, info=None) -> int:
        """Bytes of partial sums the weight gradient's batch split needs (0 for the other passes)."""
        if pass_name != "grad_weight":
            return DirectAlgorithm.workspace_bytes(params, pass_name)
        config = config or default_config(params, info, pass_name)
        _, splits = split_batch(params.N, config.items(params), config.target_items)
        acc_size = 8 if params.dtype.itemsize == 8 else 4
        return int(np.prod(params.weight_shape)) * splits * acc_size if splits > 1 else 0

    def __init__(self, params: Conv2DParams, target, configs: dict | None = None):
        self.params = params
        self.target = target
        configs = configs or {}
        self.configs = {name: configs.get(name) or default_config(params, target.info, name)
                        for name in ("forward", "grad_input", "grad_weight")}
        bits = programs.dtype_defines(params.dtype, target.info.device)
        self._kernels = {name: programs.get_kernel(target.context, KERNELS[name], dict(config.defines(), **bits))
                         for name, config in self.configs.items()}
        self._direct = DirectAlgorithm(params, target)
        self._launch_lock = threading.Lock()

    def _correlate(self, pass_name, source, weight, bias, out, in_shape, out_shape, offsets, weight_strides,
                   wait_for):
        p = self.params
        config = self.configs[pass_name]
        n, ci_total, h_in, w_in = in_shape
        co_total, h_out, w_out = out_shape
        ci, co = ci_total // p.groups, co_total // p.groups
        has_bias = bias is not None
        args = [source.buffer, np.int32(source.offset), weight.buffer, np.int32(weight.offset),
                bias.buffer if has_bias else None, np.int32(bias.offset if has_bias else 0), np.int32(has_bias),
                out.buffer, np.int32(out.offset)]
        stride = p.stride if pass_name == "forward" else (1, 1)
        args += [np.int32(v) for v in (n, ci, h_in, w_in, co, p.R, p.S, h_out, w_out, p.groups,
                                       stride[0], stride[1], offsets[0], offsets[1], p.dilation[0], p.dilation[1],
                                       *weight_strides)]
        size = (_div_up(w_out, config.vec), _div_up(h_out, config.block_p),
                n * p.groups * _div_up(co, config.block_k))
        with self._launch_lock:
            return self._kernels[pass_name](self.target.queue, _vector_tile(size, config.local), config.local,
                                            *args, wait_for=wait_for)

    def forward(self, x, weight, bias, y, wait_for=None):
        p = self.params
        RS = p.R * p.S
        strides = (p.K_per_group * p.C_per_group * RS, p.C_per_group * RS, RS, p.S, 1)
        return self._correlate("forward", x, weight, bias, y, p.input_shape, (p.K, p.P, p.Q),
                               (-p.padding[0], -p.padding[2]), strides, wait_for)

    def grad_input(self, grad_output, weight, grad_input, wait_for=None):
        p = self.params
        if p.stride != (1, 1):
            return self._direct.grad_input(grad_output, weight, grad_input, wait_for)
        RS = p.R * p.S
        # Walk the kernel backwards: start at tap (R-1, S-1) and step by -S and -1.
        flipped = weight._replace(offset=weight.offset + RS - 1)
        strides = (p.K_per_group * p.C_per_group * RS, RS, p.C_per_group * RS, -p.S, -1)
        offsets = (p.padding[0] - (p.R - 1) * p.dilation[0], p.padding[2] - (p.S - 1) * p.dilation[1])
        return self._correlate("grad_input", grad_output, flipped, None, grad_input, p.output_shape,
                               (p.C, p.H, p.W), offsets, strides, wait_for)

    def grad_weight(self, x, grad_output, grad_weight, wait_for=None):
        p = self.params
        config = self.configs["grad_weight"]
        n_per_split, splits = split_batch(p.N, config.items(p), config.target_items)
        count = int(np.prod(p.weight_shape))
        partial = self._direct.partials(count, splits)
        args = [x.buffer, np.int32(x.offset), grad_output.buffer, np.int32(grad_output.offset), partial,
                grad_weight.buffer, np.int32(grad_weight.offset), np.int32(n_per_split), np.int32(splits),
                *self._direct.conv_scalars]
        size = (_div_up(p.C_per_group, config.block_c) * p.R * p.S, p.groups * _div_up(p.K_per_group, config.block_k),
                splits)
        with self._launch_lock:
            event = self._kernels["grad_weight"](self.target.queue, _vector_tile(size, config.local), config.local,
                                                 *args, wait_for=wait_for)
        return event if partial is None else self._direct.reduce_into(partial, count, splits, grad_weight, event)

    def grad_bias(self, grad_output, grad_bias, wait_for=None):
        return self._direct.grad_bias(grad_output, grad_bias, wait_for)
