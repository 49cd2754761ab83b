"""The persistent record of tuned algorithm choices, one JSON file per user.

Entries are keyed by device (name, platform version and driver version: a driver update can change
which kernel is fastest, so it invalidates the entry) and by the full layer description. The file
lives in the user's cache directory (``platformdirs``), or where CLCONV_TUNING_CACHE points.
"""

from __future__ import annotations

from pathlib import Path

from .cache_files import TUNING_ENV_VAR as ENV_VAR
from .cache_files import JsonCacheFile, tuning_path
from .params import Conv2DParams, dtype_name

_FILE = JsonCacheFile(tuning_path, version=1, what="tuning cache", entries_key="devices")


def cache_path() -> Path:
    return tuning_path()


def device_key(info) -> str:
    return f"{info.name} | {info.platform_version} | {info.driver_version}"


def params_key(p: Conv2DParams) -> str:
    return (f"n{p.N}-c{p.C}-h{p.H}-w{p.W}-k{p.K}-r{p.R}-s{p.S}-stride{p.stride[0]}x{p.stride[1]}"
            f"-pad{'x'.join(map(str, p.padding))}-dil{p.dilation[0]}x{p.dilation[1]}-g{p.groups}-{dtype_name(p.dtype)}")


def lookup(info, params: Conv2DParams, pass_name: str) -> dict | None:
    """The stored winner for this device, driver and layer pass: {"algo", "config", ...}, or None."""
    return _FILE.entries().get(device_key(info), {}).get(params_key(params), {}).get(pass_name)


def store(info, params: Conv2DParams, pass_name: str, record: dict) -> Path:
    """Add or replace one winner."""
    def change(entries):
        entries.setdefault(device_key(info), {}).setdefault(params_key(params), {})[pass_name] = record

    return _FILE.update(change)
