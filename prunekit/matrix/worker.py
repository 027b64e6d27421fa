"""One matrix run in a child process: ``python -m prunekit.matrix.worker PARENT_PID CONFIG_JSON``.

Exit status 0 with ``summary.json`` written, or non-zero with a last line
``prunekit-matrix-failure: <reason>`` on stderr. The child dies with its parent
(``PR_SET_PDEATHSIG`` on Linux, polling elsewhere), so a ``kill -9`` of the
matrix leaves no orphan writing into a run directory.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
import traceback

FAILURE_MARK = "prunekit-matrix-failure: "
THREADS_ENV = "PRUNEKIT_MATRIX_THREADS"


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
    line = " ".join(reason.split())
    print(f"{FAILURE_MARK}{line}", file=sys.stderr, flush=True)
    sys.exit(code)


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    parent, config_json = int(argv[0]) or os.getppid(), argv[1]  # 0: whoever started this process (torchrun)
    _follow_parent(parent)
    import torch

    threads = os.environ.get(THREADS_ENV)
    if threads:
        torch.set_num_threads(int(threads))
    from prunekit.core.config import config_from_mapping
    from prunekit.core.run_trackers import interrupt_on_sigterm
    from prunekit.core.runner import TrainingDiverged, run
    from prunekit.errors import UsageError

    interrupt_on_sigterm()  # a stopping matrix terminates its children: trackers hear "interrupted"

    def on_epoch(record: dict) -> None:
        if os.environ.get("RANK", "0") != "0":  # under torchrun, rank 0 speaks for the run
            return
        print(
            f"epoch {record['epoch']}: loss {record['train_loss']:.4f} test acc {record['test_accuracy']:.2f}% "
            f"sparsity {100 * record['sparsity']:.2f}%",
            flush=True,
        )

    try:
        config = config_from_mapping(json.loads(config_json))
        out, summary = run(config, on_epoch=on_epoch)
    except KeyboardInterrupt:  # SIGTERM, after the trackers heard: die by it, as the parent expects
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGTERM)
        raise
    except TrainingDiverged as exc:
        fail(f"training diverged (NaN/inf loss): {exc}", 1)
    except UsageError as exc:
        fail(str(exc), 2)
    except (torch.OutOfMemoryError, MemoryError) as exc:
        traceback.print_exc()
        fail(f"out of memory: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}", 3)
    except Exception as exc:
        traceback.print_exc()
        fail(f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}", 1)
    print(f"finished: {out} ({summary['final_test_accuracy']:.2f}% final test accuracy)", flush=True)


if __name__ == "__main__":
    main()
