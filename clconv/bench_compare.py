"""``clconv bench --compare DIR1 DIR2``: two benchmark runs side by side.

Each folder holds the ``results.json`` of a ``clconv bench`` run. A *series* is one implementation on one
device (clconv on pocl:2:0, torch-cpu on the host). The two runs' series are paired by implementation and
device name (two runs on one machine); those left over by implementation and OpenCL platform (the same
driver on another machine, where the device name carries another CPU model); the rest by implementation
and device tag. A key pairs series only where it names exactly one on each side, and series without a
partner are listed, not compared.

For every layer and pass that a pair measured in both runs, the comparison holds the device-resident
GFLOP/s of each run and their ratio, second run over first (above 1: the second is faster). The printed
table has a row per layer for clconv's series; every series, the peers included, gets its geometric mean
per pass: a peer's ratio shows how much the machine or the libraries themselves moved between the runs.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

from . import bench_charts
from .bench_report import geomean
from .params import PASSES


@dataclasses.dataclass(frozen=True)
class Series:
    implementation: str
    device: str  # the device tag, or "host"
    device_name: str
    platform: str | None  # OpenCL platform name and version; None on the host

    def describe(self) -> str:
        # PoCL's platform version runs on after two spaces with its build options.
        where = f"{self.device_name}, {self.platform.split('  ')[0]}" if self.platform else self.device_name
        return f"{self.device} ({where})"


@dataclasses.dataclass
class Comparison:
    first_label: str
    second_label: str
    rows: list  # {"series", "implementation", "layer", "pass", "first", "second", "ratio", "same_batch"}
    pairs: list  # (Series of the first run, Series of the second)
    only_first: list  # Series without a partner
    only_second: list

    def geomeans(self) -> list[dict]:
        """The geometric mean of the ratios per series and pass, in the order of the rows."""
        out = []
        for name in dict.fromkeys(row["series"] for row in self.rows):
            for pass_name in PASSES:
                ratios = [row["ratio"] for row in self.rows if (row["series"], row["pass"]) == (name, pass_name)]
                if ratios:
                    out.append({"series": name, "pass": pass_name, "layers": len(ratios), "ratio": geomean(ratios)})
        return out


def load_results(folder, argument: str) -> dict:
    """The results.json of a ``clconv bench --out`` folder; ValueError naming ``argument`` otherwise."""
    path = Path(folder) / "results.json"
    if not path.is_file():
        raise ValueError(f"{argument}: {folder} holds no results.json (give a folder that clconv bench --out wrote)")
    try:
        document = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"{argument}: {path} is not valid JSON: {error}") from None
    if not isinstance(document, dict) or "records" not in document:
        raise ValueError(f"{argument}: {path} has no benchmark records")
    return document


def measured_series(document: dict) -> dict:
    """{Series: {(layer, pass): (GFLOP/s, batch)}} of the records measured without error."""
    devices = document.get("machine", {}).get("devices", [])
    platforms = {d["tag"]: f"{d['platform']} {d['platform_version']}" for d in devices}
    series = {}
    for record in document["records"]:
        gflops = record.get("gflops")
        if record["status"] != "ok" or not (gflops and math.isfinite(gflops) and gflops > 0):
            continue
        key = Series(record["implementation"], record["device"], record["device_name"],
                     platforms.get(record["device"]))
        series.setdefault(key, {})[(record["layer"], record["pass_name"])] = (gflops, record.get("batch"))
    return series


_PAIRING_KEYS = (
    lambda s: (s.implementation, s.device_name),
    lambda s: (s.implementation, s.platform) if s.platform else None,
    lambda s: (s.implementation, s.device),
)


def pair_series(first, second) -> tuple[list, list, list]:
    """(pairs, unpaired of ``first``, unpaired of ``second``), pairing by each key of _PAIRING_KEYS in turn."""
    left, right, pairs = list(first), list(second), []
    for key in _PAIRING_KEYS:
        for series in list(left):
            value = key(series)
            if value is None:
                continue
            mine = [s for s in left if key(s) == value]
            theirs = [s for s in right if key(s) == value]
            if len(mine) == 1 and len(theirs) == 1:
                pairs.append((series, theirs[0]))
                left.remove(series)
                right.remove(theirs[0])
    pairs.sort(key=lambda pair: (pair[0].implementation != "clconv", pair[0].implementation, pair[0].device))
    return pairs, left, right


def _series_name(first: Series, second: Series) -> str:
    devices = first.device if first.device == second.device else f"{first.device} | {second.device}"
    return f"{first.implementation} [{devices}]"


def compare(first: dict, second: dict, first_label: str = "DIR1", second_label: str = "DIR2") -> Comparison:
    """The layers and passes each paired series measured in both documents, with their GFLOP/s ratio."""
    first_series, second_series = measured_series(first), measured_series(second)
    pairs, only_first, only_second = pair_series(first_series, second_series)
    rows = []
    for mine, theirs in pairs:
        name = _series_name(mine, theirs)
        before, after = first_series[mine], second_series[theirs]
        shared = [key for key in before if key in after]
        shared.sort(key=lambda key: PASSES.index(key[1]) if key[1] in PASSES else len(PASSES))
        for key in shared:
            (first_gflops, first_batch), (second_gflops, second_batch) = before[key], after[key]
            rows.append({"series": name, "implementation": mine.implementation, "layer": key[0], "pass": key[1],
                         "first": first_gflops, "second": second_gflops, "ratio": second_gflops / first_gflops,
                         "same_batch": first_batch == second_batch})
    return Comparison(first_label, second_label, rows, pairs, only_first, only_second)


def print_comparison(comparison: Comparison, file=None) -> None:
    print(f"DIR1 = {comparison.first_label}\nDIR2 = {comparison.second_label}\n", file=file)
    width = max([len(_series_name(*pair)) for pair in comparison.pairs] + [len("series")])
    print("Series compared (DIR1 | DIR2):", file=file)
    for mine, theirs in comparison.pairs:
        print(f"  {_series_name(mine, theirs):{width}} {mine.describe()} | {theirs.describe()}", file=file)
    for label, unpaired in (("DIR1", comparison.only_first), ("DIR2", comparison.only_second)):
        for series in unpaired:
            print(f"  only in {label}: {series.implementation} on {series.describe()}", file=file)
    clconv_rows = [row for row in comparison.rows if row["implementation"] == "clconv"]
    print(f"\nclconv, device-resident GFLOP/s ({len(clconv_rows)} layer passes measured in both runs):", file=file)
    print(f"  {'series':{width}} {'layer':32} {'pass':11} {'DIR1':>8} {'DIR2':>8} {'DIR2/DIR1':>9}", file=file)
    for row in clconv_rows:
        print(f"  {row['series']:{width}} {row['layer']:32} {row['pass']:11} {row['first']:8.1f} {row['second']:8.1f} "
              f"{row['ratio']:8.2f}x{'' if row['same_batch'] else ' *'}", file=file)
    if not all(row["same_batch"] for row in clconv_rows):
        print("  * another batch size in each run (clconv bench --flops): GFLOP/s of unlike work", file=file)
    print("\nGeometric mean of DIR2/DIR1 per series and pass (peers: how much the machine or the libraries "
          "moved):", file=file)
    for row in comparison.geomeans():
        print(f"  {row['series']:{width}} {row['pass']:11} {row['layers']:3d} layers {row['ratio']:8.2f}x", file=file)


def run(first_dir, second_dir, out_dir) -> dict:
    """Print the comparison of two result folders and draw compare.png into ``out_dir``; returns the paths."""
    comparison = compare(load_results(first_dir, "--compare DIR1"), load_results(second_dir, "--compare DIR2"),
                         str(first_dir), str(second_dir))
    if not comparison.rows:
        raise ValueError(f"--compare: {first_dir} and {second_dir} share no measured layer pass of a common "
                         f"implementation and device")
    print_comparison(comparison)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "compare.png"
    clconv_rows = [row for row in comparison.rows if row["implementation"] == "clconv"]
    drawn = bench_charts.compare_chart(clconv_rows, path, str(first_dir), str(second_dir))
    return {"png": path} if drawn else {}
