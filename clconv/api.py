"""The public functions: conv2d and its three gradients on an OpenCL device.

NumPy arrays in (any memory order or strides) give NumPy arrays out; ``pyopencl.array.Array``
inputs keep the work and the result on their context with no host round trip. When a call mixes the
two, the device arrays decide where it runs and the result stays on the device; an ``out`` array
decides where the result goes.

Each function validates its arguments, then runs a cached :class:`~clconv.planning.Conv2DPlan`. The 1-D
functions (``conv1d`` ...) run the 2-D layer with H = 1 on views of the same arrays (:mod:`clconv.params_1d`).

Arguments every function takes (keyword-only):

- ``device``: where a call with only NumPy arrays runs: a device spec as ``clconv.select_device`` takes
  it (``"2:0"``, ``"cpu"``, a device or platform name fragment, a ``pyopencl.Device`` or
  ``pyopencl.CommandQueue``), or None for the default.
  With device arrays, None follows their context, and any other value must name that context's device.
- ``algo``: ``"auto"`` (the tuned winner for this layer and device, else the heuristic), or an algorithm
  name (``"tiled"``, ``"direct"``) to force it.
- ``max_workspace_bytes``: the most device memory a pass may allocate besides its inputs and result (the
  weight and bias gradients' partial sums), or None for no cap; 0 allocates nothing.
- ``out``: an array to write the result into, of exactly the result's shape and dtype, sharing no memory
  with the inputs: a writeable NumPy array (the call returns when it holds the result) or a C-contiguous
  device array on the call's context (the call may return before the kernels finish, as with device
  inputs). The function returns ``out``. None: a new array.
"""

from __future__ import annotations

from typing import Sequence

from . import arrays, params_1d, params_3d, transposed1d
from . import params as _params
from .arrays import Array
from .params import Padding, Pair
from .params_1d import Padding1D, Single
from .params_3d import Padding3D, Triple
from .plan_3d import plan_for_3d
from .planning import check_out, plan_for


def _plan(params, device, algo, max_workspace_bytes, **named):
    arrays.check_array_types(**named)
    target = arrays.target_for_arrays(device, **named)
    if isinstance(params, params_3d.Conv3DParams):
        return plan_for_3d(params, target, algo, max_workspace_bytes)
    return plan_for(params, target, algo, max_workspace_bytes)


def conv2d(x: Array, weight: Array, bias: Array | None = None, stride: Pair = 1, padding: Padding = 0,
           dilation: Pair = 1, groups: int = 1, *, device=None, algo: str = "auto",
           max_workspace_bytes: int | None = None, out: Array | None = None) -> Array:
    """Forward pass: the cross-correlation of ``x`` with ``weight``, plus ``bias``.

    x: (N, C, H, W); weight: (K, C/groups, R, S); bias: (K,) or None. stride, dilation: an int or an
    (h, w) pair, each >= 1. padding: an int, (ph, pw), ((top, bottom), (left, right)), "valid" or "same"
    (stride 1 only). groups: divides C and K. float16, float32 or float64, one dtype for all arrays.
    device, algo, max_workspace_bytes, out: see the module documentation.

    Returns y of shape (N, K, P, Q) in the input dtype.
    """
    params = _params.forward_params(x, weight, bias, stride, padding, dilation, groups)
    plan = _plan(params, device, algo, max_workspace_bytes, x=x, weight=weight, bias=bias, out=out)
    return plan.forward(x, weight, bias, out=out)


def conv2d_grad_input(grad_output: Array, weight: Array, input_shape: Sequence[int], stride: Pair = 1,
                      padding: Padding = 0, dilation: Pair = 1, groups: int = 1, *, device=None, algo: str = "auto",
                      max_workspace_bytes: int | None = None, out: Array | None = None) -> Array:
    """dL/dx from grad_output = dL/dy (N, K, P, Q) and weight (K, C/groups, R, S).

    input_shape: (N, C, H, W) of the forward pass's x (several input sizes give the same output size, so it
    is needed). stride, padding, dilation, groups: those of the forward pass (see :func:`conv2d`).
    device, algo, max_workspace_bytes, out: see the module documentation.

    Returns dL/dx of shape ``input_shape``.
    """
    params = _params.grad_input_params(grad_output, weight, input_shape, stride, padding, dilation, groups)
    plan = _plan(params, device, algo, max_workspace_bytes, grad_output=grad_output, weight=weight, out=out)
    return plan.grad_input(grad_output, weight, out=out)


def conv2d_grad_weight(x: Array, grad_output: Array, weight_shape: Sequence[int], stride: Pair = 1,
                       padding: Padding = 0, dilation: Pair = 1, groups: int = 1, *, device=None, algo: str = "auto",
                       max_workspace_bytes: int | None = None, out: Array | None = None) -> Array:
    """dL/dk from the forward pass's x (N, C, H, W) and grad_output = dL/dy (N, K, P, Q).

    weight_shape: (K, C/groups, R, S). stride, padding, dilation, groups: those of the forward pass (see
    :func:`conv2d`). device, algo, max_workspace_bytes, out: see the module documentation.

    Returns dL/dk of shape ``weight_shape``, bit-identical across runs of the same call.
    """
    params = _params.grad_weight_params(x, grad_output, weight_shape, stride, padding, dilation, groups)
    plan = _plan(params, device, algo, max_workspace_bytes, x=x, grad_output=grad_output, out=out)
    return plan.grad_weight(x, grad_output, out=out)


def conv2d_grad_bias(grad_output: Array, *, device=None, algo: str = "auto",
                     max_workspace_bytes: int | None = None, out: Array | None = None) -> Array:
    """dL/db: grad_output = dL/dy (N, K, P, Q) summed over N, P and Q.

    device, algo, max_workspace_bytes, out: see the module documentation.

    Returns dL/db of shape (K,), bit-identical across runs of the same call.
    """
    params = _params.grad_bias_params(grad_output)
    plan = _plan(params, device, algo, max_workspace_bytes, grad_output=grad_output, out=out)
    return plan.grad_bias(grad_output, out=out)


# -- 1-D: x (N, C, L), weight (K, C/groups, S), y (N, K, L_out) -------------------------------------------

def _run_1d(function_2d, pass_name: str, layer: params_1d.Conv1DParams, tensors: dict, **options) -> Array:
    arrays.check_device_layout(**tensors, out=options["out"])  # before the views, to name 1-D strides
    return params_1d.run_as_2d(function_2d, pass_name, layer, tensors, **options)


def conv1d(x: Array, weight: Array, bias: Array | None = None, stride: Single = 1, padding: Padding1D = 0,
           dilation: Single = 1, groups: int = 1, *, device=None, algo: str = "auto",
           max_workspace_bytes: int | None = None, out: Array | None = None) -> Array:
    """Forward pass of a 1-D layer: the cross-correlation of ``x`` with ``weight``, plus ``bias``.

    x: (N, C, L); weight: (K, C/groups, S); bias: (K,) or None. stride, dilation: an int or a 1-tuple, >= 1.
    padding: an int, (p,), (left, right), "valid" or "same" (stride 1 only). groups: divides C and K.
    device, algo, max_workspace_bytes, out: see the module documentation.

    Returns y of shape (N, K, L_out), L_out = (L + left + right - dilation*(S-1) - 1) // stride + 1.
    """
    layer = params_1d.forward_params(x, weight, bias, stride, padding, dilation, groups)
    return _run_1d(conv2d, "forward", layer, {"x": x, "weight": weight, "bias": bias}, device=device, algo=algo,
                   max_workspace_bytes=max_workspace_bytes, out=out)


def conv1d_grad_input(grad_output: Array, weight: Array, input_shape: Sequence[int], stride: Single = 1,
                      padding: Padding1D = 0, dilation: Single = 1, groups: int = 1, *, device=None,
                      algo: str = "auto", max_workspace_bytes: int | None = None, out: Array | None = None) -> Array:
    """dL/dx of a 1-D layer from grad_output = dL/dy (N, K, L_out) and weight (K, C/groups, S).

    input_shape: (N, C, L) of the forward pass's x. stride, padding, dilation, groups: those of the forward
    pass (see :func:`conv1d`). device, algo, max_workspace_bytes, out: see the module documentation.

    Returns dL/dx of shape ``input_shape``.
    """
    layer = params_1d.grad_input_params(grad_output, weight, input_shape, stride, padding, dilation, groups)
    return _run_1d(conv2d_grad_input, "grad_input", layer, {"grad_output": grad_output, "weight": weight},
                   device=device, algo=algo, max_workspace_bytes=max_workspace_bytes, out=out)


def conv1d_grad_weight(x: Array, grad_output: Array, weight_shape: Sequence[int], stride: Single = 1,
                       padding: Padding1D = 0, dilation: Single = 1, groups: int = 1, *, device=None,
                       algo: str = "auto", max_workspace_bytes: int | None = None, out: Array | None = None) -> Array:
    """dL/dk of a 1-D layer from the forward pass's x (N, C, L) and grad_output = dL/dy (N, K, L_out).

    weight_shape: (K, C/groups, S). stride, padding, dilation, groups: those of the forward pass (see
    :func:`conv1d`). device, algo, max_workspace_bytes, out: see the module documentation.

    Returns dL/dk of shape ``weight_shape``, bit-identical across runs of the same call.
    """
    layer = params_1d.grad_weight_params(x, grad_output, weight_shape, stride, padding, dilation, groups)
    return _run_1d(conv2d_grad_weight, "grad_weight", layer, {"x": x, "grad_output": grad_output}, device=device,
                   algo=algo, max_workspace_bytes=max_workspace_bytes, out=out)


def conv1d_grad_bias(grad_output: Array, *, device=None, algo: str = "auto",
                     max_workspace_bytes: int | None = None, out: Array | None = None) -> Array:
    """dL/db of a 1-D layer: grad_output = dL/dy (N, K, L_out) summed over N and L_out.

    device, algo, max_workspace_bytes, out: see the module documentation.

    Returns dL/db of shape (K,), bit-identical across runs of the same call.
    """
    layer = params_1d.grad_bias_params(grad_output)
    return _run_1d(conv2d_grad_bias, "grad_bias", layer, {"grad_output": grad_output}, device=device, algo=algo,
                   max_workspace_bytes=max_workspace_bytes, out=out)


# -- transposed convolution: the input gradient of the convolution ConvTranspose2DParams.conv ----------------

def _transposed_plan(params: _params.ConvTranspose2DParams, result_shape, device, algo, max_workspace_bytes,
                     out, **named):
    """The plan of the convolution behind a transposed one, with the arrays checked under the names the caller
    gave them (the plan would name them as its convolution sees them)."""
    arrays.check_array_types(out=out, **named)
    arrays.check_device_layout(out=out, **named)
    check_out(out, result_shape, params.dtype, named)
    return _plan(params.conv, device, algo, max_workspace_bytes, out=out, **named)


def conv_transpose2d(x: Array, weight: Array, bias: Array | None = None, stride: Pair = 1, padding: Padding = 0,
                     output_padding: Pair = 0, groups: int = 1, dilation: Pair = 1, *, device=None,
                     algo: str = "auto", max_workspace_bytes: int | None = None, out: Array | None = None) -> Array:
    """Transposed convolution (PyTorch's ``conv_transpose2d``): the input gradient of the convolution that maps
    an (N, C_out, H_out, W_out) input to x's shape, computed with x as that gradient, plus ``bias``.

    x: (N, C_in, H, W); weight: (C_in, C_out/groups, kH, kW); bias: (C_out,) or None. stride, dilation: an
    int or an (h, w) pair, each >= 1. padding: an int, (ph, pw) or ((top, bottom), (left, right)), taken
    off the output's edges. output_padding: an int or an (h, w) pair, each smaller than its axis's stride or
    dilation, added to the output's bottom (right) edge. groups: divides C_in and C_out.
    device, algo, max_workspace_bytes, out: see the module documentation.

    Returns y of shape (N, C_out, H_out, W_out) with H_out = (H - 1)*stride_h - pad_top - pad_bottom +
    dilation_h*(kH - 1) + output_padding_h + 1, likewise W_out. Without bias it is bit-identical to
    ``conv2d_grad_input(x, weight, y.shape, stride, padding, dilation, groups)`` where that call is valid
    (output_padding < stride).
    """
    params = _params.transpose_forward_params(x, weight, bias, stride, padding, output_padding, groups, dilation)
    plan = _transposed_plan(params, params.output_shape, device, algo, max_workspace_bytes, out,
                            x=x, weight=weight, bias=bias)
    return plan.grad_input(x, weight, bias=bias, out=out)


def conv_transpose2d_grad_input(grad_output: Array, weight: Array, input_shape: Sequence[int], stride: Pair = 1,
                                padding: Padding = 0, output_padding: Pair = 0, groups: int = 1, dilation: Pair = 1,
                                *, device=None, algo: str = "auto", max_workspace_bytes: int | None = None,
                                out: Array | None = None) -> Array:
    """dL/dx of :func:`conv_transpose2d` from grad_output = dL/dy (N, C_out, H_out, W_out): the convolution
    of grad_output with weight (the forward pass of the convolution behind the transposed one).

    input_shape: (N, C_in, H, W) of the forward pass's x; the other arguments as :func:`conv_transpose2d` takes
    them. Returns dL/dx of shape ``input_shape``.
    """
    params = _params.transpose_grad_input_params(grad_output, weight, input_shape, stride, padding, output_padding,
                                                 groups, dilation)
    plan = _transposed_plan(params, params.input_shape, device, algo, max_workspace_bytes, out,
                            grad_output=grad_output, weight=weight)
    return plan.forward(grad_output, weight, out=out)


def conv_transpose2d_grad_weight(x: Array, grad_output: Array, weight_shape: Sequence[int], stride: Pair = 1,
                                 padding: Padding = 0, output_padding: Pair = 0, groups: int = 1, dilation: Pair = 1,
                                 *, device=None, algo: str = "auto", max_workspace_bytes: int | None = None,
                                 out: Array | None = None) -> Array:
    """dL/dk of :func:`conv_transpose2d` from its x (N, C_in, H, W) and grad_output = dL/dy: the weight
    gradient of the convolution behind it, whose input is grad_output and whose output gradient is x.

    weight_shape: (C_in, C_out/groups, kH, kW); the other arguments as :func:`conv_transpose2d` takes them.
    Returns dL/dk of shape ``weight_shape``, bit-identical across runs of the same call.
    """
    params = _params.transpose_grad_weight_params(x, grad_output, weight_shape, stride, padding, output_padding,
                                                  groups, dilation)
    plan = _transposed_plan(params, params.weight_shape, device, algo, max_workspace_bytes, out,
                            x=x, grad_output=grad_output)
    return plan.grad_weight(grad_output, x, out=out)


def conv_transpose2d_grad_bias(grad_output: Array, *, device=None, algo: str = "auto",
                               max_workspace_bytes: int | None = None, out: Array | None = None) -> Array:
    """dL/db of :func:`conv_transpose2d`: grad_output = dL/dy (N, C_out, H_out, W_out) summed over N, H_out and
    W_out, as :func:`conv2d_grad_bias` sums it. Returns shape (C_out,), bit-identical across runs."""
    return conv2d_grad_bias(grad_output, device=device, algo=algo, max_workspace_bytes=max_workspace_bytes, out=out)


def conv_transpose1d(x: Array, weight: Array, bias: Array | None = None, stride=1, padding=0, output_padding=0,
                     groups: int = 1, dilation=1, *, device=None, algo: str = "auto",
                     max_workspace_bytes: int | None = None, out: Array | None = None) -> Array:
    """Transposed 1-D convolution (PyTorch's ``conv_transpose1d``): :func:`conv_transpose2d` with a height of 1.

    x: (N, C_in, L); weight: (C_in, C_out/groups, k); bias: (C_out,) or None; stride, output_padding,
    dilation: an int (or a 1-tuple); padding: an int, (p,) or (left, right). Returns (N, C_out, L_out) with
    L_out = (L - 1)*stride - pad_left - pad_right + dilation*(k - 1) + output_padding + 1.
    """
    result = conv_transpose2d(
        transposed1d.array_2d("x", x), transposed1d.array_2d("weight", weight), bias,
        **transposed1d.geometry(stride, padding, output_padding, groups, dilation), device=device, algo=algo,
        max_workspace_bytes=max_workspace_bytes, out=transposed1d.array_2d("out", out))
    return transposed1d.array_1d(result, out)


def conv_transpose1d_grad_input(grad_output: Array, weight: Array, input_shape: Sequence[int], stride=1, padding=0,
                                output_padding=0, groups: int = 1, dilation=1, *, device=None, algo: str = "auto",
                                max_workspace_bytes: int | None = None, out: Array | None = None) -> Array:
    """dL/dx of :func:`conv_transpose1d`, shape ``input_shape`` (N, C_in, L)."""
    result = conv_transpose2d_grad_input(
        transposed1d.array_2d("grad_output", grad_output), transposed1d.array_2d("weight", weight),
        transposed1d.shape_2d("input_shape", input_shape),
        **transposed1d.geometry(stride, padding, output_padding, groups, dilation), device=device, algo=algo,
        max_workspace_bytes=max_workspace_bytes, out=transposed1d.array_2d("out", out))
    return transposed1d.array_1d(result, out)


def conv_transpose1d_grad_weight(x: Array, grad_output: Array, weight_shape: Sequence[int], stride=1, padding=0,
                                 output_padding=0, groups: int = 1, dilation=1, *, device=None, algo: str = "auto",
                                 max_workspace_bytes: int | None = None, out: Array | None = None) -> Array:
    """dL/dk of :func:`conv_transpose1d`, shape ``weight_shape`` (C_in, C_out/groups, k), bit-identical across
    runs."""
    result = conv_transpose2d_grad_weight(
        transposed1d.array_2d("x", x), transposed1d.array_2d("grad_output", grad_output),
        transposed1d.shape_2d("weight_shape", weight_shape),
        **transposed1d.geometry(stride, padding, output_padding, groups, dilation), device=device, algo=algo,
        max_workspace_bytes=max_workspace_bytes, out=transposed1d.array_2d("out", out))
    return transposed1d.array_1d(result, out)


def conv_transpose1d_grad_bias(grad_output: Array, *, device=None, algo: str = "auto",
                               max_workspace_bytes: int | None = None, out: Array | None = None) -> Array:
    """dL/db of :func:`conv_transpose1d`: grad_output (N, C_out, L_out) summed over N and L_out; shape (C_out,)."""
    return conv2d_grad_bias(transposed1d.array_2d("grad_output", grad_output), device=device, algo=algo,
                            max_workspace_bytes=max_workspace_bytes, out=out)


# -- 3-D: x (N, C, D, H, W), weight (K, C/groups, T, R, S), y (N, K, D_out, P, Q) ------------------------------

def conv3d(x: Array, weight: Array, bias: Array | None = None, stride: Triple = 1, padding: Padding3D = 0,
           dilation: Triple = 1, groups: int = 1, *, device=None, algo: str = "auto",
           max_workspace_bytes: int | None = None, out: Array | None = None) -> Array:
    """Forward pass of a 3-D layer: the cross-correlation of ``x`` with ``weight``, plus ``bias``.

    x: (N, C, D, H, W); weight: (K, C/groups, T, R, S); bias: (K,) or None. stride, dilation: an int or a
    (d, h, w) triple, each >= 1. padding: an int, (pd, ph, pw), one (before, after) pair per axis, "valid" or
    "same" (stride 1 only). groups: divides C and K. device, algo, max_workspace_bytes, out: see the module
    documentation; the pass unfolds x along depth into T times its size of device memory
    (:mod:`clconv.plan_3d`), which max_workspace_bytes counts.

    Returns y of shape (N, K, D_out, P, Q).
    """
    params = params_3d.forward_params(x, weight, bias, stride, padding, dilation, groups)
    plan = _plan(params, device, algo, max_workspace_bytes, x=x, weight=weight, bias=bias, out=out)
    return plan.forward(x, weight, bias, out=out)


def conv3d_grad_input(grad_output: Array, weight: Array, input_shape: Sequence[int], stride: Triple = 1,
                      padding: Padding3D = 0, dilation: Triple = 1, groups: int = 1, *, device=None,
                      algo: str = "auto", max_workspace_bytes: int | None = None, out: Array | None = None) -> Array:
    """dL/dx of a 3-D layer from grad_output = dL/dy (N, K, D_out, P, Q) and weight (K, C/groups, T, R, S).

    input_shape: (N, C, D, H, W) of the forward pass's x. stride, padding, dilation, groups: those of the
    forward pass (see :func:`conv3d`). Returns dL/dx of shape ``input_shape``.
    """
    params = params_3d.grad_input_params(grad_output, weight, input_shape, stride, padding, dilation, groups)
    plan = _plan(params, device, algo, max_workspace_bytes, grad_output=grad_output, weight=weight, out=out)
    return plan.grad_input(grad_output, weight, out=out)


def conv3d_grad_weight(x: Array, grad_output: Array, weight_shape: Sequence[int], stride: Triple = 1,
                       padding: Padding3D = 0, dilation: Triple = 1, groups: int = 1, *, device=None,
                       algo: str = "auto", max_workspace_bytes: int | None = None, out: Array | None = None) -> Array:
    """dL/dk of a 3-D layer from the forward pass's x (N, C, D, H, W) and grad_output (N, K, D_out, P, Q).

    weight_shape: (K, C/groups, T, R, S). stride, padding, dilation, groups: those of the forward pass (see
    :func:`conv3d`). Returns dL/dk of shape ``weight_shape``, bit-identical across runs of the same call.
    """
    params = params_3d.grad_weight_params(x, grad_output, weight_shape, stride, padding, dilation, groups)
    plan = _plan(params, device, algo, max_workspace_bytes, x=x, grad_output=grad_output, out=out)
    return plan.grad_weight(x, grad_output, out=out)


def conv3d_grad_bias(grad_output: Array, *, device=None, algo: str = "auto",
                     max_workspace_bytes: int | None = None, out: Array | None = None) -> Array:
    """dL/db of a 3-D layer: grad_output = dL/dy (N, K, D_out, P, Q) summed over N, D_out, P and Q.

    Returns dL/db of shape (K,), bit-identical across runs of the same call.
    """
    layer = params_3d.grad_bias_params(grad_output)
    arrays.check_device_layout(grad_output=grad_output)
    return conv2d_grad_bias(grad_output.reshape(layer.input_shape), device=device, algo=algo,
                            max_workspace_bytes=max_workspace_bytes, out=out)


def conv_transpose3d(x: Array, weight: Array, bias: Array | None = None, stride: Triple = 1, padding=0,
                     output_padding: Triple = 0, groups: int = 1, dilation: Triple = 1, *, device=None,
                     algo: str = "auto", max_workspace_bytes: int | None = None, out: Array | None = None) -> Array:
    """Transposed 3-D convolution (PyTorch's ``conv_transpose3d``): the input gradient of the 3-D convolution
    that maps an (N, C_out, D_out, H_out, W_out) input to x's shape, computed with x as that gradient, plus
    ``bias``.

    x: (N, C_in, D, H, W); weight: (C_in, C_out/groups, kD, kH, kW); bias: (C_out,) or None. stride, dilation,
    output_padding: an int or a (d, h, w) triple; padding: an int, (pd, ph, pw) or one (before, after) pair per
    axis. Each output size is (size - 1)*stride - before - after + dilation*(k - 1) + output_padding + 1.
    """
    params = params_3d.transpose_forward_params(x, weight, bias, stride, padding, output_padding, groups, dilation)
    plan = _transposed_plan(params, params.output_shape, device, algo, max_workspace_bytes, out,
                            x=x, weight=weight, bias=bias)
    return plan.grad_input(x, weight, bias=bias, out=out)


def conv_transpose3d_grad_input(grad_output: Array, weight: Array, input_shape: Sequence[int], stride: Triple = 1,
                                padding=0, output_padding: Triple = 0, groups: int = 1, dilation: Triple = 1, *,
                                device=None, algo: str = "auto", max_workspace_bytes: int | None = None,
                                out: Array | None = None) -> Array:
    """dL/dx of :func:`conv_transpose3d`: the 3-D convolution of grad_output with weight; shape ``input_shape``."""
    params = params_3d.transpose_grad_input_params(grad_output, weight, input_shape, stride, padding,
                                                   output_padding, groups, dilation)
    plan = _transposed_plan(params, params.input_shape, device, algo, max_workspace_bytes, out,
                            grad_output=grad_output, weight=weight)
    return plan.forward(grad_output, weight, out=out)


def conv_transpose3d_grad_weight(x: Array, grad_output: Array, weight_shape: Sequence[int], stride: Triple = 1,
                                 padding=0, output_padding: Triple = 0, groups: int = 1, dilation: Triple = 1, *,
                                 device=None, algo: str = "auto", max_workspace_bytes: int | None = None,
                                 out: Array | None = None) -> Array:
    """dL/dk of :func:`conv_transpose3d`: the weight gradient of the 3-D convolution behind it, whose input is
    grad_output and whose output gradient is x; shape ``weight_shape``, bit-identical across runs."""
    params = params_3d.transpose_grad_weight_params(x, grad_output, weight_shape, stride, padding, output_padding,
                                                    groups, dilation)
    plan = _transposed_plan(params, params.weight_shape, device, algo, max_workspace_bytes, out,
                            x=x, grad_output=grad_output)
    return plan.grad_weight(grad_output, x, out=out)


def conv_transpose3d_grad_bias(grad_output: Array, *, device=None, algo: str = "auto",
                               max_workspace_bytes: int | None = None, out: Array | None = None) -> Array:
    """dL/db of :func:`conv_transpose3d`: grad_output (N, C_out, D_out, H_out, W_out) summed over all but the
    channels, as :func:`conv3d_grad_bias` sums it; shape (C_out,), bit-identical across runs."""
    return conv3d_grad_bias(grad_output, device=device, algo=algo, max_workspace_bytes=max_workspace_bytes, out=out)
