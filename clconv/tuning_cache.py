"""The persistent record of tuned algorithm choices, one JSON file per user.

Entries are keyed by device (name, platform version and driver version: a driver update can change
which kernel is fastest, so it invalidates the entry) and by the full layer description, batch size
included. A layer tuned at one batch size serves the same layer at others: a lookup without a winner for
its own batch size takes the one tuned at the nearest (by ratio). The file lives in the user's cache
directory (``platformdirs``), or where CLCONV_TUNING_CACHE points.
"""

from __future__ import annotations

import re
import typing
from fractions import Fraction
from pathlib import Path

from .cache_files import JsonCacheFile, tuning_path
from .params import Conv2DParams, dtype_name

# Version 2: the correlation tile's rows-or-plane-vectors field is block_v (it was block_p); the records of
# version 1 are ignored, and their layers run the heuristic's tiles until tuned again.
_FILE = JsonCacheFile(tuning_path, version=2, what="tuning cache", entries_key="devices")


class Tuned(typing.NamedTuple):
    """A stored winner and the batch size it was tuned at."""

    record: dict  # {"algo", "config", ...} as the tuner stored it
    batch: int


def cache_path() -> Path:
    return tuning_path()


def device_key(info) -> str:
    return f"{info.name} | {info.platform_version} | {info.driver_version}"


def geometry_key(p: Conv2DParams) -> str:
    """Everything about a layer but its batch size."""
    return (f"c{p.C}-h{p.H}-w{p.W}-k{p.K}-r{p.R}-s{p.S}-stride{p.stride[0]}x{p.stride[1]}"
            f"-pad{'x'.join(map(str, p.padding))}-dil{p.dilation[0]}x{p.dilation[1]}-g{p.groups}-{dtype_name(p.dtype)}")


def params_key(p: Conv2DParams) -> str:
    return f"n{p.N}-{geometry_key(p)}"


def _batch_ratio(a: int, b: int) -> Fraction:
    """How far apart two batch sizes are: the larger over the smaller (an empty batch counts as one image),
    so that batch 64 is as near to 32 as to 128."""
    small, large = sorted((max(a, 1), max(b, 1)))
    return Fraction(large, small)


def lookup(info, params: Conv2DParams, pass_name: str) -> Tuned | None:
    """The stored winner for this device, driver and layer pass: the one tuned at the layer's batch size,
    else the one of the same layer at the nearest tuned batch size (the smaller of two equally near), else
    None."""
    layers = _FILE.entries().get(device_key(info), {})
    exact = layers.get(params_key(params), {}).get(pass_name)
    if exact is not None:
        return Tuned(exact, params.N)
    geometry = geometry_key(params)
    tuned = []
    for key, passes in layers.items():
        match = re.fullmatch(r"n(\d+)-(.*)", key)
        if match and match[2] == geometry and pass_name in passes:
            tuned.append(Tuned(passes[pass_name], int(match[1])))
    return min(tuned, key=lambda t: (_batch_ratio(t.batch, params.N), t.batch), default=None)


def store(info, params: Conv2DParams, pass_name: str, record: dict) -> Path:
    """Add or replace one winner."""
    def change(entries):
        entries.setdefault(device_key(info), {}).setdefault(params_key(params), {})[pass_name] = record

    return _FILE.update(change)
