"""Atomic file writes: a reader never sees a half-written result."""

from __future__ import annotations

import contextlib
import glob
import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import yaml


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def _stale(owner: str | None, ours: bool) -> bool:
    if owner is not None and owner.isdigit():
        return not _pid_alive(int(owner))
    return ours  # no pid in the name: an older prunekit's temporary of a known file, else not ours to judge


def remove_stale_temps(path: Path, suffix: str = ".tmp") -> None:
    """Remove the temporary files :func:`atomic_path` made for ``path`` (for any file, when ``path``
    is a directory) whose writer no longer runs (killed mid-write); a live writer's are kept."""
    path = Path(path)
    exact = not path.is_dir()
    folder, pattern = (path.parent, glob.escape(f".{path.name}.")) if exact else (path, ".*.")
    try:
        candidates = list(folder.glob(f"{pattern}*{glob.escape(suffix)}"))
    except OSError:
        return
    for tmp in candidates:
        if exact:  # .NAME.PID.RANDOM.SUFFIX (or .NAME.RANDOM.SUFFIX before the pid was added)
            rest = tmp.name[len(path.name) + 2 : -len(suffix)]
            owner = rest.split(".", 1)[0] if "." in rest else None
        else:  # .NAME.PID.RANDOM.SUFFIX: mkstemp's random part has no dots
            parts = tmp.name[: -len(suffix)].rsplit(".", 2)
            owner = parts[1] if len(parts) == 3 and parts[0] not in ("", ".") else None
        if _stale(owner, ours=exact):
            with contextlib.suppress(OSError):
                tmp.unlink()


@contextmanager
def atomic_path(path: Path, suffix: str = ".tmp") -> Iterator[Path]:
    """A temporary path beside ``path``; what the block writes there is fsynced and
    renamed over ``path`` when the block succeeds, and removed when it fails.

    The file gets the mode the umask gives new files (not ``mkstemp``'s 0600); the
    temporary name holds the writer's pid, so one left by a killed writer is removed
    by the next write of ``path``.
    """
    path = Path(path)
    remove_stale_temps(path, suffix)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.{os.getpid()}.", suffix=suffix)
    try:
        os.fchmod(fd, 0o666 & ~_umask())
    finally:
        os.close(fd)
    try:
        yield Path(tmp)
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_atomic(path: Path, text: str | bytes) -> None:
    """Write ``text`` (UTF-8) or bytes to a temporary file beside ``path``, fsync, then rename over it."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(text.encode("utf-8") if isinstance(text, str) else text)


def write_json(path: Path, data: Any) -> None:
    write_atomic(path, json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")


def write_yaml(path: Path, data: Any) -> None:
    write_atomic(path, yaml.safe_dump(data, sort_keys=False))


def jsonl_line(record: dict[str, Any]) -> str:
    """One JSON-lines record, newline included."""
    return json.dumps(record, default=str) + "\n"


def append_jsonl(handle: IO[str], record: dict[str, Any]) -> None:
    handle.write(jsonl_line(record))
    handle.flush()


def complete_lines(path: Path, size: int, chunk: int = 1 << 16) -> int:
    """The length of the complete lines among the first ``size`` bytes of ``path`` (up to and
    including its last newline there; 0 if none)."""
    with open(path, "rb") as handle:
        end = size
        while end > 0:
            start = max(0, end - chunk)
            handle.seek(start)
            found = handle.read(end - start).rfind(b"\n")
            if found >= 0:
                return start + found + 1
            end = start
    return 0
