"""prunekit tracker ``wandb``: a run as a Weights & Biases run, offline by default.

Offline runs are written under ``RUN_DIR/wandb/offline-run-*``; upload them
later with ``wandb sync RUN_DIR/wandb/offline-run-*``.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from prunekit.api import EPOCH_METRICS, Option, Register, RunEnd, RunStart, hookimpl, memory_interval_option

if TYPE_CHECKING:
    import wandb

CREDENTIALS = ("WANDB_API_KEY",)
EXIT_CODES = {"completed": 0, "failed": 1, "interrupted": 130}  # 130: the shell's code for SIGINT
DEFAULT_PROJECT = "prunekit"
SUMMARY_FILE = "prunekit-summary.json"


class WandbTracker:
    """One prunekit run -> one W&B run; a matrix is a W&B group (and, by default, project)."""

    def __init__(
        self,
        project: str = "",
        entity: str = "",
        mode: Literal["offline", "online", "disabled"] = "offline",
        dir: str = "",
        memory_interval_s: float = 5.0,
        files: bool = True,
    ) -> None:
        self.project, self.entity, self.mode, self.dir = project, entity, mode, dir
        self.memory_interval_s = memory_interval_s or None
        self.files = files
        self.run: wandb.Run | None = None
        self.run_dir: Path | None = None

    def start(self, run: RunStart) -> dict[str, Any]:
        import wandb  # lazily: heavy, and starts W&B's service process

        c = run.config
        previous = run.previous.get("id")
        settings = wandb.Settings(
            console="off", save_code=False, disable_git=True, x_disable_meta=True, x_disable_stats=True, silent=True
        )
        self.run_dir = run.run_dir
        self.run = wandb.init(
            mode=self.mode,
            dir=self.dir or str(run.run_dir),
            project=self.project or run.group or DEFAULT_PROJECT,
            entity=self.entity or None,
            group=run.group,
            name=run.name,
            config=c,
            settings=settings,
            tags=[str(c.get(k)) for k in ("model", "dataset", "optimizer", "pruner") if c.get(k)],
            reinit="create_new",
            **({"id": previous, "resume": "allow"} if previous else {}),
        )
        self.run.define_metric("epoch")
        for name in (*EPOCH_METRICS, "layer_sparsity/*"):
            self.run.define_metric(name, step_metric="epoch")
        self.run.define_metric("memory/t_s")
        self.run.define_metric("memory/*", step_metric="memory/t_s")
        return {"id": self.run.id}

    @property
    def _run(self) -> wandb.Run:
        """The W&B run ``start`` opened (the core calls nothing else before ``start``)."""
        if self.run is None:
            raise RuntimeError("the wandb tracker was not started")
        return self.run

    def log_epoch(self, record: dict[str, Any]) -> None:
        row = {k: record[k] for k in ("epoch", "step", *EPOCH_METRICS) if record.get(k) is not None}
        row |= {f"layer_sparsity/{name}": v for name, v in record.get("layer_sparsity", {}).items()}
        self._run.log(row)

    def log_memory(self, sample: dict[str, Any]) -> None:
        row = {f"memory/{sample['sampler']}/{name}": v for name, v in sample["figures"].items()}
        self._run.log({"memory/t_s": sample["t"], "memory/step": sample["step"], **row})

    def finish(self, end: RunEnd) -> None:
        import wandb

        try:
            self._run.summary["status"] = end.status
            if end.reason:
                self._run.summary["status_reason"] = end.reason
            if end.summary is not None:
                self._run.summary.update({k: v for k, v in end.summary.items() if k not in ("environment", "run_dir")})
                ledger = [[k, v] for k, v in end.summary["ledger"].items() if isinstance(v, (int, float))]
                self._run.log({"ledger_table": wandb.Table(columns=["item", "value"], data=ledger)})
            if self.files:
                self._save(end)
        finally:
            self._run.finish(exit_code=EXIT_CODES[end.status])

    def _save(self, end: RunEnd) -> None:
        """Copies (not links: the run directory may move) of the run's files, saved with the W&B run."""
        target = Path(self._run.dir)
        for name, path in end.files.items():
            if path.exists():
                shutil.copyfile(path, target / name)
                self._run.save(str(target / name), base_path=str(target), policy="now")
        if end.summary is not None:
            (target / SUMMARY_FILE).write_text(json.dumps(end.summary, indent=2, default=str), encoding="utf-8")
            self._run.save(str(target / SUMMARY_FILE), base_path=str(target), policy="now")


@hookimpl
def register_trackers(register: Register) -> None:
    register(
        "wandb",
        WandbTracker,
        description="Weights & Biases (offline by default): config, metrics per epoch, memory, summary, files",
        options=(
            Option("project", str, "", "W&B project [default: the matrix name, else 'prunekit']"),
            Option("entity", str, "", "W&B entity (team or user) [default: W&B's]"),
            Option(
                "mode",
                str,
                "offline",
                "offline (sync later with wandb sync), online or disabled",
                choices=("offline", "online", "disabled"),
            ),
            Option("dir", str, "", "directory W&B writes wandb/ into [default: the run directory]"),
            memory_interval_option(5.0),
            Option("files", bool, True, "save config.yaml, metrics.jsonl, timeline.jsonl and the summary with the run"),
        ),
        credentials=CREDENTIALS,
    )
