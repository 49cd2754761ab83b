"""The peers of ``clconv bench``: what a user would otherwise reach for, measured on the same layers.

- ``torch-cpu``: PyTorch's convolution and its two gradients on the CPU;
- ``numpy-oracle``: the NumPy oracle (:mod:`clconv.reference`), the answer every result is compared with;
- ``clblast-im2col-gemm``: an im2col followed by CLBlast's GEMM (through pyclblast), on the same OpenCL
  device as clconv.

A peer that is not installed, or does not apply (CLBlast has no grouped GEMM), says why in ``skip_reason`` or
``applies``; the benchmark reports it as skipped, never fakes it. Each ``measure`` fills the times of a
:class:`clconv.benchmark.Record` and returns the peer's result for the comparison with the oracle.
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


def oracle(pass_name: str, p: Conv2DParams, data: dict):
    """The pass computed by the NumPy oracle on ``data`` (without a bias: the bare convolution), rounded to
    the dtype of the data."""
    return call_function(reference, pass_name, p, data)


class TorchPeer:
    name = "torch-cpu"

    def __init__(self):
        try:
            import torch
        except ImportError:
            torch = None
        self.torch = torch
        self.skip_reason = None if torch else "PyTorch is not installed (pip install torch)"

    def applies(self, p: Conv2DParams):
        return self.skip_reason

    def runner(self, pass_name, p: Conv2DParams, data: dict):
        torch = self.torch
        args = dict(stride=p.stride, dilation=p.dilation, groups=p.groups)
        top, bottom, left, right = p.padding
        symmetric = top == bottom and left == right

        def pad(t):
            return t if symmetric else torch.nn.functional.pad(t, (left, right, top, bottom))

        padding = (top, left) if symmetric else (0, 0)
        padded_shape = (p.N, p.C, p.H + top + bottom, p.W + left + right)
        tensors = {name: torch.from_numpy(value) for name, value in data.items()}
        if pass_name == "forward":
            return lambda: torch.nn.functional.conv2d(pad(tensors["x"]), tensors["weight"], padding=padding, **args)
        if pass_name == "grad_input":
            shape = p.input_shape if symmetric else padded_shape
            return lambda: torch.nn.grad.conv2d_input(shape, tensors["weight"], tensors["grad_output"],
                                                      padding=padding, **args)
        return lambda: torch.nn.grad.conv2d_weight(pad(tensors["x"]), p.weight_shape, tensors["grad_output"],
                                                   padding=padding, **args)

    def measure(self, record: "Record", pass_name, p, data, repeats):
        self.torch.set_num_threads(os.cpu_count() or 1)
        run = self.runner(pass_name, p, data)
        start = time.perf_counter()
        result = run().numpy()
        record.first_call_s = time.perf_counter() - start
        record.kernel_s = record.wall_s = median_wall_seconds(run, repeats)
        record.e2e_s = median_wall_seconds(lambda: run().numpy(), repeats)
        record.device_bytes = p.bytes_moved(pass_name)
        if pass_name == "grad_input" and tuple(result.shape) != p.input_shape:  # asymmetric padding: crop
            top, _, left, _ = p.padding
            result = result[:, :, top:top + p.H, left:left + p.W]
        return result


class NumpyPeer:
    name = "numpy-oracle"

    def applies(self, p):
        return None

    def measure(self, record: "Record", pass_name, p, data, repeats):
        start = time.perf_counter()
        result = oracle(pass_name, p, data)
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

    def applies(self, p: Conv2DParams):
        if self.skip_reason:
            return self.skip_reason
        if p.groups != 1:
            return "groups > 1: CLBlast has no grouped GEMM"
        if p.dtype != np.float32:
            return "benchmarked in fp32 only"
        return None

    def measure_on(self, target, record: "Record", pass_name, p: Conv2DParams, data, repeats):
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
