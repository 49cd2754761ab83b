"""The tuner and the benchmark, on layers small enough for a test."""

import json

import numpy as np
import pytest

import clconv
from clconv import bench_peers, bench_report, benchmark, cli, layers, planning, tuner, tuning_cache

TINY = clconv.Conv2DParams.create((2, 5, 9, 9), (6, 5, 3, 3), padding=1)
TINY_LAYER = layers.Layer("Test", "tiny", 5, 9, 9, 6, 3, 3, padding=1)


def test_tuner_stores_winners_that_plans_use(device):
    planning.clear_plan_cache()
    results = tuner.tune([TINY], device=device.device, passes=("forward", "grad_weight"), repeats=1, progress=False)
    assert {r.pass_name for r in results} == {"forward", "grad_weight"}
    for result in results:
        assert result.rejected == 0 and result.tried >= 2
        record, batch = tuning_cache.lookup(device, TINY, result.pass_name)
        assert batch == TINY.N
        assert record["algo"] == result.choice.algo and record["seconds"] == result.seconds
    plan = clconv.plan(TINY.input_shape, TINY.weight_shape, padding=1, device=device.device)
    assert plan.choices["forward"].source == "tuned"
    assert plan.choices["grad_input"].source == "heuristic"


def test_tuner_rejects_wrong_candidates(device, monkeypatch):
    """A tile that computes a wrong answer never wins, however fast: every tiled candidate's forward result
    is off by one, and only the direct algorithm (the reference the tuner compares with) stays right."""
    original_forward = planning.Conv2DPlan.forward

    def corrupted(self, x, weight, bias=None):
        result = original_forward(self, x, weight, bias)
        if self.choices["forward"].algo == "tiled":
            result += 1.0
        return result

    monkeypatch.setattr(planning.Conv2DPlan, "forward", corrupted)
    [result] = tuner.tune([TINY], device=device.device, passes=("forward",), repeats=1, progress=False, store=False)
    assert result.choice.algo == "direct"
    assert result.rejected == result.tried - 1


def test_benchmark_measures_and_reports(device, tmp_path):
    records = benchmark.run([TINY_LAYER], [device], repeats=1, flops_per_pass=1e6, progress=False)
    mine = [r for r in records if r.implementation == "clconv"]
    assert {r.pass_name for r in mine} == set(benchmark.BENCH_PASSES)
    for r in mine:
        assert r.status == "ok", r.status
        assert r.max_error <= 1e-5 and r.kernel_s > 0 and r.e2e_s > 0 and r.algorithm in ("tiled", "direct")
    oracle = [r for r in records if r.implementation == "numpy-oracle"]
    assert oracle and all(r.status == "ok" and r.max_error == 0 for r in oracle)
    for r in records:
        assert r.status == "ok" or r.status.startswith("skipped: "), r.status
    paths = bench_report.write_outputs(records, [device], tmp_path)
    document = json.loads(paths["json"].read_text())
    assert document["machine"]["devices"][0]["name"] == device.name
    assert len(document["records"]) == len(records)
    assert paths["csv"].read_text().count("\n") == len(records) + 1
    rows = bench_report.summary(records)
    assert any(row["implementation"] == "clconv" and row["gflops"] > 0 for row in rows)


def test_benchmark_reports_wrong_answers(device, monkeypatch):
    """A benchmark that computes a wrong answer says so."""
    real_forward = planning.Conv2DPlan.forward

    def off(self, x, weight, bias=None):
        return real_forward(self, x, weight, bias) * 1.01

    monkeypatch.setattr(planning.Conv2DPlan, "forward", off)
    records = benchmark.run([TINY_LAYER], [device], passes=("forward",), repeats=1, peers=False,
                            flops_per_pass=1e6, progress=False)
    assert records[0].max_error > 1e-3


def test_missing_peers_are_skipped_not_faked(device, monkeypatch):
    monkeypatch.setattr(bench_peers.TorchPeer, "__init__", lambda self: setattr(self, "skip_reason", "not here"))
    records = benchmark.run([TINY_LAYER], [device], passes=("forward",), repeats=1, flops_per_pass=1e6,
                            progress=False)
    torch_records = [r for r in records if r.implementation == "torch-cpu"]
    assert torch_records and torch_records[0].status == "skipped: not here"
    assert np.isnan(torch_records[0].kernel_s)


def test_cli_tune_and_bench(device, tmp_path, capsys):
    assert cli.main(["tune", "--layer", "2,5,9,9,6,3,3,1,1", "--device", device.index, "--passes", "forward",
                     "--repeats", "1"]) == 0
    assert "winners stored in" in capsys.readouterr().out
    out = tmp_path / "bench"
    assert cli.main(["bench", "--layers", "LeNet-5/conv1", "--device", device.index, "--repeats", "1",
                     "--flops", "1e6", "--no-peers", "--no-peak", "--out", str(out)]) == 0
    assert (out / "results.json").is_file() and (out / "results.csv").is_file()


def test_cli_rejects_bad_layer(capsys):
    with pytest.raises(SystemExit):
        cli.main(["tune", "--layer", "2,5,9"])
    assert "--layer wants 7 to 11 integers" in capsys.readouterr().err


def test_tune_refuses_a_pass_it_does_not_tune(device):
    with pytest.raises(ValueError, match="passes must be among"):
        tuner.tune([TINY], device=device.device, passes=("grad_bias",), progress=False, store=False)
