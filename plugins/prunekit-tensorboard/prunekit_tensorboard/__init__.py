"""prunekit tracker ``tensorboard``: a run as TensorBoard event files.

Writes under ``RUN_DIR/tensorboard/`` or, with ``log_dir``, under
``LOG_DIR/<run name>/`` (so the runs of a matrix sit side by side).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from prunekit.api import Option, Register, RunEnd, RunStart, hookimpl, memory_interval_option

if TYPE_CHECKING:
    from torch.utils.tensorboard import SummaryWriter
    from torch.utils.tensorboard.writer import FileWriter

#: Epoch record key -> scalar tag.
EPOCH_TAGS = {
    "test_accuracy": "accuracy/test",
    "train_accuracy": "accuracy/train",
    "test_loss": "loss/test",
    "train_loss": "loss/train",
    "sparsity": "sparsity/prunable",
    "sparsity_all": "sparsity/all_parameters",
    "scheduled_sparsity": "sparsity/scheduled",
    "lr": "lr",
    "epoch_time_s": "time/epoch_s",
}
#: Settings shown as hyper-parameters, and summary figures shown as their metrics.
HPARAMS = (
    "model",
    "dataset",
    "optimizer",
    "pruner",
    "lr",
    "weight_decay",
    "sparsity",
    "schedule",
    "epochs",
    "batch_size",
    "seed",
)
FINAL_METRICS = ("final_test_accuracy", "best_test_accuracy", "achieved_sparsity", "final_test_loss", "wall_time_s")


def ledger_markdown(ledger: dict[str, Any]) -> str:
    """The ledger's byte counts as a Markdown table (per-weight detail left out)."""
    rows = [
        f"| {key} | {value:,} |" if isinstance(value, int) else f"| {key} | {value} |"
        for key, value in ledger.items()
        if not isinstance(value, dict)
    ]
    return "| ledger | bytes |\n|---|---|\n" + "\n".join(rows)


class TensorBoardTracker:
    """Scalars per epoch (step = epoch), memory per sample (step = optimizer step), text and HParams."""

    def __init__(self, log_dir: str = "", memory_interval_s: float = 1.0, layers: bool = True) -> None:
        self.log_dir = log_dir
        self.memory_interval_s = memory_interval_s or None
        self.layers = layers
        self.writer: SummaryWriter | None = None
        self.config: dict[str, Any] = {}
        self.started = time.time()
        self.last_epoch = 0

    def start(self, run: RunStart) -> dict[str, Any]:
        from torch.utils.tensorboard import SummaryWriter  # lazily: heavy

        path = Path(self.log_dir) / run.name if self.log_dir else Path(run.run_dir) / "tensorboard"
        self.writer = SummaryWriter(log_dir=str(path), flush_secs=10)
        self.config = dict(run.config)
        self.started = time.time()
        text = "```\n" + json.dumps(run.config, indent=2, default=str) + "\n```"
        self.writer.add_text("config", text, 0)
        return {"log_dir": str(path)}

    @property
    def _writer(self) -> SummaryWriter:
        """The writer ``start`` opened (the core calls nothing else before ``start``)."""
        if self.writer is None:
            raise RuntimeError("the tensorboard tracker was not started")
        return self.writer

    def log_epoch(self, record: dict[str, Any]) -> None:
        epoch = int(record["epoch"])
        self.last_epoch = epoch
        for key, tag in EPOCH_TAGS.items():
            if record.get(key) is not None:
                self._writer.add_scalar(tag, float(record[key]), epoch)
        if self.layers:
            for name, value in record.get("layer_sparsity", {}).items():
                self._writer.add_scalar(f"layer_sparsity/{name}", float(value), epoch)
        self._writer.flush()

    def log_memory(self, sample: dict[str, Any]) -> None:
        walltime = self.started + float(sample["t"])
        for name, value in sample["figures"].items():
            tag = f"memory/{sample['sampler']}/{name}"
            if name.endswith("_bytes"):  # MiB read better on a chart; the tag says so
                tag, value = tag.removesuffix("_bytes") + "_MiB", value / 2**20
            self._writer.add_scalar(tag, float(value), int(sample["step"]), walltime=walltime)

    def finish(self, end: RunEnd) -> None:
        reason = f": {end.reason}" if end.reason else ""
        self._writer.add_text("status", f"{end.status}{reason}", self.last_epoch)
        summary = end.summary
        if summary is not None:
            self._writer.add_text("ledger", ledger_markdown(summary["ledger"]), self.last_epoch)
            text = "```\n" + json.dumps(summary, indent=2, default=str) + "\n```"
            self._writer.add_text("summary", text, self.last_epoch)
            self._hparams(summary)
        self._writer.close()

    def _hparams(self, summary: dict[str, Any]) -> None:
        from torch.utils.tensorboard.summary import hparams

        values: dict[str, Any] = {**self.config, **{k: summary[k] for k in ("lr", "weight_decay") if k in summary}}
        values["sparsity"] = summary.get("target_sparsity", values.get("sparsity"))
        hp = {
            k: values[k] if isinstance(values[k], (int, float, str, bool)) else str(values[k])
            for k in HPARAMS
            if values.get(k) is not None
        }
        metrics = {f"hparams/{k}": float(summary[k]) for k in FINAL_METRICS if isinstance(summary.get(k), (int, float))}
        # experiment, session start and end, as add_hparams writes them (torch leaves hparams unannotated)
        for item in hparams(hp, metrics):  # type: ignore[no-untyped-call]
            cast("FileWriter", self._writer.file_writer).add_summary(item, self.last_epoch)  # torch types it as None
        for tag, value in metrics.items():
            self._writer.add_scalar(tag, value, self.last_epoch)


@hookimpl
def register_trackers(register: Register) -> None:
    register(
        "tensorboard",
        TensorBoardTracker,
        description="TensorBoard event files: scalars per epoch, per-layer sparsity, memory, ledger, HParams",
        options=(
            Option("log_dir", str, "", "directory to write LOG_DIR/<run name>/ into [default: RUN_DIR/tensorboard]"),
            memory_interval_option(1.0),
            Option("layers", bool, True, "log the sparsity of every prunable layer"),
        ),
    )
