"""The ``clconv`` command.

``devices`` lists the OpenCL devices, ``check`` tests them against the NumPy oracle, ``bench`` compares
them with PyTorch, CLBlast and NumPy, ``tune`` stores the fastest algorithms per layer, and
``train-demo`` trains a CNN with clconv beside plain PyTorch.
"""

from __future__ import annotations

import argparse
import importlib
import itertools
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

from . import bench_charts, bench_compare, bench_report, benchmark, kernel_check, layers, tuner, tuning_cache
from . import check as _check
from . import platforms as _platforms
from .params import PASSES, Conv2DParams, dtype_name

_DTYPE_CHOICES = {"fp16": np.float16, "fp32": np.float32, "fp64": np.float64}

# The example programs. Installed wheel: clconv/examples. Source checkout or editable install: ../examples.
_EXAMPLE_DIRS = (Path(__file__).resolve().parent / "examples", Path(__file__).resolve().parent.parent / "examples")


def _gib(n_bytes: int) -> str:
    return f"{n_bytes / 2**30:.1f} GiB"


def _default_reason() -> str:
    env = os.environ.get(_platforms.ENV_VAR)
    if env:
        return f"from {_platforms.ENV_VAR}={env!r}"
    return ("chosen automatically: GPU, then accelerator, then CPU, never a simulator; most compute units; "
            "newest platform")


def cmd_devices(args) -> int:
    infos = _platforms.devices()
    try:
        default = _platforms.default_device()
    except RuntimeError as error:  # only simulators: there is no automatic choice
        default, no_default = None, str(error)
    header = ("", "index", "type", "device", "platform", "CUs", "memory", "max alloc", "fp64", "fp16 ext", "OpenCL C")
    rows = [header]
    for info in infos:
        kind = f"{info.type} (simulator)" if info.simulator else info.type
        rows.append(("*" if default is not None and info.device == default.device else "", info.index, kind, info.name,
                     f"{info.platform_name} ({info.platform_version})", str(info.compute_units),
                     _gib(info.global_mem_bytes), _gib(info.max_alloc_bytes), "yes" if info.fp64 else "no",
                     "yes" if info.fp16 else "no", info.opencl_c_version))
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
    if default is None:
        print(f"\nno default device: {no_default}")
    else:
        print(f"\n* default device: [{default.index}] {default.name} ({_default_reason()})")
    print("fp16 runs on every device (half storage, float arithmetic); fp64 needs the fp64 column to say yes.")
    for info, failure in kernel_check.split_by_compiler(infos)[1].items():
        print(f"[{info.index}] {info.name} builds no kernel here, so check and bench leave it out: {failure}")
    return 0


def _run_devices(specs) -> tuple[list, int]:
    """The devices a command runs on: those ``specs`` name (each once), or every device whose compiler builds
    clconv's kernels. Prints why each device it leaves out is left out; returns the devices and how many of
    the named ones it left out (a failure of the command)."""
    infos = []
    for spec in specs or ():
        info = _platforms.match(spec)
        if info not in infos:
            infos.append(info)
    working, failures = kernel_check.split_by_compiler(infos or _platforms.devices())
    for info, failure in failures.items():
        print(f"device {info.tag}: {info.name}, {info.platform_name} {info.platform_version}: left out, "
              f"{failure}", file=sys.stderr)
    if not working:
        raise RuntimeError("no device to run on: every device's compiler fails clconv's smallest kernel (above); "
                           "another implementation may build for this CPU: pip install \"clconv[intel]\" (x86-64 "
                           "Linux) or apt install pocl-opencl-icd")
    return working, len(failures) if specs else 0


def _supported_dtypes(info, requested):
    for dtype in requested:
        if np.dtype(dtype) == np.float64 and not info.fp64:
            yield dtype, "device lacks cl_khr_fp64"
        else:
            yield dtype, None


def cmd_check(args) -> int:
    infos, left_out = _run_devices(args.device)
    dtypes = [_DTYPE_CHOICES[name] for name in (args.dtype or _DTYPE_CHOICES)]
    failures = checks = 0
    for info in infos:
        print(f"device {info.tag}: {info.name} ({info.type}), {info.platform_name} {info.platform_version}")
        print(f"  {'dtype':6} {'layers':10} {'pass':12} {'cases':>5} {'max error':>10} {'tolerance':>10}  result")
        for dtype, missing in _supported_dtypes(info, dtypes):
            if missing:
                print(f"  {dtype_name(dtype):6} {'all':10} {'all':12} {'-':>5} {'-':>10} {'-':>10}  not run: {missing}")
                continue
            for (kind, cases), pass_name in itertools.product(_check.CASE_SETS.items(), PASSES):
                worst, problems = 0.0, []
                for case in cases:
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
                verdict = "PASS" if not problems else f"FAIL ({len(problems)} of {len(cases)})"
                print(f"  {dtype_name(dtype):6} {kind:10} {pass_name:12} {len(cases):5d} {worst:10.2e} "
                      f"{_check.TOLERANCE[np.dtype(dtype)]:10.0e}  {verdict}")
                for problem in problems:
                    print(f"      {problem}")
    print(f"\n{checks - failures} of {checks} checks passed on {len(infos)} device(s).")
    return 1 if failures or left_out else 0


def _parse_layer(text: str):
    """'N,C,H,W,K,R,S[,stride[,padding[,dilation[,groups]]]]' -> Conv2DParams (fp32)."""
    try:
        values = [int(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--layer wants integers N,C,H,W,K,R,S[,stride,padding,dilation,groups], got {text!r}") from None
    if not 7 <= len(values) <= 11:
        raise argparse.ArgumentTypeError(f"--layer wants 7 to 11 integers, got {len(values)} in {text!r}")
    n, c, h, w, k, r, s = values[:7]
    stride, padding, dilation, groups = (values[7:] + [1, 0, 1, 1][len(values) - 7:])[:4]
    try:
        return Conv2DParams.create((n, c, h, w), (k, c // groups, r, s), stride, padding, dilation, groups)
    except (ValueError, TypeError) as error:
        raise argparse.ArgumentTypeError(str(error)) from error


def suite_tuning(names=None, quick: bool = False, passes=tuner.TUNED_PASSES, flops: float = 1e9) -> dict:
    """What tuning the suite's layers means: {passes: [Conv2DParams]}, for each layer the 2-D layer whose plan
    computes it (layers.LayerKind.conv2d: a 1-D layer's with H = 1, a transposed layer's convolution), grouped
    by the passes of that 2-D layer that compute ``passes`` of the layer (a transposed layer's forward pass is
    its convolution's grad_input)."""
    groups = {}
    for layer in layers.select(names, quick=quick):
        kind = layer.layer_kind
        wanted = {kind.conv2d_passes[name] for name in passes}
        groups.setdefault(tuple(name for name in tuner.TUNED_PASSES if name in wanted), []).append(
            kind.conv2d(layer.params(layer.batch_for(flops))))
    return groups


def cmd_tune(args) -> int:
    dtype = np.dtype(_DTYPE_CHOICES[args.dtype])
    groups = ({tuple(args.passes): list(args.layer)} if args.layer
              else suite_tuning(args.layers, args.quick, args.passes, args.flops))
    results = [result for passes, group in groups.items()
               for result in tuner.tune([p.with_dtype(dtype) for p in group], device=args.device, passes=passes,
                                        repeats=args.repeats)]
    for result in results:
        config = result.choice.config
        print(f"{result.params.describe()}  {result.pass_name:11}  {result.choice.algo:7} "
              f"{result.params.flops(result.pass_name) / result.seconds / 1e9:7.1f} GFLOP/s  "
              f"({result.tried} tried, {result.rejected} rejected)  {config if config else ''}")
    print(f"winners stored in {tuning_cache.cache_path()}")
    return 0


def cmd_bench(args) -> int:
    if args.compare:
        paths = bench_compare.run(*args.compare, Path(args.out or "clconv-compare"))
        if paths:
            print("\nwritten: " + ", ".join(str(p) for p in paths.values()))
        missing = bench_charts.unavailable()
        if missing:  # the comparison is printed; only its chart is lost
            print(f"compare.png not drawn: {missing}", file=sys.stderr)
        return 0
    if args.cold_cache:
        # PoCL reads its cache directory when the platform starts, which has not happened yet here. Fresh
        # kernel-check verdicts too, so that first calls include the checks a new machine pays for.
        cold = tempfile.mkdtemp(prefix="clconv-cold-")
        os.environ["POCL_CACHE_DIR"] = os.path.join(cold, "pocl")
        os.environ[kernel_check.FILE_ENV_VAR] = os.path.join(cold, "kernel_checks.json")
    infos, left_out = _run_devices(args.device)
    suite = layers.select(args.layers, quick=args.quick)
    records = benchmark.run(suite, infos, passes=args.passes, repeats=args.repeats, peers=not args.no_peers,
                            algo=args.algo, flops_per_pass=args.flops)
    # After the layers: measuring first would start the kernel checker and build programs before the first
    # calls, which --cold-cache times.
    peaks, peaks_missing = ({}, {}) if args.no_peak else benchmark.measure_peaks(infos)
    benchmark.apply_peaks(records, peaks)
    bench_report.print_report(records, peaks=peaks, peaks_missing=peaks_missing)
    paths = bench_report.write_outputs(records, infos, Path(args.out or "clconv-bench"), peaks, peaks_missing)
    print("\nwritten: " + ", ".join(str(p) for p in paths.values()))
    notice = bench_report.charts_notice()
    if notice:  # the measurements are written; only the pictures are lost
        print(notice, file=sys.stderr)
    failures = [r for r in records if r.implementation == "clconv" and not r.status == "ok"]
    wrong = [r for r in records if r.implementation == "clconv" and r.status == "ok"
             and not r.max_error <= _check.TOLERANCE[np.dtype(np.float32)]]
    for r in failures + wrong:
        print(f"clconv problem: {r.device} {r.layer} {r.pass_name}: {r.status}, max error {r.max_error:.2e}",
              file=sys.stderr)
    return 1 if failures or wrong or left_out else 0


def load_example(name: str):
    """The example program ``examples/<name>.py``, imported as the module ``name`` from the folder it lives in.

    The folder goes onto ``sys.path``, where the processes the program spawns (DistributedDataParallel's
    workers) find it too.
    """
    for folder in _EXAMPLE_DIRS:
        if (folder / f"{name}.py").is_file():
            if str(folder) not in sys.path:
                sys.path.insert(0, str(folder))
            return importlib.import_module(name)
    searched = ", ".join(str(folder) for folder in _EXAMPLE_DIRS)
    raise RuntimeError(f"the example {name}.py was not found; searched {searched}")


def cmd_train_demo(demo_args) -> int:
    try:
        train_digits = load_example("train_digits")
    except ImportError as error:
        raise RuntimeError(f"train-demo needs PyTorch and scikit-learn ({error}); "
                           'pip install torch "clconv[examples]"') from error
    return train_digits.main(demo_args)


def _add_suite_arguments(parser) -> None:
    parser.add_argument("--quick", action="store_true", help="the quick subset of the layer suite")
    parser.add_argument("--layers", nargs="+", metavar="NAME", help="layers (e.g. ResNet-18/layer3.conv) or networks")
    parser.add_argument("--passes", nargs="+", choices=benchmark.BENCH_PASSES, default=list(benchmark.BENCH_PASSES))
    parser.add_argument("--flops", type=float, default=1e9, help="batch chosen so one pass costs about this (1e9)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="clconv", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("devices", help="list every OpenCL device and the default choice").set_defaults(run=cmd_devices)
    check = commands.add_parser("check", help="run every pass against the NumPy oracle on built-in layer shapes")
    check.add_argument("--device", action="append", metavar="SPEC",
                       help="device spec ('P:D', cpu, gpu, accelerator, name substring); repeatable; default: all")
    check.add_argument("--dtype", action="append", choices=sorted(_DTYPE_CHOICES),
                       help="dtype to check; repeatable; default: all the device supports")
    check.add_argument("--algo", default="auto", help="algorithm to check (default: auto)")
    check.set_defaults(run=cmd_check)

    bench = commands.add_parser("bench", help="benchmark every pass on real network layers against PyTorch, "
                                              "CLBlast and NumPy")
    _add_suite_arguments(bench)
    bench.add_argument("--device", action="append", metavar="SPEC", help="device spec; repeatable; default: all")
    bench.add_argument("--repeats", type=int, default=9, help="timed repeats per measurement (median)")
    bench.add_argument("--algo", default="auto", help="clconv algorithm (default: auto)")
    bench.add_argument("--no-peers", action="store_true", help="measure clconv only")
    bench.add_argument("--cold-cache", action="store_true",
                       help="start PoCL with an empty kernel cache and no kernel-check verdicts, so that first-call "
                            "times include compilation and the checks")
    bench.add_argument("--no-peak", action="store_true",
                       help="skip measuring each device's peak GFLOP/s and GB/s (about 2 s per device)")
    bench.add_argument("--compare", nargs=2, metavar=("DIR1", "DIR2"),
                       help="measure nothing: compare the results.json of two earlier --out folders (GFLOP/s of "
                            "each, DIR2/DIR1) and draw compare.png")
    bench.add_argument("--out", help="folder for results.json, results.csv, report.txt and the charts "
                                     "(default clconv-bench; with --compare, clconv-compare)")
    bench.set_defaults(run=cmd_bench)

    tune = commands.add_parser("tune", help="search algorithms and tiles for layers and store the winners")
    _add_suite_arguments(tune)
    tune.add_argument("--layer", action="append", type=_parse_layer, metavar="N,C,H,W,K,R,S[,stride,pad,dil,groups]",
                      help="a layer shape to tune (repeatable); default: the benchmark suite")
    tune.add_argument("--device", metavar="SPEC", help="device spec (default: the default device)")
    tune.add_argument("--dtype", choices=sorted(_DTYPE_CHOICES), default="fp32")
    tune.add_argument("--repeats", type=int, default=3)
    tune.set_defaults(run=cmd_tune)

    # Listed for --help only: main() hands everything after "train-demo" to the demo's own parser.
    commands.add_parser("train-demo", add_help=False,
                        help="train a CNN on sklearn digits with clconv beside plain PyTorch "
                             "(needs the torch and examples extras; --help for its options)")
    return parser


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["train-demo"]:
        command, run = "train-demo", lambda: cmd_train_demo(argv[1:])
    else:
        args = build_parser().parse_args(argv)
        command, run = args.command, lambda: args.run(args)
    try:
        return run()
    except (ValueError, TypeError, RuntimeError) as error:
        print(f"clconv {command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
