"""The direct algorithm: one small register tile per work-item, every parameter combination.

It is the simple fallback the faster algorithms are checked against on the device, and the bias
gradient of every algorithm. Kernels: cl/conv2d_*_direct.cl and cl/reduce_partials.cl.
"""

from __future__ import annotations

import numpy as np

from ..kernel_signatures import ForwardDirectArgs, GradBiasDirectArgs, GradInputDirectArgs
from ..params import Conv2DParams
from .base import REDUCTION_TARGET_ITEMS, AlgorithmBase, bias_args, div_up

# Register tile sizes (compile-time constants of the kernels).
TILES = {"BLOCK_K": 4, "BLOCK_Q": 8, "BLOCK_C": 4, "BLOCK_W": 8}


def _grad_weight_items(p: Conv2DParams) -> int:
    return p.C_per_group * p.R * p.S * p.groups * div_up(p.K_per_group, TILES["BLOCK_K"])


class DirectAlgorithm(AlgorithmBase):
    name = "direct"

    # No tiles: one candidate (its only kernels), nothing to store in or read from a tuning record, and no
    # narrower variant to fall back to.
    @staticmethod
    def candidates(params: Conv2DParams, info, pass_name: str) -> list:
        return [None]

    @staticmethod
    def config_record(config) -> None:
        return None

    @staticmethod
    def config_from_record(pass_name: str, fields) -> None:
        return None

    @staticmethod
    def narrower(config) -> None:
        return None

    def __init__(self, params: Conv2DParams, target, configs=None, max_workspace_bytes=None):
        # configs: this algorithm has no tunable tiles; accepted so every algorithm is built alike.
        super().__init__(params, target, max_workspace_bytes)

    def reduction(self, pass_name: str):
        if pass_name == "grad_weight":
            return _grad_weight_items(self.params), REDUCTION_TARGET_ITEMS, int(np.prod(self.params.weight_shape))
        return super().reduction(pass_name)

    def _run(self, kernel_name, size, args, wait_for):
        return self.launch(kernel_name, TILES, size, (self.local_width,) + (1,) * (len(size) - 1), args, wait_for)

    def forward(self, x, weight, bias, y, wait_for=None):
        p = self.params
        args = ForwardDirectArgs(x=x.buffer, x_offset=x.offset, weight=weight.buffer, weight_offset=weight.offset,
                                 **bias_args(bias), y=y.buffer, y_offset=y.offset, **self.geometry._asdict())
        size = (div_up(p.Q, TILES["BLOCK_Q"]), p.P, p.N * p.groups * div_up(p.K_per_group, TILES["BLOCK_K"]))
        return self._run("conv2d_forward_direct", size, args, wait_for)

    def grad_input(self, grad_output, weight, bias, grad_input, wait_for=None):
        """dL/dx, plus ``bias`` (C entries; None for the plain input gradient) on every element of its channel."""
        p = self.params
        args = GradInputDirectArgs(grad_output=grad_output.buffer, grad_output_offset=grad_output.offset,
                                   weight=weight.buffer, weight_offset=weight.offset, **bias_args(bias),
                                   grad_input=grad_input.buffer,
                                   grad_input_offset=grad_input.offset, **self.geometry._asdict())
        size = (div_up(p.W, TILES["BLOCK_W"]), p.H, p.N * p.groups * div_up(p.C_per_group, TILES["BLOCK_C"]))
        return self._run("conv2d_grad_input_direct", size, args, wait_for)

    def grad_weight(self, x, grad_output, grad_weight, wait_for=None):
        p = self.params

        def launch_split(partial, n_per_split, splits, wait_for):
            args = self.grad_weight_args(x, grad_output, partial, grad_weight, n_per_split, splits)
            size = (p.C_per_group * p.R * p.S, p.groups * div_up(p.K_per_group, TILES["BLOCK_K"]), splits)
            return self._run("conv2d_grad_weight_direct", size, args, wait_for)

        return self.split_sum("grad_weight", grad_weight, launch_split, wait_for)

    def grad_bias(self, grad_output, grad_bias, wait_for=None):
        p = self.params

        def launch_split(partial, n_per_split, splits, wait_for):
            args = GradBiasDirectArgs(grad_output=grad_output.buffer, grad_output_offset=grad_output.offset,
                                      partial=partial, grad_bias=grad_bias.buffer, grad_bias_offset=grad_bias.offset,
                                      n_per_split=n_per_split, splits=splits, N=p.N, K=p.K, PQ=p.P * p.Q)
            return self._run("conv2d_grad_bias_direct", (p.K, splits), args, wait_for)

        return self.split_sum("grad_bias", grad_bias, launch_split, wait_for)
