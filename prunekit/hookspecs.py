"""The hooks a prunekit plugin can implement: one per kind of thing it adds.

Each hook receives a ``register`` callback built by the core::

    register(name, factory, *, description="", options=(), **metadata)

The core records which plugin registered each name, refuses duplicates (naming
both plugins) and validates ``options``/``metadata``. What each ``factory`` must
accept and return is documented per hook below and in the README's
"Writing a plugin" section.
"""

from __future__ import annotations

from collections.abc import Callable

import pluggy

hookspec = pluggy.HookspecMarker("prunekit")

Register = Callable[..., None]


@hookspec
def register_models(register: Register) -> None:
    """Register models.

    ``factory(num_classes: int, in_channels: int, image_size: int, **options)
    -> torch.nn.Module``. Metadata: ``weight_decay`` (float, the default
    decay for this model family).
    """


@hookspec
def register_datasets(register: Register) -> None:
    """Register datasets.

    ``factory(data_dir: Path | None, download: bool, seed: int, **options)
    -> prunekit.core.data.DatasetSplits``. Raise ``prunekit.errors.UsageError``
    when the data is missing, saying what was expected where.
    """


@hookspec
def register_optimizers(register: Register) -> None:
    """Register optimizers.

    ``factory(param_groups: list[dict], *, lr: float, weight_decay: float,
    epochs: int, steps_per_epoch: int, **options)`` returns a
    ``torch.optim.Optimizer`` or a ``prunekit.core.optim.TrainingOptimizer``.
    Metadata: ``lr`` (default learning rate), ``weight_decay`` (default decay;
    None uses the model's), ``state`` (names of per-weight
    state tensors it keeps, e.g. ``("exp_avg", "exp_avg_sq")``) and
    ``default_pruner`` (pruner used when the user names none).
    """


@hookspec
def register_pruners(register: Register) -> None:
    """Register pruners.

    ``factory(targets: list[prunekit.core.targets.Target], **options)
    -> prunekit.core.pruner.Pruner``. Metadata: ``requires`` (optimizer state
    names the pruner reads, checked before training starts).
    """


@hookspec
def register_samplers(register: Register) -> None:
    """Register memory samplers.

    ``factory(device: torch.device) -> prunekit.core.sampling.Sampler``.
    Metadata: ``scope`` (``"process"``, ``"device"`` or ``"allocator"``).
    """


@hookspec
def register_trackers(register: Register) -> None:
    """Register experiment trackers (views of a run in TensorBoard, MLflow...).

    ``factory(**options) -> prunekit.core.tracking.Tracker``, called on the
    tracker's own worker thread, never the training thread. Metadata:
    ``credentials`` (names of the environment variables holding the tool's
    secrets; their values are redacted from everything prunekit writes).
    Credentials are never options: read them from the tool's usual
    environment variables or config files.
    """
