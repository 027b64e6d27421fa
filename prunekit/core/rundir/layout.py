"""The run directory: its file names, the summary schema, and the one reader and writer.

Every module that writes or reads a run directory (the runner, the matrix, the
report) goes through this one. A run directory holds:

- ``config.yaml``: the resolved settings (written before training);
- ``metrics.jsonl``: one line per epoch, appended as epochs finish;
- ``timeline.jsonl``: memory samples, appended as they are taken;
- ``test_correct.bin``: which test examples the final model got right, bit-packed,
  with the test set's fingerprint (:mod:`prunekit.core.rundir.outcomes`); written
  atomically just before the summary;
- ``checkpoint.pt``: the latest checkpoint (atomically, every ``checkpoint_every``
  epochs, at the end, and when stopped by SIGTERM/SIGUSR1); see :mod:`prunekit.core.rundir.checkpoint`;
- ``failure.json``: why a run failed (written instead of a summary);
- ``trackers.json``: what each experiment tracker asked to keep for a resumed run
  (e.g. the MLflow run id), only when trackers are enabled;
- ``summary.json``: written atomically, last. A run directory without it is incomplete;
- ``run.lock``: locked while a process writes there (:mod:`prunekit.core.rundir.runlock`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import IO, Any, TypedDict

import yaml
from typing_extensions import NotRequired

from prunekit.core.config import yamlfile
from prunekit.core.config.settings import FIELD_NAMES, config_from_mapping
from prunekit.core.rundir import files
from prunekit.core.rundir.files import append_jsonl, write_atomic, write_json, write_yaml
from prunekit.core.rundir.outcomes import Outcomes, decode, encode
from prunekit.errors import UsageError

CONFIG = "config.yaml"
METRICS = "metrics.jsonl"
TIMELINE = "timeline.jsonl"
SUMMARY = "summary.json"
OUTCOMES = "test_correct.bin"
FAILURE = "failure.json"
TRACKERS = "trackers.json"
CHECKPOINT = "checkpoint.pt"

#: A matrix directory: ``matrix.json`` (the spec and its runs), ``runs/<id>/`` (one run
#: directory each), ``logs/<id>.log`` (each child's output) and, with ``--executor slurm``,
#: ``slurm/`` (submitit's job files and Slurm's own job logs).
MATRIX = "matrix.json"
RUNS = "runs"
LOGS = "logs"
SLURM = "slurm"

#: Version of the ``summary.json`` schema; bumped when a key changes meaning or goes away.
SCHEMA_VERSION = 1
#: The figures of each ``metrics.jsonl`` record (one line per epoch) besides ``epoch`` and ``step``.
EPOCH_METRICS = (
    "test_accuracy",
    "train_accuracy",
    "test_loss",
    "train_loss",
    "sparsity",
    "sparsity_all",
    "scheduled_sparsity",
    "lr",
    "epoch_time_s",
    "data_wait_s",
)

FINISHED, FAILED, INTERRUPTED, NEW = "finished", "failed", "interrupted", "new"
#: A ``summary.json`` that does not parse or is not a completed summary: redone like an interrupted run.
MALFORMED = "malformed"


class Schedule(TypedDict):
    kind: str
    warmup: int
    end: int
    frequency: int
    mask_updates: int


class ParameterCounts(TypedDict):
    total: int
    prunable: int


class Summary(TypedDict):
    """``summary.json``: accuracies in percent, sparsities as fractions, memory in bytes."""

    schema_version: int
    status: str
    run_dir: str
    model: str
    model_options: dict[str, Any]
    dataset: str
    dataset_options: dict[str, Any]
    optimizer: str
    optimizer_options: dict[str, Any]
    lr: float
    weight_decay: float
    pruner: str
    pruner_options: dict[str, Any]
    schedule: Schedule
    seed: int
    epochs: int
    batch_size: int
    steps: int
    skipped_steps: NotRequired[int]  # batches whose optimizer step a GradScaler skipped (inf/NaN gradients); added later
    amp: bool
    compile: NotRequired[bool]  # added in schema 1 later: older runs lack them
    channels_last: NotRequired[bool]
    final_test_accuracy: float
    best_test_accuracy: float
    best_epoch: int
    final_train_loss: float
    final_test_loss: float
    test_examples: int  # scored at the final epoch; which were right: test_correct.bin
    test_set_fingerprint: str  # prunekit.core.rundir.outcomes.fingerprint_test_set
    target_sparsity: float
    achieved_sparsity: float
    achieved_sparsity_all_parameters: float
    sparsity_counts: dict[str, Any]
    target_reached: bool
    parameter_counts: ParameterCounts
    wall_time_s: float
    train_time_s: float
    eval_time_s: float
    mean_step_time_s: float
    data_wait_s: float
    data_wait_fraction: float
    data_loader: dict[str, Any]
    ledger: dict[str, Any]
    samplers: dict[str, Any]
    samplers_skipped: dict[str, str]
    warnings: list[str]
    distributed: dict[str, Any]
    environment: dict[str, Any]
    prunekit_version: str
    trackers: dict[str, Any]
    resumed_at_epochs: NotRequired[list[int]]
    structure: NotRequired[dict[str, Any]]  # N:M runs: MaskPruner.structure_summary
    flops: NotRequired[dict[str, Any]]  # prunekit.core.measure.flops.flops_section (absent from older runs)


#: Keys a report needs, and those of them that must be numbers.
NUMBER_KEYS = ("final_test_accuracy", "best_test_accuracy", "target_sparsity", "achieved_sparsity", "wall_time_s")
NAME_KEYS = ("model", "dataset", "optimizer", "pruner")
REQUIRED_KEYS = (*NUMBER_KEYS, *NAME_KEYS, "target_reached", "seed", "ledger", "samplers")
#: The range each number key must lie in (accuracies in percent, sparsities as fractions).
NUMBER_RANGES = {
    "final_test_accuracy": (0.0, 100.0),
    "best_test_accuracy": (0.0, 100.0),
    "target_sparsity": (0.0, 1.0),
    "achieved_sparsity": (0.0, 1.0),
    "wall_time_s": (0.0, 1e9),
}


class Malformed(Exception):
    """A run directory's file exists but cannot be used."""


# ---------------------------------------------------------------- writing


def write_config(run_dir: Path, settings: dict[str, Any]) -> None:
    write_yaml(Path(run_dir) / CONFIG, settings)


def open_metrics(run_dir: Path, append: bool = False) -> IO[str]:
    """The metrics file, opened for one line per epoch with :func:`append_record`: new, or
    (``append``) continued after what a resumed run already wrote."""
    return open(Path(run_dir) / METRICS, "a" if append else "w", encoding="utf-8")


def append_record(handle: IO[str], record: dict[str, Any]) -> None:
    append_jsonl(handle, record)


def write_outcomes(run_dir: Path, outcomes: Outcomes) -> None:
    """Atomically, before the summary: which test examples the final model got right."""
    write_atomic(Path(run_dir) / OUTCOMES, encode(outcomes))


def write_summary(run_dir: Path, summary: Summary) -> None:
    """Atomically, last: from now on the run counts as finished (a failure record of an earlier,
    resumed attempt is removed)."""
    write_json(Path(run_dir) / SUMMARY, summary)
    (Path(run_dir) / FAILURE).unlink(missing_ok=True)


def write_failure(run_dir: Path, record: dict[str, Any]) -> None:
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    write_json(run_dir / FAILURE, record)


def remove_stale_temps(run_dir: Path) -> None:
    """Remove the hidden temporary files a writer killed mid-write left beside the atomic files."""
    for name in (CONFIG, CHECKPOINT, OUTCOMES, FAILURE, TRACKERS, SUMMARY):
        files.remove_stale_temps(Path(run_dir) / name)


# ---------------------------------------------------------------- reading


def read_json(path: Path) -> Any:
    """A JSON file; Malformed (naming the file) if it cannot be read or parsed."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except ValueError as exc:
        raise Malformed(f"{Path(path).name} is not valid JSON ({exc})") from None
    except OSError as exc:
        raise Malformed(f"{Path(path).name} cannot be read ({exc.strerror or exc})") from None


def check_summary(summary: Any) -> Summary:
    """``summary`` if it has what a report needs, else Malformed saying what is wrong."""
    if not isinstance(summary, dict):
        raise Malformed(f"{SUMMARY} is not a JSON object")
    missing = [k for k in REQUIRED_KEYS if k not in summary]
    if missing:
        raise Malformed(f"{SUMMARY} lacks {', '.join(missing)}")
    bad = [k for k in NUMBER_KEYS if not isinstance(summary[k], (int, float)) or isinstance(summary[k], bool)]
    if bad:
        raise Malformed(f"{SUMMARY} has non-numeric {', '.join(bad)}")
    for key, (low, high) in NUMBER_RANGES.items():
        if not low <= summary[key] <= high:
            raise Malformed(f"{SUMMARY} has {key} {summary[key]!r}, outside [{low:g}, {high:g}]")
    names = [k for k in NAME_KEYS if not isinstance(summary[k], str)]
    if names:
        raise Malformed(f"{SUMMARY} has non-text {', '.join(names)}")
    if not isinstance(summary["seed"], int) or isinstance(summary["seed"], bool) or summary["seed"] < 0:
        raise Malformed(f"{SUMMARY} has seed {summary['seed']!r}, not an integer >= 0")
    if not isinstance(summary["target_reached"], bool):
        raise Malformed(f"{SUMMARY} has target_reached {summary['target_reached']!r}, not true or false")
    if not isinstance(summary["ledger"], dict) or not isinstance(summary["samplers"], dict):
        raise Malformed(f"{SUMMARY}'s ledger or samplers is not an object")
    if not all(isinstance(v, dict) for v in summary["samplers"].values()):
        raise Malformed(f"{SUMMARY}'s samplers are not objects")
    return summary  # type: ignore[return-value]


def check_settings(settings: dict[str, Any], where: str) -> dict[str, Any]:
    """``settings`` (a config record) if each RunConfig setting in it has its type, else Malformed naming ``where``."""
    try:
        config_from_mapping({k: v for k, v in settings.items() if k in FIELD_NAMES})
    except UsageError as exc:
        raise Malformed(f"{where}: {str(exc).rstrip('.')}") from None
    return settings


def read_summary(run_dir: Path) -> Summary:
    return check_summary(read_json(Path(run_dir) / SUMMARY))


def read_outcomes(run_dir: Path) -> Outcomes | None:
    """The per-example test results, ``None`` if the run has none (older runs); Malformed if unusable."""
    path = Path(run_dir) / OUTCOMES
    if not path.exists():
        return None
    try:
        return decode(path.read_bytes(), OUTCOMES)
    except OSError as exc:
        raise Malformed(f"{OUTCOMES} cannot be read ({exc.strerror or exc})") from None
    except ValueError as exc:
        raise Malformed(str(exc)) from None


def read_failure(run_dir: Path) -> dict[str, Any]:
    failure = read_json(Path(run_dir) / FAILURE)
    if not isinstance(failure, dict):
        raise Malformed(f"{FAILURE} is not a JSON object")
    return failure


def read_config(run_dir: Path) -> dict[str, Any] | None:
    """The resolved settings, ``None`` if there is no config file; Malformed if unreadable."""
    path = Path(run_dir) / CONFIG
    if not path.exists():
        return None
    try:
        data = yamlfile.load(yamlfile.read_text(path, CONFIG))
    except UsageError as exc:
        raise Malformed(str(exc).rstrip(".")) from None
    except (yaml.YAMLError, yamlfile.TooLarge) as exc:
        raise Malformed(f"{CONFIG} {yamlfile.describe_error(exc)}") from None
    return data if isinstance(data, dict) else None


def read_jsonl(path: Path, notes: list[str] | None = None, max_records: int | None = None) -> list[dict[str, Any]]:
    """Complete JSON lines of ``path``; a bad line is noted and skipped (the file may be cut short).

    With ``max_records``, long files are thinned to about that many evenly spaced lines.
    """
    path = Path(path)
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
            if notes is not None:
                notes.append(f"{path.parent.name}: {path.name} line {number} is not valid JSON; skipped.")
            continue
        if isinstance(record, dict):
            records.append(record)
    return records


def read_metrics(run_dir: Path, notes: list[str] | None = None) -> list[dict[str, Any]]:
    return read_jsonl(Path(run_dir) / METRICS, notes)


def read_timeline(run_dir: Path, notes: list[str] | None = None, max_records: int | None = None) -> list[dict[str, Any]]:
    return read_jsonl(Path(run_dir) / TIMELINE, notes, max_records)


def is_run_dir(path: Path) -> bool:
    """Whether ``path`` holds any file a run writes."""
    return any((Path(path) / name).exists() for name in (SUMMARY, FAILURE, CONFIG))


def state(run_dir: Path) -> str:
    """finished (a completed summary), malformed (a summary that is not one), failed (a failure
    record), interrupted (neither) or new (no directory)."""
    run_dir = Path(run_dir)
    if (run_dir / SUMMARY).exists():
        try:
            completed = read_summary(run_dir).get("status") == "completed"
        except Malformed:
            completed = False
        return FINISHED if completed else MALFORMED
    if (run_dir / FAILURE).exists():
        return FAILED
    if run_dir.exists():
        return INTERRUPTED
    return NEW
