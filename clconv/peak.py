"""A device's peak arithmetic and memory throughput, measured the way clpeak does.

Two figures bound what any kernel can reach on a device, and `clconv bench` reports clconv's share of them
and draws its roofline from them:

- multiply-add throughput in GFLOP/s (``cl/peak_fma.cl``): chains of independent vector multiply-adds,
  the vectors as wide as the device's registers; for float and, where the device has cl_khr_fp64, double.
  clconv's fp16 stores half and computes in float, so its compute peak is the float one;
- global memory bandwidth in GB/s (``cl/peak_copy.cl``): a copy between two buffers far larger than the
  last-level cache, counting the bytes read plus the bytes written.

Each figure is the median device time (OpenCL profiling events) over a few runs. The FMA kernel runs a
fixed NDRange, a few work-groups per compute unit, for as many iterations as fill ``fma_seconds``; with
the defaults one device takes about 2 s in all. The kernels are built through the kernel checks
(:mod:`clconv.kernel_check`) as clconv's own are: a wide vector that crashes a device's compiler then
fails in a child process, not in the benchmark's. (The copy's check allocates its two buffers once more in
that process, on the first run per machine only.)
"""

from __future__ import annotations

import dataclasses
import math
import statistics
import time

import numpy as np
import pyopencl as cl

from . import kernel_check, platforms, programs
from .kernel_signatures import PeakCopyArgs, PeakFmaArgs

#: Device time one FMA run aims at: long enough that launch overhead and timer resolution do not count.
FMA_SECONDS = 0.15
#: Size of each of the copy's two buffers, before the device's limits cap it; far above any CPU's L3.
COPY_BUFFER_BYTES = 256 * 2**20
REPEATS = 3

_WORK_GROUP = 64
# Work-groups per compute unit: several, so that a runtime that hands out groups dynamically can balance.
_GROUPS_PER_UNIT = 16
# Chains per work-item: a CPU's two FMA pipes of 4 cycles' latency need 8 independent ones to stay busy.
_CHAINS = 8
# The kernel counts iterations in an int.
_MAX_ITERATIONS = 2**30


@dataclasses.dataclass(frozen=True)
class DevicePeak:
    """What one device can reach at most: GFLOP/s of multiply-adds per precision, GB/s of copying."""

    device: str  # DeviceInfo.tag
    device_name: str
    device_type: str  # "CPU", "GPU", ...
    fp32_gflops: float
    fp64_gflops: float | None  # None without cl_khr_fp64
    bandwidth_gbps: float

    def gflops_for(self, dtype: str) -> float | None:
        """The compute peak of a clconv dtype ("fp16", "fp32", "fp64"); fp16 computes in float."""
        return self.fp64_gflops if dtype == "fp64" else self.fp32_gflops

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "DevicePeak":
        return cls(**{field.name: data.get(field.name) for field in dataclasses.fields(cls)})


def _vector_lanes(info, dtype) -> int:
    """Lanes of one vector register for ``dtype`` (4 to 16), narrower where the compiler needs it
    (DeviceInfo.vector_bits_limit)."""
    dtype = np.dtype(dtype)
    device = info.device
    native = device.native_vector_width_double if dtype == np.float64 else device.native_vector_width_float
    lanes = max(4, min(16, native))
    if info.vector_bits_limit is not None:
        lanes = min(lanes, info.vector_bits_limit // (8 * dtype.itemsize))
    return lanes


def _checked_kernel(target, name: str, defines: dict, args: tuple) -> cl.Kernel:
    """A peak kernel, built only after its variant passed its check in a child process (kernel_check)."""
    return kernel_check.checked_kernel(target, name, defines, (_WORK_GROUP,), args)


def _seconds(target, kernel: cl.Kernel, global_size: int, args: tuple) -> float:
    """Device time of one launch (host time where the queue does not profile)."""
    start = time.perf_counter()
    event = kernel(target.queue, (global_size,), (_WORK_GROUP,), *args)
    event.wait()
    if target.queue.properties & cl.command_queue_properties.PROFILING_ENABLE:
        return (event.profile.end - event.profile.start) * 1e-9
    return time.perf_counter() - start


def fma_gflops(target, dtype, seconds: float = FMA_SECONDS, repeats: int = REPEATS) -> float:
    """Multiply-add throughput of ``target``'s device in ``dtype`` (float32 or float64), in GFLOP/s.

    The iteration count grows from a short run until one run takes about ``seconds``.
    """
    dtype = np.dtype(dtype)
    lanes = _vector_lanes(target.info, dtype)
    defines = {"REAL_BITS": programs.real_bits(dtype), "VEC": lanes, "CHAINS": _CHAINS}
    work_items = _WORK_GROUP * _GROUPS_PER_UNIT * max(1, target.info.compute_units)
    out = cl.Buffer(target.context, cl.mem_flags.WRITE_ONLY, work_items * lanes * dtype.itemsize)

    def arguments(iterations: int) -> PeakFmaArgs:
        return PeakFmaArgs(out=out, multiplier=0.999, addend=1e-3, iterations=iterations)

    kernel = _checked_kernel(target, "peak_fma", defines, arguments(1))

    def run(iterations: int) -> float:
        return _seconds(target, kernel, work_items, arguments(iterations))

    run(1)  # warm-up: PoCL compiles the work-group function at the first launch
    iterations, elapsed = 64, run(64)
    while elapsed < seconds / 10 and iterations < _MAX_ITERATIONS:
        iterations = min(_MAX_ITERATIONS, iterations * 8)
        elapsed = run(iterations)
    iterations = max(1, min(_MAX_ITERATIONS, round(iterations * seconds / max(elapsed, 1e-9))))
    median = statistics.median(run(iterations) for _ in range(repeats))
    flops = 2 * work_items * iterations * _CHAINS * lanes
    return flops / median / 1e9


def copy_bandwidth_gbps(target, buffer_bytes: int = COPY_BUFFER_BYTES, repeats: int = REPEATS + 2) -> float:
    """Global memory bandwidth of ``target``'s device in GB/s: bytes read plus written by a copy between two
    buffers of ``buffer_bytes`` each (capped by the device's largest allocation and a quarter of its memory)."""
    info = target.info
    lanes = _vector_lanes(info, np.float32)
    vector_bytes = lanes * 4
    size = min(buffer_bytes, info.max_alloc_bytes, info.global_mem_bytes // 4)
    vectors = size // (vector_bytes * _WORK_GROUP) * _WORK_GROUP
    if vectors == 0:
        raise ValueError(f"buffer_bytes must be at least {vector_bytes * _WORK_GROUP}, got {buffer_bytes}")
    flags = cl.mem_flags.READ_WRITE
    src = cl.Buffer(target.context, flags, vectors * vector_bytes)
    dst = cl.Buffer(target.context, flags, vectors * vector_bytes)
    defines = {"REAL_BITS": 32, "VEC": lanes}
    try:
        args = PeakCopyArgs(src=src, dst=dst)
        kernel = _checked_kernel(target, "peak_copy", defines, args)

        def run() -> float:
            return _seconds(target, kernel, vectors, args)

        run()  # warm-up: the first touch of every page of both buffers
        median = statistics.median(run() for _ in range(repeats))
    finally:
        src.release()
        dst.release()
    return 2 * vectors * vector_bytes / median / 1e9


def measure(info, fma_seconds: float = FMA_SECONDS, copy_buffer_bytes: int = COPY_BUFFER_BYTES,
            repeats: int = REPEATS) -> DevicePeak:
    """Both peaks of one device (a :class:`clconv.platforms.DeviceInfo` or ``Target``)."""
    target = info if isinstance(info, platforms.Target) else platforms.target_for_device(info)
    info = target.info
    fp64 = fma_gflops(target, np.float64, fma_seconds, repeats) if info.fp64 else None
    return DevicePeak(info.tag, info.name, info.type, fma_gflops(target, np.float32, fma_seconds, repeats), fp64,
                      copy_bandwidth_gbps(target, copy_buffer_bytes, repeats + 2))


def describe(peak: DevicePeak) -> str:
    fp64 = f"{peak.fp64_gflops:.1f}" if peak.fp64_gflops is not None and math.isfinite(peak.fp64_gflops) else "-"
    return (f"{peak.device:10} fp32 {peak.fp32_gflops:8.1f} GFLOP/s  fp64 {fp64:>8} GFLOP/s  "
            f"copy {peak.bandwidth_gbps:6.1f} GB/s  {peak.device_name}")
