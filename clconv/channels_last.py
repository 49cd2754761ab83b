"""Channels-last inputs, turned into the kernels' channels-first layout on the device.

A channels-last array is (N, C, *spatial) by shape with (N, *spatial, C) memory: the C-contiguous
(N, *spatial, C) array with its last axis moved to position 1 (``np.moveaxis(a, -1, 1)``), as PyTorch's
``channels_last`` and ``channels_last_3d`` tensors are (NLC, NHWC, NDHWC). The kernels read (N, C, *spatial)
memory, and gathering such an array into it on the host (``np.ascontiguousarray``) is a slow strided copy.
The device reads the array in its own layout instead, and cl/channels_first.cl copies it into a
channels-first buffer there: clconv.arrays.CallArrays.device_tensor does so for every input that no kernel of the
pass reads in place (clconv.planning.Conv2DPlan.channels_last_reader, clconv.plan_3d).
"""

from __future__ import annotations

import functools

import numpy as np
import pyopencl as cl

from . import kernel_check
from .algorithms.base import DeviceTensor, KernelLauncher
from .kernel_signatures import ChannelsFirstArgs


def c_contiguous(shape, strides, itemsize: int) -> bool:
    """Whether ``strides`` (bytes) are those of a C-contiguous array of ``shape``, as NumPy's flag says: the
    strides of axes of length 1 do not count, and an empty array is contiguous."""
    if 0 in shape:
        return True
    expected = itemsize
    for length, stride in zip(reversed(shape), reversed(strides)):
        if length != 1 and stride != expected:
            return False
        expected *= length
    return True


def is_channels_last(array) -> bool:
    """Whether ``array`` (NumPy or pyopencl, at least 3-D) is a channels-last view of a C-contiguous array and
    not C-contiguous itself: what :class:`ChannelsFirst` converts. One channel or one position is both."""
    shape, strides = tuple(array.shape), tuple(array.strides)
    if len(shape) < 3:
        return False
    itemsize = array.dtype.itemsize
    moved = (0,) + tuple(range(2, len(shape))) + (1,)
    return (c_contiguous([shape[i] for i in moved], [strides[i] for i in moved], itemsize)
            and not c_contiguous(shape, strides, itemsize))


# What a KernelFallbackWarning says follows where a kernel that reads channels-last inputs in place fails its check.
CONVERTED_INSTEAD = "Channels-last inputs are converted into channels-first memory instead"


class ChannelsFirst(KernelLauncher):
    """Launches cl/channels_first.cl for one dtype on one target.

    Its variants, best first: blocks transposed in vector registers of ``lanes`` lanes (8; 4 where the device's
    compiler cannot build 8 of acc_t, see DeviceInfo.vector_bits_limit), then the same blocks moved element by
    element. A variant that fails its check in a child process (kernel_check) gives way to the next, with a
    KernelFallbackWarning, as a plan's kernels do.
    """

    def __init__(self, target, dtype):
        super().__init__(target, dtype)
        accumulator_bits = 64 if np.dtype(dtype) == np.float64 else 32
        limit = target.info.vector_bits_limit
        lanes = 8 if limit is None or 8 * accumulator_bits <= limit else 4
        self.variants = ({"LANES": lanes, "VECTOR_TRANSPOSE": 1}, {"LANES": lanes, "VECTOR_TRANSPOSE": 0})

    def convert(self, source: DeviceTensor, target: DeviceTensor, shape, wait_for):
        """Enqueue the copy of ``source``, channels-last memory of an array of ``shape`` (N, C, *spatial), into
        ``target`` as (N, C, *spatial) once ``wait_for`` (events) are complete; returns the copy's event."""
        N, C = shape[:2]
        S = int(np.prod(shape[2:]))
        args = ChannelsFirstArgs(in_=source.buffer, in_offset=source.offset, out=target.buffer,
                                 out_offset=target.offset, N=N, S=S, C=C)
        while True:
            defines = self.variants[0]
            lanes = defines["LANES"]
            size = (-(-S // lanes), N * -(-C // lanes))
            try:
                return self.launch("channels_first", defines, size, (self.local_width, 1), args, wait_for)
            except kernel_check.KernelVariantFailed as failure:
                if len(self.variants) == 1:
                    raise RuntimeError(f"{failure}; channels-last inputs have no other kernel variant to fall "
                                       "back to on this device: pass C-contiguous arrays") from failure
                self.variants = self.variants[1:]
                kernel_check.warn_fallback(failure, "Channels-last inputs are converted by blocks moved element "
                                                    "by element instead", stacklevel=5)


@functools.lru_cache(maxsize=32)
def channels_first(target, dtype) -> ChannelsFirst:
    """The converter of one target and dtype, built once: its kernels are compiled and checked on first use."""
    return ChannelsFirst(target, np.dtype(dtype))


def transposed(target, dtype, matrix: DeviceTensor, rows: int, columns: int, wait_for, matrices: int = 1,
               into: cl.Buffer | None = None):
    """``matrices`` consecutive C-contiguous (rows, columns) matrices each copied as (columns, rows) into ``into``,
    or a buffer of its own (Target.call_buffer), and the copy's
    event: each matrix is one image of ``rows`` positions of ``columns`` channels, which the converter turns
    channels-first in 8 x 8 blocks."""
    if into is None:
        into = target.call_buffer(matrices * rows * columns * np.dtype(dtype).itemsize)
    event = channels_first(target, dtype).convert(matrix, DeviceTensor(into, 0), (matrices, columns, rows), wait_for)
    return into, event
