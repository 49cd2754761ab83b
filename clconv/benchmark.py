"""The device-comparison benchmark behind ``clconv bench``.

For every device x pass x layer of the suite (:mod:`clconv.layers`) it measures clconv and, in the same
run, the peers a user would otherwise reach for: PyTorch on the CPU, the NumPy oracle, and CLBlast's GEMM
on the same OpenCL device after an im2col (through pyclblast). A peer that is not installed, or does
not apply (CLBlast has no grouped GEMM), is reported as skipped with the reason, never faked.

Each measurement is the median over repeats after a warm-up:
- ``kernel_s``: device-resident time, inputs and outputs already on the device (OpenCL profiling
  markers around the call; wall time for CPU libraries);
- ``wall_s``: the same call timed on the host clock, launch overhead included;
- ``e2e_s``: from NumPy arrays to a NumPy result, transfers and conversions included;
- ``first_call_s``: the first call of the layer in the process, compilation included.
Before each measurement the benchmark pauses for ``SETTLE_SECONDS``: the runtime that ran just before
(NumPy's BLAS under the oracle, PyTorch's OpenMP pool, an OpenCL driver's workers) keeps its threads
spinning for tens of milliseconds after a call, and on a 2-core machine those threads slowed the next
measurement by 30-60%, whichever implementation it was.
Every result is compared with the oracle (the normalised error of :mod:`clconv.check`), so a fast
wrong answer shows up as one.

Each device's peak (:mod:`clconv.peak`: multiply-add GFLOP/s, copy GB/s) is measured once per run, and every
record on a device with a peak gets ``peak_share``: its device-resident GFLOP/s as a percentage of the peak
of its dtype. The charts are drawn by :mod:`clconv.bench_charts`.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime
import json
import math
import os
import platform
import time
from pathlib import Path

import numpy as np
import pyopencl as cl
import pyopencl.array as cl_array
from tqdm.auto import tqdm

from . import bench_charts, check, layers, peak, platforms, reference
from .params import Conv2DParams, dtype_name
from .planning import Conv2DPlan
from .tuner import device_seconds, median_wall_seconds, pass_runner, to_device

BENCH_PASSES = ("forward", "grad_input", "grad_weight")

# Longer than the 20-50 ms that OpenBLAS worker threads were measured to spin after the oracle's einsum.
SETTLE_SECONDS = 0.2


@dataclasses.dataclass
class Record:
    device: str
    device_name: str
    implementation: str
    layer: str
    pass_name: str
    batch: int
    shape: str
    dtype: str
    flops: int
    bytes_moved: int
    status: str = "ok"
    algorithm: str = ""
    kernel_s: float = math.nan
    wall_s: float = math.nan
    e2e_s: float = math.nan
    first_call_s: float = math.nan
    workspace_bytes: int = 0
    device_bytes: int = 0
    max_error: float = math.nan
    peak_share: float = math.nan  # percent of the device's multiply-add peak for the dtype

    @property
    def gflops(self) -> float:
        return self.flops / self.kernel_s / 1e9 if self.kernel_s > 0 else math.nan

    @property
    def e2e_gflops(self) -> float:
        return self.flops / self.e2e_s / 1e9 if self.e2e_s > 0 else math.nan

    @property
    def gbps(self) -> float:
        return self.bytes_moved / self.kernel_s / 1e9 if self.kernel_s > 0 else math.nan

    def as_dict(self) -> dict:
        data = dataclasses.asdict(self)
        data.update(gflops=self.gflops, e2e_gflops=self.e2e_gflops, gbps=self.gbps)
        return data


def _oracle(pass_name: str, p: Conv2DParams, data: dict):
    args = {"stride": p.stride, "padding": ((p.padding[0], p.padding[1]), (p.padding[2], p.padding[3])),
            "dilation": p.dilation, "groups": p.groups}
    if pass_name == "forward":
        return reference.conv2d(data["x"], data["weight"], None, **args)
    if pass_name == "grad_input":
        return reference.conv2d_grad_input(data["grad_output"], data["weight"], p.input_shape, **args)
    return reference.conv2d_grad_weight(data["x"], data["grad_output"], p.weight_shape, **args)


# -- peers -----------------------------------------------------------------------------------------

class TorchPeer:
    name = "torch-cpu"

    def __init__(self):
        try:
            import torch
        except ImportError:
            torch = None
        self.torch = torch
        self.skip_reason = None if torch else "PyTorch is not installed (pip install torch)"

    def applies(self, p: Conv2DParams):
        return self.skip_reason

    def runner(self, pass_name, p: Conv2DParams, data: dict):
        torch = self.torch
        args = dict(stride=p.stride, dilation=p.dilation, groups=p.groups)
        top, bottom, left, right = p.padding
        symmetric = top == bottom and left == right

        def pad(t):
            return t if symmetric else torch.nn.functional.pad(t, (left, right, top, bottom))

        padding = (top, left) if symmetric else (0, 0)
        padded_shape = (p.N, p.C, p.H + top + bottom, p.W + left + right)
        tensors = {name: torch.from_numpy(value) for name, value in data.items()}
        if pass_name == "forward":
            return lambda: torch.nn.functional.conv2d(pad(tensors["x"]), tensors["weight"], padding=padding, **args)
        if pass_name == "grad_input":
            shape = p.input_shape if symmetric else padded_shape
            return lambda: torch.nn.grad.conv2d_input(shape, tensors["weight"], tensors["grad_output"],
                                                      padding=padding, **args)
        return lambda: torch.nn.grad.conv2d_weight(pad(tensors["x"]), p.weight_shape, tensors["grad_output"],
                                                   padding=padding, **args)

    def measure(self, record: Record, pass_name, p, data, repeats):
        self.torch.set_num_threads(os.cpu_count() or 1)
        run = self.runner(pass_name, p, data)
        start = time.perf_counter()
        result = run().numpy()
        record.first_call_s = time.perf_counter() - start
        record.kernel_s = record.wall_s = median_wall_seconds(run, repeats)
        record.e2e_s = median_wall_seconds(lambda: run().numpy(), repeats)
        record.device_bytes = p.bytes_moved(pass_name)
        if pass_name == "grad_input" and tuple(result.shape) != p.input_shape:  # asymmetric padding: crop
            top, _, left, _ = p.padding
            result = result[:, :, top:top + p.H, left:left + p.W]
        return result


class NumpyPeer:
    name = "numpy-oracle"

    def applies(self, p):
        return None

    def measure(self, record: Record, pass_name, p, data, repeats):
        start = time.perf_counter()
        result = _oracle(pass_name, p, data)
        record.first_call_s = record.kernel_s = record.wall_s = record.e2e_s = time.perf_counter() - start
        record.device_bytes = p.bytes_moved(pass_name)
        return result


class ClblastPeer:
    """im2col (a plain gather kernel) followed by CLBlast's batched GEMM, on the same OpenCL device."""

    name = "clblast-im2col-gemm"

    def __init__(self):
        try:
            import pyclblast
        except ImportError:
            pyclblast = None
        self.clblast = pyclblast
        self.skip_reason = None if pyclblast else (
            "pyclblast is not installed (apt install libclblast-dev ocl-icd-opencl-dev; pip install pyclblast)")

    def applies(self, p: Conv2DParams):
        if self.skip_reason:
            return self.skip_reason
        if p.groups != 1:
            return "groups > 1: CLBlast has no grouped GEMM"
        if p.dtype != np.float32:
            return "benchmarked in fp32 only"
        return None

    def measure_on(self, target, record: Record, pass_name, p: Conv2DParams, data, repeats):
        from . import programs

        queue = target.queue
        crs, pq = p.C * p.R * p.S, p.P * p.Q
        im2col = programs.get_kernel(target.context, "im2col", {"REAL_BITS": 32})
        col2im = programs.get_kernel(target.context, "col2im", {"REAL_BITS": 32})
        scalars = [np.int32(v) for v in (p.N, p.C, p.H, p.W, p.R, p.S, p.P, p.Q, p.stride[0], p.stride[1],
                                         p.padding[0], p.padding[2], p.dilation[0], p.dilation[1])]
        col = cl_array.empty(queue, (p.N, crs, pq), np.float32)
        size = (pq, crs, p.N)
        gemm = self.clblast.gemmStridedBatched

        # pyclblast takes 2-D arrays: every tensor is viewed as a stack of matrices.
        col_2d = col.reshape(p.N * crs, pq)

        def forward(t):
            y = cl_array.empty(queue, (p.N * p.K, pq), np.float32)
            im2col(queue, size, None, t["x"].data, col.data, *scalars)
            gemm(queue, p.K, pq, crs, p.N, t["weight"].reshape(p.K, crs), col_2d, y, crs, pq, pq, 0, crs * pq,
                 p.K * pq)
            return y.reshape(p.output_shape)

        def grad_input(t):
            gx = cl_array.empty(queue, p.input_shape, np.float32)
            gemm(queue, crs, pq, p.K, p.N, t["weight"].reshape(p.K, crs), t["grad_output"].reshape(p.N * p.K, pq),
                 col_2d, crs, pq, pq, 0, p.K * pq, crs * pq, a_transp=True)
            col2im(queue, (p.W, p.H, p.N * p.C), None, col.data, gx.data, *scalars)
            return gx

        def grad_weight(t):
            gw = cl_array.empty(queue, (p.K, crs), np.float32)
            grad_2d = t["grad_output"].reshape(p.N * p.K, pq)
            im2col(queue, size, None, t["x"].data, col.data, *scalars)
            for n in range(p.N):  # the batch sum as accumulating GEMMs, in batch order
                self.clblast.gemm(queue, p.K, crs, pq, grad_2d, col_2d, gw, pq, pq, crs, beta=0.0 if n == 0 else 1.0,
                                  b_transp=True, a_offset=n * p.K * pq, b_offset=n * crs * pq)
            return gw.reshape(p.weight_shape)

        run_pass = {"forward": forward, "grad_input": grad_input, "grad_weight": grad_weight}[pass_name]
        names = {"forward": ("x", "weight"), "grad_input": ("grad_output", "weight"),
                 "grad_weight": ("x", "grad_output")}[pass_name]
        tensors = to_device(queue, {n: data[n] for n in names})
        start = time.perf_counter()
        result = run_pass(tensors).get()
        record.first_call_s = time.perf_counter() - start
        record.kernel_s = device_seconds(queue, lambda: run_pass(tensors), repeats)
        record.wall_s = median_wall_seconds(lambda: (run_pass(tensors), queue.finish()), repeats)
        record.e2e_s = median_wall_seconds(lambda: run_pass(to_device(queue, {n: data[n] for n in names})).get(), repeats)
        record.workspace_bytes = col.nbytes
        record.device_bytes = p.bytes_moved(pass_name) + col.nbytes
        return result


# -- clconv ----------------------------------------------------------------------------------------

def _measure_clconv(target, record: Record, pass_name, p: Conv2DParams, data, repeats, algo):
    queue = target.queue
    start = time.perf_counter()
    plan = Conv2DPlan(p, target, algo)
    tensors = to_device(queue, data)
    result = pass_runner(plan, pass_name, tensors)().get()
    record.first_call_s = time.perf_counter() - start
    run = pass_runner(plan, pass_name, tensors)
    record.kernel_s = device_seconds(queue, run, repeats)
    record.wall_s = median_wall_seconds(lambda: (run(), queue.finish()), repeats)
    record.e2e_s = median_wall_seconds(pass_runner(plan, pass_name, data), repeats)
    record.algorithm = plan.algorithms[pass_name]
    record.workspace_bytes = plan.workspace_bytes[pass_name]
    record.device_bytes = p.bytes_moved(pass_name) + record.workspace_bytes
    return result


def run(suite, device_infos, passes=BENCH_PASSES, repeats: int = 9, peers: bool = True, algo: str = "auto",
        flops_per_pass: float = 1e9, progress: bool = True) -> list[Record]:
    """Measure every device x pass x layer, plus the peers, and return the records."""
    torch_peer, numpy_peer, clblast_peer = TorchPeer(), NumpyPeer(), ClblastPeer()
    targets = [platforms.target_for_device(info) for info in device_infos]
    jobs = [(layer, pass_name) for layer in suite for pass_name in passes]
    per_job = len(targets) * (2 if peers else 1) + (2 if peers else 0)
    bar = tqdm(total=len(jobs) * per_job, desc="benchmark", unit="run", disable=not progress)
    records = []
    for layer, pass_name in jobs:
        p = layer.params(layer.batch_for(flops_per_pass))
        data = check.layer_inputs(p)
        del data["bias"]  # every implementation runs the bare convolution
        expected = _oracle(pass_name, p, data)
        bound = _oracle(pass_name, p, {name: np.abs(value) for name, value in data.items()})

        def record_for(device, device_name, implementation):
            return Record(device, device_name, implementation, layer.label, pass_name, p.N, p.describe(),
                          dtype_name(p.dtype), p.flops(pass_name), p.bytes_moved(pass_name))

        def finish(record, measure):
            bar.set_postfix_str(f"{layer.label} {pass_name} {record.implementation} {record.device}")
            try:
                time.sleep(SETTLE_SECONDS)
                result = measure(record)
                if result is not None:
                    record.max_error = check.compare(np.asarray(result, dtype=p.dtype), expected, bound,
                                                     p.dtype).max_error
            except Exception as error:  # a failing peer or device is reported, and the survey goes on
                record.status = f"error: {type(error).__name__}: {error}"[:300]
            records.append(record)
            bar.update()

        def skipped(device, device_name, implementation, reason):
            record = record_for(device, device_name, implementation)
            record.status = f"skipped: {reason}"
            records.append(record)
            bar.update()

        for target in targets:
            info = target.info
            finish(record_for(info.tag, info.name, "clconv"),
                   lambda r: _measure_clconv(target, r, pass_name, p, data, repeats, algo))
            if peers:
                reason = clblast_peer.applies(p)
                if reason:
                    skipped(info.tag, info.name, clblast_peer.name, reason)
                else:
                    finish(record_for(info.tag, info.name, clblast_peer.name),
                           lambda r: clblast_peer.measure_on(target, r, pass_name, p, data, repeats))
        if peers:
            reason = torch_peer.applies(p)
            if reason:
                skipped("host", _cpu_name(), torch_peer.name, reason)
            else:
                finish(record_for("host", _cpu_name(), torch_peer.name),
                       lambda r: torch_peer.measure(r, pass_name, p, data, repeats))
            finish(record_for("host", _cpu_name(), numpy_peer.name),
                   lambda r: numpy_peer.measure(r, pass_name, p, data, 1))
    bar.close()
    return records


# -- device peaks ----------------------------------------------------------------------------------

def measure_peaks(device_infos, progress: bool = True, **sizes) -> tuple[dict, dict]:
    """({tag: DevicePeak}, {tag: why it was not measured}) for the devices; ``sizes`` go to peak.measure.

    Simulators are left out: what they reach says nothing about hardware.
    """
    peaks, missing = {}, {}
    for info in tqdm(device_infos, desc="device peaks", unit="device", disable=not progress):
        if info.simulator:
            missing[info.tag] = "a simulator"
            continue
        time.sleep(SETTLE_SECONDS)
        try:
            peaks[info.tag] = peak.measure(info, **sizes)
        except Exception as error:  # a device whose peak kernels fail is still benchmarked
            missing[info.tag] = f"{type(error).__name__}: {error}"[:300]
    return peaks, missing


def apply_peaks(records, peaks: dict) -> None:
    """Set ``peak_share`` of every measured record on a device with a peak."""
    for r in records:
        device_peak = peaks.get(r.device)
        compute = device_peak.gflops_for(r.dtype) if device_peak else None
        if r.status == "ok" and compute:
            r.peak_share = 100 * r.gflops / compute


# -- reporting -------------------------------------------------------------------------------------

def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info(device_infos) -> dict:
    versions = {}
    for module in ("numpy", "pyopencl", "torch", "pyclblast"):
        try:
            versions[module] = __import__(module).__version__
        except (ImportError, AttributeError):
            versions[module] = None
    from . import __version__

    return {
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "clconv": __version__,
        "host": platform.node(),
        "cpu": _cpu_name(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "system": platform.platform(),
        "versions": versions,
        "devices": [{"tag": i.tag, "name": i.name, "type": i.type, "platform": i.platform_name,
                     "platform_version": i.platform_version, "driver_version": i.driver_version,
                     "compute_units": i.compute_units, "global_mem_bytes": i.global_mem_bytes} for i in device_infos],
    }


def geomean(values) -> float:
    values = [v for v in values if v and v > 0 and math.isfinite(v)]
    return math.exp(sum(math.log(v) for v in values) / len(values)) if values else math.nan


def summary(records) -> list[dict]:
    """Geometric-mean GFLOP/s per (device, implementation, pass), and clconv's ratio to each peer.

    Ratios compare only layers both sides measured, so a skipped layer does not tilt them.
    """
    ok = [r for r in records if r.status == "ok"]
    rows = []
    keys = sorted({(r.device, r.implementation, r.pass_name) for r in ok})
    for device, implementation, pass_name in keys:
        mine = [r for r in ok if (r.device, r.implementation, r.pass_name) == (device, implementation, pass_name)]
        rows.append({"device": device, "implementation": implementation, "pass": pass_name, "layers": len(mine),
                     "gflops": geomean(r.gflops for r in mine), "e2e_gflops": geomean(r.e2e_gflops for r in mine),
                     "max_error": max((r.max_error for r in mine), default=math.nan)})
    return rows


def ratios(records) -> list[dict]:
    """clconv on each device against each peer, geometric mean over the layers both measured."""
    ok = [r for r in records if r.status == "ok"]
    out = []
    clconv_devices = sorted({r.device for r in ok if r.implementation == "clconv"})
    peers = sorted({(r.implementation, r.device) for r in ok if r.implementation != "clconv"})
    for device in clconv_devices:
        for pass_name in sorted({r.pass_name for r in ok}):
            mine = {r.layer: r for r in ok if (r.implementation, r.device, r.pass_name) == ("clconv", device, pass_name)}
            for peer, peer_device in peers:
                if peer_device not in ("host", device):
                    continue
                theirs = {r.layer: r for r in ok if (r.implementation, r.device, r.pass_name) == (peer, peer_device, pass_name)}
                shared = sorted(set(mine) & set(theirs))
                if not shared:
                    continue
                out.append({"device": device, "pass": pass_name, "peer": peer, "layers": len(shared),
                            "kernel_ratio": geomean(theirs[l].kernel_s / mine[l].kernel_s for l in shared),
                            "e2e_ratio": geomean(theirs[l].e2e_s / mine[l].e2e_s for l in shared)})
    return out


def print_peaks(peaks: dict, missing: dict, file=None) -> None:
    print("Device peaks (clpeak's way: vector multiply-add chains; a copy between two buffers far beyond the "
          "last-level cache, bytes read + written):", file=file)
    for device_peak in peaks.values():
        print(f"  {peak.describe(device_peak)}", file=file)
    for tag, reason in missing.items():
        print(f"  {tag:10} not measured: {reason}", file=file)
    if peaks:
        print("  fp16 stores half and computes in float: its peak is the fp32 one. '% peak' below: a record's "
              "GFLOP/s over its dtype's peak.", file=file)


def print_report(records, file=None, peaks=None, peaks_missing=None) -> None:
    def fmt(value, spec):  # a missing value is a dash in the column's width, so the columns stay aligned
        if isinstance(value, (int, float)) and math.isfinite(value):
            return format(value, spec)
        return format("-", ">" + spec.split(".")[0])

    if peaks or peaks_missing:
        print_peaks(peaks or {}, peaks_missing or {}, file=file)
        print(file=file)
    print(f"{'device':10} {'implementation':20} {'layer':32} {'pass':11} {'algo':7} {'GFLOP/s':>8} "
          f"{'% peak':>6} {'e2e':>7} {'GB/s':>6} {'first s':>7} {'max err':>8}  status", file=file)
    for r in records:
        print(f"{r.device:10} {r.implementation:20} {r.layer:32} {r.pass_name:11} {r.algorithm:7} "
              f"{fmt(r.gflops, '8.1f')} {fmt(r.peak_share, '6.1f')} {fmt(r.e2e_gflops, '7.1f')} "
              f"{fmt(r.gbps, '6.1f')} "
              f"{fmt(r.first_call_s, '7.2f')} {fmt(r.max_error, '8.1e')}  {r.status}", file=file)
    print("\nGeometric mean over layers (GFLOP/s, device-resident and end to end from NumPy):", file=file)
    for row in summary(records):
        print(f"  {row['device']:10} {row['implementation']:20} {row['pass']:11} {row['layers']:3d} layers "
              f"{fmt(row['gflops'], '8.1f')} {fmt(row['e2e_gflops'], '8.1f')}  max err {fmt(row['max_error'], '.1e')}",
              file=file)
    print("\nclconv speed-up against each peer (peer time / clconv time, geometric mean, same layers):", file=file)
    for row in ratios(records):
        print(f"  {row['device']:10} {row['pass']:11} vs {row['peer']:20} {row['layers']:3d} layers  "
              f"kernel {fmt(row['kernel_ratio'], '6.2f')}x  end-to-end {fmt(row['e2e_ratio'], '6.2f')}x", file=file)


def write_outputs(records, device_infos, out_dir: Path, peaks=None, peaks_missing=None) -> dict:
    """JSON (machine, devices, peaks, records, summary), CSV, the report and the PNG charts (those that have
    data, where matplotlib is installed) in ``out_dir``; returns the paths."""
    peaks, peaks_missing = peaks or {}, peaks_missing or {}
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"json": out_dir / "results.json", "csv": out_dir / "results.csv", "txt": out_dir / "report.txt"}
    document = {"machine": machine_info(device_infos),
                "peaks": {tag: device_peak.as_dict() for tag, device_peak in peaks.items()},
                "peaks_missing": peaks_missing,
                "records": [r.as_dict() for r in records], "summary": summary(records), "ratios": ratios(records)}
    paths["json"].write_text(json.dumps(document, indent=1, default=float))
    with paths["csv"].open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(records[0].as_dict()))
        writer.writeheader()
        for r in records:
            writer.writerow(r.as_dict())
    with paths["txt"].open("w") as handle:
        print_report(records, file=handle, peaks=peaks, peaks_missing=peaks_missing)
    charts = {"gflops": lambda path: bench_charts.gflops_chart(records, path),
              "speedup": lambda path: bench_charts.speedup_chart(records, path),
              "roofline": lambda path: bench_charts.roofline_chart(records, peaks, path)}
    for name, draw in charts.items():
        path = out_dir / f"{name}.png"
        if draw(path):
            paths[name] = path
    return paths

