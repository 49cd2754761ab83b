"""PyTorch integration: convolution layers whose three passes run on an OpenCL device through clconv.

    import clconv.torch
    layer = clconv.torch.Conv2d(3, 16, 3, padding=1)            # a drop-in for torch.nn.Conv2d (Conv1d likewise)
    model = clconv.torch.convert(model)                         # swap every nn.Conv1d/Conv2d, keeping weights
    y = clconv.torch.conv2d(x, weight, bias, stride=1, padding=1)   # the functional form (and conv1d)

Tensors stay CPU tensors (float32, float64 or float16); the OpenCL device is clconv's default
(``clconv.select_device``, CLCONV_DEVICE) or the ``cl_device`` given to a layer or call. Backward
computes only the gradients autograd asks for, and a layer keeps for backward only what those need:
the input if the weight needs a gradient, the weight if the input does.
"""

from __future__ import annotations

import torch

from . import api, params, params_1d, planning, platforms

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


def _device_bytes(p: params.Conv2DParams, cl_device) -> dict:
    """Device bytes each pass allocates: its inputs and output (every tensor once) and its workspace."""
    workspace = planning.plan_for(p, platforms.resolve(cl_device)).workspace_bytes
    return {name: p.bytes_moved(name) + workspace[name] for name in params.PASSES}


def _api(pass_name: str, rank: int):
    """The public function of a pass for 1-D or 2-D layers, looked up at call time (tests replace them)."""
    return getattr(api, params.pass_call(pass_name).function_for(rank))


def _layer_params(rank: int, *forward_args) -> params.Conv2DParams:
    """The 2-D layer a forward call runs (for a 1-D call, the one with H = 1)."""
    if rank == 1:
        return params_1d.forward_params(*forward_args).layer
    return params.forward_params(*forward_args)


class _ConvFunction(torch.autograd.Function):
    """Forward and backward of a 1-D or 2-D convolution (``rank``) through clconv's functions."""

    @staticmethod
    def forward(ctx, x, weight, bias, rank, stride, padding, dilation, groups, cl_device, memory):
        x_np, w_np, b_np = _as_numpy("input", x), _as_numpy("weight", weight), _as_numpy("bias", bias)
        y = _api("forward", rank)(x_np, w_np, b_np, stride, padding, dilation, groups, device=cl_device)
        input_grad, weight_grad = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        # Keep only what backward will read: x for the weight gradient, the weight for the input gradient.
        ctx.save_for_backward(x if weight_grad else None, weight if input_grad else None)
        ctx.input_shape = tuple(x.shape)
        ctx.weight_shape = tuple(weight.shape)
        ctx.rank = rank
        ctx.conv = (stride, padding, dilation, groups)
        ctx.cl_device = cl_device
        if memory is not None:
            memory["saved_for_backward_bytes"] = _bytes(x if weight_grad else None, weight if input_grad else None)
            memory["device_bytes"] = _device_bytes(
                _layer_params(rank, x_np, w_np, b_np, stride, padding, dilation, groups), cl_device)
        return torch.from_numpy(y)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_output):
        x, weight = ctx.saved_tensors
        grad_np = _as_numpy("grad_output", grad_output)
        conv, rank = ctx.conv, ctx.rank
        grad_x = grad_w = grad_b = None
        if ctx.needs_input_grad[0]:
            grad_x = torch.from_numpy(_api("grad_input", rank)(grad_np, _as_numpy("weight", weight), ctx.input_shape,
                                                               *conv, device=ctx.cl_device))
        if ctx.needs_input_grad[1]:
            grad_w = torch.from_numpy(_api("grad_weight", rank)(_as_numpy("input", x), grad_np, ctx.weight_shape,
                                                                *conv, device=ctx.cl_device))
        if ctx.needs_input_grad[2]:
            grad_b = torch.from_numpy(_api("grad_bias", rank)(grad_np, device=ctx.cl_device))
        return grad_x, grad_w, grad_b, None, None, None, None, None, None, None


def conv1d(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, *, cl_device=None):
    """``torch.nn.functional.conv1d`` with forward and backward on the OpenCL device (padding may also be an
    asymmetric (left, right) pair)."""
    return _ConvFunction.apply(x, weight, bias, 1, _pair_or_int(stride), _torch_padding(padding),
                               _pair_or_int(dilation), groups, cl_device, None)


def conv2d(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, *, cl_device=None):
    """``torch.nn.functional.conv2d`` with forward and backward on the OpenCL device."""
    return _ConvFunction.apply(x, weight, bias, 2, _pair_or_int(stride), _torch_padding(padding),
                               _pair_or_int(dilation), groups, cl_device, None)


def _pair_or_int(value):
    return tuple(value) if isinstance(value, (list, tuple)) else value


def _torch_padding(padding):
    return padding if isinstance(padding, str) else _pair_or_int(padding)


class _OpenCLConv:
    """What :class:`Conv1d` and :class:`Conv2d` add to torch's layers, whose arguments they take unchanged."""

    _rank: int

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, groups=1,
                 bias=True, padding_mode="zeros", device=None, dtype=None, *, cl_device=None):
        if padding_mode != "zeros":
            raise ValueError(f"padding_mode must be 'zeros' (clconv pads with zeros only), got {padding_mode!r}")
        if device is not None and torch.device(device).type not in ("cpu", "meta"):
            raise ValueError(f"device must be a CPU device (clconv keeps tensors on the CPU), got {device!r}")
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias,
                         padding_mode, device, dtype)
        if cl_device is not None:
            platforms.resolve(cl_device)  # a bad spec fails here, not at the first forward
        self.cl_device = cl_device
        self.memory = {}

    def _conv_forward(self, input, weight, bias):
        # Memory is recorded for forwards that build a graph (training), not for evaluation under no_grad.
        memory = self.memory if torch.is_grad_enabled() else None
        return _ConvFunction.apply(input, weight, bias, self._rank, self.stride, _torch_padding(self.padding),
                                   self.dilation, self.groups, self.cl_device, memory)

    def extra_repr(self) -> str:
        device = f", cl_device={self.cl_device!r}" if self.cl_device is not None else ""
        return super().extra_repr() + device


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


#: torch's layers that :func:`convert` replaces, and their replacements.
_REPLACEMENTS = {torch.nn.Conv1d: Conv1d, torch.nn.Conv2d: Conv2d}


def convert(model: torch.nn.Module, cl_device=None) -> torch.nn.Module:
    """Replace every ``torch.nn.Conv1d`` and ``torch.nn.Conv2d`` in ``model`` by :class:`Conv1d` and
    :class:`Conv2d`, in place, keeping their parameters."""
    for name, child in list(model.named_children()):
        layer_type = next((ours for theirs, ours in _REPLACEMENTS.items() if isinstance(child, theirs)), None)
        if layer_type is not None and not isinstance(child, layer_type):
            if child.padding_mode != "zeros":
                raise ValueError(f"{name}: padding_mode={child.padding_mode!r} is not supported (zeros only)")
            replacement = layer_type(child.in_channels, child.out_channels, child.kernel_size, child.stride,
                                     child.padding, child.dilation, child.groups, child.bias is not None,
                                     device="meta", dtype=child.weight.dtype, cl_device=cl_device)
            replacement.weight = child.weight
            replacement.bias = child.bias
            replacement.train(child.training)
            setattr(model, name, replacement)
        else:
            convert(child, cl_device)
    return model


def memory_report(model: torch.nn.Module) -> list[dict]:
    """Per clconv layer, from its last forward: bytes kept for backward, and device bytes of each pass."""
    rows = []
    for name, module in model.named_modules():
        if isinstance(module, _OpenCLConv) and module.memory:
            rows.append({"layer": name, "saved_for_backward_bytes": module.memory["saved_for_backward_bytes"],
                         **{f"{pass_name}_device_bytes": n for pass_name, n in module.memory["device_bytes"].items()}})
    return rows


__all__ = ["Conv1d", "Conv2d", "conv1d", "conv2d", "convert", "memory_report"]
