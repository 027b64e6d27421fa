"""The core's pieces a plugin's tests drive, so that those tests import only
:mod:`prunekit.api` and :mod:`prunekit.testing`.

- ``load_plugins()``: every installed plugin loaded afresh, with ``.registry`` and ``.infos``;
- ``resolve_options(entry.options, given, owner)``: the core's option validation;
- ``LeNet5`` / ``lenet5(num_classes, in_channels, image_size)``: the small default model;
- ``prunable_targets(model)``, ``measure_sparsity(targets)``: the prunable set and its sparsity;
- ``parameter_groups(model, weight_decay)``: the groups the core hands optimizer factories;
- ``memory_ledger(...)``: the exact byte ledger of a run;
- ``Schedule``: the sparsity schedule; ``SamplingThread``: the core's sampling loop;
- ``builtin_optimizers``: the module of the core's optimizer factories (``sgd``, ``adamw``...).
"""

from __future__ import annotations

from prunekit.builtin import optimizers as builtin_optimizers
from prunekit.builtin.models import LeNet5, lenet5
from prunekit.core.config.options import resolve_options
from prunekit.core.measure.ledger import memory_ledger
from prunekit.core.measure.sampling import SamplingThread
from prunekit.core.plugins.loading import build as load_plugins
from prunekit.core.sparsity.schedule import Schedule
from prunekit.core.sparsity.targets import measure_sparsity, prunable_targets
from prunekit.core.train.optim import parameter_groups

__all__ = [
    "LeNet5",
    "SamplingThread",
    "Schedule",
    "builtin_optimizers",
    "lenet5",
    "load_plugins",
    "measure_sparsity",
    "memory_ledger",
    "parameter_groups",
    "prunable_targets",
    "resolve_options",
]
