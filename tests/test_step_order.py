"""The training loop runs each optimizer step in the order ``STEP_ORDER`` states (its one owner)."""

from __future__ import annotations

import contextlib

import torch
from torch import nn
from torch.utils.data import TensorDataset

from prunekit.core.data.loaders import make_loader
from prunekit.core.measure.sampling import SamplingThread
from prunekit.core.sparsity.pruner import MaskPruner, TrainingPlan
from prunekit.core.sparsity.schedule import Schedule
from prunekit.core.sparsity.targets import Target, prunable_targets
from prunekit.core.train.optim import TrainingOptimizer, parameter_groups
from prunekit.core.train.parts import Built
from prunekit.core.train.training import STEP_ORDER, Progress, train_epoch


class _Magnitude(MaskPruner):
    def score(self, index: int, target: Target) -> torch.Tensor:
        return target.parameter.detach().abs()


class _Log(list[str]):
    """The calls the core makes (not those a method makes itself, e.g. update_masks -> enforce)."""

    depth = 0

    def wrap(self, obj: object, prefix: str, names: list[str]) -> None:
        for name in names:
            original = getattr(obj, name)

            def called(*args: object, _name: str = name, _original: object = original) -> object:
                if self.depth == 0:
                    self.append(f"{prefix}.{_name}")
                self.depth += 1
                try:
                    return _original(*args)  # type: ignore[operator]
                finally:
                    self.depth -= 1

            setattr(obj, name, called)


def test_each_step_runs_the_parts_of_step_order_in_order():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(8, 3))
    log = _Log()
    model.register_forward_hook(lambda *_: log.append("forward"))
    targets = prunable_targets(model)
    pruner = _Magnitude(targets)
    optimizer = TrainingOptimizer(torch.optim.SGD(parameter_groups(model, 0.0), lr=0.1))
    log.wrap(pruner, "pruner", ["before_step", "update_masks", "enforce"])
    log.wrap(optimizer, "optimizer", ["backward", "process_gradients", "step", "after_step"])
    pruner.bind(optimizer.optimizer)
    schedule = Schedule("gmp", 0.5, warmup=1, end=3, frequency=2)  # mask updates after steps 3 only (and not 1, 2)
    pruner.start(TrainingPlan(total_steps=3, steps_per_epoch=3, schedule=schedule))
    data = TensorDataset(torch.randn(12, 8), torch.randint(0, 3, (12,)))
    loader = make_loader(data, 4, shuffle=False, seed=0)
    built = Built(None, model, targets, pruner, optimizer, loader, None)
    sampling = SamplingThread({}, 1.0, None)
    train_epoch(built, schedule, True, Progress(), sampling, torch.device("cpu"), contextlib.nullcontext, 3)

    order = [part for part, _ in STEP_ORDER]
    without_update = [p for p in order if p != "pruner.update_masks"]
    assert log == without_update + without_update + order  # steps 1, 2 (no update due), 3 (update)
