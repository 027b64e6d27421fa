"""The machinery of ``gpu_check.py``: items that report ok / failed / skipped, a time budget, child runs.

Every item runs on its own; an exception in one is recorded as ``failed`` with its first line and the
next item runs. A child ``prunekit run`` is a real process with its own timeout, so a hang costs one
item, not the check.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


class Skip(Exception):
    """An item that cannot run here; its message is the reason."""


@dataclass
class Context:
    """Where the items run: the device, the samplers, a scratch folder and the Python that has prunekit."""

    device: str
    samplers: list[str]
    work: Path
    python: str = sys.executable
    options: list[str] = field(default_factory=list)  # the run every item varies (empty: the check's own)
    budget_s: float = 290.0
    started: float = field(default_factory=time.monotonic)

    def seconds_left(self) -> float:
        return self.budget_s - (time.monotonic() - self.started)


Item = Callable[[Context], dict[str, Any]]


def first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")


def run_items(items: list[tuple[str, Item]], ctx: Context) -> list[dict[str, Any]]:
    """Run each item once, in order; one item's failure or skip never hides the rest."""
    results = []
    for name, item in items:
        begun = time.monotonic()
        record: dict[str, Any] = {"name": name}
        if ctx.seconds_left() <= 0:
            record |= {"status": "skipped", "reason": f"time budget of {ctx.budget_s:.0f} s spent"}
        else:
            try:
                record |= {"status": "ok", "figures": item(ctx)}
            except Skip as exc:
                record |= {"status": "skipped", "reason": str(exc)}
            except Exception as exc:  # noqa: BLE001 - every failure is recorded, the next item runs
                record |= {"status": "failed", "error": first_line(exc)}
        record["seconds"] = round(time.monotonic() - begun, 2)
        results.append(record)
    return results


def report(items: list[dict[str, Any]], environment: dict[str, Any]) -> dict[str, Any]:
    """The one JSON document: the environment, each item, and the counts by status."""
    counts = {status: sum(1 for i in items if i["status"] == status) for status in ("ok", "failed", "skipped")}
    return {"check": "gpu_check", "environment": environment, "counts": counts, "items": items}


class ChildFailed(RuntimeError):
    """A child process exited non-zero; the message is its last stderr line."""


def run_child(ctx: Context, args: list[str], env: dict[str, str] | None = None, timeout: float = 120.0) -> str:
    """Run ``python args...`` with a timeout bounded by the budget; return stdout or raise ChildFailed."""
    limit = max(5.0, min(timeout, ctx.seconds_left()))
    full_env = os.environ | {"PYTHONUNBUFFERED": "1"} | (env or {})
    try:
        done = subprocess.run(
            [ctx.python, *args], cwd=ctx.work, env=full_env, capture_output=True, text=True, timeout=limit, check=False
        )
    except subprocess.TimeoutExpired:
        raise ChildFailed(f"timed out after {limit:.0f} s: {' '.join(args[:4])} ...") from None
    if done.returncode != 0:
        lines = [line for line in done.stderr.splitlines() if line.strip()] or ["(no stderr)"]
        raise ChildFailed(f"exit {done.returncode}: {lines[-1]}")
    return done.stdout


def prunekit_run(
    ctx: Context, out: Path, options: list[str], env: dict[str, str] | None = None, device: str | None = None
) -> dict[str, Any]:
    """One real ``prunekit run`` on ``device`` (default: the context's) into ``out``; its summary.json."""
    device = device or ctx.device
    samplers = ctx.samplers if device == ctx.device else ["process"]
    argv = ["-m", "prunekit.cli", "run", "--device", device, "--out", str(out), "--quiet", *options]
    for sampler in samplers:
        argv += ["--sampler", sampler]
    run_child(ctx, argv, env=env)
    return json.loads((out / "summary.json").read_text())


def installed_plugins() -> set[str]:
    """The distributions that registered prunekit entry points in this Python."""
    return {ep.dist.name for ep in metadata.entry_points(group="prunekit") if ep.dist is not None}


def python_with_prunekit(work: Path, needed: set[str]) -> str:
    """This Python if it has prunekit and the ``needed`` plugins, else a venv over it with this checkout installed.

    A bare GPU machine has torch, timm and the other dependencies but not prunekit: the venv sees
    the system's packages and installs only this repository and its plugins, offline.
    """
    try:
        metadata.version("prunekit")
        if needed <= installed_plugins():
            return sys.executable
    except metadata.PackageNotFoundError:
        pass
    venv = work / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True, capture_output=True)
    python = str(venv / "bin" / "python")
    dists = [ROOT, *sorted(p.parent for p in (ROOT / "plugins").glob("*/pyproject.toml"))]
    install = [python, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--no-index"]
    subprocess.run([*install, *(arg for d in dists for arg in ("-e", str(d)))], check=True, capture_output=True)
    return python
