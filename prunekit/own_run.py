"""A run directory for an own-loop run, in prunekit's schema, so ``prunekit report`` reads it beside ``prunekit run`` ones.

:class:`OwnRun` writes, through :mod:`prunekit.core.rundir.layout` (the one writer):
``config.yaml`` when made, a ``metrics.jsonl`` line per :meth:`OwnRun.log_epoch` (the
figures you pass plus the sparsities measured then), and at :meth:`OwnRun.finish`
``test_correct.bin`` (when you hand over which test examples the final model got right)
and ``summary.json`` last. Figures you do not give are NaN, never guessed.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from prunekit import __version__
from prunekit.core.run.building import check_out_dir
from prunekit.core.run.summary import TARGET_TOLERANCE
from prunekit.core.rundir import layout as rundir
from prunekit.core.rundir.outcomes import Outcomes, fingerprint_test_set
from prunekit.errors import UsageError

if TYPE_CHECKING:
    from prunekit.sparsifier import Sparsifier

#: Settings an own-loop run records about itself (``prunekit report`` groups by them).
DESCRIBED = ("model", "dataset", "optimizer", "seed", "batch_size", "epochs")


class OwnRun:
    """The run directory of one own-loop run; made (and ``config.yaml`` written) at construction."""

    def __init__(self, path: str | Path, sparsifier: Sparsifier, info: dict[str, Any]) -> None:
        self.path = Path(path)
        check_out_dir(self.path)
        self.sparsifier = sparsifier
        self.info: dict[str, Any] = {
            "model": "custom",
            "dataset": "custom",
            "optimizer": type(sparsifier.optimizer).__name__.lower(),
        }
        self.info |= {"seed": 0, "batch_size": 0, "epochs": 0} | dict(info)
        self.started = time.perf_counter()
        self.history: list[dict[str, Any]] = []
        self.path.mkdir(parents=True, exist_ok=True)
        rundir.write_config(self.path, self.info | sparsifier.describe() | {"own_loop": True, "out": str(self.path)})

    def log_epoch(self, epoch: int, **figures: float) -> dict[str, Any]:
        """Append one ``metrics.jsonl`` line: ``figures`` (e.g. test_accuracy in percent, train_loss) and the sparsities now."""
        counts = self.sparsifier.sparsity()
        record: dict[str, Any] = dict.fromkeys(rundir.EPOCH_METRICS, math.nan)
        record |= {
            "sparsity": counts["prunable"],
            "sparsity_all": counts["all"],
            "scheduled_sparsity": self.sparsifier.scheduled_sparsity,
        }
        record |= {"lr": float(self.sparsifier.optimizer.param_groups[0]["lr"])} | {k: float(v) for k, v in figures.items()}
        record = {"epoch": epoch, "step": self.sparsifier.step} | record
        with rundir.open_metrics(self.path, append=True) as handle:
            rundir.append_record(handle, record)
        self.history.append(record)
        return record

    def finish(self, correct: Any = None, labels: Any = None) -> rundir.Summary:
        """Write ``test_correct.bin`` and ``summary.json``.

        ``correct``: one bool per test example, in a fixed order; ``labels``: their labels, which
        fingerprint the test set (with ``run_info``'s dataset and dataset_options) so the report
        pairs this run with others scored on the same examples.
        """
        s, history = self.sparsifier, self.history
        counts = s.sparsity()
        ledger = s.ledger()
        accuracies = [r["test_accuracy"] for r in history if not math.isnan(r["test_accuracy"])]
        best = max(history, key=lambda r: -math.inf if math.isnan(r["test_accuracy"]) else r["test_accuracy"], default=None)
        outcomes = None
        if correct is not None:
            flags = np.asarray(correct, dtype=bool).reshape(-1)
            if labels is None:
                raise UsageError("finish(correct=...) needs the test labels too (labels=...), to fingerprint the test set.")
            fingerprint = fingerprint_test_set(self.info["dataset"], self.info.get("dataset_options", {}), labels)
            outcomes = Outcomes(flags, fingerprint, history[-1]["epoch"] if history else 0)
            rundir.write_outcomes(self.path, outcomes)
        target = s.resolved.config.sparsity if s.prunes else 0.0
        last = history[-1] if history else {}
        wall = time.perf_counter() - self.started
        summary: dict[str, Any] = {
            "schema_version": rundir.SCHEMA_VERSION,
            "status": "completed",
            "run_dir": str(self.path),
            **{k: self.info[k] for k in DESCRIBED},
            "dataset_options": self.info.get("dataset_options", {}),
            "model_options": {},
            "own_loop": True,
            "pruner": s.resolved.pruner.name,
            "pruner_options": s.resolved.pruner_opts,
            "targets": s.selection.describe(),
            "schedule": {
                "kind": s.schedule.kind,
                "warmup": s.schedule.warmup,
                "end": s.schedule.end,
                "frequency": s.schedule.frequency,
                "mask_updates": s.mask_updates,
            },
            "steps": s.step,
            "final_test_accuracy": accuracies[-1] if accuracies else math.nan,
            "best_test_accuracy": max(accuracies) if accuracies else math.nan,
            "best_epoch": best["epoch"] if best else 0,
            "final_train_loss": last.get("train_loss", math.nan),
            "final_test_loss": last.get("test_loss", math.nan),
            "test_examples": outcomes.n if outcomes else 0,
            "test_set_fingerprint": outcomes.fingerprint if outcomes else "",
            "target_sparsity": target,
            "achieved_sparsity": counts["prunable"],
            "achieved_sparsity_all_parameters": counts["all"],
            "sparsity_counts": {k: v for k, v in counts.items() if k != "per_layer"},
            "target_reached": abs(counts["prunable"] - target) <= TARGET_TOLERANCE,
            "parameter_counts": {"total": ledger["parameter_count"], "prunable": ledger["prunable_weights"]},
            "wall_time_s": wall,
            "ledger": ledger,
            "samplers": {},
            "samplers_skipped": {},
            "warnings": list(s.warnings),
            "prunekit_version": __version__,
            "trackers": {},
        }
        checked = rundir.check_summary(summary)
        rundir.write_summary(self.path, checked)
        return checked
