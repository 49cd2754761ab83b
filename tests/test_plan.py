"""Plans, algorithm choice, the tuning cache and batch chunking."""

import concurrent.futures
import dataclasses
import gc
import json
import math
import re
import threading
import time
import types

import numpy as np
import pyopencl as cl
import pyopencl.array as cl_array
import pytest

import clconv
from clconv import arrays, cache_files, check, layers, planning, platforms, reference, tuning_cache
from clconv.algorithms import base
from clconv.algorithms.tiled import CorrelationConfig, GradWeightConfig
from clconv.params import PASSES, call_plan

CASE = next(case for case in check.CASES if case.name == "3x3-s2-d2-g3")


@pytest.fixture
def tuning_file(tmp_path, monkeypatch):
    path = tmp_path / "tuning.json"
    monkeypatch.setenv(cache_files.TUNING_ENV_VAR, str(path))
    planning.clear_plan_cache()
    yield path
    planning.clear_plan_cache()


def test_plan_runs_every_pass(device):
    inputs = check.random_inputs(CASE, np.float32)
    plan = clconv.plan(CASE.input_shape, CASE.weight_shape, device=device.device, **CASE.conv_args)
    assert set(plan.algorithms) == set(PASSES) and all(v == 0 for k, v in plan.workspace_bytes.items()
                                                       if k in ("forward", "grad_input"))
    got = {pass_name: call_plan(plan, pass_name, inputs) for pass_name in PASSES}
    for pass_name, result in got.items():
        # The plan runs what the functional API runs, bit for bit, and that agrees with the oracle.
        assert result.tobytes() == check.run_pass(pass_name, CASE, inputs, device=device.device).tobytes(), pass_name
        comparison = check.compare_with_oracle(pass_name, CASE, inputs, result, np.float32)
        assert comparison.passed, f"{pass_name}: {comparison.message}"
    with pytest.raises(ValueError, match=r"x must have shape \(2, 6, 15, 15\) for this plan"):
        plan.forward(inputs["x"][:1], inputs["weight"])
    with pytest.raises(TypeError, match="x must have dtype float32 for this plan"):
        plan.forward(inputs["x"].astype(np.float64), inputs["weight"])


def test_requested_algorithm_is_used(device):
    plan = clconv.plan(CASE.input_shape, CASE.weight_shape, device=device.device, algo="direct", **CASE.conv_args)
    assert set(plan.algorithms.values()) == {"direct"}
    with pytest.raises(ValueError, match="algo must be 'auto' or one of"):
        clconv.plan(CASE.input_shape, CASE.weight_shape, device=device.device, algo="fastest", **CASE.conv_args)


def test_tuning_cache_round_trip(device, tuning_file):
    params = CASE.params(np.float32)
    config = CorrelationConfig(vec=8, block_k=2, block_v=3, local=(1, 1, 1))
    record = json.loads(json.dumps({"algo": "tiled", "config": dataclasses.asdict(config), "gflops": 1.0}))
    tuning_cache.store(device, params, "forward", record)
    stored = json.loads(tuning_file.read_text())
    assert stored["devices"][tuning_cache.device_key(device)][tuning_cache.params_key(params)]["forward"] == record
    assert tuning_cache.lookup(device, params, "forward") == (record, params.N)
    plan = clconv.plan(CASE.input_shape, CASE.weight_shape, device=device.device, **CASE.conv_args)
    assert plan.choices["forward"].source == "tuned" and plan.choices["forward"].config == config
    assert plan.choices["grad_input"].source == "heuristic"
    inputs = check.random_inputs(CASE, np.float32)
    assert check.check_pass("forward", CASE, np.float32, device=device.device).passed
    assert plan.forward(inputs["x"], inputs["weight"]).shape == params.output_shape


def test_tuning_cache_ignored_for_another_driver(device, tuning_file):
    params = CASE.params(np.float32)
    record = {"algo": "direct", "config": None, "gflops": 1.0}
    tuning_cache.store(device, params, "forward", record)
    other_driver = dataclasses.replace(device, driver_version=device.driver_version + "-other")
    other_device = dataclasses.replace(device, name=device.name + " (another)")
    assert tuning_cache.lookup(other_driver, params, "forward") is None
    assert tuning_cache.lookup(other_device, params, "forward") is None
    assert tuning_cache.lookup(device, params, "forward") == (record, params.N)


def test_unreadable_tuning_cache_is_ignored(device, tuning_file):
    tuning_file.write_text("{not json")
    with pytest.warns(UserWarning, match="ignoring unreadable tuning cache"):
        plan = clconv.plan(CASE.input_shape, CASE.weight_shape, device=device.device, **CASE.conv_args)
    assert plan.choices["forward"].source == "heuristic"


def test_workspace_cap_is_respected(device):
    """With no workspace allowed, the reductions sum in one pass and still match the oracle."""
    case = next(c for c in check.CASES if c.name == "3x3-p1")
    assert clconv.plan(case.input_shape, case.weight_shape, device=device.device,
                       **case.conv_args).workspace_bytes["grad_bias"] > 0
    capped = clconv.plan(case.input_shape, case.weight_shape, device=device.device, max_workspace_bytes=0,
                         **case.conv_args)
    assert set(capped.workspace_bytes.values()) == {0}
    for pass_name in ("grad_weight", "grad_bias"):
        assert check.check_pass(pass_name, case, np.float32, device=device.device, max_workspace_bytes=0).passed


def test_suite_layers_take_no_workspace_by_default_on_cpus_but_for_copies_into_channel_lanes(device):
    """Issue 9's target, but for the copies the passes with the channels they write in the lanes make (traded for
    their speed): the default plans of the 1-D, 2-D and transposed suite layers allocate nothing besides their
    inputs and outputs in any of the three passes (3-D layers unfold their input: not counted here), except the
    weight's copy of such a forward pass or input gradient and grad_output's of such a weight gradient, exactly
    those; with a workspace cap of 0 not even those."""
    if device.type != "CPU":
        pytest.skip("GPU tiles split the weight gradient's batch for parallelism; the zero default is the CPUs'")
    target = platforms.target_for_device(device)
    in_lanes = set()
    for layer in layers.SUITE:
        if layer.kind == "conv3d":
            continue
        params = layer.params(layer.batch_for())
        plan = layer.layer_kind.plan(params, target)
        copies = {"forward": plan.params.weight_shape, "grad_input": plan.params.weight_shape,
                  "grad_weight": plan.params.output_shape}
        for name in ("forward", "grad_input", "grad_weight"):
            config = getattr(plan._implementation(name), "configs", {}).get(name)
            lanes = getattr(config, "channel_lanes", False)
            expected = math.prod(copies[name]) * plan.params.dtype.itemsize if lanes else 0
            assert plan.workspace_bytes[name] == expected, (layer.label, name, plan.workspace_bytes)
            if lanes:
                in_lanes.add(name)
        capped = planning.plan_for(plan.params, target, max_workspace_bytes=0)
        assert set(capped.workspace_bytes.values()) == {0}, (layer.label, capped.workspace_bytes)
    # Each copy exercised where the heuristic takes the lanes (16-lane CPUs).
    assert in_lanes == {"forward", "grad_input", "grad_weight"} or not tiled_lanes_possible(device)


def tiled_lanes_possible(device) -> bool:
    """Whether a device's heuristic may run passes with the channels they write in the lanes (a CPU with 16-lane
    vectors and no narrower limit)."""
    return device.native_float_lanes >= 16 and device.vector_bits_limit is None


# The direct algorithm's split partial sums; the output channels in the lanes' copy of grad_output and, with more
# work-items wanted than one chunk has, partial sums too.
LANES_SPLIT = GradWeightConfig(vec=4, block_k=2, block_c=3, target_items=1 << 20, channel_lanes=True)


@pytest.mark.parametrize("pass_name, config, scratch_names", [
    ("grad_weight", None, ["grad_weight partial sums"]),
    ("grad_bias", None, ["grad_bias partial sums"]),
    ("grad_weight", LANES_SPLIT, ["grad_output by position", "grad_weight partial sums"])],
    ids=["grad_weight-direct", "grad_bias-direct", "grad_weight-lanes"])
def test_scratch_buffers_are_kept_once_and_shared_safely_by_threads(monkeypatch, device, pass_name, config,
                                                                     scratch_names):
    """A plan allocates a pass's scratch buffers (a reduction's partial sums, the weight gradient's copy of
    grad_output with its output channels in the lanes) once; calls from several threads at once, each on its own
    inputs, still get exactly what they get one at a time."""
    case = check.Case("3x3-p1-k8", (2, 3, 9, 9), (8, 3, 3, 3), padding=1)
    params = case.params(np.float32)
    target = platforms.resolve(device.device)
    if config is None:
        plan = clconv.plan(case.input_shape, case.weight_shape, device=device.device, algo="direct", **case.conv_args)
    else:
        choices = {name: planning.Choice("tiled", config if name == pass_name else None, "requested")
                   for name in PASSES}
        plan = planning.Conv2DPlan(params, target, choices=choices)
    assert plan.workspace_bytes[pass_name] > 0
    names = ("x", "grad_output") if pass_name == "grad_weight" else ("grad_output",)
    inputs = [check.random_inputs(case, np.float32, seed) for seed in range(4)]

    def run(index):
        return getattr(plan, pass_name)(*(inputs[index][name] for name in names)).tobytes()

    alone = [run(index) for index in range(len(inputs))]
    implementation = plan._implementation(pass_name)
    assert sorted(implementation._scratch) == sorted(scratch_names)
    buffers = {name: implementation._scratch[name][0] for name in scratch_names}
    launch = implementation.launch

    def launch_then_pause(name, *args, **kwargs):
        event = launch(name, *args, **kwargs)
        if name != "reduce_partials":
            time.sleep(0.005)  # time for another thread to come between writing a scratch buffer and reading it
        return event

    monkeypatch.setattr(implementation, "launch", launch_then_pause)
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        together = list(pool.map(run, [index % len(inputs) for index in range(40)]))
    assert together == [alone[index % len(inputs)] for index in range(40)]
    assert all(implementation._scratch[name][0] is buffer for name, buffer in buffers.items())


def test_work_group_over_the_kernel_limit_is_refused(monkeypatch, device):
    """A kernel may allow smaller work-groups than its device (registers, local memory): a launch past the
    kernel's own limit stops with a message naming it, before OpenCL would reject it."""
    monkeypatch.setattr(base, "kernel_work_group_limit", lambda kernel, device: 1)
    plan = clconv.plan(CASE.input_shape, CASE.weight_shape, device=device.device, algo="direct", **CASE.conv_args)
    inputs = check.random_inputs(CASE, np.float32)
    local_width = plan._implementation("forward").local_width
    with pytest.raises(base.WorkGroupTooLarge, match=rf"conv2d_forward_direct .* work-group {local_width}x1x1: "
                                                     rf"{local_width} work-items per work-group, but this kernel "
                                                     rf"allows at most 1 on {re.escape(device.name)}"):
        plan.forward(inputs["x"], inputs["weight"])


@pytest.mark.parametrize("pass_name", PASSES)
def test_batches_over_the_allocation_limit_run_in_chunks(monkeypatch, device, pass_name):
    case = check.Case("chunked", (5, 3, 9, 9), (4, 3, 3, 3), padding=1)
    target = platforms.resolve(device.device)
    per_image = max(3, 4) * 9 * 9 * 4
    small = dataclasses.replace(target, info=dataclasses.replace(target.info, max_alloc_bytes=2 * per_image))
    monkeypatch.setattr(platforms, "resolve", lambda spec=None: small)
    plan = clconv.plan(case.input_shape, case.weight_shape, device=small, **case.conv_args)
    assert plan.batch_chunk() == 2
    result = check.check_pass(pass_name, case, np.float32, device=small)
    assert result.passed, result.message
    inputs = check.random_inputs(case, np.float32)
    first = check.run_pass(pass_name, case, inputs, device=small)
    assert check.run_pass(pass_name, case, inputs, device=small).tobytes() == first.tobytes()


def test_functional_calls_reuse_cached_plans(device):
    inputs = check.random_inputs(CASE, np.float32)
    planning.clear_plan_cache()
    check.run_pass("forward", CASE, inputs, device=device.device)
    misses = planning._cached_plan.cache_info().misses
    check.run_pass("forward", CASE, inputs, device=device.device)
    assert planning._cached_plan.cache_info().misses == misses


def test_plan_with_device_arrays(device):
    target = platforms.resolve(device.device)
    inputs = check.random_inputs(CASE, np.float32)
    plan = clconv.plan(CASE.input_shape, CASE.weight_shape, device=device.device, **CASE.conv_args)
    y = plan.forward(cl_array.to_device(target.queue, inputs["x"]), inputs["weight"])
    assert isinstance(y, cl_array.Array)
    assert y.get().tobytes() == plan.forward(inputs["x"], inputs["weight"]).tobytes()


@pytest.mark.parametrize("case_name", ["3x3-c8-k9-d2-p2", "5x3-c9-k10-asympad", "3x3-s2-p1", "3x3-depthwise"])
@pytest.mark.parametrize("pass_name", ["forward", "grad_input", "grad_weight"])
def test_multi_item_work_groups(device, case_name, pass_name):
    """GPU-style tiles (several work-items along the first two axes) compute every output once and right,
    on whole planes as on rows; run here on whatever device there is."""
    case = next(c for c in check.CASES if c.name == case_name)
    params = case.params(np.float32)
    config = (GradWeightConfig(vec=4, block_k=2, block_c=2, local=(4, 2, 1), target_items=64)
              if pass_name == "grad_weight" else CorrelationConfig(vec=4, block_k=2, block_v=2, local=(4, 2, 1)))
    choices = {name: planning.Choice("tiled", config if name == pass_name else None, "requested") for name in PASSES}
    plan = planning.Conv2DPlan(params, platforms.resolve(device.device), choices=choices)
    inputs = check.random_inputs(case, np.float32)
    got = call_plan(plan, pass_name, inputs)
    expected = check.run_pass(pass_name, case, inputs, device=device.device, algo="direct")
    bound = check.run_pass(pass_name, case, {n: np.abs(v) for n, v in inputs.items()}, device=device.device,
                           algo="direct")
    result = check.compare(got, expected, bound, np.float32)
    assert result.passed, result.message


# Stride-2 rows: 3 taps (the last pair half empty), 4 taps, 7 taps with groups, asymmetric padding, a row of a
# 1-D layer, rows of 2 and 3 output columns (4- and 8-lane vectors); and stride 2 along H only, dilation 2 and
# stride 4, where the pairs do not apply.
TAP_PAIR_CASES = ["3x3-s2-p1", "3x3-s2-d2-g3", "3x3-odd-s2x1", "11x11-s4-p2"]


@pytest.mark.parametrize("dtype", check.DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("pairs", [1, 2, 4])
@pytest.mark.parametrize("case", [
    *(next(c for c in check.CASES if c.name == name) for name in TAP_PAIR_CASES),
    check.Case("4x4-s2-p1-k5", (2, 5, 10, 9), (5, 5, 4, 4), stride=2, padding=1),
    check.Case("7x7-s2-p3-g2", (1, 4, 15, 17), (6, 2, 7, 7), stride=2, padding=((3, 2), (3, 3)), groups=2),
    check.Case("1x3-row-s2", (2, 6, 1, 31), (4, 6, 1, 3), stride=(1, 2), padding=((0, 0), (1, 0))),
    check.Case("3x3-s2-q2", (2, 3, 5, 4), (4, 3, 3, 3), stride=2, padding=1),
    check.Case("3x3-s2-q3", (3, 2, 6, 7), (3, 2, 3, 3), stride=2, padding=((1, 0), (0, 1))),
], ids=lambda case: case.name)
def test_weight_gradient_tap_pairs(device, case, pairs, dtype):
    """Runs of pairs of a stride-2 row's taps (tap_pair) on every device, whatever its own heuristic picks, in every
    dtype: one pair, two, and more than the row has; layers where pairs do not apply run unpaired."""
    if np.dtype(dtype) == np.float64 and not device.fp64:
        pytest.skip("float64 needs cl_khr_fp64, which this device lacks (tested in test_errors.py)")
    from clconv.algorithms import tiled

    params = case.params(dtype)
    target = platforms.resolve(device.device)
    config = dataclasses.replace(tiled.default_config(params, target.info, "grad_weight"), block_k=4, block_c=3,
                                 tap_pair=True, tap_run=pairs)
    choices = {name: planning.Choice("tiled", config if name == "grad_weight" else None, "requested")
               for name in PASSES}
    plan = planning.Conv2DPlan(params, target, choices=choices)
    defines = plan._implementation("grad_weight")._pass_defines("grad_weight")
    if tiled.tap_pairs_apply(params):
        assert defines["TAP_PAIR"] == 1 and defines.get("TAP_RUN", 1) == min(pairs, (params.S + 1) // 2)
    else:
        assert "TAP_PAIR" not in defines
    inputs = check.random_inputs(case, dtype)
    result = check.compare_with_oracle("grad_weight", case, inputs, call_plan(plan, "grad_weight", inputs), dtype)
    assert result.passed, f"{params.describe()} with {pairs} pairs of taps on {device.summary()}: {result.message}"


@pytest.mark.parametrize("dtype", check.DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("tap_run", [2, 3, 7])
@pytest.mark.parametrize("case", [
    check.Case("5x5-valid-c1", (2, 1, 12, 21), (3, 1, 5, 5)),
    check.Case("3x3-p1-planes", (2, 3, 9, 9), (5, 3, 3, 3), padding=1),
    check.Case("3x3-d2-asympad", (2, 3, 11, 12), (4, 3, 3, 3), padding=((1, 2), (0, 3)), dilation=2),
    check.Case("3x3-depthwise", (2, 6, 9, 9), (6, 1, 3, 3), padding=1, groups=6),
    check.Case("1x5-row", (2, 4, 1, 37), (3, 4, 1, 5), padding=(0, 1)),
    # Two whole 16-lane vectors a row, the second one's later taps reaching into the right padding.
    check.Case("1x5-rightpad-rows", (2, 2, 3, 34), (3, 2, 1, 5), padding=((0, 0), (0, 2))),
    check.Case("3x3-s2-p1", (2, 3, 10, 9), (4, 3, 3, 3), stride=2, padding=1),
], ids=lambda case: case.name)
def test_weight_gradient_tap_runs(device, case, tap_run, dtype):
    """Runs of consecutive taps of a row per work-item (tap_run) on every device, whatever its own heuristic
    picks, in every dtype: on rows and on whole planes, runs that divide S and runs whose last one is partial or
    longer than S, dilation, asymmetric padding, groups; at stride 2 they do not apply and the taps run one by
    one."""
    if np.dtype(dtype) == np.float64 and not device.fp64:
        pytest.skip("float64 needs cl_khr_fp64, which this device lacks (tested in test_errors.py)")
    from clconv.algorithms import tiled

    params = case.params(dtype)
    target = platforms.resolve(device.device)
    config = dataclasses.replace(tiled.default_config(params, target.info, "grad_weight"), block_k=2, block_c=2,
                                 tap_pair=False, tap_run=tap_run)
    choices = {name: planning.Choice("tiled", config if name == "grad_weight" else None, "requested")
               for name in PASSES}
    plan = planning.Conv2DPlan(params, target, choices=choices)
    algorithm = plan._implementation("grad_weight")
    expected = min(tap_run, params.S) if params.stride[1] == 1 else 1
    assert algorithm._pass_defines("grad_weight").get("TAP_RUN", 1) == expected
    inputs = check.random_inputs(case, dtype)
    result = check.compare_with_oracle("grad_weight", case, inputs, call_plan(plan, "grad_weight", inputs), dtype)
    assert result.passed, f"{params.describe()} with runs of {tap_run} taps on {device.summary()}: {result.message}"


@pytest.mark.parametrize("dtype", check.DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("pass_name", ["forward", "grad_input"])
@pytest.mark.parametrize("case", [
    check.Case("3x3-s2-p1-c8", (2, 8, 9, 11), (8, 8, 3, 3), stride=2, padding=1),
    check.Case("5x5-valid-s2-c12", (2, 12, 13, 15), (9, 12, 5, 5), stride=2),
    check.Case("3x3-d2-asympad-c8", (1, 8, 7, 9), (9, 8, 3, 3), stride=2, padding=((2, 0), (1, 3)), dilation=2),
    check.Case("3x3-s2-g2-c16", (2, 16, 6, 6), (16, 8, 3, 3), stride=2, padding=1, groups=2),
    # Stride 3: every lane loaded on its own.
    check.Case("3x3-s3-c8", (2, 8, 10, 10), (8, 8, 3, 3), stride=3, padding=1),
], ids=lambda case: case.name)
def test_rows_with_the_channel_loop_inside_the_taps(device, case, pass_name, dtype):
    """Forward passes and input gradients on rows with 8 or more input channels per group (CHANNELS_INNER) on every
    device, in every dtype: strided rows whose edge vectors are masked, no padding, dilation with asymmetric
    padding, groups, a stride the vectors cannot load; small planes, whose first and last vectors start and end
    outside the buffer."""
    if np.dtype(dtype) == np.float64 and not device.fp64:
        pytest.skip("float64 needs cl_khr_fp64, which this device lacks (tested in test_errors.py)")
    params = case.params(dtype)
    plan = planning.Conv2DPlan(params, platforms.resolve(device.device), algo="tiled")
    assert plan._implementation(pass_name)._pass_defines(pass_name).get("CHANNELS_INNER") == 1
    inputs = check.random_inputs(case, dtype)
    result = check.compare_with_oracle(pass_name, case, inputs, call_plan(plan, pass_name, inputs), dtype)
    assert result.passed, f"{pass_name} {params.describe()} on {device.summary()}: {result.message}"


@pytest.mark.parametrize("dtype", check.DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("splits", ["whole-batch", "split-batch"])
@pytest.mark.parametrize("case", [
    check.Case("1x1-7x7", (3, 5, 7, 7), (7, 5, 1, 1)),
    check.Case("1x1-whole-vectors", (3, 4, 2, 4), (3, 4, 1, 1)),
    check.Case("1x1-5x3-g2", (4, 6, 5, 3), (4, 3, 1, 1), groups=2),
], ids=lambda case: case.name)
def test_weight_gradient_across_images(device, case, splits, dtype):
    """A pointwise weight gradient reading a channel's planes of consecutive images as one sequence
    (ACROSS_IMAGES) on every device, in every dtype: vectors that cross from one image into the next, planes
    of whole vectors, the last image's partial vector, groups, and a batch split into chunks (each
    chunk's last image ends its sequence)."""
    if np.dtype(dtype) == np.float64 and not device.fp64:
        pytest.skip("float64 needs cl_khr_fp64, which this device lacks (tested in test_errors.py)")
    from clconv.algorithms import tiled

    params = case.params(dtype)
    target = platforms.resolve(device.device)
    vec = min(8 if params.H * params.W > 8 else 4, tiled.widest_vector(params, target.info))
    config = dataclasses.replace(tiled.default_config(params, target.info, "grad_weight"), vec=vec, block_k=3,
                                 block_c=2, target_items=1 if splits == "whole-batch" else 10 ** 6)
    choices = {name: planning.Choice("tiled", config if name == "grad_weight" else None, "requested")
               for name in PASSES}
    plan = planning.Conv2DPlan(params, target, choices=choices)
    algorithm = plan._implementation("grad_weight")
    assert algorithm._pass_defines("grad_weight", flat_plane=True).get("ACROSS_IMAGES") == 1
    assert (algorithm.split("grad_weight")[1] > 1) == (splits == "split-batch")
    inputs = check.random_inputs(case, dtype)
    result = check.compare_with_oracle("grad_weight", case, inputs, call_plan(plan, "grad_weight", inputs), dtype)
    assert result.passed, f"{params.describe()} across images on {device.summary()}: {result.message}"


@pytest.mark.parametrize("dtype", check.DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("pass_name", ["forward", "grad_input"])
@pytest.mark.parametrize("case", [
    check.Case("1d-k3-s2-long", (2, 5, 1, 83), (6, 5, 1, 3), stride=(1, 2)),
    check.Case("3x3-s2-p1-rows", (2, 4, 9, 45), (5, 4, 3, 3), stride=2, padding=1),
    check.Case("3x3-d2-g4-rows", (1, 4, 6, 40), (8, 1, 3, 3), padding=((1, 2), (2, 1)), dilation=2, groups=4),
    check.Case("1x1-one-row", (2, 3, 1, 50), (7, 3, 1, 1)),
], ids=lambda case: case.name)
def test_row_tiles(device, case, pass_name, dtype):
    """Tiles whose vectors lie side by side along a row (along_row) on every device, whatever its own heuristic
    picks, in every dtype: several vectors per row with the last one partial, strides, padding, dilation,
    groups, one and several rows."""
    if np.dtype(dtype) == np.float64 and not device.fp64:
        pytest.skip("float64 needs cl_khr_fp64, which this device lacks (tested in test_errors.py)")
    from clconv.algorithms import tiled

    params = case.params(dtype)
    target = platforms.resolve(device.device)
    config = CorrelationConfig(vec=min(8, tiled.widest_vector(params, target.info)), block_k=3, block_v=3,
                               along_row=True)
    choices = {name: planning.Choice("tiled", config if name == pass_name else None, "requested")
               for name in PASSES}
    plan = planning.Conv2DPlan(params, target, choices=choices)
    algorithm = plan._implementation(pass_name)
    assert algorithm.configs[pass_name] == config
    assert not tiled.whole_planes(tiled.kernel_layer(params), pass_name)
    assert "ALONG_ROW" in algorithm._pass_defines(pass_name)
    inputs = check.random_inputs(case, dtype)
    result = check.compare_with_oracle(pass_name, case, inputs, call_plan(plan, pass_name, inputs), dtype)
    assert result.passed, f"{params.describe()} with row tiles on {device.summary()}: {result.message}"


def tiled_defines(kernel_launches) -> list:
    """The defines of the conv2d_tiled launches recorded."""
    return [defines for _, name, defines in kernel_launches if name == "conv2d_tiled"]


def without_and_with(monkeypatch, kernel_launches, rule: str, plan_for, pass_name: str, inputs) -> list:
    """A pass run on a new plan (``plan_for()``) with tiled.<rule> saying no, then yes: (result, defines of its
    conv2d_tiled launches) each."""
    from clconv.algorithms import tiled

    runs = []
    for pays in (False, True):
        kernel_launches.clear()
        monkeypatch.setattr(tiled, rule, lambda *args, pays=pays: pays)
        runs.append((call_plan(plan_for(), pass_name, inputs), tiled_defines(kernel_launches)))
    return runs


@pytest.mark.parametrize("dtype", check.DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("case, pass_name", [
    (check.Case("3x3-p1-14x14", (3, 8, 14, 14), (9, 8, 3, 3), padding=1), "forward"),
    (check.Case("3x3-p1-14x14", (3, 8, 14, 14), (9, 8, 3, 3), padding=1), "grad_input"),
    (check.Case("3x3-p1-5x5-7-images", (7, 9, 5, 5), (8, 9, 3, 3), padding=1), "forward"),
    (check.Case("3x3-p1-5x5-7-images", (7, 9, 5, 5), (8, 9, 3, 3), padding=1), "grad_input"),
    (check.Case("3x3-narrow-rows", (3, 8, 9, 7), (6, 8, 3, 3)), "forward"),
    (check.Case("3x3-p21-11-g2", (3, 16, 5, 4), (16, 8, 3, 3), padding=((2, 1), (1, 1)), groups=2), "forward"),
    (check.Case("3x3-p21-11-g2", (3, 16, 5, 4), (16, 8, 3, 3), padding=((2, 1), (1, 1)), groups=2), "grad_input"),
    (check.Case("3x3-d2-p2", (2, 8, 10, 10), (8, 8, 3, 3), padding=2, dilation=2), "grad_input"),
], ids=lambda value: value if isinstance(value, str) else value.name)
def test_whole_planes_across_images(monkeypatch, kernel_launches, device, case, pass_name, dtype):
    """Forward passes and input gradients on whole planes that run their images' grids as one sequence
    (ACROSS_IMAGES) on every device, in every dtype, wherever the rule would send them: vectors that cross from
    one image into the next, grids of fewer positions than a tile, the last image's partial tile, output rows
    narrower than the input's, a grid taller than the input (more padding than the kernel's reach), groups,
    dilation. The same bytes as one image at a time, and the oracle."""
    if np.dtype(dtype) == np.float64 and not device.fp64:
        pytest.skip("float64 needs cl_khr_fp64, which this device lacks (tested in test_errors.py)")
    params = case.params(dtype)
    target = platforms.resolve(device.device)
    inputs = check.random_inputs(case, dtype)
    (separate, one_image), (joined, launches) = without_and_with(
        monkeypatch, kernel_launches, "image_grids_joined_pay", lambda: planning.Conv2DPlan(params, target),
        pass_name, inputs)
    assert one_image and all("FLAT_PLANE" in defines and "ACROSS_IMAGES" not in defines for defines in one_image)
    assert launches and all(defines.get("ACROSS_IMAGES") == 1 for defines in launches)
    assert joined.tobytes() == separate.tobytes()
    result = check.compare_with_oracle(pass_name, case, inputs, joined, dtype)
    assert result.passed, f"{params.describe()} across images on {device.summary()}: {result.message}"


@pytest.mark.parametrize("images, side, joined_on_pocl", [
    pytest.param(4, 14, True, id="14x14-4-images"),  # 13 tiles of 64 lanes against 16
    pytest.param(8, 28, True, id="28x28-8-images"),  # 98 against 104
    pytest.param(3, 30, False, id="30x30-3-images"),  # 43 against 45: less than a twentieth saved
    pytest.param(4, 56, False, id="56x56-4-images"),  # whole tiles already
    pytest.param(1, 14, False, id="14x14-1-image"),
])
def test_image_grids_are_joined_where_that_saves_a_twentieth_of_the_tiles_on_pocl(device, images, side,
                                                                                  joined_on_pocl):
    """The rule for ACROSS_IMAGES: where joining the images' grids saves a twentieth of the tiles or more, on PoCL's
    CPU devices (measured faster there; 0.94-1.09x on Intel's runtime)."""
    from clconv.algorithms import tiled

    info = platforms.resolve(device.device).info
    config = CorrelationConfig(vec=16, block_k=6, block_v=4)
    joined = tiled.grids_across_images(info, images, side * side, 64 * side * side, config)
    assert joined == (joined_on_pocl and info.type == "CPU" and info.implementation == "pocl")


# Layers whose forward pass or input gradient fits WHOLE_ROWS (input rows as vectors, taps as rotations) in 8 lanes:
# planes of 7 columns (3x3, "same"), 6 columns with 5x5 taps and 30 rows (three tiles: a vector store that spills
# into the next row, the tile's last row lane by lane), 13 rows (tiles of 7 and 6: the last one partial), an
# unpadded layer (output rows narrower than the input's, one input channel, as unpadded forward passes with more run
# on whole planes; its input gradient the other way round), groups with more padding on one side, a plane of one row.
WHOLE_ROWS_CASES = (
    check.Case("dw-3x3-p1-7x7", (3, 6, 7, 7), (6, 1, 3, 3), padding=1, groups=6),
    check.Case("dw-5x5-p2-30x6", (2, 4, 30, 6), (4, 1, 5, 5), padding=2, groups=4),
    check.Case("dw-3x3-p1-13x7", (2, 4, 13, 7), (4, 1, 3, 3), padding=1, groups=4),
    check.Case("3x3-c1-k5-unpadded", (2, 1, 9, 7), (5, 1, 3, 3)),
    check.Case("3x3-g2-p20-21", (2, 4, 5, 6), (6, 2, 3, 3), padding=((2, 0), (2, 1)), groups=2),
    check.Case("dw-3x3-p1-1-row", (2, 4, 1, 7), (4, 1, 3, 3), padding=1, groups=4),
)


def whole_rows_against_rows(monkeypatch, kernel_launches, device, case, pass_name, dtype) -> list:
    """A pass on a tile of 8 lanes x 2 channels (channels past a group's repeat the last), first with the whole-rows
    rule saying no, then yes: the same bytes both ways (the same multiply-adds in the same order) and the oracle's.
    Returns, per conv2d_tiled launch with the rule saying yes, whether it ran WHOLE_ROWS."""
    if np.dtype(dtype) == np.float64 and not device.fp64:
        pytest.skip("float64 needs cl_khr_fp64, which this device lacks (tested in test_errors.py)")
    from clconv.algorithms import tiled

    params = case.params(dtype)
    target = platforms.resolve(device.device)
    if tiled.widest_vector(params, target.info) < 8:
        pytest.skip(f"{target.info.summary()} builds {np.dtype(dtype).name} vectors of at most "
                    f"{tiled.widest_vector(params, target.info)} lanes (vector_bits_limit); these rows need 8")
    inputs = check.random_inputs(case, dtype)
    tile = CorrelationConfig(vec=8, block_k=2, block_v=2, local=(1, 1, 1))
    choices = {name: planning.Choice("tiled", tile if name == pass_name else None, "requested") for name in PASSES}
    (rows, on_rows), (whole, launches) = without_and_with(
        monkeypatch, kernel_launches, "whole_rows_pay", lambda: planning.Conv2DPlan(params, target, choices=choices),
        pass_name, inputs)
    assert on_rows and not any(defines.get("WHOLE_ROWS") for defines in on_rows)
    assert whole.tobytes() == rows.tobytes()
    result = check.compare_with_oracle(pass_name, case, inputs, whole, dtype)
    assert result.passed, f"{params.describe()} on whole rows on {device.summary()}: {result.message}"
    return [defines.get("WHOLE_ROWS") == 1 for defines in launches]


@pytest.mark.parametrize("dtype", check.DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("pass_name", ["forward", "grad_input"])
@pytest.mark.parametrize("case", WHOLE_ROWS_CASES, ids=lambda case: case.name)
def test_whole_rows(monkeypatch, kernel_launches, device, case, pass_name, dtype):
    """Forward passes and input gradients with each input row as one vector (WHOLE_ROWS) on every device, in every
    dtype, wherever the rule would send them: the same bytes as the same tile on rows, and the oracle."""
    whole = whole_rows_against_rows(monkeypatch, kernel_launches, device, case, pass_name, dtype)
    assert whole and all(whole)


@pytest.mark.parametrize("dtype", check.DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("case, phases_on_whole_rows", [
    (check.Case("dw-3x3-s2-p1-14x14", (2, 4, 14, 14), (4, 1, 3, 3), padding=1, stride=2, groups=4), 4),
    (check.Case("dw-3x3-s2-p21-12x11", (2, 4, 12, 11), (4, 1, 3, 3), padding=((2, 1), (2, 1)), stride=2, groups=4), 4),
    (check.Case("dw-5x5-s2-p2-13x13", (2, 2, 13, 13), (2, 1, 5, 5), padding=2, stride=2, groups=2), 4),
], ids=lambda value: value.name if isinstance(value, check.Case) else f"{value}-of-4-phases")
def test_whole_rows_in_the_phases_of_a_strided_input_gradient(monkeypatch, kernel_launches, device, case,
                                                              phases_on_whole_rows, dtype):
    """A strided layer's input gradient runs one phase of input positions at a time, each a stride-1 correlation
    of grad_output with some of the taps, and stores each output column at a step of the stride (no spilling
    vector store): all four phases run on whole rows, those of a single tap on an axis (three of a 3x3 layer's four)
    too, also where that tap reads grad_output one column or row on (padding 2). The same bytes as on rows, and the
    oracle."""
    whole = whole_rows_against_rows(monkeypatch, kernel_launches, device, case, "grad_input", dtype)
    assert len(whole) == 4 and sum(whole) == phases_on_whole_rows, whole


@pytest.mark.parametrize("shape, pass_name, few_channels", [
    pytest.param(((2, 32, 14, 14), (32, 1, 3, 3), 1, 32, 1), "forward", True, id="dw-3x3-14x14-forward"),
    pytest.param(((2, 32, 14, 14), (32, 1, 3, 3), 1, 32, 1), "grad_input", True, id="dw-3x3-14x14-grad_input"),
    pytest.param(((2, 32, 7, 7), (32, 1, 3, 3), 1, 32, 1), "forward", True, id="dw-3x3-7x7-forward"),
    pytest.param(((2, 32, 14, 14), (64, 2, 5, 5), 2, 16, 1), "forward", True, id="g16-5x5-14x14-forward"),
    pytest.param(((2, 32, 7, 7), (64, 2, 5, 5), 2, 16, 1), "grad_input", True, id="g16-5x5-7x7-grad_input"),
    pytest.param(((2, 6, 14, 14), (16, 6, 5, 5), 0, 1, 1), "grad_input", False, id="lenet5-conv2-16-channels"),
    pytest.param(((2, 32, 16, 16), (32, 1, 3, 3), 1, 32, 1), "forward", True, id="dw-16-wide-rows"),
    pytest.param(((2, 32, 14, 14), (32, 1, 3, 3), 1, 32, 2), "forward", False, id="dw-stride-2"),
    pytest.param(((2, 32, 28, 28), (32, 1, 3, 3), 1, 32, 1), "forward", True, id="dw-28-wide-rows"),
])
def test_whole_rows_where_they_fit_a_vector_and_channels_are_few_on_cpus(kernel_launches, device, shape, pass_name,
                                                                         few_channels):
    """The rule for WHOLE_ROWS: CPUs, fewer than 8 input channels per group, stride 1 (``few_channels`` says whether
    a layer meets these two), and rows that every tap's rotation fits in the tile's vector: input columns and the
    left padding, output columns and the taps past it, each at most the vector's lanes (16, or 8 for rows of 7
    and on PyPI's PoCL 3.0 on Zen 4, in which no row of 14 fits)."""
    x_shape, w_shape, padding, groups, stride = shape
    params = clconv.Conv2DParams.create(x_shape, w_shape, padding=padding, groups=groups, stride=stride)
    target = platforms.resolve(device.device)
    plan = planning.Conv2DPlan(params, target)
    call_plan(plan, pass_name, check.layer_inputs(params))
    whole = [defines.get("WHOLE_ROWS") == 1 for defines in tiled_defines(kernel_launches)]
    vec = plan._implementation(pass_name).configs[pass_name].vec
    left = params.padding[2]
    fits = max(params.W + left, params.Q + params.S - 1 - left) <= vec
    expected = few_channels and target.info.type == "CPU" and fits
    assert (bool(whole) and all(whole)) == expected, f"{pass_name} of {params.describe()} at {vec} lanes: {whole}"


# A layer whose inputs the next tests hand over off a 64-byte boundary, by whole elements or by a byte.
UNALIGNED_CASE = check.Case("3x3-p1-c5-k6", (2, 5, 9, 8), (6, 5, 3, 3), padding=1)


@pytest.fixture
def needs_64_byte_alignment(monkeypatch, device):
    """Every device that computes in host memory asks NumPy inputs for a 64-byte alignment, as Intel's CPU runtime
    asks for 4096; a device with memory of its own is skipped."""
    if not device.host_memory:
        pytest.skip(f"{device.summary()} has memory of its own: NumPy inputs are uploaded, not used in place")
    monkeypatch.setattr(platforms.DeviceInfo, "host_pointer_alignment", property(lambda self: 64))


def misaligned(array: np.ndarray) -> np.ndarray:
    """A copy one byte past a 64-byte boundary: off it by a fraction of an element, so that no buffer can start on
    the boundary and read the copy's elements at a whole offset."""
    raw = arrays.aligned_empty((array.nbytes + 1,), np.uint8, 64)[1:]
    moved = raw.view(array.dtype).reshape(array.shape)
    moved[...] = array
    return moved


@pytest.mark.parametrize("dtype", check.DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("pass_name", PASSES)
def test_numpy_inputs_off_the_alignment_by_whole_elements_are_read_in_place(monkeypatch, needs_64_byte_alignment,
                                                                           device, pass_name, dtype):
    """An input whose address lies whole elements past the alignment boundary the device needs (the bias too) is read
    in place, through a read-only buffer that starts on the boundary, the input at an offset, and ends on the 64-byte
    line after the input: no copy of it is made, and every pass gives the bytes it gives on aligned inputs."""
    if np.dtype(dtype) == np.float64 and not device.fp64:
        pytest.skip("float64 needs cl_khr_fp64, which this device lacks (tested in test_errors.py)")
    case = UNALIGNED_CASE
    plan = clconv.plan(case.input_shape, case.weight_shape, device=device.device, dtype=dtype, **case.conv_args)
    names = {"forward": ("x", "weight", "bias"), "grad_input": ("grad_output", "weight"),
             "grad_weight": ("x", "grad_output"), "grad_bias": ("grad_output",)}[pass_name]
    inputs = check.random_inputs(case, dtype)
    itemsize = np.dtype(dtype).itemsize
    expected = getattr(plan, pass_name)(*(arrays.aligned_copy(inputs[name], 64) for name in names))
    wrapped = {}
    original_wrap = arrays.CallArrays._wrap_input

    def recorded_wrap(self, name, host):
        wrapped[name] = (host.ctypes.data, host.nbytes, original_wrap(self, name, host))
        return wrapped[name][2]

    monkeypatch.setattr(arrays.CallArrays, "_wrap_input", recorded_wrap)
    monkeypatch.setattr(arrays, "aligned_copy", lambda *args: pytest.fail("an aligned copy of an input"))
    monkeypatch.setattr(arrays.ConversionSession, "host_copy", lambda *args: pytest.fail("a kept copy of an input"))
    for elements in (1, 3, 15):
        shifted = {}
        for name in names:
            memory = arrays.aligned_empty((inputs[name].size + elements,), dtype, 64)[elements:]
            shifted[name] = memory.reshape(inputs[name].shape)
            shifted[name][...] = inputs[name]
        got = getattr(plan, pass_name)(*(shifted[name] for name in names))
        assert got.tobytes() == expected.tobytes(), elements
        for name in names:
            address, nbytes, tensor = wrapped[name]
            start = tensor.buffer.get_host_array((tensor.buffer.size,), np.uint8).ctypes.data
            assert start % 64 == 0 and tensor.offset == (elements * itemsize) % 64 // itemsize, name
            assert start == address - tensor.offset * itemsize, name
            assert start + tensor.buffer.size == -(-(address + nbytes) // 64) * 64, name


@pytest.mark.parametrize("pass_name", PASSES)
def test_unaligned_numpy_inputs_are_copied_into_memory_the_plan_keeps(monkeypatch, needs_64_byte_alignment,
                                                                       copies_kept, device, pass_name):
    """Where a device computing in host memory needs an alignment that a NumPy input misses by a fraction of an element
    (4096 bytes on Intel's CPU
    runtime; 64 here on every such device), the aligned copy goes into host memory the plan keeps from call to call
    (a fresh copy each call cost Intel's runtime more than the copy itself): each call gets its own inputs' bytes,
    from one thread or from four at once, and a copy for which the device's kept memory has no room gets fresh
    memory."""
    case = UNALIGNED_CASE
    plan = clconv.plan(case.input_shape, case.weight_shape, device=device.device, **case.conv_args)
    names = {"forward": ("x", "weight"), "grad_input": ("grad_output", "weight"),
             "grad_weight": ("x", "grad_output"), "grad_bias": ("grad_output",)}[pass_name]
    inputs = [check.random_inputs(case, np.float32, seed) for seed in range(4)]

    def run(index, layout=misaligned):
        return getattr(plan, pass_name)(*(layout(inputs[index][name]) for name in names)).tobytes()

    aligned = [run(index, lambda array: arrays.aligned_copy(array, 64)) for index in range(len(inputs))]
    assert not plan._conversions._host_copies
    original_init = arrays.CallArrays.__init__

    def kernels_start_late(self, target, *args, **kwargs):
        """A call whose kernels wait 5 ms for an event: time for another thread to rewrite the kept copies they read
        unless it waits for them."""
        original_init(self, target, *args, **kwargs)
        start = cl.UserEvent(target.context)
        threading.Timer(0.005, start.set_status, (cl.command_execution_status.COMPLETE,)).start()
        self.wait_for.append(start)

    monkeypatch.setattr(arrays.CallArrays, "__init__", kernels_start_late)
    copies_kept(plan, "_host_copies", names, run, aligned)


def test_the_plans_of_a_device_keep_their_copies_within_one_limit(monkeypatch, needs_64_byte_alignment, device):
    """The aligned copies every plan of a device keeps count against one limit (arrays.KeptMemory): a plan that
    finds no room copies into fresh memory each call, with the same result, and a plan's copies stop counting when
    the plan is gone."""
    case = UNALIGNED_CASE
    inputs = check.random_inputs(case, np.float32)
    x, weight = misaligned(inputs["x"]), misaligned(inputs["weight"])
    copy_bytes = inputs["x"].nbytes + inputs["weight"].nbytes
    kept = arrays.KeptMemory(copy_bytes)
    monkeypatch.setattr(arrays, "kept_memory", lambda info, share: kept)
    target = platforms.resolve(device.device)
    first, second = (planning.Conv2DPlan(case.params(np.float32), target) for _ in range(2))
    expected = first.forward(inputs["x"], inputs["weight"])
    assert first.forward(x, weight).tobytes() == expected.tobytes()
    assert set(first._conversions._host_copies) == {"x", "weight"} and kept.held_bytes == copy_bytes
    assert second.forward(x, weight).tobytes() == expected.tobytes()
    assert not second._conversions._host_copies
    del first
    gc.collect()
    assert kept.held_bytes == 0
    assert second.forward(x, weight).tobytes() == expected.tobytes()
    assert set(second._conversions._host_copies) == {"x", "weight"} and kept.held_bytes == copy_bytes


def test_kept_memory_counts_the_copies_that_exist():
    """A plan's kept copies count against its device's KeptMemory once each: a copy that grows counts its new
    size, one that finds no room or whose allocation fails counts nothing, and all are given back with the plan."""
    kept = arrays.KeptMemory(1000)
    buffers = arrays.ConversionBuffers(platforms.resolve(None).context, kept)

    def out_of_memory(*args):
        raise MemoryError("no host memory left")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(arrays, "aligned_empty", out_of_memory)
        with pytest.raises(MemoryError):
            buffers._host_entry("x", 100, 64)
    assert kept.held_bytes == 0
    assert buffers._host_entry("x", 100, 64) is not None and kept.held_bytes == 100
    assert buffers._host_entry("x", 300, 64)[0].nbytes >= 300 and kept.held_bytes == 300
    assert buffers._entry("weight", 600) is not None and kept.held_bytes == 900
    assert buffers._host_entry("grad_output", 200, 64) is None and kept.held_bytes == 900
    del buffers
    gc.collect()
    assert kept.held_bytes == 0


def _cpu(name: str, platform_name: str, lanes: int = 16, device_version: str = "OpenCL 3.0"):
    return dataclasses.replace(clconv.devices()[0], type="CPU", name=name, platform_name=platform_name,
                               native_float_lanes=lanes, device_version=device_version)


def test_cpu_tiles_follow_cpu_maker_and_implementation():
    """Zen 4 tiles only where they were measured: 512-bit vectors on an AMD CPU; the Xeon's everywhere else."""
    from clconv.algorithms import tiled

    pocl = "Portable Computing Language"
    assert tiled.cpu_tiles(_cpu("pthread-skylake-avx512-AMD EPYC 9R14", pocl)) == tiled.ZEN4_POCL_TILES
    assert tiled.cpu_tiles(_cpu("AMD EPYC 9R14", "Intel(R) OpenCL")) == tiled.ZEN4_INTEL_TILES
    assert tiled.cpu_tiles(_cpu("pthread-skylake-avx512-Intel(R) Xeon(R) Platinum", pocl)) == tiled.XEON_TILES
    assert tiled.cpu_tiles(_cpu("AMD Ryzen 7 3700X", pocl, lanes=8)) == tiled.XEON_TILES  # AVX2 only
    capped = _cpu("pthread-AMD EPYC", pocl,
                  device_version="OpenCL 3.0 PoCL HSTR: pthread-x86_64-unknown-linux-gnu-znver3")
    assert capped.vector_bits_limit == 256 and tiled.cpu_tiles(capped) == tiled.XEON_TILES

    # The tiles along the planes (padded dense layers default to the lanes:
    # test_padded_dense_layers_run_with_the_channels_they_write_in_the_lanes_on_cpus).
    layer = clconv.Conv2DParams.create((4, 64, 56, 56), (64, 64, 3, 3), padding=1)
    zen = tiled.default_config(layer, _cpu("pthread-skylake-avx512-AMD EPYC", pocl), "forward", channel_lanes=False)
    xeon = tiled.default_config(layer, _cpu("pthread-skylake-avx512-Intel(R) Xeon(R)", pocl), "forward",
                                channel_lanes=False)
    assert (zen.block_k, zen.block_v) == (6, 4) and (xeon.block_k, xeon.block_v) == (14, 2)
    # Intel's runtime on AMD: 8 channels x 2 vectors on whole planes of at most 256 positions (7 x 7: two tiles of 2
    # vectors, 16 x 16: 8 tiles), 8 x 3 on larger ones, and where 2-vector tiles would compute more vectors than the
    # plane's own tile (6 x 6: 3 vectors, one tile of 3; 4 x 4: one vector, 14 x 1); PoCL keeps 6 x 4 on its planes of
    # 4 vectors or more.
    intel_amd, pocl_amd = _cpu("AMD EPYC 9R14", "Intel(R) OpenCL"), _cpu("pthread-skylake-avx512-AMD EPYC", pocl)
    for plane, intel_tile in ((4, (14, 1)), (6, (8, 3)), (7, (8, 2)), (10, (8, 2)), (16, (8, 2)), (17, (8, 3)),
                              (56, (8, 3))):
        square = clconv.Conv2DParams.create((4, 64, plane, plane), (64, 64, 3, 3), padding=1)
        for pass_name in ("forward", "grad_input"):
            intel = tiled.default_config(square, intel_amd, pass_name, channel_lanes=False)
            pocl_zen = tiled.default_config(square, pocl_amd, pass_name, channel_lanes=False)
            assert (intel.block_k, intel.block_v) == intel_tile, (plane, pass_name)
            assert plane < 7 or (pocl_zen.block_k, pocl_zen.block_v) == (6, 4), (plane, pass_name)
    # The weight gradient's tiles along the positions (with the output channels in the lanes see
    # test_weight_gradients_run_with_the_output_channels_in_the_lanes_on_cpus).
    zen_weight = tiled.default_config(layer, _cpu("pthread-skylake-avx512-AMD EPYC", pocl), "grad_weight",
                                      channel_lanes=False)
    assert zen_weight.block_k * zen_weight.block_c == tiled.ZEN4_POCL_TILES.grad_weight_accumulators
    assert not zen_weight.tap_pair
    # Two pairs of taps per work-item at stride 2 only (3 taps: 0-1 and 2), on every CPU, each in its own tile.
    strided = clconv.Conv2DParams.create((4, 64, 56, 56), (128, 64, 3, 3), stride=2, padding=1)
    for cpu, tiles in ((_cpu("pthread-skylake-avx512-AMD EPYC", pocl), tiled.ZEN4_POCL_TILES),
                       (_cpu("AMD EPYC 9R14", "Intel(R) OpenCL"), tiled.ZEN4_INTEL_TILES),
                       (_cpu("pthread-skylake-avx512-Intel(R) Xeon(R)", pocl), tiled.XEON_TILES)):
        paired = tiled.default_config(strided, cpu, "grad_weight", channel_lanes=False)
        assert paired.tap_pair and paired.tap_run == 2 and paired.block_c == 3
        assert paired.block_k * paired.block_c * paired.tap_run == tiles.grad_weight_pair_accumulators
    # Runs of taps on every CPU where one or two input channels per group would leave the tile nearly empty.
    one_channel = clconv.Conv2DParams.create((64, 1, 32, 32), (6, 1, 5, 5))
    depthwise_7x7 = clconv.Conv2DParams.create((4, 32, 28, 28), (32, 1, 7, 7), padding=3, groups=32)
    for cpu in (_cpu("pthread-skylake-avx512-AMD EPYC", pocl), _cpu("AMD EPYC 9R14", "Intel(R) OpenCL"),
                _cpu("pthread-skylake-avx512-Intel(R) Xeon(R)", pocl)):
        assert tiled.default_config(one_channel, cpu, "grad_weight").tap_run == 5
        assert tiled.default_config(depthwise_7x7, cpu, "grad_weight").tap_run == 4  # 7 taps: 4 + 3
        assert tiled.default_config(layer, cpu, "grad_weight", channel_lanes=False).tap_run == 1


def test_ungrouped_pointwise_layers_run_as_matrix_products_on_cpus():
    """The forward pass and input gradient of 1x1 stride-1 unpadded ungrouped layers (1-D ones too) default to
    cl/pointwise_product.cl on CPUs, each CPU with its tile; grouped, strided or padded 1x1 layers, weight
    gradients and GPUs keep the tiled kernels; the tuner tries both."""
    from clconv.algorithms import tiled

    pocl = "Portable Computing Language"
    pointwise = clconv.Conv2DParams.create((4, 64, 14, 14), (256, 64, 1, 1))
    for cpu, tile in ((_cpu("pthread-skylake-avx512-AMD EPYC", pocl), (4, 4)),
                      (_cpu("AMD EPYC 9R14", "Intel(R) OpenCL"), (8, 2)),
                      (_cpu("pthread-skylake-avx512-Intel(R) Xeon(R)", pocl), (8, 2)),
                      (_cpu("AMD Ryzen 7 3700X", pocl, lanes=8), (4, 3)),
                      (_cpu("pthread-AMD EPYC", pocl,
                            device_version="OpenCL 3.0 PoCL HSTR: pthread-x86_64-unknown-linux-gnu-znver3"), (4, 3))):
        for pass_name in ("forward", "grad_input"):
            config = tiled.default_config(pointwise, cpu, pass_name)
            assert config.matrix_product and (config.block_k, config.block_v) == tile, (cpu.name, pass_name)
        assert not hasattr(tiled.default_config(pointwise, cpu, "grad_weight"), "matrix_product")
    cpu = _cpu("AMD EPYC 9R14", "Intel(R) OpenCL")
    for other in (clconv.Conv2DParams.create((4, 64, 14, 14), (256, 32, 1, 1), groups=2),
                  clconv.Conv2DParams.create((4, 64, 14, 14), (256, 64, 1, 1), stride=2),
                  clconv.Conv2DParams.create((4, 64, 14, 14), (256, 64, 1, 1), padding=1),
                  clconv.Conv2DParams.create((4, 64, 14, 14), (256, 64, 3, 3), padding=1)):
        assert not tiled.default_config(other, cpu, "forward").matrix_product, other.describe()
    assert tiled.default_config(clconv.Conv2DParams.create((4, 64, 1, 100), (32, 64, 1, 1)), cpu,
                                "forward").matrix_product
    # PoCL on Zen 5: 8 x 2 on planes of at most 256 positions (pointwise's 14x14), 4 x 4 on larger ones.
    zen5 = dataclasses.replace(_cpu("pthread-skylake-avx512-AMD EPYC", pocl), cpu_family=26)
    large = clconv.Conv2DParams.create((4, 64, 56, 56), (256, 64, 1, 1))
    for layer, tile in ((pointwise, (8, 2)), (large, (4, 4))):
        config = tiled.default_config(layer, zen5, "forward")
        assert config.matrix_product and (config.block_k, config.block_v) == tile, layer.describe()
    zen5_intel = dataclasses.replace(_cpu("AMD EPYC 9R14", "Intel(R) OpenCL"), cpu_family=26)
    assert tiled.cpu_tiles(zen5_intel) == tiled.ZEN4_INTEL_TILES
    # And its weight gradients in tiles of 4 x 4 channels, where Zen 4's are 4 x 6.
    three_by_three = clconv.Conv2DParams.create((4, 64, 14, 14), (64, 64, 3, 3), padding=1)
    for info, tile in ((zen5, (4, 4)), (_cpu("pthread-skylake-avx512-AMD EPYC", pocl), (4, 6))):
        config = tiled.default_config(three_by_three, info, "grad_weight", channel_lanes=False)
        assert (config.block_k, config.block_c) == tile, info.cpu_family
    gpu = dataclasses.replace(cpu, type="GPU")
    assert not tiled.default_config(pointwise, gpu, "forward").matrix_product
    candidates = tiled.candidate_configs(pointwise, cpu, "forward")
    assert any(c.matrix_product for c in candidates) and any(not c.matrix_product for c in candidates)


def test_weight_gradients_run_with_the_output_channels_in_the_lanes_on_cpus():
    """On CPUs with 16-lane vectors the weight gradient defaults to cl/conv2d_grad_weight_channel_lanes.cl where
    each group's output channels fill whole vectors, with 4 input channels per group or more, and more than one tap,
    a small plane or a group's output channels in one block of the tile; PoCL's tables take 4 vectors x 6
    channels, Intel's runtime on AMD 2 x 14, a layer with fewer vectors more channels. Layers it does not apply
    to or pay on, fp16 on PoCL, narrower CPUs, GPUs and a workspace cap below grad_output's copy keep the tiles
    along the positions; the tuner tries both."""
    from clconv.algorithms import tiled

    pocl = "Portable Computing Language"
    zen_pocl, zen_intel = _cpu("pthread-skylake-avx512-AMD EPYC", pocl), _cpu("AMD EPYC 9R14", "Intel(R) OpenCL")
    xeon = _cpu("pthread-skylake-avx512-Intel(R) Xeon(R)", pocl)
    layers_tiles = (
        (clconv.Conv2DParams.create((4, 64, 56, 56), (64, 64, 3, 3), padding=1), (4, 6), (2, 14)),
        (clconv.Conv2DParams.create((4, 64, 56, 56), (128, 64, 3, 3), stride=2, padding=1), (4, 6), (2, 14)),
        (clconv.Conv2DParams.create((4, 512, 7, 7), (2048, 512, 1, 1)), (4, 6), (2, 14)),  # a small plane
        (clconv.Conv2DParams.create((4, 64, 56, 56), (32, 64, 1, 1)), (2, 8), (2, 14)),  # one block of channels
        (clconv.Conv2DParams.create((64, 6, 14, 14), (16, 6, 5, 5)), (1, 6), (1, 6)),  # LeNet-5 conv2: one vector
        (clconv.Conv2DParams.create((4, 64, 28, 28), (32, 64, 3, 3), padding=1), (2, 8), (2, 14)),
        # One vector per group: 16 channels in blocks of 8 (one block of 14 or 28 would pad 12).
        (clconv.Conv2DParams.create((4, 64, 28, 28), (64, 16, 3, 3), padding=1, groups=4), (1, 8), (1, 8)))
    for layer, pocl_tile, intel_tile in layers_tiles:
        for cpu, tile in ((zen_pocl, pocl_tile), (xeon, pocl_tile), (zen_intel, intel_tile)):
            config = tiled.default_config(layer, cpu, "grad_weight")
            assert config.channel_lanes and config.vec == 16, (layer.describe(), cpu.name)
            assert (config.block_k, config.block_c) == tile, (layer.describe(), cpu.name)
            assert not tiled.default_config(layer, cpu, "grad_weight", channel_lanes=False).channel_lanes
    for other in (clconv.Conv2DParams.create((4, 3, 224, 224), (64, 3, 7, 7), stride=2, padding=3),  # RGB
                  clconv.Conv2DParams.create((4, 64, 56, 56), (256, 64, 1, 1)),  # 1x1, large plane, 256 channels
                  clconv.Conv2DParams.create((4, 64, 56, 56), (128, 64, 1, 1)),  # 1x1, large plane, 2 blocks
                  clconv.Conv2DParams.create((4, 64, 28, 28), (24, 64, 3, 3), padding=1),  # off the vector
                  clconv.Conv2DParams.create((4, 64, 28, 28), (64, 8, 3, 3), padding=1, groups=8),  # 8 per group
                  clconv.Conv2DParams.create((4, 32, 28, 28), (32, 1, 3, 3), padding=1, groups=32)):  # depthwise
        assert not tiled.default_config(other, zen_pocl, "grad_weight").channel_lanes, other.describe()
    dense = layers_tiles[0][0]
    half = dataclasses.replace(dense, dtype=np.dtype(np.float16))
    assert not tiled.default_config(half, zen_pocl, "grad_weight").channel_lanes  # measured slower there
    assert tiled.default_config(half, zen_intel, "grad_weight").channel_lanes
    for narrow in (_cpu("AMD Ryzen 7 3700X", pocl, lanes=8), dataclasses.replace(zen_intel, type="GPU"),
                   _cpu("pthread-AMD EPYC", pocl,
                        device_version="OpenCL 3.0 PoCL HSTR: pthread-x86_64-unknown-linux-gnu-znver3")):
        assert not tiled.default_config(dense, narrow, "grad_weight").channel_lanes, narrow.name
    candidates = tiled.candidate_configs(dense, zen_pocl, "grad_weight")
    assert any(c.channel_lanes for c in candidates) and any(not c.channel_lanes for c in candidates)
    target = platforms.resolve(next(d for d in clconv.devices() if d.type == "CPU").device)
    copy_bytes = math.prod(dense.output_shape) * 4
    assert tiled.TiledAlgorithm(dense, target).workspace_bytes("grad_weight") in (0, copy_bytes)
    capped = tiled.TiledAlgorithm(dense, target, max_workspace_bytes=copy_bytes - 1)
    assert not capped.configs["grad_weight"].channel_lanes and capped.workspace_bytes("grad_weight") == 0
    # Nor does a copy beyond an eighth of the device's memory, cap or none.
    small_memory = dataclasses.replace(target.info, global_mem_bytes=8 * copy_bytes - 1)
    assert not tiled.TiledAlgorithm(dense, dataclasses.replace(target, info=small_memory)).configs[
        "grad_weight"].channel_lanes
    # A tuned tile with the output channels in the lanes that does not fit a plan's cap runs along the positions.
    tuned = tiled.GradWeightConfig(vec=16, block_k=4, block_c=6, channel_lanes=True)
    assert tiled.TiledAlgorithm(dense, target, {"grad_weight": tuned}, copy_bytes - 1).workspace_bytes(
        "grad_weight") == 0


@pytest.mark.parametrize("dtype", check.DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("lanes, rows, vectors", [(16, 4, 3), (16, 8, 2), (16, 16, 1), (4, 4, 4)],
                         ids=lambda value: str(value))
def test_matrix_product_tiles(device, lanes, rows, vectors, dtype):
    """cl/pointwise_product.cl on channels-first tensors with every tile shape (16 lanes: the device's widest, if
    narrower), whatever the device's heuristic picks: output channels and plane positions off the tile (a plane
    of 35, 19 and 7 channels), the forward pass with its bias and the input gradient with one (a transposed
    convolution's forward pass)."""
    if np.dtype(dtype) == np.float64 and not device.fp64:
        pytest.skip("float64 needs cl_khr_fp64, which this device lacks (tested in test_errors.py)")
    from clconv.algorithms import tiled

    case = check.Case("1x1-c19-k7-5x7", (3, 19, 5, 7), (7, 19, 1, 1))
    params = case.params(dtype)
    vec = min(lanes, tiled.widest_vector(params, device))
    tile = (rows, vectors)
    config = CorrelationConfig(vec=vec, block_k=rows, block_v=vectors, local=(8, 1, 1), matrix_product=True)
    choices = {name: planning.Choice("tiled", config if name in ("forward", "grad_input") else None, "requested")
               for name in PASSES}
    plan = planning.Conv2DPlan(params, platforms.resolve(device.device), choices=choices)
    inputs = check.random_inputs(case, dtype)
    launched = []
    implementation = plan._implementation("forward")
    original = implementation.launch
    implementation.launch = lambda name, *args: launched.append(name) or original(name, *args)
    result = check.compare_with_oracle("forward", case, inputs, call_plan(plan, "forward", inputs), dtype)
    assert result.passed, f"forward with tile {tile} x {vec} lanes: {result.message}"
    assert launched == ["pointwise_product"]
    transposed = check.TransposedCase("1x1-t-c7-k19", (3, 7, 5, 7), (7, 19, 1, 1))
    t_inputs = check.random_inputs(transposed, dtype)
    got = plan.grad_input(t_inputs["x"], t_inputs["weight"].reshape(params.weight_shape), bias=t_inputs["bias"])
    result = check.compare_with_oracle("forward", transposed, t_inputs, got, dtype)
    assert result.passed, f"input gradient with a bias, tile {tile} x {vec} lanes: {result.message}"


def test_depthwise_tiles_run_in_work_groups_of_one_on_cpus():
    """A CPU tile of one output channel (a depthwise layer's forward pass and input gradient) has work-groups of
    one work-item; tiles of several channels keep groups of 4."""
    from clconv.algorithms import tiled

    depthwise = clconv.Conv2DParams.create((64, 576, 14, 14), (576, 1, 3, 3), padding=1, groups=576)
    dense = clconv.Conv2DParams.create((8, 64, 14, 14), (64, 64, 3, 3), padding=1)
    for cpu in (_cpu("pthread-skylake-avx512-AMD EPYC", "Portable Computing Language"),
                _cpu("AMD EPYC 9R14", "Intel(R) OpenCL")):
        for pass_name in ("forward", "grad_input"):
            config = tiled.default_config(depthwise, cpu, pass_name)
            assert (config.block_k, config.local) == (1, (1, 1, 1)), (cpu.name, pass_name)
            config = tiled.default_config(dense, cpu, pass_name, channel_lanes=False)
            assert config.local == (1, 1, 4), (cpu.name, pass_name)


def test_narrow_unpadded_rows_run_with_the_output_channels_in_the_lanes_on_cpus():
    """LeNet-5 conv2's forward pass (6 -> 16 channels, 14 -> 10 columns) defaults to cl/conv2d_channel_lanes.cl on
    every CPU table, its 10 columns in one block, and so do strided layers of several taps, in 4 vectors x 6
    columns; its input gradient, layers it does not apply to (output channels off the vector) or does not pay on
    (one input channel, rows that lose few lanes, padding, dilation or groups at stride 1, a strided 1x1 layer) and
    GPUs keep the other tiles; the tuner tries both, and a workspace cap below the weight's copy or blocks of
    columns wider than the rows keep it out."""
    from clconv.algorithms import tiled

    pocl = "Portable Computing Language"
    lenet2 = clconv.Conv2DParams.create((64, 6, 14, 14), (16, 6, 5, 5))
    capped = _cpu("pthread-AMD EPYC", pocl,
                  device_version="OpenCL 3.0 PoCL HSTR: pthread-x86_64-unknown-linux-gnu-znver3")
    for cpu, lanes in ((_cpu("pthread-skylake-avx512-AMD EPYC", pocl), 16),
                       (_cpu("AMD EPYC 9R14", "Intel(R) OpenCL"), 16),
                       (_cpu("pthread-skylake-avx512-Intel(R) Xeon(R)", pocl), 16), (capped, 8)):
        config = tiled.default_config(lenet2, cpu, "forward")
        assert config.channel_lanes and (config.vec, config.block_v) == (lanes, 10), cpu.name
        assert not tiled.default_config(lenet2, cpu, "forward", channel_lanes=False).channel_lanes
        assert not getattr(tiled.default_config(lenet2, cpu, "grad_input"), "channel_lanes", False)
    cpu = _cpu("AMD EPYC 9R14", "Intel(R) OpenCL")
    for other in (clconv.Conv2DParams.create((64, 1, 32, 32), (16, 1, 5, 5)),  # one input channel
                  clconv.Conv2DParams.create((64, 6, 14, 14), (12, 6, 5, 5)),  # 12 output channels
                  clconv.Conv2DParams.create((64, 6, 14, 14), (16, 6, 5, 5), padding=1),
                  clconv.Conv2DParams.create((64, 6, 14, 14), (16, 6, 5, 5), dilation=2),
                  clconv.Conv2DParams.create((64, 6, 14, 14), (16, 3, 5, 5), groups=2),
                  clconv.Conv2DParams.create((4, 64, 56, 56), (128, 64, 1, 1), stride=2),
                  clconv.Conv2DParams.create((4, 64, 56, 56), (24, 64, 3, 3), stride=2, padding=1),
                  clconv.Conv2DParams.create((16, 32, 16, 16), (64, 32, 3, 3))):  # 14 of 16 columns
        assert not tiled.default_config(other, cpu, "forward").channel_lanes, other.describe()
    for strided, tile in ((clconv.Conv2DParams.create((4, 64, 56, 56), (128, 64, 3, 3), stride=2, padding=1), (4, 6)),
                          (clconv.Conv2DParams.create((4, 3, 224, 224), (64, 3, 7, 7), stride=2, padding=3), (4, 6)),
                          (clconv.Conv2DParams.create((4, 16, 28, 28), (32, 8, 3, 3), stride=2, padding=1, groups=2),
                           (1, 14))):  # one vector per group: the rest of the tile in columns
        config = tiled.default_config(strided, cpu, "forward")
        assert config.channel_lanes and (config.block_k, config.block_v) == tile, strided.describe()
    assert not tiled.default_config(lenet2, dataclasses.replace(cpu, type="GPU"), "forward").channel_lanes
    candidates = tiled.candidate_configs(lenet2, cpu, "forward")
    assert any(c.channel_lanes for c in candidates) and any(not c.channel_lanes for c in candidates)
    assert tiled.channel_lanes_columns(10, 24) == 10 and tiled.channel_lanes_columns(28, 24) == 14
    target = platforms.resolve(clconv.devices()[0].device)
    weight_bytes = 16 * 6 * 5 * 5 * 4
    assert tiled.TiledAlgorithm(lenet2, target).workspace_bytes("forward") in (0, weight_bytes)
    assert tiled.TiledAlgorithm(lenet2, target, max_workspace_bytes=weight_bytes - 1).workspace_bytes("forward") == 0
    # A tile whose blocks of columns are wider than the output rows (10 columns) runs the other tiles.
    wide = CorrelationConfig(vec=16, block_k=1, block_v=11, local=(1, 1, 1), channel_lanes=True)
    assert not tiled.TiledAlgorithm(lenet2, target, {"forward": wide})._runs_channel_lanes("forward")


def test_padded_dense_layers_run_with_the_channels_they_write_in_the_lanes_on_cpus():
    """A padded stride-1 ungrouped layer of several taps, 16 channels or more summed and two vectors or more of the
    channels written runs its forward pass (cl/conv2d_channel_lanes.cl) and input gradient
    (cl/conv2d_grad_input_channel_lanes.cl) with those channels in the lanes on every CPU table, in 2 vectors x 7
    columns (a row in as few equal blocks of at most 7 as cover it) with the row compiled in, fp16 the forward pass
    only; fp64, fewer channels, groups, dilation and GPUs keep the other tiles."""
    from clconv.algorithms import tiled

    pocl = "Portable Computing Language"
    capped = _cpu("pthread-AMD EPYC", pocl,
                  device_version="OpenCL 3.0 PoCL HSTR: pthread-x86_64-unknown-linux-gnu-znver3")
    for cpu, lanes in ((_cpu("pthread-skylake-avx512-AMD EPYC", pocl), 16),
                       (_cpu("AMD EPYC 9R14", "Intel(R) OpenCL"), 16),
                       (_cpu("pthread-skylake-avx512-Intel(R) Xeon(R)", pocl), 16), (capped, 8)):
        for shape, columns in (((8, 64, 56, 56), 7), ((8, 256, 14, 14), 7), ((8, 512, 7, 7), 7),
                               ((8, 64, 13, 13), 7), ((8, 32, 6, 6), 6)):
            dense = clconv.Conv2DParams.create(shape, (64, shape[1], 3, 3), padding=1)
            half = clconv.Conv2DParams.create(shape, (64, shape[1], 3, 3), padding=1, dtype=np.float16)
            assert tiled.default_config(half, cpu, "forward").channel_lanes
            assert not getattr(tiled.default_config(half, cpu, "grad_input"), "channel_lanes", False)
            for pass_name in ("forward", "grad_input"):
                config = tiled.default_config(dense, cpu, pass_name)
                assert config.channel_lanes and (config.vec, config.block_k, config.block_v) == (lanes, 2, columns), (
                    cpu.name, dense.describe(), pass_name)
                assert tiled.fixed_row_defines(dense, config, pass_name)["FIXED_ROW"] == 1
                assert not tiled.default_config(dense, cpu, pass_name, channel_lanes=False).channel_lanes
    cpu = _cpu("AMD EPYC 9R14", "Intel(R) OpenCL")
    for other, passes in (
            (clconv.Conv2DParams.create((8, 64, 14, 14), (64, 64, 3, 3), padding=1, dtype=np.float64), PASSES[:2]),
            (clconv.Conv2DParams.create((8, 8, 14, 14), (64, 8, 3, 3), padding=1), PASSES[:2]),  # 8 input channels
            (clconv.Conv2DParams.create((8, 64, 14, 14), (16, 64, 3, 3), padding=1), ("forward",)),  # 16 written
            (clconv.Conv2DParams.create((8, 16, 14, 14), (64, 16, 3, 3), padding=1), ("grad_input",)),  # 16 written
            (clconv.Conv2DParams.create((8, 64, 14, 14), (64, 32, 3, 3), padding=1, groups=2), PASSES[:2]),
            (clconv.Conv2DParams.create((8, 64, 14, 14), (64, 64, 3, 3), padding=2, dilation=2), PASSES[:2]),
            (clconv.Conv2DParams.create((8, 64, 14, 14), (64, 64, 3, 3)), ("grad_input",))):  # unpadded
        for pass_name in passes:
            assert not getattr(tiled.default_config(other, cpu, pass_name), "channel_lanes", False), (
                other.describe(), pass_name)
    dense = clconv.Conv2DParams.create((8, 64, 14, 14), (64, 64, 3, 3), padding=1)
    for pass_name in ("forward", "grad_input"):
        assert not tiled.default_config(dense, dataclasses.replace(cpu, type="GPU"), pass_name).channel_lanes


def test_rows_are_compiled_into_small_channel_lanes_tiles_of_padded_layers():
    """FIXED_ROW takes padded layers on tiles of at most FIXED_ROW_MOST_ACCUMULATORS accumulators whose column
    stride is compiled in (1 or 2) and whose blocks between a row's first and last lie inside the row: not unpadded
    layers, larger tiles, stride 3, nor blocks of one column where the padding is wider than a block."""
    from clconv.algorithms import tiled

    padded = clconv.Conv2DParams.create((2, 16, 9, 23), (32, 16, 3, 3), padding=((1, 0), (2, 1)))
    small = CorrelationConfig(vec=16, block_k=2, block_v=5, local=(1, 1, 1), channel_lanes=True)
    assert tiled.fixed_row_defines(padded, small) == {"FIXED_ROW": 1, "FIXED_W": 23, "FIXED_Q": 24, "FIXED_S": 3,
                                                      "FIXED_PAD_LEFT": 2, "FIXED_DIL_W": 1}
    strided = clconv.Conv2DParams.create((2, 16, 9, 23), (32, 16, 3, 3), stride=2, padding=1)
    assert tiled.fixed_row_defines(strided, small)["FIXED_ROW"] == 1
    assert tiled.fixed_row_defines(clconv.Conv2DParams.create((2, 16, 9, 23), (32, 16, 3, 3)), small) == {}
    assert tiled.fixed_row_defines(padded, dataclasses.replace(small, block_k=4, block_v=6)) == {}
    assert tiled.fixed_row_defines(clconv.Conv2DParams.create((2, 16, 9, 23), (32, 16, 3, 3), stride=3, padding=1),
                                   small) == {}
    assert tiled.fixed_row_defines(padded, dataclasses.replace(small, block_v=1)) == {}  # block 1 starts at -1
    assert tiled.fixed_row_defines(padded, dataclasses.replace(small, block_v=2))["FIXED_ROW"] == 1  # starts at 0
    # Right padding of 2, 10 columns (11 output columns): blocks of 5 read column 10 in block 1, past the row;
    # blocks of 3 read up to column 9 in block 2.
    right = clconv.Conv2DParams.create((2, 16, 9, 10), (32, 16, 3, 3), padding=((1, 1), (1, 2)))
    assert tiled.fixed_row_defines(right, small) == {}
    assert tiled.fixed_row_defines(right, dataclasses.replace(small, block_v=3))["FIXED_ROW"] == 1
    # Input gradients at column stride 1, padded or not; not strided ones. 5x5, padding 2, 23 columns: blocks of one
    # column read grad_output column 1 + 2 - 4 = -1 in block 1, blocks of 2 column 21 + 2 = 23 (past the row's 23)
    # in block 10; blocks of 3 read inside from block 1 to block 6.
    assert tiled.fixed_row_defines(padded, small, "grad_input")["FIXED_W"] == 23
    unpadded = clconv.Conv2DParams.create((2, 16, 9, 23), (32, 16, 3, 3))
    assert tiled.fixed_row_defines(unpadded, small, "grad_input")["FIXED_Q"] == 21
    assert tiled.fixed_row_defines(strided, small, "grad_input") == {}
    wide = clconv.Conv2DParams.create((2, 16, 9, 23), (32, 16, 5, 5), padding=2)
    assert tiled.fixed_row_defines(wide, dataclasses.replace(small, block_v=1), "grad_input") == {}
    assert tiled.fixed_row_defines(wide, dataclasses.replace(small, block_v=2), "grad_input") == {}
    assert tiled.fixed_row_defines(wide, dataclasses.replace(small, block_v=3), "grad_input")["FIXED_ROW"] == 1
    # Both bounds met exactly: 22 columns, no padding, blocks of 2 read grad_output columns 0 to 19 of 20 in blocks
    # 1 to 9; blocks of one column read column -1 in block 1.
    exact = clconv.Conv2DParams.create((2, 16, 9, 22), (32, 16, 3, 3))
    assert tiled.fixed_row_defines(exact, dataclasses.replace(small, block_v=2), "grad_input")["FIXED_ROW"] == 1
    assert tiled.fixed_row_defines(exact, dataclasses.replace(small, block_v=1), "grad_input") == {}


# An unpadded stride-1 layer with rows of 13 output columns; a grouped one read at column stride 3, with dilation
# and padding that differ by axis (the columns of some blocks reach into the padding, others do not).
# Two padded layers whose small tiles compile the row in (FIXED_ROW): stride 1 with padding that differs by side
# (rows of 24 output columns: first, middle and last blocks), and stride 2.
CHANNEL_LANES_CASES = (check.Case("5x3-k32-9x17", (3, 5, 9, 17), (32, 5, 3, 5)),
                       check.Case("3x3-s2x3-p1x2-d1x2-g2-k32", (2, 10, 11, 40), (32, 5, 3, 3), stride=(2, 3),
                                  padding=(1, 2), dilation=(1, 2), groups=2),
                       check.Case("3x3-p1-0x2-1-k32-9x23", (2, 16, 9, 23), (32, 16, 3, 3), padding=((1, 0), (2, 1))),
                       check.Case("3x3-s2-p1-k32-8x20", (2, 8, 8, 20), (32, 8, 3, 3), stride=2, padding=1))
FIXED_ROW_CASES = ("3x3-p1-0x2-1-k32-9x23", "3x3-s2-p1-k32-8x20")


@pytest.mark.parametrize("dtype", check.DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("lanes, vectors, columns", [(16, 1, 5), (16, 2, 13), (8, 3, 4), (4, 4, 6)],
                         ids=["16x1-c5", "16x2-c13", "8x3-c4", "4x4-c6"])
@pytest.mark.parametrize("case", CHANNEL_LANES_CASES, ids=lambda case: case.name)
def test_channel_lanes_tiles(device, case, lanes, vectors, columns, dtype):
    """cl/conv2d_channel_lanes.cl, whatever the device's heuristic picks: rows of 13, 14, 24 and 10 columns in
    blocks of 5, 4 or 6 (the last one overlapping the one before) or in one block, the rows of the last two cases
    compiled in on the tiles of at most 16 accumulators (FIXED_ROW), 32 output channels (2 groups of 16 in the second
    case) in vectors of 16, 8 or 4 lanes, 1 to 4 of them per work-item (3 of 8 lanes: a group's last block short),
    with a bias and without, x a view at an offset into a device buffer; the weight's copy is the pass's
    workspace."""
    if np.dtype(dtype) == np.float64 and not device.fp64:
        pytest.skip("float64 needs cl_khr_fp64, which this device lacks (tested in test_errors.py)")
    from clconv.algorithms import tiled

    params = case.params(dtype)
    vec = min(lanes, tiled.widest_vector(params, device))
    config = CorrelationConfig(vec=vec, block_k=vectors, block_v=min(columns, params.Q), local=(1, 1, 1),
                               channel_lanes=True)
    choices = {name: planning.Choice("tiled", config if name == "forward" else None, "requested") for name in PASSES}
    target = platforms.resolve(device.device)
    plan = planning.Conv2DPlan(params, target, choices=choices)
    assert plan.workspace_bytes["forward"] == math.prod(params.weight_shape) * np.dtype(dtype).itemsize
    launched = []
    implementation = plan._implementation("forward")
    original = implementation.launch
    implementation.launch = lambda name, defines, *args: launched.append((name, defines)) or original(name, defines,
                                                                                                      *args)
    inputs = check.random_inputs(case, dtype)
    result = check.compare_with_oracle("forward", case, inputs, call_plan(plan, "forward", inputs), dtype)
    assert result.passed, f"{columns} columns x {vectors} x {vec} lanes: {result.message}"
    assert [name for name, _ in launched] == ["conv2d_channel_lanes"]
    small = vectors * config.block_v <= tiled.FIXED_ROW_MOST_ACCUMULATORS
    assert launched[0][1].get("FIXED_ROW", 0) == int(case.name in FIXED_ROW_CASES and small)
    unbiased = {name: inputs[name] for name in ("x", "weight")}
    padded = np.concatenate([np.ones((1,) + params.input_shape[1:], dtype), inputs["x"]])
    x_view = cl_array.to_device(target.queue, padded)[1:]
    got = plan.forward(x_view, cl_array.to_device(target.queue, inputs["weight"])).get()
    result = check.compare_with_oracle("forward", case, unbiased, got, dtype)
    assert result.passed, f"no bias, x at an offset, {columns} columns x {vectors} x {vec} lanes: {result.message}"


def test_strided_input_gradients_run_with_the_input_channels_in_the_lanes_on_cpus():
    """On CPUs with 16-lane vectors the input gradient of a layer of several taps read at a column stride defaults
    to cl/conv2d_grad_input_channel_lanes.cl where each group's input channels fill whole vectors, 4 vectors x the
    rest of the tile in columns of a phase; unpadded stride-1 layers (padded dense ones take 2 x 7 tiles:
    test_padded_dense_layers_run_with_the_channels_they_write_in_the_lanes_on_cpus), 1x1 layers, channels off the
    vector and GPUs keep the tiles' phases; the tuner tries both."""
    from clconv.algorithms import tiled

    cpu = _cpu("pthread-skylake-avx512-AMD EPYC", "Portable Computing Language")
    strided = clconv.Conv2DParams.create((4, 64, 56, 56), (128, 64, 3, 3), stride=2, padding=1)
    config = tiled.default_config(strided, cpu, "grad_input")
    assert config.channel_lanes and (config.vec, config.block_k, config.block_v) == (16, 4, 6)
    for other in (clconv.Conv2DParams.create((4, 64, 56, 56), (64, 64, 3, 3)),
                  clconv.Conv2DParams.create((4, 64, 56, 56), (128, 64, 1, 1), stride=2),
                  clconv.Conv2DParams.create((4, 24, 56, 56), (128, 24, 3, 3), stride=2, padding=1)):
        assert not tiled.default_config(other, cpu, "grad_input").channel_lanes, other.describe()
    assert not tiled.default_config(strided, dataclasses.replace(cpu, type="GPU"), "grad_input").channel_lanes
    assert not tiled.default_config(strided, cpu, "grad_input", channel_lanes=False).channel_lanes
    candidates = tiled.candidate_configs(strided, cpu, "grad_input")
    assert any(c.channel_lanes for c in candidates) and any(not c.channel_lanes for c in candidates)


# Strides, dilations and asymmetric padding that differ by axis, two groups of 16 input channels: phases of several
# widths (13 columns at stride 3: 5, 4 and 4), some rows reached by no tap.
LANES_GRAD_INPUT_CASE = check.Case("3x2-s2x3-d1x2-g2-c32", (3, 32, 11, 13), (12, 16, 3, 2), stride=(2, 3),
                                   padding=((1, 0), (2, 1)), dilation=(1, 2), groups=2)
# Stride-1 layers of 32 input channels and rows of 23 columns, whose rows are compiled in (FIXED_ROW) where the
# blocks between a row's first and last read inside grad_output's rows: padding that differs by side (every tile
# here), and no padding with 5 taps a row (blocks of 6 only: blocks of 2 or 3 reach in front of the row).
LANES_GRAD_INPUT_ROW_CASES = (check.Case("3x3-p1-0x2-1-c32-9x23", (3, 32, 9, 23), (12, 32, 3, 3),
                                         padding=((1, 0), (2, 1))),
                              check.Case("3x5-c32-9x23", (3, 32, 9, 23), (12, 32, 3, 5)))
LANES_GRAD_INPUT_FIXED_ROWS = {("3x3-p1-0x2-1-c32-9x23", 6), ("3x3-p1-0x2-1-c32-9x23", 2),
                               ("3x3-p1-0x2-1-c32-9x23", 3), ("3x5-c32-9x23", 6)}


@pytest.mark.parametrize("dtype", check.DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("lanes, vectors, columns", [(16, 1, 6), (8, 3, 2), (4, 4, 3)],
                         ids=["16x1-c6", "8x3-c2", "4x4-c3"])
@pytest.mark.parametrize("case", (LANES_GRAD_INPUT_CASE,) + LANES_GRAD_INPUT_ROW_CASES, ids=lambda case: case.name)
def test_grad_input_channel_lanes_tiles(device, case, lanes, vectors, columns, dtype):
    """cl/conv2d_grad_input_channel_lanes.cl, whatever the device's heuristic picks, against the oracle: phases
    of 5 and 4 columns in blocks of 6 (wider than a phase), 2 and 3 (the last overlapping), 2 groups of 16 input
    channels in vectors of 16, 8 and 4 lanes, 3 of 8 lanes per block (the group's last block short); stride-1 rows
    of 23 columns, compiled in (FIXED_ROW) or not; with a bias (a transposed convolution's forward pass) and without,
    grad_output a view at an offset into a device buffer; the weight's copy is the pass's workspace."""
    if np.dtype(dtype) == np.float64 and not device.fp64:
        pytest.skip("float64 needs cl_khr_fp64, which this device lacks (tested in test_errors.py)")
    from clconv.algorithms import tiled

    params = case.params(dtype)
    vec = min(lanes, tiled.widest_vector(params, device))
    config = CorrelationConfig(vec=vec, block_k=vectors, block_v=columns, local=(1, 1, 1), channel_lanes=True)
    choices = {name: planning.Choice("tiled", config if name == "grad_input" else None, "requested")
               for name in PASSES}
    target = platforms.resolve(device.device)
    plan = planning.Conv2DPlan(params, target, choices=choices)
    assert plan.workspace_bytes["grad_input"] == math.prod(params.weight_shape) * np.dtype(dtype).itemsize
    launched = []
    implementation = plan._implementation("grad_input")
    original = implementation.launch
    implementation.launch = lambda name, defines, *args: launched.append((name, defines)) or original(name, defines,
                                                                                                      *args)
    inputs = check.random_inputs(case, dtype)
    unbiased = call_plan(plan, "grad_input", inputs)
    result = check.compare_with_oracle("grad_input", case, inputs, unbiased, dtype)
    assert result.passed, f"{columns} columns x {vectors} x {vec} lanes: {result.message}"
    assert [name for name, _ in launched] == ["conv2d_grad_input_channel_lanes"]
    assert launched[0][1].get("FIXED_ROW", 0) == int((case.name, columns) in LANES_GRAD_INPUT_FIXED_ROWS)
    padded = np.concatenate([np.ones((1,) + params.output_shape[1:], dtype), inputs["grad_output"]])
    grad_view = cl_array.to_device(target.queue, padded)[1:]
    bias = np.linspace(-1, 1, params.C).astype(dtype)
    got = plan.grad_input(grad_view, cl_array.to_device(target.queue, inputs["weight"]), bias=bias).get()
    expected, bound = (reference.conv2d_grad_input(f(inputs["grad_output"]).astype(np.float64),
                                                   f(inputs["weight"]).astype(np.float64), params.input_shape,
                                                   **case.conv_args) + f(bias).astype(np.float64)[None, :, None, None]
                       for f in (lambda value: value, np.abs))
    result = check.compare(got, expected, bound, dtype)
    assert result.passed, f"with a bias, grad_output at an offset: {result.message}"


# Two groups of 16 output channels, 5 input channels each, stride, dilation and padding that differ by axis: the
# taps' rectangles of output positions differ in both directions.
LANES_GRAD_WEIGHT_CASE = check.Case("3x3-s2x1-d2x1-p2x1-g2-k32", (3, 10, 11, 13), (32, 5, 3, 3), stride=(2, 1),
                                    padding=(2, 1), dilation=(2, 1), groups=2)


@pytest.mark.parametrize("dtype", check.DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("lanes, vectors, channels, split", [(16, 1, 3, False), (8, 3, 2, False), (4, 4, 6, False),
                                                            (16, 2, 4, True)],
                         ids=["16x1-c3", "8x3-c2", "4x4-c6", "16x2-c4-split"])
def test_grad_weight_channel_lanes_tiles(device, lanes, vectors, channels, split, dtype):
    """cl/conv2d_grad_weight_channel_lanes.cl, whatever the device's heuristic picks, against the oracle: input
    channels off the block (5 in blocks of 3 and 2), a group's last block of vectors short (2 of 8 lanes in blocks of
    3), every vector used, the batch split into partial sums; x and grad_output as views at offsets into device
    buffers; repeated runs bit-identical; grad_output's copy is the pass's workspace."""
    if np.dtype(dtype) == np.float64 and not device.fp64:
        pytest.skip("float64 needs cl_khr_fp64, which this device lacks (tested in test_errors.py)")
    from clconv.algorithms import tiled

    case = LANES_GRAD_WEIGHT_CASE
    params = case.params(dtype)
    vec = min(lanes, tiled.widest_vector(params, device))
    config = GradWeightConfig(vec=vec, block_k=vectors, block_c=channels, target_items=1 << 20 if split else 1,
                              channel_lanes=True)
    choices = {name: planning.Choice("tiled", config if name == "grad_weight" else None, "requested")
               for name in PASSES}
    target = platforms.resolve(device.device)
    plan = planning.Conv2DPlan(params, target, choices=choices)
    copy_bytes = math.prod(params.output_shape) * np.dtype(dtype).itemsize
    partial_bytes = math.prod(params.weight_shape) * params.N * base.accumulator_bytes(params) if split else 0
    assert plan.workspace_bytes["grad_weight"] == copy_bytes + partial_bytes
    launched = []
    implementation = plan._implementation("grad_weight")
    original = implementation.launch
    implementation.launch = lambda name, *args: launched.append(name) or original(name, *args)
    inputs = check.random_inputs(case, dtype)
    first = call_plan(plan, "grad_weight", inputs)
    result = check.compare_with_oracle("grad_weight", case, inputs, first, dtype)
    assert result.passed, f"{vectors} x {vec} lanes x {channels} channels: {result.message}"
    assert launched == ["conv2d_grad_weight_channel_lanes"] + (["reduce_partials"] if split else [])
    views = {}
    for name in ("x", "grad_output"):
        padded = np.concatenate([np.full((1,) + inputs[name].shape[1:], np.inf, dtype), inputs[name]])
        views[name] = cl_array.to_device(target.queue, padded)[1:]
    again = plan.grad_weight(views["x"], views["grad_output"]).get()
    assert again.tobytes() == first.tobytes(), "views at offsets, or a second run, changed the result"


# A tile of each lanes kernel, as a tuning record or a caller gives it.
LANES_TILES = {"forward": CorrelationConfig(16, 2, 4, (1, 1, 1), channel_lanes=True),
               "grad_input": CorrelationConfig(16, 1, 3, (1, 1, 1), channel_lanes=True),
               "grad_weight": GradWeightConfig(16, 2, 3, channel_lanes=True)}


@pytest.mark.parametrize("pass_name", list(LANES_TILES))
def test_lanes_tiles_that_cannot_run_there_give_way_to_the_heuristic(device, pass_name):
    """A tile with the channels in the lanes on a plan whose cap its copy exceeds, or on a layer whose channels do not
    fill its vectors (a record of another layer), is replaced by the heuristic's other tile, which computes the pass:
    the other kernels would read the lanes tile's fields as other work and leave weights unwritten."""
    target = platforms.resolve(device.device)
    for case, cap in ((check.Case("3x3-c16-k32-s2", (2, 16, 9, 9), (32, 16, 3, 3), stride=2, padding=1), 0),
                      (check.Case("3x3-c24-k24-s2", (2, 24, 9, 9), (24, 24, 3, 3), stride=2, padding=1), None)):
        params = case.params(np.float32)
        choices = {name: planning.Choice("tiled", LANES_TILES[name] if name == pass_name else None, "requested")
                   for name in PASSES}
        plan = planning.Conv2DPlan(params, target, choices=choices, max_workspace_bytes=cap)
        assert not plan._implementation(pass_name).configs[pass_name].channel_lanes, case.name
        inputs = check.random_inputs(case, np.float32)
        result = check.compare_with_oracle(pass_name, case, inputs, call_plan(plan, pass_name, inputs), np.float32)
        assert result.passed, f"{case.name}, max_workspace_bytes={cap}: {result.message}"
        assert cap is None or plan.workspace_bytes[pass_name] <= cap


# Each lanes kernel's case, tile and the inputs given channels-last, NumPy or ("-device") device views: the input
# each reads in place (CHANNELS_LAST_READS), and for the weight gradient x too.
CHANNELS_LAST_LANES = [
    pytest.param("forward", CHANNEL_LANES_CASES[1], CorrelationConfig(16, 2, 4, (1, 1, 1), channel_lanes=True),
                 ("x",), id="forward"),
    pytest.param("forward", CHANNEL_LANES_CASES[0], CorrelationConfig(8, 3, 5, (1, 1, 1), channel_lanes=True),
                 ("x-device",), id="forward-unpadded-device"),
    pytest.param("grad_input", LANES_GRAD_INPUT_CASE, CorrelationConfig(16, 1, 3, (1, 1, 1), channel_lanes=True),
                 ("grad_output",), id="grad_input"),
    pytest.param("grad_input", LANES_GRAD_INPUT_CASE, CorrelationConfig(8, 3, 2, (1, 1, 1), channel_lanes=True),
                 ("grad_output-device",), id="grad_input-device"),
    pytest.param("grad_weight", LANES_GRAD_WEIGHT_CASE, GradWeightConfig(16, 2, 3, target_items=1, channel_lanes=True),
                 ("grad_output",), id="grad_weight"),
    pytest.param("grad_weight", LANES_GRAD_WEIGHT_CASE, GradWeightConfig(8, 3, 2, target_items=1, channel_lanes=True),
                 ("x", "grad_output"), id="grad_weight-both"),
    pytest.param("grad_weight", LANES_GRAD_WEIGHT_CASE, GradWeightConfig(16, 1, 4, target_items=1 << 20,
                                                                           channel_lanes=True),
                 ("x-device", "grad_output-device"), id="grad_weight-both-device-split"),
]


def channels_last_view(queue, array: np.ndarray, layout: str):
    """``array``'s values in channels-last memory: NumPy, or (``layout`` ending in "-device") a device view one
    image of infinities into its buffer."""
    memory = np.moveaxis(array, 1, -1)
    if not layout.endswith("-device"):
        return np.moveaxis(np.ascontiguousarray(memory), -1, 1)
    padded = np.concatenate([np.full((1,) + memory.shape[1:], np.inf, array.dtype), memory])
    return cl_array.to_device(queue, padded)[1:].transpose((0, 3, 1, 2))


@pytest.mark.parametrize("dtype", check.DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("pass_name, case, config, layouts", CHANNELS_LAST_LANES)
def test_channel_lanes_kernels_read_channels_last_inputs_in_place(monkeypatch, device, pass_name, case, config,
                                                                  layouts, dtype):
    """The lanes kernels broadcast their input's elements, which channels-last memory serves as well as
    channels-first: the input each reads in place (x of the forward pass, grad_output of the others, x of the
    weight gradient too) is not converted, and the weight gradient's channels-last grad_output is the (N, P, Q, K)
    copy it makes otherwise, so it copies nothing. The bytes are those of channels-first inputs, and match the
    oracle."""
    if np.dtype(dtype) == np.float64 and not device.fp64:
        pytest.skip("float64 needs cl_khr_fp64, which this device lacks (tested in test_errors.py)")
    from clconv.algorithms import tiled

    params = case.params(dtype)
    config = dataclasses.replace(config, vec=min(config.vec, tiled.widest_vector(params, device)))
    choices = {name: planning.Choice("tiled", config if name == pass_name else None, "requested") for name in PASSES}
    target = platforms.resolve(device.device)
    inputs = check.random_inputs(case, dtype)
    expected = call_plan(planning.Conv2DPlan(params, target, choices=choices), pass_name, inputs)
    converted = []
    original_conversion = arrays.CallArrays._channels_first
    monkeypatch.setattr(arrays.CallArrays, "_channels_first",
                        lambda self, name, array: converted.append(name) or original_conversion(self, name, array))
    moved = dict(inputs)
    for layout in layouts:
        name = layout.removesuffix("-device")
        moved[name] = channels_last_view(target.queue, inputs[name], layout)
    plan = planning.Conv2DPlan(params, target, choices=choices)
    launched = []
    implementation = plan._implementation(pass_name)
    original = implementation.launch
    implementation.launch = lambda name, *args: launched.append(name) or original(name, *args)
    got = call_plan(plan, pass_name, moved)
    got = got.get() if isinstance(got, cl_array.Array) else got
    assert tiled.CHANNEL_LANES_KERNELS[pass_name] in launched, launched
    assert not converted, f"{converted} converted"
    assert "grad_output by position" not in implementation._scratch, "grad_output was copied"
    assert got.tobytes() == expected.tobytes(), "not the channels-first bytes"
    result = check.compare_with_oracle(pass_name, case, inputs, got, dtype)
    assert result.passed, result.message


def test_stride_one_input_gradients_take_the_lanes_to_read_channels_last_grad_output_in_place(monkeypatch, device):
    """A stride-1 input gradient's heuristic tile runs along the rows, which would convert a channels-last grad_output;
    on the CPUs whose tile table says so (Zen 4's, up to 256 input channels on PoCL) the tile with the input channels
    in the lanes runs instead and reads it in place, with the bytes that tile gives on channels-first inputs, matching
    the oracle. Elsewhere, with channels-first inputs, a requested tile, for the forward pass, fp64 or dilated
    layers, nothing changes."""
    from clconv.algorithms import tiled

    # 8 output channels: too few for the padded dense layers' own lanes tile (padded_lanes_pay).
    case = check.Case("3x3-c32-k8-p1", (2, 32, 6, 7), (8, 32, 3, 3), padding=1)
    params = case.params(np.float32)
    target = platforms.resolve(device.device)
    tiles = tiled.cpu_tiles(device)
    lanes_cpu = device.type == "CPU" and tiles.grad_input_lanes_in_place_channels != 0
    if device.type == "CPU" and tiles in (tiled.ZEN4_POCL_TILES, tiled.ZEN4_INTEL_TILES):
        assert lanes_cpu
    config = tiled.lanes_in_place_config(params, device, "grad_input")
    assert (config is not None) == lanes_cpu
    wide = check.Case("3x3-c512", (1, 512, 3, 3), (16, 512, 3, 3), padding=1).params(np.float32)
    assert (tiled.lanes_in_place_config(wide, device, "grad_input") is not None) == (
        lanes_cpu and tiles.grad_input_lanes_in_place_channels is None)
    for other in (case.params(np.float64), check.Case("3x3-d2", (2, 32, 6, 7), (8, 32, 3, 3), padding=2,
                                                      dilation=2).params(np.float32)):
        assert tiled.lanes_in_place_config(other, device, "grad_input") is None
    plan = planning.Conv2DPlan(params, target)
    assert not plan._implementation("grad_input").reads_channels_last("grad_input")
    assert plan.channels_last_reader("grad_input", {"grad_output"}) == ("channel lanes" if lanes_cpu else None)
    assert plan.channels_last_reader("forward", {"x"}) is None
    requested = planning.Conv2DPlan(params, target, algo="tiled")
    assert requested.channels_last_reader("grad_input", {"grad_output"}) is None
    inputs = check.random_inputs(case, np.float32)
    converted = []
    original_conversion = arrays.CallArrays._channels_first
    monkeypatch.setattr(arrays.CallArrays, "_channels_first",
                        lambda self, name, array: converted.append(name) or original_conversion(self, name, array))
    moved = dict(inputs, grad_output=channels_last_view(target.queue, inputs["grad_output"], "numpy"))
    got = call_plan(plan, "grad_input", moved)
    result = check.compare_with_oracle("grad_input", case, inputs, got, np.float32)
    assert result.passed, result.message
    if lanes_cpu:
        assert not converted
        choices = {name: planning.Choice("tiled", config if name == "grad_input" else None, "requested")
                   for name in PASSES}
        expected = call_plan(planning.Conv2DPlan(params, target, choices=choices), "grad_input", inputs)
        assert got.tobytes() == expected.tobytes()
    else:
        assert converted == ["grad_output"]


# Passes whose heuristic tile converts channels-last inputs and which take the lanes to read them in place on CPUs
# with 16-lane vectors: a 1x1 stride-2 layer (ResNet's downsample) read at a stride, and a weight gradient of 3 input
# channels (the RGB stem), with the inputs each reads in place.
LANES_IN_PLACE_CASES = [
    pytest.param("forward", check.Case("1x1-s2-c8-k32", (2, 8, 9, 8), (32, 8, 1, 1), stride=2), ("x",),
                 id="forward-1x1-s2"),
    pytest.param("grad_input", check.Case("1x1-s2-c32-k8", (2, 32, 9, 8), (8, 32, 1, 1), stride=2), ("grad_output",),
                 id="grad_input-1x1-s2"),
    pytest.param("grad_weight", check.Case("3x3-s2-c3-k16", (2, 3, 9, 8), (16, 3, 3, 3), stride=2, padding=1),
                 ("x", "grad_output"), id="grad_weight-c3"),
]


@pytest.mark.parametrize("pass_name, case, names", LANES_IN_PLACE_CASES)
def test_passes_whose_tiles_convert_take_the_lanes_to_read_channels_last_inputs_in_place(monkeypatch, device,
                                                                                         pass_name, case, names):
    """A pass whose heuristic tile would convert its channels-last inputs (a forward pass or input gradient read at a
    stride by a 1x1 layer, a weight gradient of few input channels) runs the tile with the channels it writes in the
    lanes on CPUs with 16-lane vectors, which reads them in place, with the bytes that tile gives on channels-first
    inputs, matching the oracle; elsewhere they are converted."""
    from clconv.algorithms import tiled

    params = case.params(np.float32)
    target = platforms.resolve(device.device)
    lanes_cpu = device.type == "CPU" and device.native_float_lanes >= 16 and device.vector_bits_limit is None
    config = tiled.lanes_in_place_config(params, device, pass_name)
    assert (config is not None) == lanes_cpu
    assert tiled.lanes_in_place_config(case.params(np.float64), device, pass_name) is None
    plan = planning.Conv2DPlan(params, target)
    assert not plan._implementation(pass_name).reads_channels_last(pass_name)
    assert plan.channels_last_reader(pass_name, set(names)) == ("channel lanes" if lanes_cpu else None)
    inputs = check.random_inputs(case, np.float32)
    converted = []
    original_conversion = arrays.CallArrays._channels_first
    monkeypatch.setattr(arrays.CallArrays, "_channels_first",
                        lambda self, name, array: converted.append(name) or original_conversion(self, name, array))
    moved = dict(inputs, **{name: channels_last_view(target.queue, inputs[name], "numpy") for name in names})
    got = call_plan(plan, pass_name, moved)
    result = check.compare_with_oracle(pass_name, case, inputs, got, np.float32)
    assert result.passed, result.message
    if lanes_cpu:
        assert not converted
        choices = {name: planning.Choice("tiled", config if name == pass_name else None, "requested")
                   for name in PASSES}
        expected = call_plan(planning.Conv2DPlan(params, target, choices=choices), pass_name, inputs)
        assert got.tobytes() == expected.tobytes()
    else:
        assert sorted(converted) == sorted(names)


def test_pointwise_weight_gradients_read_channels_last_in_the_lanes_on_small_planes(device):
    """A 1x1 weight gradient on channels-last inputs whose tile puts the output channels in the lanes runs that
    kernel on planes of at most POINTWISE_LANES_MOST_POSITIONS positions, else the matrix product over the positions
    (cl/pointwise_product.cl), both in place; a layer that is no matrix product (3x3) takes the lanes whatever its
    plane; inputs all channels-first read nothing in place."""
    from clconv.algorithms import tiled

    target = platforms.resolve(device.device)
    most = planning.POINTWISE_LANES_MOST_POSITIONS
    for shape, kernel, expected in (((2, 32, 7, 7), 1, "channel lanes"), ((2, 32, 8, 9), 1, "pointwise"),
                                    ((2, 32, 8, 9), 3, "channel lanes")):
        params = clconv.Conv2DParams.create(shape, (32, 32, kernel, kernel), padding=kernel // 2)
        assert (params.P * params.Q <= most) == (shape[2] == 7)
        config = GradWeightConfig(vec=min(16, tiled.widest_vector(params, device)), block_k=1, block_c=4,
                                  channel_lanes=True)
        plan = planning.Conv2DPlan(params, target, choices={
            name: planning.Choice("tiled", config if name == "grad_weight" else None, "heuristic")
            for name in PASSES})
        assert plan.channels_last_reader("grad_weight", {"x", "grad_output"}) == expected, params.describe()
        assert plan.channels_last_reader("grad_weight", set()) is None


def test_weight_gradient_orders_its_work_by_what_streams_less():
    """Output-channel blocks side by side (k_group) while their grad_output fits the cache; all of them where
    it does not and the whole input, larger than the device's cache, would otherwise stream once per block
    (a strided 1x1 layer); one at a time where the input stays cached or grad_output is the larger stream. (Tiles
    along the positions: with the output channels in the lanes there are no such groups.)"""
    from clconv.algorithms import tiled

    cache = 32 << 20
    info = dataclasses.replace(_cpu("pthread-skylake-avx512-AMD EPYC", "Portable Computing Language"),
                               device=types.SimpleNamespace(global_mem_cache_size=cache))
    small = clconv.Conv2DParams.create((2, 64, 14, 14), (64, 64, 3, 3), padding=1)
    assert tiled.default_config(small, info, "grad_weight", channel_lanes=False).k_group == 4
    batch = 2 * cache // (64 * 56 * 56 * 4) + 1  # the input twice the cache
    downsample = clconv.Conv2DParams.create((batch, 64, 56, 56), (128, 64, 1, 1), stride=2)
    config = tiled.default_config(downsample, info, "grad_weight", channel_lanes=False)
    assert config.k_group == -(-128 // config.block_k)
    cached = clconv.Conv2DParams.create((max(1, cache // (64 * 56 * 56 * 8)), 64, 56, 56), (128, 64, 1, 1), stride=2)
    assert tiled.default_config(cached, info, "grad_weight", channel_lanes=False).k_group == 1
    same = clconv.Conv2DParams.create((batch, 64, 56, 56), (64, 64, 3, 3), padding=1)
    assert tiled.default_config(same, info, "grad_weight", channel_lanes=False).k_group == 1


def test_multiply_add_form_follows_the_implementation(device):
    """PoCL gets the contracted a*b + c (its fma() is a library call on PyPI's PoCL 3.0); others fma()/mad()."""
    from clconv import programs

    defines = programs.dtype_defines(np.float32, device)
    assert defines["MULADD_CONTRACT"] == ("Portable Computing Language" in device.platform_name)


def test_numpy_arrays_off_page_boundaries_give_aligned_results(device):
    """Intel's CPU runtime copies host arrays that are not page-aligned (host_pointer_alignment); clconv hands
    it inputs in buffers that start on their page and aligned results, and every device still computes what the
    oracle does."""
    assert device.host_pointer_alignment == (4096 if device.implementation == "intel" else 1)
    inputs = check.random_inputs(CASE, np.float32)
    backing = np.empty(inputs["x"].size + 1, np.float32)
    off_page = backing[1:].reshape(CASE.input_shape)  # 4 bytes past an allocation's start: never page-aligned
    off_page[...] = inputs["x"]
    got = clconv.conv2d(off_page, inputs["weight"], inputs["bias"], device=device.device, **CASE.conv_args)
    assert got.ctypes.data % device.host_pointer_alignment == 0
    expected = check.run_pass("forward", CASE, inputs, device=device.device)
    assert got.tobytes() == expected.tobytes()
