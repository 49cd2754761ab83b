"""Transposed convolutions (1-D, 2-D and 3-D; their passes against the oracle run in test_passes.py): bit-identical
to the convolution passes they are made of, out=, device arrays, bad arguments, and the oracle against PyTorch."""

import numpy as np
import pyopencl.array as cl_array
import pytest

import clconv
from clconv import check, platforms, reference
from clconv.params import PASSES, call_function, dtype_name

CASES = check.TRANSPOSED_CASES
ALGOS = ("direct", "tiled")


def case_named(name):
    return next(case for case in CASES if case.name == name)


def rank(case) -> int:
    return len(case.input_shape) - 2


# Every 2-D and 3-D case whose output_padding stays below the stride: there the convolution functions take the
# same layer (a 1-D case's params are its 2-D layer of height 1).
CONSISTENT = [case for case in CASES if not case.one_d
              and all(extra < step for extra, step in zip(case.params().output_padding, case.params().conv.stride))]


@pytest.mark.parametrize("algo", ALGOS)
@pytest.mark.parametrize("case", CONSISTENT, ids=lambda case: case.name)
def test_transposed_passes_are_the_convolution_passes(case, algo, device):
    """Without bias, conv_transpose2d is conv2d_grad_input, bit for bit; its gradients are conv2d and
    conv2d_grad_weight with the roles of x and grad_output swapped (likewise in 3-D)."""
    t = case.params()
    inputs = case.random_inputs(np.float32)
    x, w, gy = inputs["x"], inputs["weight"], inputs["grad_output"]
    conv = dict(t.conv.conv_args, device=device.device, algo=algo)
    transposed = dict(case.conv_args, device=device.device, algo=algo)

    def function(name):
        return getattr(clconv, name.format(rank(case)))

    assert np.array_equal(function("conv_transpose{}d")(x, w, **transposed),
                          function("conv{}d_grad_input")(x, w, t.output_shape, **conv))
    assert np.array_equal(function("conv_transpose{}d_grad_input")(gy, w, x.shape, **transposed),
                          function("conv{}d")(gy, w, **conv))
    assert np.array_equal(function("conv_transpose{}d_grad_weight")(x, gy, w.shape, **transposed),
                          function("conv{}d_grad_weight")(gy, x, w.shape, **conv))


def test_weight_gradient_is_bit_identical_across_runs(device):
    case = case_named("3x3-s2-p1-op1")
    inputs = case.random_inputs(np.float32)
    runs = [clconv.conv_transpose2d_grad_weight(inputs["x"], inputs["grad_output"], case.weight_shape,
                                                **case.conv_args, device=device.device)
            for _ in range(2)]
    assert np.array_equal(runs[0], runs[1])


@pytest.mark.parametrize("layout", ["c-order", "fortran-order", "strided-view"])
@pytest.mark.parametrize("pass_name", PASSES)
@pytest.mark.parametrize("case", [case_named("3x3-s2x3-p1x2-op1x2-d1x2"), case_named("1d-k3-s2-p1-op1")],
                         ids=lambda case: case.name)
def test_numpy_out_receives_the_result(case, pass_name, layout, device):
    inputs = case.random_inputs(np.float32)
    expected = check.run_pass(pass_name, case, inputs, device=device.device)
    if layout == "c-order":
        out = np.full(expected.shape, np.nan, np.float32)
    elif layout == "fortran-order":
        out = np.full(expected.shape, np.nan, np.float32, order="F")
    else:
        out = np.full((2,) + expected.shape, np.nan, np.float32)[1]
    assert check.run_pass(pass_name, case, inputs, device=device.device, out=out) is out
    assert np.array_equal(out, expected)


@pytest.mark.parametrize("pass_name", PASSES)
@pytest.mark.parametrize("case", [case_named("3x3-s2x3-p1x2-op1x2-d1x2"), case_named("1d-k3-s2-p1-op1")],
                         ids=lambda case: case.name)
def test_device_arrays_in_and_out(case, pass_name, device):
    """Device arrays in give device arrays out, equal to the NumPy call's; an ``out`` at an offset into a larger
    buffer receives the result there and nowhere else."""
    queue = platforms.resolve(device.device).queue
    inputs = case.random_inputs(np.float32)
    expected = check.run_pass(pass_name, case, inputs, device=device.device)
    on_device = {name: cl_array.to_device(queue, value) for name, value in inputs.items()}
    got = check.run_pass(pass_name, case, on_device, device=device.device)
    assert isinstance(got, cl_array.Array) and got.shape == expected.shape
    assert np.array_equal(got.get(), expected)
    whole = cl_array.to_device(queue, np.full((2,) + expected.shape, -7.0, np.float32))
    assert check.run_pass(pass_name, case, on_device, device=device.device, out=whole[1]) is not None
    host = whole.get()
    assert np.array_equal(host[1], expected) and np.all(host[0] == -7.0)


# -- bad arguments: clconv and its oracle refuse them alike, naming the argument ------------------------------

def f32(*shape):
    return np.ones(shape, np.float32)


X, W, W1 = f32(2, 4, 5, 5), f32(4, 3, 3, 3), f32(4, 3, 3)  # stride 2: y is (2, 3, 11, 11)


def test_out_sharing_memory_with_x_is_refused(device):
    shared = np.zeros(2 * 4 * 5 * 5 + 2 * 3 * 11 * 11, np.float32)
    x_view, out_view = shared[:200].reshape(X.shape), shared[150:150 + 726].reshape(2, 3, 11, 11)
    with pytest.raises(ValueError, match="out shares memory with x"):
        clconv.conv_transpose2d(x_view, W, stride=2, out=out_view, device=device.device)


def test_non_contiguous_device_arrays_are_refused_by_name(device):
    queue = platforms.resolve(device.device).queue
    x = cl_array.to_device(queue, np.ones((2, 4, 5, 5), np.float32)).transpose((0, 1, 3, 2))
    with pytest.raises(ValueError, match="x must be a C-contiguous device array"):
        clconv.conv_transpose2d(x, W, stride=2)
    x1 = cl_array.to_device(queue, np.ones((4, 2, 5), np.float32)).transpose((1, 0, 2))  # N and C swapped
    with pytest.raises(ValueError, match="x must be a C-contiguous device array"):
        clconv.conv_transpose1d(x1, W1, stride=2)


# -- the oracle against PyTorch ------------------------------------------------------------------------------

torch_cases = [pytest.param(case, id=case.name) for case in CASES
               if not isinstance(case.padding, tuple) or not isinstance(case.padding[0], tuple)]


@pytest.mark.parametrize("case", torch_cases)
def test_oracle_matches_torch(case):
    """reference.conv_transpose1d/2d/3d and their gradients against torch.nn.functional in float64."""
    torch = pytest.importorskip("torch")
    inputs = case.random_inputs(np.float64)
    x, w, b = (torch.tensor(inputs[name], requires_grad=True) for name in ("x", "weight", "bias"))
    function = getattr(torch.nn.functional, f"conv_transpose{rank(case)}d")
    y = function(x, w, b, **case.conv_args)
    grad = torch.tensor(inputs["grad_output"])
    expected = dict(zip(("grad_input", "grad_weight", "grad_bias"), torch.autograd.grad(y, (x, w, b), grad)),
                    forward=y)
    for pass_name in PASSES:
        got = call_function(reference, pass_name, case, inputs, calls=case.pass_calls)
        np.testing.assert_allclose(got, expected[pass_name].detach().numpy(), rtol=1e-12, atol=1e-12,
                                   err_msg=f"{pass_name} {case.name}")


def test_oracle_of_an_empty_batch():
    case = case_named("3x3-s2-n0")
    inputs = case.random_inputs(np.float64)
    assert reference.conv_transpose2d(inputs["x"], inputs["weight"], **case.conv_args).shape == (0, 2, 9, 9)
    assert not reference.conv_transpose2d_grad_weight(inputs["x"], inputs["grad_output"], case.weight_shape,
                                                      **case.conv_args).any()


def test_case_ids_are_readable():
    assert check.case_id(CASES[0], np.float16) == f"3x3-s2-p1-op1-{dtype_name(np.float16)}"
