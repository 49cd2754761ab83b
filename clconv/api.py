"""The public functions: conv2d and its three gradients on an OpenCL device.

NumPy arrays in (any memory order or strides) give NumPy arrays out; ``pyopencl.array.Array``
inputs keep the work and the result on their context with no host round trip. When a call mixes the
two, the device arrays decide where it runs and the result stays on the device.

Each function validates its arguments, then runs a cached :class:`~clconv.planning.Conv2DPlan`.
"""

from __future__ import annotations

from . import arrays
from . import params as _params
from .planning import plan_for


def _plan(params, device, algo, max_workspace_bytes, **named):
    arrays.check_array_types(**named)
    target = arrays.target_for_arrays(device, **named)
    return plan_for(params, target, algo, max_workspace_bytes)


def conv2d(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, *, device=None, algo="auto",
           max_workspace_bytes=None):
    """Forward pass: the cross-correlation of x (N, C, H, W) with weight (K, C/groups, R, S), plus bias (K,).

    Returns y of shape (N, K, P, Q) in the input dtype.
    """
    params = _params.forward_params(x, weight, bias, stride, padding, dilation, groups)
    plan = _plan(params, device, algo, max_workspace_bytes, x=x, weight=weight, bias=bias)
    return plan.forward(x, weight, bias)


def conv2d_grad_input(grad_output, weight, input_shape, stride=1, padding=0, dilation=1, groups=1, *,
                      device=None, algo="auto", max_workspace_bytes=None):
    """dL/dx of shape ``input_shape`` from grad_output = dL/dy (N, K, P, Q) and weight."""
    params = _params.grad_input_params(grad_output, weight, input_shape, stride, padding, dilation, groups)
    plan = _plan(params, device, algo, max_workspace_bytes, grad_output=grad_output, weight=weight)
    return plan.grad_input(grad_output, weight)


def conv2d_grad_weight(x, grad_output, weight_shape, stride=1, padding=0, dilation=1, groups=1, *,
                       device=None, algo="auto", max_workspace_bytes=None):
    """dL/dk of shape ``weight_shape`` from x and grad_output = dL/dy; bit-identical across runs."""
    params = _params.grad_weight_params(x, grad_output, weight_shape, stride, padding, dilation, groups)
    plan = _plan(params, device, algo, max_workspace_bytes, x=x, grad_output=grad_output)
    return plan.grad_weight(x, grad_output)


def conv2d_grad_bias(grad_output, *, device=None, algo="auto", max_workspace_bytes=None):
    """dL/db of shape (K,): grad_output summed over N, P and Q; bit-identical across runs."""
    params = _params.grad_bias_params(grad_output)
    plan = _plan(params, device, algo, max_workspace_bytes, grad_output=grad_output)
    return plan.grad_bias(grad_output)
