"""1-D convolution as the 2-D layer with H = 1 and R = 1: the one place where the rank is mapped.

A 1-D layer has x (N, C, L), weight (K, C/groups, S) and y (N, K, L_out). :class:`Conv1DParams` validates
the user's arguments with messages in those terms and holds the equivalent 2-D layer: x (N, C, 1, L),
weight (K, C/groups, 1, S), stride (1, s), dilation (1, d), padding ((0, 0), (left, right)). The 2-D
functions then run on views of the caller's arrays with a unit H axis inserted (:func:`run_as_2d`), so
the kernels, plans, tuning and ``out=`` handling are the 2-D ones, with no copies and no second code path.

Padding forms, as PyTorch's ``conv1d`` has them plus an asymmetric pair: an int, ``(p,)``,
``(left, right)``, ``"valid"``, or ``"same"`` (stride 1; an odd total puts the extra element on the right).
stride and dilation: an int or a 1-tuple.
"""

from __future__ import annotations

import dataclasses
import typing

import numpy as np

from . import params
from .params import Conv2DParams, dtype_name

#: stride and dilation of a 1-D layer: an int or a 1-tuple.
Single = typing.Union[int, typing.Tuple[int]]
#: padding of a 1-D layer: an int, (p,), (left, right), "valid" or "same".
Padding1D = typing.Union[int, str, typing.Tuple[int], typing.Tuple[int, int]]


def _single(name: str, value, least: int = 1) -> int:
    """An int >= ``least`` (1: stride, dilation; 0: an amount of padding), given as itself or as a 1-tuple."""
    check = {0: params._pad_amount, 1: params._positive_int}[least]
    if isinstance(value, (tuple, list)):
        if len(value) != 1:
            raise ValueError(f"{name} must be an int or a 1-tuple, got {value!r}")
        return check(f"{name}[0]", value[0])
    return check(name, value)


def normalize_padding(padding, kernel: int, stride: int, dilation: int) -> tuple[int, int]:
    """Turn every accepted 1-D padding form into (left, right)."""
    if isinstance(padding, str):
        mode = padding.lower()
        if mode == "valid":
            return (0, 0)
        if mode == "same":
            if stride != 1:
                raise ValueError(f"padding='same' is only defined for stride 1, got stride={stride}; "
                                 "give explicit padding for strided convolutions")
            return params.same_padding(kernel, dilation)
        raise ValueError(f"padding must be an int, (p,), (left, right), 'valid' or 'same'; got {padding!r}")
    return _explicit_padding(padding)


def _explicit_padding(padding) -> tuple[int, int]:
    """(left, right) from the forms that give the amounts: an int, (p,) or (left, right)."""
    if isinstance(padding, (tuple, list)) and len(padding) == 2:
        return (params._pad_amount("padding[0]", padding[0]), params._pad_amount("padding[1]", padding[1]))
    if isinstance(padding, (tuple, list)) and len(padding) != 1:
        raise ValueError(f"padding must be an int, (p,) or (left, right); got {padding!r}")
    amount = _single("padding", padding, least=0)
    return (amount, amount)


@dataclasses.dataclass(frozen=True)
class Conv1DParams:
    """A 1-D layer in its own terms, held as ``layer``: the 2-D layer with H = R = 1 that computes it."""

    layer: Conv2DParams

    @classmethod
    def create(cls, input_shape, weight_shape, stride=1, padding=0, dilation=1, groups=1, dtype=np.float32,
               input_name="x", weight_name="weight") -> "Conv1DParams":
        """Validate user arguments and build the params (raises ValueError/TypeError in 1-D terms)."""
        N, C, L = params.shape_ints(input_name, input_shape, 3, "(N, C, L)")
        K, Cg, S = params.shape_ints(weight_name, weight_shape, 3, "(K, C/groups, S)")
        stride = _single("stride", stride)
        dilation = _single("dilation", dilation)
        if K < 1 or Cg < 1 or S < 1:
            raise ValueError(f"{weight_name} must have every dimension >= 1 (K, C/groups, S), got {(K, Cg, S)}")
        if C < 1 or L < 1:
            raise ValueError(f"{input_name} must have C and L >= 1 (only N may be 0), got {(N, C, L)}")
        left, right = normalize_padding(padding, S, stride, dilation)
        span = dilation * (S - 1) + 1
        if span > L + left + right:
            raise ValueError(
                f"dilated kernel of length {span} (weight {S}, dilation {dilation}) is longer than the padded "
                f"input, {L + left + right} ({input_name} length {L}, padding ({left}, {right}))")
        # What is left to check (groups, channels, dtype, sizes) has the same wording in 1-D and 2-D.
        return cls(Conv2DParams.create((N, C, 1, L), (K, Cg, 1, S), (1, stride), ((0, 0), (left, right)),
                                       (1, dilation), groups, dtype, input_name, weight_name))

    # -- the layer in 1-D terms ---------------------------------------------------------------------
    @property
    def N(self) -> int:
        return self.layer.N

    @property
    def C(self) -> int:
        return self.layer.C

    @property
    def L(self) -> int:
        return self.layer.W

    @property
    def K(self) -> int:
        return self.layer.K

    @property
    def S(self) -> int:
        return self.layer.S

    @property
    def L_out(self) -> int:
        return self.layer.Q

    @property
    def stride(self) -> int:
        return self.layer.stride[1]

    @property
    def padding(self) -> tuple[int, int]:
        """(left, right)."""
        return self.layer.padding[2:]

    @property
    def dilation(self) -> int:
        return self.layer.dilation[1]

    @property
    def groups(self) -> int:
        return self.layer.groups

    @property
    def dtype(self) -> np.dtype:
        return self.layer.dtype

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return (self.N, self.C, self.L)

    @property
    def weight_shape(self) -> tuple[int, int, int]:
        return (self.K, self.layer.C_per_group, self.S)

    @property
    def bias_shape(self) -> tuple[int]:
        return (self.K,)

    @property
    def output_shape(self) -> tuple[int, int, int]:
        return (self.N, self.K, self.L_out)

    def result_shape(self, pass_name: str) -> tuple[int, ...]:
        return params.result_shape(self, pass_name)

    @property
    def conv_args(self) -> dict:
        """stride, padding (as (left, right)), dilation and groups as the public 1-D functions take them."""
        return {"stride": self.stride, "padding": self.padding, "dilation": self.dilation, "groups": self.groups}

    def flops(self, pass_name: str = "forward") -> int:
        return self.layer.flops(pass_name)

    def bytes_moved(self, pass_name: str = "forward") -> int:
        return self.layer.bytes_moved(pass_name)

    def with_dtype(self, dtype) -> "Conv1DParams":
        return Conv1DParams(self.layer.with_dtype(dtype))

    @property
    def label(self) -> str:
        """Readable id such as ``k3-s2-p1-d1-g1-fp32`` (asymmetric padding spelled out)."""
        left, right = self.padding
        pad = str(left) if left == right else f"{left}x{right}"
        return f"k{self.S}-s{self.stride}-p{pad}-d{self.dilation}-g{self.groups}-{dtype_name(self.dtype)}"

    def describe(self) -> str:
        return (f"x{self.input_shape} w{self.weight_shape} -> y{self.output_shape} stride={self.stride} "
                f"padding(l,r)={self.padding} dilation={self.dilation} groups={self.groups} {dtype_name(self.dtype)}")


# -- per-pass entry points: the call's arrays in, validated params out (as params.forward_params etc.) ----

CONV1D = params.EntryPoints(Conv1DParams, "(N, C, L)", "(K, C/groups, S)", "(N, K, L_out)")
forward_params = CONV1D.forward
grad_input_params = CONV1D.grad_input
grad_weight_params = CONV1D.grad_weight


def grad_bias_params(grad_output) -> Conv1DParams:
    """The 1x1 depthwise layer whose output has grad_output's shape (N, K, L_out), as params.grad_bias_params."""
    N, K, L = CONV1D.grad_output_shape(grad_output)
    return Conv1DParams.create((N, K, L), (K, 1, 1), groups=K, dtype=grad_output.dtype, input_name="grad_output")


# -- running a 1-D pass as the 2-D one ----------------------------------------------------------------

def _with_unit_h(array):
    """(A, B, L) -> (A, B, 1, L) as a view of the same memory; anything else unchanged (a bias, a non-array).

    Inserting a unit axis never needs a copy, for NumPy arrays of any strides and for pyopencl arrays, whose
    reshape keeps the buffer, the offset and the list of pending events."""
    shape = getattr(array, "shape", None)
    if shape is None or len(shape) != 3:
        return array
    return array.reshape(_unit_h_shape(shape))


def _unit_h_shape(shape) -> tuple:
    """(A, B, L) -> (A, B, 1, L)."""
    return tuple(shape[:2]) + (1,) + tuple(shape[2:])


def _without_unit_h(array):
    """(A, B, 1, L) -> (A, B, L), a view; a bias gradient (K,) unchanged."""
    if len(array.shape) != 4:
        return array
    return array.reshape(tuple(array.shape[:2]) + tuple(array.shape[3:]))


def run_as_2d(function_2d, pass_name: str, p: Conv1DParams, tensors: dict, **options):
    """Run a 1-D pass through ``function_2d``, the pass's 2-D function (of :mod:`clconv.api` or
    :mod:`clconv.reference`), on H = 1 views of ``tensors`` (the pass's inputs by name, as validated into ``p``).

    ``options`` are passed on; an ``out`` array is checked against the 1-D result shape, handed on as a view
    and returned itself. Otherwise the 2-D result comes back as a 1-D view of itself.
    """
    out = options.get("out")
    if out is not None:
        shape = getattr(out, "shape", None)
        if shape is not None and tuple(shape) != p.result_shape(pass_name):
            raise ValueError(f"out must have shape {p.result_shape(pass_name)}, got {tuple(shape)}")
        options["out"] = _with_unit_h(out)
    args, geometry = params.pass_arguments(pass_name, p.layer, {n: _with_unit_h(t) for n, t in tensors.items()})
    result = function_2d(*args, **geometry, **options)
    return out if out is not None else _without_unit_h(result)
