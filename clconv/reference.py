"""The NumPy oracle: the specification every OpenCL kernel is tested against.

Same functions and argument names as the public API (no ``device``, ``algo``, ``max_workspace_bytes`` or
``out``). Each computes in float64 and returns the input dtype. The formulation is a loop over the kernel taps
(R x S in 2-D, T x R x S in 3-D); for every tap the input pixels it touches form a strided view of the
zero-padded input, and the channel contraction is one ``einsum``. Groups are an explicit axis. One body per
pass serves both ranks: the 2-D and 3-D functions differ only in the validation that builds their params
(:mod:`clconv.params`, :mod:`clconv.params_3d`). The 1-D functions are the 2-D ones with H = R = 1
(:mod:`clconv.params_1d`); the tests check them against a direct 1-D formula and PyTorch. The transposed
convolutions are written in their own scatter terms, not through the convolutions, so that the oracle checks
the library's mapping of one onto the other independently.
"""

from __future__ import annotations

import itertools
from typing import Sequence

import numpy as np

from . import params as _params
from . import params_1d, params_3d, transposed1d
from .params import Padding, Pair
from .params_1d import Padding1D, Single
from .params_3d import Padding3D, Triple


def _as_float64(name, array):
    if not isinstance(array, np.ndarray):
        raise TypeError(f"{name} must be a numpy.ndarray, got {type(array).__name__}")
    return array.astype(np.float64)


# -- helpers for any rank: p is a Conv2DParams or a Conv3DParams, arrays are (N, channels, *spatial axes) ------------

def _taps(p):
    """Every kernel tap, one index per spatial axis: (r, s) in 2-D, (t, r, s) in 3-D."""
    return itertools.product(*(range(taps) for taps in p.weight_shape[2:]))


def _strided_window(tap, stride, dilation, counts):
    """Index expressions selecting, in a grouped array (N, G, X, *spatial), the positions
    i*stride + tap*dilation (0 <= i < count) on every spatial axis."""
    return (slice(None),) * 3 + tuple(slice(index * dil, index * dil + step * (count - 1) + 1, step)
                                      for index, step, dil, count in zip(tap, stride, dilation, counts))


def _tap_window(p, tap):
    """Index expressions selecting, in the grouped padded input, the pixels kernel tap ``tap`` touches."""
    return _strided_window(tap, p.stride, p.dilation, p.output_shape[2:])


def _interior(befores, sizes):
    """Index expressions taking, on every spatial axis, ``size`` positions after the first ``before``."""
    return (Ellipsis,) + tuple(slice(before, before + size) for before, size in zip(befores, sizes))


def _pad(x64, p):
    return np.pad(x64, ((0, 0), (0, 0)) + tuple(zip(p.padding[0::2], p.padding[1::2])))


def _grouped_weight(w64, p):
    """(K, Cg, *kernel) -> (G, Kg, Cg, *kernel)."""
    return w64.reshape(p.groups, p.K // p.groups, p.C_per_group, *p.weight_shape[2:])


def _grouped(t64, p):
    """(N, G*X, *spatial) -> (N, G, X, *spatial)."""
    n, channels = t64.shape[:2]
    return t64.reshape(n, p.groups, channels // p.groups, *t64.shape[2:])


def _per_channel(vector64, ndim: int):
    """A (channels,) vector shaped to broadcast over an ndim-D array (N, channels, *spatial)."""
    return vector64.reshape((1, -1) + (1,) * (ndim - 2))


def _forward(p, x, weight, bias):
    """The forward pass of the layer p describes (see conv2d, conv3d)."""
    xg = _grouped(_pad(_as_float64("x", x), p), p)
    wg = _grouped_weight(_as_float64("weight", weight), p)
    y = np.zeros((p.N, p.groups, p.K // p.groups, *p.output_shape[2:]))
    for tap in _taps(p):
        y += np.einsum("ngc...,gkc->ngk...", xg[_tap_window(p, tap)], wg[(Ellipsis, *tap)], optimize=True)
    y = y.reshape(p.output_shape)
    if bias is not None:
        y += _per_channel(_as_float64("bias", bias), y.ndim)
    return y.astype(p.dtype)


def _grad_input(p, grad_output, weight):
    """The input gradient of the layer p describes (see conv2d_grad_input, conv3d_grad_input)."""
    gy = _grouped(_as_float64("grad_output", grad_output), p)
    wg = _grouped_weight(_as_float64("weight", weight), p)
    padded = [size + before + after for size, before, after in
              zip(p.input_shape[2:], p.padding[0::2], p.padding[1::2])]
    gx_pad = np.zeros((p.N, p.groups, p.C_per_group, *padded))
    for tap in _taps(p):
        gx_pad[_tap_window(p, tap)] += np.einsum("ngk...,gkc->ngc...", gy, wg[(Ellipsis, *tap)], optimize=True)
    gx = gx_pad[_interior(p.padding[0::2], p.input_shape[2:])]
    return gx.reshape(p.input_shape).astype(p.dtype)


def _grad_weight(p, x, grad_output):
    """The weight gradient of the layer p describes (see conv2d_grad_weight, conv3d_grad_weight)."""
    xg = _grouped(_pad(_as_float64("x", x), p), p)
    gy = _grouped(_as_float64("grad_output", grad_output), p)
    gw = np.zeros((p.groups, p.K // p.groups, p.C_per_group, *p.weight_shape[2:]))
    for tap in _taps(p):
        gw[(Ellipsis, *tap)] = np.einsum("ngk...,ngc...->gkc", gy, xg[_tap_window(p, tap)], optimize=True)
    return gw.reshape(p.weight_shape).astype(p.dtype)


def _grad_bias(grad_output):
    """Sum over every axis but the channels'."""
    axes = (0, *range(2, grad_output.ndim))
    return _as_float64("grad_output", grad_output).sum(axis=axes).astype(grad_output.dtype)


# -- 2-D ---------------------------------------------------------------------------------------------------------

def conv2d(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None = None, stride: Pair = 1, padding: Padding = 0,
           dilation: Pair = 1, groups: int = 1) -> np.ndarray:
    """y[n,k,p,q] = bias[k] + sum_{c,r,s} x_pad[n, g*Cg+c, p*sh + r*dh, q*sw + s*dw] * weight[k,c,r,s]."""
    return _forward(_params.forward_params(x, weight, bias, stride, padding, dilation, groups), x, weight, bias)


def conv2d_grad_input(grad_output: np.ndarray, weight: np.ndarray, input_shape: Sequence[int], stride: Pair = 1,
                      padding: Padding = 0, dilation: Pair = 1, groups: int = 1) -> np.ndarray:
    """dL/dx: every output pixel scatters grad_output * weight back onto the input pixels it read."""
    p = _params.grad_input_params(grad_output, weight, input_shape, stride, padding, dilation, groups)
    return _grad_input(p, grad_output, weight)


def conv2d_grad_weight(x: np.ndarray, grad_output: np.ndarray, weight_shape: Sequence[int], stride: Pair = 1,
                       padding: Padding = 0, dilation: Pair = 1, groups: int = 1) -> np.ndarray:
    """dL/dk[k,c,r,s] = sum_{n,p,q} grad_output[n,k,p,q] * x_pad[n, g*Cg+c, p*sh + r*dh, q*sw + s*dw]."""
    p = _params.grad_weight_params(x, grad_output, weight_shape, stride, padding, dilation, groups)
    return _grad_weight(p, x, grad_output)


def conv2d_grad_bias(grad_output: np.ndarray) -> np.ndarray:
    """dL/db[k] = sum_{n,p,q} grad_output[n,k,p,q]."""
    _params.grad_bias_params(grad_output)
    return _grad_bias(grad_output)


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


# -- 3-D: x (N, C, D, H, W), weight (K, C/groups, T, R, S), y (N, K, D_out, P, Q) ------------------------------

def conv3d(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None = None, stride: Triple = 1,
           padding: Padding3D = 0, dilation: Triple = 1, groups: int = 1) -> np.ndarray:
    """y[n,k,d,p,q] = bias[k] + sum_{c,t,r,s} x_pad[n, g*Cg+c, d*sd + t*dd, p*sh + r*dh, q*sw + s*dw]
    * weight[k,c,t,r,s]."""
    return _forward(params_3d.forward_params(x, weight, bias, stride, padding, dilation, groups), x, weight, bias)


def conv3d_grad_input(grad_output: np.ndarray, weight: np.ndarray, input_shape: Sequence[int], stride: Triple = 1,
                      padding: Padding3D = 0, dilation: Triple = 1, groups: int = 1) -> np.ndarray:
    """dL/dx: every output voxel scatters grad_output * weight back onto the input voxels it read."""
    p = params_3d.grad_input_params(grad_output, weight, input_shape, stride, padding, dilation, groups)
    return _grad_input(p, grad_output, weight)


def conv3d_grad_weight(x: np.ndarray, grad_output: np.ndarray, weight_shape: Sequence[int], stride: Triple = 1,
                       padding: Padding3D = 0, dilation: Triple = 1, groups: int = 1) -> np.ndarray:
    """dL/dk[k,c,t,r,s] = sum_{n,d,p,q} grad_output[n,k,d,p,q]
    * x_pad[n, g*Cg+c, d*sd + t*dd, p*sh + r*dh, q*sw + s*dw]."""
    p = params_3d.grad_weight_params(x, grad_output, weight_shape, stride, padding, dilation, groups)
    return _grad_weight(p, x, grad_output)


def conv3d_grad_bias(grad_output: np.ndarray) -> np.ndarray:
    """dL/db[k] = sum_{n,d,p,q} grad_output[n,k,d,p,q]."""
    params_3d.grad_bias_params(grad_output)
    return _grad_bias(grad_output)


# -- transposed convolution, written in its own terms (not through the convolution passes above) -----------------
# t is a ConvTranspose2DParams or a ConvTranspose3DParams. Every input pixel (i, j) scatters x * weight onto
# output pixels (i*sh + r*dh, j*sw + s*dw) of a full-size output of (H - 1)*sh + dh*(kH - 1) + 1 + output_padding_h
# rows (likewise columns, and depth in 3-D); y is that output with pad_top rows (pad_left columns, pad_front
# frames) taken off the top (left, front) and pad_bottom (pad_right, pad_back) off the bottom (right, back).

def _transposed_window(t, tap):
    """Index expressions selecting, in the grouped full-size output, the pixels kernel tap ``tap`` reaches."""
    return _strided_window(tap, t.conv.stride, t.conv.dilation, t.input_shape[2:])


def _full_output(t):
    """Index expressions selecting y inside the full-size output, and the full size."""
    c = t.conv
    full = [(size - 1) * step + dil * (taps - 1) + 1 + extra for size, step, dil, taps, extra in
            zip(t.input_shape[2:], c.stride, c.dilation, t.weight_shape[2:], t.output_padding)]
    return _interior(t.padding[0::2], t.output_shape[2:]), full


def _full_grad_output(t, grad_output):
    """grad_output placed in a zero full-size output (see above), channels grouped."""
    c = t.conv
    crop, full = _full_output(t)
    gy_full = np.zeros((c.N, c.C, *full))
    gy_full[crop] = _as_float64("grad_output", grad_output)
    return _grouped(gy_full, c)


def _transposed_forward(t, x, weight, bias):
    """The transposed convolution t describes (see conv_transpose2d, conv_transpose3d)."""
    c = t.conv
    xg = _grouped(_as_float64("x", x), c)
    wg = _grouped_weight(_as_float64("weight", weight), c)  # (G, Cig, Cog, *kernel)
    crop, full = _full_output(t)
    y_full = np.zeros((c.N, c.groups, c.C_per_group, *full))
    for tap in _taps(c):
        y_full[_transposed_window(t, tap)] += np.einsum("ngk...,gkc->ngc...", xg, wg[(Ellipsis, *tap)],
                                                        optimize=True)
    y = y_full[crop].reshape(t.output_shape)
    if bias is not None:
        y += _per_channel(_as_float64("bias", bias), y.ndim)
    return y.astype(t.dtype)


def _transposed_grad_input(t, grad_output, weight):
    """Its input gradient (see conv_transpose2d_grad_input, conv_transpose3d_grad_input)."""
    c = t.conv
    gy = _full_grad_output(t, grad_output)
    wg = _grouped_weight(_as_float64("weight", weight), c)
    gx = np.zeros((c.N, c.groups, c.K // c.groups, *t.input_shape[2:]))
    for tap in _taps(c):
        gx += np.einsum("ngc...,gkc->ngk...", gy[_transposed_window(t, tap)], wg[(Ellipsis, *tap)], optimize=True)
    return gx.reshape(t.input_shape).astype(t.dtype)


def _transposed_grad_weight(t, x, grad_output):
    """Its weight gradient (see conv_transpose2d_grad_weight, conv_transpose3d_grad_weight)."""
    c = t.conv
    xg = _grouped(_as_float64("x", x), c)
    gy = _full_grad_output(t, grad_output)
    gw = np.zeros((c.groups, c.K // c.groups, c.C_per_group, *t.weight_shape[2:]))
    for tap in _taps(c):
        gw[(Ellipsis, *tap)] = np.einsum("ngk...,ngc...->gkc", xg, gy[_transposed_window(t, tap)], optimize=True)
    return gw.reshape(t.weight_shape).astype(t.dtype)


def conv_transpose2d(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None = None, stride: Pair = 1,
                     padding: Padding = 0, output_padding: Pair = 0, groups: int = 1,
                     dilation: Pair = 1) -> np.ndarray:
    """y[n, g*Cog+co, i*sh - pad_top + r*dh, j*sw - pad_left + s*dw] += x[n, g*Cig+ci, i, j]
    * weight[g*Cig+ci, co, r, s], plus bias[g*Cog+co]; weight (C_in, C_out/groups, kH, kW)."""
    t = _params.transpose_forward_params(x, weight, bias, stride, padding, output_padding, groups, dilation)
    return _transposed_forward(t, x, weight, bias)


def conv_transpose2d_grad_input(grad_output: np.ndarray, weight: np.ndarray, input_shape: Sequence[int],
                                stride: Pair = 1, padding: Padding = 0, output_padding: Pair = 0, groups: int = 1,
                                dilation: Pair = 1) -> np.ndarray:
    """dL/dx[n, g*Cig+ci, i, j] = sum_{co,r,s} grad_output[n, g*Cog+co, i*sh - pad_top + r*dh, j*sw - pad_left + s*dw]
    * weight[g*Cig+ci, co, r, s]: each input pixel gathers from the output pixels it scattered to."""
    t = _params.transpose_grad_input_params(grad_output, weight, input_shape, stride, padding, output_padding,
                                            groups, dilation)
    return _transposed_grad_input(t, grad_output, weight)


def conv_transpose2d_grad_weight(x: np.ndarray, grad_output: np.ndarray, weight_shape: Sequence[int],
                                 stride: Pair = 1, padding: Padding = 0, output_padding: Pair = 0, groups: int = 1,
                                 dilation: Pair = 1) -> np.ndarray:
    """dL/dk[g*Cig+ci, co, r, s] = sum_{n,i,j} x[n, g*Cig+ci, i, j]
    * grad_output[n, g*Cog+co, i*sh - pad_top + r*dh, j*sw - pad_left + s*dw]."""
    t = _params.transpose_grad_weight_params(x, grad_output, weight_shape, stride, padding, output_padding, groups,
                                             dilation)
    return _transposed_grad_weight(t, x, grad_output)


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


def conv_transpose3d(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None = None, stride: Triple = 1,
                     padding: Padding3D = 0, output_padding: Triple = 0, groups: int = 1,
                     dilation: Triple = 1) -> np.ndarray:
    """y[n, g*Cog+co, i*sd - pad_front + t*dd, j*sh - pad_top + r*dh, k*sw - pad_left + s*dw]
    += x[n, g*Cig+ci, i, j, k] * weight[g*Cig+ci, co, t, r, s], plus bias[g*Cog+co];
    weight (C_in, C_out/groups, kD, kH, kW)."""
    t = params_3d.transpose_forward_params(x, weight, bias, stride, padding, output_padding, groups, dilation)
    return _transposed_forward(t, x, weight, bias)


def conv_transpose3d_grad_input(grad_output: np.ndarray, weight: np.ndarray, input_shape: Sequence[int],
                                stride: Triple = 1, padding: Padding3D = 0, output_padding: Triple = 0,
                                groups: int = 1, dilation: Triple = 1) -> np.ndarray:
    """dL/dx[n, g*Cig+ci, i, j, k] = sum_{co,t,r,s} weight[g*Cig+ci, co, t, r, s]
    * grad_output[n, g*Cog+co, i*sd - pad_front + t*dd, j*sh - pad_top + r*dh, k*sw - pad_left + s*dw]."""
    t = params_3d.transpose_grad_input_params(grad_output, weight, input_shape, stride, padding, output_padding,
                                              groups, dilation)
    return _transposed_grad_input(t, grad_output, weight)


def conv_transpose3d_grad_weight(x: np.ndarray, grad_output: np.ndarray, weight_shape: Sequence[int],
                                 stride: Triple = 1, padding: Padding3D = 0, output_padding: Triple = 0,
                                 groups: int = 1, dilation: Triple = 1) -> np.ndarray:
    """dL/dk[g*Cig+ci, co, t, r, s] = sum_{n,i,j,k} x[n, g*Cig+ci, i, j, k]
    * grad_output[n, g*Cog+co, i*sd - pad_front + t*dd, j*sh - pad_top + r*dh, k*sw - pad_left + s*dw]."""
    t = params_3d.transpose_grad_weight_params(x, grad_output, weight_shape, stride, padding, output_padding,
                                               groups, dilation)
    return _transposed_grad_weight(t, x, grad_output)


def conv_transpose3d_grad_bias(grad_output: np.ndarray) -> np.ndarray:
    """dL/db[c] = sum_{n,d,h,w} grad_output[n,c,d,h,w]."""
    return conv3d_grad_bias(grad_output)
