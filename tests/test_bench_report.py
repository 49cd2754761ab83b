"""The benchmark's report: peak shares, charts and ``clconv bench --compare``, on synthetic records and tiny
runs."""

import dataclasses
import functools
import importlib.util
import json
import math
import re
import sys

import pytest

from clconv import bench_charts, bench_compare, bench_report, benchmark, cli, peak

# A peak measurement small enough for a test: milliseconds of device time, a 1 MiB copy.
TINY_PEAK = dict(fma_seconds=0.002, copy_buffer_bytes=2**20, repeats=1)

HAVE_MATPLOTLIB = importlib.util.find_spec("matplotlib") is not None


def assert_chart(path):
    """A chart is written exactly where matplotlib is installed, and then holds a real image."""
    assert path.exists() == HAVE_MATPLOTLIB, path
    if HAVE_MATPLOTLIB:
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 10_000, path


# -- synthetic records ---------------------------------------------------------------------------------

def record(implementation, device, layer, pass_name, kernel_s, e2e_s=None, dtype="fp32", status="ok",
           device_name=None, flops=2e9, bytes_moved=1e8, batch=1):
    return benchmark.Record(device, device_name or f"name of {device}", implementation, layer, pass_name, batch, "x",
                            dtype, int(flops), int(bytes_moved), status, kernel_s=kernel_s, wall_s=kernel_s,
                            e2e_s=e2e_s if e2e_s is not None else kernel_s)


PEAK = peak.DevicePeak("pocl:2:0", "name of pocl:2:0", "CPU", fp32_gflops=200.0, fp64_gflops=100.0,
                       bandwidth_gbps=20.0)

RECORDS = [
    record("clconv", "pocl:2:0", "Net/a", "forward", 0.02),  # 100 GFLOP/s
    record("clconv", "pocl:2:0", "Net/a", "grad_input", 0.04, e2e_s=0.05),
    record("clconv", "pocl:2:0", "Net/b", "forward", 0.1, flops=1e9, bytes_moved=1e9),
    record("clconv", "pocl:2:0", "Net/b", "forward", 0.1, dtype="fp64"),
    record("clconv", "pocl:2:0", "Net/c", "forward", math.nan, status="error: broken"),
    record("clblast-im2col-gemm", "pocl:2:0", "Net/a", "forward", 0.06),
    record("torch-cpu", "host", "Net/a", "forward", 0.01),
    record("torch-cpu", "host", "Net/a", "grad_input", 0.1),
    record("torch-cpu", "host", "Net/b", "forward", 0.4),
    record("numpy-oracle", "host", "Net/a", "forward", 1.0),
]


def test_peak_share_is_the_percentage_of_the_dtypes_peak():
    records = [dataclasses.replace(r) for r in RECORDS]
    benchmark.apply_peaks(records, {PEAK.device: PEAK})
    shares = {(r.implementation, r.layer, r.pass_name, r.dtype): r.peak_share for r in records}
    assert shares[("clconv", "Net/a", "forward", "fp32")] == pytest.approx(50.0)  # 100 of 200
    assert shares[("clconv", "Net/b", "forward", "fp64")] == pytest.approx(20.0)  # 20 of the fp64 100
    assert shares[("clblast-im2col-gemm", "Net/a", "forward", "fp32")] == pytest.approx(100 / 3 / 2)
    assert math.isnan(shares[("torch-cpu", "Net/a", "forward", "fp32")])  # the host has no peak
    assert math.isnan(shares[("clconv", "Net/c", "forward", "fp32")])  # not measured
    fp16 = record("clconv", "pocl:2:0", "Net/a", "forward", 0.02, dtype="fp16")
    without_fp64 = record("clconv", "other:0:0", "Net/a", "forward", 0.02, dtype="fp64")
    no_fp64_peak = peak.DevicePeak("other:0:0", "x", "GPU", 400.0, None, 100.0)
    benchmark.apply_peaks([fp16, without_fp64], {PEAK.device: PEAK, "other:0:0": no_fp64_peak})
    assert fp16.peak_share == pytest.approx(50.0)  # fp16 computes in float
    assert math.isnan(without_fp64.peak_share)


def test_speedup_series_divides_peer_time_by_clconv_time():
    series = bench_charts.speedup_series(RECORDS)
    assert series[("torch-cpu", "host", "pocl:2:0")] == {("Net/a", "forward"): pytest.approx(0.5),
                                                        ("Net/a", "grad_input"): pytest.approx(2.0),
                                                        ("Net/b", "forward"): pytest.approx(4.0)}
    assert series[("clblast-im2col-gemm", "pocl:2:0", "pocl:2:0")] == {("Net/a", "forward"): pytest.approx(3.0)}
    assert len(series) == 2  # not the NumPy oracle


def test_charts_are_written(tmp_path):
    pytest.importorskip("matplotlib")
    assert bench_charts.gflops_chart(RECORDS, tmp_path / "gflops.png")
    assert bench_charts.speedup_chart(RECORDS, tmp_path / "speedup.png")
    assert bench_charts.roofline_chart(RECORDS, {PEAK.device: PEAK}, tmp_path / "roofline.png")
    for name in ("gflops", "speedup", "roofline"):
        assert_chart(tmp_path / f"{name}.png")
    clconv_only = [r for r in RECORDS if r.implementation == "clconv"]
    assert not bench_charts.speedup_chart(clconv_only, tmp_path / "none.png")  # no peer: nothing to divide
    assert not bench_charts.roofline_chart(RECORDS, {}, tmp_path / "none.png")  # no peak: no roof
    assert not (tmp_path / "none.png").exists()


def test_outputs_hold_peaks_and_shares(tmp_path):
    records = [dataclasses.replace(r) for r in RECORDS]
    benchmark.apply_peaks(records, {PEAK.device: PEAK})
    paths = bench_report.write_outputs(records, [], tmp_path, {PEAK.device: PEAK}, {"oclgrind:0:0": "a simulator"})
    document = json.loads(paths["json"].read_text())
    assert document["peaks"] == {"pocl:2:0": PEAK.as_dict()}
    assert document["peaks_missing"] == {"oclgrind:0:0": "a simulator"}
    assert document["records"][0]["peak_share"] == pytest.approx(50.0)
    header, first = paths["csv"].read_text().splitlines()[:2]
    assert float(first.split(",")[header.split(",").index("peak_share")]) == pytest.approx(50.0)
    report = paths["txt"].read_text()
    assert "fp32    200.0 GFLOP/s" in report and "copy   20.0 GB/s" in report
    assert "oclgrind:0:0 not measured: a simulator" in report
    assert re.search(r"clconv\s+Net/a\s+forward\s+100\.0\s+50\.0 ", report)


# -- clconv bench --compare ------------------------------------------------------------------------------

def write_results(folder, records, devices=()):
    folder.mkdir(parents=True, exist_ok=True)
    document = {"machine": {"devices": list(devices)}, "records": [r.as_dict() for r in records]}
    (folder / "results.json").write_text(json.dumps(document))
    return folder


def pocl_device(tag, name):
    return {"tag": tag, "name": name, "platform": "Portable Computing Language",
            "platform_version": "OpenCL 3.0 PoCL 3.1+debian"}


def row_ratio(out, series, layer, pass_name):
    found = re.search(rf"{re.escape(series)}\s+{re.escape(layer)}\s+{pass_name}\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)x",
                      out)
    assert found, f"no row for {series} {layer} {pass_name} in:\n{out}"
    return tuple(float(v) for v in found.groups())


def geomean_ratio(out, series, pass_name):
    found = re.search(rf"{re.escape(series)}\s+{pass_name}\s+(\d+) layers\s+([\d.]+)x", out)
    assert found, f"no geometric mean for {series} {pass_name} in:\n{out}"
    return int(found.group(1)), float(found.group(2))


def test_compare_prints_ratios_of_the_shared_layers(tmp_path, capsys):
    first = write_results(tmp_path / "one", [
        record("clconv", "pocl:2:0", "Net/a", "forward", 0.2),  # 10 GFLOP/s
        record("clconv", "pocl:2:0", "Net/b", "forward", 0.05),  # 40
        record("clconv", "pocl:2:0", "Net/b", "grad_input", 0.1),  # 20
        record("torch-cpu", "host", "Net/a", "forward", 0.02),  # 100
    ], [pocl_device("pocl:2:0", "name of pocl:2:0")])
    second = write_results(tmp_path / "two", [
        record("clconv", "pocl:2:0", "Net/a", "forward", 0.1),  # 20: 2x
        record("clconv", "pocl:2:0", "Net/b", "forward", 0.2, batch=2),  # 10: 0.25x, on another batch
        record("clconv", "pocl:2:0", "Net/b", "grad_input", math.nan, status="error: broken"),
        record("clconv", "pocl:2:0", "Net/c", "forward", 0.1),  # only here
        record("torch-cpu", "host", "Net/a", "forward", 0.025),  # 80: 0.8x
    ], [pocl_device("pocl:2:0", "name of pocl:2:0")])
    out_dir = tmp_path / "out"
    assert cli.main(["bench", "--compare", str(first), str(second), "--out", str(out_dir)]) == 0
    out = capsys.readouterr().out
    assert row_ratio(out, "clconv [pocl:2:0]", "Net/a", "forward") == (10.0, 20.0, 2.0)
    assert row_ratio(out, "clconv [pocl:2:0]", "Net/b", "forward") == (40.0, 10.0, 0.25)
    assert re.search(r"Net/b\s+forward\s+40\.0\s+10\.0\s+0\.25x \*\n", out)  # the batch differs
    assert re.search(r"Net/a\s+forward\s+10\.0\s+20\.0\s+2\.00x\n", out)
    assert "* another batch size in each run" in out
    assert "Net/c" not in out and "grad_input" not in out
    assert geomean_ratio(out, "clconv [pocl:2:0]", "forward") == (2, 0.71)  # sqrt(2 * 0.25)
    assert geomean_ratio(out, "torch-cpu [host]", "forward") == (1, 0.8)
    assert_chart(out_dir / "compare.png")


def test_compare_pairs_series_of_two_machines(tmp_path, capsys):
    """Other device names and tags: clconv pairs by platform, PyTorch by the host tag."""
    first = write_results(tmp_path / "xeon", [
        record("clconv", "pocl:0:0", "Net/a", "forward", 0.1, device_name="pthread-Xeon"),
        record("clconv", "intel:1:0", "Net/a", "forward", 0.1, device_name="Xeon"),
        record("torch-cpu", "host", "Net/a", "forward", 0.1, device_name="Xeon"),
    ], [pocl_device("pocl:0:0", "pthread-Xeon")])
    second = write_results(tmp_path / "epyc", [
        record("clconv", "pocl:2:0", "Net/a", "forward", 0.05, device_name="pthread-EPYC"),
        record("torch-cpu", "host", "Net/a", "forward", 0.4, device_name="EPYC"),
    ], [pocl_device("pocl:2:0", "pthread-EPYC")])
    comparison = bench_compare.compare(bench_compare.load_results(first, "DIR1"),
                                       bench_compare.load_results(second, "DIR2"))
    ratios = {row["series"]: row["ratio"] for row in comparison.rows}
    assert ratios == {"clconv [pocl:0:0 | pocl:2:0]": pytest.approx(2.0), "torch-cpu [host]": pytest.approx(0.25)}
    assert [(s.implementation, s.device) for s in comparison.only_first] == [("clconv", "intel:1:0")]
    assert comparison.only_second == []
    bench_compare.print_comparison(comparison)
    out = capsys.readouterr().out
    assert "only in DIR1: clconv on intel:1:0 (Xeon)" in out
    assert "pocl:0:0 (pthread-Xeon, Portable Computing Language OpenCL 3.0 PoCL 3.1+debian)" in out


@pytest.mark.parametrize("missing", ["DIR1", "DIR2"])
def test_compare_names_the_folder_without_results(tmp_path, capsys, missing):
    present = write_results(tmp_path / "present", [record("clconv", "pocl:2:0", "Net/a", "forward", 0.1)])
    empty = tmp_path / "empty"
    empty.mkdir()
    folders = [str(empty), str(present)] if missing == "DIR1" else [str(present), str(empty)]
    assert cli.main(["bench", "--compare", *folders, "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert f"--compare {missing}: {empty} holds no results.json" in err


# -- clconv bench end to end ------------------------------------------------------------------------------

def test_cli_bench_measures_peaks_and_shares(device, tmp_path, monkeypatch):
    monkeypatch.setattr(peak, "measure", functools.partial(peak.measure, **TINY_PEAK))
    out = tmp_path / "bench"
    assert cli.main(["bench", "--layers", "LeNet-5/conv1", "--passes", "forward", "--device", device.index,
                     "--repeats", "1", "--flops", "1e6", "--no-peers", "--out", str(out)]) == 0
    document = json.loads((out / "results.json").read_text())
    measured = document["peaks"][device.tag]
    assert measured["fp32_gflops"] > 0 and measured["bandwidth_gbps"] > 0
    [mine] = document["records"]
    assert mine["peak_share"] == pytest.approx(100 * mine["gflops"] / measured["fp32_gflops"])
    assert "Device peaks" in (out / "report.txt").read_text()
    assert_chart(out / "roofline.png")


def test_cli_bench_no_peak(device, tmp_path, monkeypatch):
    monkeypatch.setattr(peak, "measure", lambda *args, **kwargs: pytest.fail("--no-peak measured a peak"))
    out = tmp_path / "bench"
    assert cli.main(["bench", "--layers", "LeNet-5/conv1", "--passes", "forward", "--device", device.index,
                     "--repeats", "1", "--flops", "1e6", "--no-peers", "--no-peak", "--out", str(out)]) == 0
    document = json.loads((out / "results.json").read_text())
    assert document["peaks"] == {} and math.isnan(document["records"][0]["peak_share"])
    assert not (out / "roofline.png").exists()


def test_cli_bench_without_matplotlib_writes_the_results_and_names_the_missing_charts(device, tmp_path, capsys,
                                                                                       monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib raises ImportError
    out = tmp_path / "bench"
    assert cli.main(["bench", "--layers", "LeNet-5/conv1", "--passes", "forward", "--device", device.index,
                     "--repeats", "1", "--flops", "1e6", "--no-peers", "--no-peak", "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["report.txt", "results.csv", "results.json"]
    assert ("charts not drawn (gflops.png, speedup.png, roofline.png): matplotlib is not installed "
            "(pip install 'clconv[bench]')") in capsys.readouterr().err


def test_compare_without_matplotlib_prints_and_names_the_missing_chart(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    runs = [write_results(tmp_path / name, [record("clconv", "pocl:2:0", "Net/a", "forward", seconds)])
            for name, seconds in (("one", 0.2), ("two", 0.1))]
    assert cli.main(["bench", "--compare", *map(str, runs), "--out", str(tmp_path / "out")]) == 0
    captured = capsys.readouterr()
    assert row_ratio(captured.out, "clconv [pocl:2:0]", "Net/a", "forward") == (10.0, 20.0, 2.0)
    assert "compare.png not drawn: matplotlib is not installed (pip install 'clconv[bench]')" in captured.err
