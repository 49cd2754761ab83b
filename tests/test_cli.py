"""The clconv command line."""

import subprocess
import sys

import numpy as np

from clconv import check, cli


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
