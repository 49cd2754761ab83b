"""The device-comparison benchmark behind ``clconv bench``.

For every device x pass x layer of the suite (:mod:`clconv.layers`: 2-D, 1-D, transposed and 3-D layers) it
measures clconv and, in the same run, the peers a user would otherwise reach for: PyTorch on the CPU, the
NumPy oracle, and CLBlast's GEMM on the same OpenCL device after an im2col (through pyclblast); the peers
are in :mod:`clconv.bench_peers`. A peer that is not installed, or does not apply (CLBlast has no grouped
GEMM, and no transposed or 3-D layers), is reported as skipped with the reason, never faked. A 2-D layer
runs on its :class:`~clconv.planning.Conv2DPlan`; the other kinds through their functions in
:mod:`clconv.api` (``conv1d``, ``conv_transpose2d``, ``conv3d`` and their gradients), with their algorithm
and workspace read from the plan those functions ran (a 3-D layer's workspace includes its input unfolded
along depth).

Each measurement is the median over repeats after a warm-up:
- ``kernel_s``: device-resident time, inputs and outputs already on the device (OpenCL profiling
  markers around the call; wall time for CPU libraries);
- ``wall_s``: the same call timed on the host clock, launch overhead included;
- ``e2e_s``: from NumPy arrays to a NumPy result, transfers and conversions included; for clconv and PyTorch,
  the two sides of the ratios the README quotes, the best of ``E2E_ROUNDS`` such medians, taken in rounds
  that alternate between them (below);
- ``first_call_s``: the first call of the layer in the process, compilation included.
Before each measurement the benchmark pauses for ``SETTLE_SECONDS``: the runtime that ran just before
(NumPy's BLAS under the oracle, PyTorch's OpenMP pool, an OpenCL driver's workers) keeps its threads
spinning for tens of milliseconds after a call, and on a 2-core machine those threads slowed the next
measurement by 30-60%, whichever implementation it was.
On these shared 2-core machines a slow stretch of a few seconds (another tenant, a frequency drop) halved
whatever ran in it: within one process clconv and PyTorch kept a steady ratio over rounds (ResNet-50
layer4.1.conv3 forward: 0.72-0.84x in 8 rounds, one outlier round at 1.28x), while whole runs, each side
measured once, put the same code at 0.47x and 1.42x. Hence the alternating rounds, and the best of them.
Every result is compared with the oracle (the normalised error of :mod:`clconv.check`), so a fast
wrong answer shows up as one.

Each device's peak (:mod:`clconv.peak`: multiply-add GFLOP/s, copy GB/s) is measured once per run, and every
record on a device with a peak gets ``peak_share``: its device-resident GFLOP/s as a percentage of the peak
of its dtype. The records are summarised, printed and written by :mod:`clconv.bench_report`, the charts
drawn by :mod:`clconv.bench_charts`.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import time

import numpy as np
from tqdm.auto import tqdm

from . import api, bench_peers, check, peak, platforms
from .bench_report import cpu_name
from .params import call_function, call_plan, dtype_name
from .planning import Conv2DPlan
from .tuner import device_seconds, median_wall_seconds, to_device

BENCH_PASSES = ("forward", "grad_input", "grad_weight")

# Longer than the 20-50 ms that OpenBLAS worker threads were measured to spin after the oracle's einsum.
SETTLE_SECONDS = 0.2
# Medians of end-to-end time per implementation of a ratio (clconv on each device, PyTorch), the first with the
# other measurements and the rest in alternating rounds.
E2E_ROUNDS = 3
# The median of one alternating round (a name of its own, so that a test can tell the rounds apart).
_alternate_median = median_wall_seconds


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


# -- clconv ----------------------------------------------------------------------------------------

def _measure_clconv(target, record: Record, pass_name, layer, p, data, repeats, algo, e2e_runs: dict):
    queue = target.queue
    start = time.perf_counter()
    if layer.kind == "conv2d":  # on a plan of its own, as the committed results were measured
        plan = Conv2DPlan(p, target, algo)
        run_pass = functools.partial(call_plan, plan, pass_name)
    else:  # through its public function (conv1d, conv3d ...), as users call it: plans cached by the first call
        plan = None
        run_pass = functools.partial(call_function, api, pass_name, p, calls=layer.pass_calls, device=target,
                                     algo=algo)
    tensors = to_device(queue, data)
    result = run_pass(tensors).get()
    record.first_call_s = time.perf_counter() - start
    record.kernel_s = device_seconds(queue, lambda: run_pass(tensors), repeats)
    record.wall_s = median_wall_seconds(lambda: (run_pass(tensors), queue.finish()), repeats)
    end_to_end = e2e_runs[id(record)] = functools.partial(run_pass, data)
    record.e2e_s = median_wall_seconds(end_to_end, repeats)
    plan_pass = layer.layer_kind.conv2d_passes[pass_name]
    plan = plan or layer.layer_kind.plan(p, target, algo)
    record.algorithm = plan.algorithms[plan_pass]
    record.workspace_bytes = plan.workspace_bytes[plan_pass]
    record.device_bytes = p.bytes_moved(pass_name) + record.workspace_bytes
    return result


def run(suite, device_infos, passes=BENCH_PASSES, repeats: int = 9, peers: bool = True, algo: str = "auto",
        flops_per_pass: float = 1e9, progress: bool = True) -> list[Record]:
    """Measure every device x pass x layer, plus the peers, and return the records."""
    survey = _Survey([platforms.target_for_device(info) for info in device_infos], repeats, peers, algo)
    jobs = [(layer, pass_name) for layer in suite for pass_name in passes]
    per_job = len(survey.targets) * (2 if peers else 1) + (2 if peers else 0)
    survey.bar = tqdm(total=len(jobs) * per_job, desc="benchmark", unit="run", disable=not progress)
    for layer, pass_name in jobs:
        survey.measure_job(layer, pass_name, layer.params(layer.batch_for(flops_per_pass)))
    survey.bar.close()
    return survey.records


class _Survey:
    """The measurements of one benchmark run: each layer and pass on every device, then on the peers."""

    def __init__(self, targets, repeats: int, peers: bool, algo: str):
        self.targets = targets
        self.repeats = repeats
        self.peers = peers
        self.algo = algo
        self.torch_peer, self.numpy_peer = bench_peers.TorchPeer(), bench_peers.NumpyPeer()
        self.clblast_peer = bench_peers.ClblastPeer()
        self.records: list[Record] = []
        self.bar = None

    def measure_job(self, layer, pass_name: str, p) -> None:
        """Measure one pass of ``layer`` at the batch size of ``p`` (its params) everywhere."""
        data = check.layer_inputs(p)
        del data["bias"]  # every implementation runs the bare convolution
        expected = bench_peers.oracle(pass_name, layer, p, data)
        bound = bench_peers.oracle(pass_name, layer, p, {name: np.abs(value) for name, value in data.items()})
        repeats = self.repeats
        e2e_runs = {}  # id(record) -> its end-to-end call, for the alternating rounds

        def record_for(device, device_name, implementation):
            return Record(device, device_name, implementation, layer.label, pass_name, p.N, p.describe(),
                          dtype_name(p.dtype), p.flops(pass_name), p.bytes_moved(pass_name))

        def finish(record, measure):
            self.bar.set_postfix_str(f"{layer.label} {pass_name} {record.implementation} {record.device}")
            try:
                time.sleep(SETTLE_SECONDS)
                result = measure(record)
                if result is not None:
                    record.max_error = check.compare(np.asarray(result, dtype=p.dtype), expected, bound,
                                                     p.dtype).max_error
            except Exception as error:  # a failing peer or device is reported, and the survey goes on
                record.status = f"error: {type(error).__name__}: {error}"[:300]
            self.records.append(record)
            self.bar.update()

        def skipped(device, device_name, implementation, reason):
            record = record_for(device, device_name, implementation)
            record.status = f"skipped: {reason}"
            self.records.append(record)
            self.bar.update()

        for target in self.targets:
            info = target.info
            finish(record_for(info.tag, info.name, "clconv"),
                   functools.partial(_measure_clconv, target, pass_name=pass_name, layer=layer, p=p, data=data,
                                     repeats=repeats, algo=self.algo, e2e_runs=e2e_runs))
            if not self.peers:
                continue
            clblast = self.clblast_peer
            reason = clblast.applies(layer, p)
            if reason:
                skipped(info.tag, info.name, clblast.name, reason)
            else:
                finish(record_for(info.tag, info.name, clblast.name),
                       functools.partial(clblast.measure_on, target, pass_name=pass_name, layer=layer, p=p,
                                         data=data, repeats=repeats))
        if not self.peers:
            return
        reason = self.torch_peer.applies(layer, p)
        if reason:
            skipped("host", cpu_name(), self.torch_peer.name, reason)
        else:
            finish(record_for("host", cpu_name(), self.torch_peer.name),
                   functools.partial(self.torch_peer.measure, pass_name=pass_name, layer=layer, p=p, data=data,
                                     repeats=repeats, e2e_runs=e2e_runs))
            self._alternate_e2e([r for r in self.records if id(r) in e2e_runs and r.status == "ok"], e2e_runs)
        finish(record_for("host", cpu_name(), self.numpy_peer.name),
               functools.partial(self.numpy_peer.measure, pass_name=pass_name, layer=layer, p=p, data=data, repeats=1))

    def _alternate_e2e(self, records: list, e2e_runs: dict) -> None:
        """E2E_ROUNDS - 1 more rounds of the end-to-end medians of ``records`` (clconv on each device and PyTorch,
        all measured once already), in turn, each record keeping its best."""
        if len(records) < 2:  # nothing to compare with
            return
        for _ in range(E2E_ROUNDS - 1):
            for record in records:
                time.sleep(SETTLE_SECONDS)
                try:
                    record.e2e_s = min(record.e2e_s, _alternate_median(e2e_runs[id(record)], self.repeats))
                except Exception as error:  # as in the first measurement: reported, and the survey goes on
                    record.status = f"error: {type(error).__name__}: {error}"[:300]


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
