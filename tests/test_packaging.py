"""The OpenCL sources ship inside a regular (non-editable) install."""

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_wheel_contains_every_kernel_source(tmp_path):
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path),
         str(ROOT)], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert build.returncode == 0, build.stderr
    wheel = next(tmp_path.glob("clconv-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    sources = sorted(p.name for p in (ROOT / "cl").iterdir() if p.suffix in (".cl", ".h"))
    assert sources, "cl/ holds no kernel sources"
    missing = [name for name in sources if f"clconv/cl/{name}" not in names]
    assert not missing, f"wheel lacks {missing}"
