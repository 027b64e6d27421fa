"""Run by tests/test_distributed.py under torchrun: a few digits runs per pruner with DDP,
recording per rank the hashes of masks, weights and optimizer state after each epoch
(every epoch has mask updates), plus a single-process re-evaluation of the final model.

Usage: torchrun --nproc-per-node 2 tests/ddp_ranks.py OUT_DIR PRUNER [PRUNER...]
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import torch
import torch.distributed as td

from prunekit.core.config.settings import RunConfig
from prunekit.core.data.loaders import make_loader
from prunekit.core.run import epochs, runner
from prunekit.core.train.evaluation import evaluate

OPTIMIZER = {"magnitude": "adamw", "state": "adamw", "movement": "adamw"}


def digest(tensors: dict[str, torch.Tensor]) -> str:
    h = hashlib.sha256()
    for name in sorted(tensors):
        h.update(name.encode())
        h.update(tensors[name].detach().cpu().reshape(-1).contiguous().view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def optimizer_tensors(optimizer: torch.optim.Optimizer) -> dict[str, torch.Tensor]:
    out = {}
    for index, state in optimizer.state_dict()["state"].items():
        for key, value in state.items():
            if torch.is_tensor(value):
                out[f"{index}.{key}"] = value
    return out


def _spy(train_epoch, captured: dict, hashes: list):
    """train_epoch, recording the run's objects and per-rank hashes after each epoch."""

    def spy(built, *args, **kwargs):
        result = train_epoch(built, *args, **kwargs)
        captured["built"] = built
        hashes.append(
            {
                "masks": digest(built.pruner.state_tensors()),
                "weights": digest(dict(built.model.named_parameters())),  # BatchNorm statistics: rank 0's before eval
                "optimizer": digest(optimizer_tensors(built.optimizer.optimizer)),
            }
        )
        return result

    return spy


def main() -> None:
    out, pruners = Path(sys.argv[1]), sys.argv[2:]
    td.init_process_group("gloo")  # one group for all runs; runner.run leaves it alone
    rank = td.get_rank()
    record: dict = {"rank": rank, "world_size": td.get_world_size(), "runs": {}}
    for pruner in pruners:
        captured, hashes = {}, []
        spy = _spy(epochs.train_epoch, captured, hashes)
        train_epoch, epochs.train_epoch = epochs.train_epoch, spy
        try:
            config = RunConfig(
                pruner=pruner,
                optimizer=OPTIMIZER[pruner],
                epochs=2,
                batch_size=64,
                device="cpu",
                sparsity=0.7,
                out=str(out / pruner),
                quiet=True,
                sample_interval=0.2,
            )
            run_dir, summary = runner.run(config)
        finally:
            epochs.train_epoch = train_epoch
        built = captured["built"]
        test = built.splits.test
        full = evaluate(
            built.model,
            make_loader(test, 512, shuffle=False, seed=0),
            torch.device("cpu"),
            lambda: torch.autocast("cpu", enabled=False),
        )
        full_accuracy = full.accuracy
        record["runs"][pruner] = {
            "epochs": hashes,
            "sparsity": summary["achieved_sparsity"],
            "summary_accuracy": summary["final_test_accuracy"],
            "full_accuracy": full_accuracy,
            "full_correct": full.correct.tolist(),
            "test_examples": len(test),
            "shard_examples": sum(len(labels) for _, labels in built.test_loader),
            "train_batches": len(built.train_loader),
        }
    (out / f"rank{rank}.json").write_text(json.dumps(record))
    td.destroy_process_group()


if __name__ == "__main__":
    main()
