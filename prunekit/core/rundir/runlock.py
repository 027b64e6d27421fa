"""One process per run directory: an exclusive lock on ``RUN_DIR/run.lock`` while a run writes there.

A second ``prunekit run --out DIR`` or ``--resume DIR`` while the first is still at work is
refused with one line instead of interleaving both runs' files. The lock is an ``flock``
on a file that stays in the directory (removing it would let two processes lock two
different files); the kernel releases it when the process ends, however it ends. Where
``fcntl`` does not exist (not POSIX) there is no lock.
"""

from __future__ import annotations

import os
from pathlib import Path

from prunekit.errors import UsageError

#: The lock file in a run directory.
LOCK_FILE = "run.lock"


class RunLock:
    """The lock on one run directory; :meth:`acquire` once the directory exists, :meth:`release` at the end."""

    def __init__(self, run_dir: Path) -> None:
        self.path = Path(run_dir) / LOCK_FILE
        self._fd: int | None = None

    def acquire(self) -> None:
        """Hold the lock, or raise UsageError (one line) if another process holds it."""
        try:
            import fcntl
        except ImportError:  # not POSIX
            return
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | getattr(os, "O_NOFOLLOW", 0), 0o666)
        except OSError as exc:
            raise UsageError(f"Cannot lock run directory {self.path.parent}: {exc.strerror or exc}.") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.read(fd, 32).decode("ascii", "replace").strip() or "?"
            os.close(fd)
            raise UsageError(
                f"Run directory {self.path.parent} is in use by another prunekit process (pid {holder}); "
                "one process per run directory: wait for it to end, or stop it and then --resume."
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
