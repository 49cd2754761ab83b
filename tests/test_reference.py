"""The oracle itself, checked against the seed's sum formulas written out as plain loops."""

import itertools

import numpy as np
import pytest

from clconv import check, reference
from clconv.params import Conv2DParams


def seed_cross_correlation(x, k):
    """SEED.md: y(r, c) = sum_{a<k1} sum_{b<k2} x(r + a, c + b) k(a, b), one channel, no padding."""
    k1, k2 = k.shape
    y = np.zeros((x.shape[0] - k1 + 1, x.shape[1] - k2 + 1))
    for r, c in itertools.product(range(y.shape[0]), range(y.shape[1])):
        y[r, c] = sum(x[r + a, c + b] * k[a, b] for a in range(k1) for b in range(k2))
    return y


def seed_kernel_gradient(x, grad_y, kernel_shape):
    """SEED.md: dL/dk(a', b') = sum_{r<H} sum_{c<W} dL/dy(r, c) x(r + a', c + b')."""
    grad_k = np.zeros(kernel_shape)
    for a, b in itertools.product(range(kernel_shape[0]), range(kernel_shape[1])):
        grad_k[a, b] = sum(grad_y[r, c] * x[r + a, c + b]
                           for r in range(grad_y.shape[0]) for c in range(grad_y.shape[1]))
    return grad_k


def seed_input_gradient(grad_y, k, input_shape):
    """Chain rule of the seed: dL/dx(i, j) = sum over (r, c, a, b) with r + a = i, c + b = j of dL/dy(r, c) k(a, b)."""
    grad_x = np.zeros(input_shape)
    for r, c, a, b in itertools.product(range(grad_y.shape[0]), range(grad_y.shape[1]),
                                        range(k.shape[0]), range(k.shape[1])):
        grad_x[r + a, c + b] += grad_y[r, c] * k[a, b]
    return grad_x


def test_seed_formulas_single_channel():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((6, 7))
    k = rng.standard_normal((3, 2))
    y = reference.conv2d(x[None, None], k[None, None])[0, 0]
    np.testing.assert_allclose(y, seed_cross_correlation(x, k), rtol=1e-13, atol=1e-13)
    grad_y = rng.standard_normal(y.shape)
    grad_k = reference.conv2d_grad_weight(x[None, None], grad_y[None, None], (1, 1, 3, 2))[0, 0]
    np.testing.assert_allclose(grad_k, seed_kernel_gradient(x, grad_y, (3, 2)), rtol=1e-13, atol=1e-13)
    grad_x = reference.conv2d_grad_input(grad_y[None, None], k[None, None], (1, 1, 6, 7))[0, 0]
    np.testing.assert_allclose(grad_x, seed_input_gradient(grad_y, k, (6, 7)), rtol=1e-13, atol=1e-13)


def valid_taps(p: Conv2DParams):
    """Every (output element, kernel tap) pair of the layer that reads an input pixel, by plain loops:
    (n, k, out_r, out_c, input channel, c, a, b, row, col)."""
    top, _, left, _ = p.padding
    for n, k, out_r, out_c in itertools.product(*map(range, p.output_shape)):
        g = k // p.K_per_group
        for c, a, b in itertools.product(range(p.C_per_group), range(p.R), range(p.S)):
            row = out_r * p.stride[0] - top + a * p.dilation[0]
            col = out_c * p.stride[1] - left + b * p.dilation[1]
            if 0 <= row < p.H and 0 <= col < p.W:
                yield n, k, out_r, out_c, g * p.C_per_group + c, c, a, b, row, col


def loop_conv2d(x, w, p: Conv2DParams):
    """The general layer, term by term: stride, padding, dilation, groups."""
    y = np.zeros(p.output_shape)
    for n, k, out_r, out_c, channel, c, a, b, row, col in valid_taps(p):
        y[n, k, out_r, out_c] += x[n, channel, row, col] * w[k, c, a, b]
    return y


def loop_gradients(x, w, grad_y, p: Conv2DParams):
    """dL/dx and dL/dw by the chain rule applied to loop_conv2d, term by term."""
    grad_x, grad_w = np.zeros(p.input_shape), np.zeros(p.weight_shape)
    for n, k, out_r, out_c, channel, c, a, b, row, col in valid_taps(p):
        grad_x[n, channel, row, col] += grad_y[n, k, out_r, out_c] * w[k, c, a, b]
        grad_w[k, c, a, b] += grad_y[n, k, out_r, out_c] * x[n, channel, row, col]
    return grad_x, grad_w


# A grouped layer with an output of (2, 6, 28, 28): room for the element test_compare_flags_a_single_wrong_element
# changes; chosen by name, so that reordering check.CASES cannot swap it.
CASE = next(case for case in check.CASES if case.name == "1x1-28x28-g2")

SMALL_CASES = [case for case in check.CASES if np.prod(case.params().output_shape) * np.prod(case.weight_shape) < 2e5]


@pytest.mark.parametrize("case", SMALL_CASES, ids=lambda case: case.name)
def test_oracle_matches_loops(case):
    p = case.params(np.float64)
    rng = np.random.default_rng(2)
    x, w = rng.standard_normal(p.input_shape), rng.standard_normal(p.weight_shape)
    bias, grad_y = rng.standard_normal(p.K), rng.standard_normal(p.output_shape)
    expected_y = loop_conv2d(x, w, p) + bias[None, :, None, None]
    np.testing.assert_allclose(reference.conv2d(x, w, bias, **case.conv_args), expected_y, rtol=1e-12, atol=1e-12)
    expected_gx, expected_gw = loop_gradients(x, w, grad_y, p)
    np.testing.assert_allclose(reference.conv2d_grad_input(grad_y, w, p.input_shape, **case.conv_args),
                               expected_gx, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(reference.conv2d_grad_weight(x, grad_y, p.weight_shape, **case.conv_args),
                               expected_gw, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(reference.conv2d_grad_bias(grad_y), grad_y.sum(axis=(0, 2, 3)), rtol=1e-12)


@pytest.mark.parametrize("dtype", check.DTYPES, ids=lambda d: np.dtype(d).name)
def test_oracle_returns_input_dtype(dtype):
    case = CASE
    inputs = check.random_inputs(case, dtype)
    assert reference.conv2d(inputs["x"], inputs["weight"], **case.conv_args).dtype == dtype
    assert reference.conv2d_grad_input(inputs["grad_output"], inputs["weight"], case.input_shape,
                                       **case.conv_args).dtype == dtype
    assert reference.conv2d_grad_weight(inputs["x"], inputs["grad_output"], case.weight_shape,
                                        **case.conv_args).dtype == dtype
    assert reference.conv2d_grad_bias(inputs["grad_output"]).dtype == dtype


def test_compare_flags_a_single_wrong_element():
    """The comparison the device tests rely on must fail for a one-element slip."""
    case = CASE
    inputs = check.random_inputs(case, np.float32)
    expected = reference.conv2d(*(inputs[n].astype(np.float64) for n in ("x", "weight", "bias")), **case.conv_args)
    bound = reference.conv2d(*(np.abs(inputs[n]).astype(np.float64) for n in ("x", "weight", "bias")),
                             **case.conv_args)
    got = expected.astype(np.float32)
    assert check.compare(got, expected, bound, np.float32).passed
    got[1, 2, 3, 4] += 1e-3 * bound[1, 2, 3, 4]
    result = check.compare(got, expected, bound, np.float32)
    assert not result.passed and "(1, 2, 3, 4)" in result.message
    got = expected.astype(np.float32)
    got[0, 0, 0, 0] = np.nan
    assert not check.compare(got, expected, bound, np.float32).passed
    assert not check.compare(got[:1], expected, bound, np.float32).passed
    assert not check.compare(expected, expected, bound, np.float32).passed  # float64 is the wrong dtype


def test_compare_accepts_the_nearest_half_below_the_smallest_normal_and_no_further():
    """A half result under fp16's smallest normal number (6.1e-5) lies on a grid of 2**-24 (6e-8): the nearest
    point of it passes however small the value, and a point two steps further fails."""
    expected = np.array([-2.6734662242233753e-05, 3.1e-7])
    bound = np.abs(expected)
    nearest = expected.astype(np.float16)
    assert check.compare(nearest, expected, bound, np.float16).passed
    spacing = np.float16(2.0 ** -24)
    assert not check.compare(nearest + 2 * spacing, expected, bound, np.float16).passed
