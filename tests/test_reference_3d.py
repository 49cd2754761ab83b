"""The 3-D oracle (reference.conv3d, reference.conv_transpose3d and their gradients) against the definitions
written out as plain loops, and against PyTorch in float64."""

import itertools

import numpy as np
import pytest

from clconv import check, reference
from clconv.params_3d import Conv3DParams, ConvTranspose3DParams

# name: (x shape (N, C, D, H, W), weight shape (K, C/groups, T, R, S), geometry arguments)
CONV_CASES = {
    "3x3x3-p1": ((2, 2, 4, 5, 5), (3, 2, 3, 3, 3), dict(padding=1)),
    "2x3x2-s2x1x2-p1x0x1": ((2, 2, 5, 4, 6), (2, 2, 2, 3, 2), dict(stride=(2, 1, 2), padding=(1, 0, 1))),
    "2x3x2-p1:0x0:2x2:1": ((1, 2, 4, 4, 5), (2, 2, 2, 3, 2), dict(padding=((1, 0), (0, 2), (2, 1)))),
    "2x2x2-p1-d2x1x3": ((1, 2, 5, 4, 7), (2, 2, 2, 2, 2), dict(padding=1, dilation=(2, 1, 3))),
    "3x1x2-g2": ((2, 4, 4, 3, 4), (6, 2, 3, 1, 2), dict(groups=2)),
    "3x3x3-p1-depthwise": ((1, 3, 3, 4, 4), (3, 1, 3, 3, 3), dict(padding=1, groups=3)),
    "3x2x3-same-d1x2x1": ((1, 2, 4, 5, 4), (2, 2, 3, 2, 3), dict(padding="same", dilation=(1, 2, 1))),
    "1x1x1-s2": ((2, 3, 3, 5, 4), (4, 3, 1, 1, 1), dict(stride=2)),
    "2x3x2-s2-p1:0x0:1x2:2-d2x1x1-g2": ((1, 4, 6, 5, 5), (4, 2, 2, 3, 2),
                                        dict(stride=2, padding=((1, 0), (0, 1), (2, 2)), dilation=(2, 1, 1),
                                             groups=2)),
    "3x3x3-p1-n0": ((0, 2, 3, 3, 3), (2, 2, 3, 3, 3), dict(padding=1)),
}

# name: (x shape (N, C_in, D, H, W), weight shape (C_in, C_out/groups, kD, kH, kW), geometry arguments)
TRANSPOSED_CASES = {
    "3x3x3-s2-p1-op1": ((2, 2, 2, 3, 3), (2, 3, 3, 3, 3), dict(stride=2, padding=1, output_padding=1)),
    "2x3x2-s2x1x3-p1x0x1-op1x0x2": ((1, 2, 3, 3, 2), (2, 2, 2, 3, 2),
                                    dict(stride=(2, 1, 3), padding=(1, 0, 1), output_padding=(1, 0, 2))),
    # output_padding at or above the stride is allowed where it stays below the dilation.
    "2x2x2-d2-op1": ((1, 2, 3, 3, 3), (2, 2, 2, 2, 2), dict(dilation=2, output_padding=1)),
    "2x2x3-s2x1x2-d1x2x1-op0x1x1": ((2, 2, 2, 3, 3), (2, 2, 2, 2, 3),
                                    dict(stride=(2, 1, 2), dilation=(1, 2, 1), output_padding=(0, 1, 1))),
    "2x3x2-s2-p1:0x0:2x1:1-op1": ((1, 2, 3, 3, 3), (2, 2, 2, 3, 2),
                                  dict(stride=2, padding=((1, 0), (0, 2), (1, 1)), output_padding=1)),
    "2x2x2-s1x2x2-d1x1x2-g2": ((1, 4, 2, 3, 3), (4, 3, 2, 2, 2), dict(stride=(1, 2, 2), dilation=(1, 1, 2), groups=2)),
    "3x3x3-s2-p1-depthwise": ((1, 3, 2, 2, 3), (3, 1, 3, 3, 3), dict(stride=2, padding=1, groups=3)),
    "1x1x1-s2-op1": ((2, 3, 2, 3, 2), (3, 2, 1, 1, 1), dict(stride=2, output_padding=1)),
    "3x3x3-s2-p1-n0": ((0, 2, 2, 2, 2), (2, 2, 3, 3, 3), dict(stride=2, padding=1)),
}


def conv_params(name) -> Conv3DParams:
    x_shape, w_shape, geometry = CONV_CASES[name]
    return Conv3DParams.create(x_shape, w_shape, **geometry, dtype=np.float64)


def transposed_params(name) -> ConvTranspose3DParams:
    x_shape, w_shape, geometry = TRANSPOSED_CASES[name]
    return ConvTranspose3DParams.create(x_shape, w_shape, **geometry, dtype=np.float64)


def random_arrays(x_shape, w_shape, y_shape, seed=3):
    """x, weight, bias (one per output channel) and grad_output, float64."""
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(x_shape), rng.standard_normal(w_shape), rng.standard_normal(y_shape[1]),
            rng.standard_normal(y_shape))


# -- plain loops ------------------------------------------------------------------------------------------------
# Each layer is a sum of products x[x_index] * weight[w_index] accumulated into y[y_index]; the generators list
# those index triples term by term, and loop_passes evaluates the forward pass and, by the chain rule, the input
# and weight gradients from them.

def conv_products(p: Conv3DParams):
    """y[n, k, od, oh, ow] += x[n, g*Cg + c, od*sd - front + t*dd, oh*sh - top + r*dh, ow*sw - left + s*dw]
    * weight[k, c, t, r, s], for every input voxel inside x."""
    front, _, top, _, left, _ = p.padding
    (sd, sh, sw), (dd, dh, dw) = p.stride, p.dilation
    for n, k, od, oh, ow in itertools.product(*map(range, p.output_shape)):
        g = k // (p.K // p.groups)
        for c, t, r, s in itertools.product(range(p.C_per_group), range(p.T), range(p.R), range(p.S)):
            d, h, w = od * sd - front + t * dd, oh * sh - top + r * dh, ow * sw - left + s * dw
            if 0 <= d < p.D and 0 <= h < p.H and 0 <= w < p.W:
                yield (n, g * p.C_per_group + c, d, h, w), (k, c, t, r, s), (n, k, od, oh, ow)


def transposed_products(layer: ConvTranspose3DParams):
    """y[n, g*Cog + co, i*sd - front + t*dd, j*sh - top + r*dh, k*sw - left + s*dw] += x[n, ci, i, j, k]
    * weight[ci, co, t, r, s], for every output voxel inside y: each input voxel scatters."""
    N, C_in, D, H, W = layer.input_shape
    _, C_out_g, kD, kH, kW = layer.weight_shape
    _, _, D_out, H_out, W_out = layer.output_shape
    front, _, top, _, left, _ = layer.padding
    (sd, sh, sw), (dd, dh, dw) = layer.conv.stride, layer.conv.dilation
    C_in_g = C_in // layer.conv.groups
    for n, ci, i, j, k in itertools.product(*map(range, layer.input_shape)):
        g = ci // C_in_g
        for co, t, r, s in itertools.product(range(C_out_g), range(kD), range(kH), range(kW)):
            d, h, w = i * sd - front + t * dd, j * sh - top + r * dh, k * sw - left + s * dw
            if 0 <= d < D_out and 0 <= h < H_out and 0 <= w < W_out:
                yield (n, ci, i, j, k), (ci, co, t, r, s), (n, g * C_out_g + co, d, h, w)


def loop_passes(products, x, w, bias, grad_y):
    """forward, grad_input, grad_weight and grad_bias of the layer whose products are listed."""
    y, grad_x, grad_w = np.zeros(grad_y.shape), np.zeros(x.shape), np.zeros(w.shape)
    for x_index, w_index, y_index in products:
        y[y_index] += x[x_index] * w[w_index]
        grad_x[x_index] += grad_y[y_index] * w[w_index]
        grad_w[w_index] += grad_y[y_index] * x[x_index]
    y += bias[None, :, None, None, None]
    grad_b = np.array([grad_y[:, k].sum() for k in range(grad_y.shape[1])])
    return {"forward": y, "grad_input": grad_x, "grad_weight": grad_w, "grad_bias": grad_b}


def assert_passes_match(got: dict, expected: dict, name: str):
    for pass_name, value in expected.items():
        assert got[pass_name].shape == value.shape, f"{pass_name} {name}"
        np.testing.assert_allclose(got[pass_name], value, rtol=1e-12, atol=1e-12, err_msg=f"{pass_name} {name}")


def oracle_conv3d(x, w, bias, grad_y, geometry):
    return {"forward": reference.conv3d(x, w, bias, **geometry),
            "grad_input": reference.conv3d_grad_input(grad_y, w, x.shape, **geometry),
            "grad_weight": reference.conv3d_grad_weight(x, grad_y, w.shape, **geometry),
            "grad_bias": reference.conv3d_grad_bias(grad_y)}


def oracle_conv_transpose3d(x, w, bias, grad_y, geometry):
    return {"forward": reference.conv_transpose3d(x, w, bias, **geometry),
            "grad_input": reference.conv_transpose3d_grad_input(grad_y, w, x.shape, **geometry),
            "grad_weight": reference.conv_transpose3d_grad_weight(x, grad_y, w.shape, **geometry),
            "grad_bias": reference.conv_transpose3d_grad_bias(grad_y)}


@pytest.mark.parametrize("name", CONV_CASES)
def test_conv3d_oracle_matches_loops(name):
    p = conv_params(name)
    x, w, bias, grad_y = random_arrays(p.input_shape, p.weight_shape, p.output_shape)
    assert_passes_match(oracle_conv3d(x, w, bias, grad_y, CONV_CASES[name][2]),
                        loop_passes(conv_products(p), x, w, bias, grad_y), name)


@pytest.mark.parametrize("name", TRANSPOSED_CASES)
def test_conv_transpose3d_oracle_matches_loops(name):
    t = transposed_params(name)
    x, w, bias, grad_y = random_arrays(t.input_shape, t.weight_shape, t.output_shape)
    assert_passes_match(oracle_conv_transpose3d(x, w, bias, grad_y, TRANSPOSED_CASES[name][2]),
                        loop_passes(transposed_products(t), x, w, bias, grad_y), name)


def test_same_padding_keeps_every_size_and_puts_the_odd_pixel_after():
    p = conv_params("3x2x3-same-d1x2x1")
    assert p.padding == (1, 1, 1, 1, 1, 1) and p.output_shape[2:] == p.input_shape[2:]
    assert Conv3DParams.create((1, 1, 4, 4, 4), (1, 1, 2, 4, 1), padding="same").padding == (0, 1, 1, 2, 0, 0)


def test_a_depth_of_one_is_the_2d_oracle():
    rng = np.random.default_rng(5)
    x, w, bias = rng.standard_normal((2, 4, 1, 6, 5)), rng.standard_normal((6, 2, 1, 3, 2)), rng.standard_normal(6)
    geometry_2d = dict(stride=(2, 1), padding=((1, 0), (0, 1)), dilation=(1, 2), groups=2)
    geometry_3d = dict(stride=(1, 2, 1), padding=((0, 0), (1, 0), (0, 1)), dilation=(1, 1, 2), groups=2)
    np.testing.assert_allclose(reference.conv3d(x, w, bias, **geometry_3d)[:, :, 0],
                               reference.conv2d(x[:, :, 0], w[:, :, 0], bias, **geometry_2d), rtol=1e-13, atol=1e-13)
    xt, wt = rng.standard_normal((2, 4, 1, 3, 3)), rng.standard_normal((4, 3, 1, 3, 2))
    geometry_2d = dict(stride=2, padding=(1, 0), output_padding=(1, 0), groups=2, dilation=(1, 2))
    geometry_3d = dict(stride=(1, 2, 2), padding=(0, 1, 0), output_padding=(0, 1, 0), groups=2, dilation=(1, 1, 2))
    np.testing.assert_allclose(reference.conv_transpose3d(xt, wt, bias, **geometry_3d)[:, :, 0],
                               reference.conv_transpose2d(xt[:, :, 0], wt[:, :, 0], bias, **geometry_2d),
                               rtol=1e-13, atol=1e-13)


# -- PyTorch ----------------------------------------------------------------------------------------------------

def torch_passes(torch, y, x, w, b, grad_y) -> dict:
    """y's forward value and, by autograd, its gradients with respect to x, w and b, as float64 NumPy arrays."""
    gx, gw, gb = torch.autograd.grad(y, (x, w, b), torch.tensor(grad_y))
    return {"forward": y.detach().numpy(), "grad_input": gx.numpy(), "grad_weight": gw.numpy(),
            "grad_bias": gb.numpy()}


@pytest.mark.parametrize("name", CONV_CASES)
def test_conv3d_oracle_matches_torch(name):
    """Every pass against torch.nn.functional.conv3d and autograd in float64 (asymmetric padding by F.pad;
    'same' passed to PyTorch as it is, so that the side of the odd padding pixel is checked too)."""
    torch = pytest.importorskip("torch")
    functional = torch.nn.functional
    p = conv_params(name)
    geometry = CONV_CASES[name][2]
    x, w, bias, grad_y = random_arrays(p.input_shape, p.weight_shape, p.output_shape)
    tx, tw, tb = (torch.tensor(a, requires_grad=True) for a in (x, w, bias))
    common = dict(stride=p.stride, dilation=p.dilation, groups=p.groups)
    if geometry.get("padding") == "same":
        y = functional.conv3d(tx, tw, tb, padding="same", **common)
    else:
        front, back, top, bottom, left, right = p.padding
        y = functional.conv3d(functional.pad(tx, (left, right, top, bottom, front, back)), tw, tb, **common)
    assert_passes_match(oracle_conv3d(x, w, bias, grad_y, geometry), torch_passes(torch, y, tx, tw, tb, grad_y),
                        name)


def symmetric(padding) -> bool:
    """Whether (front, back, top, bottom, left, right) pads every axis alike on both sides."""
    return padding[0::2] == padding[1::2]


SYMMETRIC_CONV_CASES = [name for name in CONV_CASES if symmetric(conv_params(name).padding)]


@pytest.mark.parametrize("name", SYMMETRIC_CONV_CASES)
def test_conv3d_gradients_match_torch_nn_grad(name):
    """The gradients against torch.nn.grad.conv3d_input and conv3d_weight, which take symmetric padding."""
    torch = pytest.importorskip("torch")
    p = conv_params(name)
    geometry = CONV_CASES[name][2]
    x, w, _, grad_y = random_arrays(p.input_shape, p.weight_shape, p.output_shape)
    args = dict(stride=p.stride, padding=p.padding[0::2], dilation=p.dilation, groups=p.groups)
    expected_gx = torch.nn.grad.conv3d_input(p.input_shape, torch.tensor(w), torch.tensor(grad_y), **args)
    expected_gw = torch.nn.grad.conv3d_weight(torch.tensor(x), p.weight_shape, torch.tensor(grad_y), **args)
    np.testing.assert_allclose(reference.conv3d_grad_input(grad_y, w, x.shape, **geometry), expected_gx.numpy(),
                               rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(reference.conv3d_grad_weight(x, grad_y, w.shape, **geometry), expected_gw.numpy(),
                               rtol=1e-12, atol=1e-12)


# PyTorch's conv_transpose3d takes one padding per axis, so the asymmetric case is checked by the loops only.
SYMMETRIC_TRANSPOSED_CASES = [name for name in TRANSPOSED_CASES if symmetric(transposed_params(name).padding)]


@pytest.mark.parametrize("name", SYMMETRIC_TRANSPOSED_CASES)
def test_conv_transpose3d_oracle_matches_torch(name):
    """Every pass against torch.nn.functional.conv_transpose3d and autograd in float64."""
    torch = pytest.importorskip("torch")
    t = transposed_params(name)
    geometry = TRANSPOSED_CASES[name][2]
    x, w, bias, grad_y = random_arrays(t.input_shape, t.weight_shape, t.output_shape)
    tx, tw, tb = (torch.tensor(a, requires_grad=True) for a in (x, w, bias))
    y = torch.nn.functional.conv_transpose3d(tx, tw, tb, stride=t.conv.stride, padding=t.padding[0::2],
                                             output_padding=t.output_padding, groups=t.conv.groups,
                                             dilation=t.conv.dilation)
    assert_passes_match(oracle_conv_transpose3d(x, w, bias, grad_y, geometry),
                        torch_passes(torch, y, tx, tw, tb, grad_y), name)


# -- dtypes and arguments ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", check.DTYPES, ids=lambda d: np.dtype(d).name)
def test_oracle_returns_input_dtype(dtype):
    p, t = conv_params("2x3x2-s2-p1:0x0:1x2:2-d2x1x1-g2"), transposed_params("2x3x2-s2x1x3-p1x0x1-op1x0x2")
    x, w, bias, grad_y = (a.astype(dtype) for a in random_arrays(p.input_shape, p.weight_shape, p.output_shape))
    for result in oracle_conv3d(x, w, bias, grad_y, CONV_CASES["2x3x2-s2-p1:0x0:1x2:2-d2x1x1-g2"][2]).values():
        assert result.dtype == dtype
    x, w, bias, grad_y = (a.astype(dtype) for a in random_arrays(t.input_shape, t.weight_shape, t.output_shape))
    for result in oracle_conv_transpose3d(x, w, bias, grad_y, TRANSPOSED_CASES["2x3x2-s2x1x3-p1x0x1-op1x0x2"][2]
                                          ).values():
        assert result.dtype == dtype


def test_oracle_refuses_bad_arguments_by_name():
    x, w = np.ones((1, 2, 3, 3, 3)), np.ones((2, 2, 2, 2, 2))
    with pytest.raises(ValueError, match="x must be a 5-D array"):
        reference.conv3d(x[0], w)
    with pytest.raises(ValueError, match="grad_output must have the output shape"):
        reference.conv3d_grad_input(np.ones((1, 2, 3, 3, 3)), w, x.shape)
    with pytest.raises(ValueError, match="grad_output must be a 5-D array"):
        reference.conv3d_grad_bias(np.ones((1, 2, 3, 3)))
    with pytest.raises(ValueError, match="'same' and 'valid' are not defined"):
        reference.conv_transpose3d(x, w, padding="same")
    with pytest.raises(TypeError, match="x must be a numpy.ndarray"):
        reference.conv3d(FakeArray(x.shape, x.dtype), w)


class FakeArray:
    """Shape and dtype of an array without being one: the oracle takes NumPy arrays only."""

    def __init__(self, shape, dtype):
        self.shape, self.dtype = shape, dtype
