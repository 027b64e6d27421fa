"""prunekit with a Lightning ``Trainer`` on CPU: a small classifier on random data."""

from __future__ import annotations

import lightning.pytorch as pl
import torch
from torch import nn

from prunekit.integrations.lightning import PrunekitCallback


class Classifier(pl.LightningModule):  # type: ignore[misc]
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(16, 64), nn.ReLU(), nn.Linear(64, 4))

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        return nn.functional.cross_entropy(self.net(batch[0]), batch[1])

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.AdamW(self.parameters(), lr=1e-2)


def main(out: str = "runs/lightning", epochs: int = 3) -> PrunekitCallback:
    torch.manual_seed(0)
    data = torch.utils.data.TensorDataset(torch.randn(256, 16), torch.randint(0, 4, (256,)))
    loader = torch.utils.data.DataLoader(data, batch_size=32)
    # --8<-- [start:lightning]
    callback = PrunekitCallback(pruner="magnitude", sparsity=0.7)  # steps from the Trainer; its state in Lightning's checkpoints
    trainer = pl.Trainer(max_epochs=epochs, accelerator="cpu", callbacks=[callback], default_root_dir=out, logger=False)
    trainer.fit(Classifier(), loader)
    print(f"achieved {callback.sparsifier.sparsity()['prunable']:.4f} after {callback.sparsifier.step} steps")
    # --8<-- [end:lightning]
    return callback


if __name__ == "__main__":
    main()
