"""What every algorithm shares: device tensors, launches, and the deterministic batch split."""

from __future__ import annotations

import contextlib
import dataclasses
import math
import threading
import typing

import pyopencl as cl

from .. import kernel_check, kernel_signatures, programs
from ..kernel_signatures import ConvGeometry, GradWeightArgs, ReducePartialsArgs
from ..params import Conv2DParams

# Work-items a reduction pass should offer before the batch is split further; enough to fill a GPU.
REDUCTION_TARGET_ITEMS = 8192


class DeviceTensor(typing.NamedTuple):
    """A tensor on the device: its buffer (None when empty) and its first element's offset."""

    buffer: cl.Buffer | None
    offset: int  # in elements


def div_up(a: int, b: int) -> int:
    return -(-a // b)


def round_up(a: int, b: int) -> int:
    return div_up(a, b) * b


def accumulator_bytes(params: Conv2DParams) -> int:
    """Size of acc_t (common.h) for a layer: see dtype_accumulator_bytes."""
    return dtype_accumulator_bytes(params.dtype)


def dtype_accumulator_bytes(dtype) -> int:
    """Size of acc_t (common.h) for tensors of ``dtype`` (a numpy.dtype): double for fp64, float otherwise."""
    return 8 if dtype.itemsize == 8 else 4


def split_batch(N: int, items_per_chunk: int, target_items: int, count: int, acc_bytes: int,
                max_workspace_bytes: int | None) -> tuple[int, int]:
    """(n_per_split, splits): the batch cut into fixed chunks for a deterministic two-pass sum.

    Enough chunks that items_per_chunk * splits reaches target_items, at most N, and few enough that
    the partial sums (count * splits accumulators) fit max_workspace_bytes (None: no cap). The cut
    depends only on its arguments, so a given plan always sums in the same order.
    """
    if N == 0:
        return 1, 1
    splits = max(1, min(N, div_up(target_items, max(1, items_per_chunk))))
    if max_workspace_bytes is not None:
        splits = min(splits, max(1, max_workspace_bytes // (count * acc_bytes)))
    n_per_split = div_up(N, splits)
    return n_per_split, div_up(N, n_per_split)


@dataclasses.dataclass
class ScratchUse:
    """One call's use of a scratch buffer (AlgorithmBase.scratch): the buffer, the events its first write must
    wait for, and the event of the call's last launch that reads it, which the caller sets."""

    buffer: cl.Buffer
    wait_for: list
    last_read: cl.Event | None = None


class WorkGroupTooLarge(RuntimeError):
    """A kernel variant's work-group is larger than the compiled kernel allows on its device."""


def kernel_work_group_limit(kernel: cl.Kernel, device: cl.Device) -> int:
    """The most work-items one work-group of a compiled kernel may have on ``device``: the device's limit, or
    less where the kernel needs more registers or local memory per work-item than the device's limit allows."""
    return kernel.get_work_group_info(cl.kernel_work_group_info.WORK_GROUP_SIZE, device)


def bias_args(bias) -> dict:
    """The bias, bias_offset and has_bias arguments of a kernel that adds an optional bias (``bias``: a
    DeviceTensor, or None for none)."""
    if bias is None:
        return {"bias": None, "bias_offset": 0, "has_bias": 0}
    return {"bias": bias.buffer, "bias_offset": bias.offset, "has_bias": 1}


def conv_geometry(p: Conv2DParams) -> ConvGeometry:
    """A layer as the kernels' CONV_GEOMETRY_PARAMS (cl/common.h)."""
    return ConvGeometry(N=p.N, C=p.C, H=p.H, W=p.W, K=p.K, R=p.R, S=p.S, P=p.P, Q=p.Q,
                        stride_h=p.stride[0], stride_w=p.stride[1], pad_top=p.padding[0], pad_left=p.padding[2],
                        dil_h=p.dilation[0], dil_w=p.dilation[1], groups=p.groups)


class KernelLauncher:
    """Builds kernels of ``cl/`` with one dtype's defines for one target and launches them one at a time; each
    kernel variant is checked in a child process before its first build here (kernel_check)."""

    def __init__(self, target, dtype):
        self.target = target
        self.dtype_defines = programs.dtype_defines(dtype, target.info)
        # A Kernel holds its arguments between set_args and enqueue: one launch at a time per launcher.
        self._launch_lock = threading.Lock()
        self._kernels = {}

    def launch(self, name: str, defines: dict, size, local, args: tuple, wait_for):
        """Run kernel ``name`` built with ``defines`` over at least ``size`` work-items in work-groups of
        shape ``local``, with ``args`` of its signature (kernel_signatures.SIGNATURES[name]).

        The work-group shape is fixed per plan: PoCL compiles one work-group function per local size, so
        letting the runtime choose one per shape would recompile for every new layer.
        """
        kernel_signatures.check_args(name, args)
        global_size = tuple(round_up(extent, width) for extent, width in zip(size, local))
        kernel = self._kernel(name, defines, tuple(local), args)
        with self._launch_lock:
            return kernel(self.target.queue, global_size, local, *args, wait_for=wait_for)

    def _kernel(self, name: str, defines: dict, local: tuple, args: tuple) -> cl.Kernel:
        """The kernel of one variant, built on its first launch (unused passes cost no compile) and only
        after the variant passed its check in a child process (see kernel_check); WorkGroupTooLarge where
        ``local`` exceeds the compiled kernel's own limit, which the device's limits do not show."""
        key = (name, tuple(sorted(defines.items())), local)
        if key not in self._kernels:
            defines = dict(defines, **self.dtype_defines)
            kernel = kernel_check.checked_kernel(self.target, name, defines, local, args)
            info = self.target.info
            limit = kernel_work_group_limit(kernel, info.device)
            if math.prod(local) > limit:
                variant = kernel_check.Variant(name, tuple(sorted(defines.items())), local)
                raise WorkGroupTooLarge(
                    f"{variant.describe()}: {math.prod(local)} work-items per work-group, but this kernel allows "
                    f"at most {limit} on {info.name} (CL_KERNEL_WORK_GROUP_SIZE; the device allows "
                    f"{info.device.max_work_group_size})")
            self._kernels[key] = kernel
        return self._kernels[key]

    @property
    def local_width(self) -> int:
        return 32 if self.target.info.type == "GPU" else 8

    def sum_in_splits(self, count: int, splits: int, acc_bytes: int, out: DeviceTensor, launch_split):
        """Enqueue a sum of ``count`` elements over ``splits`` fixed splits into ``out``, its partial sums in a
        buffer of this call's own; returns the last event. ``launch_split(partial)`` enqueues the kernel, which
        writes each split's partial sums (acc_t, ``acc_bytes`` each) into ``partial``, or with one split
        (``partial`` None) the result into ``out`` itself; the partial sums are then added in split order."""
        if splits == 1:
            return launch_split(None)
        partial = self.target.call_buffer(count * splits * acc_bytes)
        return self.reduce_partials(partial, count, splits, out, launch_split(partial))

    def reduce_partials(self, partial, count: int, splits: int, out: DeviceTensor, event):
        """Enqueue the sum, in split order, of ``splits`` partial sums of ``count`` elements into ``out``, after
        ``event`` (the kernel that wrote them); returns its event."""
        args = ReducePartialsArgs(partial=partial, count=count, splits=splits, out=out.buffer, out_offset=out.offset)
        return self.launch("reduce_partials", {}, (count,), (self.local_width,), args, [event])


class AlgorithmBase(KernelLauncher):
    """A launcher for one layer's passes: the layer's geometry, its workspace and the deterministic batch split."""

    name: str  # each algorithm's, as ALGORITHMS and the tuning records know it

    def __init__(self, params: Conv2DParams, target, max_workspace_bytes: int | None = None):
        super().__init__(target, params.dtype)
        self.params = params
        self.max_workspace_bytes = max_workspace_bytes
        self.geometry = conv_geometry(params)
        # scratch name -> [its buffer, the event of the last launch that read it]; reentrant, as a call may hold
        # two scratch buffers at once (a copy of its input and its partial sums)
        self._scratch = {}
        self._scratch_lock = threading.RLock()

    def reduction(self, pass_name: str):
        """(work-items per batch chunk, work-items wanted, values summed) of a pass that sums over the
        batch, or None for the passes that do not. Every algorithm sums the bias gradient the same way."""
        if pass_name == "grad_bias":
            return self.params.K, REDUCTION_TARGET_ITEMS, self.params.K
        return None

    def split(self, pass_name: str) -> tuple[int, int]:
        """(n_per_split, splits) of a reduction pass; both the launch and workspace_bytes use it."""
        items_per_chunk, target_items, count = self.reduction(pass_name)
        return split_batch(self.params.N, items_per_chunk, target_items, count,
                           accumulator_bytes(self.params), self.max_workspace_bytes)

    def workspace_bytes(self, pass_name: str) -> int:
        """Device bytes the pass keeps besides its inputs and output: the partial sums of its split."""
        return self.partial_bytes(pass_name)

    def grad_weight_args(self, x, grad_output, partial, grad_weight, n_per_split, splits,
                         layer=None) -> GradWeightArgs:
        """Arguments of every weight-gradient kernel (GRAD_WEIGHT_PARAMS in cl/common.h); ``layer``: the
        layer as the kernel sees it, when that differs from the plan's params."""
        geometry = conv_geometry(layer) if layer is not None else self.geometry
        return GradWeightArgs(x=x.buffer, x_offset=x.offset, grad_output=grad_output.buffer,
                              grad_output_offset=grad_output.offset, partial=partial, grad_weight=grad_weight.buffer,
                              grad_weight_offset=grad_weight.offset, n_per_split=n_per_split, splits=splits,
                              **geometry._asdict())

    @contextlib.contextmanager
    def scratch(self, name: str, nbytes: int, wait_for):
        """A buffer of ``nbytes`` that each call writes and then reads, as a :class:`ScratchUse`: allocated on the
        first call and reused by every later one, as long as the plan lives (on CPUs a fresh buffer costs a page
        fault per page at its first write: 3 ms for ResNet-18 conv1's 12.8 MB copy of grad_output on PoCL 3.1, as
        long as the kernel that reads it).

        The lock, held while the block runs, keeps another call's launches from coming in between the write and
        the read; the write waits for ``wait_for`` and the previous call's read (set ``last_read``), which the
        in-order queues clconv creates imply and a caller's own out-of-order queue
        (platforms.target_for_queue) would not.
        """
        with self._scratch_lock:
            if name not in self._scratch:
                self._scratch[name] = [cl.Buffer(self.target.context, cl.mem_flags.READ_WRITE, nbytes), None]
            entry = self._scratch[name]
            use = ScratchUse(entry[0], list(wait_for or []) + ([entry[1]] if entry[1] is not None else []))
            yield use
            entry[1] = use.last_read

    def partial_bytes(self, pass_name: str) -> int:
        """Bytes of a reduction pass's split partial sums (0 unsplit)."""
        reduction = self.reduction(pass_name)
        if reduction is None:
            return 0
        _, splits = self.split(pass_name)
        return reduction[2] * splits * accumulator_bytes(self.params) if splits > 1 else 0

    def split_sum(self, pass_name: str, out, launch_split, wait_for):
        """Enqueue a pass that sums over the batch in splits; returns its last event.

        ``launch_split(partial, n_per_split, splits, wait_for)`` enqueues the pass's kernel and returns its
        event: the kernel writes each split's partial sums into ``partial``, or, with one split (``partial``
        None), the result into ``out`` itself. The partial sums are then added into ``out`` in split order.

        ``partial`` is the pass's scratch buffer (:meth:`scratch`).
        """
        n_per_split, splits = self.split(pass_name)
        if splits == 1:
            return launch_split(None, n_per_split, splits, wait_for)
        count = self.reduction(pass_name)[2]
        with self.scratch(f"{pass_name} partial sums", self.partial_bytes(pass_name), wait_for) as partial:
            event = launch_split(partial.buffer, n_per_split, splits, partial.wait_for)
            partial.last_read = self.reduce_partials(partial.buffer, count, splits, out, event)
            return partial.last_read
