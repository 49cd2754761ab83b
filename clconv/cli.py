"""The ``clconv`` command: ``devices`` lists OpenCL devices, ``check`` tests them against the oracle."""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

from . import check as _check
from . import platforms as _platforms
from .params import PASSES, dtype_name

_DTYPE_CHOICES = {"fp16": np.float16, "fp32": np.float32, "fp64": np.float64}


def _gib(n_bytes: int) -> str:
    return f"{n_bytes / 2**30:.1f} GiB"


def _default_reason() -> str:
    env = os.environ.get(_platforms.ENV_VAR)
    if env:
        return f"from {_platforms.ENV_VAR}={env!r}"
    return "chosen automatically: GPU, then accelerator, then CPU; most compute units; newest platform"


def cmd_platforms(args) -> int:
    infos = _platforms.devices()
    default = _platforms.default_device()
    header = ("", "index", "type", "device", "platform", "CUs", "memory", "max alloc", "fp64", "fp16 ext", "OpenCL C")
    rows = [header]
    for info in infos:
        rows.append(("*" if info.device == default.device else "", info.index, info.type, info.name,
                     f"{info.platform_name} ({info.platform_version})", str(info.compute_units),
                     _gib(info.global_mem_bytes), _gib(info.max_alloc_bytes), "yes" if info.fp64 else "no",
                     "yes" if info.fp16 else "no", info.opencl_c_version))
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
    print(f"\n* default device: [{default.index}] {default.name} ({_default_reason()})")
    print("fp16 runs on every device (half storage, float arithmetic); fp64 needs the fp64 column to say yes.")
    return 0


def _supported_dtypes(info, requested):
    for dtype in requested:
        if np.dtype(dtype) == np.float64 and not info.fp64:
            yield dtype, "device lacks cl_khr_fp64"
        else:
            yield dtype, None


def cmd_check(args) -> int:
    if args.device:
        infos = []
        for spec in args.device:
            info = _platforms.match(spec)
            if info not in infos:
                infos.append(info)
    else:
        infos = _platforms.devices()
    dtypes = [_DTYPE_CHOICES[name] for name in (args.dtype or _DTYPE_CHOICES)]
    failures = checks = 0
    for info in infos:
        print(f"device {info.tag}: {info.name} ({info.type}), {info.platform_name} {info.platform_version}")
        print(f"  {'dtype':6} {'pass':12} {'cases':>5} {'max error':>10} {'tolerance':>10}  result")
        for dtype, missing in _supported_dtypes(info, dtypes):
            if missing:
                print(f"  {dtype_name(dtype):6} {'all':12} {'-':>5} {'-':>10} {'-':>10}  not run: {missing}")
                continue
            for pass_name in PASSES:
                worst, problems = 0.0, []
                for case in _check.CASES:
                    checks += 1
                    try:
                        result = _check.check_pass(pass_name, case, dtype, device=info.device, algo=args.algo)
                    except Exception as error:  # a broken driver must not stop the survey of the others
                        problems.append(f"{case.name}: {type(error).__name__}: {error}")
                        worst = np.inf
                        continue
                    worst = max(worst, result.max_error)
                    if not result.passed:
                        problems.append(f"{case.name}: {result.message}")
                failures += len(problems)
                verdict = "PASS" if not problems else f"FAIL ({len(problems)} of {len(_check.CASES)})"
                print(f"  {dtype_name(dtype):6} {pass_name:12} {len(_check.CASES):5d} {worst:10.2e} "
                      f"{_check.TOLERANCE[np.dtype(dtype)]:10.0e}  {verdict}")
                for problem in problems:
                    print(f"      {problem}")
    print(f"\n{checks - failures} of {checks} checks passed on {len(infos)} device(s).")
    return 1 if failures else 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="clconv", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("devices", help="list every OpenCL device and the default choice").set_defaults(run=cmd_platforms)
    check = commands.add_parser("check", help="run every pass against the NumPy oracle on built-in layer shapes")
    check.add_argument("--device", action="append", metavar="SPEC",
                       help="device spec ('P:D', cpu, gpu, accelerator, name substring); repeatable; default: all")
    check.add_argument("--dtype", action="append", choices=sorted(_DTYPE_CHOICES),
                       help="dtype to check; repeatable; default: all the device supports")
    check.add_argument("--algo", default="auto", help="algorithm to check (default: auto)")
    check.set_defaults(run=cmd_check)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except (ValueError, TypeError, RuntimeError) as error:
        print(f"clconv {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
