"""The public functions: conv2d and its three gradients on an OpenCL device.

NumPy arrays in (any memory order or strides) give NumPy arrays out;
``pyopencl.array.Array`` inputs keep the work and the result on their
context with no host round trip. When a call mixes the two, the device
arrays decide where it runs and the result stays on the device.
"""

from __future__ import annotations

import functools

import numpy as np
import pyopencl as cl
import pyopencl.array as cl_array

from . import platforms as _platforms
from . import params as _params
from .algorithms import DeviceView, get_algorithm


class _Call:
    """The arrays of one call, the Target they run on, and their device views."""

    def __init__(self, device, **arrays):
        self.arrays = {name: a for name, a in arrays.items() if a is not None}
        for name, array in self.arrays.items():
            if not isinstance(array, (np.ndarray, cl_array.Array)):
                raise TypeError(
                    f"{name} must be a numpy.ndarray or pyopencl.array.Array, got {type(array).__name__}")
        on_device = {n: a for n, a in self.arrays.items() if isinstance(a, cl_array.Array)}
        self.device_result = bool(on_device)
        self.target = self._choose_target(device, on_device)
        self.wait_for = [event for a in on_device.values() for event in a.events]

    @staticmethod
    def _choose_target(device, on_device) -> _platforms.Target:
        if not on_device:
            return _platforms.resolve(device)
        first_name, first = next(iter(on_device.items()))
        for name, array in on_device.items():
            if array.context != first.context:
                raise ValueError(
                    f"{name} lives on a different OpenCL context than {first_name}; "
                    "move all device arrays to one context")
            if not array.flags.c_contiguous:
                raise ValueError(f"{name} must be a C-contiguous device array (got strides {array.strides})")
        if device is not None:
            requested = _platforms.resolve(device)
            if requested.context != first.context:
                raise ValueError(
                    f"device={device!r} names {requested.info.summary()}, but {first_name} lives on another "
                    "OpenCL context; pass device=None or arrays from that device's context")
            return requested
        if first.queue is not None:
            return _platforms.target_for_queue(first.queue)
        return _platforms.target_for_context(first.context)

    def check_dtype(self, dtype: np.dtype) -> None:
        info = self.target.info
        if dtype == np.float64 and not info.fp64:
            raise TypeError(
                f"float64 needs the cl_khr_fp64 extension, which device {info.summary()} lacks; "
                "use float32 or another device")

    def view(self, name: str) -> DeviceView | None:
        array = self.arrays.get(name)
        if array is None:
            return None
        if isinstance(array, np.ndarray):
            if array.size == 0:
                return DeviceView(None, 0)
            self._check_allocation(name, array.shape, array.dtype)
            host = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("="))
            array = cl_array.to_device(self.target.queue, host)
            self.arrays[name] = array  # keeps the upload alive until the call's kernels are done
        if array.size == 0:
            return DeviceView(None, 0)
        return DeviceView(array.base_data, array.offset // array.dtype.itemsize)

    def _check_allocation(self, name, shape, dtype) -> None:
        n_bytes = int(np.prod(shape)) * np.dtype(dtype).itemsize
        limit = self.target.info.max_alloc_bytes
        if n_bytes > limit:
            raise ValueError(
                f"{name} of shape {tuple(shape)} needs {n_bytes} bytes in one buffer, more than the "
                f"{limit} bytes {self.target.info.summary()} allows per allocation; split the batch")

    def empty(self, name, shape, dtype) -> cl_array.Array:
        self._check_allocation(name, shape, dtype)
        return cl_array.empty(self.target.queue, shape, dtype)

    def finish(self, result: cl_array.Array, event):
        if event is not None:
            result.add_event(event)
        if self.device_result:
            return result
        return result.get(self.target.queue)


def _output_view(array: cl_array.Array) -> DeviceView:
    return DeviceView(array.base_data if array.size else None, 0)


@functools.lru_cache(maxsize=128)
def _plan(params: _params.Conv2DParams, target: _platforms.Target, algo: str):
    """A compiled algorithm for (params, device): kernels built once, reused by every later call."""
    if algo == "auto":
        algo = "direct"
    algorithm = get_algorithm(algo)
    if not algorithm.supports(params, target.info):
        raise ValueError(f"algo={algo!r} does not support {params.describe()} on {target.info.summary()}")
    return algorithm(params, target)


def conv2d(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, *, device=None, algo="auto"):
    """Forward pass: the cross-correlation of x (N, C, H, W) with weight (K, C/groups, R, S), plus bias (K,).

    Returns y of shape (N, K, P, Q) and the input dtype.
    """
    params = _params.forward_params(x, weight, bias, stride, padding, dilation, groups)
    call = _Call(device, x=x, weight=weight, bias=bias)
    call.check_dtype(params.dtype)
    y = call.empty("y", params.output_shape, params.dtype)
    event = None
    if y.size:
        plan = _plan(params, call.target, algo)
        event = plan.forward(call.view("x"), call.view("weight"), call.view("bias"), _output_view(y),
                             wait_for=call.wait_for)
    return call.finish(y, event)


def conv2d_grad_input(grad_output, weight, input_shape, stride=1, padding=0, dilation=1, groups=1, *,
                      device=None, algo="auto"):
    """dL/dx of shape ``input_shape`` from grad_output = dL/dy (N, K, P, Q) and weight."""
    params = _params.grad_input_params(grad_output, weight, input_shape, stride, padding, dilation, groups)
    call = _Call(device, grad_output=grad_output, weight=weight)
    call.check_dtype(params.dtype)
    grad_input = call.empty("grad_input", params.input_shape, params.dtype)
    event = None
    if grad_input.size:
        plan = _plan(params, call.target, algo)
        event = plan.grad_input(call.view("grad_output"), call.view("weight"), _output_view(grad_input),
                                wait_for=call.wait_for)
    return call.finish(grad_input, event)


def conv2d_grad_weight(x, grad_output, weight_shape, stride=1, padding=0, dilation=1, groups=1, *,
                       device=None, algo="auto"):
    """dL/dk of shape ``weight_shape`` from x and grad_output = dL/dy; bit-identical across runs."""
    params = _params.grad_weight_params(x, grad_output, weight_shape, stride, padding, dilation, groups)
    call = _Call(device, x=x, grad_output=grad_output)
    call.check_dtype(params.dtype)
    grad_weight = call.empty("grad_weight", params.weight_shape, params.dtype)
    plan = _plan(params, call.target, algo)
    event = plan.grad_weight(call.view("x"), call.view("grad_output"), _output_view(grad_weight),
                             wait_for=call.wait_for)
    return call.finish(grad_weight, event)


def conv2d_grad_bias(grad_output, *, device=None, algo="auto"):
    """dL/db of shape (K,): grad_output summed over N, P and Q; bit-identical across runs."""
    params = _params.grad_bias_params(grad_output)
    call = _Call(device, grad_output=grad_output)
    call.check_dtype(params.dtype)
    grad_bias = call.empty("grad_bias", (params.K,), params.dtype)
    plan = _plan(params, call.target, algo)
    event = plan.grad_bias(call.view("grad_output"), _output_view(grad_bias), wait_for=call.wait_for)
    return call.finish(grad_bias, event)
