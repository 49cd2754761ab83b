"""The clconv command line."""

import os
import subprocess
import sys

import numpy as np

from clconv import check, cli, kernel_check


def test_devices_table(capsys):
    assert cli.main(["devices"]) == 0
    out = capsys.readouterr().out
    assert "index" in out and "* default device:" in out and "OpenCL C" in out


def test_check_passes_on_device(device, capsys):
    assert cli.main(["check", "--device", device.index, "--dtype", "fp32"]) == 0
    out = capsys.readouterr().out
    assert out.count("PASS") == 4 * len(check.CASE_SETS) and "FAIL" not in out and device.tag in out


def test_check_fails_on_a_wrong_result(device, capsys, monkeypatch):
    run_pass = check.run_pass

    def off_by_a_bit(pass_name, case, inputs, **kwargs):
        result = run_pass(pass_name, case, inputs, **kwargs)
        if pass_name == "grad_weight":
            result.flat[-1] += np.float32(0.01)
        return result

    monkeypatch.setattr(check, "run_pass", off_by_a_bit)
    assert cli.main(["check", "--device", device.index, "--dtype", "fp32"]) == 1
    out = capsys.readouterr().out
    assert "grad_weight" in out and "FAIL" in out


def test_check_unknown_device_is_a_clean_error(capsys):
    assert cli.main(["check", "--device", "no-such-device"]) == 2
    assert "matches no OpenCL device" in capsys.readouterr().err


def test_module_entry_point_runs():
    done = subprocess.run([sys.executable, "-m", "clconv.cli", "devices"], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert "default device" in done.stdout


def test_a_device_whose_compiler_builds_nothing_is_left_out_and_named(device, tmp_path):
    """The checker aborts on the smallest kernel (the hook), as a compiler that cannot build for the host CPU
    fails it: a named device is left out with that reason and fails the command; the listing names it."""
    environment = dict(os.environ, POCL_CACHE_DIR=str(tmp_path / "pocl"),
                       **{kernel_check.FILE_ENV_VAR: str(tmp_path / "kernel_checks.json")})
    faulty = dict(environment, **{kernel_check.FAULT_ENV_VAR: f"abort:{kernel_check.PROBE_KERNEL} ["})
    named = subprocess.run([sys.executable, "-m", "clconv.cli", "check", "--device", device.index, "--dtype", "fp32"],
                           capture_output=True, text=True, env=faulty, timeout=600)
    assert named.returncode == 2, named.stderr
    assert f"device {device.tag}: {device.name}" in named.stderr and "left out" in named.stderr
    assert "its compiler crashed clconv's smallest kernel" in named.stderr and "SIGABRT" in named.stderr
    assert "no device to run on" in named.stderr and "checks passed" not in named.stdout
    # Without the hook the stored verdict alone leaves it out.
    listing = subprocess.run([sys.executable, "-m", "clconv.cli", "devices"], capture_output=True, text=True,
                             env=environment, timeout=600)
    assert listing.returncode == 0, listing.stderr
    assert f"[{device.index}] {device.name} builds no kernel here, so check and bench leave it out: its compiler " \
           "crashed" in listing.stdout
