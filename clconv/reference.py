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
from . import params_1d
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
