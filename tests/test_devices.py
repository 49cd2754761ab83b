"""Listing and choosing OpenCL devices."""

import dataclasses
import os
from pathlib import Path

import numpy as np
import pyopencl as cl
import pytest

import clconv
from clconv import cli, kernel_check, platforms


def test_devices_describe_every_device():
    infos = clconv.devices()
    assert infos, "the suite needs at least one OpenCL device"
    platforms_found = cl.get_platforms()
    assert len(infos) == sum(len(p.get_devices()) for p in platforms_found)
    for info in infos:
        p_index, d_index = map(int, info.index.split(":"))
        assert platforms_found[p_index].get_devices()[d_index] == info.device
        assert info.type in ("CPU", "GPU", "accelerator", "other")
        assert info.compute_units >= 1 and info.global_mem_bytes >= info.max_alloc_bytes > 0
        assert info.opencl_c_version.startswith("OpenCL C")
        assert isinstance(info.fp64, bool) and isinstance(info.fp16, bool)
        assert info.platform_name and info.platform_version and info.name
        assert info.cpu_family == (platforms.host_cpu_family() if info.type == "CPU" else None)
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists() and "cpu family" in cpuinfo.read_text():
        assert isinstance(platforms.host_cpu_family(), int)


def test_match_by_index_type_name_and_object(device):
    assert platforms.match(device.index) == device
    assert platforms.match(device.device) == device
    assert platforms.match(device.type.lower()).type == device.type
    assert platforms.match(device.name.upper()[:12]).name.lower().startswith(device.name.lower()[:12])
    assert platforms.match(device.tag) == device
    target = platforms.resolve(device.index)
    assert platforms.resolve(target.queue).queue == target.queue


def test_unknown_spec_lists_what_is_available():
    with pytest.raises(ValueError) as raised:
        platforms.match("no-such-device-anywhere")
    message = str(raised.value)
    assert "Available:" in message and clconv.devices()[0].name in message and "clconv[pocl]" in message


def test_select_device_sets_default_and_call_overrides(device, monkeypatch):
    other = next((info for info in clconv.devices() if info != device), device)
    monkeypatch.delenv(platforms.ENV_VAR, raising=False)
    try:
        assert clconv.select_device(device.index) == device
        assert clconv.default_device() == device
        x, w = np.ones((1, 1, 4, 4), np.float32), np.ones((1, 1, 2, 2), np.float32)
        x_dev = clconv.conv2d(cl.array.to_device(platforms.resolve(other.index).queue, x), w)
        assert x_dev.queue.device == other.device  # arrays on another device decide
    finally:
        clconv.select_device(None)


def test_environment_variable_picks_default(device, monkeypatch):
    monkeypatch.setenv(platforms.ENV_VAR, device.index)
    assert clconv.default_device() == device


def test_no_platform_is_a_runtime_error(monkeypatch):
    def no_platforms():
        raise cl.LogicError("clGetPlatformIDs failed: PLATFORM_NOT_FOUND_KHR")

    monkeypatch.setattr(cl, "get_platforms", no_platforms)
    platforms._enumerate_devices.cache_clear()
    try:
        with pytest.raises(RuntimeError, match=r"no OpenCL platform found.*clconv\[pocl\]"):
            clconv.devices()
    finally:
        monkeypatch.undo()
        platforms._enumerate_devices.cache_clear()


def _fake(index, type_name, units, version="OpenCL 3.0 X 1.0", driver="1.0"):
    real = clconv.devices()[0]
    return dataclasses.replace(real, index=index, type=type_name, compute_units=units,
                               platform_version=version, driver_version=driver)


def test_automatic_choice_prefers_gpu_then_units_then_newest():
    cpu_big = _fake("0:0", "CPU", 64)
    gpu_small = _fake("1:0", "GPU", 8)
    accelerator = _fake("2:0", "accelerator", 100)
    assert platforms.automatic_choice([cpu_big, gpu_small, accelerator]) == gpu_small
    assert platforms.automatic_choice([cpu_big, accelerator]) == accelerator
    assert platforms.automatic_choice([_fake("0:0", "CPU", 2), _fake("1:0", "CPU", 4)]).index == "1:0"
    older = _fake("0:0", "CPU", 2, "OpenCL 3.0 PoCL 3.0-rc2", "3.0-rc2")
    newer = _fake("1:0", "CPU", 2, "OpenCL 3.0 PoCL 3.1+debian", "3.1+debian")
    assert platforms.automatic_choice([older, newer]) == newer


def test_expected_platforms_present():
    """CI installs several OpenCL implementations (CLCONV_TEST_PLATFORMS, ';'-separated pieces of a platform's
    name and version); make sure the suite really ran on each."""
    wanted = [w for w in os.environ.get("CLCONV_TEST_PLATFORMS", "").split(";") if w]
    found = [f"{info.platform_name} {info.platform_version}" for info in clconv.devices()]
    missing = [w for w in wanted if not any(w in platform for platform in found)]
    assert not missing, f"no OpenCL platform matches {missing}; found {found}"


def test_simulators_are_never_chosen_automatically():
    """Oclgrind reports a GPU and Intel's FPGA emulator an accelerator; both stay selectable by spec only."""
    real = dataclasses.replace(clconv.devices()[0], type="CPU", name="Some CPU", platform_name="Some CL")
    oclgrind = dataclasses.replace(real, type="GPU", name="Oclgrind Simulator", platform_name="Oclgrind")
    emulator = dataclasses.replace(real, type="accelerator", name="Intel(R) FPGA Emulation Device",
                                   platform_name="Intel(R) FPGA Emulation Platform for OpenCL(TM)")
    assert oclgrind.simulator and emulator.simulator and not real.simulator
    assert platforms.match(None, [oclgrind, emulator, real]) == real
    assert platforms.match("oclgrind", [oclgrind, emulator, real]) == oclgrind
    assert platforms.match("accelerator", [oclgrind, emulator, real]) == emulator
    with pytest.raises(RuntimeError, match="only simulators were found.*never picks one automatically"):
        platforms.match(None, [oclgrind, emulator])


def test_a_device_whose_compiler_builds_nothing_says_so(broken_device, capsys):
    """The devices conftest leaves out of the per-device tests (their compiler builds none of clconv's kernels
    on this machine: PyPI's PoCL 3.0 on an AMD Zen 5) fail each call with the compiler's words, not with a
    crash, and ``clconv check`` names them instead of failing case after case."""
    failure = kernel_check.compiler_failure(broken_device)
    compiler_words = failure[failure.index("(") + 1:-1].split("; ")[0]
    x, weight = np.ones((1, 2, 5, 5), np.float32), np.ones((3, 2, 3, 3), np.float32)
    with pytest.warns(clconv.KernelFallbackWarning), pytest.raises(RuntimeError, match="its check on") as raised:
        clconv.conv2d(x, weight, device=broken_device.device)
    assert compiler_words in str(raised.value)
    assert cli.main(["check", "--device", broken_device.index, "--dtype", "fp32"]) == 2
    err = capsys.readouterr().err
    assert f"device {broken_device.tag}" in err and failure in err and "no device to run on" in err
