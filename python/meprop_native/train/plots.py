"""Learning curves and the time breakdown as a PNG (needs matplotlib)."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from .atomic import write_with


def plot_summary(summary: dict[str, Any], path: Path) -> bool:
    """Writes the plot; returns False when matplotlib is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    history = summary["history"]
    epochs = [r["epoch"] for r in history]
    fig, (curves, loss, times) = plt.subplots(1, 3, figsize=(15, 4))
    metric = summary["metric"]
    curves.plot(epochs, [100 * r["dev"][metric] for r in history], marker="o", label="dev")
    curves.plot(epochs, [100 * r["test"][metric] for r in history], marker="s", label="test")
    curves.axvline(summary["best_epoch"], color="grey", linestyle=":", label="best dev")
    curves.set(xlabel="epoch", ylabel=f"{metric} (%)", title=metric)
    curves.legend()
    loss.plot(epochs, [r["train_loss"] for r in history], marker="o")
    loss.set(xlabel="epoch", ylabel="mean training loss", title="training loss", yscale="log")
    parts = ["forward", "overall_backprop", "backprop", "optimizer", "total"]
    values = [summary["time"][p] for p in parts]
    times.bar([p.replace("_", "\n") for p in parts], values)
    times.set(ylabel="seconds (all epochs)", title="time breakdown")
    run = summary.get("run", {})
    fig.suptitle(f"{run.get('task', '')}: mode={run.get('mode')} k={run.get('k')} {run.get('optimizer')}")
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    write_with(path, lambda handle: handle.write(buffer.getvalue()))
    return True
