"""The boundary between the caller's arrays and the kernels' device views.

NumPy arrays (any memory order, strides or byte order) are uploaded; ``pyopencl.array.Array`` inputs
are used in place and decide where the call runs. Results come back as NumPy when every input was
NumPy, and stay on the device otherwise.
"""

from __future__ import annotations

import numpy as np
import pyopencl.array as cl_array

from . import platforms
from .algorithms import DeviceView


def target_for_arrays(device, **arrays) -> platforms.Target:
    """The Target a call runs on: its device arrays' context, else ``device`` (or the default)."""
    on_device = {n: a for n, a in arrays.items() if isinstance(a, cl_array.Array)}
    if not on_device:
        return platforms.resolve(device)
    first_name, first = next(iter(on_device.items()))
    for name, array in on_device.items():
        if array.context != first.context:
            raise ValueError(
                f"{name} lives on a different OpenCL context than {first_name}; move all device arrays to one context")
    if device is not None:
        requested = platforms.resolve(device)
        if requested.context != first.context:
            raise ValueError(
                f"device={device!r} names {requested.info.summary()}, but {first_name} lives on another OpenCL "
                "context; pass device=None or arrays from that device's context")
        return requested
    if first.queue is not None:
        return platforms.target_for_queue(first.queue)
    return platforms.target_for_context(first.context)


def check_array_types(**arrays) -> None:
    for name, array in arrays.items():
        if array is not None and not isinstance(array, (np.ndarray, cl_array.Array)):
            raise TypeError(f"{name} must be a numpy.ndarray or pyopencl.array.Array, got {type(array).__name__}")


def check_dtype_supported(info: platforms.DeviceInfo, dtype) -> None:
    if np.dtype(dtype) == np.float64 and not info.fp64:
        raise TypeError(
            f"float64 needs the cl_khr_fp64 extension, which device {info.summary()} lacks; "
            "use float32 or another device")


def check_allocation(info: platforms.DeviceInfo, name: str, shape, dtype) -> None:
    n_bytes = int(np.prod(shape)) * np.dtype(dtype).itemsize
    if n_bytes > info.max_alloc_bytes:
        raise ValueError(
            f"{name} of shape {tuple(shape)} needs {n_bytes} bytes in one buffer, more than the "
            f"{info.max_alloc_bytes} bytes {info.summary()} allows per allocation; split the batch")


class CallArrays:
    """The arrays of one call on one Target: uploads, device views, outputs and the final result."""

    def __init__(self, target: platforms.Target, **arrays):
        self.target = target
        self.arrays = {name: a for name, a in arrays.items() if a is not None}
        on_device = [a for a in self.arrays.values() if isinstance(a, cl_array.Array)]
        for name, array in self.arrays.items():
            if isinstance(array, cl_array.Array) and not array.flags.c_contiguous:
                raise ValueError(f"{name} must be a C-contiguous device array (got strides {array.strides})")
        self.device_result = bool(on_device)
        self.wait_for = [event for array in on_device for event in array.events]

    def view(self, name: str) -> DeviceView | None:
        array = self.arrays.get(name)
        if array is None:
            return None
        if array.size == 0:
            return DeviceView(None, 0)
        if isinstance(array, np.ndarray):
            check_allocation(self.target.info, name, array.shape, array.dtype)
            host = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("="))
            array = cl_array.to_device(self.target.queue, host)
            self.arrays[name] = array  # keeps the upload alive until the call's kernels are done
        return DeviceView(array.base_data, array.offset // array.dtype.itemsize)

    def empty(self, name: str, shape, dtype) -> cl_array.Array:
        check_allocation(self.target.info, name, shape, dtype)
        return cl_array.empty(self.target.queue, shape, dtype)

    def finish(self, result: cl_array.Array, event):
        """The result as the caller gets it: on the device, or copied to NumPy."""
        if event is not None:
            result.add_event(event)
        return result if self.device_result else result.get(self.target.queue)


def output_view(array: cl_array.Array) -> DeviceView:
    return DeviceView(array.base_data if array.size else None, 0)
