"""PrunekitCallback with the real transformers.Trainer: tiny GPT-2 and BERT from configs, synthetic tokens."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

transformers = pytest.importorskip("transformers")
from prunekit.integrations.transformers import STATE_FILE, PrunekitCallback  # noqa: E402

VOCAB, LENGTH = 64, 16


class Tokens(torch.utils.data.Dataset):  # type: ignore[type-arg]
    """Synthetic token sequences (a fixed seed), as causal-LM or classification examples."""

    def __init__(self, n: int = 64, classify: bool = False) -> None:
        g = torch.Generator().manual_seed(0)
        self.ids = torch.randint(0, VOCAB, (n, LENGTH), generator=g)
        self.classify = classify

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        ids = self.ids[i]
        label = (ids[0] % 2) if self.classify else ids
        return {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": label}


def gpt2() -> torch.nn.Module:
    torch.manual_seed(0)
    config = transformers.GPT2Config(vocab_size=VOCAB, n_positions=LENGTH, n_embd=32, n_layer=1, n_head=2)
    return transformers.GPT2LMHeadModel(config)


def bert() -> torch.nn.Module:
    torch.manual_seed(0)
    config = transformers.BertConfig(
        vocab_size=VOCAB,
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=LENGTH,
    )
    return transformers.BertForSequenceClassification(config)


def trainer(model: torch.nn.Module, out: Path, callback: PrunekitCallback, classify: bool = False, **args: object) -> object:
    arguments = transformers.TrainingArguments(
        output_dir=str(out),
        **(
            {
                "max_steps": 8,
                "per_device_train_batch_size": 8,
                "learning_rate": 1e-3,
                "save_strategy": "steps",
                "save_steps": 4,
                "report_to": [],
                "use_cpu": True,
                "logging_strategy": "no",
                "disable_tqdm": True,
                "seed": 0,
                "dataloader_num_workers": 0,
            }
            | args
        ),
    )
    return transformers.Trainer(model=model, args=arguments, train_dataset=Tokens(classify=classify), callbacks=[callback])


def _zeros(callback: PrunekitCallback) -> tuple[int, int]:
    assert callback.sparsifier is not None
    counts = callback.sparsifier.sparsity()
    return counts["prunable_zeros"], counts["prunable_total"]


def test_gpt2_reaches_the_target_prunes_conv1d_and_leaves_the_tied_head_dense(tmp_path: Path) -> None:
    model = gpt2()
    callback = PrunekitCallback(pruner="magnitude", sparsity=0.5)
    trainer(model, tmp_path, callback).train()  # type: ignore[attr-defined]
    sparsifier = callback.sparsifier
    assert sparsifier is not None and sparsifier.step == 8 and sparsifier.total_steps == 8
    names = [t.name for t in sparsifier.targets]
    assert names == [
        "transformer.h.0.attn.c_attn.weight",
        "transformer.h.0.attn.c_proj.weight",
        "transformer.h.0.mlp.c_fc.weight",
        "transformer.h.0.mlp.c_proj.weight",
    ]
    assert sparsifier.selection.dense == {"lm_head.weight": "tied to transformer.wte.weight"}
    zeros, total = _zeros(callback)
    assert zeros == total // 2
    assert torch.count_nonzero(model.lm_head.weight) == model.lm_head.weight.numel()  # embeddings dense
    assert (tmp_path / "checkpoint-4" / STATE_FILE).is_file()


def test_gpt2_resumes_from_the_trainers_checkpoint_with_the_same_masks(tmp_path: Path) -> None:
    whole = PrunekitCallback(sparsity=0.5)
    whole_model = gpt2()
    trainer(whole_model, tmp_path, whole).train()  # type: ignore[attr-defined]
    resumed = PrunekitCallback(sparsity=0.5)
    model = gpt2()
    trainer(model, tmp_path, resumed).train(resume_from_checkpoint=str(tmp_path / "checkpoint-4"))  # type: ignore[attr-defined]
    assert resumed.sparsifier is not None and whole.sparsifier is not None
    assert resumed.sparsifier.step == 8 and resumed.sparsifier.mask_updates == whole.sparsifier.mask_updates
    for m, n in zip(whole.sparsifier.pruner.masks, resumed.sparsifier.pruner.masks):
        assert m is not None and n is not None and torch.equal(m, n)
    for p, q in zip(whole_model.parameters(), model.parameters()):
        assert torch.equal(p, q)


def test_bert_classifier_reaches_the_target(tmp_path: Path) -> None:
    callback = PrunekitCallback(sparsity=0.6, exclude=["classifier.*"])
    trainer(bert(), tmp_path, callback, classify=True, save_strategy="no").train()  # type: ignore[attr-defined]
    sparsifier = callback.sparsifier
    assert sparsifier is not None and sparsifier.step == 8
    assert sparsifier.selection.dense == {"classifier.weight": "excluded"}
    zeros, total = _zeros(callback)
    assert zeros == round(0.6 * total)


def test_gradient_accumulation_counts_the_trainers_optimizer_steps(tmp_path: Path) -> None:
    callback = PrunekitCallback(sparsity=0.5)
    trainer(gpt2(), tmp_path, callback, gradient_accumulation_steps=2, per_device_train_batch_size=4, save_strategy="no").train()  # type: ignore[attr-defined]
    assert callback.sparsifier is not None and callback.sparsifier.step == 8 == callback.sparsifier.optimizer_steps


def test_the_trainer_example_runs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import runpy

    example = Path(__file__).resolve().parents[1] / "docs/examples/own_loop/hf_trainer.py"
    callback = runpy.run_path(str(example))["main"](out=str(tmp_path), steps=6)
    assert _zeros(callback)[0] == _zeros(callback)[1] // 2
    assert "achieved 0.5000" in capsys.readouterr().out
