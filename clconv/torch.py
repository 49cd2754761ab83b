"""PyTorch integration: convolution layers whose three passes run on an OpenCL device through clconv.

    import clconv.torch
    layer = clconv.torch.Conv3d(3, 16, 3, padding=1)          # a drop-in for torch.nn.Conv3d (Conv1d, Conv2d alike)
    up = clconv.torch.ConvTranspose3d(16, 3, 3, stride=2, padding=1, output_padding=1)  # transposed ones (1d, 2d)
    model = clconv.torch.convert(model)                       # swap every convolution layer, keeping weights
    y = clconv.torch.conv3d(x, weight, bias, stride=1, padding=1)  # functional forms: conv1d/2d/3d and
                                                                   # conv_transpose1d/2d/3d

Tensors stay CPU tensors (float32, float64 or float16); the OpenCL device is clconv's default
(``clconv.select_device``, CLCONV_DEVICE) or the ``cl_device`` given to a layer or call. Backward
computes only the gradients autograd asks for, and a layer keeps for backward only what those need:
the input if the weight needs a gradient, the weight if the input does.

What PyTorch's layers accept and clconv does not is refused with a ValueError or TypeError saying so: a
padding_mode other than "zeros", unbatched input (a batch axis is required), tensors on another device than
the CPU, and dtypes other than float16, float32 and float64.
"""

from __future__ import annotations

import torch

from . import api, params, params_1d, params_3d, plan_3d, planning, platforms

_SUPPORTED = (torch.float16, torch.float32, torch.float64)


def _as_numpy(name: str, tensor):
    if tensor is None:
        return None
    if not isinstance(tensor, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(tensor).__name__}")
    if tensor.device.type != "cpu":
        raise ValueError(
            f"{name} is a {tensor.device.type} tensor; clconv.torch works on CPU tensors and runs the convolution "
            "on the OpenCL device chosen with cl_device= or clconv.select_device()")
    if tensor.dtype not in _SUPPORTED:
        raise TypeError(f"{name} must be float16, float32 or float64, got {tensor.dtype}")
    return tensor.detach().numpy()


def _bytes(*tensors) -> int:
    return sum(t.element_size() * t.nelement() for t in tensors if t is not None)


def _device_bytes(p: params.Conv2DParams | params_3d.Conv3DParams, cl_device) -> dict:
    """Device bytes each pass allocates: its inputs and output (every tensor once) and its workspace, which for
    a 3-D layer holds the input unfolded along depth besides the workspace of its 2-D plan."""
    planner = plan_3d.plan_for_3d if isinstance(p, params_3d.Conv3DParams) else planning.plan_for
    workspace = planner(p, platforms.resolve(cl_device)).workspace_bytes
    return {name: p.bytes_moved(name) + workspace[name] for name in params.PASSES}


def _api(pass_name: str, rank: int, calls: dict):
    """The public function of a pass (of ``calls``: params.PASS_CALLS or TRANSPOSED_PASS_CALLS) for layers of
    ``rank`` spatial dimensions, looked up at call time (tests replace them)."""
    return getattr(api, params.pass_call(pass_name, calls).function_for(rank))


def _layer_params(rank: int, *forward_args) -> params.Conv2DParams | params_3d.Conv3DParams:
    """The layer a forward call runs: the 2-D one (for a 1-D call, the one with H = 1) or the 3-D one."""
    if rank == 1:
        return params_1d.forward_params(*forward_args).layer
    if rank == 3:
        return params_3d.forward_params(*forward_args)
    return params.forward_params(*forward_args)


class _ConvFunction(torch.autograd.Function):
    """Forward and backward of a 1-D, 2-D or 3-D (``rank``) convolution or transposed convolution through clconv's
    functions: ``calls`` names them (params.PASS_CALLS or TRANSPOSED_PASS_CALLS), and ``geometry`` holds the
    arguments they take after the arrays, in their order. ``memory``: a dict to report into, or None."""

    @staticmethod
    def forward(ctx, x, weight, bias, calls, rank, geometry, cl_device, memory):
        x_np, w_np, b_np = _as_numpy("input", x), _as_numpy("weight", weight), _as_numpy("bias", bias)
        y = _api("forward", rank, calls)(x_np, w_np, b_np, *geometry, device=cl_device)
        input_grad, weight_grad = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        # Keep only what backward will read: x for the weight gradient, the weight for the input gradient.
        ctx.save_for_backward(x if weight_grad else None, weight if input_grad else None)
        ctx.input_shape = tuple(x.shape)
        ctx.weight_shape = tuple(weight.shape)
        ctx.calls, ctx.rank, ctx.geometry = calls, rank, geometry
        ctx.cl_device = cl_device
        if memory is not None:
            memory["saved_for_backward_bytes"] = _bytes(x if weight_grad else None, weight if input_grad else None)
            memory["device_bytes"] = _device_bytes(
                _layer_params(rank, x_np, w_np, b_np, *geometry), cl_device)
        return torch.from_numpy(y)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_output):
        x, weight = ctx.saved_tensors
        grad_np = _as_numpy("grad_output", grad_output)
        geometry, rank, calls = ctx.geometry, ctx.rank, ctx.calls
        grad_x = grad_w = grad_b = None
        if ctx.needs_input_grad[0]:
            grad_x = torch.from_numpy(_api("grad_input", rank, calls)(
                grad_np, _as_numpy("weight", weight), ctx.input_shape, *geometry, device=ctx.cl_device))
        if ctx.needs_input_grad[1]:
            grad_w = torch.from_numpy(_api("grad_weight", rank, calls)(
                _as_numpy("input", x), grad_np, ctx.weight_shape, *geometry, device=ctx.cl_device))
        if ctx.needs_input_grad[2]:
            grad_b = torch.from_numpy(_api("grad_bias", rank, calls)(grad_np, device=ctx.cl_device))
        return grad_x, grad_w, grad_b, None, None, None, None, None


def _convolution(rank, x, weight, bias, stride, padding, dilation, groups, cl_device, memory=None):
    geometry = (_pair_or_int(stride), _torch_padding(padding), _pair_or_int(dilation), groups)
    return _ConvFunction.apply(x, weight, bias, params.PASS_CALLS, rank, geometry, cl_device, memory)


def conv1d(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, *, cl_device=None):
    """``torch.nn.functional.conv1d`` with forward and backward on the OpenCL device (padding may also be an
    asymmetric (left, right) pair)."""
    return _convolution(1, x, weight, bias, stride, padding, dilation, groups, cl_device)


def conv2d(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, *, cl_device=None):
    """``torch.nn.functional.conv2d`` with forward and backward on the OpenCL device."""
    return _convolution(2, x, weight, bias, stride, padding, dilation, groups, cl_device)


def conv3d(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, *, cl_device=None):
    """``torch.nn.functional.conv3d`` with forward and backward on the OpenCL device, through
    :func:`clconv.conv3d` and its gradients (x (N, C, D, H, W), weight (K, C/groups, T, R, S); padding may also
    be one (before, after) pair per axis)."""
    return _convolution(3, x, weight, bias, stride, padding, dilation, groups, cl_device)


def _pair_or_int(value):
    return tuple(value) if isinstance(value, (list, tuple)) else value


def _torch_padding(padding):
    return padding if isinstance(padding, str) else _pair_or_int(padding)


def _check_devices(device, cl_device) -> None:
    """The checks a clconv layer makes before torch builds its parameters."""
    if device is not None and torch.device(device).type not in ("cpu", "meta"):
        raise ValueError(f"device must be a CPU device (clconv keeps tensors on the CPU), got {device!r}")
    if cl_device is not None:
        platforms.resolve(cl_device)  # a bad spec fails here, not at the first forward


class _OpenCLLayer:
    """What every clconv layer shows besides torch's arguments: its ``cl_device``."""

    def extra_repr(self) -> str:
        device = f", cl_device={self.cl_device!r}" if self.cl_device is not None else ""
        return super().extra_repr() + device


class _OpenCLConv(_OpenCLLayer):
    """What :class:`Conv1d`, :class:`Conv2d` and :class:`Conv3d` add to torch's layers, whose arguments they
    take unchanged."""

    _rank: int

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, groups=1,
                 bias=True, padding_mode="zeros", device=None, dtype=None, *, cl_device=None):
        if padding_mode != "zeros":
            raise ValueError(f"padding_mode must be 'zeros' (clconv pads with zeros only), got {padding_mode!r}")
        _check_devices(device, cl_device)
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias,
                         padding_mode, device, dtype)
        self.cl_device = cl_device
        self.memory = {}

    def _conv_forward(self, input, weight, bias):
        # Memory is recorded for forwards that build a graph (training), not for evaluation under no_grad.
        memory = self.memory if torch.is_grad_enabled() else None
        return _convolution(self._rank, input, weight, bias, self.stride, self.padding, self.dilation, self.groups,
                            self.cl_device, memory)


class Conv1d(_OpenCLConv, torch.nn.Conv1d):
    """A drop-in for ``torch.nn.Conv1d`` (same arguments, parameters and initialisation) running on OpenCL.

    ``cl_device`` picks the OpenCL device (default: clconv's default device). Only
    ``padding_mode="zeros"`` exists. After each forward that builds a graph, ``memory`` holds the bytes kept
    for backward and the device bytes each pass allocates.
    """

    _rank = 1


class Conv2d(_OpenCLConv, torch.nn.Conv2d):
    """A drop-in for ``torch.nn.Conv2d`` (same arguments, parameters and initialisation) running on OpenCL.

    ``cl_device`` picks the OpenCL device (default: clconv's default device). Only
    ``padding_mode="zeros"`` exists. After each forward that builds a graph, ``memory`` holds the bytes kept
    for backward and the device bytes each pass allocates.
    """

    _rank = 2


class Conv3d(_OpenCLConv, torch.nn.Conv3d):
    """A drop-in for ``torch.nn.Conv3d`` (same arguments, parameters and initialisation) running on OpenCL.

    ``cl_device`` picks the OpenCL device (default: clconv's default device). Only
    ``padding_mode="zeros"`` exists. After each forward that builds a graph, ``memory`` holds the bytes kept
    for backward and the device bytes each pass allocates (the input unfolded along depth included).
    """

    _rank = 3


def _transposed_convolution(rank, x, weight, bias, stride, padding, output_padding, groups, dilation, cl_device):
    geometry = (_pair_or_int(stride), _pair_or_int(padding), _pair_or_int(output_padding), groups,
                _pair_or_int(dilation))
    return _ConvFunction.apply(x, weight, bias, params.TRANSPOSED_PASS_CALLS, rank, geometry, cl_device, None)


def conv_transpose2d(x, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1, *,
                     cl_device=None):
    """``torch.nn.functional.conv_transpose2d`` with forward and backward on the OpenCL device."""
    return _transposed_convolution(2, x, weight, bias, stride, padding, output_padding, groups, dilation, cl_device)


def conv_transpose1d(x, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1, *,
                     cl_device=None):
    """``torch.nn.functional.conv_transpose1d`` with forward and backward on the OpenCL device, through
    :func:`clconv.conv_transpose1d` and its gradients (x (N, C_in, L), weight (C_in, C_out/groups, k))."""
    for name, tensor in (("input", x), ("weight", weight)):
        if isinstance(tensor, torch.Tensor) and tensor.dim() != 3:
            raise ValueError(f"{name} must be a 3-D tensor, got shape {tuple(tensor.shape)}")
    return _transposed_convolution(1, x, weight, bias, stride, padding, output_padding, groups, dilation, cl_device)


def conv_transpose3d(x, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1, *,
                     cl_device=None):
    """``torch.nn.functional.conv_transpose3d`` with forward and backward on the OpenCL device, through
    :func:`clconv.conv_transpose3d` and its gradients (x (N, C_in, D, H, W), weight (C_in, C_out/groups, kD, kH,
    kW))."""
    return _transposed_convolution(3, x, weight, bias, stride, padding, output_padding, groups, dilation, cl_device)


class _OpenCLConvTranspose(_OpenCLLayer):
    """What :class:`ConvTranspose1d`, :class:`ConvTranspose2d` and :class:`ConvTranspose3d` add to torch's
    layers, whose arguments and ``forward(input, output_size=None)`` they take unchanged."""

    _rank: int

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, output_padding=0, groups=1,
                 bias=True, dilation=1, padding_mode="zeros", device=None, dtype=None, *, cl_device=None):
        _check_devices(device, cl_device)
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, output_padding, groups, bias,
                         dilation, padding_mode, device, dtype)  # refuses any padding_mode but "zeros"
        self.cl_device = cl_device

    def forward(self, input, output_size=None):
        output_padding = self._output_padding(input, output_size, self.stride, self.padding, self.kernel_size,
                                              self._rank, self.dilation)
        function = {1: conv_transpose1d, 2: conv_transpose2d, 3: conv_transpose3d}[self._rank]
        return function(input, self.weight, self.bias, self.stride, self.padding, output_padding, self.groups,
                        self.dilation, cl_device=self.cl_device)


class ConvTranspose2d(_OpenCLConvTranspose, torch.nn.ConvTranspose2d):
    """A drop-in for ``torch.nn.ConvTranspose2d`` (same arguments, parameters, initialisation and
    ``forward(input, output_size=None)``) running on OpenCL; ``cl_device`` picks the OpenCL device."""

    _rank = 2


class ConvTranspose1d(_OpenCLConvTranspose, torch.nn.ConvTranspose1d):
    """A drop-in for ``torch.nn.ConvTranspose1d`` (same arguments, parameters, initialisation and
    ``forward(input, output_size=None)``) running on OpenCL; ``cl_device`` picks the OpenCL device."""

    _rank = 1


class ConvTranspose3d(_OpenCLConvTranspose, torch.nn.ConvTranspose3d):
    """A drop-in for ``torch.nn.ConvTranspose3d`` (same arguments, parameters, initialisation and
    ``forward(input, output_size=None)``) running on OpenCL; ``cl_device`` picks the OpenCL device."""

    _rank = 3


#: torch's layers that :func:`convert` replaces, and their replacements.
_REPLACEMENTS = {torch.nn.Conv1d: Conv1d, torch.nn.Conv2d: Conv2d, torch.nn.Conv3d: Conv3d,
                 torch.nn.ConvTranspose1d: ConvTranspose1d, torch.nn.ConvTranspose2d: ConvTranspose2d,
                 torch.nn.ConvTranspose3d: ConvTranspose3d}


def _replacement(name: str, child: torch.nn.Module, cl_device):
    """The clconv drop-in for one of torch's convolution layers, sharing its parameters; None for any other
    module (and for one that is already clconv's)."""
    layer_type = next((ours for theirs, ours in _REPLACEMENTS.items() if isinstance(child, theirs)), None)
    if layer_type is None or isinstance(child, layer_type):
        return None
    if child.padding_mode != "zeros":
        raise ValueError(f"{name}: padding_mode={child.padding_mode!r} is not supported (zeros only)")
    if issubclass(layer_type, _OpenCLConvTranspose):
        geometry = (child.stride, child.padding, child.output_padding, child.groups, child.bias is not None,
                    child.dilation)
    else:
        geometry = (child.stride, child.padding, child.dilation, child.groups, child.bias is not None)
    replacement = layer_type(child.in_channels, child.out_channels, child.kernel_size, *geometry, device="meta",
                             dtype=child.weight.dtype, cl_device=cl_device)
    replacement.weight = child.weight
    replacement.bias = child.bias
    replacement.train(child.training)
    return replacement


def convert(model: torch.nn.Module, cl_device=None) -> torch.nn.Module:
    """Replace every ``torch.nn.Conv1d``, ``Conv2d``, ``Conv3d``, ``ConvTranspose1d``, ``ConvTranspose2d`` and
    ``ConvTranspose3d`` in ``model`` by its clconv drop-in, in place, keeping its parameters."""
    for name, child in list(model.named_children()):
        replacement = _replacement(name, child, cl_device)
        if replacement is not None:
            setattr(model, name, replacement)
        else:
            convert(child, cl_device)
    return model


def memory_report(model: torch.nn.Module) -> list[dict]:
    """Per clconv convolution layer (Conv1d, Conv2d, Conv3d), from its last forward: bytes kept for backward, and
    device bytes of each pass."""
    rows = []
    for name, module in model.named_modules():
        if isinstance(module, _OpenCLConv) and module.memory:
            rows.append({"layer": name, "saved_for_backward_bytes": module.memory["saved_for_backward_bytes"],
                         **{f"{pass_name}_device_bytes": n for pass_name, n in module.memory["device_bytes"].items()}})
    return rows


__all__ = ["Conv1d", "Conv2d", "Conv3d", "ConvTranspose1d", "ConvTranspose2d", "ConvTranspose3d", "conv1d", "conv2d",
           "conv3d", "conv_transpose1d", "conv_transpose2d", "conv_transpose3d", "convert", "memory_report"]
