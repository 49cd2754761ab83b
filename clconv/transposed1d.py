"""Transposed 1-D convolution as the 2-D one with H = 1: the arguments and arrays of the 1-D functions of
:mod:`clconv.api` and :mod:`clconv.reference` mapped onto their 2-D transposed functions.

Layouts: x (N, C_in, L), weight (C_in, C_out/groups, k), y (N, C_out, L_out). Arrays gain a height axis of 1
as views (NumPy: any strides; device arrays: C-contiguous ones, which is all the kernels take), so nothing is
copied. stride, output_padding and dilation: an int or a 1-tuple; padding: an int, a 1-tuple, or a
(left, right) pair.
"""

from __future__ import annotations

import numbers

import numpy as np
import pyopencl.array as cl_array

from . import params


def _single(name: str, value, least: int) -> int:
    """An int >= ``least``, given as itself or as a 1-tuple."""
    if isinstance(value, (tuple, list)):
        if len(value) != 1:
            raise ValueError(f"{name} must be an int or a 1-tuple for a 1-D convolution, got {value!r}")
        value = value[0]
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {value!r} ({type(value).__name__})")
    if value < least:
        raise ValueError(f"{name} must be >= {least}, got {value}")
    return int(value)


def _padding(value) -> tuple[int, int]:
    if isinstance(value, (tuple, list)) and len(value) == 2:
        return (_single("padding[0]", value[0], 0), _single("padding[1]", value[1], 0))
    if isinstance(value, str):
        raise ValueError(f"padding must be an int, (p,) or (left, right) for a transposed convolution ('same' and "
                         f"'valid' are not defined there), got {value!r}")
    amount = _single("padding", value, 0)
    return (amount, amount)


def geometry(stride, padding, output_padding, groups, dilation) -> dict:
    """The 2-D functions' keyword arguments for a 1-D layer: height 1, stride and dilation 1 along it. Each
    value is checked here, so that an error names it as the caller gave it; how the values fit together (and
    groups) the 2-D functions check."""
    return {"stride": (1, _single("stride", stride, 1)), "padding": ((0, 0), _padding(padding)),
            "output_padding": (0, _single("output_padding", output_padding, 0)), "groups": groups,
            "dilation": (1, _single("dilation", dilation, 1))}


def _layout(name: str) -> str:
    return "(C_in, C_out/groups, k)" if name in ("weight", "weight_shape") else \
        "(N, C_out, L_out)" if name == "grad_output" else "(N, C_in, L)"


def shape_2d(name: str, shape) -> tuple:
    """A 3-D shape with a height of 1 inserted before its last axis."""
    dims = params.shape_dims(name, shape, 3, _layout(name))  # the 2-D function checks the entries
    return dims[:2] + (1,) + dims[2:]


def array_2d(name: str, array):
    """A 3-D array viewed with a height axis of 1 (None stays None; other types are left to the 2-D checks)."""
    if array is None or not hasattr(array, "shape"):
        return array
    if len(array.shape) != 3:
        raise ValueError(f"{name} must be a 3-D array {_layout(name)}, got shape {tuple(array.shape)}")
    if isinstance(array, cl_array.Array):
        if not array.flags.c_contiguous:
            raise ValueError(f"{name} must be a C-contiguous device array (got strides {array.strides})")
        return array.reshape(shape_2d(name, array.shape))
    if isinstance(array, np.ndarray):
        return array[:, :, None, :]
    return array  # not an array: the 2-D function refuses it by name


def array_1d(result, out):
    """The 2-D function's result without its height axis: the caller's own ``out`` when there was one."""
    if out is not None:
        return out
    return result.reshape(result.shape[:2] + result.shape[3:])
