"""Stopping a run cleanly on SIGTERM or SIGUSR1 (what schedulers send before preemption).

The handler only records the request; the training loop checks it after each
optimizer step, writes a checkpoint and raises :class:`RunInterrupted`, which
the command line turns into one line and exit status 3.
"""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from types import FrameType
from typing import Any

from prunekit.core.distributed.ddp import Dist, any_rank

#: Signals that ask a run to checkpoint and stop.
STOP_SIGNALS = (signal.SIGTERM, signal.SIGUSR1)
#: Exit status of a run stopped by one of them after writing its checkpoint.
EXIT_INTERRUPTED = 3


class RunInterrupted(Exception):
    """A run stopped on request after writing a checkpoint; it can be resumed."""

    def __init__(self, run_dir: Path, signal_name: str, epoch: int, step: int) -> None:
        self.run_dir = Path(run_dir)
        self.signal_name = signal_name
        self.epoch = epoch
        self.step = step
        super().__init__(
            f"stopped by {signal_name} after step {step} ({epoch} epoch(s) complete); checkpoint written. "
            f"Resume with: prunekit run --resume {self.run_dir}"
        )


class StopRequests:
    """While entered, SIGTERM and SIGUSR1 set :attr:`signal_name` instead of killing the process.

    Outside the main thread (where Python cannot install handlers) it does
    nothing and signals keep their usual effect.
    """

    def __init__(self) -> None:
        self.signal_name: str | None = None
        self.stopping = False
        self._previous: dict[int, Any] = {}

    @property
    def requested(self) -> bool:
        """Whether this process was asked to stop."""
        return self.signal_name is not None

    def agreed(self, dist: Dist) -> bool:
        """Whether any rank was asked to stop, the same answer on every rank (under torchrun one
        all-reduce per call), so all ranks stop after the same step; once true, it stays true."""
        self.stopping = self.stopping or any_rank(dist, self.requested)
        return self.stopping

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.signal_name = self.signal_name or signal.Signals(signum).name

    def __enter__(self) -> StopRequests:
        if threading.current_thread() is threading.main_thread():
            for sig in STOP_SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)
        self._previous.clear()
