"""The peers of ``clconv bench``: what a user would otherwise reach for, measured on the same layers.

- ``torch-cpu``: PyTorch's convolution of the layer's rank (conv1d, conv2d, conv3d) or transposed
  convolution, and the two gradients, on the CPU;
- ``numpy-oracle``: the NumPy oracle (:mod:`clconv.reference`), the answer every result is compared with;
- ``clblast-im2col-gemm``: an im2col followed by CLBlast's GEMM (through pyclblast), on the same OpenCL
  device as clconv, for 2-D layers and 1-D ones (as the 2-D layer with H = 1).

A peer that is not installed, or does not apply (CLBlast has no grouped GEMM, and its im2col makes neither
transposed nor 3-D convolutions), says why in ``skip_reason`` or ``applies(layer, p)``; the benchmark reports
it as skipped, never fakes it. Each ``measure`` takes the layer (a :class:`clconv.layers.Layer`, whose kind
says which functions compute it) and its params ``p``, fills the times of a :class:`clconv.benchmark.Record`
and returns the peer's result, in p's shapes, for the comparison with the oracle.
"""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING

import numpy as np
import pyopencl.array as cl_array

from . import reference
from .params import PASS_CALLS, Conv2DParams, call_function
from .tuner import device_seconds, median_wall_seconds, to_device

if TYPE_CHECKING:
    from .benchmark import Record


def oracle(pass_name: str, layer, p, data: dict):
    """The pass of ``layer`` (its params ``p``) computed by the NumPy oracle on ``data`` (without a bias: the bare
    convolution), rounded to the dtype of the data."""
    return call_function(reference, pass_name, p, data, layer.pass_calls)


def _padding_pairs(p) -> tuple:
    """(before, after) padding per spatial axis of a convolution of any rank (its flat ``padding``)."""
    return tuple(zip(p.padding[0::2], p.padding[1::2]))


class TorchPeer:
    """PyTorch's functions on the CPU: conv1d, conv2d, conv3d and their gradients (torch.nn.grad), and the
    transposed convolution with the gradients its autograd computes."""

    name = "torch-cpu"

    def __init__(self):
        try:
            import torch
        except ImportError:
            torch = None
        self.torch = torch
        self.skip_reason = None if torch else "PyTorch is not installed (pip install torch)"

    def applies(self, layer, p):
        if self.skip_reason:
            return self.skip_reason
        if layer.layer_kind.transposed and any(before != after for before, after in _padding_pairs(p)):
            return "asymmetric padding: PyTorch's transposed convolutions pad both sides alike"
        return None

    def runner(self, pass_name, layer, p, data: dict):
        """(a no-argument call running the pass in PyTorch, a function turning its result into the pass's result
        as a NumPy array)."""
        tensors = {name: self.torch.from_numpy(value) for name, value in data.items()}
        if layer.layer_kind.transposed:
            return self._transposed_runner(pass_name, p, tensors)
        return self._convolution_runner(pass_name, p, tensors)

    def _convolution_runner(self, pass_name, p, tensors: dict):
        """A convolution of p's rank; asymmetric padding as an explicit pad (and a crop of the input gradient)."""
        torch = self.torch
        rank = len(p.input_shape) - 2
        args = dict(stride=p.stride, dilation=p.dilation, groups=p.groups)
        pairs = _padding_pairs(p)
        symmetric = all(before == after for before, after in pairs)

        def pad(t):  # torch.nn.functional.pad lists the last axis first
            return t if symmetric else torch.nn.functional.pad(t, [n for pair in reversed(pairs) for n in pair])

        padding = tuple(before for before, _ in pairs) if symmetric else (0,) * rank
        padded_shape = p.input_shape[:2] + tuple(size + before + after
                                                 for size, (before, after) in zip(p.input_shape[2:], pairs))

        def to_numpy(result):
            if pass_name == "grad_input" and not symmetric:  # the padded input's gradient: crop the padding
                result = result[(slice(None), slice(None)) + tuple(slice(before, before + size) for size, (before, _)
                                                                   in zip(p.input_shape[2:], pairs))]
            return result.numpy()

        if pass_name == "forward":
            conv = getattr(torch.nn.functional, f"conv{rank}d")
            return (lambda: conv(pad(tensors["x"]), tensors["weight"], padding=padding, **args)), to_numpy
        if pass_name == "grad_input":
            shape = p.input_shape if symmetric else padded_shape
            grad_input = getattr(torch.nn.grad, f"conv{rank}d_input")
            return (lambda: grad_input(shape, tensors["weight"], tensors["grad_output"], padding=padding, **args)), \
                to_numpy
        grad_weight = getattr(torch.nn.grad, f"conv{rank}d_weight")
        return (lambda: grad_weight(pad(tensors["x"]), p.weight_shape, tensors["grad_output"], padding=padding,
                                    **args)), to_numpy

    def _transposed_runner(self, pass_name, p, tensors: dict):
        """The forward pass is PyTorch's conv_transpose; the gradients are what its autograd computes: the passes
        of the convolution behind it (``p.conv``, ConvTranspose2DParams.CONV_PASSES) with x and grad_output
        swapping roles."""
        if pass_name == "forward":
            conv = p.conv
            transposed = getattr(self.torch.nn.functional, f"conv_transpose{len(p.input_shape) - 2}d")
            padding = tuple(before for before, _ in _padding_pairs(p))
            return (lambda: transposed(tensors["x"], tensors["weight"], stride=conv.stride, padding=padding,
                                       output_padding=p.output_padding, groups=conv.groups,
                                       dilation=conv.dilation)), lambda result: result.numpy()
        swapped = dict(tensors, x=tensors["grad_output"], grad_output=tensors["x"])
        return self._convolution_runner(p.CONV_PASSES[pass_name], p.conv, swapped)

    def measure(self, record: "Record", pass_name, layer, p, data, repeats, e2e_runs: dict):
        """Measure the pass into ``record``; its end-to-end call goes into ``e2e_runs`` (by id(record)) for the
        benchmark's alternating rounds."""
        self.torch.set_num_threads(os.cpu_count() or 1)
        run, to_numpy = self.runner(pass_name, layer, p, data)
        start = time.perf_counter()
        result = to_numpy(run())
        record.first_call_s = time.perf_counter() - start
        record.kernel_s = record.wall_s = median_wall_seconds(run, repeats)
        end_to_end = e2e_runs[id(record)] = lambda: run().numpy()
        record.e2e_s = median_wall_seconds(end_to_end, repeats)
        record.device_bytes = p.bytes_moved(pass_name)
        return result


class NumpyPeer:
    name = "numpy-oracle"

    def applies(self, layer, p):
        return None

    def measure(self, record: "Record", pass_name, layer, p, data, repeats):
        start = time.perf_counter()
        result = oracle(pass_name, layer, p, data)
        record.first_call_s = record.kernel_s = record.wall_s = record.e2e_s = time.perf_counter() - start
        record.device_bytes = p.bytes_moved(pass_name)
        return result


class ClblastPeer:
    """im2col (a plain gather kernel) followed by CLBlast's batched GEMM, on the same OpenCL device."""

    name = "clblast-im2col-gemm"

    def __init__(self):
        try:
            import pyclblast
        except ImportError:
            pyclblast = None
        self.clblast = pyclblast
        self.skip_reason = None if pyclblast else (
            "pyclblast is not installed (apt install libclblast-dev ocl-icd-opencl-dev; pip install pyclblast)")

    #: The kinds of layer (layers.KINDS) an im2col and a GEMM do not compute, with the reason.
    NOT_APPLICABLE = {
        "conv_transpose2d": "a transposed convolution: this peer computes convolutions (im2col + GEMM)",
        "conv3d": "a 3-D convolution: this peer's im2col is 2-D",
    }

    def applies(self, layer, p):
        if self.skip_reason:
            return self.skip_reason
        if layer.kind in self.NOT_APPLICABLE:
            return self.NOT_APPLICABLE[layer.kind]
        if p.groups != 1:
            return "groups > 1: CLBlast has no grouped GEMM"
        if p.dtype != np.float32:
            return "benchmarked in fp32 only"
        return None

    def measure_on(self, target, record: "Record", pass_name, layer, p, data, repeats):
        """Run the pass on the 2-D layer that computes ``p`` (a 1-D layer: the one with H = 1), on views of
        ``data`` in that layer's shapes; the result comes back in p's."""
        shapes = {"x": "input_shape", "weight": "weight_shape", "grad_output": "output_shape"}
        conv = layer.layer_kind.conv2d(p)
        views = {name: value.reshape(getattr(conv, shapes[name])) for name, value in data.items()}
        return self._measure_conv2d(target, record, pass_name, conv, views, repeats).reshape(p.result_shape(pass_name))

    def _measure_conv2d(self, target, record: "Record", pass_name, p: Conv2DParams, data, repeats):
        from . import programs

        queue = target.queue
        crs, pq = p.C * p.R * p.S, p.P * p.Q
        im2col = programs.get_kernel(target.context, "im2col", {"REAL_BITS": 32})
        col2im = programs.get_kernel(target.context, "col2im", {"REAL_BITS": 32})
        scalars = [np.int32(v) for v in (p.N, p.C, p.H, p.W, p.R, p.S, p.P, p.Q, p.stride[0], p.stride[1],
                                         p.padding[0], p.padding[2], p.dilation[0], p.dilation[1])]
        col = cl_array.empty(queue, (p.N, crs, pq), np.float32)
        size = (pq, crs, p.N)
        gemm = self.clblast.gemmStridedBatched

        # pyclblast takes 2-D arrays: every tensor is viewed as a stack of matrices.
        col_2d = col.reshape(p.N * crs, pq)

        def forward(t):
            y = cl_array.empty(queue, (p.N * p.K, pq), np.float32)
            im2col(queue, size, None, t["x"].data, col.data, *scalars)
            gemm(queue, p.K, pq, crs, p.N, t["weight"].reshape(p.K, crs), col_2d, y, crs, pq, pq, 0, crs * pq,
                 p.K * pq)
            return y.reshape(p.output_shape)

        def grad_input(t):
            gx = cl_array.empty(queue, p.input_shape, np.float32)
            gemm(queue, crs, pq, p.K, p.N, t["weight"].reshape(p.K, crs), t["grad_output"].reshape(p.N * p.K, pq),
                 col_2d, crs, pq, pq, 0, p.K * pq, crs * pq, a_transp=True)
            col2im(queue, (p.W, p.H, p.N * p.C), None, col.data, gx.data, *scalars)
            return gx

        def grad_weight(t):
            gw = cl_array.empty(queue, (p.K, crs), np.float32)
            grad_2d = t["grad_output"].reshape(p.N * p.K, pq)
            im2col(queue, size, None, t["x"].data, col.data, *scalars)
            for n in range(p.N):  # the batch sum as accumulating GEMMs, in batch order
                self.clblast.gemm(queue, p.K, crs, pq, grad_2d, col_2d, gw, pq, pq, crs, beta=0.0 if n == 0 else 1.0,
                                  b_transp=True, a_offset=n * p.K * pq, b_offset=n * crs * pq)
            return gw.reshape(p.weight_shape)

        run_pass = {"forward": forward, "grad_input": grad_input, "grad_weight": grad_weight}[pass_name]
        names = [name for name in PASS_CALLS[pass_name].inputs if name in data]
        tensors = to_device(queue, {n: data[n] for n in names})
        start = time.perf_counter()
        result = run_pass(tensors).get()
        record.first_call_s = time.perf_counter() - start
        record.kernel_s = device_seconds(queue, lambda: run_pass(tensors), repeats)
        record.wall_s = median_wall_seconds(lambda: (run_pass(tensors), queue.finish()), repeats)
        record.e2e_s = median_wall_seconds(lambda: run_pass(to_device(queue, {n: data[n] for n in names})).get(),
                                           repeats)
        record.workspace_bytes = col.nbytes
        record.device_bytes = p.bytes_moved(pass_name) + col.nbytes
        return result
