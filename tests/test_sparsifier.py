"""prunekit.Sparsifier in hand-written loops: targets reached, real steps counted, exact resume."""

from __future__ import annotations

import io
import runpy
from pathlib import Path

import pytest
import torch
from torch import nn

import prunekit
from prunekit.errors import UsageError

ROOT = Path(__file__).resolve().parents[1]


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 16), nn.ReLU(), nn.Linear(16, 3))


def _batch(i: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1000 + i)
    return torch.randn(8, 1, 8, 8, generator=g), torch.randint(0, 3, (8,), generator=g)


def _train(
    model: nn.Module, optimizer: torch.optim.Optimizer, steps: range, sparsifier: prunekit.Sparsifier | None = None
) -> None:
    for i in steps:
        x, y = _batch(i)
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        if sparsifier is not None and not sparsifier.attached:
            sparsifier.before_step()
        optimizer.step()
        if sparsifier is not None and not sparsifier.attached:
            sparsifier.after_step()


def _setup(**kwargs: object) -> tuple[nn.Module, torch.optim.Optimizer, prunekit.Sparsifier]:
    model = _model()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    options = {"pruner": "magnitude", "sparsity": 0.6, "total_steps": 12, "warmup": 2, "prune_end": 8, "frequency": 2} | kwargs
    return model, optimizer, prunekit.Sparsifier(model, optimizer, **options)  # type: ignore[arg-type]


def test_reaches_the_target_exactly_and_keeps_it() -> None:
    model, optimizer, sparsifier = _setup()
    _train(model, optimizer, range(12), sparsifier)
    counts = sparsifier.sparsity()
    total = counts["prunable_total"]
    assert counts["prunable_zeros"] == round(0.6 * total)  # exact global threshold
    assert sparsifier.step == 12 and sparsifier.mask_updates == 3  # steps 4, 6, 8
    assert set(counts["per_layer"]) == {"0.weight", "3.weight", "5.weight"}
    ledger = sparsifier.ledger()
    assert ledger["pruner_state"] == total  # one bool per prunable weight
    assert ledger["prunable_weights"] == total


def test_manual_calls_equal_the_hooks_bit_for_bit() -> None:
    hooked, opt_a, _ = (a := _setup())[0], a[1], a[2]
    _train(hooked, opt_a, range(12), a[2])
    manual, opt_b, sparsifier = _setup(attach=False)
    _train(manual, opt_b, range(12), sparsifier)
    assert sparsifier.step == 12
    for p, q in zip(hooked.parameters(), manual.parameters()):
        assert torch.equal(p, q)


def test_resume_through_state_dict_is_bit_identical() -> None:
    whole, opt_whole, sp_whole = _setup()
    _train(whole, opt_whole, range(12), sp_whole)

    model, optimizer, sparsifier = _setup()
    _train(model, optimizer, range(5), sparsifier)  # stopped mid-ramp
    buffer = io.BytesIO()
    torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "sparsifier": sparsifier.state_dict()}, buffer)
    buffer.seek(0)
    saved = torch.load(buffer, weights_only=True)
    model, optimizer, sparsifier = _setup()
    model.load_state_dict(saved["model"])
    optimizer.load_state_dict(saved["optimizer"])
    sparsifier.load_state_dict(saved["sparsifier"])
    assert sparsifier.step == 5
    _train(model, optimizer, range(5, 12), sparsifier)
    assert sparsifier.mask_updates == sp_whole.mask_updates
    for p, q in zip(whole.parameters(), model.parameters()):
        assert torch.equal(p, q)
    for m, n in zip(sp_whole.pruner.masks, sparsifier.pruner.masks):
        assert m is not None and n is not None and torch.equal(m, n)


def test_state_from_other_settings_is_refused_in_one_line() -> None:
    _, _, sparsifier = _setup()
    _, _, other = _setup(sparsity=0.5)
    with pytest.raises(UsageError, match=r"other settings \(sparsity\)"):
        other.load_state_dict(sparsifier.state_dict())


def test_a_step_the_grad_scaler_skips_is_not_a_step() -> None:
    model, optimizer, sparsifier = _setup()
    scaler = torch.amp.GradScaler("cpu")
    skipped = 0
    for i in range(13):
        x, y = _batch(i)
        optimizer.zero_grad()
        scaler.scale(nn.functional.cross_entropy(model(x), y)).backward()
        if i == 3:  # an fp16-style overflow: the scaler skips this optimizer.step()
            model[0].weight.grad[0, 0, 0, 0] = float("inf")
        scale = scaler.get_scale()
        scaler.step(optimizer)
        scaler.update()
        skipped += scaler.get_scale() < scale
    assert skipped == 1
    assert sparsifier.step == 12 == int(optimizer.state[model[0].weight]["step"])
    assert sparsifier.mask_updates == 3
    assert sparsifier.sparsity()["prunable_zeros"] == round(0.6 * sparsifier.sparsity()["prunable_total"])


def _fused_run(scaled: bool) -> tuple[nn.Module, prunekit.Sparsifier]:
    """Movement (it reads gradients) with fused AdamW; batch 3 overflows (scaled) or is left out (unscaled)."""
    pytest.importorskip("prunekit_movement")
    model = _model()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2, fused=True)
    sparsifier = prunekit.Sparsifier(
        model, optimizer, pruner="movement", sparsity=0.6, schedule="gmp", total_steps=12, warmup=2, prune_end=8, frequency=2
    )
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**10)
    for i in range(13):
        if i == 3 and not scaled:
            continue
        x, y = _batch(i)
        optimizer.zero_grad()
        loss = nn.functional.cross_entropy(model(x), y)
        if not scaled:
            loss.backward()
            optimizer.step()
            continue
        scaler.scale(loss).backward()
        if i == 3:
            model[0].weight.grad[0, 0, 0, 0] = float("inf")
        scaler.step(optimizer)  # a fused optimizer is called even on an overflow, with the gradients still scaled
        scaler.update()
    assert scaler.get_scale() == (2.0**9 if scaled else 2.0**10)
    return model, sparsifier


def test_a_fused_optimizer_under_a_grad_scaler_prunes_as_an_unscaled_loop() -> None:
    plain_model, plain = _fused_run(scaled=False)
    scaled_model, scaled = _fused_run(scaled=True)
    assert scaled.step == plain.step == 12  # the overflowed step is not a step
    assert scaled.mask_updates == plain.mask_updates == 3
    # the scale is a power of two, so unscaled gradients (and the movement scores read from them) are exact
    for a, b in zip(plain_model.parameters(), scaled_model.parameters()):
        assert torch.equal(a, b)
    assert scaled.sparsity()["prunable_zeros"] == round(0.6 * scaled.sparsity()["prunable_total"])


def test_fp16_gradients_under_a_scaler_and_a_fused_optimizer_are_refused_in_one_line() -> None:
    model = _model().half()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2, fused=True)
    prunekit.Sparsifier(model, optimizer, sparsity=0.5, total_steps=4)
    scaler = torch.amp.GradScaler("cpu")
    x, y = _batch(0)
    scaler.scale(nn.functional.cross_entropy(model(x.half()).float(), y)).backward()
    with pytest.raises(UsageError, match="fp16 gradients under a GradScaler with a fused optimizer"):
        scaler.step(optimizer)


def test_gradient_accumulation_counts_only_optimizer_steps() -> None:
    model, optimizer, sparsifier = _setup(total_steps=6, warmup=1, prune_end=4, frequency=1)
    for i in range(24):  # 4 micro-batches per optimizer step
        x, y = _batch(i)
        (nn.functional.cross_entropy(model(x), y) / 4).backward()
        if i % 4 == 3:
            optimizer.step()
            optimizer.zero_grad()
    assert sparsifier.step == 6 and sparsifier.mask_updates == 3  # steps 2, 3, 4
    assert sparsifier.scheduled_sparsity == pytest.approx(0.6)
    assert sparsifier.sparsity()["prunable_zeros"] == round(0.6 * sparsifier.sparsity()["prunable_total"])


def test_wrapped_models_are_seen_through() -> None:
    import os

    import torch.distributed as dist

    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", "29531")
    dist.init_process_group("gloo", rank=0, world_size=1)
    try:
        model = _model()
        ddp = nn.parallel.DistributedDataParallel(model)
        optimizer = torch.optim.SGD(ddp.parameters(), lr=0.1, momentum=0.9)
        sparsifier = prunekit.Sparsifier(ddp, optimizer, sparsity=0.5, total_steps=4, warmup=0, prune_end=2, frequency=1)
        assert [t.name for t in sparsifier.targets] == ["0.weight", "3.weight", "5.weight"]
        _train(ddp, optimizer, range(4), sparsifier)
        assert sparsifier.sparsity()["prunable_zeros"] == round(0.5 * sparsifier.sparsity()["prunable_total"])
    finally:
        dist.destroy_process_group()


def test_a_compiled_model_is_seen_through_and_prunes_as_eager() -> None:
    """``torch.compile(model)`` (graphs captured by Dynamo and AOTAutograd; the aot_eager backend skips codegen)."""
    runs = {}
    for compiled in (False, True):
        model = _model()
        forward = torch.compile(model, backend="aot_eager") if compiled else model
        optimizer = torch.optim.AdamW(forward.parameters(), lr=1e-2)
        sparsifier = prunekit.Sparsifier(forward, optimizer, sparsity=0.6, total_steps=12, warmup=2, prune_end=8, frequency=2)
        assert [t.name for t in sparsifier.targets] == ["0.weight", "3.weight", "5.weight"]
        _train(forward, optimizer, range(12), sparsifier)
        runs[compiled] = (model, sparsifier)
    (eager, s_eager), (compiled_model, s_compiled) = runs[False], runs[True]
    assert s_compiled.step == 12 and s_compiled.mask_updates == s_eager.mask_updates == 3
    assert (
        s_compiled.sparsity()["prunable_zeros"]
        == s_eager.sparsity()["prunable_zeros"]
        == round(0.6 * s_eager.sparsity()["prunable_total"])
    )
    for a, b in zip(eager.parameters(), compiled_model.parameters()):
        assert torch.equal(a == 0, b == 0) and torch.allclose(a, b, atol=1e-5)


def test_include_exclude_and_tied_weights_are_recorded() -> None:
    class Tied(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embed = nn.Embedding(10, 8)
            self.body = nn.Linear(8, 8)
            self.classifier = nn.Linear(8, 4)
            self.head = nn.Linear(8, 10, bias=False)
            self.head.weight = self.embed.weight

    model = Tied()
    optimizer = torch.optim.AdamW(model.parameters())
    sparsifier = prunekit.Sparsifier(model, optimizer, total_steps=4, exclude=["classifier.*"])
    assert [t.name for t in sparsifier.targets] == ["body.weight"]
    assert sparsifier.describe()["targets"]["left_dense"] == {
        "classifier.weight": "excluded",
        "head.weight": "tied to embed.weight",
    }
    assert sparsifier.describe()["targets"]["exclude"] == ["classifier.*"]
    with pytest.raises(UsageError, match="Pattern 'clasifier.\\*' matches no prunable weight"):
        prunekit.Sparsifier(model, optimizer, total_steps=4, exclude=["clasifier.*"])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"pruner": "magnitud"}, "Unknown pruner 'magnitud'. Available:"),
        ({"pruner_opts": {"scope": "galaxy"}}, "scope"),
        ({"sparsity": 1.5}, r"Sparsity must be in \[0, 1\)"),
        ({"total_steps": 0}, "total_steps must be"),
        ({"pruner": "state", "optimizer": "sgd"}, "needs optimizer state exp_avg"),
    ],
)
def test_bad_names_and_options_are_the_runs_one_line_errors(kwargs: dict[str, object], message: str) -> None:
    model = _model()
    optimizer: torch.optim.Optimizer = (
        torch.optim.SGD(model.parameters(), lr=0.1) if kwargs.pop("optimizer", None) else torch.optim.AdamW(model.parameters())
    )
    with pytest.raises(UsageError, match=message) as info:
        prunekit.Sparsifier(model, optimizer, **({"total_steps": 4} | kwargs))  # type: ignore[arg-type]
    assert "\n" not in str(info.value)


def test_the_plain_loop_example_runs(capsys: pytest.CaptureFixture[str]) -> None:
    sparsifier = runpy.run_path(str(ROOT / "docs/examples/own_loop/plain_loop.py"))["main"](steps=60)
    counts = sparsifier.sparsity()
    assert counts["prunable_zeros"] == round(0.7 * counts["prunable_total"])
    assert "target 0.7, achieved 0.7000 after 60 steps" in capsys.readouterr().out


def test_the_timm_recipe_runs(capsys: pytest.CaptureFixture[str]) -> None:
    sparsifier = runpy.run_path(str(ROOT / "docs/examples/own_loop/timm_recipe.py"))["main"](
        epochs=1, updates_per_epoch=3, batch_size=2, image_size=16, model_name="resnet10t"
    )
    counts = sparsifier.sparsity()
    assert counts["prunable_zeros"] == round(0.8 * counts["prunable_total"])
    dense = sparsifier.selection.dense  # resnet10t: a deep stem conv1.0/.3/.6, kept dense like the classifier
    assert dense == {
        "conv1.0.weight": "excluded",
        "conv1.3.weight": "excluded",
        "conv1.6.weight": "excluded",
        "fc.weight": "excluded",
    }
    assert "target 0.8, achieved 0.8000" in capsys.readouterr().out


def test_a_run_directory_that_prunekit_report_reads(tmp_path: Path, run_cli) -> None:  # type: ignore[no-untyped-def]
    model = _model()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    out = tmp_path / "runs" / "own"
    sparsifier = prunekit.Sparsifier(
        model, optimizer, sparsity=0.6, total_steps=8, run_dir=out, run_info={"model": "tiny-cnn", "dataset": "noise", "seed": 0}
    )
    x, y = _batch(99)
    for epoch in (1, 2):
        _train(model, optimizer, range(4 * epoch - 4, 4 * epoch), sparsifier)
        with torch.no_grad():
            correct = model(x).argmax(1) == y
        sparsifier.log_epoch(epoch, test_accuracy=100.0 * correct.float().mean().item(), train_loss=1.0)
    summary = sparsifier.finish(correct=correct.numpy(), labels=y.numpy())
    assert summary["target_reached"] and summary["steps"] == 8 and summary["own_loop"]
    assert summary["test_examples"] == 8 and summary["targets"]["pruned"] == ["0.weight", "3.weight", "5.weight"]
    assert summary["final_test_accuracy"] == pytest.approx(100.0 * correct.float().mean().item())
    lines = (out / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 2 and '"sparsity": 0.6' in lines[1].replace("0.6000", "0.6")
    result = run_cli("report", str(tmp_path / "runs"))
    assert result.code == 0, result.err
    assert "tiny-cnn" in result.out
    with pytest.raises(UsageError, match="already exists and is not empty"):
        prunekit.Sparsifier(model, optimizer, total_steps=8, run_dir=out)
