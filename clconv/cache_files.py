"""Small JSON files in the user's cache folder that several processes read and rewrite.

The tuning winners and the kernel-check verdicts both live in one folder: the platform's user cache
folder (``platformdirs``), or the folder of the file CLCONV_TUNING_CACHE names. Each file holds
``{"version": N, "<entries key>": {...}}``; a file of another version or one that cannot be parsed is
ignored with a warning. Writes replace the file atomically, so a reader never sees half of one.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
import warnings
from pathlib import Path

import platformdirs

TUNING_ENV_VAR = "CLCONV_TUNING_CACHE"


def user_cache_folder() -> Path:
    """clconv's folder in the platform's user cache folder."""
    return Path(platformdirs.user_cache_dir("clconv"))


def tuning_path() -> Path:
    override = os.environ.get(TUNING_ENV_VAR)
    if override:
        return Path(override)
    return user_cache_folder() / "tuning.json"


def cache_folder() -> Path:
    """Where clconv keeps what it learns about this machine's devices."""
    return tuning_path().parent


class JsonCacheFile:
    """One such file: ``path()`` is looked up on every access, so tests can move it with the environment."""

    def __init__(self, path, version: int, what: str, entries_key: str = "entries"):
        self.path = path
        self.version = version
        self.entries_key = entries_key
        self.what = what
        self._lock = threading.Lock()
        self._loaded: dict = {}  # path -> (mtime, entries)

    def _read(self, path: Path) -> dict:
        try:
            mtime = path.stat().st_mtime_ns
        except FileNotFoundError:
            return {}
        cached = self._loaded.get(path)
        if cached and cached[0] == mtime:
            return cached[1]
        try:
            document = json.loads(path.read_text())
            entries = document[self.entries_key] if document.get("version") == self.version else {}
        except (OSError, ValueError, KeyError, TypeError) as error:
            warnings.warn(f"ignoring unreadable {self.what} {path}: {error}", stacklevel=3)
            entries = {}
        self._loaded[path] = (mtime, entries)
        return entries

    def entries(self) -> dict:
        """Everything stored (do not modify it: use ``update``)."""
        with self._lock:
            return self._read(self.path())

    def update(self, change) -> Path:
        """Apply ``change(entries)`` to a private copy and write it back atomically; returns the path."""
        path = self.path()
        with self._lock:
            entries = json.loads(json.dumps(self._read(path)))
            change(entries)
            path.parent.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile("w", dir=path.parent, delete=False, suffix=".tmp") as handle:
                json.dump({"version": self.version, self.entries_key: entries}, handle, indent=1, sort_keys=True)
            os.replace(handle.name, path)
            self._loaded.pop(path, None)
        return path
