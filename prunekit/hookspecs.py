"""The hooks a prunekit plugin can implement, one per kind of thing it adds (public module).

The definitions live in :mod:`prunekit.core.plugins.hookspecs`, where the core that calls
them can import them without reaching up; this module keeps their public name.
"""

from __future__ import annotations

from prunekit.core.plugins.hookspecs import (
    DatasetFactory,
    ModelFactory,
    OptimizerFactory,
    PrunerFactory,
    Register,
    SamplerFactory,
    TrackerFactory,
    hookspec,
    register_datasets,
    register_models,
    register_optimizers,
    register_pruners,
    register_samplers,
    register_trackers,
)

__all__ = [
    "DatasetFactory",
    "ModelFactory",
    "OptimizerFactory",
    "PrunerFactory",
    "Register",
    "SamplerFactory",
    "TrackerFactory",
    "hookspec",
    "register_datasets",
    "register_models",
    "register_optimizers",
    "register_pruners",
    "register_samplers",
    "register_trackers",
]
