"""Checkpoints of a run in progress: what one holds, atomic saves, validated loads.

A checkpoint is one ``torch.save`` file holding everything a run needs to go on
exactly as if it had never stopped: model, optimizer (with the
:class:`~prunekit.core.train.optim.TrainingOptimizer`'s own state), pruner, gradient
scaler, step and epoch counters, the metrics and sampler aggregates so far, the
training loop's partial-epoch sums, and every random number generator that
decides what happens next (Python, NumPy, torch CPU, every initialised CUDA
device, and the generators that order and augment the training data).

It is written to a temporary file beside the target, fsynced and renamed over
it, so a kill during the write leaves the previous checkpoint intact. It is read
with ``torch.load(weights_only=True)``: tensors and plain containers, never
pickled code, and every field is checked (:mod:`~prunekit.core.rundir.checkpoint_schema`:
types, ranges, a digest of the contents). Anything wrong with it (truncated,
corrupt, crafted, written for another model or run, by another major version of
prunekit) is a :class:`CheckpointError`, a one-line :class:`~prunekit.errors.UsageError`.
"""

from __future__ import annotations

import random
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Protocol

import torch

from prunekit import __version__
from prunekit.core.rundir import checkpoint_schema
from prunekit.core.rundir.files import atomic_path
from prunekit.errors import UsageError

#: Layout version of the file; bumped when fields change meaning.
FORMAT = 1


class OrderState(Protocol):
    """What orders a run's data: a ``torch.Generator``, or a DistributedSampler's epoch counter."""

    def get_state(self) -> torch.Tensor: ...

    def set_state(self, new_state: torch.Tensor, /) -> object: ...


class CheckpointError(UsageError):
    """A checkpoint that cannot be used: one line saying why and what to do."""


@dataclass
class Checkpoint:
    """Everything needed to continue a run exactly.

    ``epoch`` epochs are complete; ``batch`` batches of epoch ``epoch + 1`` are
    done too (0 at an epoch boundary). ``loop`` is the training loop's own
    state (partial-epoch sums, timers, mask-update count); ``files`` the byte
    length of each append-only run file when the checkpoint was taken, so a
    resumed run can cut off what the stopped process wrote afterwards.
    """

    identity: dict[str, Any]
    epoch: int
    step: int
    batch: int
    model: dict[str, Any]
    optimizer: dict[str, Any]
    pruner: dict[str, Any]
    scaler: dict[str, Any] | None
    rng: dict[str, Any]
    loop: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    samplers: dict[str, Any] = field(default_factory=dict)
    files: dict[str, int] = field(default_factory=dict)
    resumed_at_epochs: list[int] = field(default_factory=list)
    ranks: list[dict[str, Any]] = field(default_factory=list)  # under torchrun: see prunekit.core.distributed.rank_state
    format: int = FORMAT
    digest: str = ""  # of every other field, written by save()


def major(version: str) -> str:
    """The major part of a version string: ``"1"`` of ``"1.4.2"``."""
    return version.split(".", 1)[0]


def identity_of(module: torch.nn.Module, /, settings: dict[str, Any] | None = None, **names: str) -> dict[str, Any]:
    """What a checkpoint must match: prunekit's version, the named components (model, optimizer, pruner,
    ...), the shape of every tensor in ``module``'s state and what decides a run's result among its
    ``settings`` (:func:`~prunekit.core.rundir.checkpoint_schema.run_settings`); and, advisory, the device
    type and torch's thread count (see :func:`advisories`)."""
    shapes = {key: list(value.shape) for key, value in module.state_dict().items()}
    identity = {"prunekit": __version__, **names, "torch_threads": torch.get_num_threads(), "shapes": shapes}
    return identity | ({"settings": checkpoint_schema.run_settings(settings)} if settings is not None else {})


#: Identity entries that may differ on resume: the run goes on, but no longer bit-identical.
ADVISORY = ("device", "torch_threads")


def advisories(saved: dict[str, Any], expected: dict[str, Any]) -> list[str]:
    """One warning per :data:`ADVISORY` entry that differs: the resumed run continues exactly in
    every state, but its floating-point sums (and so the last bits of its results) follow the new
    device or thread count rather than the stopped run's."""
    return [
        f"the checkpoint was written with {key} {saved[key]} and the run resumes with {key} {expected[key]}: "
        "it continues, but is not bit-identical to an uninterrupted run"
        for key in ADVISORY
        if key in saved and key in expected and saved[key] != expected[key]
    ]


def check_identity(saved: dict[str, Any], expected: dict[str, Any], path: Path) -> None:
    """Raise CheckpointError unless ``saved`` (from the file) fits ``expected`` (this run)."""
    if major(str(saved.get("prunekit", ""))) != major(__version__):
        raise CheckpointError(
            f"{path} was written by prunekit {saved.get('prunekit', '?')}; this is prunekit {__version__} "
            f"(major version {major(__version__)}): resume it with that version, or start the run again."
        )
    for key, value in expected.items():
        if key in ("prunekit", "shapes", "settings", *ADVISORY):
            continue
        if saved.get(key) != value:
            raise CheckpointError(
                f"{path} was written for {key} '{saved.get(key)}', but this run uses {key} '{value}'; "
                "resume with the checkpoint of this run, or start the run again."
            )
    if "settings" in expected and (differ := checkpoint_schema.settings_mismatch(saved.get("settings"), expected["settings"])):
        raise CheckpointError(f"{path} {differ}; resume with this run's own checkpoint, or start the run again.")
    if "shapes" in expected and saved.get("shapes") != expected["shapes"]:
        mine, theirs = expected.get("shapes") or {}, saved["shapes"] if isinstance(saved.get("shapes"), dict) else {}
        differ = next((k for k in sorted(set(mine) | set(theirs)) if mine.get(k) != theirs.get(k)), "?")
        raise CheckpointError(
            f"{path} holds another model: tensor '{differ}' has shape {theirs.get(differ)} there and "
            f"{mine.get(differ)} here; resume with the checkpoint of this run, or start the run again."
        )


def save(path: Path, checkpoint: Checkpoint) -> int:
    """Write ``checkpoint`` atomically (temp file, fsync, rename); return its size in bytes."""
    data = asdict(checkpoint)
    data["digest"] = checkpoint_schema.digest(data)
    with atomic_path(Path(path)) as tmp:
        torch.save(data, tmp)
        size = tmp.stat().st_size
    return size


def load(path: Path) -> Checkpoint:
    """Read a checkpoint (tensors and plain data only), on the CPU.

    Raises CheckpointError for a missing, truncated, corrupt or crafted file (a field of
    the wrong type or range, contents that do not match their digest) and for one written
    in another layout or by another major version of prunekit.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path} does not exist: this run has no checkpoint to resume from; start it again.")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated zip, bad pickle, forbidden global, ...
        reason = " ".join(str(exc).split())[:160] or type(exc).__name__
        raise CheckpointError(f"{path} is truncated or corrupt ({reason}); it cannot be resumed: start the run again.") from None
    names = {f.name for f in fields(Checkpoint)}
    required = {f.name for f in fields(Checkpoint) if f.default is MISSING and f.default_factory is MISSING}
    if not isinstance(data, dict) or not required <= set(data):
        raise CheckpointError(f"{path} is not a prunekit checkpoint; it cannot be resumed: start the run again.")
    if data.get("format") != FORMAT:
        raise CheckpointError(
            f"{path} has checkpoint format {data.get('format')!r}; this prunekit reads format {FORMAT}: "
            "resume it with the prunekit that wrote it, or start the run again."
        )
    identity = data.get("identity")
    if not isinstance(identity, dict):
        raise CheckpointError(f"{path} is not a prunekit checkpoint (no identity); start the run again.")
    check_identity(identity, {"prunekit": __version__}, path)
    found = checkpoint_schema.problem(data)
    if found:
        raise CheckpointError(f"{path} {found}; it cannot be resumed: start the run again.")
    return Checkpoint(**{k: v for k, v in data.items() if k in names})


def capture_rng(generators: dict[str, OrderState | torch.Tensor]) -> dict[str, Any]:
    """The state of every random number generator a run draws from.

    ``generators`` are the run's own (data order, augmentation), by name, or
    states taken from them earlier.
    CUDA states are taken from every device once CUDA is initialised (a run
    that never touched CUDA has none that matter).
    """
    version, internal, gauss = random.getstate()
    cuda_used = torch.cuda.is_available() and torch.cuda.is_initialized()  # type: ignore[no-untyped-call]
    state: dict[str, Any] = {
        "python": [version, list(internal), gauss],
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if cuda_used else [],
        "generators": {name: g.clone() if isinstance(g, torch.Tensor) else g.get_state() for name, g in generators.items()},
    }
    try:
        import numpy
    except ImportError:
        state["numpy"] = None
    else:
        kind, keys, pos, has_gauss, cached = numpy.random.get_state(legacy=True)
        assert not isinstance(keys, str)
        state["numpy"] = {
            "kind": kind,
            "keys": torch.from_numpy(keys.astype("int64")),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached": float(cached),
        }
    return state


def restore_rng(state: dict[str, Any], generators: dict[str, OrderState]) -> None:
    """Put back what :func:`capture_rng` took; ``generators`` must have the same names."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    torch.set_rng_state(state["torch"])
    cuda = state.get("cuda") or []
    if cuda and torch.cuda.is_available():
        for index in range(min(len(cuda), torch.cuda.device_count())):
            torch.cuda.set_rng_state(cuda[index], index)
    saved = state.get("generators", {})
    if set(saved) != set(generators):
        raise CheckpointError(
            f"the checkpoint's data generators ({', '.join(sorted(saved)) or 'none'}) do not match this run's "
            f"({', '.join(sorted(generators)) or 'none'}); start the run again."
        )
    for name, generator in generators.items():
        generator.set_state(saved[name])
    numpy_state = state.get("numpy")
    if numpy_state is not None:
        import numpy

        keys = numpy_state["keys"].numpy().astype("uint32")
        numpy.random.set_state((numpy_state["kind"], keys, numpy_state["pos"], numpy_state["has_gauss"], numpy_state["cached"]))


def capture(
    *,
    identity: dict[str, Any],
    epoch: int,
    step: int,
    batch: int,
    model: torch.nn.Module,
    optimizer: Any,
    pruner: Any,
    generators: dict[str, OrderState | torch.Tensor] | None = None,
    **rest: Any,
) -> Checkpoint:
    """A checkpoint of live components (``optimizer`` a TrainingOptimizer, ``pruner`` a Pruner).

    The GradScaler is the optimizer's ``scaler``. ``generators`` are the data
    generators, or their states (as at the start of an epoch resumed part-way).
    ``rest`` fills the other fields (``loop``, ``history``, ``samplers``,
    ``files``, ``resumed_at_epochs``). Tensors are referenced, not copied:
    save the checkpoint before training goes on.
    """
    return Checkpoint(
        identity=identity,
        epoch=epoch,
        step=step,
        batch=batch,
        model=model.state_dict(),
        optimizer=optimizer.state_dict(),
        pruner=pruner.state_dict(),
        scaler=scaler.state_dict() if (scaler := getattr(optimizer, "scaler", None)) is not None else None,
        rng=capture_rng(generators or {}),
        **rest,
    )


def restore(
    checkpoint: Checkpoint,
    *,
    model: torch.nn.Module,
    optimizer: Any,
    pruner: Any,
    generators: dict[str, OrderState] | None = None,
    path: Path | str = "checkpoint",
) -> None:
    """Load ``checkpoint`` into freshly built components and restore every RNG.

    Call after building the run exactly as it was first built (same settings
    and seed), so every component has the shape the checkpoint expects.
    """
    try:
        model.load_state_dict(checkpoint.model)
        optimizer.load_state_dict(checkpoint.optimizer)
        pruner.load_state_dict(checkpoint.pruner)
        scaler = getattr(optimizer, "scaler", None)
        if (checkpoint.scaler is None) != (scaler is None):
            raise ValueError("mixed precision (--amp) differs from the run that wrote it")
        if scaler is not None:
            scaler.load_state_dict(checkpoint.scaler)
    except (KeyError, ValueError, RuntimeError, TypeError) as exc:
        reason = " ".join(str(exc).split())[:200]
        raise CheckpointError(f"{path} does not fit this run ({reason}); start the run again.") from None
    restore_rng(checkpoint.rng, generators or {})
