"""Pruning: :mod:`.pruner` (the protocol, ``MaskPruner``), :mod:`.masks` (mask storage),
:mod:`.threshold` (exact k-th smallest score), :mod:`.targets` (the prunable set),
:mod:`.distribution` (a target split over layers), :mod:`.schedule` (sparsity over steps),
:mod:`.structure` (N:M patterns), :mod:`.blocks` (bounded in-place work on any memory layout),
:mod:`.compact_state` and :mod:`.compact_layout` (optimizer state for live weights only)."""
