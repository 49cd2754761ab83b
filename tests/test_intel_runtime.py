"""Intel's OpenCL CPU runtime from PyPI becomes visible to pyopencl with no manual step."""

import os
import subprocess
import sys

import pytest

from clconv import intel_runtime


@pytest.fixture
def fake_install(tmp_path, monkeypatch):
    """An installed-looking libintelocl.so and a system ICD folder holding PoCL's file."""
    library = tmp_path / "lib" / "libintelocl.so"
    library.parent.mkdir()
    library.write_bytes(b"")
    system = tmp_path / "vendors"
    system.mkdir()
    (system / "pocl.icd").write_text("libpocl.so.2\n")
    monkeypatch.setattr(intel_runtime, "installed_library", lambda: library)
    monkeypatch.setenv("OPENCL_VENDOR_PATH", str(system))
    monkeypatch.delenv(intel_runtime.LOADER_ENV_VAR, raising=False)
    return library


def test_register_points_the_loader_at_every_system_icd_plus_intel(fake_install, tmp_path):
    folder = intel_runtime.register(tmp_path / "cache")
    assert os.environ[intel_runtime.LOADER_ENV_VAR] == str(folder)
    files = {path.name: path.read_text() for path in folder.iterdir()}
    assert files == {"pocl.icd": "libpocl.so.2\n", "clconv-intel-opencl-rt.icd": f"{fake_install}\n"}
    # The same contents give the same folder (concurrent processes agree); new contents a new one.
    os.environ.pop(intel_runtime.LOADER_ENV_VAR)
    assert intel_runtime.register(tmp_path / "cache") == folder
    (tmp_path / "vendors" / "nvidia.icd").write_text("libnvidia-opencl.so.1\n")
    os.environ.pop(intel_runtime.LOADER_ENV_VAR)
    assert intel_runtime.register(tmp_path / "cache") != folder


def test_register_leaves_a_users_choice_alone(fake_install, tmp_path, monkeypatch):
    monkeypatch.setenv(intel_runtime.LOADER_ENV_VAR, "/my/vendors")
    assert intel_runtime.register(tmp_path / "cache") is None
    assert os.environ[intel_runtime.LOADER_ENV_VAR] == "/my/vendors"


def test_register_does_nothing_when_intel_is_registered_system_wide(fake_install, tmp_path):
    (tmp_path / "vendors" / "intel.icd").write_text("/opt/intel/oneapi/lib/libintelocl.so\n")
    assert intel_runtime.register(tmp_path / "cache") is None
    assert intel_runtime.LOADER_ENV_VAR not in os.environ


def test_register_does_nothing_without_the_runtime(tmp_path, monkeypatch):
    monkeypatch.setattr(intel_runtime, "installed_library", lambda: None)
    monkeypatch.delenv(intel_runtime.LOADER_ENV_VAR, raising=False)
    assert intel_runtime.register(tmp_path / "cache") is None
    assert intel_runtime.LOADER_ENV_VAR not in os.environ


def test_clconv_devices_lists_the_installed_runtime():
    """After `pip install "clconv[intel]"`, in a fresh process with no OpenCL variable set by hand."""
    if intel_runtime.installed_library() is None:
        pytest.skip("intel-opencl-rt is not installed (pip install 'clconv[intel]')")
    environment = {name: value for name, value in os.environ.items() if not name.startswith("OCL_ICD")}
    done = subprocess.run([sys.executable, "-m", "clconv.cli", "devices"], capture_output=True, text=True,
                          env=environment, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "Intel(R) OpenCL" in done.stdout
