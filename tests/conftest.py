"""Test configuration: every device-dependent test runs once per OpenCL device.

CLCONV_TEST_DEVICES (comma-separated device specs) narrows the devices; by default every device of every
platform is tested, except simulators (Oclgrind), which only the Oclgrind tier (test_oclgrind.py) uses.
A device whose compiler builds none of clconv's kernels on this machine (kernel_check.compiler_failure) is
left out of the per-device tests, named with its compiler's words at the top and the end of the run, and
tested for exactly that in tests/test_devices.py (``broken_device``).
"""

import os
import tempfile

# A user's tuning results must not change what the tests run: the suite gets its own, empty cache.
os.environ["CLCONV_TUNING_CACHE"] = os.path.join(tempfile.mkdtemp(prefix="clconv-tests-"), "tuning.json")

# PoCL 3.x races on a shared kernel cache; each parallel test process gets its own.
if "PYTEST_XDIST_WORKER" in os.environ:
    os.environ["POCL_CACHE_DIR"] = os.path.join(tempfile.gettempdir(),
                                                f"clconv-pocl-{os.environ['PYTEST_XDIST_WORKER']}")

# The Oclgrind tier (test_oclgrind.py): Oclgrind reads these when a context is created, so they are set before
# any exists. Diagnostics go to a log file the tier reads after each test (the error count is per process:
# keep it from silencing later tests); the uninitialised-memory plugin aborts on LLVM `freeze` in 21.10.
os.environ["OCLGRIND_LOG"] = os.path.join(tempfile.mkdtemp(prefix="clconv-oclgrind-"), "oclgrind.log")
os.environ["OCLGRIND_DATA_RACES"] = "1"
os.environ["OCLGRIND_MAX_ERRORS"] = "1000000"
for _switch in ("OCLGRIND_UNINITIALIZED", "OCLGRIND_QUICK"):
    os.environ.pop(_switch, None)

import concurrent.futures  # noqa: E402
import functools  # noqa: E402

import pytest  # noqa: E402

from clconv import arrays, kernel_check, platforms  # noqa: E402  (after POCL_CACHE_DIR is set)
from clconv.algorithms import base  # noqa: E402


@functools.lru_cache(maxsize=1)
def _devices_by_compiler() -> tuple[list, dict]:
    specs = os.environ.get("CLCONV_TEST_DEVICES")
    if not specs:
        chosen = [info for info in platforms.devices() if not info.simulator]
    else:
        chosen = []
        for spec in specs.split(","):
            info = platforms.match(spec)
            if info not in chosen:
                chosen.append(info)
    return kernel_check.split_by_compiler(chosen)


def selected_devices():
    return _devices_by_compiler()[0]


def _left_out_lines() -> list[str]:
    return [f"not tested: {info.tag} ({info.name}, {info.platform_name} {info.platform_version}): {failure}"
            for info, failure in _devices_by_compiler()[1].items()]


def pytest_generate_tests(metafunc):
    if "device" in metafunc.fixturenames:
        infos = selected_devices()
        metafunc.parametrize("device", infos, ids=[info.tag for info in infos])
    if "broken_device" in metafunc.fixturenames:
        broken = list(_devices_by_compiler()[1])
        metafunc.parametrize("broken_device", broken, ids=[info.tag for info in broken])


def pytest_report_header(config):
    return _left_out_lines()


def pytest_terminal_summary(terminalreporter):
    for line in _left_out_lines():
        terminalreporter.write_line(line, yellow=True)


@pytest.fixture
def failing_kernels(monkeypatch):
    """``fail(predicate)``: from then on, every kernel variant for which ``predicate(name, defines)`` holds fails
    its check (kernel_check.KernelVariantFailed, as a crash in the child process would), with its warning shown
    again however many tests warned before."""

    def fail(predicate):
        original = kernel_check.checked_kernel

        def checked_kernel(target, name, defines, local, args):
            if predicate(name, defines):
                variant = kernel_check.Variant(name, tuple(sorted(defines.items())), local)
                raise kernel_check.KernelVariantFailed(variant, target.info, {"status": "crashed", "detail": "a test"})
            return original(target, name, defines, local, args)

        monkeypatch.setattr(kernel_check, "checked_kernel", checked_kernel)
        monkeypatch.setattr(kernel_check, "_warned", set())

    return fail


@pytest.fixture
def kernel_launches(monkeypatch) -> list:
    """Every kernel launch from here on, in order: (launcher, kernel name, defines). ``launches.clear()`` starts
    the record again."""
    launches = []
    launch = base.KernelLauncher.launch

    def recorded(self, name, defines, *args, **kwargs):
        launches.append((self, name, defines))
        return launch(self, name, defines, *args, **kwargs)

    monkeypatch.setattr(base.KernelLauncher, "launch", recorded)
    return launches


@pytest.fixture
def copies_kept(monkeypatch):
    """``check(plan, store, names, run, expected)``: the copies a plan keeps in ``plan._conversions.<store>``, one per
    input in ``names``, serve every call: ``run(index)`` gives ``expected[index]`` one call after another and from
    four threads at once, in the same memory, and a copy for which the device's kept memory has no room gets fresh
    memory instead."""

    def check(plan, store: str, names, run, expected):
        kept_now = functools.partial(getattr, plan._conversions, store)
        assert [run(index) for index in range(len(expected))] == expected
        kept = dict(kept_now())
        assert set(kept) == set(names)
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            together = list(pool.map(run, [index % len(expected) for index in range(24)]))
        assert together == [expected[index % len(expected)] for index in range(24)]
        assert all(kept_now()[name][0] is entry[0] for name, entry in kept.items())
        monkeypatch.setattr(plan._conversions, "_kept", arrays.KeptMemory(0))
        monkeypatch.setattr(plan._conversions, store, {})
        assert run(0) == expected[0] and not kept_now()

    return check


@pytest.fixture
def bench_device():
    """One device for tests that run a whole program once, not once per device: the first tested one."""
    return selected_devices()[0]
