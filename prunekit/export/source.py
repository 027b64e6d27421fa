"""A completed run's final model, rebuilt from its directory (config.yaml + checkpoint.pt), on the CPU.

The run directory is untrusted: its settings go through the same validation as ``prunekit run``,
the checkpoint is read with ``weights_only`` and checked against the run (``checkpoint.load``),
and only files named by prunekit inside the directory are opened.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch.nn.utils import parametrize

from prunekit.core.plugins.loading import get_registry
from prunekit.core.run.building import build, seed_everything
from prunekit.core.run.resume import config_of
from prunekit.core.run.validation import ResolvedRun, validate
from prunekit.core.rundir import checkpoint
from prunekit.core.rundir import layout as rundir
from prunekit.core.sparsity.pruner import MaskPruner
from prunekit.core.train.parts import Built
from prunekit.errors import UsageError


@dataclass
class FinalModel:
    """The rebuilt run: its parts, its plain state_dict with masks folded in, and each masked weight's keep-mask."""

    resolved: ResolvedRun
    built: Built
    state: dict[str, torch.Tensor]
    masks: dict[str, torch.Tensor]
    n_of_m: tuple[int, int] | None
    covered: list[str]  # the weights N:M covers (nm format)


def final_model(run_dir: Path) -> FinalModel:
    """Rebuild ``run_dir``'s final model; UsageError (one line) when the directory cannot give it."""
    what = f"export {run_dir}"
    if not run_dir.is_dir():
        raise UsageError(f"{what}: no such run directory.")
    try:
        summary = rundir.read_summary(run_dir)
        settings = rundir.read_config(run_dir)
    except (rundir.Malformed, OSError) as exc:
        raise UsageError(f"{what}: {exc}.") from None
    if settings is None or summary.get("status") != "completed":
        raise UsageError(f"{what}: not a completed prunekit run (needs {rundir.SUMMARY} and {rundir.CONFIG}).")
    config = config_of(settings, run_dir)
    resolved = validate(config, get_registry())
    path = run_dir / rundir.CHECKPOINT
    if not path.is_file() or path.is_symlink():
        raise UsageError(f"{what}: no {rundir.CHECKPOINT} (runs keep it unless --checkpoint-every 0).")
    saved = checkpoint.load(path)
    if saved.epoch != config.epochs or saved.batch:
        raise UsageError(f"{what}: {rundir.CHECKPOINT} is from epoch {saved.epoch}, not the final epoch {config.epochs}.")
    seed_everything(config.seed)
    built = build(resolved, torch.device("cpu"))
    try:
        built.model.load_state_dict(saved.model)
        built.pruner.load_state_dict(saved.pruner)
    except (RuntimeError, KeyError, ValueError, TypeError) as exc:
        raise UsageError(f"{what}: {rundir.CHECKPOINT} does not fit the run's model: {str(exc).splitlines()[0]}") from None
    pruner = built.pruner
    stored = pruner.masks if isinstance(pruner, MaskPruner) else [None] * len(built.targets)
    with torch.no_grad():
        kept = {t.name: (t.weight != 0) if m is None else m.cpu() for t, m in zip(built.targets, stored)}
        for target in built.targets:
            if parametrize.is_parametrized(target.module, target.attr):
                parametrize.remove_parametrizations(target.module, target.attr, leave_parametrized=True)
        state = {k: v.detach().clone() for k, v in built.model.state_dict().items()}
        masks = {name: mask for name, mask in kept.items() if name in state and not bool(mask.all())}
        for name, mask in masks.items():
            state[name] = state[name] * mask
    structure = pruner.structure if isinstance(pruner, MaskPruner) else None
    n_of_m = structure.n_of_m if structure is not None else None
    covered = [built.targets[i].name for i in structure.covered] if structure is not None and n_of_m else []
    return FinalModel(resolved, built, state, masks, n_of_m, covered)
