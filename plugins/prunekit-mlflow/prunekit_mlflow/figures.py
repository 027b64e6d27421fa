"""Small per-run figures for MLflow artefacts (matplotlib's object API: safe off the main thread)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def _figure(width: float = 6.4, height: float = 4.0) -> Figure:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def epochs_figure(records: list[dict[str, Any]]) -> Figure:
    """Test accuracy (left axis) and achieved sparsity (right axis) per epoch."""
    fig = _figure()
    ax = fig.add_subplot()
    epochs = [r["epoch"] for r in records]
    ax.plot(epochs, [r["test_accuracy"] for r in records], marker="o", label="test accuracy (%)")
    ax.plot(epochs, [r["train_accuracy"] for r in records], marker=".", linestyle="--", label="train accuracy (%)")
    ax.set_xlabel("epoch")
    ax.set_ylabel("accuracy (%)")
    right = ax.twinx()
    right.plot(epochs, [100 * r["sparsity"] for r in records], color="tab:red", marker="s", label="sparsity (%)")
    right.set_ylabel("achieved sparsity of prunable weights (%)")
    fig.legend(loc="lower right")
    return fig


def memory_figure(samples: list[dict[str, Any]]) -> Figure:
    """Every byte figure of every sampler over time, in MiB."""
    fig = _figure()
    ax = fig.add_subplot()
    series: dict[str, tuple[list[float], list[float]]] = {}
    for s in samples:
        for name, value in s["figures"].items():
            if name.endswith("_bytes"):
                xs, ys = series.setdefault(f"{s['sampler']} ({s['scope']}): {name}", ([], []))
                xs.append(s["t"])
                ys.append(value / 2**20)
    for label, (xs, ys) in series.items():
        ax.plot(xs, ys, label=label)
    ax.set_xlabel("seconds since start")
    ax.set_ylabel("MiB (measured)")
    if series:
        ax.legend(fontsize="small")
    return fig
