"""The public surface for plugin authors: import everything a plugin needs from here.

A plugin module implements hooks from :mod:`prunekit.hookspecs`, marked with
:data:`hookimpl`, and registers factories through the ``register`` callback
the core passes to each hook. Nothing else in :mod:`prunekit` is promised to
stay stable; this module is, and changes to it are recorded in the changelog.
"""

from __future__ import annotations

from prunekit import hookimpl
from prunekit.core.data import DatasetSplits
from prunekit.core.optim import TrainingOptimizer
from prunekit.core.options import Option
from prunekit.core.pruner import MASKED_OPTIMIZER_STATE, SCOPE_OPTION, MaskPruner, Pruner
from prunekit.core.sampling import SCOPES, Sampler, SamplerUnavailable
from prunekit.core.targets import Target
from prunekit.core.threshold import threshold_for_sparsity
from prunekit.core.tracking import STATUSES as RUN_STATUSES
from prunekit.core.tracking import RunEnd, RunStart, Tracker
from prunekit.errors import UsageError
from prunekit.hookspecs import Register

__all__ = [
    "hookimpl",
    "Register",
    "Option",
    "UsageError",
    "Target",
    "Pruner",
    "MaskPruner",
    "SCOPE_OPTION",
    "MASKED_OPTIMIZER_STATE",
    "threshold_for_sparsity",
    "TrainingOptimizer",
    "DatasetSplits",
    "Sampler",
    "SamplerUnavailable",
    "SCOPES",
    "Tracker",
    "RunStart",
    "RunEnd",
    "RUN_STATUSES",
]
