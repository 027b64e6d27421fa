"""Read run directories as written by ``prunekit run`` and ``prunekit matrix``.

Only files runs wrote are read. A directory that is incomplete (no ``summary.json``
and no ``failure.json``) or malformed is reported by name and left out; it never
stops the report.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prunekit.core.rundir import layout as rundir
from prunekit.core.rundir.layout import Malformed
from prunekit.core.rundir.outcomes import Outcomes

#: Timeline samples kept per run for the figures.
TIMELINE_POINTS = 5000
#: Directories inside a folder of runs that are not runs.
NOT_RUNS = ("figures", rundir.LOGS)


@dataclass
class RunRecord:
    """One completed or failed run."""

    name: str
    path: Path
    status: str  # "completed" or "failed"
    config: dict[str, Any]
    summary: dict[str, Any] | None = None
    failure: dict[str, Any] | None = None
    metrics: list[dict[str, Any]] = field(default_factory=list)
    timeline: list[dict[str, Any]] = field(default_factory=list)
    #: Which test examples the final model classified correctly (runs since prunekit stores them).
    outcomes: Outcomes | None = None

    @property
    def completed(self) -> bool:
        return self.status == "completed"

    @property
    def completed_summary(self) -> dict[str, Any]:
        """The summary of a completed run (every completed run has one)."""
        if self.summary is None:
            raise TypeError(f"run {self.name} ({self.status}) has no summary")
        return self.summary

    def get(self, key: str, default: Any = None) -> Any:
        """A summary value for completed runs, else the config's."""
        if self.summary is not None and key in self.summary:
            return self.summary[key]
        return self.config.get(key, default)

    @property
    def target(self) -> float:
        if self.summary is not None:
            return float(self.summary["target_sparsity"])
        return float(self.config.get("sparsity", 0.0))  # the matrix records 0 for dense pruners


@dataclass
class Problem:
    """A run directory left out of the report, and why."""

    name: str
    reason: str


@dataclass
class Loaded:
    root: Path
    matrix: dict[str, Any] | None
    runs: list[RunRecord]
    problems: list[Problem]
    notes: list[str] = field(default_factory=list)


def _config(path: Path, matrix_configs: dict[str, dict[str, Any]], summary: dict[str, Any] | None) -> dict[str, Any]:
    if path.name in matrix_configs:
        return rundir.check_settings(dict(matrix_configs[path.name]), f"its settings in {rundir.MATRIX}")
    data = rundir.read_config(path)
    if data is not None:
        return rundir.check_settings({k: v for k, v in data.items() if k not in ("out", "quiet")}, rundir.CONFIG)
    if summary is not None:
        keys = ("model", "dataset", "optimizer", "pruner", "seed", "epochs", "batch_size")
        return {k: summary.get(k) for k in keys} | {"sparsity": summary["target_sparsity"]}
    raise Malformed("no config.yaml")


def _outcomes(path: Path, summary: dict[str, Any], notes: list[str]) -> Outcomes | None:
    """The run's per-example results, if present and consistent with its summary."""
    try:
        outcomes = rundir.read_outcomes(path)
    except Malformed as exc:
        notes.append(f"{path.name}: {exc}; its per-example results are left out.")
        return None
    if outcomes is not None and abs(outcomes.accuracy - float(summary["final_test_accuracy"])) > 1e-6:
        notes.append(
            f"{path.name}: {rundir.OUTCOMES} gives {outcomes.accuracy:.4f}% but summary.json "
            f"{summary['final_test_accuracy']:.4f}%; its per-example results are left out."
        )
        return None
    return outcomes


def load_run(path: Path, matrix_configs: dict[str, dict[str, Any]], notes: list[str]) -> RunRecord:
    """One run directory; raises Malformed, or FileNotFoundError if it has no result yet."""
    name = path.name
    state = rundir.state(path)
    if state == rundir.FINISHED:
        summary = dict(rundir.read_summary(path))
        record = RunRecord(name, path, "completed", _config(path, matrix_configs, summary), summary=summary)
        record.metrics = rundir.read_metrics(path, notes)
        record.timeline = rundir.read_timeline(path, notes, TIMELINE_POINTS)
        record.outcomes = _outcomes(path, summary, notes)
        return record
    if state == rundir.MALFORMED:  # say why: the reader's reason, else the status
        status = rundir.read_summary(path).get("status")
        raise Malformed(f"{rundir.SUMMARY} is not a completed summary (status {status!r})")
    if state == rundir.FAILED:
        failure = rundir.read_failure(path)
        config = failure.get("config") if isinstance(failure.get("config"), dict) else None
        if config is not None:
            config = rundir.check_settings(config, f"its settings in {rundir.FAILURE}")
        else:
            config = _config(path, matrix_configs, None)
        record = RunRecord(name, path, "failed", config, failure=failure)
        record.metrics = rundir.read_metrics(path, notes)
        return record
    raise FileNotFoundError(name)


def _matrix_problem(matrix: Any) -> str | None:
    """What makes a parsed ``matrix.json`` unusable by the report, if anything."""
    if not isinstance(matrix, dict):
        return "not a JSON object"
    for key, kind in (("runs", list), ("skipped", list), ("name", str), ("description", str)):
        if key in matrix and not isinstance(matrix[key], kind):
            return f"'{key}' is not a {'list' if kind is list else 'string'}"
    return None


def run_dirs(directory: Path) -> tuple[list[Path], dict[str, Any] | None]:
    """The run directories under ``directory`` and the matrix record, if any."""
    directory = Path(directory)
    matrix = None
    if (directory / rundir.MATRIX).exists():
        try:
            matrix = rundir.read_json(directory / rundir.MATRIX)
        except Malformed:
            matrix = None
    if (directory / rundir.RUNS).is_dir():
        base = directory / rundir.RUNS
    elif rundir.is_run_dir(directory):
        return [directory], matrix
    else:
        base = directory
    dirs = sorted(p for p in base.iterdir() if p.is_dir() and not p.name.startswith(".") and p.name not in NOT_RUNS)
    return dirs, matrix


def load(directory: Path) -> Loaded:
    """Every run under ``directory`` (a matrix directory, a folder of runs, or one run)."""
    directory = Path(directory)
    dirs, matrix = run_dirs(directory)
    matrix_configs: dict[str, dict[str, Any]] = {}
    notes: list[str] = []
    if matrix is not None and (problem := _matrix_problem(matrix)):
        notes.append(f"{rundir.MATRIX} is malformed ({problem}); it is not used.")
        matrix = None
    if isinstance(matrix, dict):
        for entry in matrix.get("runs", []) or []:
            if isinstance(entry, dict) and isinstance(entry.get("config"), dict) and "id" in entry:
                matrix_configs[str(entry["id"])] = entry["config"]
    runs: list[RunRecord] = []
    problems: list[Problem] = []
    for path in dirs:
        try:
            runs.append(load_run(path, matrix_configs, notes))
        except FileNotFoundError:
            problems.append(Problem(path.name, "incomplete: no summary.json or failure.json (interrupted, or still running)"))
        except Malformed as exc:
            problems.append(Problem(path.name, f"malformed: {exc}"))
    if isinstance(matrix, dict):
        present = {p.name for p in dirs}
        for run_id in matrix_configs:
            if run_id not in present:
                problems.append(Problem(run_id, "not run yet: listed in matrix.json, no run directory"))
    return Loaded(directory, matrix if isinstance(matrix, dict) else None, runs, problems, notes)
