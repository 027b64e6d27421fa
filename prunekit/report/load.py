"""Read run directories as written by ``prunekit run`` and ``prunekit matrix``.

Only files runs wrote are read. A directory that is incomplete (no ``summary.json``
and no ``failure.json``) or malformed is reported by name and left out; it never
stops the report.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

SUMMARY, FAILURE, CONFIG, METRICS, TIMELINE, MATRIX = (
    "summary.json", "failure.json", "config.yaml", "metrics.jsonl", "timeline.jsonl", "matrix.json",
)
#: Timeline samples kept per run for the figures.
TIMELINE_POINTS = 5000
#: Directories inside a folder of runs that are not runs.
NOT_RUNS = ("figures", "logs")

_NUMBER_KEYS = ("final_test_accuracy", "best_test_accuracy", "target_sparsity", "achieved_sparsity", "wall_time_s")
_REQUIRED = (*_NUMBER_KEYS, "target_reached", "model", "dataset", "optimizer", "pruner", "seed", "ledger", "samplers")


class Malformed(Exception):
    """A run directory's file cannot be used."""


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

    @property
    def completed(self) -> bool:
        return self.status == "completed"

    def get(self, key: str, default: Any = None) -> Any:
        """A summary value for completed runs, else the config's."""
        if self.summary is not None and key in self.summary:
            return self.summary[key]
        return self.config.get(key, default)

    @property
    def target(self) -> float:
        if self.summary is not None:
            return float(self.summary["target_sparsity"])
        return 0.0 if self.config.get("pruner") == "none" else float(self.config.get("sparsity", 0.0))


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


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise Malformed(f"{path.name} is not valid JSON ({exc})") from None
    except OSError as exc:
        raise Malformed(f"{path.name} cannot be read ({exc.strerror or exc})") from None


def _read_jsonl(path: Path, notes: list[str], name: str, max_records: int | None = None) -> list[dict[str, Any]]:
    """Complete JSON lines; a bad line is noted and skipped (the file may be cut short).

    With ``max_records``, long files are thinned to about that many evenly spaced lines
    (timelines of long runs; their exact peaks are in summary.json anyway).
    """
    if not path.exists():
        return []
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    stride = max(1, -(-len(lines) // max_records)) if max_records else 1
    records = []
    for number, line in enumerate(lines, 1):
        if (number - 1) % stride or not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            notes.append(f"{name}: {path.name} line {number} is not valid JSON; skipped.")
            continue
        if isinstance(record, dict):
            records.append(record)
    return records


def _check_summary(summary: Any) -> dict[str, Any]:
    if not isinstance(summary, dict):
        raise Malformed("summary.json is not a JSON object")
    missing = [k for k in _REQUIRED if k not in summary]
    if missing:
        raise Malformed(f"summary.json lacks {', '.join(missing)}")
    bad = [k for k in _NUMBER_KEYS if not isinstance(summary[k], (int, float)) or isinstance(summary[k], bool)]
    if bad:
        raise Malformed(f"summary.json has non-numeric {', '.join(bad)}")
    if not isinstance(summary["ledger"], dict) or not isinstance(summary["samplers"], dict):
        raise Malformed("summary.json's ledger or samplers is not an object")
    return summary


def _config(path: Path, matrix_configs: dict[str, dict], summary: dict | None) -> dict[str, Any]:
    if path.name in matrix_configs:
        return dict(matrix_configs[path.name])
    config_path = path / CONFIG
    if config_path.exists():
        try:
            data = yaml.safe_load(config_path.read_text(encoding="utf-8"))
        except yaml.YAMLError:
            raise Malformed("config.yaml is not valid YAML") from None
        if isinstance(data, dict):
            return {k: v for k, v in data.items() if k not in ("out", "quiet")}
    if summary is not None:
        keys = ("model", "dataset", "optimizer", "pruner", "seed", "epochs", "batch_size")
        return {k: summary.get(k) for k in keys} | {"sparsity": summary["target_sparsity"]}
    raise Malformed("no config.yaml")


def load_run(path: Path, matrix_configs: dict[str, dict], notes: list[str]) -> RunRecord:
    """One run directory; raises Malformed, or FileNotFoundError if it has no result yet."""
    name = path.name
    if (path / SUMMARY).exists():
        summary = _check_summary(_read_json(path / SUMMARY))
        record = RunRecord(name, path, "completed", _config(path, matrix_configs, summary), summary=summary)
        record.metrics = _read_jsonl(path / METRICS, notes, name)
        record.timeline = _read_jsonl(path / TIMELINE, notes, name, TIMELINE_POINTS)
        return record
    if (path / FAILURE).exists():
        failure = _read_json(path / FAILURE)
        if not isinstance(failure, dict):
            raise Malformed("failure.json is not a JSON object")
        config = failure.get("config") if isinstance(failure.get("config"), dict) else None
        if config is None:
            config = _config(path, matrix_configs, None)
        record = RunRecord(name, path, "failed", config, failure=failure)
        record.metrics = _read_jsonl(path / METRICS, notes, name)
        return record
    raise FileNotFoundError(name)


def run_dirs(directory: Path) -> tuple[list[Path], dict[str, Any] | None]:
    """The run directories under ``directory`` and the matrix record, if any."""
    directory = Path(directory)
    matrix = None
    if (directory / MATRIX).exists():
        try:
            matrix = _read_json(directory / MATRIX)
        except Malformed:
            matrix = None
    if (directory / "runs").is_dir():
        base = directory / "runs"
    elif (directory / SUMMARY).exists() or (directory / CONFIG).exists() or (directory / FAILURE).exists():
        return [directory], matrix
    else:
        base = directory
    dirs = sorted(p for p in base.iterdir() if p.is_dir() and not p.name.startswith(".") and p.name not in NOT_RUNS)
    return dirs, matrix


def load(directory: Path) -> Loaded:
    """Every run under ``directory`` (a matrix directory, a folder of runs, or one run)."""
    directory = Path(directory)
    dirs, matrix = run_dirs(directory)
    matrix_configs: dict[str, dict] = {}
    if isinstance(matrix, dict):
        for entry in matrix.get("runs", []) or []:
            if isinstance(entry, dict) and isinstance(entry.get("config"), dict) and "id" in entry:
                matrix_configs[str(entry["id"])] = entry["config"]
    runs: list[RunRecord] = []
    problems: list[Problem] = []
    notes: list[str] = []
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
