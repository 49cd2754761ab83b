"""The direct algorithm: register-tiled direct convolution kernels, no workspace but split sums.

Supports every parameter combination and dtype; it is the fallback every other
algorithm is checked against on the device. Kernels: cl/conv2d_*_direct.cl
and cl/reduce_partials.cl.
"""

from __future__ import annotations

import threading

import numpy as np
import pyopencl as cl

from .. import programs
from ..params import Conv2DParams

# Register tile sizes (compile-time constants of the kernels).
TILES = {"BLOCK_K": 4, "BLOCK_Q": 8, "BLOCK_C": 4, "BLOCK_W": 8}

# Work-items a reduction pass should offer before the batch is split further; enough to fill a
# GPU, harmless on a CPU. Splits depend only on the params, so results are reproducible.
_REDUCTION_TARGET_ITEMS = 8192

_CONV_SCALARS = ("N", "C", "H", "W", "K", "R", "S", "P", "Q")


def _div_up(a: int, b: int) -> int:
    return -(-a // b)


def _round_up(a: int, b: int) -> int:
    return _div_up(a, b) * b


def split_batch(N: int, items_per_image_chunk: int, target_items: int = _REDUCTION_TARGET_ITEMS) -> tuple[int, int]:
    """(n_per_split, splits) cutting the batch into fixed chunks for a deterministic two-pass sum.

    Enough chunks that items_per_image_chunk * splits reaches target_items, never more than N.
    """
    if N == 0:
        return 1, 1
    wanted = max(1, min(N, _div_up(target_items, max(1, items_per_image_chunk))))
    n_per_split = _div_up(N, wanted)
    return n_per_split, _div_up(N, n_per_split)


class DirectAlgorithm:
    name = "direct"

    @staticmethod
    def supports(params: Conv2DParams, info) -> bool:
        return True

    @staticmethod
    def workspace_bytes(params: Conv2DParams, pass_name: str) -> int:
        acc_size = 8 if params.dtype.itemsize == 8 else 4
        if pass_name == "grad_weight":
            count = int(np.prod(params.weight_shape))
            _, splits = split_batch(params.N, _grad_weight_items(params))
        elif pass_name == "grad_bias":
            count = params.K
            _, splits = split_batch(params.N, params.K)
        else:
            return 0
        return count * splits * acc_size if splits > 1 else 0

    def __init__(self, params: Conv2DParams, target):
        self.params = params
        self.target = target
        defines = dict(TILES, REAL_BITS=programs.real_bits(params.dtype))
        self._forward = programs.get_kernel(target.context, "conv2d_forward_direct", defines)
        self._grad_input = programs.get_kernel(target.context, "conv2d_grad_input_direct", defines)
        self._grad_weight = programs.get_kernel(target.context, "conv2d_grad_weight_direct", defines)
        self._grad_bias = programs.get_kernel(target.context, "conv2d_grad_bias_direct", defines)
        self._reduce = programs.get_kernel(target.context, "reduce_partials", defines)
        # Fixed work-group widths: PoCL compiles one work-group function per local size, so letting
        # the runtime pick a size per shape would recompile for every new shape.
        self._local0 = 32 if target.info.type == "GPU" else 8
        # A Kernel holds its arguments between set_args and enqueue; one launch at a time per plan.
        self._launch_lock = threading.Lock()
        p = params
        self.conv_scalars = [np.int32(getattr(p, name)) for name in _CONV_SCALARS] + [
            np.int32(v) for v in (p.stride[0], p.stride[1], p.padding[0], p.padding[2],
                                  p.dilation[0], p.dilation[1], p.groups)]

    # -- helpers -------------------------------------------------------------------------------
    def _launch(self, kernel, global_size, args, wait_for):
        local = (self._local0,) + (1,) * (len(global_size) - 1)
        global_size = (_round_up(global_size[0], self._local0),) + tuple(global_size[1:])
        with self._launch_lock:
            return kernel(self.target.queue, global_size, local, *args, wait_for=wait_for)

    def partials(self, count: int, splits: int):
        if splits == 1:
            return None
        acc_size = 8 if self.params.dtype.itemsize == 8 else 4
        return cl.Buffer(self.target.context, cl.mem_flags.READ_WRITE, count * splits * acc_size)

    def reduce_into(self, partial, count, splits, out, event):
        return self._launch(self._reduce, (count,),
                            [partial, np.int32(count), np.int32(splits), out.buffer, np.int32(out.offset)],
                            [event])

    # -- passes --------------------------------------------------------------------------------
    def forward(self, x, weight, bias, y, wait_for=None):
        p = self.params
        has_bias = bias is not None
        bias_buffer, bias_offset = (bias.buffer, bias.offset) if has_bias else (None, 0)
        args = [x.buffer, np.int32(x.offset), weight.buffer, np.int32(weight.offset),
                bias_buffer, np.int32(bias_offset), np.int32(has_bias), y.buffer, np.int32(y.offset),
                *self.conv_scalars]
        k_blocks = _div_up(p.K_per_group, TILES["BLOCK_K"])
        size = (_div_up(p.Q, TILES["BLOCK_Q"]), p.P, p.N * p.groups * k_blocks)
        return self._launch(self._forward, size, args, wait_for)

    def grad_input(self, grad_output, weight, grad_input, wait_for=None):
        p = self.params
        args = [grad_output.buffer, np.int32(grad_output.offset), weight.buffer, np.int32(weight.offset),
                grad_input.buffer, np.int32(grad_input.offset), *self.conv_scalars]
        c_blocks = _div_up(p.C_per_group, TILES["BLOCK_C"])
        size = (_div_up(p.W, TILES["BLOCK_W"]), p.H, p.N * p.groups * c_blocks)
        return self._launch(self._grad_input, size, args, wait_for)

    def grad_weight(self, x, grad_output, grad_weight, wait_for=None):
        p = self.params
        n_per_split, splits = split_batch(p.N, _grad_weight_items(p))
        count = int(np.prod(p.weight_shape))
        partial = self.partials(count, splits)
        args = [x.buffer, np.int32(x.offset), grad_output.buffer, np.int32(grad_output.offset), partial,
                grad_weight.buffer, np.int32(grad_weight.offset), np.int32(n_per_split), np.int32(splits),
                *self.conv_scalars]
        size = (p.C_per_group * p.R * p.S, p.groups * _div_up(p.K_per_group, TILES["BLOCK_K"]), splits)
        event = self._launch(self._grad_weight, size, args, wait_for)
        return event if partial is None else self.reduce_into(partial, count, splits, grad_weight, event)

    def grad_bias(self, grad_output, grad_bias, wait_for=None):
        p = self.params
        n_per_split, splits = split_batch(p.N, p.K)
        partial = self.partials(p.K, splits)
        args = [grad_output.buffer, np.int32(grad_output.offset), partial, grad_bias.buffer,
                np.int32(grad_bias.offset), np.int32(n_per_split), np.int32(splits), np.int32(p.N),
                np.int32(p.K), np.int32(p.P * p.Q)]
        event = self._launch(self._grad_bias, (p.K, splits), args, wait_for)
        return event if partial is None else self.reduce_into(partial, p.K, splits, grad_bias, event)


def _grad_weight_items(p: Conv2DParams) -> int:
    return p.C_per_group * p.R * p.S * p.groups * _div_up(p.K_per_group, TILES["BLOCK_K"])
