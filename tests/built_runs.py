"""Run ``prunekit run`` in this process and keep what it built (model, targets, pruner, optimizer) to inspect."""

from __future__ import annotations

from typing import Any

import pytest

from prunekit.core.config.settings import RunConfig
from prunekit.core.run import runner

_BUILD = runner.build  # the real one, whatever a test has patched in since


def run_keeping_parts(monkeypatch: pytest.MonkeyPatch, config: RunConfig) -> tuple[Any, Any]:
    """``runner.run(config)``'s summary and the ``Built`` parts it trained."""
    kept: dict[str, Any] = {}

    def build(*args: Any, **kwargs: Any) -> Any:
        kept["built"] = _BUILD(*args, **kwargs)
        return kept["built"]

    monkeypatch.setattr(runner, "build", build)
    summary = runner.run(config)[1]
    return summary, kept["built"]
