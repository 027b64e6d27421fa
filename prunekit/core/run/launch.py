"""``prunekit run --nproc-per-node N``: check the run here, then start it under torchrun.

Equivalent to ``torchrun --standalone --nproc-per-node N $(which prunekit) run ...``
with every setting (and the run directory's name) fixed before the processes start,
so bad input is one line and exit status 2 before anything is launched.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from prunekit.core.config.settings import RunConfig
from prunekit.core.run.validation import validate
from prunekit.core.rundir.files import write_yaml
from prunekit.errors import UsageError

if TYPE_CHECKING:
    from prunekit.core.rundir.checkpoint import Checkpoint


def under_torchrun() -> bool:
    return "TORCHELASTIC_RUN_ID" in os.environ or int(os.environ.get("WORLD_SIZE", "1")) > 1


def launch(config: RunConfig, nproc: int, resume: Path | None = None, saved: Checkpoint | None = None) -> int:
    """Run ``config`` with DDP on ``nproc`` local processes; return torchrun's exit status.

    With ``resume`` (a stopped run's directory, ``config`` its settings, ``saved`` its
    checkpoint), every rank continues it from that checkpoint (``prunekit run --resume``).
    """
    from prunekit.core.plugins.loading import get_plugins
    from prunekit.core.run.building import check_out_dir, default_run_dir, resolve_device

    resolved = validate(config, get_plugins().registry)
    device = resolve_device(config.device)
    if device.type == "cuda":
        import torch

        if device.index is not None:
            raise UsageError(f"--device {config.device} names one GPU; with --nproc-per-node use --device cuda.")
        if nproc > torch.cuda.device_count():
            raise UsageError(f"--nproc-per-node {nproc} but this machine has {torch.cuda.device_count()} GPU(s).")
    if config.amp and device.type != "cuda":
        raise UsageError("--amp needs a CUDA/ROCm device; drop --amp or use --device cuda.")
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}"]
    if resume is not None:
        if saved is not None:  # written by a run on as many processes, else one line before anything starts
            from prunekit.core.distributed.ddp import Dist
            from prunekit.core.distributed.rank_state import own_view
            from prunekit.core.rundir.layout import CHECKPOINT

            own_view(saved, Dist(0, nproc), resume / CHECKPOINT)
        return subprocess.call(
            [*torchrun, "-m", "prunekit.cli", "run", "--resume", str(resume), *(["--quiet"] if config.quiet else [])]
        )
    out = Path(config.out) if config.out else default_run_dir(resolved)
    check_out_dir(out)
    with tempfile.TemporaryDirectory(prefix="prunekit-launch-") as tmp:
        settings = Path(tmp) / "run.yaml"
        write_yaml(settings, config.to_dict() | {"out": str(out)})
        return subprocess.call([*torchrun, "-m", "prunekit.cli", "run", "--config", str(settings)])
