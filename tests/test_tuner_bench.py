"""The tuner and the benchmark, on layers small enough for a test."""

import json

import numpy as np
import pytest

import clconv
from clconv import bench_peers, bench_report, benchmark, cli, layers, planning, tuner, tuning_cache

TINY = clconv.Conv2DParams.create((2, 5, 9, 9), (6, 5, 3, 3), padding=1)
TINY_LAYER = layers.Layer("Test", "tiny", 5, 9, 9, 6, 3, 3, padding=1)

#: A tiny layer of each kind besides the 2-D one, with the arguments that take a path of their own in the
#: peers: padding on one side only (PyTorch pads by hand), output_padding.
TINY_KINDS = (
    layers.Layer("Test", "tiny-1d", 5, 1, 24, 6, 1, 3, stride=2, padding=(0, 1), kind="conv1d"),
    layers.Layer("Test", "tiny-transposed", 6, 5, 4, 4, 3, 3, stride=2, padding=1, output_padding=1,
                 kind="conv_transpose2d"),
    layers.Layer("Test", "tiny-3d", 3, 5, 6, 4, 3, 3, stride=(2, 1, 1), padding=((1, 0), (1, 1), (0, 1)),
                 kind="conv3d", D=5, T=2),
)


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


def test_benchmark_alternates_the_end_to_end_rounds_of_a_ratio(device, monkeypatch):
    """clconv's and PyTorch's end-to-end times (the two sides of a ratio) get E2E_ROUNDS - 1 more medians, taken in
    turn, and keep their best; the other peers keep their single measurement."""
    if bench_peers.TorchPeer().skip_reason:
        pytest.skip("PyTorch is not installed (pip install torch): there is no ratio to alternate")
    monkeypatch.setattr(benchmark, "SETTLE_SECONDS", 0)
    rounds = []

    def counted(run, repeats):  # the alternating rounds' medians: each a call, and a time below any real one
        run()
        rounds.append(run)
        return 1e-9

    monkeypatch.setattr(benchmark, "_alternate_median", counted)
    records = benchmark.run([TINY_LAYER], [device], passes=("forward",), repeats=1, flops_per_pass=1e6,
                            progress=False)
    by_implementation = {r.implementation: r for r in records}
    assert by_implementation["clconv"].e2e_s == by_implementation["torch-cpu"].e2e_s == 1e-9
    assert by_implementation["numpy-oracle"].e2e_s > 1e-9
    assert len(rounds) == 2 * (benchmark.E2E_ROUNDS - 1)


@pytest.mark.parametrize("layer", TINY_KINDS, ids=lambda layer: layer.kind)
def test_benchmark_measures_every_kind_of_layer(device, layer, tmp_path, monkeypatch):
    """clconv and PyTorch compute each pass of the layer's own kind: a kind measured as another would not match
    the oracle, whose result PyTorch checks independently. CLBlast runs what an im2col expresses, and says why
    not the rest."""
    monkeypatch.setattr(benchmark, "SETTLE_SECONDS", 0)  # timings are not what this checks
    records = benchmark.run([layer], [device], repeats=1, flops_per_pass=1e6, progress=False)
    p = layer.params(records[0].batch)
    by_key = {(r.implementation, r.pass_name): r for r in records}
    torch_reason = bench_peers.TorchPeer().skip_reason
    clblast_reason = bench_peers.ClblastPeer().skip_reason or bench_peers.ClblastPeer.NOT_APPLICABLE.get(layer.kind)
    for pass_name in benchmark.BENCH_PASSES:
        mine = by_key[("clconv", pass_name)]
        assert mine.status == "ok" and mine.max_error <= 1e-5, (pass_name, mine.status, mine.max_error)
        assert mine.kernel_s > 0 and mine.e2e_s > 0 and mine.algorithm in ("tiled", "direct")
        assert (mine.shape, mine.flops) == (p.describe(), p.flops(pass_name))
        for peer, reason in (("torch-cpu", torch_reason), ("clblast-im2col-gemm", clblast_reason)):
            theirs = by_key[(peer, pass_name)]
            if reason:
                assert theirs.status == f"skipped: {reason}"
            else:
                assert theirs.status == "ok" and theirs.max_error <= 1e-5, (peer, pass_name, theirs.status)
    paths = bench_report.write_outputs(records, [device], tmp_path)
    assert f"{layer.label} " in paths["txt"].read_text()
    assert json.loads(paths["json"].read_text())["records"][0]["shape"] == p.describe()


def test_suite_layers_of_every_kind_are_their_networks_layers():
    """The shapes the labels promise, and a batch of at least one where a single sample costs over a GFLOP."""
    wav2vec2 = layers.select(["wav2vec2/conv_layers.1"])[0]
    assert (wav2vec2.params(1).input_shape, wav2vec2.params(1).output_shape) == ((1, 512, 3199), (1, 512, 1599))
    assert wav2vec2.batch_for() == 1
    dcgan = layers.select(["DCGAN/main.9"])[0]
    p = dcgan.params(1)
    assert (p.input_shape, p.weight_shape, p.output_shape) == ((1, 128, 16, 16), (128, 64, 4, 4), (1, 64, 32, 32))
    assert p.flops("forward") == 2 * 128 * 16 * 16 * 64 * 4 * 4  # every input pixel meets every weight
    assert dcgan.batch_for() == 15
    r3d = layers.select(["R3D-18/layer3.conv"])[0].params(1)
    assert (r3d.input_shape, r3d.weight_shape, r3d.output_shape) == ((1, 256, 4, 14, 14), (256, 256, 3, 3, 3),
                                                                      (1, 256, 4, 14, 14))


def test_tuning_the_suite_tunes_the_2d_layers_behind_it():
    """A 1-D layer is tuned as its H = 1 layer, a 3-D one as the 2-D layer of its input unfolded along depth, a
    transposed one as its convolution, forward and grad_input swapped."""
    groups = cli.suite_tuning(["wav2vec2", "DCGAN", "R3D-18"], passes=("forward",))
    wav2vec2, dcgan, r3d = (layer.params(layer.batch_for()) for layer in layers.select(["wav2vec2", "DCGAN", "R3D-18"]))
    assert groups == {("forward",): [wav2vec2.layer, r3d.layer], ("grad_input",): [dcgan.conv]}
    assert cli.suite_tuning(["DCGAN"]) == {tuner.TUNED_PASSES: [dcgan.conv]}


def test_layer_refuses_what_its_kind_does_not_have():
    with pytest.raises(ValueError, match="kind must be one of"):
        layers.Layer("Test", "x", 1, 8, 8, 1, 3, 3, kind="conv4d")
    with pytest.raises(ValueError, match="a 1-D layer has H = R = 1"):
        layers.Layer("Test", "x", 1, 8, 8, 1, 3, 3, kind="conv1d")
    with pytest.raises(ValueError, match="only a 3-D layer has a depth"):
        layers.Layer("Test", "x", 1, 8, 8, 1, 3, 3, D=4)
    with pytest.raises(ValueError, match="output_padding is for transposed layers"):
        layers.Layer("Test", "x", 1, 8, 8, 1, 3, 3, stride=2, output_padding=1)


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
