"""Habits that keep the code base this way, checked by the suite (and by ``make test``).

- ruff (lint and format) over the repository: fix with ``make format``;
- mypy in strict mode over the whole package and every plugin (settings in
  pyproject.toml): annotate what it names.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=600)


def _need(module: str) -> None:
    if importlib.util.find_spec(module) is None:
        pytest.skip(f"{module} is not installed (pip install -e '.[test]')")


def test_ruff_lint_and_format_are_clean():
    _need("ruff")
    lint = _run("ruff", "check", "--no-cache", ".")
    assert lint.returncode == 0, f"ruff check found problems; run `make format` (or ruff check --fix .):\n{lint.stdout}"
    fmt = _run("ruff", "format", "--check", "--no-cache", ".")
    assert fmt.returncode == 0, f"files not formatted; run `make format` (or ruff format .):\n{fmt.stdout}"


def test_the_package_and_every_plugin_type_check_strictly():
    _need("mypy")
    result = _run("mypy")
    assert result.returncode == 0, f"mypy --strict (config in pyproject.toml) failed:\n{result.stdout[-6000:]}"
