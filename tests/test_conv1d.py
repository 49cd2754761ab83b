"""1-D convolution (its passes against the oracle run in test_passes.py): the oracle against plain loops and
PyTorch, and the array handling (``out=``, device arrays, empty batches, strides) of the unit-H views it runs on."""

import itertools

import numpy as np
import pyopencl.array as cl_array
import pytest

import clconv
from clconv import check, platforms, reference
from clconv.params import PASSES
from clconv.params_1d import Conv1DParams

# -- the oracle, checked independently of the 2-D oracle it runs through ---------------------------------------

def valid_taps(p: Conv1DParams):
    """Every (output element, kernel tap) pair that reads an input element, by plain loops:
    (n, k, q, input channel, c, s, i)."""
    left = p.padding[0]
    c_per_group, k_per_group = p.C // p.groups, p.K // p.groups
    for n, k, q in itertools.product(*map(range, p.output_shape)):
        for c, s in itertools.product(range(c_per_group), range(p.S)):
            i = q * p.stride - left + s * p.dilation
            if 0 <= i < p.L:
                yield n, k, q, (k // k_per_group) * c_per_group + c, c, s, i


def loop_passes(x, w, bias, grad_y, p: Conv1DParams):
    """y, dL/dx and dL/dw of the 1-D layer, term by term."""
    y, grad_x, grad_w = np.zeros(p.output_shape), np.zeros(p.input_shape), np.zeros(p.weight_shape)
    for n, k, q, channel, c, s, i in valid_taps(p):
        y[n, k, q] += x[n, channel, i] * w[k, c, s]
        grad_x[n, channel, i] += grad_y[n, k, q] * w[k, c, s]
        grad_w[k, c, s] += grad_y[n, k, q] * x[n, channel, i]
    return y + bias[None, :, None], grad_x, grad_w


SMALL_CASES_1D = [case for case in check.CASES_1D if case.name != "k3-c64-k64"]


def _float64_data(p, seed=2):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(p.input_shape), rng.standard_normal(p.weight_shape), rng.standard_normal(p.K),
            rng.standard_normal(p.output_shape))


@pytest.mark.parametrize("case", SMALL_CASES_1D, ids=lambda case: case.name)
def test_oracle_1d_matches_loops(case):
    p = case.params(np.float64)
    x, w, bias, grad_y = _float64_data(p)
    expected_y, expected_gx, expected_gw = loop_passes(x, w, bias, grad_y, p)
    tolerance = dict(rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(reference.conv1d(x, w, bias, **case.conv_args), expected_y, **tolerance)
    np.testing.assert_allclose(reference.conv1d_grad_input(grad_y, w, p.input_shape, **case.conv_args),
                               expected_gx, **tolerance)
    np.testing.assert_allclose(reference.conv1d_grad_weight(x, grad_y, p.weight_shape, **case.conv_args),
                               expected_gw, **tolerance)
    np.testing.assert_allclose(reference.conv1d_grad_bias(grad_y), grad_y.sum(axis=(0, 2)), **tolerance)


def test_oracle_1d_single_channel_is_np_correlate():
    rng = np.random.default_rng(4)
    x, k = rng.standard_normal(23), rng.standard_normal(5)
    np.testing.assert_allclose(reference.conv1d(x[None, None], k[None, None])[0, 0],
                               np.correlate(x, k, mode="valid"), rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(reference.conv1d(x[None, None], k[None, None], padding="same")[0, 0],
                               np.correlate(x, k, mode="same"), rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("case", check.CASES_1D, ids=lambda case: case.name)
def test_oracle_1d_matches_torch(case):
    """Forward and every gradient against torch.nn.functional.conv1d in float64 (asymmetric padding by F.pad)."""
    torch = pytest.importorskip("torch")
    functional = torch.nn.functional
    p = case.params(np.float64)
    x, w, bias, grad_y = _float64_data(p, seed=3)
    tx, tw, tb = (torch.tensor(a, requires_grad=True) for a in (x, w, bias))
    left, right = p.padding
    y = functional.conv1d(functional.pad(tx, (left, right)), tw, tb, stride=p.stride, dilation=p.dilation,
                          groups=p.groups)
    gx, gw, gb = torch.autograd.grad(y, (tx, tw, tb), torch.tensor(grad_y))
    tolerance = dict(rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(reference.conv1d(x, w, bias, **case.conv_args), y.detach().numpy(), **tolerance)
    np.testing.assert_allclose(reference.conv1d_grad_input(grad_y, w, p.input_shape, **case.conv_args),
                               gx.numpy(), **tolerance)
    np.testing.assert_allclose(reference.conv1d_grad_weight(x, grad_y, p.weight_shape, **case.conv_args),
                               gw.numpy(), **tolerance)
    np.testing.assert_allclose(reference.conv1d_grad_bias(grad_y), gb.numpy(), **tolerance)


def test_padding_forms_and_the_2d_layer_they_become():
    p = Conv1DParams.create((2, 4, 10), (6, 2, 4), stride=(1,), padding="same", dilation=(3,), groups=2)
    assert p.padding == (4, 5) and p.output_shape == (2, 6, 10)
    assert p.layer.input_shape == (2, 4, 1, 10) and p.layer.weight_shape == (6, 2, 1, 4)
    assert p.layer.padding == (0, 0, 4, 5) and p.layer.stride == (1, 1) and p.layer.dilation == (1, 3)
    for padding, expected in ((2, (2, 2)), ((2,), (2, 2)), ((1, 3), (1, 3)), ("valid", (0, 0)), ("VALID", (0, 0))):
        assert Conv1DParams.create((1, 1, 9), (1, 1, 3), padding=padding).padding == expected
    assert Conv1DParams.create((1, 1, 9), (1, 1, 3), stride=2, padding=(1, 0)).L_out == 4


# -- arrays: out=, device arrays, empty batches, memory layouts -----------------------------------------------

CASE = next(case for case in check.CASES_1D if case.name == "k7-s2-d3-g3")


@pytest.fixture(scope="module")
def inputs():
    return check.random_inputs(CASE, np.float32)


@pytest.mark.parametrize("pass_name", PASSES)
def test_device_arrays_stay_on_device(device, inputs, pass_name):
    target = platforms.resolve(device.device)
    on_device = {name: cl_array.to_device(target.queue, value) for name, value in inputs.items()}
    result = check.run_pass(pass_name, CASE, on_device)
    assert isinstance(result, cl_array.Array) and result.context == target.context
    assert result.shape == CASE.params().result_shape(pass_name) and result.flags.c_contiguous
    assert result.get().tobytes() == check.run_pass(pass_name, CASE, inputs, device=device.device).tobytes()


def test_any_memory_layout(device, inputs):
    """Fortran order, strided views, negative strides and big-endian data give the same bytes."""
    x, w = inputs["x"], inputs["weight"]
    expected = clconv.conv1d(x, w, device=device.device, **CASE.conv_args)
    wide = np.zeros(x.shape[:2] + (2 * x.shape[2],), np.float32)
    wide[..., ::2] = x
    layouts = {"fortran": (np.asfortranarray(x), np.asfortranarray(w)), "strided": (wide[..., ::2], w),
               "reversed": (x[..., ::-1].copy()[..., ::-1], w[..., ::-1].copy()[..., ::-1]),
               "big-endian": (x.astype(">f4"), w.astype(">f4"))}
    for name, (x_layout, w_layout) in layouts.items():
        got = clconv.conv1d(x_layout, w_layout, device=device.device, **CASE.conv_args)
        assert got.tobytes() == expected.tobytes(), name


def test_empty_batch(device):
    case = check.Case("empty", (0, 3, 9), (4, 3, 3), padding=1)
    data = check.random_inputs(case, np.float32)
    y = check.run_pass("forward", case, data, device=device.device)
    assert y.shape == (0, 4, 9) and y.dtype == np.float32
    assert check.run_pass("grad_input", case, data, device=device.device).shape == (0, 3, 9)
    out = np.full((4, 3, 3), np.nan, np.float32)
    assert check.run_pass("grad_weight", case, data, device=device.device, out=out) is out
    assert np.all(out == 0)
    np.testing.assert_array_equal(check.run_pass("grad_bias", case, data, device=device.device),
                                  np.zeros(4, np.float32))


def test_repeat_runs_bit_identical(device, inputs):
    first = check.run_pass("grad_weight", CASE, inputs, device=device.device)
    assert check.run_pass("grad_weight", CASE, inputs, device=device.device).tobytes() == first.tobytes()


@pytest.mark.parametrize("make_out, error, message", [
    (lambda shape: np.empty(shape[:-1] + (shape[-1] + 1,), np.float32), ValueError, r"out must have shape \("),
    (lambda shape: np.empty(shape + (1,), np.float32), ValueError, r"out must have shape \("),
    (lambda shape: np.empty(shape, np.float64), TypeError, "out must have dtype float32"),
    (lambda shape: np.empty(shape, np.float32).tolist(), TypeError, "out must be a numpy.ndarray"),
    (lambda shape: np.broadcast_to(np.float32(0), shape), ValueError, "out must be a writeable array"),
], ids=["wrong-length", "wrong-ndim", "wrong-dtype", "a-list", "read-only"])
@pytest.mark.parametrize("pass_name", PASSES)
def test_bad_out_is_refused(device, inputs, pass_name, make_out, error, message):
    shape = CASE.params().result_shape(pass_name)
    with pytest.raises(error, match=message) as raised:
        check.run_pass(pass_name, CASE, inputs, device=device.device, out=make_out(shape))
    if "shape" in message:
        assert f"out must have shape {shape}, got" in str(raised.value)  # the 1-D shapes, not the 2-D views'


def test_out_overlapping_an_input_is_refused(device):
    case = check.Case("same-shape", (2, 4, 6), (4, 4, 3), padding=1)
    data = check.random_inputs(case, np.float32)
    with pytest.raises(ValueError, match="out shares memory with x"):
        check.run_pass("forward", case, data, device=device.device, out=data["x"])


def test_non_contiguous_device_array_is_named_in_1d(device):
    queue = platforms.resolve(device.device).queue
    # N and C swapped (a channels-last view, (N, L, C) memory, would be read as it lies)
    x = cl_array.to_device(queue, np.ones((4, 2, 8), np.float32)).transpose((1, 0, 2))
    with pytest.raises(ValueError, match=r"x must be a C-contiguous device array or a channels-last view of one "
                                         r"\(got strides \(32, 64, 4\)\)"):
        clconv.conv1d(x, np.ones((3, 4, 3), np.float32))
