"""The MLflow tracker, through ``MlflowClient`` (explicit run ids: no global active run)."""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING, Any

from prunekit.api import EPOCH_METRICS, RunEnd, RunStart

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities import Metric

#: Environment variables MLflow reads secrets from (redacted by prunekit wherever they appear).
CREDENTIALS = (
    "MLFLOW_TRACKING_TOKEN",
    "MLFLOW_TRACKING_PASSWORD",
    "AWS_SECRET_ACCESS_KEY",
    "AZURE_STORAGE_ACCESS_KEY",
    "AZURE_STORAGE_CONNECTION_STRING",
)
STATUS = {"completed": "FINISHED", "failed": "FAILED", "interrupted": "KILLED"}
FINAL_METRICS = (
    "final_test_accuracy",
    "best_test_accuracy",
    "best_epoch",
    "final_train_loss",
    "final_test_loss",
    "target_sparsity",
    "achieved_sparsity",
    "achieved_sparsity_all_parameters",
    "wall_time_s",
    "train_time_s",
    "mean_step_time_s",
)
PARAM_LIMIT = 6000  # MLflow's longest parameter value
DEFAULT_EXPERIMENT = "prunekit"


def flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}``."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict) and value:
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def _now_ms() -> int:
    return int(time.time() * 1000)


class MlflowTracker:
    """One prunekit run -> one MLflow run (continued when the prunekit run resumes)."""

    def __init__(
        self,
        tracking_uri: str = "",
        experiment: str = "",
        run_name: str = "",
        artifacts: bool = True,
        figures: bool = True,
        memory_interval_s: float = 5.0,
    ) -> None:
        self.tracking_uri = tracking_uri or None  # None: MLFLOW_TRACKING_URI, else MLflow's default
        self.experiment = experiment
        self.run_name = run_name
        self.artifacts = artifacts
        self.figures = figures
        self.memory_interval_s = memory_interval_s or None
        self.client: MlflowClient | None = None
        self.run_id = ""
        self.epochs: list[dict[str, Any]] = []
        self.memory: list[dict[str, Any]] = []
        self.pending: list[Metric] = []  # memory metrics, sent in batches
        self.started_ms = _now_ms()

    def start(self, run: RunStart) -> dict[str, Any]:
        from mlflow import MlflowClient
        from mlflow.entities import Param

        # MLflow prints the run's URL, user:password of the tracking URI included, to stdout when a
        # run ends; prunekit's output names the run instead.
        os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
        self.client = MlflowClient(tracking_uri=self.tracking_uri)
        self.started_ms = _now_ms()
        experiment_id = self._experiment(self.experiment or run.group or DEFAULT_EXPERIMENT)
        previous = run.previous.get("run_id")
        c = run.config
        tags = {
            "model": c.get("model"),
            "dataset": c.get("dataset"),
            "optimizer": c.get("optimizer"),
            "pruner": c.get("pruner"),
            "target_sparsity": run.target_sparsity,
            "prunekit_version": run.prunekit_version,
            "prunekit.run_dir": str(run.run_dir),
            **({"prunekit.group": run.group} if run.group else {}),
        }
        if previous:  # a resumed prunekit run continues its MLflow run
            self.run_id = previous
            self.client.update_run(self.run_id, status="RUNNING")
            self.client.set_tag(self.run_id, "prunekit.resumed", "true")
        else:
            made = self.client.create_run(
                experiment_id, run_name=self.run_name or run.name, tags={k: str(v) for k, v in tags.items() if v is not None}
            )
            self.run_id = made.info.run_id
            params = [Param(k, str(v)[:PARAM_LIMIT]) for k, v in sorted(flatten(c).items()) if k != "quiet"]
            for i in range(0, len(params), 100):  # MLflow takes at most 100 parameters per batch
                self.client.log_batch(self.run_id, params=params[i : i + 100])
        return {"run_id": self.run_id, "experiment_id": experiment_id}

    @property
    def _client(self) -> MlflowClient:
        """The client ``start`` opened (the core calls nothing else before ``start``)."""
        if self.client is None:
            raise RuntimeError("the mlflow tracker was not started")
        return self.client

    def _experiment(self, name: str) -> str:
        found = self._client.get_experiment_by_name(name)
        if found is not None:
            existing: str = found.experiment_id  # mlflow leaves Experiment's properties untyped
            return existing
        try:
            made: str = self._client.create_experiment(name)
            return made
        except Exception:  # another run of the matrix created it first
            found = self._client.get_experiment_by_name(name)
            if found is None:
                raise
            other: str = found.experiment_id
            return other

    def log_epoch(self, record: dict[str, Any]) -> None:
        from mlflow.entities import Metric

        self.epochs.append(record)
        now, step = _now_ms(), int(record["epoch"])
        metrics = [Metric(k, float(record[k]), now, step) for k in EPOCH_METRICS if record.get(k) is not None]
        metrics += [Metric(f"layer_sparsity/{name}", float(v), now, step) for name, v in record.get("layer_sparsity", {}).items()]
        self._send(metrics)

    def log_memory(self, sample: dict[str, Any]) -> None:
        from mlflow.entities import Metric

        self.memory.append(sample)
        when = self.started_ms + int(1000 * float(sample["t"]))
        self.pending += [
            Metric(f"memory/{sample['sampler']}/{name}", float(v), when, int(sample["step"]))
            for name, v in sample["figures"].items()
        ]

    def _send(self, metrics: list[Metric]) -> None:
        metrics, self.pending = self.pending + metrics, []
        for i in range(0, len(metrics), 1000):  # MLflow takes at most 1000 metrics per batch
            self._client.log_batch(self.run_id, metrics=metrics[i : i + 1000])

    def finish(self, end: RunEnd) -> None:
        from mlflow.entities import Metric, RunTag

        try:
            now, summary = _now_ms(), end.summary
            metrics = []
            tags = [RunTag("status", end.status)] + ([RunTag("status_reason", end.reason)] if end.reason else [])
            if summary is not None:
                last = self.epochs[-1]["epoch"] if self.epochs else summary.get("epochs", 0)
                metrics += [
                    Metric(k, float(summary[k]), now, last) for k in FINAL_METRICS if isinstance(summary.get(k), (int, float))
                ]
                metrics += [
                    Metric(f"ledger/{k}", float(v), now, last)  # the summary's keys: bytes, counts, ratios
                    for k, v in summary["ledger"].items()
                    if isinstance(v, (int, float))
                ]
                tags += [
                    RunTag("achieved_sparsity", str(summary.get("achieved_sparsity"))),
                    RunTag("target_reached", str(summary.get("target_reached"))),
                ]
            self._send(metrics)
            self._client.log_batch(self.run_id, tags=tags)
            if self.artifacts:
                if summary is not None:
                    self._client.log_dict(self.run_id, summary, "summary.json")
                for path in end.files.values():
                    if path.exists():
                        self._client.log_artifact(self.run_id, str(path))
            if self.figures:
                self._figures()
        finally:  # the status is set even when an upload failed
            self._client.set_terminated(self.run_id, STATUS[end.status])

    def _figures(self) -> None:
        from prunekit_mlflow.figures import epochs_figure, memory_figure

        if self.epochs:
            self._client.log_figure(self.run_id, epochs_figure(self.epochs), "figures/accuracy_sparsity.png")
        if self.memory:
            self._client.log_figure(self.run_id, memory_figure(self.memory), "figures/memory_timeline.png")
