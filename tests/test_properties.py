"""Properties of the device passes that a comparison with the oracle alone would not show."""

import dataclasses

import numpy as np
import pyopencl as cl
import pyopencl.array as cl_array
import pytest

import clconv
from clconv import check, platforms, programs, reference
from clconv.params import PASSES, call_plan
from clconv.planning import Conv2DPlan

CASE = next(case for case in check.CASES if case.name == "3x3-s2-d2-g3")
ARGS = CASE.conv_args


def _random(shape, dtype=np.float64, seed=0):
    return np.random.default_rng(seed).uniform(-1, 1, size=shape).astype(dtype)


def _layer(dtype=np.float64):
    p = CASE.params(dtype)
    return p, _random(p.input_shape, dtype, 1), _random(p.weight_shape, dtype, 2), _random(p.output_shape, dtype, 3)


def test_finite_difference_gradients(device):
    """float64: dL/dx and dL/dw of L = <conv2d(x, w, b), g> against central differences."""
    if not device.fp64:
        pytest.skip(f"{device.summary()} has no fp64")
    p, x, w, g = _layer()
    b = _random((p.K,), seed=4)

    def loss(x_, w_, b_):
        return float(np.sum(clconv.conv2d(x_, w_, b_, device=device.device, **ARGS) * g))

    grad_x = clconv.conv2d_grad_input(g, w, p.input_shape, device=device.device, **ARGS)
    grad_w = clconv.conv2d_grad_weight(x, g, p.weight_shape, device=device.device, **ARGS)
    grad_b = clconv.conv2d_grad_bias(g, device=device.device)
    step = 1e-6
    rng = np.random.default_rng(5)
    for name, tensor, grad in (("x", x, grad_x), ("w", w, grad_w), ("b", b, grad_b)):
        for flat in rng.choice(tensor.size, size=min(12, tensor.size), replace=False):
            index = np.unravel_index(flat, tensor.shape)
            plus, minus = tensor.copy(), tensor.copy()
            plus[index] += step
            minus[index] -= step
            values = {"x": x, "w": w, "b": b}
            high = loss(**{k + "_": (plus if k == name else v) for k, v in values.items()})
            low = loss(**{k + "_": (minus if k == name else v) for k, v in values.items()})
            numeric = (high - low) / (2 * step)
            assert abs(numeric - grad[index]) <= 1e-6 * max(1.0, abs(numeric)), (name, index, numeric, grad[index])


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["fp32", "fp64"])
def test_adjoint_identity(device, dtype):
    """<conv2d(x, w), g> = <x, grad_input(g, w)> = <w, grad_weight(x, g)>."""
    if dtype == np.float64 and not device.fp64:
        pytest.skip(f"{device.summary()} has no fp64")
    p, x, w, g = _layer(dtype)
    y = clconv.conv2d(x, w, device=device.device, **ARGS)
    grad_x = clconv.conv2d_grad_input(g, w, p.input_shape, device=device.device, **ARGS)
    grad_w = clconv.conv2d_grad_weight(x, g, p.weight_shape, device=device.device, **ARGS)
    forward = np.vdot(y.astype(np.float64), g)
    tolerance = 1e-4 if dtype == np.float32 else 1e-12
    scale = np.vdot(np.abs(y).astype(np.float64), np.abs(g))
    assert abs(forward - np.vdot(x.astype(np.float64), grad_x)) <= tolerance * scale
    assert abs(forward - np.vdot(w.astype(np.float64), grad_w)) <= tolerance * scale


@pytest.mark.parametrize("pass_name", ["forward", "grad_input", "grad_weight", "grad_bias"])
def test_repeat_runs_bit_identical(device, pass_name):
    case = next(c for c in check.CASES if c.name == "3x3-c64-k64")
    inputs = check.random_inputs(case, np.float32)
    first = check.run_pass(pass_name, case, inputs, device=device.device)
    for _ in range(3):
        again = check.run_pass(pass_name, case, inputs, device=device.device)
        assert again.tobytes() == first.tobytes()


def test_nan_and_inf_propagate(device):
    p, x, w, g = _layer(np.float32)
    # Stride 2, dilation 2 and padding (1, 2) read odd rows and even columns only.
    x[0, 0, 5, 4] = np.nan
    x[1, 1, 7, 6] = np.inf
    got = clconv.conv2d(x, w, device=device.device, **ARGS)
    with np.errstate(invalid="ignore"):
        expected = reference.conv2d(x, w, **ARGS)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(expected))
    np.testing.assert_array_equal(np.isinf(got), np.isinf(expected))
    assert np.isnan(got).any() and np.isinf(got).any()


def test_empty_batch(device):
    p = CASE.params(np.float32)
    x = np.zeros((0,) + p.input_shape[1:], np.float32)
    w = _random(p.weight_shape, np.float32)
    g = np.zeros((0,) + p.output_shape[1:], np.float32)
    y = clconv.conv2d(x, w, device=device.device, **ARGS)
    assert y.shape == (0,) + p.output_shape[1:] and y.dtype == np.float32
    grad_x = clconv.conv2d_grad_input(g, w, x.shape, device=device.device, **ARGS)
    assert grad_x.shape == x.shape and grad_x.dtype == np.float32
    grad_w = clconv.conv2d_grad_weight(x, g, w.shape, device=device.device, **ARGS)
    np.testing.assert_array_equal(grad_w, np.zeros(w.shape, np.float32))
    np.testing.assert_array_equal(clconv.conv2d_grad_bias(g, device=device.device), np.zeros(p.K, np.float32))


def test_any_memory_layout(device):
    """Fortran order, negative strides, sliced views and big-endian data give the same result."""
    p, x, w, g = _layer(np.float32)
    expected = clconv.conv2d(x, w, device=device.device, **ARGS)
    big = np.zeros((p.N, p.C, p.H * 2, p.W), np.float32)
    big[:, :, ::2, :] = x
    layouts = {
        "fortran": (np.asfortranarray(x), np.asfortranarray(w)),
        # The same values through negative strides: a reversed copy, read backwards along every axis.
        "reversed": (x[::-1, ::-1, ::-1, ::-1].copy()[::-1, ::-1, ::-1, ::-1],
                     w[:, :, ::-1, ::-1].copy()[:, :, ::-1, ::-1]),
        "strided": (big[:, :, ::2, :], w),
        "big-endian": (x.astype(">f4"), w.astype(">f4")),
    }
    # Each layout really is what its name says (a contiguous stand-in would test nothing).
    assert all(not a.flags.c_contiguous for a in layouts["fortran"])
    assert all(stride < 0 for stride in layouts["reversed"][0].strides)
    assert layouts["reversed"][1].strides[2] < 0 and layouts["reversed"][1].strides[3] < 0
    assert not layouts["strided"][0].flags.c_contiguous
    assert all(a.dtype.byteorder == ">" for a in layouts["big-endian"])
    for name, (x_layout, w_layout) in layouts.items():
        np.testing.assert_array_equal(x_layout, x)
        np.testing.assert_array_equal(w_layout, w)
        got = clconv.conv2d(x_layout, w_layout, device=device.device, **ARGS)
        assert got.tobytes() == expected.tobytes(), name


@pytest.mark.parametrize("pass_name", PASSES)
def test_numpy_in_place_and_copied_agree(device, pass_name):
    """NumPy calls wrap host memory on CPU devices and copy elsewhere: both give the same bytes, inputs
    are left untouched (read-only here), and every result is a fresh array of its own."""
    p, x, w, g = _layer(np.float32)
    b = _random((p.K,), np.float32, 9)
    for array in (x, w, g, b):
        array.flags.writeable = False
    target = platforms.resolve(device.device)
    results = {}
    for host_memory in (True, False):
        info = dataclasses.replace(target.info, host_memory=host_memory)
        plan = Conv2DPlan(p, platforms.Target(info, target.context, target.queue))
        tensors = {"x": x, "weight": w, "bias": b, "grad_output": g}
        first, second = call_plan(plan, pass_name, tensors), call_plan(plan, pass_name, tensors)
        # Its own memory, or (where the device wants page-aligned arrays) a view of a private buffer.
        own = first.flags.owndata or (first.base.flags.owndata and info.host_pointer_alignment > 1)
        assert isinstance(first, np.ndarray) and own and first.flags.writeable
        assert not any(np.shares_memory(first, other) for other in (second, x, w, g, b))
        assert first.tobytes() == second.tobytes()
        results[host_memory] = first
    assert results[True].tobytes() == results[False].tobytes()


def test_device_arrays_stay_on_device(device):
    target = platforms.resolve(device.device)
    queue = target.queue
    p, x, w, g = _layer(np.float32)
    b = _random((p.K,), np.float32, 9)
    x_dev, w_dev, g_dev = (cl_array.to_device(queue, a) for a in (x, w, g))
    y = clconv.conv2d(x_dev, w_dev, b, **ARGS)  # mixed: the device arrays decide
    assert isinstance(y, cl_array.Array) and y.context == target.context
    assert y.get().tobytes() == clconv.conv2d(x, w, b, device=device.device, **ARGS).tobytes()
    grad_x = clconv.conv2d_grad_input(g_dev, w_dev, p.input_shape, **ARGS)
    grad_w = clconv.conv2d_grad_weight(x_dev, g_dev, p.weight_shape, **ARGS)
    grad_b = clconv.conv2d_grad_bias(g_dev)
    for result, host in ((grad_x, clconv.conv2d_grad_input(g, w, p.input_shape, device=device.device, **ARGS)),
                         (grad_w, clconv.conv2d_grad_weight(x, g, p.weight_shape, device=device.device, **ARGS)),
                         (grad_b, clconv.conv2d_grad_bias(g, device=device.device))):
        assert isinstance(result, cl_array.Array)
        assert result.get().tobytes() == host.tobytes()


def test_device_array_batch_slice(device):
    """A slice of a device array (non-zero offset into its buffer) is read in place."""
    queue = platforms.resolve(device.device).queue
    p, x, w, g = _layer(np.float32)
    x_dev = cl_array.to_device(queue, x)
    y = clconv.conv2d(x_dev[1:], w, **ARGS)
    assert y.get().tobytes() == clconv.conv2d(x[1:], w, device=device.device, **ARGS).tobytes()


def test_user_queue_is_used(device):
    context = cl.Context([device.device])
    queue = cl.CommandQueue(context)
    p, x, w, g = _layer(np.float32)
    y = clconv.conv2d(cl_array.to_device(queue, x), w, **ARGS)
    assert y.queue == queue
    assert y.get().tobytes() == clconv.conv2d(x, w, device=queue, **ARGS).tobytes()


def test_programs_are_built_once_per_context(device):
    """New batch sizes and heights (same dtype and row width, hence the same tiles) reuse the compiled programs."""
    p, x, w, g = _layer(np.float32)
    clconv.conv2d(x, w, device=device.device, **ARGS)
    builds = programs.build_counts.copy()
    for batch, height in ((1, 11), (3, 13), (4, 17)):
        clconv.conv2d(_random((batch, 6, height, p.W), np.float32), w, device=device.device, **ARGS)
    assert programs.build_counts == builds
