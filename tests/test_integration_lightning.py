"""PrunekitCallback with a real Lightning Trainer on CPU, including its checkpoint and resume."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

pl = pytest.importorskip("lightning.pytorch")
from prunekit.integrations.lightning import PrunekitCallback  # noqa: E402


class Tiny(pl.LightningModule):  # type: ignore[misc]
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.net = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 3))

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        x, y = batch
        return nn.functional.cross_entropy(self.net(x), y)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.AdamW(self.parameters(), lr=1e-2)


def loader() -> torch.utils.data.DataLoader:  # type: ignore[type-arg]
    g = torch.Generator().manual_seed(0)
    data = torch.utils.data.TensorDataset(torch.randn(64, 8, generator=g), torch.randint(0, 3, (64,), generator=g))
    return torch.utils.data.DataLoader(data, batch_size=8, shuffle=False)  # 8 batches an epoch


def fit(module: Tiny, out: Path, callback: PrunekitCallback, ckpt_path: str | None = None, **options: object) -> pl.Trainer:
    checkpoints = pl.callbacks.ModelCheckpoint(dirpath=out, save_top_k=-1, every_n_epochs=1, filename="{epoch}")
    trainer = pl.Trainer(
        **(
            {
                "max_epochs": 2,
                "accelerator": "cpu",
                "devices": 1,
                "logger": False,
                "enable_progress_bar": False,
                "enable_model_summary": False,
                "callbacks": [callback, checkpoints],
                "default_root_dir": out,
            }
            | options
        )
    )
    trainer.fit(module, loader(), ckpt_path=ckpt_path)
    return trainer


def _zeros(callback: PrunekitCallback) -> tuple[int, int]:
    assert callback.sparsifier is not None
    counts = callback.sparsifier.sparsity()
    return counts["prunable_zeros"], counts["prunable_total"]


def test_reaches_the_target_with_steps_from_the_trainer(tmp_path: Path) -> None:
    callback = PrunekitCallback(pruner="magnitude", sparsity=0.5)
    fit(Tiny(), tmp_path, callback)
    assert callback.sparsifier is not None
    assert callback.sparsifier.total_steps == 16 == callback.sparsifier.step
    zeros, total = _zeros(callback)
    assert zeros == total // 2


def test_gradient_accumulation_counts_optimizer_steps(tmp_path: Path) -> None:
    callback = PrunekitCallback(sparsity=0.5)
    fit(Tiny(), tmp_path, callback, accumulate_grad_batches=2)
    assert callback.sparsifier is not None
    assert callback.sparsifier.total_steps == 8 == callback.sparsifier.step == callback.sparsifier.optimizer_steps
    zeros, total = _zeros(callback)
    assert zeros == total // 2


def test_resumes_from_lightnings_checkpoint_bit_identically(tmp_path: Path) -> None:
    whole, whole_module = PrunekitCallback(sparsity=0.5), Tiny()
    fit(whole_module, tmp_path, whole)
    resumed, module = PrunekitCallback(sparsity=0.5), Tiny()
    fit(module, tmp_path / "again", resumed, ckpt_path=str(tmp_path / "epoch=0.ckpt"))
    assert resumed.sparsifier is not None and whole.sparsifier is not None
    assert resumed.sparsifier.step == 16 and resumed.sparsifier.mask_updates == whole.sparsifier.mask_updates
    for m, n in zip(whole.sparsifier.pruner.masks, resumed.sparsifier.pruner.masks):
        assert m is not None and n is not None and torch.equal(m, n)
    for p, q in zip(whole_module.parameters(), module.parameters()):
        assert torch.equal(p, q)


def test_the_lightning_example_runs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import runpy

    example = Path(__file__).resolve().parents[1] / "docs/examples/own_loop/lightning_fit.py"
    callback = runpy.run_path(str(example))["main"](out=str(tmp_path), epochs=1)
    zeros, total = _zeros(callback)
    assert zeros == round(0.7 * total)
    assert "after 8 steps" in capsys.readouterr().out


class FusedTiny(Tiny):
    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.AdamW(self.parameters(), lr=1e-2, fused=True)


def test_16_mixed_with_a_fused_optimizer_prunes_on_true_gradients(tmp_path: Path) -> None:
    """Lightning does not unscale a fused optimizer's gradients before on_before_optimizer_step; the callback does."""
    pytest.importorskip("prunekit_movement")
    seen: list[float] = []

    class Watch(pl.Callback):  # type: ignore[misc]
        def on_before_optimizer_step(self, trainer: pl.Trainer, pl_module: pl.LightningModule, optimizer: object) -> None:
            seen.append(max(float(p.grad.abs().max()) for p in pl_module.parameters() if p.grad is not None))

    options = {"pruner": "movement", "sparsity": 0.5, "schedule": "gmp", "warmup": 2, "prune_end": 12, "frequency": 2}
    callback = PrunekitCallback(**options)  # type: ignore[arg-type]
    # Lightning turns precision="16-mixed" on CPU into bf16 (no scaler); its fp16 plugin with a CPU GradScaler is the CUDA path
    fp16 = pl.plugins.precision.MixedPrecision("16-mixed", "cpu", scaler=torch.amp.GradScaler("cpu"))
    fit(FusedTiny(), tmp_path / "amp", callback, plugins=[fp16], callbacks=[callback, Watch()])
    plain = PrunekitCallback(**options)  # type: ignore[arg-type]
    fit(FusedTiny(), tmp_path / "fp32", plain)
    assert callback.sparsifier is not None and plain.sparsifier is not None
    assert callback.sparsifier.step == plain.sparsifier.step == 16
    assert max(seen) < 100  # true gradients after the callback, not ones scaled by 65,536
    scores = [s.abs().max() for s in callback.sparsifier.pruner.state_tensors().values() if s.is_floating_point()]
    assert all(bool(torch.isfinite(s)) and float(s) < 100 for s in scores)
    assert _zeros(callback) == _zeros(plain)
