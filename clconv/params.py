"""The geometry of one 2-D convolution layer, validated once.

:class:`Conv2DParams` is the single source of truth that the kernels, the
NumPy oracle, the tests and the command line all take: it normalises the
user's ``stride``/``padding``/``dilation``/``groups`` arguments, checks them
against the tensor shapes with messages that name the bad argument, and
derives the output size and the FLOP count of each pass.

Layouts: x is (N, C, H, W), weight is (K, C/groups, R, S), y is (N, K, P, Q).
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import typing

import numpy as np

#: dtypes that kernels exist for; everything else is a TypeError.
SUPPORTED_DTYPES = (np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.float64))

#: stride and dilation: an int, or an (h, w) pair.
Pair = typing.Union[int, typing.Tuple[int, int]]
#: padding: an int, (ph, pw), ((top, bottom), (left, right)), "valid" or "same".
Padding = typing.Union[int, str, typing.Tuple[int, int], typing.Tuple[typing.Tuple[int, int], typing.Tuple[int, int]]]

# Kernels index with 32-bit ints (cheap on GPUs); larger tensors are refused up front.
MAX_TENSOR_ELEMENTS = 2**31 - 1


@dataclasses.dataclass(frozen=True)
class PassCall:
    """How one pass is called, the same way everywhere.

    :param inputs: the tensors it reads, in argument order: a plan's method named after the pass takes
        them, and so does the pass's function in :mod:`clconv.api` and in the oracle :mod:`clconv.reference`;
    :param function: the name of that function;
    :param result_shape: the layer attribute the function takes next, where the inputs do not fix the shape
        of the result;
    :param geometry: whether the function then takes stride, padding, dilation and groups.
    """

    inputs: tuple[str, ...]
    function: str
    result_shape: str | None = None
    geometry: bool = True

    def function_for(self, rank: int) -> str:
        """The function's name for a layer of ``rank`` spatial dimensions (``conv1d_grad_input`` for 1)."""
        return self.function.replace("2d", f"{rank}d", 1)


PASS_CALLS = {
    "forward": PassCall(("x", "weight", "bias"), "conv2d"),
    "grad_input": PassCall(("grad_output", "weight"), "conv2d_grad_input", "input_shape"),
    "grad_weight": PassCall(("x", "grad_output"), "conv2d_grad_weight", "weight_shape"),
    "grad_bias": PassCall(("grad_output",), "conv2d_grad_bias", geometry=False),
}

PASSES = tuple(PASS_CALLS)

#: The same four passes of a transposed convolution (:class:`ConvTranspose2DParams`); the 2-D names, as in
#: PASS_CALLS, where ``PassCall.function_for`` gives a layer's rank.
TRANSPOSED_PASS_CALLS = {
    "forward": PassCall(("x", "weight", "bias"), "conv_transpose2d"),
    "grad_input": PassCall(("grad_output", "weight"), "conv_transpose2d_grad_input", "input_shape"),
    "grad_weight": PassCall(("x", "grad_output"), "conv_transpose2d_grad_weight", "weight_shape"),
    "grad_bias": PassCall(("grad_output",), "conv_transpose2d_grad_bias", geometry=False),
}


def pass_call(pass_name: str, calls: dict = PASS_CALLS) -> PassCall:
    if pass_name not in calls:
        raise ValueError(f"pass_name must be one of {tuple(calls)}, got {pass_name!r}")
    return calls[pass_name]


#: The layer attribute that holds each pass's result shape.
RESULT_SHAPES = {"forward": "output_shape", "grad_input": "input_shape", "grad_weight": "weight_shape",
                 "grad_bias": "bias_shape"}


def bytes_moved(layer, pass_name: str) -> int:
    """Minimum bytes a pass of a layer of any rank reads and writes: every tensor it touches once."""
    pass_call(pass_name)
    x, w, y, b = (math.prod(s) for s in (layer.input_shape, layer.weight_shape, layer.output_shape,
                                         layer.bias_shape))
    sizes = {"forward": x + w + y + b, "grad_input": y + w + x, "grad_weight": x + y + w, "grad_bias": y + b}
    return sizes[pass_name] * layer.dtype.itemsize


def result_shape(layer, pass_name: str) -> tuple[int, ...]:
    """The shape of a pass's result for a layer of any rank (a Conv2DParams or Conv1DParams)."""
    pass_call(pass_name)
    return getattr(layer, RESULT_SHAPES[pass_name])


def call_plan(plan, pass_name: str, tensors: dict):
    """Run one pass of ``plan`` (a :class:`clconv.planning.Conv2DPlan`) on ``tensors``, a mapping from the
    input names to arrays (a missing bias is None)."""
    return getattr(plan, pass_name)(*(tensors.get(name) for name in pass_call(pass_name).inputs))


def pass_arguments(pass_name: str, layer, tensors: dict, calls: dict = PASS_CALLS) -> tuple[list, dict]:
    """The positional arguments of a pass's function (its inputs from ``tensors``, then the result shape it needs
    from ``layer``) and its geometry keywords (``layer.conv_args``, where the function takes them)."""
    call = pass_call(pass_name, calls)
    args = [tensors.get(name) for name in call.inputs]
    if call.result_shape:
        args.append(getattr(layer, call.result_shape))
    return args, (layer.conv_args if call.geometry else {})


def call_function(module, pass_name: str, layer, tensors: dict, calls: dict = PASS_CALLS, **options):
    """Run one pass through its function in ``module`` (:mod:`clconv.api` or :mod:`clconv.reference`, which share
    names and arguments) on ``tensors`` (a mapping from the input names to arrays; a missing bias is None).

    ``layer`` supplies the rest: ``input_shape``, ``weight_shape`` and ``conv_args`` (a Conv2DParams, a
    Conv1DParams or a ``check.Case``); its rank picks the function (``conv1d`` or ``conv2d``). ``calls``: the
    table of the functions (PASS_CALLS, or TRANSPOSED_PASS_CALLS); ``options`` (``device``, ``algo``, ...)
    are passed on as keywords.
    """
    args, geometry = pass_arguments(pass_name, layer, tensors, calls)
    function = pass_call(pass_name, calls).function_for(len(layer.input_shape) - 2)
    return getattr(module, function)(*args, **geometry, **options)


def layer_label(kernel, stride, padding, dilation, groups, dtype) -> str:
    """A layer's readable id, ``3x3-s2-p1-d1-g1-fp32``: one number where every axis (and side) has the same,
    the values joined by ``x`` where they differ."""
    def spelled(values):
        return str(values[0]) if len(set(values)) == 1 else "x".join(map(str, values))
    return (f"{'x'.join(map(str, kernel))}-s{spelled(stride)}-p{spelled(padding)}-d{spelled(dilation)}-g{groups}"
            f"-{dtype_name(dtype)}")


def dtype_name(dtype) -> str:
    """Short dtype tag used in test ids and tables: fp16, fp32, fp64."""
    return f"fp{np.dtype(dtype).itemsize * 8}"


def _positive_int(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {value!r} ({type(value).__name__})")
    if value < 1:
        raise ValueError(f"{name} must be >= 1, got {value}")
    return int(value)


def _axes_form(axes: str) -> str:
    """How messages spell one value per axis: "a pair (h, w)", "a triple (d, h, w)"."""
    return {2: "a pair", 3: "a triple"}[len(axes)] + f" ({', '.join(axes)})"


def normalize_axes(name: str, value, axes: str = "hw") -> tuple[int, ...]:
    """An int or one int per axis of ``axes`` ("hw", "dhw"), each >= 1 (stride, dilation)."""
    if isinstance(value, (tuple, list)):
        if len(value) != len(axes):
            raise ValueError(f"{name} must be an int or {_axes_form(axes)}, got {value!r}")
        return tuple(_positive_int(f"{name}[{i}]", item) for i, item in enumerate(value))
    return (_positive_int(name, value),) * len(axes)


def _pad_amount(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {value!r} ({type(value).__name__})")
    if value < 0:
        raise ValueError(f"{name} must be >= 0 (zero padding only), got {value}")
    return int(value)


def same_padding(extent: int, dilation: int) -> tuple[int, int]:
    """Padding (before, after) of one axis for ``"same"``: the output keeps the input's size at stride 1, and an
    odd total puts the extra pixel after, like TensorFlow and PyTorch."""
    total = dilation * (extent - 1)
    return (total // 2, total - total // 2)


def normalize_padding(padding, kernel_sizes, stride, dilation, axes: str = "hw") -> tuple[int, ...]:
    """Turn every accepted padding form into (before, after) per axis: (top, bottom, left, right) in 2-D,
    (front, back, top, bottom, left, right) in 3-D (``axes`` "dhw").

    Accepted: int; one int per axis; one (before, after) pair per axis, or a mix; "valid"; "same".
    "same" keeps every size at stride 1 and puts the odd extra pixel after (bottom/right), like TensorFlow
    and PyTorch.
    """
    forms = f"an int, {_axes_form(axes)}, one (before, after) pair per axis"
    if isinstance(padding, str):
        mode = padding.lower()
        if mode == "valid":
            return (0, 0) * len(axes)
        if mode == "same":
            if any(step != 1 for step in stride):
                raise ValueError(
                    f"padding='same' is only defined for stride 1, got stride={stride}; "
                    "give explicit padding for strided convolutions"
                )
            return sum((same_padding(extent, dil) for extent, dil in zip(kernel_sizes, dilation)), ())
        raise ValueError(f"padding must be {forms}, 'valid' or 'same'; got {padding!r}")
    if isinstance(padding, (tuple, list)):
        if len(padding) != len(axes):
            raise ValueError(f"padding must be {forms}; got {padding!r}")
        result = []
        for axis, item in zip(axes, padding):
            if isinstance(item, (tuple, list)):
                if len(item) != 2:
                    raise ValueError(f"padding for axis {axis} must be an int or a (before, after) pair, got {item!r}")
                result += [_pad_amount(f"padding[{axis}][0]", item[0]), _pad_amount(f"padding[{axis}][1]", item[1])]
            else:
                amount = _pad_amount(f"padding[{axis}]", item)
                result += [amount, amount]
        return tuple(result)
    amount = _pad_amount("padding", padding)
    return (amount, amount) * len(axes)


def shape_dims(name: str, shape, ndim: int, layout: str) -> tuple:
    """``shape`` as a tuple of ``ndim`` entries (``layout`` names them in the messages), or a TypeError/ValueError
    naming the argument; the entries themselves are not checked."""
    try:
        dims = tuple(shape)
    except TypeError:
        raise TypeError(f"{name} must be a {ndim}-tuple {layout}, got {shape!r}") from None
    if len(dims) != ndim:
        raise ValueError(f"{name} must have {ndim} dimensions {layout}, got shape {dims}")
    return dims


def shape_ints(name: str, shape, ndim: int, layout: str) -> tuple[int, ...]:
    """A shape argument of ``ndim`` non-negative ints (a 1-D layer's 3, a 2-D layer's 4), checked by name."""
    dims = shape_dims(name, shape, ndim, layout)
    for d in dims:
        if isinstance(d, bool) or not isinstance(d, numbers.Integral) or d < 0:
            raise ValueError(f"{name} must hold non-negative ints {layout}, got {dims}")
    return tuple(int(d) for d in dims)


def _supported_dtype(dtype) -> np.dtype:
    dtype = np.dtype(dtype)
    if dtype not in SUPPORTED_DTYPES:
        raise TypeError(f"dtype must be float16, float32 or float64, got {dtype}")
    return dtype


def _check_tensor_sizes(layer, input_name: str, weight_name: str) -> None:
    """Refuse a layer whose input, weight or output is too large for the kernels' 32-bit indices."""
    for name, shape in ((input_name, layer.input_shape), (weight_name, layer.weight_shape),
                        ("output", layer.output_shape)):
        if math.prod(shape) > MAX_TENSOR_ELEMENTS:
            raise ValueError(f"{name} of shape {shape} has more than 2**31-1 elements; split the batch")


def layer_arguments(input_name: str, input_shape, input_layout: str, weight_name: str, weight_shape,
                    weight_layout: str, stride, dilation, groups, axes: str):
    """What every 2-D and 3-D layer's create() checks first, with messages naming the argument: the input and
    weight shapes in their layouts ("(N, C, H, W)"; every weight dimension and every input one but N at least
    1), stride and dilation (an int or one per axis of ``axes``) and groups. Returns (input dims, weight dims,
    stride, dilation, groups)."""
    ndim = len(axes) + 2
    inputs = shape_ints(input_name, input_shape, ndim, input_layout)
    weights = shape_ints(weight_name, weight_shape, ndim, weight_layout)
    stride = normalize_axes("stride", stride, axes)
    dilation = normalize_axes("dilation", dilation, axes)
    groups = _positive_int("groups", groups)
    if min(weights) < 1:
        raise ValueError(f"{weight_name} must have every dimension >= 1 {weight_layout}, got {weights}")
    if min(inputs[1:]) < 1:
        *names, last = input_layout.strip("()").split(", ")[1:]
        raise ValueError(f"{input_name} must have {', '.join(names)} and {last} >= 1 (only N may be 0), got {inputs}")
    return inputs, weights, stride, dilation, groups


def check_channels(C: int, K: int, Cg: int, groups: int, input_name: str, weight_name: str) -> None:
    """groups must divide both channel counts, and the weight's C/groups must match the input's C."""
    if C % groups:
        raise ValueError(f"groups={groups} must divide the input channels C={C} ({input_name}.shape[1])")
    if K % groups:
        raise ValueError(f"groups={groups} must divide the output channels K={K} ({weight_name}.shape[0])")
    if C != groups * Cg:
        raise ValueError(
            f"channel mismatch: {input_name} has C={C} channels but {weight_name}.shape[1]={Cg} "
            f"with groups={groups} expects C = groups * {weight_name}.shape[1] = {groups * Cg}"
        )


@dataclasses.dataclass(frozen=True)
class Conv2DParams:
    """Everything that fixes the shape of a convolution and its three passes."""

    N: int
    C: int
    H: int
    W: int
    K: int
    R: int
    S: int
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int, int, int] = (0, 0, 0, 0)  # top, bottom, left, right
    dilation: tuple[int, int] = (1, 1)
    groups: int = 1
    dtype: np.dtype = np.dtype(np.float32)

    @classmethod
    def create(cls, input_shape, weight_shape, stride=1, padding=0, dilation=1, groups=1,
               dtype=np.float32, input_name="x", weight_name="weight") -> "Conv2DParams":
        """Validate user arguments and build the params (raises ValueError/TypeError)."""
        (N, C, H, W), (K, Cg, R, S), stride, dilation, groups = layer_arguments(
            input_name, input_shape, "(N, C, H, W)", weight_name, weight_shape, "(K, C/groups, R, S)", stride,
            dilation, groups, "hw")
        check_channels(C, K, Cg, groups, input_name, weight_name)
        padding = normalize_padding(padding, (R, S), stride, dilation)
        dtype = _supported_dtype(dtype)
        params = cls(N, C, H, W, K, R, S, stride, padding, dilation, groups, dtype)
        padded_h = H + padding[0] + padding[1]
        padded_w = W + padding[2] + padding[3]
        span_h, span_w = params.dilated_kernel
        if span_h > padded_h or span_w > padded_w:
            raise ValueError(
                f"dilated kernel {span_h}x{span_w} (weight {R}x{S}, dilation {dilation}) is larger than the "
                f"padded input {padded_h}x{padded_w} ({input_name} {H}x{W}, padding {padding})"
            )
        _check_tensor_sizes(params, input_name, weight_name)
        return params

    # -- derived sizes -------------------------------------------------------------------------
    @property
    def dilated_kernel(self) -> tuple[int, int]:
        return (self.dilation[0] * (self.R - 1) + 1, self.dilation[1] * (self.S - 1) + 1)

    @property
    def P(self) -> int:
        span = self.H + self.padding[0] + self.padding[1] - self.dilated_kernel[0]
        return span // self.stride[0] + 1

    @property
    def Q(self) -> int:
        span = self.W + self.padding[2] + self.padding[3] - self.dilated_kernel[1]
        return span // self.stride[1] + 1

    @property
    def C_per_group(self) -> int:
        return self.C // self.groups

    @property
    def K_per_group(self) -> int:
        return self.K // self.groups

    @property
    def input_shape(self) -> tuple[int, int, int, int]:
        return (self.N, self.C, self.H, self.W)

    @property
    def weight_shape(self) -> tuple[int, int, int, int]:
        return (self.K, self.C_per_group, self.R, self.S)

    @property
    def output_shape(self) -> tuple[int, int, int, int]:
        return (self.N, self.K, self.P, self.Q)

    @property
    def bias_shape(self) -> tuple[int]:
        return (self.K,)

    def result_shape(self, pass_name: str) -> tuple[int, ...]:
        return result_shape(self, pass_name)

    @property
    def conv_args(self) -> dict:
        """stride, padding, dilation and groups as the public functions take them, padding as
        ((top, bottom), (left, right))."""
        top, bottom, left, right = self.padding
        return {"stride": self.stride, "padding": ((top, bottom), (left, right)), "dilation": self.dilation,
                "groups": self.groups}

    def flops(self, pass_name: str = "forward") -> int:
        """Multiply-adds x 2 of a pass, counting only the taps that fall inside the output.

        forward, grad_input and grad_weight each touch every (output pixel, weight) pair once;
        grad_bias reads grad_output once.
        """
        if pass_name not in PASSES:
            raise ValueError(f"pass_name must be one of {PASSES}, got {pass_name!r}")
        if pass_name == "grad_bias":
            return self.N * self.K * self.P * self.Q
        return 2 * self.N * self.K * self.P * self.Q * self.C_per_group * self.R * self.S

    def bytes_moved(self, pass_name: str = "forward") -> int:
        """Minimum bytes each pass reads and writes (every tensor once)."""
        return bytes_moved(self, pass_name)

    def with_dtype(self, dtype) -> "Conv2DParams":
        return dataclasses.replace(self, dtype=np.dtype(dtype))

    @property
    def label(self) -> str:
        """Readable id such as ``3x3-s2-p1-d1-g1-fp32`` (asymmetric values spelled out)."""
        return layer_label((self.R, self.S), self.stride, self.padding, self.dilation, self.groups, self.dtype)

    def describe(self) -> str:
        return (f"x{self.input_shape} w{self.weight_shape} -> y{self.output_shape} stride={self.stride} "
                f"padding(t,b,l,r)={self.padding} dilation={self.dilation} groups={self.groups} "
                f"{dtype_name(self.dtype)}")


# -- per-pass entry points: shapes of the call's arrays in, validated params out ------------------

def common_dtype(**arrays) -> np.dtype:
    """The one float dtype shared by the named arrays; TypeError for non-float or mixed dtypes."""
    dtypes = {}
    for name, array in arrays.items():
        if array is None:
            continue
        if not hasattr(array, "dtype") or not hasattr(array, "shape"):
            raise TypeError(f"{name} must be a numpy.ndarray or pyopencl.array.Array, got {type(array).__name__}")
        dtype = np.dtype(array.dtype).newbyteorder("=")  # byte order is fixed on upload
        if dtype not in SUPPORTED_DTYPES:
            raise TypeError(f"{name} must have dtype float16, float32 or float64, got {dtype}")
        dtypes[name] = dtype
    if len(set(dtypes.values())) > 1:
        listed = ", ".join(f"{n}={d}" for n, d in dtypes.items())
        raise TypeError(f"arrays must share one dtype (no silent casts), got {listed}")
    return next(iter(dtypes.values()))


@dataclasses.dataclass(frozen=True)
class EntryPoints:
    """The per-pass entry points of one kind of layer: the shapes of a call's arrays in, validated params out,
    with errors in the layer's own terms (``x``, ``weight``, ``grad_output`` and ``bias``: how its layouts
    name the axes). ``kind`` is the params class; its ``create`` takes (input_shape, weight_shape, then the
    geometry arguments in the order the layer's functions take them, dtype, input_name=, weight_name=)."""

    kind: type
    x: str
    weight: str
    grad_output: str
    bias: str = "(K,)"

    def _require_ndim(self, name: str, shape, layout: str) -> None:
        ndim = layout.count(",") + 1
        if len(shape) != ndim:
            raise ValueError(f"{name} must be a {ndim}-D array {layout}, got shape {tuple(shape)}")

    def _check_grad_output(self, grad_output, layer) -> None:
        if tuple(grad_output.shape) != layer.output_shape:
            raise ValueError(f"grad_output must have the output shape {self.grad_output} = {layer.output_shape} "
                             f"computed from {layer.describe()}, got {tuple(grad_output.shape)}")

    def forward(self, x, weight, bias, *geometry):
        dtype = common_dtype(x=x, weight=weight, bias=bias)
        self._require_ndim("x", x.shape, self.x)
        self._require_ndim("weight", weight.shape, self.weight)
        layer = self.kind.create(x.shape, weight.shape, *geometry, dtype)
        if bias is not None and tuple(bias.shape) != layer.bias_shape:
            raise ValueError(f"bias must have shape {self.bias} = {layer.bias_shape}, got {tuple(bias.shape)}")
        return layer

    def grad_input(self, grad_output, weight, input_shape, *geometry):
        dtype = common_dtype(grad_output=grad_output, weight=weight)
        self._require_ndim("grad_output", grad_output.shape, self.grad_output)
        self._require_ndim("weight", weight.shape, self.weight)
        layer = self.kind.create(input_shape, weight.shape, *geometry, dtype, input_name="input_shape")
        if layer.N != grad_output.shape[0]:
            raise ValueError(f"input_shape[0]={layer.N} must equal the batch of grad_output, {grad_output.shape[0]}")
        self._check_grad_output(grad_output, layer)
        return layer

    def grad_weight(self, x, grad_output, weight_shape, *geometry):
        dtype = common_dtype(x=x, grad_output=grad_output)
        self._require_ndim("x", x.shape, self.x)
        self._require_ndim("grad_output", grad_output.shape, self.grad_output)
        layer = self.kind.create(x.shape, weight_shape, *geometry, dtype, weight_name="weight_shape")
        self._check_grad_output(grad_output, layer)
        return layer

    def grad_output_shape(self, grad_output) -> tuple[int, ...]:
        """grad_output's shape, checked to be one of this kind's outputs (the bias gradient needs no more)."""
        common_dtype(grad_output=grad_output)
        self._require_ndim("grad_output", grad_output.shape, self.grad_output)
        shape = tuple(int(d) for d in grad_output.shape)
        if min(shape[1:]) < 1:
            names = self.grad_output.strip("()").split(", ")[1:]
            raise ValueError(f"grad_output must have {', '.join(names[:-1])} and {names[-1]} >= 1 (only N may be 0), "
                             f"got {shape}")
        return shape


CONV2D = EntryPoints(Conv2DParams, "(N, C, H, W)", "(K, C/groups, R, S)", "(N, K, P, Q)")
forward_params = CONV2D.forward
grad_input_params = CONV2D.grad_input
grad_weight_params = CONV2D.grad_weight


def grad_bias_params(grad_output) -> Conv2DParams:
    """The bias gradient depends only on grad_output's shape (N, K, P, Q).

    It is described as the 1x1 depthwise layer whose output has exactly that shape, so it
    shares the params type (and plan cache) of the other passes.
    """
    N, K, P, Q = CONV2D.grad_output_shape(grad_output)
    return Conv2DParams.create((N, K, P, Q), (K, 1, 1, 1), groups=K, dtype=grad_output.dtype,
                               input_name="grad_output")


# -- transposed convolution ---------------------------------------------------------------------------

def output_padding_axes(value, stride, dilation, axes: str = "hw") -> tuple[int, ...]:
    """output_padding as one int >= 0 per axis, each smaller than its axis's stride or dilation (PyTorch's
    rule: larger values would add rows and columns that no input pixel reaches)."""
    if isinstance(value, (tuple, list)):
        if len(value) != len(axes):
            raise ValueError(f"output_padding must be an int or {_axes_form(axes)}, got {value!r}")
        amounts = tuple(_pad_amount(f"output_padding[{i}]", item) for i, item in enumerate(value))
    else:
        amounts = (_pad_amount("output_padding", value),) * len(axes)
    for axis, extra, step, dil in zip(axes, amounts, stride, dilation):
        if extra >= step and extra >= dil:
            raise ValueError(f"output_padding must be smaller than stride or dilation, got output_padding {extra}, "
                             f"stride {step} and dilation {dil} along {axis}")
    return amounts


def transposed_axis(axis: str, size: int, step: int, dil: int, taps: int, before: int, after: int, extra: int,
                    input_name: str) -> tuple[int, int]:
    """One axis of a transposed convolution: (its output size, the padding after the last pixel of the
    convolution behind it, which makes that convolution's output exactly ``size`` long)."""
    out_size = (size - 1) * step - before - after + dil * (taps - 1) + extra + 1
    if out_size < 1:
        unit = {"d": "frames", "h": "rows", "w": "columns"}[axis]
        raise ValueError(f"the output would have {out_size} {unit}: padding ({before}, {after}) along {axis} is too "
                         f"large for {input_name}'s {size} and a kernel of {taps} (dilation {dil}, stride {step})")
    return out_size, after - extra + min(extra, step - 1)


def _dim(name: str, axis: int) -> str:
    """How an error names one dimension of an array (x.shape[1]) or of a shape argument (input_shape[1])."""
    return f"{name}[{axis}]" if name.endswith("_shape") else f"{name}.shape[{axis}]"


@dataclasses.dataclass(frozen=True)
class ConvTranspose2DParams:
    """A transposed 2-D convolution, described by the convolution whose input gradient it is.

    Layouts: x is (N, C_in, H, W), weight is (C_in, C_out/groups, kH, kW) (PyTorch's), y is
    (N, C_out, H_out, W_out) with H_out = (H - 1)*stride_h - pad_top - pad_bottom + dil_h*(kH - 1) +
    output_padding_h + 1 (likewise W_out). ``conv`` is the convolution of a (N, C_out, H_out, W_out) input
    with the same weight read as (K, C/groups, R, S) = (C_in, C_out/groups, kH, kW), same stride, dilation,
    groups and top/left padding: its output has x's shape, and the transposed convolution of x is that
    convolution's input gradient with grad_output = x. Its bottom (right) padding is the transposed one's
    minus output_padding plus the part of output_padding below the stride, which fixes its output at H rows:
    the user's own padding while output_padding < stride, negative (rows no output reads) where
    output_padding >= stride, which only dilation allows.
    """

    conv: Conv2DParams
    padding: tuple[int, int, int, int]  # the transposed convolution's: top, bottom, left, right
    output_padding: tuple[int, int]

    #: The pass of ``conv`` that computes each pass of the transposed convolution, x and grad_output swapping
    #: roles: its forward pass is conv's input gradient and the reverse; the weight gradients are the same pass.
    #: The bias gradient sums grad_output, conv's input, which is no pass of conv.
    CONV_PASSES: typing.ClassVar[dict] = {"forward": "grad_input", "grad_input": "forward",
                                          "grad_weight": "grad_weight"}

    @classmethod
    def create(cls, input_shape, weight_shape, stride=1, padding=0, output_padding=0, groups=1, dilation=1,
               dtype=np.float32, input_name="x", weight_name="weight") -> "ConvTranspose2DParams":
        """Validate user arguments and build the params (raises ValueError/TypeError naming the argument)."""
        (N, C_in, H, W), (K, C_out_g, R, S), stride, dilation, groups = layer_arguments(
            input_name, input_shape, "(N, C_in, H, W)", weight_name, weight_shape, "(C_in, C_out/groups, kH, kW)",
            stride, dilation, groups, "hw")
        if C_in % groups:
            raise ValueError(f"groups={groups} must divide the input channels C_in={C_in} ({_dim(input_name, 1)})")
        if K != C_in:
            raise ValueError(f"channel mismatch: {input_name} has C_in={C_in} channels but {_dim(weight_name, 0)}={K}; "
                             f"a transposed convolution's weight is (C_in, C_out/groups, kH, kW)")
        if isinstance(padding, str):
            raise ValueError(f"padding must be an int, (ph, pw) or ((top, bottom), (left, right)) for a transposed "
                             f"convolution ('same' and 'valid' are not defined there), got {padding!r}")
        padding = normalize_padding(padding, (R, S), stride, dilation)
        output_padding = output_padding_axes(output_padding, stride, dilation)
        dtype = _supported_dtype(dtype)
        (H_out, bottom), (W_out, right) = (
            transposed_axis(*axis, input_name) for axis in zip("hw", (H, W), stride, dilation, (R, S), padding[0::2],
                                                               padding[1::2], output_padding))
        conv = Conv2DParams(N, C_out_g * groups, H_out, W_out, C_in, R, S, stride,
                            (padding[0], bottom, padding[2], right), dilation, groups, dtype)
        params = cls(conv, padding, output_padding)
        _check_tensor_sizes(params, input_name, weight_name)
        return params

    @property
    def input_shape(self) -> tuple[int, int, int, int]:
        return self.conv.output_shape

    @property
    def weight_shape(self) -> tuple[int, int, int, int]:
        return self.conv.weight_shape

    @property
    def output_shape(self) -> tuple[int, int, int, int]:
        return self.conv.input_shape

    @property
    def bias_shape(self) -> tuple[int]:
        return (self.conv.C,)

    @property
    def dtype(self) -> np.dtype:
        return self.conv.dtype

    @property
    def N(self) -> int:
        return self.conv.N

    def flops(self, pass_name: str = "forward") -> int:
        """Multiply-adds x 2 of a pass: those of the pass of ``conv`` that computes it (CONV_PASSES; forward,
        grad_input and grad_weight cost the same); grad_bias reads grad_output once."""
        pass_call(pass_name)
        if pass_name == "grad_bias":
            return math.prod(self.output_shape)
        return self.conv.flops(self.CONV_PASSES[pass_name])

    def bytes_moved(self, pass_name: str = "forward") -> int:
        """Minimum bytes each pass reads and writes (every tensor of the transposed layer once)."""
        return bytes_moved(self, pass_name)

    @property
    def conv_args(self) -> dict:
        """stride, padding, output_padding, groups and dilation as the transposed functions take them."""
        top, bottom, left, right = self.padding
        return {"stride": self.conv.stride, "padding": ((top, bottom), (left, right)),
                "output_padding": self.output_padding, "groups": self.conv.groups, "dilation": self.conv.dilation}

    def describe(self) -> str:
        return (f"x{self.input_shape} w{self.weight_shape} -> y{self.output_shape} (transposed) "
                f"stride={self.conv.stride} padding(t,b,l,r)={self.padding} output_padding={self.output_padding} "
                f"dilation={self.conv.dilation} groups={self.conv.groups} {dtype_name(self.dtype)}")


TRANSPOSED2D = EntryPoints(ConvTranspose2DParams, "(N, C_in, H, W)", "(C_in, C_out/groups, kH, kW)",
                           "(N, C_out, H_out, W_out)", "(C_out,)")
transpose_forward_params = TRANSPOSED2D.forward
transpose_grad_input_params = TRANSPOSED2D.grad_input
transpose_grad_weight_params = TRANSPOSED2D.grad_weight
