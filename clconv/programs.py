"""Loading the OpenCL C sources in ``cl/`` and building them, once per context and option set.

The sources live in the repository's top-level ``cl/`` folder; a regular
install copies them into the package as ``clconv/cl``. Compile-time
constants reach a kernel only as ``-D`` options built from a mapping, so one
build serves every shape that shares those constants.
"""

from __future__ import annotations

import collections
import functools
from pathlib import Path

import numpy as np
import pyopencl as cl
from pyopencl.tools import context_dependent_memoize

_PACKAGE_DIR = Path(__file__).resolve().parent

# Installed wheel: clconv/cl. Source checkout or editable install: ../cl beside the package.
_SOURCE_DIR_CANDIDATES = (_PACKAGE_DIR / "cl", _PACKAGE_DIR.parent / "cl")

#: Number of program builds per source file in this process; lets tests prove the cache works.
build_counts: collections.Counter = collections.Counter()


@functools.lru_cache(maxsize=1)
def source_dir() -> Path:
    for candidate in _SOURCE_DIR_CANDIDATES:
        if (candidate / "common.h").is_file():
            return candidate
    searched = ", ".join(str(c) for c in _SOURCE_DIR_CANDIDATES)
    raise RuntimeError(f"clconv's OpenCL sources (cl/common.h) were not found; searched {searched}")


@functools.lru_cache(maxsize=None)
def read_source(filename: str) -> str:
    return (source_dir() / filename).read_text()


def real_bits(dtype) -> int:
    return np.dtype(dtype).itemsize * 8


def dtype_defines(dtype, info) -> dict:
    """What cl/common.h needs to know of the dtype and the device (a platforms.DeviceInfo): REAL_BITS, USE_FMA
    (fused multiply-add reported for that precision) and MULADD_CONTRACT (PoCL, whose fma() is slow; see
    MULADD there)."""
    dtype = np.dtype(dtype)
    fp_config = info.device.double_fp_config if dtype == np.float64 else info.device.single_fp_config
    return {"REAL_BITS": real_bits(dtype), "USE_FMA": int(bool(fp_config & cl.device_fp_config.FMA)),
            "MULADD_CONTRACT": int(info.implementation == "pocl")}


def build_options(defines: dict) -> tuple[str, ...]:
    """Turn {"NAME": value} into sorted ``-DNAME=value`` options plus the include path."""
    options = [f"-D{name}={int(value)}" for name, value in sorted(defines.items())]
    options += ["-I", str(source_dir())]
    return tuple(options)


@context_dependent_memoize
def _build(context: cl.Context, filename: str, options: tuple[str, ...]) -> cl.Program:
    build_counts[filename] += 1
    program = cl.Program(context, read_source(filename))
    try:
        return program.build(options=list(options))
    except cl.Error as error:
        devices = ", ".join(d.name for d in context.devices)
        raise RuntimeError(
            f"the OpenCL compiler of {devices} rejected {filename} with options {' '.join(options)}:\n{error}"
        ) from error


def get_program(context: cl.Context, filename: str, defines: dict) -> cl.Program:
    """The program built from ``cl/<filename>`` for ``context``; compiled on the first request only."""
    return _build(context, filename, build_options(defines))


def get_kernel(context: cl.Context, name: str, defines: dict) -> cl.Kernel:
    """Kernel ``name`` from ``cl/<name>.cl`` (each file is named after its entry kernel).

    A new Kernel object per caller: kernels carry their arguments, so sharing one between
    plans would let one plan's arguments leak into another's launch.
    """
    return cl.Kernel(get_program(context, f"{name}.cl", defines), name)
