"""The benchmark's report: peak shares and charts, on synthetic records and tiny runs."""

import dataclasses
import functools
import importlib.util
import json
import math
import re

import pytest

from clconv import bench_charts, benchmark, cli, peak

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
    paths = benchmark.write_outputs(records, [], tmp_path, {PEAK.device: PEAK}, {"oclgrind:0:0": "a simulator"})
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
