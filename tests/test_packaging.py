"""The OpenCL sources and the example programs ship inside a regular (non-editable) install."""

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def wheel_names(tmp_path_factory):
    folder = tmp_path_factory.mktemp("wheel")
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(folder),
         str(ROOT)], capture_output=True, text=True, timeout=300, cwd=folder)
    assert build.returncode == 0, build.stderr
    wheel = next(folder.glob("clconv-*.whl"))
    return set(zipfile.ZipFile(wheel).namelist())


def test_wheel_contains_every_kernel_source(wheel_names):
    sources = sorted(p.name for p in (ROOT / "cl").iterdir() if p.suffix in (".cl", ".h"))
    assert sources, "cl/ holds no kernel sources"
    missing = [name for name in sources if f"clconv/cl/{name}" not in wheel_names]
    assert not missing, f"wheel lacks {missing}"


def test_wheel_contains_the_examples(wheel_names):
    """clconv train-demo finds examples/train_digits.py in an installed package as clconv/examples."""
    examples = sorted(p.name for p in (ROOT / "examples").glob("*.py"))
    assert "train_digits.py" in examples
    missing = [name for name in examples if f"clconv/examples/{name}" not in wheel_names]
    assert not missing, f"wheel lacks {missing}"
