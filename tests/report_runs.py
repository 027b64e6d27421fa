"""Fixture run directories for the report tests: summaries, ledgers and per-example results."""

from __future__ import annotations

import json

import numpy as np
import yaml

from prunekit.core.rundir import layout as rundir
from prunekit.core.rundir.outcomes import Outcomes, fingerprint_test_set

MiB = 1024 * 1024
TEST_EXAMPLES = 1000
LABELS = np.arange(TEST_EXAMPLES) % 10
PRUNABLE = 61_470
OPTIMIZER_STATE = {"sgd": 4, "adam": 8, "adamw": 8}
PRUNER_STATE = {"none": 0, "magnitude": 1, "state": 1, "movement": 5}


def config_of(optimizer, pruner, target, seed, epochs=3):
    return {
        "model": "lenet5",
        "dataset": "digits",
        "optimizer": optimizer,
        "optimizer_opts": {},
        "lr": None,
        "pruner": pruner,
        "pruner_opts": {},
        "sparsity": target,
        "epochs": epochs,
        "batch_size": 32,
        "seed": seed,
    }


def summary_of(optimizer, pruner, target, seed, final, achieved, peak_mib, mean_mib, samplers=None):
    opt_bpw, pruner_bpw = OPTIMIZER_STATE[optimizer], PRUNER_STATE[pruner]
    return {
        "status": "completed",
        "model": "lenet5",
        "dataset": "digits",
        "optimizer": optimizer,
        "pruner": pruner,
        "pruner_options": {},
        "seed": seed,
        "epochs": 3,
        "final_test_accuracy": final,
        "best_test_accuracy": min(final + 0.5, 100.0),  # a best epoch above 100% is malformed
        "best_epoch": 2,
        "target_sparsity": target,
        "achieved_sparsity": achieved,
        "target_reached": abs(achieved - target) <= 0.005,
        "wall_time_s": 10.0 + seed,
        "parameter_counts": {"total": 61_750, "prunable": PRUNABLE},
        "ledger": {
            "parameters": 247_000,
            "gradients": 247_000,
            "optimizer_state": opt_bpw * 61_750,
            "pruner_state": pruner_bpw * PRUNABLE,
            "prunable_weights": PRUNABLE,
            "total": 2 * 247_000 + opt_bpw * 61_750 + pruner_bpw * PRUNABLE,
            "pruner_state_bytes_per_prunable_weight": float(pruner_bpw),
            "per_prunable_weight": {
                "a.weight": {"parameter": 4 * 60_000, "optimizer_state": opt_bpw * 60_000, "pruner_state": pruner_bpw * 60_000},
                "b.weight": {"parameter": 4 * 1_470, "optimizer_state": opt_bpw * 1_470, "pruner_state": pruner_bpw * 1_470},
            },
        },
        "samplers": samplers
        or {
            "process": {
                "scope": "process",
                "samples": 3,
                "errors": 0,
                "figures": {"rss_bytes": {"peak": peak_mib * MiB, "mean": mean_mib * MiB}},
            }
        },
        "warnings": [],
    }


def ledger_total(optimizer, pruner):
    return 2 * 247_000 + OPTIMIZER_STATE[optimizer] * 61_750 + PRUNER_STATE[pruner] * PRUNABLE


def write_outcomes_of(d, final, correct=None):
    """test_correct.bin: the first final% of TEST_EXAMPLES examples right, unless ``correct`` says otherwise."""
    if correct is None:
        correct = np.arange(TEST_EXAMPLES) < round(final * TEST_EXAMPLES / 100)
    rundir.write_outcomes(d, Outcomes(np.asarray(correct, bool), fingerprint_test_set("digits", {}, LABELS[: len(correct)]), 3))


def write_run(
    runs,
    name,
    optimizer,
    pruner,
    target,
    seed,
    final,
    achieved=None,
    peak=200.0,
    mean=150.0,
    samplers=None,
    lr=None,
    correct=None,
):
    achieved = target if achieved is None else achieved
    d = runs / name
    d.mkdir(parents=True)
    write_outcomes_of(d, final, correct)
    (d / "config.yaml").write_text(yaml.safe_dump(config_of(optimizer, pruner, target, seed) | {"out": str(d), "lr": lr}))
    (d / "metrics.jsonl").write_text(
        "".join(
            json.dumps({"epoch": e, "test_accuracy": final - 10 * (3 - e), "sparsity": achieved * e / 3}) + "\n"
            for e in (1, 2, 3)
        )
    )
    (d / "timeline.jsonl").write_text(
        "".join(
            json.dumps(
                {
                    "t": 0.5 * i,
                    "sampler": "process",
                    "scope": "process",
                    "phase": "train",
                    "step": i,
                    "figures": {"rss_bytes": (mean + (peak - mean) * i / 3) * MiB},
                }
            )
            + "\n"
            for i in range(4)
        )
    )
    (d / "summary.json").write_text(
        json.dumps(summary_of(optimizer, pruner, target, seed, final, achieved, peak, mean, samplers))
    )
    return config_of(optimizer, pruner, target, seed) | {"lr": lr}


def tables(markdown):
    """{section heading: [row dict]} for every Markdown table."""
    out, heading, header = {}, None, None
    for line in markdown.splitlines():
        if line.startswith("## "):
            heading, header = line[3:], None
        elif line.startswith("|") and heading:
            cells = [c.strip() for c in line.strip().strip("|").split(" | ")]
            if header is None:
                header = cells
            elif not set(line) <= set("|-: "):
                out.setdefault(heading, []).append(dict(zip(header, cells)))
    return out


def row(rows, optimizer, pruner):
    return next(r for r in rows if r["optimizer"] == optimizer and r["pruner"] == pruner)
