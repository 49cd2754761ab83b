"""Convolution algorithms: each module drives the kernels of one family for all passes.

An algorithm is a class with a ``name``, ``supports(params, info)`` (which
parameter combinations and devices it handles) and ``workspace_bytes(params,
pass_name)``; instantiating it for (params, target) compiles what it needs,
and its ``forward``/``grad_input``/``grad_weight``/``grad_bias`` methods
enqueue work on ``target.queue`` and return the last event.

Tensors reach an algorithm as :class:`DeviceView`: a buffer plus an element
offset (so batch slices of device arrays need no copy), and the events the
kernels must wait for.
"""

from __future__ import annotations

import typing

import pyopencl as cl

from .direct import DirectAlgorithm
from .tiled import TiledAlgorithm


class DeviceView(typing.NamedTuple):
    buffer: cl.Buffer | None  # None for an empty tensor
    offset: int  # in elements


ALGORITHMS = {algorithm.name: algorithm for algorithm in (DirectAlgorithm, TiledAlgorithm)}


def get_algorithm(name: str):
    if name not in ALGORITHMS:
        raise ValueError(f"algo must be 'auto' or one of {sorted(ALGORITHMS)}, got {name!r}")
    return ALGORITHMS[name]
