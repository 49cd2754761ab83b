"""Test configuration: every device-dependent test runs once per OpenCL device.

CLCONV_TEST_DEVICES (comma-separated device specs) narrows the devices; by default every device of every
platform is tested, except simulators (Oclgrind), which only the Oclgrind tier (test_oclgrind.py) uses.
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

from clconv import platforms  # noqa: E402  (after POCL_CACHE_DIR is set)


def selected_devices():
    specs = os.environ.get("CLCONV_TEST_DEVICES")
    if not specs:
        return [info for info in platforms.devices() if not info.simulator]
    chosen = []
    for spec in specs.split(","):
        info = platforms.match(spec)
        if info not in chosen:
            chosen.append(info)
    return chosen


def pytest_generate_tests(metafunc):
    if "device" in metafunc.fixturenames:
        infos = selected_devices()
        metafunc.parametrize("device", infos, ids=[info.tag for info in infos])
