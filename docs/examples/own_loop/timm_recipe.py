"""prunekit in a timm ``train.py``-style loop: timm's model, optimizer factory and scheduler, 80% gmp magnitude.

Run it as it is (ResNet-18 at CIFAR shapes on random images, a few steps) or copy the
``Sparsifier`` lines into timm's own ``train.py``: build it after ``create_optimizer_v2``,
with ``total_steps = num_epochs * updates_per_epoch``; ``optimizer.step()`` (also inside
timm's ``NativeScaler``) then drives it.
"""

from __future__ import annotations

import timm
import torch
from timm.optim import create_optimizer_v2
from timm.scheduler import create_scheduler_v2
from torch import nn

import prunekit


def main(
    epochs: int = 2, updates_per_epoch: int = 4, batch_size: int = 8, image_size: int = 32, model_name: str = "resnet18"
) -> prunekit.Sparsifier:
    torch.manual_seed(0)
    model = timm.create_model(model_name, pretrained=False, num_classes=10)
    optimizer = create_optimizer_v2(model, opt="adamw", lr=1e-3, weight_decay=0.05)
    scheduler, epochs = create_scheduler_v2(
        optimizer, sched="cosine", num_epochs=epochs, warmup_epochs=0, updates_per_epoch=updates_per_epoch
    )
    sparsifier = prunekit.Sparsifier(
        model,
        optimizer,
        pruner="magnitude",
        sparsity=0.8,
        total_steps=epochs * updates_per_epoch,
        exclude=["conv1*", "fc.weight"],
    )
    loss_fn = nn.CrossEntropyLoss()
    num_updates = 0
    for epoch in range(epochs):
        model.train()
        for _ in range(updates_per_epoch):
            images, targets = torch.randn(batch_size, 3, image_size, image_size), torch.randint(0, 10, (batch_size,))
            loss = loss_fn(model(images), targets)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            num_updates += 1
            scheduler.step_update(num_updates=num_updates)
        scheduler.step(epoch + 1)
    counts = sparsifier.sparsity()
    print(f"target 0.8, achieved {counts['prunable']:.4f} over {counts['prunable_total']} weights ({sparsifier.step} steps)")
    return sparsifier


if __name__ == "__main__":
    main()
