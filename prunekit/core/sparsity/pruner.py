"""The pruner protocol, and a base class for boolean-mask pruners.

The core drives a pruner through a run like this::

    pruner = factory(targets, **options)  # before the optimizer exists
    pruner.bind(optimizer)
    pruner.start(TrainingPlan(total_steps, steps_per_epoch, schedule))
    if pruner.is_update_step(0):          # the constant schedule: masks before step 1
        pruner.update_masks(schedule.sparsity_at(0), 0); pruner.enforce()
    for step in 1..total_steps:           # each step: prunekit.core.train.training.STEP_ORDER
        ... pruner.before_step(step) ... pruner.update_masks(schedule.sparsity_at(step), step)
        ... pruner.enforce() ...          # update_masks only if pruner.is_update_step(step)

``state_tensors()`` exposes every tensor the pruner keeps between steps so the
core can count their bytes itself; ``transient_bytes()`` reports tensors held
only around mask updates; ``state_dict``/``load_state_dict`` save and restore
the state. An optional method ``dense_gradient_step(step) -> bool`` (not on this
base class; looked up with ``getattr``) says that step ``step`` computes the dense
gradient (RigL's topology steps): training FLOPs count it as 2x nonzero + 1x dense
forward (:mod:`prunekit.core.measure.flops`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from prunekit.core.config.options import Option
from prunekit.core.sparsity.compact_state import compact_state
from prunekit.core.sparsity.distribution import DISTRIBUTIONS, sparsity_groups
from prunekit.core.sparsity.masks import STORAGES, ImplicitMaskError, MaskStore, make_store
from prunekit.core.sparsity.schedule import Schedule
from prunekit.core.sparsity.structure import UNSTRUCTURED, Structure
from prunekit.core.sparsity.targets import Target
from prunekit.core.sparsity.threshold import update_masks_

#: Per-weight optimizer state names that a mask also zeroes.
MASKED_OPTIMIZER_STATE = ("exp_avg", "exp_avg_sq", "max_exp_avg_sq", "momentum_buffer")

#: The ``scope`` option of every :class:`MaskPruner`; declare it in a mask pruner's options.
SCOPE_OPTION = Option(
    "scope",
    str,
    "global",
    "global: one threshold over all layers; layer: every layer at the target; "
    "uniform: every layer at the target but the first, kept dense (RigL's uniform); erk: Erdős–Rényi-Kernel per-layer sparsities",
    choices=DISTRIBUTIONS,
)

#: The ``mask_storage`` option of every :class:`MaskPruner`; declare it in a mask pruner's options.
MASK_STORAGE_OPTION = Option(
    "mask_storage",
    str,
    "bool",
    "bool (1 B per prunable weight), bits (packed, 0.125 B) or implicit (0 B: pruned = exactly zero); same results "
    "(implicit stops the run with one line where it cannot be: a layer with exact zeros before its first mask, "
    "a live weight landing on 0.0, pruned weights that move)",
    choices=STORAGES,
)


@dataclass(frozen=True)
class TrainingPlan:
    """What the core knows about the run before its first optimizer step."""

    total_steps: int
    steps_per_epoch: int
    schedule: Schedule


class Pruner:
    """Base class of every pruner: a dense no-op. Override what you need."""

    def __init__(self, targets: list[Target]) -> None:
        self.targets = targets
        self.optimizer: torch.optim.Optimizer | None = None
        self.plan: TrainingPlan | None = None

    def bind(self, optimizer: torch.optim.Optimizer) -> None:
        """Called once, after the optimizer over the model's parameters exists."""
        self.optimizer = optimizer

    def start(self, plan: TrainingPlan) -> None:
        """Called once after :meth:`bind`, before the first step (and any step-0 update)."""
        self.plan = plan

    def is_update_step(self, step: int) -> bool:
        """Whether the core calls :meth:`update_masks` after optimizer step ``step``.

        Step 0 means before the first optimizer step (no gradients exist yet). The
        default follows the run's schedule; a pruner with a cadence of its own
        (RigL, SET) overrides this.
        """
        plan = getattr(self, "plan", None)  # a subclass may not have called Pruner.__init__
        return plan is not None and plan.schedule.is_update_step(step)

    def before_step(self, step: int) -> None:
        """After backward, before gradient processing and ``optimizer.step()``."""

    def update_masks(self, sparsity: float, step: int) -> None:
        """Recompute masks for the scheduled ``sparsity`` (after the optimizer step)."""

    def enforce(self) -> None:
        """After every optimizer step (and mask update): apply the masks."""

    def state_tensors(self) -> dict[str, torch.Tensor]:
        """Every tensor kept between steps, by a descriptive name."""
        return {}

    def transient_bytes(self) -> dict[str, int]:
        """Peak bytes of tensors held only around mask updates, not between steps.

        Named like :meth:`state_tensors` (``"<what>:<target name>"``), e.g. a copy of
        the dense gradient kept from ``before_step`` to ``update_masks`` on update
        steps. The ledger reports them as ``pruner_transient``, apart from its total.
        """
        return {}

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""


class MaskPruner(Pruner):
    """Keep-masks over a per-layer score, stored as ``mask_storage`` says.

    Subclasses implement :meth:`score`; one whose scores are always new
    tensors that nothing else holds sets ``fresh_scores = True``, which lets
    mask updates work in place in them (saving one layer-sized copy).
    ``scope`` splits the scheduled sparsity across layers
    (:mod:`prunekit.core.sparsity.distribution`): ``"global"`` uses one exact threshold
    over all layers, ``"layer"`` gives each layer the scheduled sparsity,
    ``"erk"`` gives each layer its Erdős–Rényi-Kernel share of it. Masks only
    grow: a pruned weight stays pruned. ``mask_storage`` (:mod:`prunekit.core.sparsity.masks`):
    ``bool`` (1 B per prunable weight), ``bits`` (packed, 0.125 B) or
    ``implicit`` (0 B: a weight is pruned when it is exactly zero); results are
    the same whatever the storage. A subclass that sets masks itself (dynamic
    sparse training: masks that also shrink) keeps ``bool`` and may assign
    ``self.masks[i]``.
    """

    fresh_scores = False

    def __init__(
        self, targets: list[Target], scope: str = "global", mask_storage: str = "bool", structure: str = UNSTRUCTURED
    ) -> None:
        super().__init__(targets)
        self.scope = scope
        self.store = make_store(mask_storage, targets)
        self.structure = Structure(structure, targets)  # which layers the masks cover, and how

    def set_structure(self, structure: str) -> None:
        """Use ``structure`` (``STRUCTURE_OPTION``: unstructured or N:M); a pruner that declares the option calls this."""
        self.structure = Structure(structure, self.targets)

    @property
    def mask_storage(self) -> str:
        return self.store.kind

    @property
    def masks(self) -> list[torch.Tensor | None]:
        """Every layer's keep-mask as ``bool`` (None before its first update).

        With ``bool`` storage this is the stored list itself; with ``bits`` and
        ``implicit`` a new list of materialised copies (1 B per weight while held).
        """
        if self.store.kind == "bool":
            return self.store.stored
        return [self.store.read(i) if self.store.has(i) else None for i in range(len(self.targets))]

    @masks.setter
    def masks(self, masks: list[torch.Tensor | None]) -> None:
        self.store.load(list(masks))

    def score(self, index: int, target: Target) -> torch.Tensor:
        """Importance of each weight of ``target`` (higher is kept)."""
        raise NotImplementedError

    def structure_summary(self) -> dict[str, Any] | None:
        """With N:M: the pattern, the layers left dense, the sparsity over the layers that take it."""
        return self.structure.summary()

    @torch.no_grad()
    def update_masks(self, sparsity: float, step: int) -> None:
        problem = self.store.before_update()
        if problem:
            raise ImplicitMaskError(problem)
        covered = self.structure.covered  # N:M: layers whose input dimension is no multiple of M stay dense
        for positions, group_sparsity in sparsity_groups(
            [self.targets[i].parameter.shape for i in covered], sparsity, self.scope
        ):
            indices = [covered[p] for p in positions]
            scorers = [self.structure.scorer(self.score, self.store, i) for i in indices]
            update_masks_(scorers, _Group(self.store, indices), group_sparsity, self.fresh_scores)
        self.zero_optimizer_state()
        self.enforce()

    @torch.no_grad()
    def before_step(self, step: int) -> None:
        for i, target in enumerate(self.targets):
            grad = target.parameter.grad
            if grad is not None:
                self.store.apply_(i, grad)

    @torch.no_grad()
    def enforce(self) -> None:
        """Apply the masks; with ``implicit`` storage also check that it still holds them exactly."""
        for i, target in enumerate(self.targets):
            self.store.apply_(i, target.parameter.detach())
        wrong = self.store.check()
        if wrong is not None:
            note = self._unzeroed_state(self.targets[wrong])
            raise ImplicitMaskError(f"mask_storage=implicit: {self.store.problem(wrong)}{note}; use mask_storage=bool or bits")

    def _unzeroed_state(self, target: Target) -> str:
        """The optimizer's per-weight state of ``target`` that masks do not zero, for a message."""
        state = self.optimizer.state.get(target.parameter, {}) if self.optimizer is not None else {}
        names = sorted(
            k
            for k, v in state.items()
            if isinstance(v, torch.Tensor) and v.shape == target.parameter.shape and k not in MASKED_OPTIMIZER_STATE
        )
        return f" (the optimizer keeps per-weight state the core does not zero: {', '.join(names)})" if names else ""

    @torch.no_grad()
    def zero_optimizer_state(self) -> None:
        """Zero the optimizer's per-weight state at pruned positions (``state_storage=compact``: drop it).

        With gradients masked, zeroed moments stay zero, so this runs only when
        masks change.
        """
        if self.optimizer is None:
            return
        compact = compact_state(self.optimizer)
        for i, target in enumerate(self.targets):
            if not self.store.has(i):
                continue
            if compact is not None:
                compact.drop_pruned(target.parameter, self.store.read(i))
                continue
            state = self.optimizer.state.get(target.parameter, {})
            for key in MASKED_OPTIMIZER_STATE:
                value = state.get(key)
                if isinstance(value, torch.Tensor) and value.shape == target.parameter.shape:
                    self.store.apply_(i, value)

    def state_tensors(self) -> dict[str, torch.Tensor]:
        return self.store.tensors()

    def transient_bytes(self) -> dict[str, int]:
        """``bits``/``implicit``: a mask update materialises one layer's ``bool`` mask at a time (the largest's bytes)."""
        if self.store.kind == "bool" or not self.targets:
            return {}
        largest = max(self.targets, key=lambda t: t.parameter.numel())
        return {f"bool_mask_while_updating:{largest.name}": largest.parameter.numel()}

    def state_dict(self) -> dict[str, Any]:
        """``{"masks": [bool tensor or None per target]}``, the same whatever the storage."""
        return {"masks": self.store.state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.store.load(state["masks"])


class _Group:
    """Some layers of a mask store, renumbered from 0, for :func:`update_masks_`."""

    def __init__(self, store: MaskStore, indices: list[int]) -> None:
        self.store, self.indices = store, indices

    def __len__(self) -> int:
        return len(self.indices)

    def numel(self, i: int) -> int:
        return self.store.numel(self.indices[i])

    def read(self, i: int) -> torch.Tensor:
        return self.store.read(self.indices[i])

    def write(self, i: int, mask: torch.Tensor) -> None:
        self.store.write(self.indices[i], mask)


def masks_before_training(
    pruner: Pruner, schedule: Schedule, prunes: bool, before_update: Callable[[], None] | None = None
) -> bool:
    """Step 0 of the protocol: the constant schedule's masks before the first optimizer step; whether it ran."""
    if not (prunes and pruner.is_update_step(0)):
        return False
    if before_update is not None:
        before_update()
    pruner.update_masks(schedule.sparsity_at(0), 0)
    pruner.enforce()
    return True


def masks_after_step(
    pruner: Pruner, schedule: Schedule, step: int, prunes: bool, before_update: Callable[[], None] | None = None
) -> bool:
    """The protocol after optimizer step ``step``: the mask update when due, then enforcement; whether masks were updated.

    ``before_update`` runs just before an update (the runner's divergence check and sampling phase).
    The part of :data:`prunekit.core.train.training.STEP_ORDER` after ``optimizer.step`` (mask update,
    enforcement), implemented once: the training loop and :class:`prunekit.Sparsifier` both call it.
    """
    updated = prunes and pruner.is_update_step(step)
    if updated:
        if before_update is not None:
            before_update()
        pruner.update_masks(schedule.sparsity_at(step), step)
    pruner.enforce()
    return updated
