"""Kernel variants are checked in a child process: a compiler that aborts or hangs never takes the caller
down, the plan falls back to the next-best variant, and the verdict outlives the process.

Each scenario runs in fresh Python processes (the caller) with their own verdict file and PoCL kernel
cache; the test-only hook CLCONV_TEST_CHECK_FAULT makes the checker abort or hang on the variants chosen.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from clconv import check, kernel_check, planning

# The fallback layer (Q = W = 16): its default forward tile has the device's widest vector, 16 lanes on most
# CPUs, 8 on PyPI's PoCL 3.0 on Zen 4, 4 on GPUs; the hook targets whatever the device's tile really is.
CALLER = r"""
import json, sys, warnings
import numpy as np
import clconv
from clconv import check, kernel_check
from clconv.params import PASSES

case = check.Case("fallback", (2, 8, 16, 16), (8, 8, 3, 3), padding=1)
inputs = check.random_inputs(case, np.float32)
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    # Every pass: forward and grad_input have the same tile here, and each must fall back on its own.
    comparisons = [check.check_pass(name, case, np.float32, device=sys.argv[1]) for name in PASSES]
plan = clconv.plan(case.input_shape, case.weight_shape, padding=1, device=sys.argv[1])
plan.forward(inputs["x"], inputs["weight"])
tiled = plan._implementation("forward")
print(json.dumps({
    "passed": all(c.passed for c in comparisons), "errors": [c.message for c in comparisons if not c.passed],
    "checks_run": kernel_check.checks_run,
    "algo": plan.algorithms["forward"], "source": plan.choices["forward"].source,
    "vec": tiled.configs["forward"].vec if hasattr(tiled, "configs") else None,
    "warnings": [str(w.message) for w in caught if issubclass(w.category, clconv.KernelFallbackWarning)],
}))
"""


def run_caller(device, cache: Path, pocl_cache: Path | None = None, **env) -> dict:
    """Run CALLER in a new process with the verdicts (and tuning data) in ``cache``."""
    environment = dict(os.environ, CLCONV_TUNING_CACHE=str(cache / "tuning.json"),
                       POCL_CACHE_DIR=str(pocl_cache or cache / "pocl"))
    environment.pop(kernel_check.FAULT_ENV_VAR, None)
    environment.update(env)
    done = subprocess.run([sys.executable, "-c", CALLER, device.index], capture_output=True, text=True,
                          env=environment, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def verdicts(cache: Path) -> dict:
    document = json.loads((cache / "kernel_checks.json").read_text())
    (by_version,) = document["entries"].values()
    (by_variant,) = by_version.values()
    return by_variant


@pytest.fixture(scope="session")
def pocl_cache(tmp_path_factory):
    """One PoCL kernel cache for the callers of several tests, as on a user's machine."""
    return tmp_path_factory.mktemp("pocl-cache")


@pytest.fixture
def default_vec(device, tmp_path, pocl_cache):
    """The vector width the device's default forward tile has for the CALLER layer, and a clean run."""
    clean = run_caller(device, tmp_path / "clean", pocl_cache)
    assert clean["passed"] and clean["source"] == "heuristic" and not clean["warnings"], clean
    return clean["vec"]


def test_aborting_check_falls_back_warns_and_is_remembered(device, default_vec, tmp_path, pocl_cache):
    fault = f"abort:VEC={default_vec}]"
    first = run_caller(device, tmp_path, pocl_cache, **{kernel_check.FAULT_ENV_VAR: fault})
    assert first["passed"], first
    assert first["algo"] == "tiled" and first["source"] == "fallback" and first["vec"] == default_vec // 2
    warning = first["warnings"][0]
    assert f"VEC={default_vec}]" in warning and "crashed its check" in warning and "SIGABRT" in warning
    assert device.name in warning and device.driver_version in warning
    stored = verdicts(tmp_path)
    failed = [v for name, v in stored.items() if f"VEC={default_vec}]" in name]
    assert failed and all(v["status"] == "crashed" for v in failed)
    assert any(v["status"] == "ok" and f"VEC={default_vec // 2}]" in name for name, v in stored.items())

    # A new process, without the hook: the stored verdict alone keeps the variant out; nothing is checked again.
    second = run_caller(device, tmp_path, pocl_cache)
    assert second["passed"] and second["vec"] == default_vec // 2 and second["checks_run"] == 0, second
    assert second["warnings"] and second["warnings"][0] == warning


def test_hanging_check_counts_as_a_crash(device, default_vec, tmp_path, pocl_cache):
    hung = run_caller(device, tmp_path, pocl_cache, **{kernel_check.FAULT_ENV_VAR: f"hang:VEC={default_vec}]",
                                           kernel_check.TIMEOUT_ENV_VAR: "20"})
    assert hung["passed"] and hung["vec"] == default_vec // 2, hung
    assert "hung its check" in hung["warnings"][0] and "no verdict within 20 s" in hung["warnings"][0]


def test_kernel_cache_broken_by_a_crashed_compile_does_not_break_later_runs(device, tmp_path):
    """A crash halfway through writing PoCL's kernel cache leaves truncated files behind (PoCL 3.1 then
    fails an assertion when it loads them, PoCL 3.0 loses the kernel and aborts at exit). A later process
    that checks the variant again (a new clconv version, a deleted verdict file) must still run it."""
    first = run_caller(device, tmp_path)
    assert first["passed"] and not first["warnings"], first
    broken = 0
    for path in (tmp_path / "pocl").rglob("*"):
        if path.is_file() and path.stat().st_size > 0:
            with open(path, "r+b") as handle:
                handle.truncate(path.stat().st_size // 2)
            broken += 1
    if device.tag.startswith("pocl"):
        assert broken, "PoCL wrote no kernel cache: this test would not test anything"
    (tmp_path / "kernel_checks.json").unlink()

    later = run_caller(device, tmp_path)
    assert later["passed"] and not later["warnings"] and later["vec"] == first["vec"], later
    stored = verdicts(tmp_path).values()
    assert all(v["status"] == "ok" for v in stored)
    if device.tag.startswith("pocl"):  # PoCL cannot use the truncated files: the checks had to rebuild under a salt
        assert any(v["salt"] for v in stored), stored
    again = run_caller(device, tmp_path)
    assert again["passed"] and again["checks_run"] == 0, again


def test_a_variant_is_checked_once_per_process(device):
    case = next(c for c in check.CASES if c.name == "1x1")
    assert check.check_pass("forward", case, np.float32, device=device.device).passed
    count = kernel_check.checks_run
    planning.clear_plan_cache()  # new plans, new kernels: their variants' verdicts come from memory
    assert check.check_pass("forward", case, np.float32, device=device.device).passed
    assert kernel_check.checks_run == count


def test_sources_digest_follows_edits_in_a_running_process(tmp_path, monkeypatch):
    """A verdict is keyed by the sources the checker compiled, even when they change while a process runs."""
    from clconv import programs

    for path in programs.source_dir().iterdir():
        if path.suffix in (".cl", ".h"):
            (tmp_path / path.name).write_bytes(path.read_bytes())
    monkeypatch.setattr(programs, "source_dir", lambda: tmp_path)
    before = kernel_check.sources_digest()
    kernel = tmp_path / "conv2d_tiled.cl"
    original = kernel.read_bytes()
    kernel.write_bytes(original + b"\n/* edited */\n")
    edited = kernel_check.sources_digest()
    kernel.write_bytes(original)
    assert edited != before
    assert kernel_check.sources_digest() == before
