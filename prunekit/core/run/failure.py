"""What a failed run leaves behind: ``failure.json`` with the reason and the full traceback."""

from __future__ import annotations

import time
import traceback
from pathlib import Path
from typing import Any

from prunekit.core.run import trackers as run_trackers
from prunekit.core.run.context import RunContext
from prunekit.core.rundir import layout as rundir
from prunekit.core.train.training import Progress
from prunekit.errors import RunFailed


def record_failure(ctx: RunContext, out: Path, progress: Progress, reason: str, exc: BaseException) -> tuple[str, str]:
    """Write ``failure.json`` (the matrix's shape, plus the traceback, credentials redacted);
    return the redacted reason and traceback."""
    redact = run_trackers.redactor(ctx.plugins.registry)
    reason, text = redact.text(reason), redact.text("".join(traceback.format_exception(exc)))
    config = redact(ctx.resolved.config.to_dict() | {"out": str(out), "pruner": ctx.resolved.pruner.name})
    try:
        _write(ctx, out, progress, exc, reason, text, config)
    except OSError as problem:  # the disk that failed the run may refuse this too: say so, never a second traceback
        raise FailureUnrecorded(f"{rundir.FAILURE} could not be written ({problem.strerror or problem})") from None
    return reason, text


class FailureUnrecorded(Exception):
    """``failure.json`` could not be written (a full disk, a read-only directory)."""


def _write(
    ctx: RunContext, out: Path, progress: Progress, exc: BaseException, reason: str, text: str, config: dict[str, Any]
) -> None:
    rundir.write_failure(
        out,
        {
            "status": "failed",
            "reason": reason,
            "returncode": 1,
            "signal": None,
            "exception": type(exc).__name__,
            "traceback": text.splitlines(),
            "epochs_completed": len(progress.history),
            "wall_time_s": time.perf_counter() - ctx.started_at,
            "config": config,
            "failed_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        },
    )


def run_failed(ctx: RunContext, out: Path, progress: Progress, exc: Exception) -> RunFailed:
    """The :class:`RunFailed` for an unexpected exception: one line naming it; rank 0 records it first."""
    first = (str(exc).strip().splitlines() or [""])[0]
    reason = f"{type(exc).__name__}: {first}".rstrip(": ")
    text = "".join(traceback.format_exception(exc))
    where = f"traceback in {out / rundir.FAILURE}"
    if ctx.dist.is_main:
        try:
            reason, text = record_failure(ctx, out, progress, reason, exc)
        except FailureUnrecorded as problem:
            where = str(problem)
    return RunFailed(f"{reason} ({where})", reason, text)
