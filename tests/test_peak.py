"""The device peak measurement (clconv.peak) and its kernels, on sizes small enough for a test."""

import json
import math

import numpy as np
import pyopencl as cl
import pytest

from clconv import peak, platforms, programs

# Milliseconds of device time and a 1 MiB copy.
TINY_PEAK = dict(fma_seconds=0.002, copy_buffer_bytes=2**20, repeats=1)


def test_peak_is_finite_and_positive(device):
    measured = peak.measure(device, **TINY_PEAK)
    assert measured.device == device.tag and measured.device_type == device.type
    assert math.isfinite(measured.fp32_gflops) and measured.fp32_gflops > 0
    assert math.isfinite(measured.bandwidth_gbps) and measured.bandwidth_gbps > 0
    if device.fp64:
        assert math.isfinite(measured.fp64_gflops) and measured.fp64_gflops > 0
    else:
        assert measured.fp64_gflops is None
    assert measured.gflops_for("fp16") == measured.fp32_gflops
    assert peak.DevicePeak.from_dict(json.loads(json.dumps(measured.as_dict()))) == measured


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["fp32", "fp64"])
def test_peak_fma_kernel_runs_every_chain_and_lane(device, dtype):
    """The FLOP count assumes iterations x CHAINS x VEC multiply-adds per work-item: check their result."""
    if np.dtype(dtype) == np.float64 and not device.fp64:
        pytest.skip(f"{device.name} lacks cl_khr_fp64")
    target = platforms.target_for_device(device)
    lanes, chains, iterations, items = 4, 3, 5, 64
    kernel = programs.get_kernel(target.context, "peak_fma",
                                 {"REAL_BITS": programs.real_bits(dtype), "VEC": lanes, "CHAINS": chains})
    out = np.empty(items * lanes, dtype)
    out_buffer = cl.Buffer(target.context, cl.mem_flags.WRITE_ONLY, out.nbytes)
    multiplier, addend = dtype(0.5), dtype(0.25)
    kernel(target.queue, (items,), (16,), out_buffer, multiplier, addend, np.int32(iterations))
    cl.enqueue_copy(target.queue, out, out_buffer)
    chain = np.arange(items, dtype=np.float64)[:, None] * 0.25 + np.arange(chains)  # each chain's start
    for _ in range(iterations):
        chain = chain * 0.5 + 0.25
    expected = np.repeat(chain.sum(axis=1), lanes)
    np.testing.assert_allclose(out, expected, rtol=1e-6, err_msg=f"{device.tag} peak_fma")


def test_peak_copy_kernel_copies(device):
    target = platforms.target_for_device(device)
    lanes = 4
    kernel = programs.get_kernel(target.context, "peak_copy", {"REAL_BITS": 32, "VEC": lanes})
    source = np.random.default_rng(0).standard_normal(64 * lanes).astype(np.float32)
    src = cl.Buffer(target.context, cl.mem_flags.READ_ONLY | cl.mem_flags.COPY_HOST_PTR, hostbuf=source)
    dst = cl.Buffer(target.context, cl.mem_flags.WRITE_ONLY, source.nbytes)
    kernel(target.queue, (64,), (16,), src, dst)
    copied = np.empty_like(source)
    cl.enqueue_copy(target.queue, copied, dst)
    np.testing.assert_array_equal(copied, source)
