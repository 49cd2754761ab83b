"""``out=``: every pass writes into a caller's NumPy or device array, and refuses one that does not fit."""

import dataclasses

import numpy as np
import pyopencl as cl
import pyopencl.array as cl_array
import pytest

from clconv import check, platforms
from clconv.params import PASSES

CASE = next(case for case in check.CASES if case.name == "3x3-s2-d2-g3")


# A 2-D layer, a 1-D one (which hands its out on to the 2-D path as a view with a unit axis), and a 3-D one
# (whose result comes out of the axis swap, the depth folding or, for the weight gradient, the 2-D plan).
OUT_CASES = [pytest.param(CASE, id="2d"),
             pytest.param(next(case for case in check.CASES_1D if case.name == "k7-s2-d3-g3"), id="1d"),
             pytest.param(next(case for case in check.CASES_3D if case.name == "2x3x1-s2x1x2-d2x1x1-asympad"), id="3d")]


def result_shape(pass_name: str, case=CASE) -> tuple:
    return case.params(np.float32).result_shape(pass_name)


@pytest.fixture(scope="module")
def inputs():
    return check.random_inputs(CASE, np.float32)


@pytest.mark.parametrize("layout", ["c-order", "fortran-order", "offset-view", "every-other-element", "channels-last"])
@pytest.mark.parametrize("pass_name", PASSES)
@pytest.mark.parametrize("case", OUT_CASES)
def test_numpy_out_receives_the_result(device, case, pass_name, layout):
    inputs = check.random_inputs(case, np.float32)
    expected = check.run_pass(pass_name, case, inputs, device=device.device)
    shape = result_shape(pass_name, case)
    if layout == "c-order" or (layout == "channels-last" and len(shape) < 3):
        out = np.full(shape, np.nan, np.float32)
    elif layout == "channels-last":  # (N, *spatial, C) memory; the inputs are channels-last too
        out = np.moveaxis(np.full((shape[0],) + shape[2:] + (shape[1],), np.nan, np.float32), -1, 1)
        inputs = {name: np.moveaxis(np.ascontiguousarray(np.moveaxis(value, 1, -1)), -1, 1) if value.ndim >= 3
                  else value for name, value in inputs.items()}
    elif layout == "fortran-order":
        out = np.full(shape, np.nan, np.float32, order="F")
    elif layout == "offset-view":
        out = np.full((2,) + shape, np.nan, np.float32)[1]  # a view at an offset into a larger array
    else:
        out = np.full(shape[:-1] + (2 * shape[-1],), np.nan, np.float32)[..., ::2]
    returned = check.run_pass(pass_name, case, inputs, device=device.device, out=out)
    assert returned is out
    assert np.array_equal(out, expected)


@pytest.mark.parametrize("inputs_on", ["numpy", "device"])
@pytest.mark.parametrize("pass_name", PASSES)
@pytest.mark.parametrize("case", OUT_CASES)
def test_device_out_receives_the_result(device, case, pass_name, inputs_on):
    inputs = check.random_inputs(case, np.float32)
    target = platforms.resolve(device.device)
    expected = check.run_pass(pass_name, case, inputs, device=device.device)
    shape = result_shape(pass_name, case)
    # The second half of a larger buffer: the result must land at the array's offset, and only there.
    whole = cl_array.to_device(target.queue, np.full((2,) + shape, -7.0, np.float32))
    out = whole[1]
    given = inputs
    if inputs_on == "device":
        given = {name: cl_array.to_device(target.queue, value) for name, value in inputs.items()}
    returned = check.run_pass(pass_name, case, given, device=device.device, out=out)
    assert returned is out
    host = whole.get()
    assert np.array_equal(host[1], expected)
    assert np.all(host[0] == -7.0)


@pytest.mark.parametrize("pass_name", ["forward", "grad_weight"])
def test_out_on_batches_run_in_chunks(monkeypatch, device, inputs, pass_name):
    """A NumPy call too big for one allocation runs in batch chunks; ``out`` still gets the whole result."""
    case = check.Case("chunked", (5, 3, 9, 9), (4, 3, 3, 3), padding=1)
    data = check.random_inputs(case, np.float32)
    target = platforms.resolve(device.device)
    small = dataclasses.replace(target, info=dataclasses.replace(target.info, max_alloc_bytes=2 * 4 * 9 * 9 * 4))
    expected = check.run_pass(pass_name, case, data, device=small)
    out = np.full(result_shape(pass_name, case), np.nan, np.float32)
    assert check.run_pass(pass_name, case, data, device=small, out=out) is out
    assert np.array_equal(out, expected)


def test_out_of_an_empty_batch(device):
    case = check.Case("empty", (0, 3, 9, 9), (4, 3, 3, 3), padding=1)
    data = check.random_inputs(case, np.float32)
    out = np.empty((0, 4, 9, 9), np.float32)
    assert check.run_pass("forward", case, data, device=device.device, out=out) is out
    gradient = np.full((4, 3, 3, 3), np.nan, np.float32)
    check.run_pass("grad_weight", case, data, device=device.device, out=gradient)
    assert np.all(gradient == 0)


@pytest.mark.parametrize("make_out, error, message", [
    (lambda shape: np.empty(shape[:-1] + (shape[-1] + 1,), np.float32), ValueError, "out must have shape"),
    (lambda shape: np.empty(shape, np.float64), TypeError, "out must have dtype float32"),
    (lambda shape: np.empty(shape, np.float32).tolist(), TypeError, "out must be a numpy.ndarray"),
    (lambda shape: np.broadcast_to(np.float32(0), shape), ValueError, "out must be a writeable array"),
], ids=["wrong-shape", "wrong-dtype", "a-list", "read-only"])
@pytest.mark.parametrize("pass_name", PASSES)
def test_bad_out_is_refused(device, inputs, pass_name, make_out, error, message):
    with pytest.raises(error, match=message):
        check.run_pass(pass_name, CASE, inputs, device=device.device, out=make_out(result_shape(pass_name)))


def test_out_overlapping_an_input_is_refused(device):
    case = check.Case("same-shape", (2, 4, 6, 6), (4, 4, 3, 3), padding=1)
    data = check.random_inputs(case, np.float32)
    with pytest.raises(ValueError, match="out shares memory with x"):
        check.run_pass("forward", case, data, device=device.device, out=data["x"])
    target = platforms.resolve(device.device)
    on_device = {name: cl_array.to_device(target.queue, value) for name, value in data.items()}
    with pytest.raises(ValueError, match="out shares memory with grad_output"):
        check.run_pass("grad_input", case, on_device, device=device.device, out=on_device["grad_output"])


def test_device_out_on_another_context(device, inputs):
    other = cl.Context([device.device])
    out = cl_array.empty(cl.CommandQueue(other), result_shape("forward"), np.float32)
    with pytest.raises(ValueError, match="out lives on a different OpenCL context|out lives on another"):
        target = platforms.resolve(device.device)
        check.run_pass("forward", CASE, {name: cl_array.to_device(target.queue, value)
                                         for name, value in inputs.items()}, device=device.device, out=out)
