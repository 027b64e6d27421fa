"""The hooks a prunekit plugin can implement: one per kind of thing it adds.

The core calls each hook once per process, when plugins are first loaded (the
first ``prunekit`` command that needs them), and hands it a :class:`Register`
callback. What each kind's ``factory`` receives and returns is a Protocol below;
:mod:`prunekit.core.plugins.kinds` checks every registration against it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import pluggy

if TYPE_CHECKING:
    import torch

    from prunekit.core.config.options import Option
    from prunekit.core.data.loaders import DatasetSplits
    from prunekit.core.measure.sampling import Sampler
    from prunekit.core.sparsity.pruner import Pruner
    from prunekit.core.sparsity.targets import Target
    from prunekit.core.tracking.protocol import Tracker
    from prunekit.core.train.optim import TrainingOptimizer

hookspec = pluggy.HookspecMarker("prunekit")


class Register(Protocol):
    """The callback each hook receives: ``register(name, factory, *, description, options, **metadata)``.

    - ``name``: the name users type (``--pruner NAME``); a model name may be a
      wildcard family such as ``"timm:*"`` (its factory then also gets ``name=``).
    - ``factory``: called by the core to build the thing (see the Protocol of each kind).
    - ``description``: one line for ``prunekit list``.
    - ``options``: the :class:`~prunekit.api.Option` s users may set; the core validates
      and converts them and passes them as keyword arguments. Their names and
      defaults must match the factory's parameters.
    - ``metadata``: per-kind facts (see each hook), checked for type.

    An invalid registration is skipped and shown by ``prunekit plugins``; two
    plugins registering one name is an error naming both.
    """

    def __call__(
        self,
        name: str,
        factory: Callable[..., Any],
        /,
        *,
        description: str = "",
        options: Sequence[Option] = (),
        **metadata: Any,
    ) -> None: ...


class ModelFactory(Protocol):
    """Returns a ``torch.nn.Module`` for inputs of ``in_channels`` x ``image_size``² and ``num_classes`` outputs.

    ``options`` are the model's declared options (``--model-opt key=value``); a wildcard
    family (``"timm:*"``) also gets ``name=`` (the name the run asked for).
    """

    def __call__(self, num_classes: int, in_channels: int, image_size: int, /, **options: Any) -> torch.nn.Module: ...


class DatasetFactory(Protocol):
    """Returns the train and test splits; raises ``UsageError`` when the data is missing."""

    def __call__(self, data_dir: Path | None, download: bool, seed: int, /, **options: Any) -> DatasetSplits: ...


class OptimizerFactory(Protocol):
    """Returns a ``torch.optim.Optimizer`` or a :class:`~prunekit.api.TrainingOptimizer` over ``param_groups``."""

    def __call__(
        self,
        param_groups: list[dict[str, Any]],
        /,
        *,
        lr: float,
        weight_decay: float,
        epochs: int,
        steps_per_epoch: int,
        **options: Any,
    ) -> torch.optim.Optimizer | TrainingOptimizer: ...


class PrunerFactory(Protocol):
    """Returns a :class:`~prunekit.api.Pruner` over ``targets`` (it may install parametrizations)."""

    def __call__(self, targets: list[Target], /, **options: Any) -> Pruner: ...


class SamplerFactory(Protocol):
    """Returns a :class:`~prunekit.api.Sampler` for the run's ``device`` (not started yet)."""

    def __call__(self, device: torch.device, /) -> Sampler: ...


class TrackerFactory(Protocol):
    """Returns a :class:`~prunekit.api.Tracker` (called on the tracker's own worker thread)."""

    def __call__(self, **options: Any) -> Tracker: ...


@hookspec
def register_models(register: Register) -> None:
    """Register models.

    :param register: call ``register(name, factory, options=(...), weight_decay=5e-4)`` per
        model. ``factory`` is a :class:`ModelFactory`; ``options`` are what users may set
        with ``--model-opt key=value`` (passed to the factory as keywords); metadata
        ``weight_decay`` (a number >= 0) is the family's default decay.

    :returns: nothing; what the hook registers is its result.

    Called once, at plugin loading. The core calls the factory once per run,
    after the dataset is built (its shape facts are the arguments) and before
    the pruner and the optimizer.
    """


@hookspec
def register_datasets(register: Register) -> None:
    """Register datasets.

    :param register: call ``register(name, factory, options=(...))`` per dataset.
        ``factory`` is a :class:`DatasetFactory` returning ``DatasetSplits``;
        it raises ``UsageError`` naming what was expected where when the
        data is missing, and downloads only when ``download`` is true.

    :returns: nothing; what the hook registers is its result.

    Called once, at plugin loading. The core calls the factory first in every
    run, with ``--data-dir``, ``--download``, ``--seed`` and the ``--dataset-opt`` values.
    """


@hookspec
def register_optimizers(register: Register) -> None:
    """Register optimizers.

    :param register: call ``register(name, factory, options=(...), lr=..., weight_decay=...,
        state=(...), default_pruner=...)`` per optimizer. ``factory`` is an
        :class:`OptimizerFactory`. Metadata: ``lr`` (default rate, > 0),
        ``weight_decay`` (default decay, or None for the model's), ``state``
        (names of the per-weight state tensors it keeps, e.g.
        ``("exp_avg", "exp_avg_sq")``, matched against pruners' ``requires``)
        and ``default_pruner`` (used when the user names none).

    :returns: nothing; what the hook registers is its result.

    Called once, at plugin loading. The core calls the factory once per run,
    after the pruner factory (so parametrizations exist) with the core's two
    parameter groups (decay for weights, none for biases and norms).
    """


@hookspec
def register_pruners(register: Register) -> None:
    """Register pruners.

    :param register: call ``register(name, factory, options=(...), requires=(...), dense=False)``
        per pruner. ``factory`` is a :class:`PrunerFactory` returning a
        ``Pruner``. Metadata: ``requires`` (optimizer state names the pruner
        reads, checked against the optimizer's ``state`` before training)
        ``dense`` (True for a pruner that never prunes, a baseline: the
        matrix runs it once per optimizer, at sparsity 0) and ``schedules``
        (the sparsity schedules it supports, default all; the first is used
        when a run names none, e.g. ``("constant",)`` for sparse training from
        step 0; any other is refused with one line) and ``compiles`` (default
        True; False for a pruner whose mechanism ``torch.compile`` cannot take,
        e.g. a forward hook whose Python changes the graph from step to step:
        ``--compile`` refuses it with one line).

    :returns: nothing; what the hook registers is its result.

    Called once, at plugin loading. The core calls the factory once per run,
    after the model and before the optimizer; then ``bind`` and ``start``
    (:mod:`prunekit.core.sparsity.pruner`), and in every optimizer step
    ``before_step``, ``update_masks`` (when ``is_update_step``) and ``enforce`` in the
    order :data:`prunekit.core.train.training.STEP_ORDER` states.
    """


@hookspec
def register_samplers(register: Register) -> None:
    """Register memory samplers.

    :param register: call ``register(name, factory, scope=...)`` per sampler.
        ``factory`` is a :class:`SamplerFactory`; metadata ``scope`` is
        ``"process"``, ``"device"`` or ``"allocator"``. Samplers take no options.

    :returns: nothing; what the hook registers is its result.

    Called once, at plugin loading. The core calls the factory once per run
    for every sampler chosen (``--sampler``; ``auto`` tries every one), then
    ``start()`` before training, ``sample()`` on a background thread,
    ``phase_changed()`` on the training thread and ``stop()`` at the end.
    """


@hookspec
def register_trackers(register: Register) -> None:
    """Register experiment trackers (views of a run in TensorBoard, MLflow...).

    :param register: call ``register(name, factory, options=(...), credentials=(...))`` per
        tracker. ``factory`` is a :class:`TrackerFactory` returning a ``Tracker``.
        Metadata ``credentials``: names of the environment variables holding the
        tool's secrets; their values are redacted from everything prunekit writes.
        Credentials are never options: read them from the tool's usual environment
        variables or config files.

    :returns: nothing; what the hook registers is its result.

    Called once, at plugin loading. The core calls the factory once per run for
    every chosen tracker (``--tracker``), on the tracker's own worker thread, never
    the training thread; then ``start``, ``log_epoch``, ``log_memory`` and ``finish``.
    """
