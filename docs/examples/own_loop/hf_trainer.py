"""prunekit with ``transformers.Trainer``: a tiny GPT-2 built from a config (no download), synthetic tokens."""

from __future__ import annotations

import torch
import transformers

from prunekit.integrations.transformers import PrunekitCallback


def main(out: str = "runs/hf-trainer", steps: int = 20) -> PrunekitCallback:
    torch.manual_seed(0)
    model = transformers.GPT2LMHeadModel(transformers.GPT2Config(vocab_size=64, n_positions=16, n_embd=32, n_layer=1, n_head=2))
    ids = torch.randint(0, 64, (64, 16))
    dataset = [{"input_ids": x, "labels": x} for x in ids]
    args = transformers.TrainingArguments(
        out, max_steps=steps, per_device_train_batch_size=8, report_to=[], use_cpu=True, save_strategy="no"
    )
    # --8<-- [start:trainer]
    callback = PrunekitCallback(pruner="magnitude", sparsity=0.5)  # steps from the Trainer; lm_head (tied) stays dense
    trainer = transformers.Trainer(model=model, args=args, train_dataset=dataset, callbacks=[callback])
    trainer.train()
    print(f"achieved {callback.sparsifier.sparsity()['prunable']:.4f} of {callback.sparsifier.describe()['targets']['pruned']}")
    # --8<-- [end:trainer]
    return callback


if __name__ == "__main__":
    main()
