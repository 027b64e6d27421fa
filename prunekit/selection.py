"""Which weights of a user's model are pruned: :func:`select_targets` for :class:`prunekit.Sparsifier`.

The prunable kinds are the core's (``nn.Linear`` and every convolution) plus Hugging
Face's ``transformers.pytorch_utils.Conv1D`` (GPT-2's linear layers, weight stored
in x out), found without importing transformers. Wrappers are looked through:
``DistributedDataParallel``/``DataParallel`` (``.module``) and ``torch.compile``'s
``_orig_mod``, so names are the plain model's. A weight that is also held by a
module that is not prunable (an embedding tied to ``lm_head``) stays dense unless
``keep_tied=False``; patterns (:mod:`fnmatch`, on names such as ``"classifier.weight"``)
include or exclude the rest. Every weight left dense is recorded with why.
"""

from __future__ import annotations

import fnmatch
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field

from torch import nn

from prunekit.core.sparsity.targets import PRUNABLE_TYPES, Target
from prunekit.errors import UsageError


def unwrap(model: nn.Module) -> nn.Module:
    """The plain model inside DDP/DataParallel (``.module``) and ``torch.compile`` (``._orig_mod``)."""
    while True:
        inner = getattr(model, "_orig_mod", None)
        if isinstance(inner, nn.Module):
            model = inner
            continue
        if isinstance(model, (nn.parallel.DistributedDataParallel, nn.DataParallel)):
            model = model.module
            continue
        return model


def prunable_kinds() -> tuple[type[nn.Module], ...]:
    """The core's kinds, plus transformers' ``Conv1D`` when transformers is loaded (a model using it loaded it)."""
    kinds = PRUNABLE_TYPES
    utils = sys.modules.get("transformers.pytorch_utils")
    conv1d = getattr(utils, "Conv1D", None)
    if isinstance(conv1d, type) and issubclass(conv1d, nn.Module):
        kinds = (*kinds, conv1d)
    return kinds


@dataclass
class Selection:
    """The targets chosen, and each candidate weight left dense with the reason."""

    targets: list[Target]
    dense: dict[str, str] = field(default_factory=dict)
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()

    def describe(self) -> dict[str, object]:
        """What a run records about its prunable set."""
        return {
            "include": list(self.include),
            "exclude": list(self.exclude),
            "pruned": [t.name for t in self.targets],
            "left_dense": dict(self.dense),
        }


def select_targets(
    model: nn.Module,
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
    keep_tied: bool = True,
) -> Selection:
    """The weights to prune, in module order; UsageError when a pattern matches no weight or nothing is left."""
    model = unwrap(model)
    kinds = prunable_kinds()
    candidates: list[Target] = []
    seen: set[int] = set()
    holders: dict[int, list[str]] = {}  # parameter id -> names of the modules that hold it directly
    for name, module in model.named_modules(remove_duplicate=False):
        for attr, param in module.named_parameters(recurse=False):
            holders.setdefault(id(param), []).append(f"{name}.{attr}" if name else attr)
    for name, module in model.named_modules():
        weight = getattr(module, "weight", None)
        if not isinstance(module, kinds) or not isinstance(weight, nn.Parameter) or id(weight) in seen:
            continue
        seen.add(id(weight))
        candidates.append(Target(f"{name}.weight" if name else "weight", module))
    names = [t.name for t in candidates]
    for pattern in (*include, *exclude):
        if not any(fnmatch.fnmatchcase(n, pattern) for n in names):
            raise UsageError(f"Pattern '{pattern}' matches no prunable weight; prunable: {_few(names)}.")
    chosen: list[Target] = []
    dense: dict[str, str] = {}
    for target in candidates:
        tied = [h for h in holders[id(target.parameter)] if h != target.name]
        if keep_tied and tied:
            dense[target.name] = f"tied to {tied[0]}"
        elif include and not any(fnmatch.fnmatchcase(target.name, p) for p in include):
            dense[target.name] = "not included"
        elif any(fnmatch.fnmatchcase(target.name, p) for p in exclude):
            dense[target.name] = "excluded"
        else:
            chosen.append(target)
    if not chosen:
        raise UsageError(f"No weight left to prune (candidates: {_few(names)}); loosen include/exclude.")
    return Selection(chosen, dense, tuple(include), tuple(exclude))


def _few(names: list[str], n: int = 6) -> str:
    shown = ", ".join(names[:n])
    return shown + (f" and {len(names) - n} more" if len(names) > n else "") if names else "none"
