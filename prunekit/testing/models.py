"""What plugin tests need from the core besides :mod:`prunekit.api`.

``lenet5`` (the classic 6-16-120-84-10 LeNet-5 for 32x32 inputs),
``prunable_targets`` (the prunable set the runner builds), ``measure_sparsity``
(exact zeros the forward pass sees), ``memory_ledger`` (the run's byte
accounting) and ``adamw`` (the built-in AdamW factory).
"""

from __future__ import annotations

from prunekit.builtin.models import lenet5
from prunekit.builtin.optimizers import adamw
from prunekit.core.ledger import memory_ledger
from prunekit.core.optim import parameter_groups
from prunekit.core.targets import measure_sparsity, prunable_targets

__all__ = ["adamw", "lenet5", "measure_sparsity", "memory_ledger", "parameter_groups", "prunable_targets"]
