"""Transposed 1-D convolution as the 2-D one with H = 1: the arguments and arrays of the 1-D functions of
:mod:`clconv.api` and :mod:`clconv.reference` mapped onto their 2-D transposed functions.

Layouts: x (N, C_in, L), weight (C_in, C_out/groups, k), y (N, C_out, L_out). Arrays gain a height axis of 1
as views (NumPy: any strides; device arrays: C-contiguous ones or channels-last views, which is what the kernels
take), so nothing is copied. stride, output_padding and dilation: an int or a 1-tuple; padding: an int, a 1-tuple, or a
(left, right) pair.
"""

from __future__ import annotations

import numpy as np
import pyopencl.array as cl_array

from . import arrays, params, params_1d


def _padding(value) -> tuple[int, int]:
    if isinstance(value, str):
        raise ValueError(f"padding must be an int, (p,) or (left, right) for a transposed convolution ('same' and "
                         f"'valid' are not defined there), got {value!r}")
    return params_1d._explicit_padding(value)


def geometry(stride, padding, output_padding, groups, dilation) -> dict:
    """The 2-D functions' keyword arguments for a 1-D layer: height 1, stride and dilation 1 along it. Each
    value is checked here, so that an error names it as the caller gave it; how the values fit together (and
    groups) the 2-D functions check."""
    return {"stride": (1, params_1d._single("stride", stride)), "padding": ((0, 0), _padding(padding)),
            "output_padding": (0, params_1d._single("output_padding", output_padding, least=0)), "groups": groups,
            "dilation": (1, params_1d._single("dilation", dilation))}


def _layout(name: str) -> str:
    return "(C_in, C_out/groups, k)" if name in ("weight", "weight_shape") else \
        "(N, C_out, L_out)" if name == "grad_output" else "(N, C_in, L)"


def shape_2d(name: str, shape) -> tuple:
    """A 3-D shape with a height of 1 inserted before its last axis."""
    dims = params.shape_dims(name, shape, 3, _layout(name))  # the 2-D function checks the entries
    return params_1d._unit_h_shape(dims)


def array_2d(name: str, array):
    """A 3-D array viewed with a height axis of 1 (None stays None; other types are left to the 2-D checks)."""
    if array is None or not hasattr(array, "shape"):
        return array
    if len(array.shape) != 3:
        raise ValueError(f"{name} must be a 3-D array {_layout(name)}, got shape {tuple(array.shape)}")
    arrays.check_device_layout(**{name: array})
    if isinstance(array, (cl_array.Array, np.ndarray)):
        return params_1d._with_unit_h(array)
    return array  # not an array: the 2-D function refuses it by name


def array_1d(result, out):
    """The 2-D function's result without its height axis: the caller's own ``out`` when there was one."""
    return out if out is not None else params_1d._without_unit_h(result)
