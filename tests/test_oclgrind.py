"""The Oclgrind tier: every pass, algorithm and dtype on small layers under a simulator that checks every
memory access and, with OCLGRIND_DATA_RACES=1, every data race. A test fails on any diagnostic.

Oclgrind reports itself as a GPU, so the default tiles here are the GPU ones; the CPU tiles (what PoCL and
Intel's runtime run) are simulated too. Oclgrind reads its switches and its log file when a context is
created; tests/conftest.py sets them before any context exists. Oclgrind's uninitialised-memory plugin
stays off: version 21.10 aborts on LLVM ``freeze`` instructions.

CLCONV_TEST_PLATFORMS (see test_devices.py) makes CI insist that Oclgrind is installed; elsewhere the
tier is skipped when it is not.
"""

import dataclasses
import os

import numpy as np
import pyopencl as cl
import pyopencl.array as cl_array
import pytest

from clconv import (
    arrays,
    channels_last,
    channels_last_depthwise,
    channels_last_pointwise,
    check,
    kernel_check,
    platforms,
    tuner,
)
from clconv.algorithms import ALGORITHMS, tiled
from clconv.algorithms.phases import phase_split
from clconv.algorithms.tiled import KERNELS, default_config
from clconv.params import PASSES, call_plan
from clconv.planning import Choice, Conv2DPlan

LOG = os.environ["OCLGRIND_LOG"]

# Small enough to simulate in well under a second each; between them every path of the kernels: strides,
# dilation, groups, depthwise, asymmetric padding, rows narrower than a vector, whole planes, 1x1 rows, runs of
# taps (CPU tiles of the depthwise and one-channel weight gradients).
LAYERS = (
    check.Case("3x3-p1", (2, 4, 6, 6), (4, 4, 3, 3), padding=1),
    check.Case("3x3-s2", (2, 3, 7, 7), (4, 3, 3, 3), stride=2, padding=1),
    check.Case("3x3-d2", (2, 3, 8, 7), (4, 3, 3, 3), padding=2, dilation=2),
    check.Case("3x3-g2", (2, 4, 6, 6), (6, 2, 3, 3), padding=1, groups=2),
    check.Case("3x3-depthwise", (2, 4, 6, 6), (4, 1, 3, 3), padding=1, groups=4),
    check.Case("3x3-asympad", (2, 3, 5, 6), (4, 3, 3, 3), padding=((1, 0), (0, 2))),
    check.Case("3x3-w3", (2, 3, 5, 3), (4, 3, 3, 3), padding=1),
    check.Case("1x1-w3", (2, 3, 4, 3), (5, 3, 1, 1)),
    check.Case("1x1-c8", (2, 8, 5, 5), (6, 8, 1, 1)),
    check.Case("3x3-c9-planes", (1, 9, 6, 6), (10, 9, 3, 3), padding=1),
    # Enough channels and plane vectors for each CPU's tile table to give its own tiles.
    check.Case("3x3-c16-planes", (1, 16, 10, 10), (16, 16, 3, 3), padding=1),
    # Whole planes with output rows narrower than the input's (the forward pass's wide grid).
    check.Case("5x5-c8-valid-planes", (1, 8, 9, 9), (4, 8, 5, 5)),
    # One input channel: on CPUs the weight gradient takes a run of taps along rows narrower than the input's.
    check.Case("5x5-c1-valid", (2, 1, 8, 11), (3, 1, 5, 5)),
    # A whole plane in one vector, whose last tap of a run reads up to the end of the input buffer.
    check.Case("3x3-depthwise-3x5", (1, 2, 3, 5), (2, 1, 3, 3), padding=1, groups=2),
    # Eight channels on strided rows: the channel loop runs inside the taps' (CHANNELS_INNER).
    check.Case("3x3-s2-c8", (1, 8, 5, 7), (8, 8, 3, 3), stride=2, padding=1),
    # Unpadded, 7 of 11 columns, 16 output channels: on CPUs the forward pass takes them in the lanes.
    check.Case("5x5-c4-k16-valid", (2, 4, 9, 11), (16, 4, 5, 5)),
)


@pytest.fixture(scope="module")
def simulator():
    try:
        info = platforms.match("oclgrind")
    except ValueError:
        pytest.skip("Oclgrind is not installed (pip install 'clconv[oclgrind]')")
    return info


def new_diagnostics(start: int) -> str:
    """What Oclgrind logged since byte ``start`` (from the beginning if a new context truncated the log)."""
    try:
        size = os.path.getsize(LOG)
    except FileNotFoundError:
        return ""
    with open(LOG, "rb") as handle:
        handle.seek(start if size >= start else 0)
        return handle.read().decode(errors="replace").strip()


@pytest.fixture
def clean_log(simulator, monkeypatch):
    """Fails the test when Oclgrind logged anything while it ran. Kernel checks are off: a checker
    process's own Oclgrind context would truncate the shared log."""
    monkeypatch.setenv(kernel_check.ENABLE_ENV_VAR, "0")
    platforms.resolve(simulator.device)  # the context exists (and has truncated the log) before we measure
    assert os.path.exists(LOG), "Oclgrind does not write its log: OCLGRIND_LOG was set too late"
    start = os.path.getsize(LOG)
    yield
    text = new_diagnostics(start)
    assert not text, f"Oclgrind diagnostics:\n{text[:20000]}"


# The CPUs whose heuristic tiles (tiled.cpu_tiles) are simulated, as the device fields that select them.
SIMULATED_CPUS = {
    "tiled-cpu-tiles": {},
    "tiled-zen4-pocl-tiles": {"name": "AMD EPYC", "native_float_lanes": 16,
                              "platform_name": "Portable Computing Language"},
    "tiled-zen4-intel-tiles": {"name": "AMD EPYC", "native_float_lanes": 16, "platform_name": "Intel(R) OpenCL"},
    "tiled-zen5-pocl-tiles": {"name": "AMD EPYC", "native_float_lanes": 16, "cpu_family": 26,
                              "platform_name": "Portable Computing Language"},
}


def cpu_tile_plan(simulator, params, cpu_fields: dict) -> Conv2DPlan:
    """A plan running the tiles the heuristic gives a CPU (GPU-shaped work-groups stay out of it)."""
    cpu = dataclasses.replace(simulator, type="CPU", **cpu_fields)
    choices = {name: Choice("tiled", default_config(params, cpu, name) if name in KERNELS else None, "requested")
               for name in PASSES}
    return Conv2DPlan(params, platforms.resolve(simulator.device), choices=choices)


@pytest.mark.parametrize("dtype", check.DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("algo", sorted(ALGORITHMS) + list(SIMULATED_CPUS))
@pytest.mark.parametrize("case", LAYERS, ids=lambda case: case.name)
def test_simulated_passes_are_clean_and_correct(case, algo, dtype, simulator, clean_log):
    params = case.params(dtype)
    inputs = check.random_inputs(case, dtype)
    plan = (cpu_tile_plan(simulator, params, SIMULATED_CPUS[algo]) if algo in SIMULATED_CPUS
            else Conv2DPlan(params, platforms.resolve(simulator.device), algo=algo))
    for pass_name in PASSES:
        got = tuner.pass_runner(plan, pass_name, inputs)()
        result = check.compare_with_oracle(pass_name, case, inputs, got, dtype)
        assert result.passed, f"{pass_name} {params.describe()} ({algo}) on Oclgrind: {result.message}"


# Layers that run through more than one kernel of their own. Transposed convolutions run the input-gradient
# kernels with a bias (their forward pass): stride with output_padding (every phase of the tiled kernel), and
# dilation with output_padding at stride 1 (rows no tap reaches, which get the bias alone), in 2-D and 1-D.
# 3-D layers add the depth unfolding, the axis swap and the folding back (with a bias in the transposed
# forward pass): a depth stride and padding, so that some unfolded frames are zeros and some input frames
# gather from several taps.
TRANSPOSED_LAYERS = (
    check.TransposedCase("3x3-s2-p1-op1", (2, 3, 3, 4), (3, 4, 3, 3), stride=2, padding=1, output_padding=1),
    check.TransposedCase("3x3-d2-op1-g2", (1, 4, 3, 3), (4, 3, 3, 3), output_padding=1, groups=2, dilation=2),
    check.TransposedCase("1d-k3-s2-op1", (2, 3, 5), (3, 2, 3), stride=2, output_padding=1),
    check.TransposedCase("3d-2x2x2-s2-op1", (1, 2, 2, 3, 3), (2, 3, 2, 2, 2), stride=2, output_padding=1),
)
THREE_D_LAYERS = (
    check.Case("3d-3x3x3-s2x1x1-p1", (2, 2, 4, 3, 5), (3, 2, 3, 3, 3), stride=(2, 1, 1), padding=1),
)


@pytest.mark.parametrize("dtype", check.DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("algo", sorted(ALGORITHMS))
@pytest.mark.parametrize("case", TRANSPOSED_LAYERS + THREE_D_LAYERS, ids=lambda case: case.name)
def test_simulated_functions_are_clean_and_correct(case, algo, dtype, simulator, clean_log):
    inputs = check.random_inputs(case, dtype)
    for pass_name in PASSES:
        got = check.run_pass(pass_name, case, inputs, device=simulator.device, algo=algo)
        result = check.compare_with_oracle(pass_name, case, inputs, got, dtype)
        assert result.passed, f"{pass_name} {case.params(dtype).describe()} ({algo}) on Oclgrind: {result.message}"


# The tiled algorithm's phase-split tiles: the split input, the phased weight and weight gradient, and the
# stride-1 kernels on them, for a complete layer (both passes) and an incomplete one (the weight gradient).
PHASE_SPLIT_LAYERS = (
    check.Case("4x4-s2-p1", (1, 2, 6, 7), (3, 2, 4, 4), stride=2, padding=1),
    check.Case("3x3-s2-p1", (2, 2, 7, 6), (3, 2, 3, 3), stride=2, padding=1),
)


@pytest.mark.parametrize("case", PHASE_SPLIT_LAYERS, ids=lambda case: case.name)
def test_simulated_phase_split_is_clean_and_correct(case, simulator, clean_log):
    params = case.params(np.float32)
    target = platforms.resolve(simulator.device)
    inputs = check.random_inputs(case, np.float32)
    for pass_name in ("forward", "grad_weight"):
        split = phase_split(params, pass_name)
        if split is None:
            continue
        config = dataclasses.replace(default_config(split.phased, simulator, pass_name), phase_split=True)
        plan = Conv2DPlan(params, target, choices={
            name: Choice("tiled", config if name == pass_name else None, "requested") for name in PASSES})
        got = tuner.pass_runner(plan, pass_name, inputs)()
        result = check.compare_with_oracle(pass_name, case, inputs, got, np.float32)
        assert result.passed, f"{pass_name} {params.describe()} split on Oclgrind: {result.message}"


@pytest.mark.parametrize("cpu", list(SIMULATED_CPUS))
def test_simulated_transposed_forward_with_cpu_tiles(cpu, simulator, clean_log):
    """The bias of the tiled kernel's input-gradient launches, with the tiles a CPU gets."""
    case = TRANSPOSED_LAYERS[0]
    params = case.params(np.float32)
    inputs = check.random_inputs(case, np.float32)
    plan = cpu_tile_plan(simulator, params.conv, SIMULATED_CPUS[cpu])
    got = plan.grad_input(inputs["x"], inputs["weight"], bias=inputs["bias"])
    result = check.compare_with_oracle("forward", case, inputs, got, np.float32)
    assert result.passed, f"forward {params.describe()} ({cpu}) on Oclgrind: {result.message}"


# Whole planes of consecutive images as one sequence (ACROSS_IMAGES in cl/conv2d_tiled.cl), which the rule sends
# only PoCL's CPU devices: grids of 25 positions (vectors crossing into the next image, the last image's tile
# partial), output rows narrower than the input's (forward pass), a grid taller than the input.
ACROSS_IMAGES_LAYERS = (
    check.Case("3x3-p1-c8-3-images", (3, 8, 5, 5), (8, 8, 3, 3), padding=1),
    check.Case("5x5-c8-valid-2-images", (2, 8, 9, 9), (4, 8, 5, 5)),
    check.Case("3x3-p21-c8-2-images", (2, 8, 4, 5), (8, 8, 3, 3), padding=((2, 1), (1, 1))),
)


@pytest.mark.parametrize("cpu", ["gpu-tiles", "tiled-zen4-pocl-tiles"])
@pytest.mark.parametrize("dtype", check.DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("case", ACROSS_IMAGES_LAYERS, ids=lambda case: case.name)
def test_simulated_planes_across_images_are_clean_and_correct(case, dtype, cpu, simulator, clean_log, monkeypatch,
                                                               kernel_launches):
    params = case.params(dtype)
    inputs = check.random_inputs(case, dtype)
    monkeypatch.setattr(tiled, "image_grids_joined_pay", lambda *args: True)
    plan = (Conv2DPlan(params, platforms.resolve(simulator.device), algo="tiled") if cpu == "gpu-tiles"
            else cpu_tile_plan(simulator, params, SIMULATED_CPUS[cpu]))
    for pass_name in ("forward", "grad_input"):
        kernel_launches.clear()
        got = tuner.pass_runner(plan, pass_name, inputs)()
        launched = [defines.get("ACROSS_IMAGES", 0) for _, _, defines in kernel_launches]
        result = check.compare_with_oracle(pass_name, case, inputs, got, dtype)
        assert result.passed, f"{pass_name} {params.describe()} ({cpu}) on Oclgrind: {result.message}"
        if pass_name == "forward" or params.Q == params.W:  # an unpadded input gradient runs on rows
            assert launched == [1], (pass_name, launched)


# Input rows as vectors, taps as rotations (WHOLE_ROWS in cl/conv2d_tiled.cl), which the rule sends only CPUs: a
# row's load at the end of the input buffer, vector stores that spill into the rows a work-item stores next (three
# tiles of 10 rows; tiles of 7 and 6 rows, the last one partial), output rows narrower than the input's and wider
# (the input gradient of an unpadded layer), more padding on one side, groups, and the four phases of a strided
# input gradient, stored a column at a time at a step of 2 (of 2 or 3 taps a side, and of a single tap, which reads
# grad_output one row and column on where the padding is 2). WHOLE_ROWS per conv2d_tiled launch of each pass.
WHOLE_ROWS_LAYERS = (
    (check.Case("dw-5x5-p2-30x6", (2, 4, 30, 6), (4, 1, 5, 5), padding=2, groups=4),
     {"forward": [1], "grad_input": [1]}),
    (check.Case("dw-3x3-p1-13x7", (1, 2, 13, 7), (2, 1, 3, 3), padding=1, groups=2),
     {"forward": [1], "grad_input": [1]}),
    (check.Case("3x3-c1-k5-unpadded", (2, 1, 9, 7), (5, 1, 3, 3)), {"forward": [1], "grad_input": [1]}),
    (check.Case("3x3-g2-p20-21", (2, 4, 5, 6), (6, 2, 3, 3), padding=((2, 0), (2, 1)), groups=2),
     {"forward": [1], "grad_input": [1]}),
    (check.Case("dw-5x5-s2-p2-13x13", (1, 2, 13, 13), (2, 1, 5, 5), padding=2, stride=2, groups=2),
     {"grad_input": [1, 1, 1, 1]}),
    (check.Case("dw-3x3-s2-p21-9x9", (1, 2, 9, 9), (2, 1, 3, 3), padding=((2, 1), (2, 1)), stride=2, groups=2),
     {"grad_input": [1, 1, 1, 1]}),
)


@pytest.mark.parametrize("dtype", check.DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("case, launched", WHOLE_ROWS_LAYERS, ids=[case.name for case, _ in WHOLE_ROWS_LAYERS])
def test_simulated_whole_rows_are_clean_and_correct(case, launched, dtype, simulator, clean_log, monkeypatch,
                                                    kernel_launches):
    params = case.params(dtype)
    inputs = check.random_inputs(case, dtype)
    monkeypatch.setattr(tiled, "whole_rows_pay", lambda *args: True)
    tile = tiled.CorrelationConfig(vec=8, block_k=2, block_v=2, local=(1, 1, 1))
    choices = {name: Choice("tiled", tile if name in ("forward", "grad_input") else None, "requested")
               for name in PASSES}
    plan = Conv2DPlan(params, platforms.resolve(simulator.device), choices=choices)
    for pass_name, whole_rows in launched.items():
        kernel_launches.clear()
        got = tuner.pass_runner(plan, pass_name, inputs)()
        result = check.compare_with_oracle(pass_name, case, inputs, got, dtype)
        assert result.passed, f"{pass_name} {params.describe()} on whole rows on Oclgrind: {result.message}"
        assert [defines.get("WHOLE_ROWS") for _, _, defines in kernel_launches] == whole_rows, pass_name


# Channels-last inputs, converted on the device (cl/channels_first.cl): x with a whole 8x8 block and blocks cut
# at the edges of C and S, a weight and a grad_output with edge blocks only.
CHANNELS_LAST_LAYER = check.Case("3x3-c9-channels-last", (2, 9, 3, 5), (4, 9, 3, 3), padding=1)


@pytest.mark.parametrize("vector_transpose", [1, 0])
@pytest.mark.parametrize("dtype", check.DTYPES, ids=lambda d: np.dtype(d).name)
def test_simulated_channels_last_inputs_are_clean_and_correct(dtype, vector_transpose, simulator, clean_log,
                                                               monkeypatch):
    target = platforms.resolve(simulator.device)
    converter = channels_last.ChannelsFirst(target, np.dtype(dtype))
    converter.variants = tuple(v for v in converter.variants if v["VECTOR_TRANSPOSE"] == vector_transpose)
    conversions = []
    monkeypatch.setattr(channels_last, "channels_first", lambda target, dtype: conversions.append(dtype) or converter)
    inputs = check.random_inputs(CHANNELS_LAST_LAYER, dtype)
    moved = {name: np.moveaxis(np.ascontiguousarray(np.moveaxis(value, 1, -1)), -1, 1) if value.ndim == 4 else value
             for name, value in inputs.items()}
    for pass_name in PASSES:
        got = check.run_pass(pass_name, CHANNELS_LAST_LAYER, moved, device=simulator.device)
        result = check.compare_with_oracle(pass_name, CHANNELS_LAST_LAYER, inputs, got, dtype)
        assert result.passed, f"{pass_name} with channels-last inputs on Oclgrind: {result.message}"
    # forward: x and weight; grad_input: grad_output and weight; grad_weight: x and grad_output; grad_bias: grad_output
    assert len(conversions) == 7


# Positions and channels off every tile's rows and lanes, a batch the weight gradient splits.
POINTWISE_LAYER = check.Case("1x1-c19-k21", (2, 19, 3, 5), (21, 19, 1, 1))


@pytest.mark.parametrize("tile", sorted({tiled.XEON_TILES.matrix_product, tiled.ZEN4_POCL_TILES.matrix_product,
                                          tiled.ZEN4_INTEL_TILES.matrix_product, tiled.NARROW_MATRIX_PRODUCT_TILE}),
                         ids=lambda tile: f"{tile[0]}x{tile[1]}")
@pytest.mark.parametrize("dtype", check.DTYPES, ids=lambda d: np.dtype(d).name)
def test_simulated_pointwise_channels_last_is_clean_and_correct(dtype, tile, simulator, clean_log, monkeypatch):
    """The in-place 1x1 kernel with each CPU tile: x and grad_output channels-last, then only grad_output (the
    weight gradient's other store), the weight gradient in batch splits and in one."""
    target = platforms.resolve(simulator.device)
    launcher = channels_last_pointwise.PointwiseChannelsLast(target, np.dtype(dtype))
    launcher.tile = dict(launcher.tile, ROWS=tile[0], VECS=tile[1])
    monkeypatch.setattr(channels_last_pointwise, "launcher", lambda target, dtype: launcher)
    splits = []
    product = launcher._product
    monkeypatch.setattr(launcher, "_product", lambda args, split, wait_for: splits.append(split) or product(
        args, split, wait_for))
    inputs = check.random_inputs(POINTWISE_LAYER, dtype)
    moved = {name: np.moveaxis(np.ascontiguousarray(np.moveaxis(value, 1, -1)), -1, 1)
             if name in ("x", "grad_output") else value for name, value in inputs.items()}
    runs = [(name, moved, None) for name in ("forward", "grad_input", "grad_weight")]
    runs += [("grad_weight", dict(moved, x=inputs["x"]), None), ("grad_weight", moved, 0)]
    for pass_name, arrays_in, workspace in runs:
        got = check.run_pass(pass_name, POINTWISE_LAYER, arrays_in, device=simulator.device,
                             max_workspace_bytes=workspace)
        result = check.compare_with_oracle(pass_name, POINTWISE_LAYER, inputs, got, dtype)
        assert result.passed, f"{pass_name} of channels-last 1x1 on Oclgrind: {result.message}"
    assert splits == [None, None, 2, 2, 1]


# Depthwise layers on channels-last inputs: whole vectors of 16 channels, 20 channels (the last vector of 16
# overlapping the one before), 6 of 4 lanes, 3 of 2, with strides, dilation, asymmetric padding and rows narrower
# than a work-item's columns; the batch the weight gradient splits.
DEPTHWISE_LAYERS = (
    check.Case("dw-3x3-c16-p1", (2, 16, 5, 6), (16, 1, 3, 3), padding=1, groups=16),
    check.Case("dw-3x3-s2-c20", (2, 20, 5, 7), (20, 1, 3, 3), stride=2, padding=1, groups=20),
    check.Case("dw-5x3-s1x2-d2x1-c6", (1, 6, 9, 7), (6, 1, 5, 3), stride=(1, 2), padding=((2, 1), (1, 0)),
               dilation=(2, 1), groups=6),
    check.Case("dw-3x3-c3-w2", (2, 3, 4, 2), (3, 1, 3, 3), padding=1, groups=3),
)


@pytest.mark.parametrize("dtype", check.DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("case", DEPTHWISE_LAYERS, ids=lambda case: case.name)
def test_simulated_depthwise_channels_last_is_clean_and_correct(case, dtype, simulator, clean_log, kernel_launches):
    """The three depthwise kernels on channels-last device arrays of their exact size (a read past one is a read
    past its buffer), the weight gradient in splits and in one."""
    queue = platforms.resolve(simulator.device).queue
    inputs = check.random_inputs(case, dtype)
    moved = {name: cl_array.to_device(queue, np.ascontiguousarray(np.moveaxis(value, 1, -1))).transpose((0, 3, 1, 2))
             if name in ("x", "grad_output") else value for name, value in inputs.items()}
    for pass_name, workspace in [("forward", None), ("grad_input", None), ("grad_weight", None), ("grad_weight", 0)]:
        got = check.run_pass(pass_name, case, moved, device=simulator.device, max_workspace_bytes=workspace).get()
        result = check.compare_with_oracle(pass_name, case, inputs, got, dtype)
        assert result.passed, f"{pass_name} of channels-last {case.name} on Oclgrind: {result.message}"
    launches = [name for launcher, name, _ in kernel_launches
                if isinstance(launcher, channels_last_depthwise.DepthwiseChannelsLast)]
    assert launches == ["conv2d_depthwise_channels_last", "conv2d_grad_input_depthwise_channels_last",
                        "conv2d_grad_weight_depthwise_channels_last", "reduce_partials",
                        "conv2d_grad_weight_depthwise_channels_last"]


@pytest.mark.parametrize("dtype", check.DTYPES, ids=lambda d: np.dtype(d).name)
def test_simulated_three_d_channels_last_is_clean_and_correct(dtype, simulator, clean_log, monkeypatch):
    """A 3-D layer's channels-last x unfolded in place and its channels-last grad_output converted into the 2-D
    layer's layout, both device arrays of their exact size, neither converted into channels-first memory first."""
    converted = []
    conversion = arrays.CallArrays._channels_first
    monkeypatch.setattr(arrays.CallArrays, "_channels_first",
                        lambda self, name, array: converted.append(name) or conversion(self, name, array))
    case = THREE_D_LAYERS[0]
    queue = platforms.resolve(simulator.device).queue
    inputs = check.random_inputs(case, dtype)
    moved = {name: cl_array.to_device(queue, np.ascontiguousarray(np.moveaxis(value, 1, -1))).transpose(
        (0, 4, 1, 2, 3)) if name in ("x", "grad_output") else value for name, value in inputs.items()}
    for pass_name in ("forward", "grad_input", "grad_weight"):
        got = check.run_pass(pass_name, case, moved, device=simulator.device).get()
        result = check.compare_with_oracle(pass_name, case, inputs, got, dtype)
        assert result.passed, f"{pass_name} of channels-last {case.name} on Oclgrind: {result.message}"
    assert not converted


CHANNEL_LANES_LAYERS = (
    check.Case("3x3-c4-k16-6x10-valid", (2, 4, 6, 10), (16, 4, 3, 3)),
    check.Case("3x3-s2x3-asympad-d1x2-g2-k32", (2, 6, 5, 17), (32, 3, 3, 3), stride=(2, 3),
               padding=((1, 0), (2, 1)), dilation=(1, 2), groups=2),
    check.Case("3x3-c4-k16-6x13-asympad", (2, 4, 6, 13), (16, 4, 3, 3), padding=((1, 0), (2, 1))),
)


def run_on_channels_last(plan, pass_name: str, inputs: dict, names) -> np.ndarray:
    """One pass of ``plan`` with inputs ``names`` as channels-last device arrays of their exact size (so that a read
    past one is a read past its buffer), the others NumPy; the plan's kernel reads them in place."""
    assert plan._implementation(pass_name).reads_channels_last(pass_name)
    queue = plan.target.queue
    moved = {name: cl_array.to_device(queue, np.ascontiguousarray(np.moveaxis(value, 1, -1))).transpose((0, 3, 1, 2))
             if name in names else value for name, value in inputs.items()}
    got = call_plan(plan, pass_name, moved)
    return got.get() if isinstance(got, cl_array.Array) else got


@pytest.mark.parametrize("channels_last_x", [False, True], ids=["channels-first", "channels-last"])
@pytest.mark.parametrize("lanes, vectors, columns, local", [(16, 1, 3, 3), (8, 1, 6, 1), (4, 3, 5, 2)])
@pytest.mark.parametrize("dtype", check.DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("case", CHANNEL_LANES_LAYERS, ids=lambda case: case.name)
def test_simulated_channel_lanes_are_clean_and_correct(case, dtype, lanes, vectors, columns, local, channels_last_x,
                                                       simulator, clean_log):
    """cl/conv2d_channel_lanes.cl with rows of 8 or 6 columns in blocks of 3 or 5 (the last overlapping the one
    before) or in one block, 16 output channels (2 groups of 16 in the second layer) in 1, 2 or 4 vectors, 3 vectors
    per block (the last ones repeated, not stored), work-groups of 3, 1 and 2 work-items, its input's last rows
    read up to the end of the buffer; a strided, dilated, asymmetrically padded layer whose blocks reach into the
    padding; an asymmetrically padded stride-1 layer (14 columns) whose rows are compiled in (FIXED_ROW), with
    first, middle and last blocks. (A column the overlapping block stored again would hold the same value, which
    neither the oracle nor Oclgrind's race check tells apart.) x channels-first, or channels-last read in place."""
    config = tiled.CorrelationConfig(vec=lanes, block_k=vectors, block_v=columns, local=(local, 1, 1),
                                     channel_lanes=True)
    choices = {name: Choice("tiled", config if name == "forward" else None, "requested") for name in PASSES}
    plan = Conv2DPlan(case.params(dtype), platforms.resolve(simulator.device), choices=choices)
    assert plan._implementation("forward")._runs_channel_lanes("forward")
    assert bool(tiled.fixed_row_defines(plan.params, config)) == (case.name == "3x3-c4-k16-6x13-asympad")
    inputs = check.random_inputs(case, dtype)
    got = (run_on_channels_last(plan, "forward", inputs, ("x",)) if channels_last_x
           else tuner.pass_runner(plan, "forward", inputs)())
    result = check.compare_with_oracle("forward", case, inputs, got, dtype)
    assert result.passed, f"{columns} columns x {lanes} lanes on Oclgrind: {result.message}"


GRAD_INPUT_LANES_LAYERS = (
    check.Case("3x3-s2x3-d1x2-asympad-g2-c16", (2, 16, 5, 7), (6, 8, 3, 3), stride=(2, 3),
               padding=((1, 0), (2, 1)), dilation=(1, 2), groups=2),
    check.Case("3x3-c16-k6-5x13-asympad", (2, 16, 5, 13), (6, 16, 3, 3), padding=((1, 0), (2, 1))),
)


@pytest.mark.parametrize("channels_last_grad_output", [False, True], ids=["channels-first", "channels-last"])
@pytest.mark.parametrize("lanes, vectors, columns, local", [(8, 1, 3, 1), (4, 3, 2, 2), (2, 4, 5, 1)])
@pytest.mark.parametrize("dtype", check.DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("case", GRAD_INPUT_LANES_LAYERS, ids=lambda case: case.name)
def test_simulated_grad_input_channel_lanes_are_clean_and_correct(case, dtype, lanes, vectors, columns, local,
                                                                  channels_last_grad_output, simulator, clean_log):
    """cl/conv2d_grad_input_channel_lanes.cl and its copy of the weight: two groups of 8 input channels in 1, 2 or
    4 vectors per block (3 of 2 vectors: the last one repeated, not stored), phases of 3 and 2 columns (7 at
    stride 3) in blocks of 3, 2 and 5 (wider than a phase), a dilation and asymmetric padding per axis, rows no
    tap reaches, work-groups of 1 and 2 work-items; and a stride-1 layer of 16 input channels with padding that
    differs by side, whose rows of 13 columns are compiled in (FIXED_ROW) on the two smaller tiles, with first,
    middle and last blocks; grad_output channels-first, or channels-last read in place."""
    config = tiled.CorrelationConfig(vec=lanes, block_k=vectors, block_v=columns, local=(local, 1, 1),
                                     channel_lanes=True)
    choices = {name: Choice("tiled", config if name == "grad_input" else None, "requested") for name in PASSES}
    plan = Conv2DPlan(case.params(dtype), platforms.resolve(simulator.device), choices=choices)
    assert plan._implementation("grad_input")._runs_channel_lanes("grad_input")
    fixed_row = bool(tiled.fixed_row_defines(plan.params, config, "grad_input"))
    assert fixed_row == (case.name == "3x3-c16-k6-5x13-asympad"
                         and vectors * columns <= tiled.FIXED_ROW_MOST_ACCUMULATORS)
    inputs = check.random_inputs(case, dtype)
    got = (run_on_channels_last(plan, "grad_input", inputs, ("grad_output",)) if channels_last_grad_output
           else tuner.pass_runner(plan, "grad_input", inputs)())
    result = check.compare_with_oracle("grad_input", case, inputs, got, dtype)
    assert result.passed, f"{columns} columns x {vectors} x {lanes} lanes on Oclgrind: {result.message}"


@pytest.mark.parametrize("channels_last_inputs", [False, True], ids=["channels-first", "channels-last"])
@pytest.mark.parametrize("lanes, vectors, channels, split", [(8, 1, 2, False), (4, 3, 3, True), (2, 4, 1, False)],
                         ids=["8x1-c2", "4x3-c3-split", "2x4-c1"])
@pytest.mark.parametrize("dtype", check.DTYPES, ids=lambda d: np.dtype(d).name)
def test_simulated_grad_weight_channel_lanes_are_clean_and_correct(dtype, lanes, vectors, channels, split,
                                                                   channels_last_inputs, simulator, clean_log):
    """cl/conv2d_grad_weight_channel_lanes.cl and its copy of grad_output, or (channels-last inputs, device arrays
    of their exact size) x and grad_output read in their own memory: two groups of 8 output channels in 1, 2 or 4
    vectors per block (3 of 2 vectors: the last one repeated, not stored), 3 input channels per group in blocks of
    2, 3 and 1, a stride, dilation and asymmetric padding per axis, and the batch split into partial sums."""
    case = check.Case("3x3-s2x1-d1x2-asympad-g2-k16", (2, 6, 5, 7), (16, 3, 3, 3), stride=(2, 1),
                      padding=((1, 0), (2, 1)), dilation=(1, 2), groups=2)
    config = tiled.GradWeightConfig(vec=lanes, block_k=vectors, block_c=channels,
                                    target_items=1 << 20 if split else 1, channel_lanes=True)
    choices = {name: Choice("tiled", config if name == "grad_weight" else None, "requested") for name in PASSES}
    plan = Conv2DPlan(case.params(dtype), platforms.resolve(simulator.device), choices=choices)
    assert plan._implementation("grad_weight")._runs_channel_lanes("grad_weight")
    inputs = check.random_inputs(case, dtype)
    if channels_last_inputs:
        got = run_on_channels_last(plan, "grad_weight", inputs, ("x", "grad_output"))
        assert "grad_output by position" not in plan._implementation("grad_weight")._scratch, "grad_output was copied"
    else:
        got = tuner.pass_runner(plan, "grad_weight", inputs)()
    result = check.compare_with_oracle("grad_weight", case, inputs, got, dtype)
    assert result.passed, f"{vectors} x {lanes} lanes x {channels} channels on Oclgrind: {result.message}"


def test_the_tier_sees_an_out_of_bounds_read(simulator):
    """The tier itself can fail: a kernel reading one element past its buffer is reported."""
    target = platforms.resolve(simulator.device)
    program = cl.Program(target.context, """
        __kernel void shifted_copy(__global const float *source, __global float *copy) {
            size_t i = get_global_id(0);
            copy[i] = source[i + 1];
        }""").build()
    source = cl.Buffer(target.context, cl.mem_flags.READ_ONLY, 16 * 4)
    copy = cl.Buffer(target.context, cl.mem_flags.WRITE_ONLY, 16 * 4)
    start = os.path.getsize(LOG)
    program.shifted_copy(target.queue, (16,), (4,), source, copy)
    target.queue.finish()
    assert "Invalid read of size 4" in new_diagnostics(start)
