"""Plans: one layer on one device, algorithms chosen and kernels compiled once, then run many times.

A :class:`Conv2DPlan` picks an algorithm and tile for each pass: the one named by ``algo``, else the
winner stored by the tuner for this device, driver and layer (tuned at the nearest batch size when not
at this one), else a heuristic (the first algorithm of ``algorithms.PREFERENCE``, with the tiles it
matches to the layer). Every algorithm keeps its scratch memory within ``max_workspace_bytes``: the
reductions then split the batch into fewer chunks (none at a cap of 0).

NumPy batches too large for one device allocation run in batch chunks; the weight and bias gradients
of the chunks are added in chunk order, so the result stays reproducible.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Sequence

import numpy as np
import pyopencl.array as cl_array

from . import (
    arrays,
    channels_last,
    channels_last_depthwise,
    channels_last_pointwise,
    kernel_check,
    platforms,
    tuning_cache,
)
from .algorithms import ALGORITHMS, PREFERENCE, get_algorithm
from .algorithms.tiled import CHANNELS_LAST_READS, LANES_COPY_MEMORY_SHARE, lanes_in_place_config
from .arrays import Array
from .params import PASSES, Conv2DParams, Padding, Pair


@dataclasses.dataclass(frozen=True)
class Choice:
    """The algorithm and tile one pass runs with, and why."""

    algo: str
    config: object  # a config dataclass of the algorithm, or None for its default
    # "requested", "tuned", "tuned at batch <n>" (the winner of the same layer at batch size n, this one's
    # untuned), "heuristic" or "fallback"
    source: str


def fallback_choice(choice: Choice, config) -> Choice | None:
    """The next-best choice after one running tile ``config`` had a kernel fail its check: the algorithm's
    narrower variant of the tile (the tiled one's: the same tile with half the vector lanes), then (unless
    the algorithm was requested) the last algorithm of the preference order."""
    narrower = ALGORITHMS[choice.algo].narrower(config) if config is not None else None
    if narrower is not None:
        return Choice(choice.algo, narrower, "requested" if choice.source == "requested" else "fallback")
    if choice.algo != PREFERENCE[-1] and choice.source != "requested":
        return Choice(PREFERENCE[-1], None, "fallback")
    return None


def _warn_fallback(failure: kernel_check.KernelVariantFailed, pass_name: str, replacement: Choice) -> None:
    instead = replacement.algo if replacement.config is None else f"{replacement.algo} {replacement.config}"
    kernel_check.warn_fallback(failure, f"The {pass_name} pass runs {instead} instead", stacklevel=6)


def choose(params: Conv2DParams, info, pass_name: str, algo: str = "auto") -> Choice:
    if algo != "auto":
        get_algorithm(algo)  # raises for an unknown name
        return Choice(algo, None, "requested")
    tuned = tuning_cache.lookup(info, params, pass_name)
    if tuned is not None and tuned.record.get("algo") in ALGORITHMS:
        try:
            config = ALGORITHMS[tuned.record["algo"]].config_from_record(pass_name, tuned.record.get("config"))
        except TypeError:
            pass  # a record from another clconv version: the heuristic decides
        else:
            source = "tuned" if tuned.batch == params.N else f"tuned at batch {tuned.batch}"
            return Choice(tuned.record["algo"], config, source)
    return Choice(PREFERENCE[0], None, "heuristic")


# Output positions per image up to which a 1x1 weight gradient on channels-last inputs runs in the lanes rather than
# as a matrix product over the positions (both read them in place). Measured on Zen 4, end to end from NumPy, both in
# one process, alternating: on 7 x 7 planes the lanes ran 1.15x (PoCL 3.1) and 1.55x (Intel's runtime) as fast
# (ResNet-50 layer4.1.conv3, MobileNet-v2 features.18.pw); on 14 x 14 0.87x / 1.18x (ResNet-50 layer3.1.conv1); on
# 56 x 56 0.68x on PoCL 3.1 (layer1.0.conv1: a work-item's 6 input channels use 6 of the 16 in each cache line of x
# it reads, where channels-first x gives it whole lines).
POINTWISE_LANES_MOST_POSITIONS = 64


class Conv2DPlan:
    """Forward pass and gradients of one layer (``params``) on one device, compiled once."""

    def __init__(self, params: Conv2DParams, target: platforms.Target, algo: str = "auto",
                 max_workspace_bytes: int | None = None, choices: dict | None = None, fallback: bool = True):
        self.params = params
        self.target = target
        self.max_workspace_bytes = max_workspace_bytes
        # Whether a kernel variant that fails its check (kernel_check) gives way to the next-best one; the
        # tuner turns this off, since it must time exactly the candidate it names.
        self.fallback = fallback
        arrays.check_dtype_supported(target.info, params.dtype)
        self.choices = choices or {name: choose(params, target.info, name, algo)
                                   for name in PASSES}
        self._implementations = {}
        # What runs each pass on channels-last inputs, worked out once per choice (which a fallback may change):
        # (pass, choice) -> implementation, and (pass, choice, channels-last input names) -> reader.
        self._channels_last_implementations = {}
        self._channels_last_readers = {}
        # Channels-first copies of channels-last inputs and aligned copies of NumPy inputs, which the plans of a
        # device keep up to the share of its memory the lanes kernels' copies may take.
        self._conversions = arrays.ConversionBuffers(
            target.context, arrays.kept_memory(target.info, LANES_COPY_MEMORY_SHARE))

    # -- what the plan runs -------------------------------------------------------------------
    @property
    def algorithms(self) -> dict:
        return {name: choice.algo for name, choice in self.choices.items()}

    @property
    def workspace_bytes(self) -> dict:
        """Device bytes each pass allocates besides its inputs and output, with channels-first inputs: channels-last
        ones may take other kernels, whose copies and partial sums are not counted (channels_last_reader)."""
        return {name: self._implementation(name).workspace_bytes(name) for name in self.choices}

    def _implementation(self, pass_name: str):
        choice = self.choices[pass_name]
        # A config is one pass's tile: forward and grad_input share a config type, not their tiles.
        key = (choice.algo, choice.config, pass_name if choice.config is not None else None)
        if key not in self._implementations:
            configs = {pass_name: choice.config} if choice.config is not None else None
            self._implementations[key] = ALGORITHMS[choice.algo](self.params, self.target, configs,
                                                                  self.max_workspace_bytes)
        return self._implementations[key]

    def _channels_last_implementation(self, pass_name: str):
        """The implementation that runs a pass whose inputs include channels-last ones: the plan's own, but where its
        heuristic tile would convert them, the tile with the channels it writes in the lanes that reads them in place
        where that was measured to pay (tiled.lanes_in_place_config). A tuned or requested tile stays."""
        key = (pass_name, self.choices[pass_name])
        if key not in self._channels_last_implementations:
            self._channels_last_implementations[key] = self._pick_channels_last_implementation(pass_name)
        return self._channels_last_implementations[key]

    def _pick_channels_last_implementation(self, pass_name: str):
        implementation = self._implementation(pass_name)
        choice = self.choices[pass_name]
        if (pass_name not in CHANNELS_LAST_READS or choice.source != "heuristic" or choice.algo != "tiled"
                or implementation.reads_channels_last(pass_name)):
            return implementation
        config = lanes_in_place_config(self.params, self.target.info, pass_name)
        if config is None:
            return implementation
        key = ("tiled", config, pass_name)
        if key not in self._implementations:
            self._implementations[key] = ALGORITHMS["tiled"](self.params, self.target, {pass_name: config},
                                                              self.max_workspace_bytes)
        lanes = self._implementations[key]
        return lanes if lanes.reads_channels_last(pass_name) else implementation

    def __repr__(self) -> str:
        picked = ", ".join(f"{name}={choice.algo}({choice.source})" for name, choice in self.choices.items())
        return f"Conv2DPlan({self.params.describe()} on [{self.target.info.index}] {self.target.info.name}: {picked})"

    # -- running --------------------------------------------------------------------------------
    def _run(self, pass_name: str, out_name: str, out_shape, batch_inputs, concatenate: bool, out, **named):
        """Run one pass: check the arrays, chunk oversized NumPy batches, launch, return the caller's kind."""
        call = call_arrays(self.params, self.target, pass_name, out, out_shape, **named)
        chunked = self._chunked(call, pass_name, batch_inputs, concatenate)
        if chunked is not None:
            return chunked
        result = call.result_array(out_name, out_shape, self.params.dtype)
        event = None
        if result.size:
            with self._conversions.use() as conversions:
                call.conversions = conversions
                event = self._launch_channels_last(pass_name, call, arrays.output_tensor(result))
                if event is None:
                    event = self._launch(pass_name, [call.device_tensor(name) for name in named],
                                         arrays.output_tensor(result), call.wait_for)
                conversions.last_read = event
        return call.finish(result, event)

    def channels_last_reader(self, pass_name: str, channels_last_inputs) -> str | None:
        """The kernel that runs a pass on its channels-last inputs' own memory, given their names: "channel lanes"
        where the plan's kernel for the pass puts the channels it writes in the lanes and so broadcasts its input
        (CHANNELS_LAST_READS) from either layout, a channels-last grad_output being the weight gradient's (N, P, Q, K)
        copy (a heuristic tile that would convert may give way to such a kernel: _channels_last_implementation);
        "pointwise" for a 1x1 layer (clconv.channels_last_pointwise) and "depthwise" for a depthwise one
        (clconv.channels_last_depthwise) unless the caller asked for an algorithm; None where the inputs are
        converted into channels-first memory first. A 1x1 weight gradient both could run takes the lanes on small
        planes only (POINTWISE_LANES_MOST_POSITIONS)."""
        key = (pass_name, self.choices[pass_name], frozenset(channels_last_inputs))
        if key not in self._channels_last_readers:
            self._channels_last_readers[key] = self._pick_channels_last_reader(pass_name, key[2])
        return self._channels_last_readers[key]

    def _pick_channels_last_reader(self, pass_name: str, channels_last_inputs: frozenset) -> str | None:
        implementation = self._channels_last_implementation(pass_name)
        lanes = (CHANNELS_LAST_READS.get(pass_name) in channels_last_inputs
                 and getattr(implementation, "reads_channels_last", lambda name: False)(pass_name))
        requested = self.choices[pass_name].source == "requested"
        pointwise = not requested and channels_last_pointwise.reads_in_place(self.params, pass_name,
                                                                              channels_last_inputs)
        if lanes and not (pointwise and self.params.P * self.params.Q > POINTWISE_LANES_MOST_POSITIONS):
            return "channel lanes"
        if pointwise:
            return "pointwise"
        if not requested and channels_last_depthwise.reads_in_place(self.params, pass_name, channels_last_inputs,
                                                                    self.max_workspace_bytes):
            return "depthwise"
        return None

    def _launch_channels_last(self, pass_name: str, call: arrays.CallArrays, out_tensor):
        """Enqueue a pass on its channels-last inputs' own memory where a kernel reads them there
        (channels_last_reader); None where none does or the kernel failed its check, which the conversion into
        channels-first memory then replaces."""
        last = call.channels_last_names()
        reader = self.channels_last_reader(pass_name, last) if last else None  # most calls have none
        if reader is None:
            return None
        # The lanes kernels read their input (a weight gradient's x too) in place; the pointwise and depthwise ones,
        # every channels-last input (the depthwise ones run only where all they read is).
        in_place = ({CHANNELS_LAST_READS[pass_name]} | ({"x"} & last if pass_name == "grad_weight" else set())
                    if reader == "channel lanes" else last)
        tensors = {name: call.channels_last_memory(name) if name in in_place else call.device_tensor(name)
                   for name in call.arrays}
        try:
            if reader == "channel lanes":
                return self._channels_last_implementation(pass_name).run_channels_last(pass_name, tensors, in_place,
                                                                                       out_tensor, call.wait_for)
            return self._in_place_channels_last(reader, pass_name, tensors, last, out_tensor, call.wait_for)
        except kernel_check.KernelVariantFailed as failure:
            kernel_check.warn_fallback(failure, channels_last.CONVERTED_INSTEAD, stacklevel=5)
            return None

    def _in_place_channels_last(self, reader: str, pass_name: str, tensors: dict, last: set, out_tensor, wait_for):
        """A 1x1 pass by cl/pointwise_product.cl (``reader`` "pointwise") or a depthwise one by
        clconv.channels_last_depthwise's kernels, its channels-last inputs (``last``) read in place."""
        module = channels_last_pointwise if reader == "pointwise" else channels_last_depthwise
        launcher = module.launcher(self.target, self.params.dtype)
        p = self.params
        if pass_name == "forward":
            return launcher.forward(p, tensors["x"], tensors["weight"], tensors.get("bias"), out_tensor, wait_for)
        if pass_name == "grad_input":
            return launcher.grad_input(p, tensors["grad_output"], tensors["weight"], tensors.get("bias"), out_tensor,
                                       wait_for)
        if reader == "pointwise":  # either input may be the channels-last one
            return launcher.grad_weight(p, tensors["x"], "x" in last, tensors["grad_output"], "grad_output" in last,
                                        out_tensor, wait_for, self.max_workspace_bytes)
        return launcher.grad_weight(p, tensors["x"], tensors["grad_output"], out_tensor, wait_for,
                                    self.max_workspace_bytes)

    def _launch(self, pass_name: str, tensors: list, out_tensor, wait_for):
        """Enqueue a pass; a kernel variant that failed its check is replaced by the next-best choice.
        Every pass writes its whole output, so a pass that stopped at a failed variant can start again."""
        while True:
            implementation = self._implementation(pass_name)
            try:
                return getattr(implementation, pass_name)(*tensors, out_tensor, wait_for)
            except kernel_check.KernelVariantFailed as failure:
                choice = self.choices[pass_name]
                config = getattr(implementation, "configs", {}).get(pass_name, choice.config)
                replacement = fallback_choice(choice, config) if self.fallback else None
                if replacement is None:
                    raise RuntimeError(f"{failure}; the {pass_name} pass has no other kernel variant to fall "
                                       f"back to on this device") from failure
                _warn_fallback(failure, pass_name, replacement)
                self.choices = dict(self.choices, **{pass_name: replacement})

    def forward(self, x: Array, weight: Array, bias: Array | None = None, *, out: Array | None = None) -> Array:
        """y = conv2d(x, weight) + bias, shape (N, K, P, Q); written into ``out`` when given."""
        return self._run("forward", "y", self.params.output_shape, ("x",), True, out, x=x, weight=weight, bias=bias)

    def grad_input(self, grad_output: Array, weight: Array, *, bias: Array | None = None,
                   out: Array | None = None) -> Array:
        """dL/dx, shape (N, C, H, W); written into ``out`` when given.

        ``bias`` (C entries), when given, is added to every element of its channel: the result is then the
        forward pass of the transposed convolution of grad_output (see :func:`clconv.conv_transpose2d`).
        """
        return self._run("grad_input", "grad_input", self.params.input_shape, ("grad_output",), True, out,
                         grad_output=grad_output, weight=weight, bias=bias)

    def grad_weight(self, x: Array, grad_output: Array, *, out: Array | None = None) -> Array:
        """dL/dk, shape (K, C/groups, R, S), bit-identical across runs; written into ``out`` when given."""
        return self._run("grad_weight", "grad_weight", self.params.weight_shape, ("x", "grad_output"), False, out,
                         x=x, grad_output=grad_output)

    def grad_bias(self, grad_output: Array, *, out: Array | None = None) -> Array:
        """dL/db, shape (K,), bit-identical across runs; written into ``out`` when given."""
        return self._run("grad_bias", "grad_bias", (self.params.K,), ("grad_output",), False, out,
                         grad_output=grad_output)

    # -- batches larger than one allocation ------------------------------------------------------
    def batch_chunk(self) -> int:
        """Largest number of images whose per-batch tensors each fit one device allocation."""
        p = self.params
        per_image = max(math.prod(shape[1:]) for shape in (p.input_shape, p.output_shape)) * p.dtype.itemsize
        return max(0, self.target.info.max_alloc_bytes // per_image)

    def _chunked(self, call: arrays.CallArrays, pass_name: str, batch_inputs, concatenate: bool):
        """Run a NumPy call in batch chunks when it is too big for one allocation; None when it fits."""
        p = self.params
        chunk = self.batch_chunk()
        on_device = call.device_result or any(isinstance(a, cl_array.Array) for a in call.arrays.values())
        if p.N <= chunk or on_device:
            return None  # fits, or device arrays: those already live in single buffers (checked on output)
        if chunk == 0:
            raise ValueError(f"a single image of {p.describe()} exceeds the device's allocation limit of "
                             f"{self.target.info.max_alloc_bytes} bytes on {self.target.info.summary()}")
        pieces = []
        for start in range(0, p.N, chunk):
            stop = min(p.N, start + chunk)
            sub = plan_for(dataclasses.replace(p, N=stop - start), self.target, choices=self.choices,
                           max_workspace_bytes=self.max_workspace_bytes)
            named = {name: (a[start:stop] if name in batch_inputs else a) for name, a in call.arrays.items()}
            piece_out = call.out[start:stop] if concatenate and call.out is not None else None
            pieces.append(getattr(sub, pass_name)(**named, out=piece_out))
        if concatenate:
            return call.out if call.out is not None else np.concatenate(pieces, axis=0)
        # Sum of per-chunk gradients in chunk order, accumulated as the kernels do (float or double).
        accumulator = np.float64 if p.dtype == np.float64 else np.float32
        total = np.zeros(pieces[0].shape, accumulator)
        for piece in pieces:
            total += piece
        return call.deliver(total.astype(p.dtype))


def call_arrays(params, target: platforms.Target, pass_name: str, out, out_shape, **named) -> arrays.CallArrays:
    """The arrays of one pass of a plan for ``params`` (a layer of any rank) on ``target``, each checked against
    the layer's shapes and dtype, ``out`` against the result's, and every device array against the target."""
    # The forward pass adds a bias per output channel (K); the input gradient, run as the forward pass of
    # a transposed convolution, one per input channel (C).
    bias_shape = (params.C,) if pass_name == "grad_input" else (params.K,)
    shapes = {"x": params.input_shape, "weight": params.weight_shape, "bias": bias_shape,
              "grad_output": params.output_shape}
    arrays.check_array_types(out=out, **named)
    for name, array in named.items():
        check_array(name, array, shapes[name], params.dtype)
    check_out(out, out_shape, params.dtype, named)
    arrays.target_for_arrays(target, out=out, **named)  # device arrays must live on this plan's context
    return arrays.CallArrays(target, out=out, **named)


def check_array(name: str, array, shape, dtype) -> None:
    """``array`` (None passes) must have exactly ``shape`` and ``dtype`` (either byte order)."""
    if array is not None and tuple(array.shape) != tuple(shape):
        raise ValueError(f"{name} must have shape {tuple(shape)} for this plan, got {tuple(array.shape)}")
    if array is not None and np.dtype(array.dtype).newbyteorder("=") != np.dtype(dtype):
        raise TypeError(f"{name} must have dtype {np.dtype(dtype)} for this plan, got {array.dtype}")


def check_out(out, shape, dtype, named: dict) -> None:
    """``out`` (None passes) must fit the result exactly and must not share memory with an input (``named``:
    the inputs by the names the caller knows them by) that it would overwrite."""
    if out is None:
        return
    check_array("out", out, shape, dtype)
    if isinstance(out, np.ndarray) and not out.flags.writeable:
        raise ValueError("out must be a writeable array, got a read-only one")
    for name, array in named.items():
        if array is not None and _may_overlap(out, array):
            raise ValueError(f"out shares memory with {name}; pass a separate array for the result")


def _may_overlap(out, array) -> bool:
    """Whether two arrays may share memory: NumPy's bounds check, or overlapping ranges of one buffer."""
    if isinstance(out, np.ndarray) and isinstance(array, np.ndarray):
        return np.may_share_memory(out, array)
    if isinstance(out, cl_array.Array) and isinstance(array, cl_array.Array):
        if out.base_data is None or out.base_data != array.base_data:
            return False
        return out.offset < array.offset + array.nbytes and array.offset < out.offset + out.nbytes
    return False


@functools.lru_cache(maxsize=128)
def _cached_plan(params, target, algo, max_workspace_bytes, choices_key):
    choices = dict(choices_key) if choices_key else None
    return Conv2DPlan(params, target, algo, max_workspace_bytes, choices)


def plan_for(params: Conv2DParams, target: platforms.Target, algo: str = "auto", max_workspace_bytes=None,
             choices: dict | None = None) -> Conv2DPlan:
    """A cached plan: the functional API compiles and chooses once per (layer, device, options)."""
    choices_key = tuple(sorted(choices.items())) if choices else None
    return _cached_plan(params, target, algo, max_workspace_bytes, choices_key)


def clear_plan_cache() -> None:
    """Forget cached plans (after tuning, so that new winners take effect)."""
    _cached_plan.cache_clear()


def plan(input_shape: Sequence[int], weight_shape: Sequence[int], stride: Pair = 1, padding: Padding = 0,
         dilation: Pair = 1, groups: int = 1, *, dtype=np.float32, device=None, algo: str = "auto",
         max_workspace_bytes: int | None = None) -> Conv2DPlan:
    """A plan for one layer: validate once, choose algorithms and compile once, then call its passes.

    input_shape: (N, C, H, W); weight_shape: (K, C/groups, R, S); stride, padding, dilation, groups: as
    :func:`clconv.conv2d` takes them; dtype: float16, float32 or float64. device, algo, max_workspace_bytes:
    as every function of :mod:`clconv.api` takes them.

    ``plan.forward(x, w, b)``, ``plan.grad_input(gy, w)``, ``plan.grad_weight(x, gy)`` and
    ``plan.grad_bias(gy)`` take NumPy or device arrays of exactly the planned shapes, and ``out=`` as the
    functions do.
    """
    params = Conv2DParams.create(input_shape, weight_shape, stride, padding, dilation, groups, dtype)
    return Conv2DPlan(params, platforms.resolve(device), algo, max_workspace_bytes)
