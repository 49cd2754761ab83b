"""Intel's OpenCL CPU runtime from PyPI (``pip install "clconv[intel]"``), made visible to the ICD loader.

The ``intel-opencl-rt`` wheel installs ``<prefix>/lib/libintelocl.so`` (its libimf, libsvml and libintlc
come from ``intel-cmplr-lib-rt`` and resolve through its RUNPATH), but its ICD file names a conda
placeholder path (``/opt/anaconda1anaconda2anaconda3/lib/libintelocl.so``), which a pip install never
rewrites, and it sits in ``<prefix>/etc/OpenCL/vendors``, which no ICD loader reads.

The loader inside pyopencl's wheel (ocl-icd) reads the environment variable ``OCL_ICD_VENDORS`` at the
first ``clGetPlatformIDs`` of the process: a folder that replaces ``/etc/OpenCL/vendors``, read together
with pyopencl's own folder (where PoCL's wheel registers itself). So on import clconv writes a folder
holding a copy of every system ICD file plus one naming the real ``libintelocl.so``, and points
``OCL_ICD_VENDORS`` at it. Child processes inherit the variable.

Nothing happens when intel-opencl-rt is not installed, when the user set ``OCL_ICD_VENDORS`` already,
or when a system ICD file names an Intel CPU runtime. The folder lives in clconv's user cache folder,
named by a digest of its contents, so a changed system ICD list makes a new one.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import tempfile
from pathlib import Path

from .cache_files import user_cache_folder

LOADER_ENV_VAR = "OCL_ICD_VENDORS"
DISTRIBUTION = "intel-opencl-rt"
LIBRARY = "libintelocl.so"


def installed_library() -> Path | None:
    """The libintelocl.so of an installed intel-opencl-rt wheel, or None."""
    try:
        distribution = importlib.metadata.distribution(DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        return None
    for entry in distribution.files or ():
        if entry.name == LIBRARY:
            path = Path(os.path.realpath(distribution.locate_file(entry)))
            return path if path.is_file() else None
    return None


def _system_icd_files() -> dict:
    folder = Path(os.environ.get("OPENCL_VENDOR_PATH") or "/etc/OpenCL/vendors")
    files = {}
    try:
        candidates = sorted(folder.glob("*.icd"))
    except OSError:
        return files
    for path in candidates:
        try:
            files[path.name] = path.read_text()
        except OSError:
            continue
    return files


def _write_folder(root: Path, files: dict) -> Path:
    """The folder holding ``files``, written once: concurrent processes race to one atomic rename."""
    digest = hashlib.sha256(repr(sorted(files.items())).encode()).hexdigest()[:16]
    folder = root / digest
    if folder.is_dir():
        return folder
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=root, prefix=".staging-"))
    for name, text in files.items():
        (staging / name).write_text(text)
    try:
        os.rename(staging, folder)
    except OSError:  # another process made it first
        for name in files:
            (staging / name).unlink()
        staging.rmdir()
    return folder


def register(root: Path | None = None) -> Path | None:
    """Point the ICD loader at a folder that includes the Intel runtime; returns that folder, or None when
    nothing needed doing. Effective only before the process first lists OpenCL platforms."""
    if os.environ.get(LOADER_ENV_VAR):
        return None
    library = installed_library()
    if library is None:
        return None
    files = _system_icd_files()
    if any(LIBRARY in text for text in files.values()):
        return None
    files["clconv-intel-opencl-rt.icd"] = f"{library}\n"
    root = root or user_cache_folder() / "opencl-vendors"
    try:
        folder = _write_folder(root, files)
    except OSError:
        return None  # no writable cache folder: the runtime stays hidden, everything else works as before
    os.environ[LOADER_ENV_VAR] = str(folder)
    return folder
