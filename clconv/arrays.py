"""The boundary between the caller's arrays and the kernels' device tensors.

NumPy arrays (any memory order, strides or byte order) are uploaded, or read in place on devices that
compute in host memory; ``pyopencl.array.Array`` inputs are used in place and decide where the call
runs. Channels-last inputs of either kind are converted into the kernels' layout on the device
(clconv.channels_last). Results come back as NumPy when every input was NumPy, and stay on the device
otherwise.
"""

from __future__ import annotations

import contextlib
import ctypes
import math
import threading
import typing
import weakref

import numpy as np
import pyopencl as cl
import pyopencl.array as cl_array

from . import channels_last, platforms
from .algorithms import DeviceTensor

# A read-only buffer that starts before its array ends on a multiple of this many bytes (a cache line, inside the
# array's last page): Intel's guide asks for buffers in host memory sized in whole cache lines.
COVERED_END_ALIGNMENT = 64

#: What the public functions take and return: a NumPy array, or a pyopencl array on a device.
Array = typing.Union[np.ndarray, cl_array.Array]


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


def check_device_layout(out=None, **inputs) -> None:
    """The kernels read device arrays in place: inputs must be C-contiguous or channels-last views of a
    C-contiguous array (converted on the device, see clconv.channels_last), and ``out`` C-contiguous."""
    for name, array in inputs.items():
        if (isinstance(array, cl_array.Array) and not array.flags.c_contiguous
                and not channels_last.is_channels_last(array)):
            raise ValueError(f"{name} must be a C-contiguous device array or a channels-last view of one "
                             f"(got strides {array.strides})")
    if isinstance(out, cl_array.Array) and not out.flags.c_contiguous:
        raise ValueError(f"out must be a C-contiguous device array (got strides {out.strides})")


def check_dtype_supported(info: platforms.DeviceInfo, dtype) -> None:
    if np.dtype(dtype) == np.float64 and not info.fp64:
        raise TypeError(
            f"float64 needs the cl_khr_fp64 extension, which device {info.summary()} lacks; "
            "use float32 or another device")


def check_allocation(info: platforms.DeviceInfo, name: str, shape, dtype) -> None:
    n_bytes = math.prod(shape) * np.dtype(dtype).itemsize
    if n_bytes > info.max_alloc_bytes:
        raise ValueError(
            f"{name} of shape {tuple(shape)} needs {n_bytes} bytes in one buffer, more than the "
            f"{info.max_alloc_bytes} bytes {info.summary()} allows per allocation; split the batch")


def read_as_channels_last(array: Array) -> bool:
    """Whether the device reads ``array`` in its channels-last memory rather than gathered into C order:
    channels-last and not C-contiguous as well (one channel or one position), in native byte order."""
    return not array.flags.c_contiguous and array.dtype.isnative and channels_last.is_channels_last(array)


class KeptMemory:
    """The bytes that every plan on one device keeps in copies from call to call (ConversionBuffers), against one
    limit for them all: the functional API caches a plan per layer, and each would otherwise keep a copy of every
    channels-last input of its layer (on Intel's CPU runtime, of every input off its alignment by a fraction of an
    element too), a second copy of a network's activations."""

    def __init__(self, most_bytes: int):
        self.most_bytes = most_bytes
        self.held_bytes = 0
        # Reentrant: a plan's finalizer gives its bytes back, and the garbage collector may run it on a thread that
        # is inside take().
        self._lock = threading.RLock()

    def take(self, nbytes: int) -> bool:
        """Whether ``nbytes`` more may be kept (and are now counted as kept)."""
        with self._lock:
            if self.held_bytes + nbytes > self.most_bytes:
                return False
            self.held_bytes += nbytes
            return True

    def give_back(self, nbytes: int) -> None:
        with self._lock:
            self.held_bytes -= nbytes


_kept_memory = {}
_kept_memory_lock = threading.Lock()


def kept_memory(info: platforms.DeviceInfo, share: float) -> KeptMemory:
    """The KeptMemory of a device, whose limit is ``share`` of its memory (set by the first call)."""
    with _kept_memory_lock:
        kept = _kept_memory.get(info.device.int_ptr)
        if kept is None:
            kept = _kept_memory[info.device.int_ptr] = KeptMemory(int(share * info.global_mem_bytes))
        return kept


class ConversionBuffers:
    """The channels-first copies a plan makes of channels-last inputs (CallArrays._channels_first), one buffer per
    input kept from call to call: on CPUs a fresh buffer costs a page fault per page at its first write (MobileNet-v2
    features.2.dw-s2's forward pass on its 308 MB channels-last input: 157 ms with a fresh buffer, 68 ms with the
    kept one, 35 ms channels-first; PoCL 3.1, Zen 4). Likewise the aligned host copies of NumPy inputs that a device
    computing in host memory needs at an alignment they miss by a fraction of an element (CallArrays._wrap_input).
    A copy that does not fit in what ``kept`` (the device's KeptMemory) has left gets fresh memory each call instead;
    a plan's copies count against it until the plan is gone.

    ``use()`` holds a lock while a call converts and launches the kernels that read the copies; the call sets
    ``last_read`` (its last event), which the next call's conversion into the same buffer waits for."""

    def __init__(self, context: cl.Context, kept: KeptMemory):
        self._context = context
        self._kept = kept
        self._held = [0]  # this plan's bytes counted in ``kept``, given back when the plan is collected
        weakref.finalize(self, _give_back_held, kept, self._held)
        self._lock = threading.RLock()
        self._buffers = {}  # input name -> [buffer, the event of the last call that read it, or None]
        self._host_copies = {}  # input name -> [aligned host bytes (CallArrays._wrap_input), that event]

    @contextlib.contextmanager
    def use(self):
        with self._lock:
            session = ConversionSession(self)
            yield session
            for entry in session.used:
                entry[1] = session.last_read

    def _entry(self, name: str, nbytes: int):
        return self._kept_entry(self._buffers, name, nbytes, lambda: cl.Buffer(
            self._context, cl.mem_flags.READ_WRITE, nbytes), lambda buffer: buffer.size)

    def _host_entry(self, name: str, nbytes: int, alignment: int):
        return self._kept_entry(self._host_copies, name, nbytes, lambda: aligned_empty(
            (nbytes,), np.uint8, alignment), lambda host: host.nbytes)

    def _kept_entry(self, store: dict, name: str, nbytes: int, allocate, size_of):
        """``store``'s entry for input ``name``, holding at least ``nbytes``: the kept one, a larger one in its place,
        or None where the device's KeptMemory has no room for it."""
        entry = store.get(name)
        kept_bytes = size_of(entry[0]) if entry is not None else 0
        if kept_bytes >= nbytes:
            return entry
        growth = nbytes - kept_bytes  # the smaller copy it replaces is freed once the calls that read it are done
        if not self._kept.take(growth):
            return None
        try:
            memory = allocate()
        except BaseException:
            self._kept.give_back(growth)
            raise
        self._held[0] += growth
        entry = store[name] = [memory, None]
        return entry


def _give_back_held(kept: KeptMemory, held: list) -> None:
    kept.give_back(held[0])


class ConversionSession:
    """One call's use of a plan's ConversionBuffers: ``buffer`` hands out the kept buffer of an input (and the
    events its conversion must wait for), or None where the copy gets a fresh one; set ``last_read``."""

    def __init__(self, buffers: ConversionBuffers):
        self._buffers = buffers
        self.used = []
        self.last_read = None

    def buffer(self, name: str, nbytes: int):
        entry = self._buffers._entry(name, nbytes)
        if entry is None:
            return None, []
        self.used.append(entry)
        return entry[0], [entry[1]] if entry[1] is not None else []

    def host_copy(self, name: str, array: np.ndarray, alignment: int) -> np.ndarray | None:
        """A copy of NumPy input ``name`` at an ``alignment``-byte address in the plan's kept host memory, written
        once the last call that read that memory is done; None where the copy gets fresh memory."""
        entry = self._buffers._host_entry(name, array.nbytes, alignment)
        if entry is None:
            return None
        if entry[1] is not None:
            entry[1].wait()
        self.used.append(entry)
        copy = entry[0][:array.nbytes].view(array.dtype).reshape(array.shape)
        copy[...] = array
        return copy


class CallArrays:
    """The arrays of one call on one Target: uploads, device tensors, outputs and the final result.

    On a device that computes in host memory (a CPU), a call whose result goes back to NumPy wraps the
    NumPy arrays themselves in buffers (CL_MEM_USE_HOST_PTR) instead of copying them: inputs are read in
    place and the kernels write straight into the NumPy result, which the final map only hands back. That
    is safe because such a call waits for its kernels before returning. A call with device arrays returns
    before its kernels finish, so its NumPy inputs are copied (the caller may change them right away).
    """

    def __init__(self, target: platforms.Target, out=None, **arrays):
        self.target = target
        self.arrays = {name: a for name, a in arrays.items() if a is not None}
        self.out = out
        on_device = [a for a in self.arrays.values() if isinstance(a, cl_array.Array)]
        check_device_layout(**self.arrays, out=out)
        # The caller's ``out`` decides where the result lives; without it, the inputs do.
        self.device_result = isinstance(out, cl_array.Array) if out is not None else bool(on_device)
        self.in_place = target.info.host_memory and not self.device_result
        # The kernels wait for everything queued on the device arrays they read or overwrite.
        self.wait_for = [event for array in on_device + ([out] if self.device_result and out is not None else [])
                         for event in array.events]
        self._wrapped = []  # NumPy arrays and their buffers, alive until the call's kernels are done
        self.conversions: ConversionSession | None = None  # a plan's kept buffers for channels-first copies
        self._host_result = None  # the NumPy array the result buffer wraps

    def _wrap_input(self, name: str, host: np.ndarray) -> DeviceTensor:
        """Input ``host`` (array ``name``, C-contiguous) in a read-only buffer that uses its memory in place. Where the
        device needs an alignment the array lacks (host_pointer_alignment) and the array is off it by whole elements,
        the buffer starts on the boundary before it, the array at an offset, and ends on the 64-byte line after it
        (Intel's CPU runtime uses such memory in place): both ends lie in pages of the array's own, and the buffer is
        only read, so the bytes it covers beside the array (of other arrays, even of another buffer of the call) are
        never written through it. An input off the boundary by a fraction of an element gets an aligned copy, in the
        plan's kept memory where it has some. Against such copies, reading in place ran MobileNet-v2 features.1.dw's
        weight gradient (two 103 MB inputs) 1.9-2.0x faster end to end on Intel's runtime, ResNet-50 layer1.0.conv1's
        passes 1.11-1.36x, and compute-heavy layers with inputs of a few MB 0.90-1.07x (Zen 4,
        bench/unaligned_inputs.py)."""
        address = host.ctypes.data
        misplaced = address % self.target.info.host_pointer_alignment
        if misplaced and misplaced % host.itemsize == 0:
            end = -(-(address + host.nbytes) // COVERED_END_ALIGNMENT) * COVERED_END_ALIGNMENT
            covered = (ctypes.c_char * (end - address + misplaced)).from_address(address - misplaced)
            return DeviceTensor(self._host_buffer(host, covered, cl.mem_flags.READ_ONLY), misplaced // host.itemsize)
        if misplaced:
            host = self._aligned_copy(name, host)
        return DeviceTensor(self._host_buffer(host, host, cl.mem_flags.READ_ONLY), 0)

    def _aligned_copy(self, name: str, host: np.ndarray) -> np.ndarray:
        """A copy of input ``host`` at the device's host_pointer_alignment, in the plan's kept memory where it has
        some."""
        alignment = self.target.info.host_pointer_alignment
        kept = self.conversions.host_copy(name, host, alignment) if self.conversions is not None else None
        return kept if kept is not None else aligned_copy(host, alignment)

    def _host_buffer(self, host: np.ndarray, memory, flags) -> cl.Buffer:
        """A buffer using ``memory`` (``host`` or a region around it) in place, ``host`` kept alive with it until the
        call's kernels are done."""
        buffer = cl.Buffer(self.target.context, flags | cl.mem_flags.USE_HOST_PTR, hostbuf=memory)
        self._wrapped.append((host, buffer))
        return buffer

    def device_tensor(self, name: str) -> DeviceTensor | None:
        """Input ``name`` as the kernels read it: C-contiguous (N, C, *spatial) memory on the call's device
        (None when the call has no such input). A channels-last input, NumPy or device, is converted on the
        device (:meth:`_channels_first`); any other NumPy layout is made C-contiguous on the host first."""
        array = self.arrays.get(name)
        if array is None:
            return None
        if array.size == 0:
            return DeviceTensor(None, 0)
        if read_as_channels_last(array):
            return self._channels_first(name, array)
        if isinstance(array, np.ndarray):
            check_allocation(self.target.info, name, array.shape, array.dtype)
            host = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("="))
            if self.in_place:
                return self._wrap_input(name, host)
            array = self.target.to_device(host)
            self.arrays[name] = array  # keeps the upload alive until the call's kernels are done
        return DeviceTensor(array.base_data, array.offset // array.dtype.itemsize)

    def channels_last_names(self) -> set:
        """The inputs that :meth:`device_tensor` would convert from channels-last memory (none once converted)."""
        return {name for name, array in self.arrays.items() if array.size and read_as_channels_last(array)}

    def channels_last_memory(self, name: str) -> DeviceTensor:
        """A channels-last input's own memory, the C-contiguous (N, *spatial, C) array, on the call's device:
        a NumPy one wrapped in place when computing in host memory, else uploaded; a device one where it lies.
        What it waits for joins ``wait_for``, which every kernel of the call waits for."""
        array = self.arrays[name]
        if isinstance(array, np.ndarray):
            check_allocation(self.target.info, name, array.shape, array.dtype)
            memory = np.moveaxis(array, 1, -1)
            if self.in_place:
                return self._wrap_input(name, memory)
            upload = self.target.to_device(memory)
            self._wrapped.append((memory, upload.base_data))  # alive until the kernels have read it
            self.wait_for.extend(upload.events)
            return output_tensor(upload)
        self.wait_for.extend(array.events)
        return DeviceTensor(array.base_data, array.offset // array.dtype.itemsize)

    def _channels_first(self, name: str, array: Array) -> DeviceTensor:
        """A channels-last input converted from its memory (:meth:`channels_last_memory`) into a C-contiguous
        device array (in the plan's kept buffer, see ConversionBuffers, else a fresh one), which stands for it in
        the rest of the call (a second request returns it as is). The conversion's event joins ``wait_for``, which
        every kernel reading the input waits for."""
        source = self.channels_last_memory(name)
        kept, previous_reads = (self.conversions.buffer(name, array.nbytes) if self.conversions is not None
                                else (None, []))
        converted = (cl_array.Array(self.target.queue, array.shape, array.dtype, data=kept) if kept is not None
                     else self.target.empty(array.shape, array.dtype))
        event = channels_last.channels_first(self.target, array.dtype).convert(
            source, output_tensor(converted), array.shape, list(self.wait_for) + previous_reads)
        converted.add_event(event)
        self.wait_for.append(event)
        self.arrays[name] = converted
        return output_tensor(converted)

    def result_array(self, name: str, shape, dtype) -> cl_array.Array:
        """The device array the kernels write the result into: the caller's device ``out``, a buffer
        wrapping the NumPy ``out`` or a fresh NumPy result (computing in host memory), else a new one from the
        Target's memory pool."""
        if isinstance(self.out, cl_array.Array):
            return self.out
        check_allocation(self.target.info, name, shape, dtype)
        if self.in_place and math.prod(shape):
            alignment = self.target.info.host_pointer_alignment
            out = self.out
            writable_in_place = (out is not None and out.flags.c_contiguous and out.dtype.isnative
                                 and out.ctypes.data % alignment == 0)
            host = self._host_result = out if writable_in_place else aligned_empty(shape, dtype, alignment)
            buffer = self._host_buffer(host, host, cl.mem_flags.READ_WRITE)
            return cl_array.Array(self.target.queue, shape, dtype, data=buffer)
        return self.target.empty(shape, dtype)

    def finish(self, result: cl_array.Array, event):
        """The result as the caller gets it: on the device, or as NumPy (in ``out`` when given)."""
        if event is not None:
            result.add_event(event)
        if self.device_result:
            return result
        if not (self.in_place and result.size):
            return self.deliver(result.get(self.target.queue))
        # Mapping the wrapped result after the kernels makes their writes visible in host memory. The map and
        # the unmap are queued together and only the unmap waited for: one wait instead of two, each a round
        # trip through the driver's worker threads (about 50 us on PoCL).
        queue = self.target.queue
        mapped, mapped_event = cl.enqueue_map_buffer(queue, result.base_data, cl.map_flags.READ, 0, result.shape,
                                                     result.dtype, wait_for=result.events, is_blocking=False)
        mapped.base.release(queue, wait_for=[mapped_event]).wait()
        self._wrapped.clear()
        return self.deliver(self._host_result)

    def deliver(self, host: np.ndarray) -> np.ndarray:
        """A NumPy result, copied into the caller's ``out`` unless the kernels wrote there already."""
        if self.out is None or host is self.out:
            return host
        self.out[...] = host
        return self.out


def aligned_empty(shape, dtype, alignment: int) -> np.ndarray:
    """An uninitialised C-contiguous array whose data starts on a multiple of ``alignment`` bytes: its own
    memory when any address will do, else a view of a private byte buffer."""
    dtype = np.dtype(dtype)
    if alignment <= 1:
        return np.empty(shape, dtype)
    n_bytes = math.prod(shape) * dtype.itemsize
    raw = np.empty(n_bytes + alignment, np.uint8)
    start = -raw.ctypes.data % alignment
    return raw[start:start + n_bytes].view(dtype).reshape(shape)


def aligned_copy(array: np.ndarray, alignment: int) -> np.ndarray:
    copy = aligned_empty(array.shape, array.dtype, alignment)
    copy[...] = array
    return copy


def output_tensor(array: cl_array.Array) -> DeviceTensor:
    if not array.size:
        return DeviceTensor(None, 0)
    return DeviceTensor(array.base_data, array.offset // array.dtype.itemsize)
