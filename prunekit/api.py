"""The public surface for plugin authors: import everything a plugin needs from here.

A plugin module implements hooks from :mod:`prunekit.hookspecs`, marked with
:data:`hookimpl`, and registers factories through the :class:`Register` callback
the core passes to each hook. Plugins import only this module (and
:mod:`prunekit.testing` in their tests); a test enforces it. Nothing else in
:mod:`prunekit` is promised to stay stable. This module is: its names and
signatures are frozen by ``tests/test_api_surface.py``, and every change to them
raises :data:`API_VERSION` and is recorded in ``CHANGELOG.md``.

- hooks: :data:`hookimpl`, :class:`Register`, the factory Protocols
  (:class:`ModelFactory`, :class:`DatasetFactory`, :class:`OptimizerFactory`,
  :class:`PrunerFactory`, :class:`SamplerFactory`, :class:`TrackerFactory`);
- options and errors: :class:`Option`, :class:`UsageError`;
- pruners: :class:`Pruner`, :class:`MaskPruner`, :class:`Target`, :data:`SCOPE_OPTION`, :data:`STRUCTURE_OPTION`,
  :data:`MASKED_OPTIMIZER_STATE`, :func:`threshold_for_sparsity`, :func:`apply_mask_`,
  :class:`TrainingPlan`, :class:`Schedule`; layer-wise sparsity: :data:`DISTRIBUTIONS`,
  :func:`erk_densities`, :func:`layer_sparsities`, :func:`prune_counts`;
- optimizers and data: :class:`TrainingOptimizer`, :class:`DatasetSplits`, :class:`ImageTensors`; optimizer state for live
  weights only: :data:`STATE_STORAGE_OPTION`, :func:`with_state_storage`, :func:`dense_state`, :func:`live_values`;
- samplers: :class:`Sampler`, :data:`SCOPES`, :class:`SamplerUnavailable`, and for
  GPU vendor samplers :class:`DeviceSampler` and :class:`PciAddress`;
- trackers: :class:`Tracker`, :class:`RunStart`, :class:`RunEnd`, :data:`RUN_STATUSES`;
- your own training loop: :class:`Sparsifier` (also ``prunekit.Sparsifier``).
"""

from __future__ import annotations

from prunekit import hookimpl
from prunekit.core.config.options import Option
from prunekit.core.data.loaders import DatasetSplits, ImageTensors
from prunekit.core.measure.device_sampler import DeviceSampler, PciAddress
from prunekit.core.measure.sampling import SCOPES, Sampler, SamplerUnavailable
from prunekit.core.rundir.layout import EPOCH_METRICS
from prunekit.core.sparsity.compact_state import STATE_STORAGE_OPTION, dense_state, live_values, with_state_storage
from prunekit.core.sparsity.distribution import DISTRIBUTIONS, erk_densities, layer_sparsities, prune_counts, sparsity_groups
from prunekit.core.sparsity.pruner import (
    MASK_STORAGE_OPTION,
    MASKED_OPTIMIZER_STATE,
    SCOPE_OPTION,
    MaskPruner,
    Pruner,
    TrainingPlan,
)
from prunekit.core.sparsity.schedule import Schedule
from prunekit.core.sparsity.structure import STRUCTURE_OPTION
from prunekit.core.sparsity.targets import Target
from prunekit.core.sparsity.threshold import apply_mask_, threshold_for_sparsity
from prunekit.core.tracking.protocol import STATUSES as RUN_STATUSES
from prunekit.core.tracking.protocol import RunEnd, RunStart, Tracker, memory_interval_option
from prunekit.core.train.optim import TrainingOptimizer
from prunekit.errors import UsageError
from prunekit.hookspecs import (
    DatasetFactory,
    ModelFactory,
    OptimizerFactory,
    PrunerFactory,
    Register,
    SamplerFactory,
    TrackerFactory,
)
from prunekit.sparsifier import Sparsifier

#: The version of this surface: the major part changes when a name or signature
#: changes incompatibly, the minor part when one is added.
API_VERSION = "1.12"

__all__ = [
    "API_VERSION",
    "EPOCH_METRICS",
    "MASK_STORAGE_OPTION",
    "MASKED_OPTIMIZER_STATE",
    "RUN_STATUSES",
    "SCOPES",
    "SCOPE_OPTION",
    "STATE_STORAGE_OPTION",
    "STRUCTURE_OPTION",
    "DatasetFactory",
    "DISTRIBUTIONS",
    "DatasetSplits",
    "DeviceSampler",
    "ImageTensors",
    "MaskPruner",
    "ModelFactory",
    "OptimizerFactory",
    "Option",
    "PciAddress",
    "Pruner",
    "PrunerFactory",
    "Register",
    "RunEnd",
    "RunStart",
    "Sampler",
    "SamplerFactory",
    "SamplerUnavailable",
    "Schedule",
    "Sparsifier",
    "Target",
    "Tracker",
    "TrackerFactory",
    "TrainingOptimizer",
    "TrainingPlan",
    "UsageError",
    "apply_mask_",
    "dense_state",
    "erk_densities",
    "hookimpl",
    "layer_sparsities",
    "live_values",
    "memory_interval_option",
    "prune_counts",
    "sparsity_groups",
    "threshold_for_sparsity",
    "with_state_storage",
]
