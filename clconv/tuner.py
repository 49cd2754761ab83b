"""Searching algorithms and tiles per layer and device, and storing the winners.

For each pass every algorithm is timed with each of its candidate tiles (those that exceed the device's
work-group limits are never tried); a candidate whose result disagrees with the simplest algorithm's (the
last in the plans' preference) beyond the dtype's tolerance is discarded, so a miscompiled tile can never
win. Winners go to the tuning cache (:mod:`clconv.tuning_cache`), where later processes find them.
"""

from __future__ import annotations

import dataclasses
import statistics
import time

import numpy as np
import pyopencl as cl
import pyopencl.array as cl_array
from tqdm.auto import tqdm

from . import check, platforms, tuning_cache
from .algorithms import ALGORITHMS, PREFERENCE
from .params import Conv2DParams, call_plan
from .planning import Choice, Conv2DPlan, clear_plan_cache

TUNED_PASSES = ("forward", "grad_input", "grad_weight")


def median_wall_seconds(run, repeats: int) -> float:
    """Median host-clock time of ``run()`` over ``repeats`` calls after one warm-up call."""
    run()  # warm-up: caches, page faults of fresh buffers, the thread pool
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def device_seconds(queue, run, repeats: int) -> float:
    """Median device time of ``run()`` from profiling markers around it (wall time without profiling)."""
    if not queue.properties & cl.command_queue_properties.PROFILING_ENABLE:
        return median_wall_seconds(lambda: (run(), queue.finish()), repeats)
    run()  # warm-up
    queue.finish()
    samples = []
    for _ in range(repeats):
        before = cl.enqueue_marker(queue)
        run()
        after = cl.enqueue_marker(queue)
        after.wait()
        samples.append((after.profile.end - before.profile.end) * 1e-9)
    return statistics.median(samples)


def pass_runner(plan: Conv2DPlan, pass_name: str, tensors: dict):
    """A no-argument callable running one pass of ``plan`` on device arrays."""
    return lambda: call_plan(plan, pass_name, tensors)


def to_device(queue, tensors: dict) -> dict:
    return {name: cl_array.to_device(queue, value) for name, value in tensors.items()}


@dataclasses.dataclass
class TuneResult:
    params: Conv2DParams
    pass_name: str
    choice: Choice
    seconds: float
    tried: int
    rejected: int


def _candidates(params, info, pass_name):
    for name, algorithm in ALGORITHMS.items():
        for config in algorithm.candidates(params, info, pass_name):
            yield Choice(name, config, "tuned")


def tune(layers, device=None, passes=TUNED_PASSES, repeats: int = 3, progress: bool = True,
         store: bool = True) -> list[TuneResult]:
    """Time every candidate for each layer (Conv2DParams) and pass; store and return the winners."""
    for pass_name in passes:
        if pass_name not in TUNED_PASSES:
            raise ValueError(f"passes must be among {TUNED_PASSES}, got {pass_name!r}")
    target = platforms.resolve(device)
    work = [(params, pass_name, list(_candidates(params, target.info, pass_name)))
            for params in layers for pass_name in passes]
    bar = tqdm(total=sum(len(c) for _, _, c in work), desc=f"tuning on {target.info.name[:30]}",
               disable=not progress, unit="candidate")
    results = []
    for params, pass_name, candidates in work:
        host = check.layer_inputs(params)
        tensors = to_device(target.queue, host)
        # The simplest algorithm's result, and the same pass on absolute values: the error bound of check.py.
        simplest = Conv2DPlan(params, target, algo=PREFERENCE[-1])
        reference = pass_runner(simplest, pass_name, tensors)().get().astype(np.float64)
        absolute = to_device(target.queue, {name: np.abs(value) for name, value in host.items()})
        bound = pass_runner(simplest, pass_name, absolute)().get().astype(np.float64)
        # Both results carry rounding error: the candidate may differ from the simplest by the pairwise tolerance.
        limit = check.pairwise_tolerance(params.dtype) * np.maximum(bound, check.bound_floor(params.dtype))
        best, rejected = None, 0
        for choice in candidates:
            bar.set_postfix_str(f"{params.label} {pass_name} {choice.algo}")
            plan = Conv2DPlan(params, target, choices={pass_name: choice}, fallback=False)
            try:
                result = pass_runner(plan, pass_name, tensors)().get()
                seconds = device_seconds(target.queue, pass_runner(plan, pass_name, tensors), repeats)
            except (cl.Error, RuntimeError):
                rejected += 1  # a tile the device cannot build, run or check is skipped, not fatal
                bar.update()
                continue
            if not np.all(np.abs(result.astype(np.float64) - reference) <= limit):
                rejected += 1
            elif best is None or seconds < best[1]:
                best = (choice, seconds)
            bar.update()
        if best is None:
            continue
        choice, seconds = best
        if store:
            tuning_cache.store(target.info, params, pass_name, {
                "algo": choice.algo,
                "config": ALGORITHMS[choice.algo].config_record(choice.config),
                "seconds": seconds,
                "gflops": params.flops(pass_name) / seconds / 1e9,
                "tuned_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
            })
        results.append(TuneResult(params, pass_name, choice, seconds, len(candidates), rejected))
    bar.close()
    clear_plan_cache()
    return results
