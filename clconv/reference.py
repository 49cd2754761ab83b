"""The NumPy oracle: the specification every OpenCL kernel is tested against.

Same four functions and argument names as the public API (no ``device``, ``algo``,
``max_workspace_bytes`` or ``out``).
Each computes in float64 and returns the input dtype. The formulation is a
loop over the R x S kernel taps; for every tap the input pixels it touches
form a strided view of the zero-padded input, and the channel contraction is
one ``einsum``. Groups are an explicit axis. The 1-D functions are the 2-D ones with H = R = 1
(:mod:`clconv.params_1d`); the tests check them against a direct 1-D formula and PyTorch.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from . import params as _params
from . import params_1d, transposed1d
from .params import Padding, Pair
from .params_1d import Padding1D, Single


def _as_float64(name, array):
    if not isinstance(array, np.ndarray):
        raise TypeError(f"{name} must be a numpy.ndarray, got {type(array).__name__}")
    return array.astype(np.float64)


def _tap_window(p: _params.Conv2DParams, r: int, s: int):
    """Index expressions selecting, in the padded input, the pixels kernel tap (r, s) touches."""
    top, left = r * p.dilation[0], s * p.dilation[1]
    rows = slice(top, top + p.stride[0] * (p.P - 1) + 1, p.stride[0])
    cols = slice(left, left + p.stride[1] * (p.Q - 1) + 1, p.stride[1])
    return (slice(None), slice(None), rows, cols)


def _pad(x64, p: _params.Conv2DParams):
    top, bottom, left, right = p.padding
    return np.pad(x64, ((0, 0), (0, 0), (top, bottom), (left, right)))


def _grouped_weight(w64, p: _params.Conv2DParams):
    """(K, Cg, R, S) -> (G, Kg, Cg, R, S)."""
    return w64.reshape(p.groups, p.K_per_group, p.C_per_group, p.R, p.S)


def _grouped(t64, p: _params.Conv2DParams):
    """(N, G*X, A, B) -> (N, G, X, A, B)."""
    n, channels = t64.shape[:2]
    return t64.reshape(n, p.groups, channels // p.groups, *t64.shape[2:])


def conv2d(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None = None, stride: Pair = 1, padding: Padding = 0,
           dilation: Pair = 1, groups: int = 1) -> np.ndarray:
    """y[n,k,p,q] = bias[k] + sum_{c,r,s} x_pad[n, g*Cg+c, p*sh + r*dh, q*sw + s*dw] * weight[k,c,r,s]."""
    p = _params.forward_params(x, weight, bias, stride, padding, dilation, groups)
    xg = _grouped(_pad(_as_float64("x", x), p), p)
    wg = _grouped_weight(_as_float64("weight", weight), p)
    y = np.zeros((p.N, p.groups, p.K_per_group, p.P, p.Q))
    for r in range(p.R):
        for s in range(p.S):
            window = xg[(slice(None),) + _tap_window(p, r, s)]
            y += np.einsum("ngcpq,gkc->ngkpq", window, wg[..., r, s], optimize=True)
    y = y.reshape(p.output_shape)
    if bias is not None:
        y += _as_float64("bias", bias)[None, :, None, None]
    return y.astype(p.dtype)


def conv2d_grad_input(grad_output: np.ndarray, weight: np.ndarray, input_shape: Sequence[int], stride: Pair = 1,
                      padding: Padding = 0, dilation: Pair = 1, groups: int = 1) -> np.ndarray:
    """dL/dx: every output pixel scatters grad_output * weight back onto the input pixels it read."""
    p = _params.grad_input_params(grad_output, weight, input_shape, stride, padding, dilation, groups)
    gy = _grouped(_as_float64("grad_output", grad_output), p)
    wg = _grouped_weight(_as_float64("weight", weight), p)
    top, bottom, left, right = p.padding
    gx_pad = np.zeros((p.N, p.groups, p.C_per_group, p.H + top + bottom, p.W + left + right))
    for r in range(p.R):
        for s in range(p.S):
            gx_pad[(slice(None),) + _tap_window(p, r, s)] += np.einsum("ngkpq,gkc->ngcpq", gy, wg[..., r, s],
                                                                       optimize=True)
    gx = gx_pad[:, :, :, top:top + p.H, left:left + p.W]
    return gx.reshape(p.input_shape).astype(p.dtype)


def conv2d_grad_weight(x: np.ndarray, grad_output: np.ndarray, weight_shape: Sequence[int], stride: Pair = 1,
                       padding: Padding = 0, dilation: Pair = 1, groups: int = 1) -> np.ndarray:
    """dL/dk[k,c,r,s] = sum_{n,p,q} grad_output[n,k,p,q] * x_pad[n, g*Cg+c, p*sh + r*dh, q*sw + s*dw]."""
    p = _params.grad_weight_params(x, grad_output, weight_shape, stride, padding, dilation, groups)
    xg = _grouped(_pad(_as_float64("x", x), p), p)
    gy = _grouped(_as_float64("grad_output", grad_output), p)
    gw = np.zeros((p.groups, p.K_per_group, p.C_per_group, p.R, p.S))
    for r in range(p.R):
        for s in range(p.S):
            window = xg[(slice(None),) + _tap_window(p, r, s)]
            gw[..., r, s] = np.einsum("ngkpq,ngcpq->gkc", gy, window, optimize=True)
    return gw.reshape(p.weight_shape).astype(p.dtype)


def conv2d_grad_bias(grad_output: np.ndarray) -> np.ndarray:
    """dL/db[k] = sum_{n,p,q} grad_output[n,k,p,q]."""
    _params.grad_bias_params(grad_output)
    return _as_float64("grad_output", grad_output).sum(axis=(0, 2, 3)).astype(grad_output.dtype)


def conv1d(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None = None, stride: Single = 1,
           padding: Padding1D = 0, dilation: Single = 1, groups: int = 1) -> np.ndarray:
    """y[n,k,q] = bias[k] + sum_{c,s} x_pad[n, g*Cg+c, q*stride + s*dilation] * weight[k,c,s]."""
    layer = params_1d.forward_params(x, weight, bias, stride, padding, dilation, groups)
    return params_1d.run_as_2d(conv2d, "forward", layer, {"x": x, "weight": weight, "bias": bias})


def conv1d_grad_input(grad_output: np.ndarray, weight: np.ndarray, input_shape: Sequence[int], stride: Single = 1,
                      padding: Padding1D = 0, dilation: Single = 1, groups: int = 1) -> np.ndarray:
    """dL/dx of a 1-D layer (see :func:`conv2d_grad_input`)."""
    layer = params_1d.grad_input_params(grad_output, weight, input_shape, stride, padding, dilation, groups)
    return params_1d.run_as_2d(conv2d_grad_input, "grad_input", layer, {"grad_output": grad_output, "weight": weight})


def conv1d_grad_weight(x: np.ndarray, grad_output: np.ndarray, weight_shape: Sequence[int], stride: Single = 1,
                       padding: Padding1D = 0, dilation: Single = 1, groups: int = 1) -> np.ndarray:
    """dL/dk[k,c,s] = sum_{n,q} grad_output[n,k,q] * x_pad[n, g*Cg+c, q*stride + s*dilation]."""
    layer = params_1d.grad_weight_params(x, grad_output, weight_shape, stride, padding, dilation, groups)
    return params_1d.run_as_2d(conv2d_grad_weight, "grad_weight", layer, {"x": x, "grad_output": grad_output})


def conv1d_grad_bias(grad_output: np.ndarray) -> np.ndarray:
    """dL/db[k] = sum_{n,q} grad_output[n,k,q]."""
    layer = params_1d.grad_bias_params(grad_output)
    return params_1d.run_as_2d(conv2d_grad_bias, "grad_bias", layer, {"grad_output": grad_output})


# -- transposed convolution, written in its own terms (not through the functions above) ---------------------
# Every input pixel (i, j) scatters x * weight onto output pixels (i*sh + r*dh, j*sw + s*dw) of a full-size
# output of (H - 1)*sh + dh*(kH - 1) + 1 + output_padding_h rows (likewise columns); y is that output with
# pad_top rows (pad_left columns) taken off the top (left) and pad_bottom (pad_right) off the bottom (right).

def _transposed_window(t: _params.ConvTranspose2DParams, r: int, s: int):
    """Index expressions selecting, in the full-size output, the pixels kernel tap (r, s) reaches."""
    c = t.conv
    top, left = r * c.dilation[0], s * c.dilation[1]
    rows = slice(top, top + c.stride[0] * (c.P - 1) + 1, c.stride[0])
    cols = slice(left, left + c.stride[1] * (c.Q - 1) + 1, c.stride[1])
    return (slice(None), slice(None), slice(None), rows, cols)


def _full_output(t: _params.ConvTranspose2DParams):
    """(rows slice, columns slice) of y inside the full-size output, and the full size."""
    c = t.conv
    top, _, left, _ = t.padding
    full = [(size - 1) * step + dil * (taps - 1) + 1 + extra for size, step, dil, taps, extra in
            zip((c.P, c.Q), c.stride, c.dilation, (c.R, c.S), t.output_padding)]
    return (slice(top, top + c.H), slice(left, left + c.W)), full


def conv_transpose2d(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None = None, stride: Pair = 1,
                     padding: Padding = 0, output_padding: Pair = 0, groups: int = 1,
                     dilation: Pair = 1) -> np.ndarray:
    """y[n, g*Cog+co, i*sh - pad_top + r*dh, j*sw - pad_left + s*dw] += x[n, g*Cig+ci, i, j]
    * weight[g*Cig+ci, co, r, s], plus bias[g*Cog+co]; weight (C_in, C_out/groups, kH, kW)."""
    t = _params.transpose_forward_params(x, weight, bias, stride, padding, output_padding, groups, dilation)
    c = t.conv
    xg = _grouped(_as_float64("x", x), c)
    wg = _grouped_weight(_as_float64("weight", weight), c)  # (G, Cig, Cog, kH, kW)
    (rows, cols), full = _full_output(t)
    y_full = np.zeros((c.N, c.groups, c.C_per_group, *full))
    for r in range(c.R):
        for s in range(c.S):
            y_full[_transposed_window(t, r, s)] += np.einsum("ngkij,gkc->ngcij", xg, wg[..., r, s], optimize=True)
    y = y_full[..., rows, cols].reshape(t.output_shape)
    if bias is not None:
        y += _as_float64("bias", bias)[None, :, None, None]
    return y.astype(t.dtype)


def _full_grad_output(t: _params.ConvTranspose2DParams, grad_output):
    """grad_output placed in a zero full-size output (see above), channels grouped."""
    c = t.conv
    (rows, cols), full = _full_output(t)
    gy_full = np.zeros((c.N, c.C, *full))
    gy_full[:, :, rows, cols] = _as_float64("grad_output", grad_output)
    return _grouped(gy_full, c)


def conv_transpose2d_grad_input(grad_output: np.ndarray, weight: np.ndarray, input_shape: Sequence[int],
                                stride: Pair = 1, padding: Padding = 0, output_padding: Pair = 0, groups: int = 1,
                                dilation: Pair = 1) -> np.ndarray:
    """dL/dx[n, g*Cig+ci, i, j] = sum_{co,r,s} grad_output[n, g*Cog+co, i*sh - pad_top + r*dh, j*sw - pad_left + s*dw]
    * weight[g*Cig+ci, co, r, s]: each input pixel gathers from the output pixels it scattered to."""
    t = _params.transpose_grad_input_params(grad_output, weight, input_shape, stride, padding, output_padding,
                                            groups, dilation)
    c = t.conv
    gy = _full_grad_output(t, grad_output)
    wg = _grouped_weight(_as_float64("weight", weight), c)
    gx = np.zeros((c.N, c.groups, c.K_per_group, c.P, c.Q))
    for r in range(c.R):
        for s in range(c.S):
            gx += np.einsum("ngcij,gkc->ngkij", gy[_transposed_window(t, r, s)], wg[..., r, s], optimize=True)
    return gx.reshape(t.input_shape).astype(t.dtype)


def conv_transpose2d_grad_weight(x: np.ndarray, grad_output: np.ndarray, weight_shape: Sequence[int],
                                 stride: Pair = 1, padding: Padding = 0, output_padding: Pair = 0, groups: int = 1,
                                 dilation: Pair = 1) -> np.ndarray:
    """dL/dk[g*Cig+ci, co, r, s] = sum_{n,i,j} x[n, g*Cig+ci, i, j]
    * grad_output[n, g*Cog+co, i*sh - pad_top + r*dh, j*sw - pad_left + s*dw]."""
    t = _params.transpose_grad_weight_params(x, grad_output, weight_shape, stride, padding, output_padding, groups,
                                             dilation)
    c = t.conv
    xg = _grouped(_as_float64("x", x), c)
    gy = _full_grad_output(t, grad_output)
    gw = np.zeros((c.groups, c.K_per_group, c.C_per_group, c.R, c.S))
    for r in range(c.R):
        for s in range(c.S):
            gw[..., r, s] = np.einsum("ngkij,ngcij->gkc", xg, gy[_transposed_window(t, r, s)], optimize=True)
    return gw.reshape(t.weight_shape).astype(t.dtype)


def conv_transpose2d_grad_bias(grad_output: np.ndarray) -> np.ndarray:
    """dL/db[c] = sum_{n,h,w} grad_output[n,c,h,w]."""
    return conv2d_grad_bias(grad_output)


def conv_transpose1d(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None = None, stride=1, padding=0,
                     output_padding=0, groups: int = 1, dilation=1) -> np.ndarray:
    """:func:`conv_transpose2d` with a height of 1: x (N, C_in, L), weight (C_in, C_out/groups, k)."""
    return transposed1d.array_1d(conv_transpose2d(
        transposed1d.array_2d("x", x), transposed1d.array_2d("weight", weight), bias,
        **transposed1d.geometry(stride, padding, output_padding, groups, dilation)), None)


def conv_transpose1d_grad_input(grad_output: np.ndarray, weight: np.ndarray, input_shape: Sequence[int], stride=1,
                                padding=0, output_padding=0, groups: int = 1, dilation=1) -> np.ndarray:
    return transposed1d.array_1d(conv_transpose2d_grad_input(
        transposed1d.array_2d("grad_output", grad_output), transposed1d.array_2d("weight", weight),
        transposed1d.shape_2d("input_shape", input_shape),
        **transposed1d.geometry(stride, padding, output_padding, groups, dilation)), None)


def conv_transpose1d_grad_weight(x: np.ndarray, grad_output: np.ndarray, weight_shape: Sequence[int], stride=1,
                                 padding=0, output_padding=0, groups: int = 1, dilation=1) -> np.ndarray:
    return transposed1d.array_1d(conv_transpose2d_grad_weight(
        transposed1d.array_2d("x", x), transposed1d.array_2d("grad_output", grad_output),
        transposed1d.shape_2d("weight_shape", weight_shape),
        **transposed1d.geometry(stride, padding, output_padding, groups, dilation)), None)


def conv_transpose1d_grad_bias(grad_output: np.ndarray) -> np.ndarray:
    return conv2d_grad_bias(transposed1d.array_2d("grad_output", grad_output))
