"""prunekit in a plain PyTorch loop: 70% magnitude pruning of a small MLP (the README shows this file)."""

import torch
from torch import nn

import prunekit


def main(steps: int = 200) -> prunekit.Sparsifier:
    torch.manual_seed(0)
    inputs, labels = torch.randn(1024, 64), torch.randint(0, 10, (1024,))
    # --8<-- [start:loop]
    model = nn.Sequential(nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 10))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    sparsifier = prunekit.Sparsifier(model, optimizer, pruner="magnitude", sparsity=0.7, total_steps=steps)
    for _ in range(steps):
        batch = torch.randint(0, len(inputs), (32,))
        loss = nn.functional.cross_entropy(model(inputs[batch]), labels[batch])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()  # hooked: masks gradients before the step, updates and enforces masks after it
    print(f"target 0.7, achieved {sparsifier.sparsity()['prunable']:.4f} after {sparsifier.step} steps")
    # --8<-- [end:loop]
    return sparsifier


if __name__ == "__main__":
    main()
