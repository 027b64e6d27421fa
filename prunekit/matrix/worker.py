"""One matrix run in a child process: ``python -m prunekit.matrix.worker PARENT_PID [--resume]``.

The run's settings (JSON) come in the environment variable ``PRUNEKIT_MATRIX_CONFIG``,
not on the command line, which anyone may read with ``ps`` (a tracking URI may hold
a password). ``--resume`` continues the run from the checkpoint in its directory (or starts
it again if the checkpoint is unusable). Exit status 0 with ``summary.json``
written; 3 when stopped by SIGTERM/SIGUSR1 after writing a checkpoint; 4 when out of
memory; otherwise non-zero with a last line ``prunekit-matrix-failure: <reason>`` on
stderr (credentials masked). The child dies with its parent
(``PR_SET_PDEATHSIG`` on Linux, polling elsewhere), so a ``kill -9`` of the
matrix leaves no orphan writing into a run directory.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prunekit.core.train.preemption import EXIT_INTERRUPTED

if TYPE_CHECKING:
    from prunekit.core.config.settings import RunConfig
    from prunekit.core.run.context import EpochCallback
    from prunekit.core.rundir.layout import Summary

FAILURE_MARK = "prunekit-matrix-failure: "
RESUME_FLAG = "--resume"
THREADS_ENV = "PRUNEKIT_MATRIX_THREADS"
CONFIG_ENV = "PRUNEKIT_MATRIX_CONFIG"
#: Exit status of a run that ran out of memory: a failure, not an interruption (3) a rerun resumes.
EXIT_OUT_OF_MEMORY = 4


def command(parent: int, resume: bool) -> list[str]:
    """The worker's arguments after ``python``; its settings go in :data:`CONFIG_ENV`."""
    return ["-m", "prunekit.matrix.worker", str(parent), *([RESUME_FLAG] if resume else [])]


def _follow_parent(parent: int) -> None:
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(137)

    def watch() -> None:
        while True:
            time.sleep(0.5)
            if os.getppid() != parent:
                os._exit(137)

    threading.Thread(target=watch, daemon=True, name="prunekit-parent-watch").start()


def fail(reason: str, code: int) -> None:
    from prunekit.core.tracking.redact import Redactor

    line = Redactor().text(" ".join(reason.split()))
    print(f"{FAILURE_MARK}{line}", file=sys.stderr, flush=True)
    sys.exit(code)


def train(config: RunConfig, on_epoch: EpochCallback, resume: bool) -> tuple[Path, Summary]:
    """Run ``config``; with ``resume``, continue it from its checkpoint (or start again if that is unusable)."""
    from prunekit.core.run.runner import run
    from prunekit.core.rundir import checkpoint
    from prunekit.core.rundir import layout as rundir

    if resume:
        assert config.out is not None  # the matrix gives every run its directory
        run_dir = Path(config.out)
        try:
            saved = checkpoint.load(run_dir / rundir.CHECKPOINT)
            print(f"resuming from the checkpoint after epoch {saved.epoch} (step {saved.step})", flush=True)
            return run(config, on_epoch=on_epoch, resume_from=saved)
        except checkpoint.CheckpointError as exc:  # raised before the run directory is touched
            print(f"cannot resume: {exc} Starting the run again.", flush=True)
            if os.environ.get("RANK", "0") == "0":  # under torchrun, rank 0 owns the run directory
                shutil.rmtree(run_dir, ignore_errors=True)
    return run(config, on_epoch=on_epoch)


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    parent = int(argv[0]) or os.getppid()  # 0: whoever started this process (torchrun)
    _follow_parent(parent)
    import torch

    threads = os.environ.get(THREADS_ENV)
    if threads:
        torch.set_num_threads(int(threads))
    from prunekit.core.config.settings import config_from_mapping
    from prunekit.core.run.runner import RunFailed, RunInterrupted, TrainingDiverged
    from prunekit.core.run.trackers import interrupt_on_sigterm
    from prunekit.errors import UsageError

    interrupt_on_sigterm()  # a stopping matrix terminates its children: trackers hear "interrupted"

    def on_epoch(record: dict[str, Any]) -> None:
        if os.environ.get("RANK", "0") != "0":  # under torchrun, rank 0 speaks for the run
            return
        print(
            f"epoch {record['epoch']}: loss {record['train_loss']:.4f} test acc {record['test_accuracy']:.2f}% "
            f"sparsity {100 * record['sparsity']:.2f}%",
            flush=True,
        )

    try:
        config = config_from_mapping(json.loads(os.environ[CONFIG_ENV]))
        out, summary = train(config, on_epoch, resume=RESUME_FLAG in argv[1:])
    except RunInterrupted as exc:
        print(f"Run {exc}", flush=True)
        sys.exit(EXIT_INTERRUPTED)
    except KeyboardInterrupt:  # SIGTERM outside the training loop, after the trackers heard: die by it
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGTERM)
        raise
    except TrainingDiverged as exc:
        fail(f"training diverged (NaN/inf loss): {exc}", 1)
    except UsageError as exc:
        fail(str(exc), 2)
    except RunFailed as exc:  # the runner kept the traceback in failure.json; the log gets it too
        print(exc.traceback, file=sys.stderr, end="", flush=True)
        if isinstance(exc.__cause__, (torch.OutOfMemoryError, MemoryError)):
            fail(f"out of memory: {exc.reason}", EXIT_OUT_OF_MEMORY)
        fail(exc.reason, 1)
    except (torch.OutOfMemoryError, MemoryError) as exc:
        traceback.print_exc()
        fail(f"out of memory: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}", EXIT_OUT_OF_MEMORY)
    except Exception as exc:
        traceback.print_exc()
        fail(f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}", 1)
    print(f"finished: {out} ({summary['final_test_accuracy']:.2f}% final test accuracy)", flush=True)


if __name__ == "__main__":
    main()
