"""Pruning: :mod:`.pruner` (the protocol, ``MaskPruner``), :mod:`.masks` (mask storage),
:mod:`.threshold` (exact k-th smallest score), :mod:`.targets` (the prunable set),
:mod:`.distribution` (a target split over layers), :mod:`.schedule` (sparsity over steps)."""
