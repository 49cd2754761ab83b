"""The tiled algorithm: register-tiled, vectorised direct kernels with no im2col workspace.

Forward and the stride-1 input gradient share cl/conv2d_tiled.cl (the input gradient is a correlation
of grad_output with the flipped, channel-swapped kernel); the weight gradient uses
cl/conv2d_grad_weight_tiled.cl. The input gradient at stride > 1 and the bias gradient run the direct
kernels.

Tile parameters are compile-time constants (``-D``); shapes are kernel arguments, so one build serves
every layer with the same tiles, dtype and device.
"""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np

from ..params import Conv2DParams
from .base import AlgorithmBase, accumulator_bytes, div_up, split_batch
from .direct import DirectAlgorithm

# Vector widths OpenCL C has (2, 3, 4, 8, 16); 3 is left out because vload3 packs differently.
VECTOR_WIDTHS = (2, 4, 8, 16)


@dataclasses.dataclass(frozen=True)
class CorrelationConfig:
    """Tile of cl/conv2d_tiled.cl (forward, stride-1 grad_input) and its work-group shape."""

    vec: int = 16  # output columns per work-item, as one vector
    block_k: int = 28  # output channels per work-item
    block_p: int = 1  # output rows per work-item
    local: tuple = (1, 1, 4)

    def defines(self) -> dict:
        return {"VEC": self.vec, "BLOCK_K": self.block_k, "BLOCK_P": self.block_p}


@dataclasses.dataclass(frozen=True)
class GradWeightConfig:
    """Tile of cl/conv2d_grad_weight_tiled.cl, its work-group shape and how far the batch is split."""

    vec: int = 16  # output columns per step, as one vector
    block_k: int = 4  # output channels per work-item
    block_c: int = 6  # input channels per work-item
    local: tuple = (1, 1, 1)
    target_items: int = 64  # work-items the batch split aims for

    def defines(self) -> dict:
        return {"VEC": self.vec, "BLOCK_K": self.block_k, "BLOCK_C": self.block_c}

    def items(self, p: Conv2DParams) -> int:
        """Work-items per batch chunk."""
        return div_up(p.C_per_group, self.block_c) * p.R * p.S * p.groups * div_up(p.K_per_group, self.block_k)


CONFIG_TYPES = {"forward": CorrelationConfig, "grad_input": CorrelationConfig, "grad_weight": GradWeightConfig}
KERNELS = {"forward": "conv2d_tiled", "grad_input": "conv2d_tiled", "grad_weight": "conv2d_grad_weight_tiled"}


# Channel blocks the heuristic picks from; a short list keeps the number of distinct builds small.
CHANNEL_BLOCKS = (1, 2, 4, 8, 14, 28)


def _vector_width(width: int) -> int:
    """The narrowest vector that covers a row, up to 16 lanes: a wider one would waste lanes."""
    return next((v for v in VECTOR_WIDTHS if v >= width), VECTOR_WIDTHS[-1])


def _channel_block(channels: int, largest: int) -> int:
    """The smallest listed block that covers ``channels``, capped at ``largest``."""
    return next((b for b in CHANNEL_BLOCKS if b >= min(channels, largest)), largest)


def default_config(params: Conv2DParams, info, pass_name: str):
    """Heuristic tile for an untuned layer, for CPUs and GPUs alike.

    CPU: the vector runs along the output row and the tile holds up to 28 accumulator vectors (with the
    input vector and a broadcast weight that fills AVX-512's 32 registers); layers with few channels per
    group (depthwise) take more rows instead. GPU: small tiles per work-item, parallelism from work-groups.
    """
    width = params.W if pass_name == "grad_input" else params.Q
    out_channels = params.C_per_group if pass_name == "grad_input" else params.K_per_group
    gpu = info.type == "GPU"
    if pass_name == "grad_weight":
        block_k, block_c = _channel_block(params.K_per_group, 4), _channel_block(params.C_per_group, 4)
        if gpu:
            return GradWeightConfig(vec=4, block_k=block_k, block_c=block_c, local=(16, 4, 1), target_items=16384)
        return GradWeightConfig(vec=_vector_width(width), block_k=block_k, block_c=block_c,
                                target_items=32 * info.compute_units)
    if gpu:
        return CorrelationConfig(vec=4, block_k=_channel_block(out_channels, 4), block_p=2, local=(16, 4, 1))
    block_k = _channel_block(out_channels, 28)
    return CorrelationConfig(vec=_vector_width(width), block_k=block_k, block_p=max(1, min(4, 28 // block_k)))


def candidate_configs(params: Conv2DParams, info, pass_name: str):
    """The tiles the tuner tries: the heuristic's first, then a grid within the device's limits."""
    seen = []

    def fits(config):
        return (int(np.prod(config.local)) <= info.device.max_work_group_size
                and all(l <= m for l, m in zip(config.local, info.device.max_work_item_sizes)))

    heuristic = default_config(params, info, pass_name)
    grid = []
    locals_ = [(16, 4, 1), (32, 2, 1), (8, 8, 1)] if info.type == "GPU" else [(1, 1, 1), (1, 1, 4)]
    vectors = sorted({heuristic.vec, 4 if info.type == "GPU" else 16})
    if pass_name == "grad_weight":
        for vec, bk, bc, local in itertools.product(vectors, (2, 4, 6), (2, 4, 6), locals_):
            grid.append(GradWeightConfig(vec, min(bk, params.K_per_group), min(bc, params.C_per_group), local,
                                         heuristic.target_items))
    else:
        out_channels = params.C_per_group if pass_name == "grad_input" else params.K_per_group
        blocks = (2, 4, 8) if info.type == "GPU" else (8, 14, 28)
        for vec, bk, bp, local in itertools.product(vectors, blocks, (1, 2, 4), locals_):
            grid.append(CorrelationConfig(vec, min(bk, out_channels), bp, local))
    for config in [heuristic] + grid:
        if config not in seen and fits(config):
            seen.append(config)
    return seen


class TiledAlgorithm(AlgorithmBase):
    name = "tiled"

    @staticmethod
    def supports(params: Conv2DParams, info) -> bool:
        return True

    @staticmethod
    def workspace_bytes(params: Conv2DParams, pass_name: str, info=None, max_workspace_bytes=None,
                        config=None) -> int:
        """Bytes of partial sums the weight gradient's batch split needs (0 for the other passes)."""
        if pass_name != "grad_weight":
            return DirectAlgorithm.workspace_bytes(params, pass_name, info, max_workspace_bytes)
        config = config or default_config(params, info, pass_name)
        count, acc = int(np.prod(params.weight_shape)), accumulator_bytes(params)
        _, splits = split_batch(params.N, config.items(params), config.target_items, count, acc, max_workspace_bytes)
        return count * splits * acc if splits > 1 else 0

    def __init__(self, params: Conv2DParams, target, configs: dict | None = None, max_workspace_bytes=None):
        super().__init__(params, target, max_workspace_bytes)
        configs = configs or {}
        self.configs = {name: configs.get(name) or default_config(params, target.info, name) for name in KERNELS}
        self._kernels = {name: self.kernel(KERNELS[name], config.defines()) for name, config in self.configs.items()}
        self._direct = DirectAlgorithm(params, target, max_workspace_bytes=max_workspace_bytes)

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
        size = (div_up(w_out, config.vec), div_up(h_out, config.block_p), n * p.groups * div_up(co, config.block_k))
        return self.launch(self._kernels[pass_name], size, config.local, args, wait_for)

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
        count = int(np.prod(p.weight_shape))
        n_per_split, splits = self.split(config.items(p), config.target_items, count)
        partial = self.partials(count, splits)
        args = [x.buffer, np.int32(x.offset), grad_output.buffer, np.int32(grad_output.offset), partial,
                grad_weight.buffer, np.int32(grad_weight.offset), np.int32(n_per_split), np.int32(splits),
                *self.conv_scalars]
        size = (div_up(p.C_per_group, config.block_c) * p.R * p.S, p.groups * div_up(p.K_per_group, config.block_k),
                splits)
        event = self.launch(self._kernels["grad_weight"], size, config.local, args, wait_for)
        return self.reduce_into(partial, count, splits, grad_weight, event)

    def grad_bias(self, grad_output, grad_bias, wait_for=None):
        return self._direct.grad_bias(grad_output, grad_bias, wait_for)
