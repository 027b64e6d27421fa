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

from prunekit.core.config import RunConfig
from prunekit.core.files import write_yaml
from prunekit.core.validation import validate
from prunekit.errors import UsageError


def under_torchrun() -> bool:
    return "TORCHELASTIC_RUN_ID" in os.environ or int(os.environ.get("WORLD_SIZE", "1")) > 1


def launch(config: RunConfig, nproc: int) -> int:
    """Run ``config`` with DDP on ``nproc`` local processes; return torchrun's exit status."""
    from prunekit.core.building import check_out_dir, default_run_dir, resolve_device
    from prunekit.core.plugins import get_plugins

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
    out = Path(config.out) if config.out else default_run_dir(resolved)
    check_out_dir(out)
    with tempfile.TemporaryDirectory(prefix="prunekit-launch-") as tmp:
        settings = Path(tmp) / "run.yaml"
        write_yaml(settings, config.to_dict() | {"out": str(out)})
        command = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            f"--nproc-per-node={nproc}",
            "-m",
            "prunekit.cli",
            "run",
            "--config",
            str(settings),
        ]
        return subprocess.call(command)
