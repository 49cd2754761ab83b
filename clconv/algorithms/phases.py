"""Strided layers as stride-1 layers on the phases of their input (a space-to-depth split), for the tiled
algorithm's ``phase_split`` tiles.

At stride s along an axis, tap r of the kernel reads input position p*s + r of the padded input; with
r = a + s*r' (phase a = r mod s), that is position p + r' of phase a, the positions a, a + s, a + 2s, ... So
the input split into its phases (cl/split_phases.cl), each phase one more channel, is the input of a stride-1
layer with ceil(R/s) taps per axis whose weight holds tap (r, s) at phase (r mod s_h, s mod s_w) and tap
(r / s_h, s / s_w) (cl/phase_taps.cl moves weights and weight gradients between the two layouts). Its
kernels read unit-stride vectors along whole rows, which strided reads (two vector loads and a shuffle per
vector, masked row ends) do not: measured on PoCL 3.1, 2-core AMD EPYC, device-resident, the copies left
out: ResNet-18's 1x1 stride-2 downsample weight gradient 5.5x faster and forward 1.8x, a 4x4 stride-2
layer (DCGAN's) weight gradient 1.75x and forward 1.34x, the 7x7 stride-2 RGB stem's weight gradient 1.2x;
a 3x3 stride-2 weight gradient 0.7x (it computes 16 taps for 9).

Where phases x taps exceed the kernel's taps along an axis (3 taps at stride 2: 2 phases x 2), the phased
weight has slots no tap maps to. The weight gradient computes them and drops them; the forward pass would
multiply inputs the strided layer never reads by zero weights, which turns an Inf there into a NaN, so it
splits only layers without such slots ("complete" ones). Only dilation 1 along a strided axis is split.

The split input (as large as the padded input) and the phased weight or weight gradient are workspace, so
the heuristic never picks these tiles (the default workspace is 0 bytes); the tuner tries them.
"""

from __future__ import annotations

import dataclasses
import threading

import numpy as np
import pyopencl as cl

from ..kernel_signatures import PhaseTapsArgs, SplitPhasesArgs
from ..params import Conv2DParams
from .base import DeviceTensor, div_up


@dataclasses.dataclass(frozen=True)
class PhaseSplit:
    """A strided layer and the stride-1 layer on its input's phases that computes it."""

    layer: Conv2DParams
    phased: Conv2DParams
    phases: tuple[int, int]  # phases along H and W: the input's rows (columns) fall into this many
    taps: tuple[int, int]  # the phased layer's taps along H and W

    @property
    def complete(self) -> bool:
        """Whether every slot of the phased weight holds a tap of the layer."""
        return all(phases * taps == extent
                   for phases, taps, extent in zip(self.phases, self.taps, (self.layer.R, self.layer.S)))

    @property
    def workspace_bytes(self) -> int:
        """The split input and the phased weight (forward) or weight gradient (grad_weight): the same for both."""
        item = self.layer.dtype.itemsize
        return (int(np.prod(self.phased.input_shape)) + int(np.prod(self.phased.weight_shape))) * item


def phase_split(p: Conv2DParams, pass_name: str) -> PhaseSplit | None:
    """The phase split of a layer for a pass (forward or grad_weight), or None where there is none: stride 1,
    dilation above 1 along a strided axis, an empty batch, or a forward pass of a layer that is not complete."""
    if p.stride == (1, 1) or p.N == 0 or pass_name not in ("forward", "grad_weight"):
        return None
    if any(stride > 1 and dilation > 1 for stride, dilation in zip(p.stride, p.dilation)):
        return None
    phases = tuple(min(extent, stride) for extent, stride in zip((p.R, p.S), p.stride))
    taps = tuple(div_up(extent, stride) for extent, stride in zip((p.R, p.S), p.stride))
    # Along a stride-1 axis the phased layer keeps the layer's dilation and reads the padded input as it is.
    dilation = tuple(d if stride == 1 else 1 for d, stride in zip(p.dilation, p.stride))
    height, width = (out + d * (t - 1) for out, d, t in zip((p.P, p.Q), dilation, taps))
    phased = Conv2DParams(p.N, p.C * phases[0] * phases[1], height, width, p.K, taps[0], taps[1], (1, 1),
                          (0, 0, 0, 0), dilation, p.groups, p.dtype)
    split = PhaseSplit(p, phased, phases, taps)
    if pass_name == "forward" and not split.complete:
        return None
    return split


class PhaseRunner:
    """Runs one pass of a strided layer through its phase split: the split input, the phased weight (or weight
    gradient), and ``inner``, the tiled algorithm of the phased layer. ``owner`` (the strided layer's tiled
    algorithm) launches the copies, so they are checked and built as its own kernels are."""

    def __init__(self, owner, split: PhaseSplit, inner):
        self.owner = owner
        self.split = split
        self.inner = inner
        self._buffers = None  # (split input, phased weight), allocated on first use and kept with the plan
        self._last_read = None  # the event of the last launch that read them
        self._lock = threading.Lock()

    def workspace_bytes(self, pass_name: str) -> int:
        return self.split.workspace_bytes + self.inner.workspace_bytes(pass_name)

    def _buffers_and_wait(self, wait_for) -> tuple:
        if self._buffers is None:
            item = self.split.layer.dtype.itemsize
            context = self.owner.target.context
            self._buffers = tuple(cl.Buffer(context, cl.mem_flags.READ_WRITE, int(np.prod(shape)) * item)
                                  for shape in (self.split.phased.input_shape, self.split.phased.weight_shape))
        waits = list(wait_for or [])
        if self._last_read is not None:
            waits.append(self._last_read)  # the previous call's kernels must be done with the buffers
        return self._buffers, waits

    def _split_input(self, x: DeviceTensor, phased_input: cl.Buffer, wait_for):
        p, q = self.split.layer, self.split.phased
        args = SplitPhasesArgs(in_=x.buffer, in_offset=x.offset, phased=phased_input, phased_offset=0, N=p.N, C=p.C,
                               H=p.H, W=p.W, Hp=q.H, Wp=q.W, stride_h=p.stride[0], stride_w=p.stride[1],
                               pad_top=p.padding[0], pad_left=p.padding[2], phases_h=self.split.phases[0],
                               phases_w=self.split.phases[1])
        rows = p.C * self.split.phases[0] * self.split.phases[1] * q.H
        return self.owner.launch("split_phases", {}, (rows, p.N), (self.owner.local_width, 1), args, wait_for)

    def _move_taps(self, plain: DeviceTensor, phased: cl.Buffer, to_phases: bool, wait_for):
        p = self.split.layer
        args = PhaseTapsArgs(plain=plain.buffer, plain_offset=plain.offset, phased=phased, phased_offset=0,
                             to_phases=int(to_phases), KC=p.K * p.C_per_group, R=p.R, S=p.S, stride_h=p.stride[0],
                             stride_w=p.stride[1], phases_h=self.split.phases[0], phases_w=self.split.phases[1],
                             Rp=self.split.taps[0], Sp=self.split.taps[1])
        size = (int(np.prod(p.weight_shape)),)
        return self.owner.launch("phase_taps", {}, size, (self.owner.local_width,), args, wait_for)

    def forward(self, x, weight, bias, y, wait_for=None):
        with self._lock:
            (phased_input, phased_weight), waits = self._buffers_and_wait(wait_for)
            split = self._split_input(x, phased_input, waits)
            taps = self._move_taps(weight, phased_weight, True, waits)
            event = self.inner.forward(DeviceTensor(phased_input, 0), DeviceTensor(phased_weight, 0), bias, y,
                                       [split, taps])
            self._last_read = event
            return event

    def grad_weight(self, x, grad_output, grad_weight, wait_for=None):
        with self._lock:
            (phased_input, phased_gradient), waits = self._buffers_and_wait(wait_for)
            split = self._split_input(x, phased_input, waits)
            computed = self.inner.grad_weight(DeviceTensor(phased_input, 0), grad_output,
                                              DeviceTensor(phased_gradient, 0), [split])
            event = self._move_taps(grad_weight, phased_gradient, False, [computed])
            self._last_read = event
            return event
