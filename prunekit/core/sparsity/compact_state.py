"""Optimizer state for live weights only: ``state_storage=compact``.

With ``dense`` (the default) a torch optimizer keeps each per-weight state tensor
(Adam's ``exp_avg``, ``exp_avg_sq``, AMSGrad's ``max_exp_avg_sq``) the shape of its
weight, pruned weights included: 8 B (12 B with AMSGrad) per weight at any
sparsity. With ``compact`` every mask update (:meth:`CompactState.drop_pruned`,
called by :meth:`prunekit.core.sparsity.pruner.MaskPruner.zero_optimizer_state`) replaces
those tensors by 1-D tensors of the live weights' values (in the order
:class:`Layout` gives: torch's fused CPU kernel rounds its vector body and its scalar
tail differently, so each live weight keeps its dense path), and keeps the live positions as the mask of that update packed 8 to a byte
(:func:`prunekit.core.sparsity.masks.pack_bits`: 0.125 B per prunable weight, owned here so
it stays the mask *of the update* whatever the pruner's ``mask_storage``). Grown
weights (RigL, SET) enter with zero state, as with ``dense``.

An optimizer step then runs the torch optimizer's own ``step`` once for the
weights without positions and once per compacted weight, with that weight's
``data`` and ``grad`` swapped for its live values (gathered, stepped, scattered
back). The update is elementwise, so every live weight goes through the same
float operations as with ``dense`` (tested bit for bit: fused, foreach and
single-tensor paths); a pruned weight has zero gradient and zero state, so ``dense`` leaves it
exactly where ``compact`` does: untouched. The step holds one layer's live
weights and gradients at a time (8 B per live weight of that layer) and one
layer's unpacked positions (1 B per weight of it) and their int64 indices (8 B per live weight).
"""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import torch

from prunekit.core.config.options import Option
from prunekit.core.sparsity.compact_layout import Layout, kernel_lanes, mask_in_memory_order, memory_order
from prunekit.core.sparsity.masks import pack_bits, unpack_bits

O = TypeVar("O")

STATE_STORAGES = ("dense", "compact", "compact-indexed")

#: The ``state_storage`` option of the bundled Adam-family optimizers; pass its value to :func:`with_state_storage`.
STATE_STORAGE_OPTION = Option(
    "state_storage",
    str,
    "dense",
    "dense: state for every weight; compact: after each mask update only for live weights "
    "(+ 0.125 B per prunable weight for their positions); compact-indexed: as compact, + 4 B per live weight "
    "of indices kept between mask updates, for a quicker step; same results",
    choices=STATE_STORAGES,
)

_ATTACHED: weakref.WeakKeyDictionary[torch.optim.Optimizer, CompactState] = weakref.WeakKeyDictionary()


def with_state_storage(optimizer: O, storage: str) -> O:
    """``optimizer`` (a torch optimizer or a TrainingOptimizer) with its state stored as ``storage`` says.

    Call it last, after any learning-rate scheduler exists (schedulers wrap ``step``).
    """
    if storage not in STATE_STORAGES:
        raise ValueError(f"state_storage must be one of {', '.join(STATE_STORAGES)}, got {storage!r}")
    if storage != "dense":
        inner: torch.optim.Optimizer = getattr(optimizer, "optimizer", None) or optimizer  # type: ignore[assignment]
        indexed = storage == "compact-indexed"
        if inner not in _ATTACHED:
            _ATTACHED[inner] = CompactState(inner, indexed=indexed)
        elif _ATTACHED[inner].indexed != indexed:
            raise ValueError(f"this optimizer's state is stored {'compact' if indexed else 'compact-indexed'} already")
    return optimizer


def compact_state(optimizer: torch.optim.Optimizer | None) -> CompactState | None:
    """The compact store of ``optimizer``, or None when its state is dense."""
    return None if optimizer is None else _ATTACHED.get(optimizer)


def dense_state(optimizer: torch.optim.Optimizer | None, param: torch.Tensor, key: str) -> torch.Tensor | None:
    """``optimizer``'s per-weight state ``key`` of ``param`` in ``param``'s shape, or None if it has none.

    Dense storage: the state tensor itself. Compact: a new tensor, zero at pruned positions.
    """
    state = optimizer.state.get(param, {}) if optimizer is not None else {}
    value = state.get(key)
    if not isinstance(value, torch.Tensor) or value.dim() == 0:
        return None
    compact = compact_state(optimizer)
    layout = compact.layout(param) if compact is not None else None
    if layout is None:
        return value if value.shape == param.shape else None
    out = torch.zeros_like(param, dtype=value.dtype)  # the weight's memory format
    layout.scatter_(memory_order(out), value)
    return out


@contextlib.contextmanager
def live_values(optimizer: torch.optim.Optimizer, param: torch.Tensor, tensor: torch.Tensor) -> Iterator[torch.Tensor]:
    """``tensor`` (shaped like ``param``) laid out like ``param``'s optimizer state: itself, or its live values.

    Changes made to the compact copy are written back into ``tensor`` on exit.
    """
    compact = compact_state(optimizer)
    layout = compact.layout(param) if compact is not None else None
    if layout is None:
        yield tensor
        return
    values = layout.gather(memory_order(tensor))
    yield values
    layout.scatter_(memory_order(tensor), values)


def _per_weight(value: Any) -> bool:
    return isinstance(value, torch.Tensor) and value.dim() > 0


class CompactState:
    """The live positions of a torch optimizer's compacted weights, and its compacting ``step``.

    ``indexed`` (``compact-indexed``): each compacted weight's :class:`Layout` is kept between
    mask updates, int32 indices of its live weights (4 B per live weight; int64 in a layer of
    2**31 weights or more), instead of being
    found again from the packed positions at every step (an unpack and a ``nonzero`` per layer).
    """

    def __init__(self, optimizer: torch.optim.Optimizer, indexed: bool = False) -> None:
        self.optimizer = optimizer
        self.indexed = indexed
        #: Parameter -> its live positions, packed (:func:`pack_bits`); absent: state still dense.
        self.positions: dict[torch.Tensor, torch.Tensor] = {}
        #: Parameter -> its kept layout (``indexed`` only).
        self.layouts: dict[torch.Tensor, Layout] = {}
        self._inner: Callable[..., Any] = optimizer.step

        def step(*args: Any, **kwargs: Any) -> Any:
            optimizer._opt_called = True  # type: ignore[attr-defined]  # what an LR scheduler's own wrapper records
            return self.step(*args, **kwargs)

        step._wrapped_by_lr_sched = True  # type: ignore[attr-defined]  # schedulers: step is tracked already
        optimizer.step = step  # type: ignore[method-assign]

    def live(self, param: torch.Tensor) -> torch.Tensor | None:
        """``param``'s live positions (in its memory order) as a flat ``bool`` tensor, or None while its state is dense."""
        packed = self.positions.get(param)
        return None if packed is None else unpack_bits(packed, param.numel())

    def layout(self, param: torch.Tensor, live: torch.Tensor | None = None) -> Layout | None:
        """Where ``param``'s live weights (``live``, else its positions) sit in its compact tensors; None while dense."""
        if live is None and param in self.layouts:
            return self.layouts[param]
        live = self.live(param) if live is None else live
        index_dtype = torch.int32 if self.indexed else torch.int64
        return None if live is None else Layout(live, kernel_lanes(self.optimizer, param), index_dtype)

    @torch.no_grad()
    def drop_pruned(self, param: torch.Tensor, mask: torch.Tensor) -> None:
        """After a mask update: keep ``param``'s state for ``mask``'s live weights only (grown ones at zero)."""
        old = self.layout(param)
        live = mask_in_memory_order(param, mask)
        new = self.layout(param, live)
        assert new is not None
        state = self.optimizer.state.get(param, {})
        for key, value in list(state.items()):
            if _per_weight(value):
                dense = memory_order(value) if old is None else old.expand(value, param.numel())
                state[key] = new.gather(dense)  # a grown weight was pruned: zero in ``dense``
        self.positions[param] = pack_bits(live)
        if self.indexed:
            self.layouts[param] = new

    def tensors(self) -> dict[torch.Tensor, list[torch.Tensor]]:
        """Parameter -> what it keeps beside its moments: packed positions (and ``indexed``: the layout's indices), for the ledger."""
        return {
            p: [packed, *(self.layouts[p].index_tensors() if p in self.layouts else ())] for p, packed in self.positions.items()
        }

    def step(self, *args: Any, **kwargs: Any) -> Any:
        """The torch optimizer's step: dense weights at once, then each compacted weight on its live values.

        The optimizer's own step hooks (a Sparsifier's) run once around the whole step, not per
        call, and the pre-hooks first: one may update masks (SNIP's first step) and so compact
        weights, which this step then takes on their live values.
        """
        opt: Any = self.optimizer
        pre, post = opt._optimizer_step_pre_hooks, opt._optimizer_step_post_hooks
        opt._optimizer_step_pre_hooks, opt._optimizer_step_post_hooks = type(pre)(), type(post)()
        try:
            for hook in list(pre.values()):
                changed = hook(opt, args, kwargs)
                if changed is not None:
                    args, kwargs = changed
            saved = [group["params"] for group in self.optimizer.param_groups]
            compacted = {id(p) for p in self.positions}
            if any(id(p) in compacted for params in saved for p in params):
                result = self._step_groups(saved, compacted, args, kwargs)
            else:
                result = self._inner(*args, **kwargs)
            for hook in list(post.values()):
                hook(opt, args, kwargs)
        finally:
            opt._optimizer_step_pre_hooks, opt._optimizer_step_post_hooks = pre, post
        return result

    def _step_groups(self, saved: list[Any], compacted: set[int], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        groups = self.optimizer.param_groups
        try:
            for group, params in zip(groups, saved):
                group["params"] = [p for p in params if id(p) not in compacted]
            result = self._inner(*args, **kwargs)
            for gi, params in enumerate(saved):
                for p in params:
                    if id(p) not in compacted or p.grad is None:
                        continue
                    for group in groups:
                        group["params"] = []
                    groups[gi]["params"] = [p]
                    self._step_live(p, args, kwargs)
        finally:
            for group, params in zip(groups, saved):
                group["params"] = params
        return result

    def _step_live(self, param: torch.Tensor, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        layout = self.layout(param)
        assert layout is not None and param.grad is not None
        data, grad = param.data, param.grad
        values = layout.gather(memory_order(data))
        param.data = values
        param.grad = layout.gather(memory_order(grad))
        try:
            self._inner(*args, **kwargs)
        finally:
            param.data = data
            param.grad = grad
        layout.scatter_(memory_order(data), values)

    def state_dict(self) -> dict[str, Any]:
        """Packed positions per parameter in the optimizer's order (None: dense), and the kernel's lanes."""
        params = [p for group in self.optimizer.param_groups for p in group["params"]]
        lanes = [kernel_lanes(self.optimizer, p) if p in self.positions else None for p in params]
        return {"positions": [self.positions.get(p) for p in params], "lanes": lanes}

    @torch.no_grad()
    def load_state_dict(self, saved: Any) -> None:
        """Restore :meth:`state_dict` (after the torch optimizer's state), checking it fits; re-laid for this machine's lanes."""
        params = [p for group in self.optimizer.param_groups for p in group["params"]]
        positions, lanes = (saved.get("positions"), saved.get("lanes")) if isinstance(saved, dict) else (None, None)
        if not isinstance(positions, list) or not isinstance(lanes, list) or not len(positions) == len(lanes) == len(params):
            raise ValueError("compact optimizer state: the positions do not match the parameters")
        loaded: dict[torch.Tensor, torch.Tensor] = {}
        for param, packed, saved_lanes in zip(params, positions, lanes):
            if packed is None:
                continue
            n = param.numel()
            if not isinstance(packed, torch.Tensor) or packed.dtype != torch.uint8 or packed.shape != ((n + 7) // 8,):
                raise ValueError("compact optimizer state: positions of the wrong size or type")
            if saved_lanes not in (1, 2, 4, 8, 16, 32, 64):
                raise ValueError("compact optimizer state: an impossible kernel width")
            packed = packed.to(param.device).clone()
            bits = unpack_bits(packed, packed.numel() * 8)
            if bool(bits[n:].any()):
                raise ValueError("compact optimizer state: positions beyond the weight")
            was, now = Layout(bits[:n], saved_lanes), Layout(bits[:n], kernel_lanes(self.optimizer, param))
            state = self.optimizer.state.get(param, {})
            for key, value in list(state.items()):
                if _per_weight(value):
                    if value.shape != (was.size,):
                        raise ValueError("compact optimizer state: moments do not match their positions")
                    if saved_lanes != kernel_lanes(self.optimizer, param):  # written on another kind of CPU
                        state[key] = now.gather(was.expand(value, n))
            loaded[param] = packed
        self.positions = loaded
        self.layouts = {}
        if self.indexed:
            self.layouts = {p: layout for p in loaded if (layout := self.layout(p)) is not None}
