"""3-D layers on the device: the input unfolded along depth, one 2-D plan, and the result put back.

For a :class:`~clconv.params_3d.Conv3DParams` layer (x (N, C, D, H, W), weight (K, C/groups, T, R, S)), the
2-D layer ``params.layer`` (batch N*D_out, C*T channels) computes every pass with the 2-D kernels, their
tuning and their algorithms, in one launch each:

- forward: x is unfolded along depth (cl/unfold_depth.cl) into the 2-D input; the 2-D output
  (N, D_out, K, P, Q) is copied into y (N, K, D_out, P, Q) with the two axes swapped (cl/swap_axes.cl);
- grad_input: grad_output is swapped into the 2-D layout, the 2-D input gradient is computed on the unfolded
  grid, and every input frame gathers the values that came from it (cl/fold_depth.cl, in a fixed order);
- grad_weight: the 2-D weight gradient of the unfolded input and the swapped grad_output: the weight
  (K, C/groups, T, R, S) is the 2-D one (K, C/groups*T, R, S), so nothing else is needed;
- grad_bias: the 2-D bias gradient of grad_output read as (N, K, D_out*P, Q), no copy.

The unfolded input (T times x) and the swapped tensor are the 3-D passes' workspace, and the 2-D plan's
partial sums come on top, within what is left of ``max_workspace_bytes``; a cap below the depth buffers is
refused with the size needed.
"""

from __future__ import annotations

import functools

import numpy as np
import pyopencl as cl
import pyopencl.array as cl_array

from . import arrays, channels_last, kernel_check, platforms
from .algorithms.base import DeviceTensor, KernelLauncher, bias_args
from .arrays import Array, output_tensor
from .kernel_signatures import DepthGeometry, FoldDepthArgs, SwapAxesArgs, UnfoldDepthArgs
from .params import PASSES, Conv2DParams
from .params_3d import Conv3DParams
from .planning import call_arrays, check_array, plan_for


class DepthKernels(KernelLauncher):
    """Launches the depth-axis kernels of one 3-D layer (checked, built once, as the algorithms' kernels)."""

    def __init__(self, params: Conv3DParams, target: platforms.Target):
        super().__init__(target, params.dtype)
        plane = params.H * params.W
        self.unfold_geometry = DepthGeometry(N=params.N, C=params.C, D=params.D, T=params.T, D_out=params.D_out,
                                             plane=plane, stride_d=params.stride[0], pad_front=params.padding[0],
                                             dil_d=params.dilation[0])

    def _local(self) -> tuple:
        return (self.local_width, 1)

    def unfold(self, x: DeviceTensor, cols: DeviceTensor, wait_for, x_channels_last: bool = False):
        """Enqueue x unfolded along depth into ``cols``; x in (N, C, D, H, W) memory, or (``x_channels_last``) in
        its channels-last (N, D, H, W, C) memory, read there."""
        g = self.unfold_geometry
        args = UnfoldDepthArgs(in_=x.buffer, in_offset=x.offset, cols=cols.buffer, cols_offset=cols.offset,
                               **g._asdict())
        return self.launch("unfold_depth", {"X_CHANNELS_LAST": int(x_channels_last)}, (g.C * g.T, g.N * g.D_out),
                           self._local(), args, wait_for)

    def fold(self, cols: DeviceTensor, bias: DeviceTensor | None, out: DeviceTensor, wait_for):
        g = self.unfold_geometry
        args = FoldDepthArgs(cols=cols.buffer, cols_offset=cols.offset, **bias_args(bias), out=out.buffer,
                             out_offset=out.offset, **g._asdict())
        return self.launch("fold_depth", {}, (g.C * g.D, g.N), self._local(), args, wait_for)

    def swap(self, source: DeviceTensor, target: DeviceTensor, shape: tuple, wait_for):
        """Copy ``source`` of ``shape`` (A, B, M, E) into ``target`` as (A, M, B, E)."""
        A, B, M, E = shape
        args = SwapAxesArgs(in_=source.buffer, in_offset=source.offset, out=target.buffer, out_offset=target.offset,
                            A=A, B=B, M=M, E=E)
        return self.launch("swap_axes", {}, (M * B, A), self._local(), args, wait_for)


class Conv3DPlan:
    """Forward pass and gradients of one 3-D layer (``params``) on one device, through one 2-D plan."""

    def __init__(self, params: Conv3DParams, target: platforms.Target, algo: str = "auto",
                 max_workspace_bytes: int | None = None):
        self.params = params
        self.target = target
        self.max_workspace_bytes = max_workspace_bytes
        # The cap covers the depth buffers and the 2-D plan's partial sums together.
        layer_cap = None if max_workspace_bytes is None else max(0, max_workspace_bytes - self.depth_bytes("forward"))
        self.layer_plan = plan_for(params.layer, target, algo, layer_cap)
        self.depth = _depth_kernels(params, target)

    @property
    def algorithms(self) -> dict:
        return self.layer_plan.algorithms

    def depth_bytes(self, pass_name: str) -> int:
        """Device bytes a pass needs for the unfolded input and the swapped tensor (the output, or grad_output):
        the same for the three passes that run the 2-D layer, none for the bias gradient, a view."""
        if pass_name == "grad_bias":
            return 0
        p = self.params
        return sum(int(np.prod(shape)) for shape in (p.unfolded_shape, p.output_shape)) * p.dtype.itemsize

    @property
    def workspace_bytes(self) -> dict:
        """Device bytes each pass allocates besides its inputs and output: the depth buffers and the 2-D plan's."""
        layer_bytes = self.layer_plan.workspace_bytes
        return {name: self.depth_bytes(name) + layer_bytes[name] for name in PASSES}

    def __repr__(self) -> str:
        return f"Conv3DPlan({self.params.describe()} as {self.layer_plan!r})"

    # -- running --------------------------------------------------------------------------------
    def _begin(self, pass_name: str, out, out_shape, **named):
        """Check the call's arrays and the workspace cap; (the call's arrays, the result array)."""
        call = call_arrays(self.params, self.target, pass_name, out, out_shape, **named)
        needed = self.depth_bytes(pass_name)
        if self.max_workspace_bytes is not None and needed > self.max_workspace_bytes:
            raise ValueError(
                f"max_workspace_bytes={self.max_workspace_bytes} is too small for the {pass_name} pass of a 3-D layer: "
                f"it unfolds the input along depth into {needed} bytes of device memory ({self.params.describe()}); "
                "pass max_workspace_bytes=None or at least that much")
        result = call.result_array(pass_name, out_shape, self.params.dtype)
        return call, result

    def _scratch(self, shape) -> cl_array.Array:
        arrays.check_allocation(self.target.info, "the unfolded tensor of a 3-D layer", shape, self.params.dtype)
        return self.target.empty(shape, self.params.dtype)

    def _device_array(self, call: arrays.CallArrays, name: str, shape) -> cl_array.Array | None:
        """The call's input ``name`` as a device array of ``shape`` (a view of the same elements)."""
        tensor = call.device_tensor(name)
        if tensor is None:
            return None
        itemsize = self.params.dtype.itemsize
        array = cl_array.Array(self.target.queue, shape, self.params.dtype, data=tensor.buffer,
                               offset=tensor.offset * itemsize)
        for event in call.wait_for:
            array.add_event(event)
        return array

    def _unfolded_input(self, call: arrays.CallArrays) -> cl_array.Array:
        """x unfolded along depth; a channels-last x is read in its own memory by the unfolding, not converted
        first."""
        cols = self._scratch(self.params.unfolded_shape)
        if cols.size:
            event = None
            if "x" in call.channels_last_names():
                try:
                    event = self.depth.unfold(call.channels_last_memory("x"), output_tensor(cols), call.wait_for,
                                              x_channels_last=True)
                except kernel_check.KernelVariantFailed as failure:
                    kernel_check.warn_fallback(failure, channels_last.CONVERTED_INSTEAD, stacklevel=5)
            if event is None:
                event = self.depth.unfold(call.device_tensor("x"), output_tensor(cols), call.wait_for)
            cols.add_event(event)
        return cols.reshape(self.params.layer.input_shape)

    def _swapped_grad_output(self, call: arrays.CallArrays) -> cl_array.Array:
        """grad_output as the 2-D layer's (N, D_out, K, P, Q). A channels-last grad_output, (N, D_out, P, Q, K)
        memory, is N * D_out images of P * Q positions of K channels, which the channels-last conversion turns
        into that layout in its one pass, where converting it first and then swapping would take two."""
        p = self.params
        swapped = self._scratch((p.N, p.D_out, p.K, p.P, p.Q))
        if swapped.size:
            if "grad_output" in call.channels_last_names():
                converter = channels_last.channels_first(self.target, p.dtype)
                event = converter.convert(call.channels_last_memory("grad_output"), output_tensor(swapped),
                                          (p.N * p.D_out, p.K, p.P * p.Q), call.wait_for)
            else:
                event = self.depth.swap(call.device_tensor("grad_output"), output_tensor(swapped),
                                        (p.N, p.K, p.D_out, p.P * p.Q), call.wait_for)
            swapped.add_event(event)
        return swapped.reshape(p.layer.output_shape)

    def _done(self, array: cl_array.Array):
        """One event that completes when everything queued on ``array`` has (None when nothing is)."""
        return cl.enqueue_marker(self.target.queue, wait_for=array.events) if array.events else None

    def forward(self, x: Array, weight: Array, bias: Array | None = None, *, out: Array | None = None) -> Array:
        """y = conv3d(x, weight) + bias, shape (N, K, D_out, P, Q); written into ``out`` when given."""
        p = self.params
        call, result = self._begin("forward", out, p.output_shape, x=x, weight=weight, bias=bias)
        if not result.size:
            return call.finish(result, None)
        layer_output = self._scratch(p.layer.output_shape)
        self.layer_plan.forward(self._unfolded_input(call), self._device_array(call, "weight", p.layer.weight_shape),
                                self._device_array(call, "bias", p.bias_shape), out=layer_output)
        event = self.depth.swap(output_tensor(layer_output), output_tensor(result), (p.N, p.D_out, p.K, p.P * p.Q),
                                layer_output.events)
        return call.finish(result, event)

    def grad_input(self, grad_output: Array, weight: Array, *, bias: Array | None = None,
                   out: Array | None = None) -> Array:
        """dL/dx, shape (N, C, D, H, W); written into ``out`` when given. ``bias`` (C entries), when given, is
        added to every element of its channel: the forward pass of a transposed 3-D convolution."""
        p = self.params
        call, result = self._begin("grad_input", out, p.input_shape, grad_output=grad_output, weight=weight,
                                   bias=bias)
        if not result.size:
            return call.finish(result, None)
        cols = self._scratch(p.layer.input_shape)
        self.layer_plan.grad_input(self._swapped_grad_output(call),
                                   self._device_array(call, "weight", p.layer.weight_shape), out=cols)
        event = self.depth.fold(output_tensor(cols), call.device_tensor("bias"), output_tensor(result), cols.events)
        return call.finish(result, event)

    def grad_weight(self, x: Array, grad_output: Array, *, out: Array | None = None) -> Array:
        """dL/dk, shape (K, C/groups, T, R, S), bit-identical across runs; written into ``out`` when given."""
        p = self.params
        call, result = self._begin("grad_weight", out, p.weight_shape, x=x, grad_output=grad_output)
        layer_result = result.reshape(p.layer.weight_shape)
        self.layer_plan.grad_weight(self._unfolded_input(call), self._swapped_grad_output(call), out=layer_result)
        return call.finish(result, self._done(layer_result))

    def grad_bias(self, grad_output: Array, *, out: Array | None = None) -> Array:
        """dL/db, shape (K,), bit-identical across runs; written into ``out`` when given: the 2-D bias gradient
        of grad_output read as (N, K, D_out*P, Q)."""
        p = self.params
        arrays.check_array_types(grad_output=grad_output)
        check_array("grad_output", grad_output, p.output_shape, p.dtype)
        arrays.check_device_layout(grad_output=grad_output)
        flat_shape = (p.N, p.K, p.D_out * p.P, p.Q)
        flat_layer = Conv2DParams.create(flat_shape, (p.K, 1, 1, 1), groups=p.K, dtype=p.dtype,
                                         input_name="grad_output")
        bias_plan = plan_for(flat_layer, self.target, "auto", self.max_workspace_bytes)
        return bias_plan.grad_bias(grad_output.reshape(flat_shape), out=out)


# Built once per layer and device: its kernels are compiled and checked on first use.
_depth_kernels = functools.lru_cache(maxsize=128)(DepthKernels)


def plan_for_3d(params: Conv3DParams, target: platforms.Target, algo: str = "auto",
                max_workspace_bytes: int | None = None) -> Conv3DPlan:
    """The 3-D plan the functional API runs: its 2-D plan and depth kernels come from caches, so after the
    first call of a layer this costs no compile (and clear_plan_cache reaches its 2-D plan)."""
    return Conv3DPlan(params, target, algo, max_workspace_bytes)
