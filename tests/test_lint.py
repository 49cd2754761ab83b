"""The linter runs with the tests, so CI fails on what it reports and a ``# noqa`` must silence something."""

import importlib.util
import subprocess
import sys
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parent.parent


def test_ruff_finds_nothing():
    assert importlib.util.find_spec("ruff") is not None, "ruff is missing: pip install -e '.[test]'"
    # The rules live in pyproject.toml ([tool.ruff]); ruff finds them from the repository root.
    linted = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "."], cwd=REPOSITORY,
                            capture_output=True, text=True)
    assert linted.returncode == 0, linted.stdout + linted.stderr
