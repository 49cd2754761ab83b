"""The tiled algorithm's phase-split tiles (algorithms/phases.py): strided layers run as stride-1 layers on their
input's phases, against the oracle, with their workspace, its cap, and the layers they must not split."""

import dataclasses

import numpy as np
import pytest

from clconv import check, platforms
from clconv.algorithms import tiled
from clconv.algorithms.phases import phase_split
from clconv.params import call_plan
from clconv.planning import Choice, Conv2DPlan

# Strided 2-D layers: complete ones (every phased weight slot a tap: 1x1, 4x4 and 2x2 at stride 2, a 1-D-like
# row with 4 taps), incomplete ones (3x3 at stride 2 and 3, 11x11 at stride 4: weight gradient only), odd sizes,
# padding, groups, and a stride along one axis only.
LAYERS = [case for case in check.CASES if case.name in ("3x3-s2-p1", "3x3-s3", "3x3-odd-s2x1", "11x11-s4-p2")] + [
    check.Case("1x1-s2", (2, 6, 9, 11), (5, 6, 1, 1), stride=2),
    check.Case("4x4-s2-p1", (2, 5, 10, 9), (7, 5, 4, 4), stride=2, padding=1),
    check.Case("2x2-s2-g2", (2, 4, 8, 7), (6, 2, 2, 2), stride=2, groups=2),
    check.Case("1x4-s1x2-row", (2, 3, 1, 21), (4, 3, 1, 4), stride=(1, 2), padding=((0, 0), (1, 2))),
    check.Case("3x1-s1x2-d2x1", (2, 3, 9, 10), (4, 3, 3, 1), stride=(1, 2), padding=(2, 0), dilation=(2, 1)),
]
SPLIT_PASSES = ("forward", "grad_weight")


def split_plan(params, target, pass_name: str) -> Conv2DPlan:
    """A plan whose pass runs the phase-split tile the tuner would try."""
    split = phase_split(params, pass_name)
    config = dataclasses.replace(tiled.default_config(split.phased, target.info, pass_name), phase_split=True)
    choices = {name: Choice("tiled", config if name == pass_name else None, "requested")
               for name in ("forward", "grad_input", "grad_weight", "grad_bias")}
    return Conv2DPlan(params, target, choices=choices)


CASES = [pytest.param(case, pass_name, dtype, id=f"{check.case_id(case, dtype)}-{pass_name}")
         for case in LAYERS for pass_name in SPLIT_PASSES for dtype in check.DTYPES
         if phase_split(case.params(dtype), pass_name) is not None]


def test_the_cases_cover_both_passes_and_the_refusals():
    split = {(case.name, pass_name) for case in LAYERS for pass_name in SPLIT_PASSES
             if phase_split(case.params(), pass_name) is not None}
    assert ("4x4-s2-p1", "forward") in split and ("1x1-s2", "forward") in split
    assert ("3x3-s2-p1", "grad_weight") in split and ("3x3-s2-p1", "forward") not in split  # 16 slots for 9 taps
    assert ("3x1-s1x2-d2x1", "grad_weight") in split  # dilation only along the stride-1 axis


@pytest.mark.parametrize("case, pass_name, dtype", CASES)
def test_split_pass_matches_oracle(case, pass_name, dtype, device):
    if np.dtype(dtype) == np.float64 and not device.fp64:
        pytest.skip("float64 needs cl_khr_fp64, which this device lacks (tested in test_errors.py)")
    params = case.params(dtype)
    plan = split_plan(params, platforms.resolve(device.device), pass_name)
    assert plan.workspace_bytes[pass_name] >= phase_split(params, pass_name).workspace_bytes
    inputs = check.random_inputs(case, dtype)
    for _ in range(2):  # a second call reuses the plan's buffers
        got = call_plan(plan, pass_name, inputs)
        result = check.compare_with_oracle(pass_name, case, inputs, got, dtype)
        assert result.passed, f"{pass_name} {params.describe()} split on {device.summary()}: {result.message}"


def test_split_weight_gradient_is_bit_identical_across_runs(device):
    case = LAYERS[0]
    plan = split_plan(case.params(), platforms.resolve(device.device), "grad_weight")
    inputs = check.random_inputs(case, np.float32)
    first = call_plan(plan, "grad_weight", inputs)
    assert np.array_equal(call_plan(plan, "grad_weight", inputs), first)


def test_a_workspace_cap_too_small_runs_unsplit(device):
    case = next(case for case in LAYERS if case.name == "4x4-s2-p1")
    params = case.params()
    target = platforms.resolve(device.device)
    choices = split_plan(params, target, "forward").choices
    capped = Conv2DPlan(params, target, max_workspace_bytes=0, choices=choices)
    assert capped.workspace_bytes["forward"] == 0
    inputs = check.random_inputs(case, np.float32)
    got = call_plan(capped, "forward", inputs)
    assert check.compare_with_oracle("forward", case, inputs, got, np.float32).passed


def test_the_forward_pass_of_an_incomplete_layer_is_not_split():
    """3x3 at stride 2: the phased weight would have zero slots, and 0 * Inf in the input would be NaN."""
    assert phase_split(check.Case("s2", (1, 2, 9, 9), (2, 2, 3, 3), stride=2).params(), "forward") is None
    assert phase_split(check.Case("s1", (1, 2, 9, 9), (2, 2, 3, 3)).params(), "grad_weight") is None


def test_the_heuristic_never_splits_and_the_tuner_tries_it(device):
    info = platforms.resolve(device.device).info
    params = next(case for case in LAYERS if case.name == "1x1-s2").params()
    for pass_name in SPLIT_PASSES:
        assert not tiled.default_config(params, info, pass_name).phase_split  # the default workspace is 0
        assert any(config.phase_split for config in tiled.candidate_configs(params, info, pass_name))
