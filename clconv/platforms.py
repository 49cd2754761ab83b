"""Every OpenCL device of every platform: listing, describing and choosing one.

A *spec* names a device: None (automatic), "P:D" indices, "cpu", "gpu",
"accelerator", a case-insensitive substring of the platform or device name, a
``pyopencl.Device`` or a ``pyopencl.CommandQueue``. The automatic choice
prefers a GPU, then an accelerator, then a CPU; among devices of one type the
one with the most compute units, then the newest platform and driver.

A chosen device becomes a :class:`Target`: a context and an in-order queue,
created once per device and reused, so compiled programs (cached per context)
are reused too, and a memory pool for the device arrays calls create
(:func:`free_held_memory` gives back what it holds).
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
import re
import threading

import numpy as np
import pyopencl as cl
import pyopencl.array as cl_array
import pyopencl.tools as cl_tools

ENV_VAR = "CLCONV_DEVICE"

INSTALL_HINT = ('for a CPU OpenCL device from PyPI: pip install "clconv[pocl]" '
                '(or Debian/Ubuntu: apt install pocl-opencl-icd)')

_TYPE_NAMES = (
    (cl.device_type.GPU, "GPU"),
    (cl.device_type.ACCELERATOR, "accelerator"),
    (cl.device_type.CPU, "CPU"),
)
_TYPE_PREFERENCE = {"GPU": 0, "accelerator": 1, "CPU": 2}

# LLVM CPU names whose features include AVX-512, as PoCL names the CPU it compiles for.
_AVX512_CPU_WORDS = ("avx512", "knl", "knm", "cannonlake", "icelake", "tigerlake", "cascadelake", "cooperlake",
                     "sapphirerapids", "rocketlake", "emeraldrapids", "graniterapids", "diamondrapids", "znver4",
                     "znver5", "x86-64-v4")

# Simulators and emulators: correct but orders of magnitude slower than real hardware, so never chosen
# automatically. Oclgrind reports itself as a GPU; Intel's FPGA Emulation Platform as an accelerator.
_SIMULATOR_NAMES = ("oclgrind", "emulation", "emulator")

# Short, stable vendor tags for test ids and tables.
_PLATFORM_TAGS = (
    ("portable computing language", "pocl"),
    ("nvidia", "nvidia"),
    ("amd", "amd"),
    ("intel", "intel"),
    ("apple", "apple"),
    ("rusticl", "rusticl"),
    ("clover", "clover"),
    ("arm", "arm"),
    ("qualcomm", "qualcomm"),
)


def _version_tuple(text: str) -> tuple[int, ...]:
    """All numbers of a version string in order, e.g. 'OpenCL 3.0 PoCL 3.1+debian' -> (3, 0, 3, 1)."""
    return tuple(int(n) for n in re.findall(r"\d+", text))


def _host_unified_memory(device: cl.Device) -> bool:
    try:
        return bool(device.host_unified_memory)
    except cl.Error:  # the query is deprecated since OpenCL 2.0; a driver may refuse it
        return False


@dataclasses.dataclass(frozen=True)
class DeviceInfo:
    """What a user needs to know about one OpenCL device."""

    index: str  # "P:D"
    platform_name: str
    platform_version: str
    name: str
    type: str  # "CPU", "GPU", "accelerator" or "other"
    compute_units: int
    global_mem_bytes: int
    max_alloc_bytes: int
    fp64: bool
    fp16: bool
    host_memory: bool  # computes in the host's memory (a CPU, or a GPU that shares it): buffers can wrap NumPy
    opencl_c_version: str
    driver_version: str
    device_version: str  # CL_DEVICE_VERSION; PoCL puts its compiler's target there ("HSTR: pthread-<triple>-<cpu>")
    native_float_lanes: int
    device: cl.Device = dataclasses.field(repr=False, compare=False)
    # A CPU device's x86 family (25: AMD Zen 4, 26: Zen 5), the host's; None elsewhere or where not reported.
    cpu_family: int | None = None

    @classmethod
    def from_device(cls, device: cl.Device, index: str) -> "DeviceInfo":
        type_name = next((name for flag, name in _TYPE_NAMES if device.type & flag), "other")
        return cls(
            index=index,
            platform_name=device.platform.name.strip(),
            platform_version=device.platform.version.strip(),
            name=device.name.strip(),
            type=type_name,
            compute_units=device.max_compute_units,
            global_mem_bytes=device.global_mem_size,
            max_alloc_bytes=device.max_mem_alloc_size,
            fp64=device.double_fp_config != 0,
            fp16="cl_khr_fp16" in device.extensions.split(),
            host_memory=type_name == "CPU" or _host_unified_memory(device),
            opencl_c_version=device.opencl_c_version.strip(),
            driver_version=device.driver_version.strip(),
            device_version=device.version.strip(),
            native_float_lanes=device.native_vector_width_float,
            device=device,
            cpu_family=host_cpu_family() if type_name == "CPU" else None,
        )

    # Cached: every call that names its device asks for these (plan keys, host-pointer rules).
    @functools.cached_property
    def tag(self) -> str:
        """Readable id for tables and test ids, e.g. 'pocl:0:0'."""
        lowered = self.platform_name.lower()
        vendor = next((tag for key, tag in _PLATFORM_TAGS if key in lowered), None)
        if vendor is None:
            vendor = re.sub(r"[^a-z0-9]+", "", lowered.split()[0]) if lowered else "opencl"
        return f"{vendor}:{self.index}"

    @functools.cached_property
    def implementation(self) -> str:
        """The OpenCL implementation's short name ('pocl', 'intel', 'nvidia', ...): the tag without the index."""
        return self.tag.rsplit(":", 2)[0]

    @property
    def host_pointer_alignment(self) -> int:
        """The address alignment (bytes) a host array needs for a buffer to use it in place
        (CL_MEM_USE_HOST_PTR). Intel's CPU runtime copies any array off a 4096-byte page boundary into a buffer
        of its own (its optimisation guide), which measured 2x slower end to end on a weight gradient; the
        others use any address."""
        return 4096 if self.host_memory and self.implementation == "intel" else 1

    @property
    def cpu_maker(self) -> str | None:
        """'amd' or 'intel' for a CPU device whose name says so (both runtimes name the host CPU), else None."""
        if self.type != "CPU":
            return None
        name = self.name.lower()
        return next((maker for maker in ("amd", "intel") if maker in name), None)

    @property
    def simulator(self) -> bool:
        """A simulator or emulator (Oclgrind, an FPGA emulator): selectable by spec, never chosen automatically."""
        names = f"{self.platform_name} {self.name}".lower()
        return any(word in names for word in _SIMULATOR_NAMES)

    @property
    def compiler_cpu(self) -> str | None:
        """The LLVM CPU name PoCL compiles for (e.g. 'skylake-avx512', 'znver3'); None on other platforms."""
        found = re.search(r"HSTR: \S+?-[^-\s]+-[^-\s]+-[^-\s]+-[^-\s]+-(\S+)", self.device_version)
        return found.group(1) if found else None

    @property
    def vector_bits_limit(self) -> int | None:
        """The widest vector (in bits) clconv's kernels may use here, or None for no limit beyond 16 lanes.

        256 where PoCL's compiler targets a CPU without AVX-512 while the device reports 16 native float
        lanes: PyPI's PoCL 3.0 (LLVM 14) on an AMD Zen 4 does that (LLVM 14 does not know the CPU, PoCL
        compiles for znver3, an AVX2 CPU, with the host's AVX-512 features), and LLVM aborts the process on
        every 512-bit vector operation (float16 or double8: `Cannot emit physreg copy instruction`).
        """
        cpu = self.compiler_cpu
        if cpu is not None and self.native_float_lanes >= 16 and not any(w in cpu for w in _AVX512_CPU_WORDS):
            return 256
        return None

    def preference_key(self):
        """Sort key: smaller is preferred by the automatic choice."""
        return (_TYPE_PREFERENCE.get(self.type, 3), -self.compute_units,
                tuple(-v for v in _version_tuple(self.platform_version)),
                tuple(-v for v in _version_tuple(self.driver_version)))

    def summary(self) -> str:
        return f"[{self.index}] {self.name} ({self.type}) on {self.platform_name}, {self.platform_version}"


@functools.lru_cache(maxsize=1)
def host_cpu_fields() -> dict:
    """The first processor's fields of /proc/cpuinfo (Linux: "model name", "cpu family", "model" ...); {} elsewhere."""
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            first = cpuinfo.read().split("\n\n", 1)[0]
    except OSError:
        return {}
    return {key.strip(): value.strip() for key, _, value in
            (line.partition(":") for line in first.splitlines() if ":" in line)}


def host_cpu_family() -> int | None:
    """The host CPU's x86 family, which CPU OpenCL devices run on; None where not reported."""
    family = host_cpu_fields().get("cpu family", "")
    return int(family) if family.isdigit() else None


def devices() -> list[DeviceInfo]:
    """Every OpenCL device of every platform, in platform:device index order.

    Raises RuntimeError when no OpenCL platform is installed.
    """
    return list(_enumerate_devices())


@functools.lru_cache(maxsize=1)
def _enumerate_devices() -> tuple[DeviceInfo, ...]:
    # Platforms do not come and go within a process; enumerating once keeps per-call dispatch cheap.
    try:
        platforms = cl.get_platforms()
    except cl.Error as error:
        platforms = []
        reason = f" ({error})"
    else:
        reason = ""
    if not platforms:
        raise RuntimeError(f"no OpenCL platform found{reason}; {INSTALL_HINT}")
    found = []
    for p_index, platform in enumerate(platforms):
        try:
            platform_devices = platform.get_devices()
        except cl.Error:
            # A platform with no devices (e.g. a GPU driver without its card) is not an error.
            continue
        for d_index, device in enumerate(platform_devices):
            found.append(DeviceInfo.from_device(device, f"{p_index}:{d_index}"))
    if not found:
        raise RuntimeError(f"OpenCL platforms exist but expose no device; {INSTALL_HINT}")
    return tuple(found)


def automatic_choice(candidates: list[DeviceInfo]) -> DeviceInfo:
    """The preferred device; simulators only when nothing else is among ``candidates``."""
    real = [info for info in candidates if not info.simulator]
    return min(real or candidates, key=DeviceInfo.preference_key)


def _available_listing(candidates: list[DeviceInfo]) -> str:
    return "; ".join(info.summary() for info in candidates)


def match(spec, candidates: list[DeviceInfo] | None = None) -> DeviceInfo:
    """The DeviceInfo a spec names (not for CommandQueue specs). ValueError if nothing matches."""
    if candidates is None and isinstance(spec, str):
        return _match_listed(spec)
    return _match(spec, devices() if candidates is None else candidates)


@functools.lru_cache(maxsize=64)
def _match_listed(spec: str) -> DeviceInfo:
    """A string spec's device among every device. Devices do not change within a process, and a call that names
    its device by a string asks again each time (about 20 microseconds of matching, half a small layer's)."""
    return _match(spec, devices())


def _match(spec, candidates: list[DeviceInfo]) -> DeviceInfo:
    if spec is None or (isinstance(spec, str) and spec.strip().lower() in ("", "auto")):
        if all(info.simulator for info in candidates):
            raise RuntimeError(
                f"only simulators were found ({_available_listing(candidates)}); clconv never picks one "
                f"automatically: name it (device='oclgrind', CLCONV_DEVICE=oclgrind), or {INSTALL_HINT}")
        return automatic_choice(candidates)
    if isinstance(spec, cl.Device):
        for info in candidates:
            if info.device == spec:
                return info
        raise ValueError(f"device {spec.name!r} is not among the listed OpenCL devices: "
                         f"{_available_listing(candidates)}")
    if not isinstance(spec, str):
        raise TypeError(
            "device must be None, a string ('P:D', 'cpu', 'gpu', 'accelerator' or a name substring), "
            f"a pyopencl.Device or a pyopencl.CommandQueue; got {type(spec).__name__}"
        )
    text = spec.strip().lower()
    if re.fullmatch(r"\d+:\d+", text):
        chosen = [info for info in candidates if info.index == text]
    elif text in ("cpu", "gpu", "accelerator"):
        chosen = [info for info in candidates if info.type.lower() == text]
    else:
        chosen = [info for info in candidates
                  if text in info.name.lower() or text in info.platform_name.lower() or text == info.tag]
    if not chosen:
        raise ValueError(
            f"device spec {spec!r} matches no OpenCL device. Available: {_available_listing(candidates)}. "
            f"Specs: 'P:D', 'cpu', 'gpu', 'accelerator', or a platform/device name substring; {INSTALL_HINT}"
        )
    return automatic_choice(chosen)


@dataclasses.dataclass(frozen=True)
class Target:
    """Where a call runs: a device with its context and in-order queue, and the pool of that queue from which the
    device arrays calls create come (``memory_pool``, see :func:`_memory_pool`; None on a user's out-of-order
    queue)."""

    info: DeviceInfo
    context: cl.Context
    queue: cl.CommandQueue
    memory_pool: cl_tools.MemoryPool | None = dataclasses.field(default=None, compare=False, repr=False)

    def call_buffer(self, nbytes: int):
        """A read-write buffer for one call's own use (a result, an upload, scratch), from the pool where there is one
        and its rounded-up block stays within the device's largest allocation; it may go as soon as the call has
        queued the commands that use it."""
        pool = self.memory_pool
        if pool is not None and pool.alloc_size(pool.bin_number(nbytes)) <= self.info.max_alloc_bytes:
            return pool.allocate(nbytes)
        return cl.Buffer(self.context, cl.mem_flags.READ_WRITE, nbytes)

    def empty(self, shape, dtype) -> cl_array.Array:
        """A new device array on the queue, its buffer from :meth:`call_buffer`; the array itself keeps pyopencl's
        own allocator, so that what a caller computes from it does not draw on the pool."""
        nbytes = math.prod(shape) * np.dtype(dtype).itemsize
        return cl_array.Array(self.queue, shape, dtype, data=self.call_buffer(nbytes) if nbytes else None)

    def to_device(self, host: np.ndarray) -> cl_array.Array:
        """A copy of ``host`` in a new device array (:meth:`empty`)."""
        array = self.empty(host.shape, host.dtype)
        array.set(host)
        return array


_targets: dict = {}
_targets_lock = threading.Lock()
_default_spec = None
_default_spec_set = False


def _info_for(device: cl.Device) -> DeviceInfo:
    for info in devices():
        if info.device == device:
            return info
    # A device the platform list does not show (a sub-device, say) still gets described.
    return DeviceInfo.from_device(device, "?:?")


def _cached_target(key, make) -> Target:
    """The Target stored under ``key``, made by ``make()`` on first use (one context and queue per key)."""
    with _targets_lock:
        target = _targets.get(key)
        if target is None:
            target = _targets[key] = make()
        return target


def _profiling_queue(context: cl.Context, device: cl.Device) -> cl.CommandQueue:
    # Profiling lets the benchmark and the tuner read device times; it costs nothing measurable.
    return cl.CommandQueue(context, device, properties=cl.command_queue_properties.PROFILING_ENABLE)


_pools: dict = {}  # queue int_ptr -> (queue, its MemoryPool)
_pools_lock = threading.Lock()  # apart from _targets_lock, under which Targets are made


def _memory_pool(queue: cl.CommandQueue) -> cl_tools.MemoryPool | None:
    """The pool of ``queue`` (one per queue, however many Targets name it), which keeps the buffers of the device
    arrays that calls create on it for reuse once their arrays are gone, or None on an out-of-order queue.

    A CPU device gives a fresh buffer fresh pages, each a page fault at its first write, inside the kernel that
    writes it: device-resident calls with new results ran 1.8x faster with a pool on MobileNet-v2 features.2.dw-s2's
    forward pass and input gradient on PoCL 3.1 (1.6-1.75x on PoCL 3.0), 1.3-4x on the suite's memory-heavy layers on
    Intel's runtime, and as fast on compute-heavy ones (Zen 4, bench/memory_pool.py). A buffer given back while
    commands on this queue still use it is safe to hand out again on an in-order queue, whose next commands start
    after those; an out-of-order queue has no such order, so it gets no pool. Commands on other queues are not
    ordered either: an array a caller hands to another queue must be finished there before it is dropped. The pool
    keeps what it holds until :func:`free_held_memory`, or until an allocation fails for want of memory."""
    if queue.properties & cl.command_queue_properties.OUT_OF_ORDER_EXEC_MODE_ENABLE:
        return None
    with _pools_lock:
        entry = _pools.get(queue.int_ptr)
        if entry is None:
            entry = _pools[queue.int_ptr] = (queue, cl_tools.MemoryPool(cl_tools.ImmediateAllocator(queue)))
        return entry[1]


def _target(info: DeviceInfo, context: cl.Context, queue: cl.CommandQueue) -> Target:
    return Target(info, context, queue, _memory_pool(queue))


def target_for_device(info: DeviceInfo) -> Target:
    """The cached context and queue of a device, created on first use."""
    def make():
        context = cl.Context([info.device])
        return _target(info, context, _profiling_queue(context, info.device))

    return _cached_target(("device", info.device.int_ptr), make)


def target_for_queue(queue: cl.CommandQueue) -> Target:
    """A user's own queue, used as it is."""
    return _cached_target(("queue", queue.int_ptr), lambda: _target(_info_for(queue.device), queue.context, queue))


def target_for_context(context: cl.Context) -> Target:
    """A queue on a user's own context (for device arrays that carry none)."""
    device = context.devices[0]
    return _cached_target(("context", context.int_ptr),
                          lambda: _target(_info_for(device), context, _profiling_queue(context, device)))


def free_held_memory(spec=None) -> int:
    """Free the device memory that the pools of ``spec``'s device (those of its queues: clconv's own and any a caller
    passed) hold for reuse, and return how many bytes that was. The arrays that calls returned are not touched:
    their buffers go back to the pool when they are collected."""
    device = spec.device if isinstance(spec, cl.CommandQueue) else resolve(spec).info.device
    with _pools_lock:
        pools = [pool for queue, pool in _pools.values() if queue.device == device]
    freed = 0
    for pool in pools:
        before = pool.managed_bytes
        pool.free_held()
        freed += before - pool.managed_bytes
    return freed


def resolve(spec=None) -> Target:
    """The Target a spec names; None means the default (select_device, then CLCONV_DEVICE, then automatic)."""
    if spec is None:
        spec = _default_spec if _default_spec_set else os.environ.get(ENV_VAR) or None
    if isinstance(spec, Target):
        return spec
    if isinstance(spec, cl.CommandQueue):
        return target_for_queue(spec)
    return target_for_device(match(spec))


def select_device(spec=None) -> DeviceInfo:
    """Make ``spec`` the default device of later calls and return its description.

    ``select_device(None)`` returns to the default (CLCONV_DEVICE, else automatic).
    """
    global _default_spec, _default_spec_set
    target = resolve(spec) if spec is not None else None
    _default_spec = spec
    _default_spec_set = spec is not None
    return target.info if target is not None else resolve(None).info


def default_device() -> DeviceInfo:
    return resolve(None).info
