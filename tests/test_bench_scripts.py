"""The measuring scripts in bench/ still run against the package as it is: each one, on one device and its
smallest useful layer, exits cleanly and prints a row of numbers for each pass it measures. What they measure is
not checked here (speed belongs to the benchmarks), only that they keep working."""

import importlib
import pathlib
import re
import subprocess
import sys

import pytest

from clconv import layers, planning, platforms
from clconv.params import PASSES

BENCH = pathlib.Path(__file__).resolve().parent.parent / "bench"
# A row of results: a label, then at least one number with a decimal point.
RESULT_ROW = re.compile(r"^\S.*\d+\.\d+")


@pytest.mark.parametrize("script, arguments, rows", [
    pytest.param("channels_last.py", ["LeNet-5/conv2"], ("forward", "grad_input", "grad_weight"), id="channels_last"),
    pytest.param("phase_split.py", [], ("ResNet-18/layer2.0.conv1",), id="phase_split"),
    pytest.param("vector_lanes.py", ["4"], ("forward 4:", "grad_input 4:", "grad_weight 4:"), id="vector_lanes"),
    pytest.param("heuristic_rules.py", ["single-tap-phases", "1", "2,4,14,14,4,3,1,4,2"], ("grad_input",),
                 id="heuristic_rules-single-tap-phases"),
    pytest.param("heuristic_rules.py", ["small-plane-tiles", "1", "2,16,7,7,16,3,1,1,1"], ("forward", "grad_input"),
                 id="heuristic_rules-small-plane-tiles"),
    pytest.param("heuristic_rules.py", ["padded-lanes", "1", "2,32,7,7,32,3,1,1,1"], ("forward", "grad_input"),
                 id="heuristic_rules-padded-lanes"),
    pytest.param("memory_pool.py", ["1", "LeNet-5/conv2"], ("forward", "grad_input", "grad_weight"), id="memory_pool"),
    pytest.param("unaligned_inputs.py", ["1", "LeNet-5/conv2"], ("forward", "grad_input", "grad_weight"),
                 id="unaligned_inputs"),
])
def test_bench_script_runs(bench_device, script, arguments, rows):
    assert_script_prints(bench_device, script, arguments, rows)


def assert_script_prints(device, script: str, arguments: list, rows):
    """Run ``script`` on ``device``: it exits cleanly, and for each of ``rows`` prints a result row containing it."""
    done = subprocess.run([sys.executable, str(BENCH / script), device.index, *arguments], capture_output=True,
                          text=True, cwd=BENCH, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    results = [line for line in done.stdout.splitlines() if RESULT_ROW.match(line)]
    for row in rows:
        assert any(row in line for line in results), (row, done.stdout)


def test_lanes_in_place_script_runs(monkeypatch, bench_device):
    """bench/lanes_in_place.py measures the passes whose heuristic tile converts channels-last inputs and which a
    lanes tile could run instead, which depends on the device: on 16-lane CPUs the strided downsample's forward
    pass and input gradient."""
    monkeypatch.syspath_prepend(str(BENCH))
    script = importlib.import_module("lanes_in_place")
    label = "ResNet-18/layer2.0.downsample"
    layer = next(layer for layer in layers.SUITE if layer.label == label)
    p = layer.params(layer.batch_for())
    target = platforms.resolve(bench_device.index)
    default = planning.plan_for(p, target)
    measured = [pass_name for pass_name in PASSES if pass_name != "grad_bias" and script.converts(default, pass_name)
                and script.lanes_plans(p, target, pass_name)]
    if bench_device.type == "CPU" and bench_device.native_float_lanes >= 16:
        assert measured == ["forward", "grad_input"]
    rows = [f"{label} N={p.N:<3d} {name}" for name in measured]
    assert_script_prints(bench_device, "lanes_in_place.py", [label], rows)
