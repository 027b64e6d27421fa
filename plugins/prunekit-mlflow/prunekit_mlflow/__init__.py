"""prunekit tracker ``mlflow``: a run as an MLflow run; a matrix as one MLflow experiment."""

from __future__ import annotations

from prunekit.api import Option, Register, hookimpl, memory_interval_option
from prunekit_mlflow.tracker import CREDENTIALS, MlflowTracker

__all__ = ["MlflowTracker", "register_trackers"]


@hookimpl
def register_trackers(register: Register) -> None:
    register(
        "mlflow",
        MlflowTracker,
        description="MLflow: parameters, metrics per epoch, tags, summary and figures as artefacts, run status",
        options=(
            Option("tracking_uri", str, "", "tracking server or store [default: MLFLOW_TRACKING_URI, else MLflow's default]"),
            Option("experiment", str, "", "experiment name [default: the matrix name, else 'prunekit']"),
            Option("run_name", str, "", "run name [default: the run directory's name]"),
            Option("artifacts", bool, True, "upload config.yaml, metrics.jsonl, timeline.jsonl and the summary"),
            Option("figures", bool, True, "upload figures of accuracy, sparsity and memory"),
            memory_interval_option(5.0),
        ),
        credentials=CREDENTIALS,
    )
