"""clconv: the forward pass and both gradients of 1-D, 2-D and 3-D convolution as portable OpenCL kernels.

    y  = clconv.conv2d(x, w, bias, stride=1, padding=1)
    gx = clconv.conv2d_grad_input(gy, w, x.shape, stride=1, padding=1)
    gw = clconv.conv2d_grad_weight(x, gy, w.shape, stride=1, padding=1)
    gb = clconv.conv2d_grad_bias(gy)
    y  = clconv.conv_transpose2d(x, w, bias, stride=2, padding=1, output_padding=1)   # and its gradients

``clconv.conv1d`` and its gradients take (N, C, L) inputs and (K, C/groups, S) weights the same way,
``clconv.conv3d`` (N, C, D, H, W) and (K, C/groups, T, R, S); ``conv_transpose1d`` and ``conv_transpose3d`` too.

``clconv.reference`` holds the NumPy oracle with the same functions;
``clconv.devices()`` and ``clconv.select_device()`` list and choose devices; ``clconv.free_held_memory()`` frees the
device memory kept for reuse by the arrays that calls return.
"""

__version__ = "0.2.0"

# Before anything lists OpenCL platforms: the ICD loader reads its configuration only once per process.
from . import intel_runtime

intel_runtime.register()

from . import reference
from .api import (
    conv1d,
    conv1d_grad_bias,
    conv1d_grad_input,
    conv1d_grad_weight,
    conv2d,
    conv2d_grad_bias,
    conv2d_grad_input,
    conv2d_grad_weight,
    conv3d,
    conv3d_grad_bias,
    conv3d_grad_input,
    conv3d_grad_weight,
    conv_transpose1d,
    conv_transpose1d_grad_bias,
    conv_transpose1d_grad_input,
    conv_transpose1d_grad_weight,
    conv_transpose2d,
    conv_transpose2d_grad_bias,
    conv_transpose2d_grad_input,
    conv_transpose2d_grad_weight,
    conv_transpose3d,
    conv_transpose3d_grad_bias,
    conv_transpose3d_grad_input,
    conv_transpose3d_grad_weight,
)
from .kernel_check import KernelFallbackWarning
from .params import Conv2DParams, ConvTranspose2DParams
from .params_1d import Conv1DParams
from .params_3d import Conv3DParams, ConvTranspose3DParams
from .planning import Conv2DPlan, plan
from .platforms import DeviceInfo, default_device, devices, free_held_memory, select_device

__all__ = [
    "Conv1DParams",
    "Conv2DParams",
    "Conv2DPlan",
    "Conv3DParams",
    "ConvTranspose2DParams",
    "ConvTranspose3DParams",
    "DeviceInfo",
    "KernelFallbackWarning",
    "conv1d",
    "conv1d_grad_bias",
    "conv1d_grad_input",
    "conv1d_grad_weight",
    "conv2d",
    "conv2d_grad_bias",
    "conv2d_grad_input",
    "conv2d_grad_weight",
    "conv3d",
    "conv3d_grad_bias",
    "conv3d_grad_input",
    "conv3d_grad_weight",
    "conv_transpose1d",
    "conv_transpose1d_grad_bias",
    "conv_transpose1d_grad_input",
    "conv_transpose1d_grad_weight",
    "conv_transpose2d",
    "conv_transpose2d_grad_bias",
    "conv_transpose2d_grad_input",
    "conv_transpose2d_grad_weight",
    "conv_transpose3d",
    "conv_transpose3d_grad_bias",
    "conv_transpose3d_grad_input",
    "conv_transpose3d_grad_weight",
    "default_device",
    "devices",
    "free_held_memory",
    "plan",
    "reference",
    "select_device",
]
