"""3-D convolution on the device (its passes against the oracle run in test_passes.py, the oracle is tested in
test_reference_3d.py): what the depth unfolding adds, its workspace, device arrays at offsets, determinism, and
agreement with the 2-D layer it runs as."""

import numpy as np
import pyopencl.array as cl_array
import pytest

import clconv
from clconv import check, platforms
from clconv.params import PASSES
from clconv.plan_3d import plan_for_3d

CASE = next(case for case in check.CASES_3D if case.name == "2x3x1-s2x1x2-d2x1x1-asympad")


def test_depth_of_one_is_the_2d_layer(device):
    """With D = T = 1 the 3-D passes give exactly the 2-D ones (the unfolding and the swap are copies)."""
    rng = np.random.default_rng(1)
    x, w = rng.standard_normal((2, 3, 1, 7, 6), np.float32), rng.standard_normal((4, 3, 1, 3, 3), np.float32)
    b = rng.standard_normal(4, np.float32)
    y = clconv.conv3d(x, w, b, padding=(0, 1, 1), device=device.device)
    gy = rng.standard_normal(y.shape, np.float32)
    args3, args2 = dict(padding=(0, 1, 1), device=device.device), dict(padding=1, device=device.device)
    pairs = [
        (y, clconv.conv2d(x[:, :, 0], w[:, :, 0], b, **args2)),
        (clconv.conv3d_grad_input(gy, w, x.shape, **args3), clconv.conv2d_grad_input(gy[:, :, 0], w[:, :, 0],
                                                                                     x[:, :, 0].shape, **args2)),
        (clconv.conv3d_grad_weight(x, gy, w.shape, **args3), clconv.conv2d_grad_weight(x[:, :, 0], gy[:, :, 0],
                                                                                       w[:, :, 0].shape, **args2)),
        (clconv.conv3d_grad_bias(gy, device=device.device), clconv.conv2d_grad_bias(gy[:, :, 0], device=device.device)),
    ]
    for got, expected in pairs:
        assert np.array_equal(got.reshape(expected.shape), expected)


def test_weight_gradient_is_bit_identical_across_runs(device):
    inputs = check.random_inputs(CASE, np.float32)
    first = check.run_pass("grad_weight", CASE, inputs, device=device.device)
    for _ in range(3):
        assert np.array_equal(check.run_pass("grad_weight", CASE, inputs, device=device.device), first)


@pytest.mark.parametrize("pass_name", PASSES)
def test_device_inputs_at_an_offset(device, pass_name):
    """Device arrays that are batch slices of larger ones (their data starts at an offset) are read there."""
    inputs = check.random_inputs(CASE, np.float32)
    expected = check.run_pass(pass_name, CASE, inputs, device=device.device)
    queue = platforms.resolve(device.device).queue
    sliced = {}
    for name, value in inputs.items():
        whole = cl_array.to_device(queue, np.concatenate([np.full_like(value, np.nan), value]))
        sliced[name] = whole[value.shape[0]:]
    got = check.run_pass(pass_name, CASE, sliced, device=device.device)
    assert isinstance(got, cl_array.Array)
    assert np.array_equal(got.get(), expected)


def test_workspace_is_the_unfolded_input_and_the_swapped_tensor(device):
    params = CASE.params(np.float32)
    plan = plan_for_3d(params, platforms.resolve(device.device))
    unfolded = int(np.prod(params.unfolded_shape)) * 4
    output = int(np.prod(params.output_shape)) * 4
    workspace = plan.workspace_bytes
    layer_workspace = plan.layer_plan.workspace_bytes
    for pass_name in ("forward", "grad_input", "grad_weight"):
        assert workspace[pass_name] == unfolded + output + layer_workspace[pass_name]
    assert workspace["grad_bias"] == layer_workspace["grad_bias"]


def test_a_workspace_cap_below_the_unfolding_is_refused(device):
    inputs = check.random_inputs(CASE, np.float32)
    params = CASE.params(np.float32)
    needed = (int(np.prod(params.unfolded_shape)) + int(np.prod(params.output_shape))) * 4
    for pass_name in ("forward", "grad_input", "grad_weight"):
        with pytest.raises(ValueError, match=f"max_workspace_bytes=0 is too small for the {pass_name} pass of a 3-D "
                                             f"layer: it unfolds the input along depth into {needed} bytes"):
            check.run_pass(pass_name, CASE, inputs, device=device.device, max_workspace_bytes=0)
    # The bias gradient unfolds nothing; a cap of 0 only makes it sum without partial sums.
    got = check.run_pass("grad_bias", CASE, inputs, device=device.device, max_workspace_bytes=0)
    assert check.compare_with_oracle("grad_bias", CASE, inputs, got, np.float32).passed
    for pass_name in PASSES:
        got = check.run_pass(pass_name, CASE, inputs, device=device.device, max_workspace_bytes=needed)
        assert check.compare_with_oracle(pass_name, CASE, inputs, got, np.float32).passed
    capped = plan_for_3d(params, platforms.resolve(device.device), max_workspace_bytes=needed)
    assert max(capped.workspace_bytes.values()) <= needed
