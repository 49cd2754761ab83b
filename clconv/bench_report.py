"""The report of ``clconv bench``: summaries, ratios to the peers, the printed table and the files.

The records come from :func:`clconv.benchmark.run` (or anything with the fields of its ``Record``);
:func:`write_outputs` writes them as JSON and CSV beside the printed report and the charts of
:mod:`clconv.bench_charts`, with a description of the machine they were measured on.
"""

from __future__ import annotations

import csv
import datetime
import json
import math
import os
import platform
from pathlib import Path

from . import bench_charts, peak, platforms

#: The charts write_outputs draws, each as <name>.png where the records hold data for it: (records, peaks, path).
_CHARTS = {
    "gflops": lambda records, peaks, path: bench_charts.gflops_chart(records, path),
    "speedup": lambda records, peaks, path: bench_charts.speedup_chart(records, path),
    "roofline": bench_charts.roofline_chart,
}


def cpu_name() -> str:
    """The host CPU's model name, with its x86 family and model where Linux reports them: a virtual machine's
    CPU may call itself just "AMD EPYC", and family 25 (Zen 4) and 26 (Zen 5) run the kernels differently."""
    fields = platforms.host_cpu_fields()
    name = fields.get("model name") or platform.processor() or platform.machine()
    if "cpu family" in fields and "model" in fields:
        return f"{name} (family {fields['cpu family']}, model {fields['model']})"
    return name


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
        "cpu": cpu_name(),
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
            mine = {r.layer: r for r in ok
                    if (r.implementation, r.device, r.pass_name) == ("clconv", device, pass_name)}
            for peer, peer_device in peers:
                if peer_device not in ("host", device):
                    continue
                theirs = {r.layer: r for r in ok
                          if (r.implementation, r.device, r.pass_name) == (peer, peer_device, pass_name)}
                shared = sorted(set(mine) & set(theirs))
                if not shared:
                    continue
                out.append({"device": device, "pass": pass_name, "peer": peer, "layers": len(shared),
                            "kernel_ratio": geomean(theirs[name].kernel_s / mine[name].kernel_s for name in shared),
                            "e2e_ratio": geomean(theirs[name].e2e_s / mine[name].e2e_s for name in shared)})
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
    data, where matplotlib is installed: see charts_notice) in ``out_dir``; returns the paths."""
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
    for name, draw in _CHARTS.items():
        path = out_dir / f"{name}.png"
        if draw(records, peaks, path):
            paths[name] = path
    return paths


def charts_notice() -> str | None:
    """Where write_outputs can draw no chart at all: which charts are missing, why, and the fix."""
    why = bench_charts.unavailable()
    return f"charts not drawn ({', '.join(f'{name}.png' for name in _CHARTS)}): {why}" if why else None

