"""Checking kernels against the NumPy oracle: the tolerance table, the layer cases, the comparison.

The same cases and the same tolerance table serve ``clconv check`` and the
test suite, so a user's check and CI judge a device by one standard.

Error measure: for each element, |got - expected| divided by the same pass
computed on absolute values (for the forward pass, conv2d(|x|, |w|) + |b|).
That quotient is the relative error of a sum of products as floating-point
analysis bounds it, so one tolerance per dtype holds for every shape and
data scale, and cancellation in signed data cannot make a correct kernel
look wrong. Elements whose bound is 0 must come out exactly 0.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from . import reference, transposed1d
from .params import PASS_CALLS, TRANSPOSED_PASS_CALLS, Conv2DParams, ConvTranspose2DParams, call_function, dtype_name
from .params_1d import Conv1DParams
from .params_3d import Conv3DParams, ConvTranspose3DParams

#: Largest accepted normalised error per dtype, about 170 units of roundoff: room for the rounding
#: of sums of many thousand terms (the error grows about as sqrt(terms) * unit roundoff), yet a kernel
#: that drops or repeats a single term of a 10,000-term sum fails. fp16 is stored in half and summed in
#: float, so its limit is the final rounding to half (2**-11) with a factor 2 of margin. Those roundings are
#: relative only down to the dtype's smallest normal number; below it a result is rounded to a fixed spacing, so
#: the bound an error is measured against is never taken below that number (``compare``).
TOLERANCE = {
    np.dtype(np.float16): 1e-3,
    np.dtype(np.float32): 1e-5,
    np.dtype(np.float64): 2e-14,
}

DTYPES = tuple(TOLERANCE)


def bound_floor(dtype) -> float:
    """The smallest magnitude an error is measured against: the dtype's smallest normal number, below which its
    values lie on a fixed grid (2**-24 apart in fp16), so that rounding is no longer relative to the value."""
    return float(np.finfo(dtype).tiny)


def pairwise_tolerance(dtype) -> float:
    """The largest normalised difference between two results that each pass against the oracle: both carry
    up to TOLERANCE of error, in either direction, so they may differ by twice it."""
    return 2 * TOLERANCE[np.dtype(dtype)]


@dataclasses.dataclass(frozen=True)
class Case:
    """One layer shape with its convolution arguments, named for test ids: 2-D, 1-D where the shapes are
    (N, C, L) and (K, C/groups, S), or 3-D where they are (N, C, D, H, W) and (K, C/groups, T, R, S)."""

    name: str
    input_shape: tuple
    weight_shape: tuple
    stride: object = 1
    padding: object = 0
    dilation: object = 1
    groups: int = 1

    @property
    def conv_args(self) -> dict:
        return {"stride": self.stride, "padding": self.padding, "dilation": self.dilation, "groups": self.groups}

    def params(self, dtype=np.float32) -> Conv2DParams | Conv1DParams | Conv3DParams:
        kind = {3: Conv1DParams, 4: Conv2DParams, 5: Conv3DParams}[len(self.input_shape)]
        return kind.create(self.input_shape, self.weight_shape, dtype=dtype, **self.conv_args)

    #: The functions of its passes (clconv.api and clconv.reference share the names).
    pass_calls = PASS_CALLS

    def random_inputs(self, dtype, seed: int = 0) -> dict:
        return layer_inputs(self.params(dtype), seed)


@dataclasses.dataclass(frozen=True)
class TransposedCase:
    """One transposed-convolution layer (2-D, 1-D with 3-D shapes, or 3-D with 5-D shapes) with its arguments,
    named for test ids."""

    name: str
    input_shape: tuple  # (N, C_in, H, W), (N, C_in, L) or (N, C_in, D, H, W)
    weight_shape: tuple  # (C_in, C_out/groups, kH, kW), (C_in, C_out/groups, k) or (C_in, C_out/groups, kD, kH, kW)
    stride: object = 1
    padding: object = 0
    output_padding: object = 0
    groups: int = 1
    dilation: object = 1

    @property
    def one_d(self) -> bool:
        return len(self.input_shape) == 3

    @property
    def conv_args(self) -> dict:
        return {"stride": self.stride, "padding": self.padding, "output_padding": self.output_padding,
                "groups": self.groups, "dilation": self.dilation}

    @property
    def pass_calls(self) -> dict:
        return TRANSPOSED_PASS_CALLS

    def params(self, dtype=np.float32) -> ConvTranspose2DParams:
        """The layer's params: 2-D ones for a 1-D layer (with a height of 1), 3-D ones for a 3-D layer."""
        if len(self.input_shape) == 5:
            return ConvTranspose3DParams.create(self.input_shape, self.weight_shape, dtype=dtype, **self.conv_args)
        if self.one_d:
            return ConvTranspose2DParams.create(
                transposed1d.shape_2d("x", self.input_shape), transposed1d.shape_2d("weight", self.weight_shape),
                dtype=dtype, **transposed1d.geometry(**self.conv_args))
        return ConvTranspose2DParams.create(self.input_shape, self.weight_shape, dtype=dtype, **self.conv_args)

    def random_inputs(self, dtype, seed: int = 0) -> dict:
        """x, weight, bias (C_out) and grad_output (the output's shape), in the case's own rank."""
        inputs = layer_inputs(self.params(dtype), seed)
        if self.one_d:
            inputs = {name: value[:, :, 0] if value.ndim == 4 else value for name, value in inputs.items()}
        return inputs


#: Shapes chosen to hit every code path: tile remainders (K, C, Q, W not multiples of the tiles),
#: every padding form, strides that skip input pixels, dilation, groups and both reduction layouts.
CASES = (
    Case("1x1", (2, 8, 7, 7), (6, 8, 1, 1)),
    Case("1x1-28x28-g2", (2, 4, 28, 28), (6, 2, 1, 1), groups=2),
    Case("3x3-p1", (2, 3, 9, 9), (5, 3, 3, 3), padding=1),
    Case("5x5-p2", (2, 4, 11, 10), (3, 4, 5, 5), padding=2),
    Case("3x3-s2-p1", (2, 3, 10, 9), (4, 3, 3, 3), stride=2, padding=1),
    Case("3x3-s3", (2, 3, 13, 11), (4, 3, 3, 3), stride=3),
    Case("3x3-d2-p2", (2, 3, 11, 12), (4, 3, 3, 3), padding=2, dilation=2),
    Case("1x7-p0x3", (2, 3, 8, 12), (4, 3, 1, 7), padding=(0, 3)),
    Case("7x1-p3x0", (2, 3, 12, 8), (4, 3, 7, 1), padding=(3, 0)),
    Case("3x3-asympad", (2, 3, 8, 9), (4, 3, 3, 3), padding=((1, 2), (0, 3))),
    Case("4x4-same", (2, 3, 8, 7), (4, 3, 4, 4), padding="same"),
    Case("3x3-valid", (2, 3, 8, 7), (4, 3, 3, 3), padding="valid"),
    Case("3x3-g2", (2, 4, 8, 8), (6, 2, 3, 3), padding=1, groups=2),
    Case("3x3-depthwise", (2, 6, 9, 9), (6, 1, 3, 3), padding=1, groups=6),
    Case("3x3-nonsquare", (2, 3, 5, 13), (4, 3, 3, 3), padding=1),
    Case("3x3-odd-s2x1", (3, 5, 7, 11), (7, 5, 3, 3), stride=(2, 1), padding=(1, 0)),
    Case("3x3-n1-c1", (1, 1, 6, 6), (1, 1, 3, 3)),
    Case("11x11-s4-p2", (1, 3, 35, 35), (8, 3, 11, 11), stride=4, padding=2),
    Case("3x3-k13-c7", (2, 7, 9, 9), (13, 7, 3, 3), padding=1),
    Case("3x3-s2-d2-g3", (2, 6, 15, 15), (9, 2, 3, 3), stride=2, padding=(1, 2), dilation=2, groups=3),
    Case("3x3-c64-k64", (2, 64, 5, 5), (64, 64, 3, 3), padding=1),
    Case("3x3-c8-k9-d2-p2", (2, 8, 10, 13), (9, 8, 3, 3), padding=2, dilation=2),
    Case("5x3-c9-k10-asympad", (2, 9, 11, 17), (10, 9, 5, 3), padding=((1, 3), (1, 1))),
    # Output rows narrower than the input's on whole planes (the forward pass's wide grid).
    Case("5x5-c8-valid", (2, 8, 14, 14), (6, 8, 5, 5)),
    Case("3x5-c9-k5-narrow-asympad", (2, 9, 9, 13), (5, 9, 3, 5), padding=((1, 0), (1, 0))),
)

#: 1-D layers (run as 2-D ones with H = 1): strides that skip inputs, dilation, groups, every padding form,
#: rows shorter than a vector, and lengths that are no multiple of one.
CASES_1D = (
    Case("k1", (2, 8, 19), (6, 8, 1)),
    Case("k3-p1", (2, 4, 37), (5, 4, 3), padding=1),
    Case("k3-s2", (2, 3, 24), (4, 3, 3), stride=2, padding=1),
    Case("k5-s3", (3, 5, 29), (7, 5, 5), stride=3),
    Case("k3-d2", (2, 4, 20), (5, 4, 3), padding=2, dilation=2),
    Case("k4-same", (2, 3, 17), (4, 3, 4), padding="same"),
    Case("k3-asympad", (2, 3, 15), (4, 3, 3), padding=(0, 3)),
    Case("k3-g2", (2, 4, 21), (6, 2, 3), padding=(1,), groups=2),
    Case("k3-depthwise", (2, 6, 18), (6, 1, 3), padding=1, groups=6),
    Case("k3-short", (1, 3, 5), (4, 3, 3), padding="valid"),
    Case("k7-s2-d3-g3", (2, 6, 45), (9, 2, 7), stride=(2,), padding=(3, 2), dilation=3, groups=3),
    Case("k3-c64-k64", (2, 64, 33), (64, 64, 3), padding=1),
)

#: 3-D layers (the input unfolded along depth into one 2-D layer): depth strides and dilation that skip frames,
#: padding deeper than the kernel reaches (frames of zeros only), per-axis and asymmetric padding, groups,
#: depthwise, 1x1x1, temporal-only and spatial-only kernels, whole planes, and an empty batch.
CASES_3D = (
    Case("3x3x3-p1", (2, 4, 4, 5, 6), (5, 4, 3, 3, 3), padding=1),
    Case("1x1x1", (2, 6, 3, 4, 5), (4, 6, 1, 1, 1)),
    Case("3x3x3-s2-p1", (2, 3, 5, 7, 6), (4, 3, 3, 3, 3), stride=2, padding=1),
    Case("2x3x1-s2x1x2-d2x1x1-asympad", (2, 3, 6, 5, 7), (4, 3, 2, 3, 1), stride=(2, 1, 2), dilation=(2, 1, 1),
         padding=((1, 0), (1, 1), (0, 2))),
    Case("3x1x1-same", (2, 4, 5, 4, 4), (4, 4, 3, 1, 1), padding="same"),
    Case("1x3x3-p0x1x1-g2", (2, 4, 3, 6, 6), (6, 2, 1, 3, 3), padding=(0, 1, 1), groups=2),
    Case("3x3x3-p1-depthwise", (2, 4, 4, 5, 5), (4, 1, 3, 3, 3), padding=1, groups=4),
    Case("2x2x2-p2-d3", (1, 2, 3, 4, 4), (3, 2, 2, 2, 2), padding=2, dilation=3),
    Case("3x3x3-p1-c16-planes", (1, 16, 3, 6, 6), (8, 16, 3, 3, 3), padding=1),
    Case("3x3x3-n0", (0, 3, 3, 4, 4), (2, 3, 3, 3, 3)),
)

#: Transposed layers: output_padding below the stride and (at stride 1) below the dilation, groups,
#: depthwise, padding, kernel 1, whole planes (stride 1, enough channels), an empty batch, 1-D ones and 3-D ones.
TRANSPOSED_CASES = (
    TransposedCase("3x3-s2-p1-op1", (2, 4, 5, 6), (4, 3, 3, 3), stride=2, padding=1, output_padding=1),
    TransposedCase("3x3-s3-op2", (2, 3, 4, 5), (3, 4, 3, 3), stride=3, output_padding=2),
    TransposedCase("3x3-d2-op1", (2, 3, 5, 6), (3, 4, 3, 3), output_padding=1, dilation=2),
    TransposedCase("3x3-s2x3-p1x2-op1x2-d1x2", (2, 3, 5, 4), (3, 5, 3, 3), stride=(2, 3), padding=(1, 2),
                   output_padding=(1, 2), dilation=(1, 2)),
    TransposedCase("4x4-s2-p1", (2, 8, 4, 4), (8, 5, 4, 4), stride=2, padding=1),
    TransposedCase("2x2-s2", (2, 8, 4, 5), (8, 4, 2, 2), stride=2),
    TransposedCase("3x3-s2-p2-g2", (2, 4, 5, 5), (4, 3, 3, 3), stride=2, padding=2, groups=2),
    TransposedCase("3x3-s2-p1-op1-depthwise", (2, 4, 5, 5), (4, 1, 3, 3), stride=2, padding=1, output_padding=1,
                   groups=4),
    TransposedCase("3x3-asympad", (2, 3, 5, 6), (3, 4, 3, 3), padding=((1, 0), (2, 1))),
    TransposedCase("1x1", (2, 6, 5, 7), (6, 4, 1, 1)),
    TransposedCase("1x1-s2-op1", (2, 6, 4, 3), (6, 4, 1, 1), stride=2, output_padding=1),
    TransposedCase("3x3-p1-c16-planes", (1, 16, 6, 6), (16, 9, 3, 3), padding=1),
    TransposedCase("3x3-s2-n0", (0, 3, 4, 4), (3, 2, 3, 3), stride=2),
    TransposedCase("1d-k3-s2-p1-op1", (2, 4, 7), (4, 3, 3), stride=2, padding=1, output_padding=1),
    TransposedCase("1d-k5-d2-op1", (2, 3, 9), (3, 5, 5), output_padding=1, dilation=2),
    TransposedCase("1d-k4-s4-g2", (2, 4, 6), (4, 3, 4), stride=4, groups=2),
    TransposedCase("3d-3x3x3-s2-p1-op1", (2, 4, 3, 4, 3), (4, 3, 3, 3, 3), stride=2, padding=1, output_padding=1),
    TransposedCase("3d-2x3x1-s3x1x2-op2x0x1-g2", (2, 4, 3, 4, 5), (4, 2, 2, 3, 1), stride=(3, 1, 2),
                   padding=(0, 1, 0), output_padding=(2, 0, 1), groups=2),
    TransposedCase("3d-2x2x2-d2-op1x0x0", (1, 2, 3, 3, 3), (2, 2, 2, 2, 2), output_padding=(1, 0, 0), dilation=2),
    TransposedCase("3d-4x4x4-s2-p1-n0", (0, 2, 2, 3, 3), (2, 3, 4, 4, 4), stride=2, padding=1),
)

#: Every kind of layer the checks cover, by name: 2-D convolutions, 1-D and 3-D ones, and transposed ones.
CASE_SETS = {"2-D": CASES, "1-D": CASES_1D, "3-D": CASES_3D, "transposed": TRANSPOSED_CASES}


@dataclasses.dataclass(frozen=True)
class Comparison:
    """Outcome of comparing a kernel's result to the oracle."""

    max_error: float
    tolerance: float
    message: str

    @property
    def passed(self) -> bool:
        return self.max_error <= self.tolerance  # False for NaN


def compare(got, expected, bound, dtype) -> Comparison:
    """Normalised error of ``got`` against ``expected`` (float64) with ``bound`` from absolute values, taken no
    smaller than ``bound_floor``: fp16 rounds a product of 2.7e-5 to a multiple of 6e-8, a relative 1.1e-3 that
    is the best a half result can hold there."""
    tolerance = TOLERANCE[np.dtype(dtype)]
    got = np.asarray(got)
    if got.shape != expected.shape:
        return Comparison(np.inf, tolerance, f"shape {got.shape} != expected {expected.shape}")
    if got.dtype != np.dtype(dtype):
        return Comparison(np.inf, tolerance, f"dtype {got.dtype} != expected {np.dtype(dtype)}")
    if got.size == 0:
        return Comparison(0.0, tolerance, "empty")
    difference = np.abs(got.astype(np.float64) - expected)
    error = np.where(difference == 0, 0.0, difference / np.maximum(bound, bound_floor(dtype)))
    error = np.where(np.isnan(error), np.inf, error)
    worst = np.unravel_index(np.argmax(error), error.shape)
    message = (f"max normalised error {error[worst]:.3g} (tolerance {tolerance:.0e}) "
               f"at index {tuple(map(int, worst))}: "
               f"got {got[worst]!r}, expected {expected[worst]!r}")
    return Comparison(float(error[worst]), tolerance, message)


def random_inputs(case: Case | TransposedCase, dtype, seed: int = 0) -> dict:
    """Signed uniform data for every tensor of a case, in ``dtype``."""
    return case.random_inputs(dtype, seed)


def layer_inputs(params: Conv2DParams | ConvTranspose2DParams, seed: int = 0) -> dict:
    """Signed uniform data for every tensor of a layer (x, weight, bias, grad_output), in its dtype."""
    rng = np.random.default_rng(seed)
    shapes = {"x": params.input_shape, "weight": params.weight_shape, "bias": params.bias_shape,
              "grad_output": params.output_shape}
    return {name: rng.uniform(-1.0, 1.0, size=shape).astype(params.dtype) for name, shape in shapes.items()}


def _oracle(pass_name: str, case: Case, inputs: dict):
    """The pass computed by the oracle on float64 copies of ``inputs`` (no rounding to the dtype)."""
    return call_function(reference, pass_name, case, {name: value.astype(np.float64) for name, value in inputs.items()},
                         calls=case.pass_calls)


def run_pass(pass_name: str, case: Case, inputs: dict, device=None, algo: str = "auto", max_workspace_bytes=None,
             out=None):
    """Run one pass of clconv on ``inputs`` (NumPy) and return its result (written into ``out`` when given)."""
    from . import api

    return call_function(api, pass_name, case, inputs, calls=case.pass_calls, device=device, algo=algo,
                         max_workspace_bytes=max_workspace_bytes, out=out)


def compare_with_oracle(pass_name: str, case: Case, inputs: dict, got, dtype) -> Comparison:
    """Compare a pass's result computed from ``inputs`` with the oracle's."""
    expected = _oracle(pass_name, case, inputs)
    bound = _oracle(pass_name, case, {name: np.abs(value) for name, value in inputs.items()})
    return compare(got, expected, bound, dtype)


def check_pass(pass_name: str, case: Case, dtype, device=None, algo: str = "auto", seed: int = 0,
               max_workspace_bytes=None) -> Comparison:
    """Run one pass of one case on a device and compare it with the oracle."""
    inputs = random_inputs(case, dtype, seed)
    got = run_pass(pass_name, case, inputs, device=device, algo=algo, max_workspace_bytes=max_workspace_bytes)
    return compare_with_oracle(pass_name, case, inputs, got, dtype)


def case_id(case: Case | TransposedCase, dtype) -> str:
    return f"{case.name}-{dtype_name(dtype)}"
