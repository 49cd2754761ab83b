"""The persistent record of tuned algorithm choices, one JSON file per user.

Entries are keyed by device (name, platform version and driver version: a driver update can change
which kernel is fastest, so it invalidates the entry) and by the full layer description. The file
lives in the user's cache directory (``platformdirs``), or where CLCONV_TUNING_CACHE points.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
import warnings
from pathlib import Path

import platformdirs

from .params import Conv2DParams, dtype_name

ENV_VAR = "CLCONV_TUNING_CACHE"
FORMAT_VERSION = 1

_lock = threading.Lock()
_loaded: dict = {}  # path -> (mtime, entries)


def cache_path() -> Path:
    override = os.environ.get(ENV_VAR)
    if override:
        return Path(override)
    return Path(platformdirs.user_cache_dir("clconv")) / "tuning.json"


def device_key(info) -> str:
    return f"{info.name} | {info.platform_version} | {info.driver_version}"


def params_key(p: Conv2DParams) -> str:
    return (f"n{p.N}-c{p.C}-h{p.H}-w{p.W}-k{p.K}-r{p.R}-s{p.S}-stride{p.stride[0]}x{p.stride[1]}"
            f"-pad{'x'.join(map(str, p.padding))}-dil{p.dilation[0]}x{p.dilation[1]}-g{p.groups}-{dtype_name(p.dtype)}")


def _read(path: Path) -> dict:
    try:
        mtime = path.stat().st_mtime_ns
    except FileNotFoundError:
        return {}
    cached = _loaded.get(path)
    if cached and cached[0] == mtime:
        return cached[1]
    try:
        document = json.loads(path.read_text())
        entries = document["devices"] if document.get("version") == FORMAT_VERSION else {}
    except (OSError, ValueError, KeyError, TypeError) as error:
        warnings.warn(f"ignoring unreadable tuning cache {path}: {error}")
        entries = {}
    _loaded[path] = (mtime, entries)
    return entries


def lookup(info, params: Conv2DParams, pass_name: str) -> dict | None:
    """The stored winner for this device, driver and layer pass: {"algo", "config", ...}, or None."""
    with _lock:
        entries = _read(cache_path())
    return entries.get(device_key(info), {}).get(params_key(params), {}).get(pass_name)


def store(info, params: Conv2DParams, pass_name: str, record: dict) -> Path:
    """Add or replace one winner; the file is rewritten atomically so readers never see half of it."""
    path = cache_path()
    with _lock:
        entries = json.loads(json.dumps(_read(path)))  # a private copy to modify
        entries.setdefault(device_key(info), {}).setdefault(params_key(params), {})[pass_name] = record
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile("w", dir=path.parent, delete=False, suffix=".tmp") as handle:
            json.dump({"version": FORMAT_VERSION, "devices": entries}, handle, indent=1, sort_keys=True)
        os.replace(handle.name, path)
        _loaded.pop(path, None)
    return path
