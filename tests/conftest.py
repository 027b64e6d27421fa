"""Shared fixtures: run the CLI in-process and capture its exit status and output."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch

from prunekit import cli
from prunekit.core.plugins import loading as plugins


@dataclass
class CliResult:
    code: int
    out: str
    err: str


@pytest.fixture
def run_cli(capsys):
    """Call ``prunekit ARGS...`` in this process; returns exit code, stdout, stderr."""

    def call(*args: str) -> CliResult:
        capsys.readouterr()
        with pytest.raises(SystemExit) as exit_info:
            cli.main([str(a) for a in args])
        captured = capsys.readouterr()
        return CliResult(int(exit_info.value.code or 0), captured.out, captured.err)

    return call


@pytest.fixture(autouse=True)
def _fresh_plugins_and_threads():
    """Each test sees freshly loaded plugins; torch thread count is restored."""
    threads = torch.get_num_threads()
    plugins.reset()
    yield
    plugins.reset()
    torch.set_num_threads(threads)
