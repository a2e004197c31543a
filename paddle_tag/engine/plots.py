"""Training curves as a PNG next to the run's outputs."""
from __future__ import annotations

import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from paddle_tag.utils.io import atomic_write_bytes  # noqa: E402


def plot_curves(history: dict, path: str | os.PathLike, metric_keys: tuple[str, ...] = ()) -> None:
    """Train loss (and learning rate) against step, and eval metrics against step, side by side."""
    train, evals = history.get("train", []), history.get("eval", [])
    fig, (ax_loss, ax_metric) = plt.subplots(1, 2, figsize=(11, 4))
    if train:
        ax_loss.plot([r["step"] for r in train], [r["loss"] for r in train], label="train loss", color="C0")
        ax_lr = ax_loss.twinx()
        ax_lr.plot([r["step"] for r in train], [r["lr"] for r in train], color="C7", alpha=0.5, label="lr")
        ax_lr.set_ylabel("learning rate")
    if evals:
        if "loss" in evals[0]:
            ax_loss.plot([r["step"] for r in evals], [r["loss"] for r in evals], "o-", color="C3", label="eval loss")
        wanted = metric_keys or ("accuracy", "macro_f1", "micro_f1", "mAP")
        keys = tuple(k for k in wanted if k in evals[0] and k != "loss")  # eval loss is on the left
        for key in keys:
            ax_metric.plot([r["step"] for r in evals], [r[key] for r in evals], "o-", label=key)
    ax_loss.set_xlabel("step")
    ax_loss.set_ylabel("loss")
    ax_loss.legend(loc="upper right")
    ax_loss.set_title("training loss")
    ax_metric.set_xlabel("step")
    ax_metric.set_ylim(0, 1)
    ax_metric.set_title("eval metrics")
    ax_metric.grid(alpha=0.3)
    if evals:
        ax_metric.legend(loc="lower right")
    fig.tight_layout()
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    atomic_write_bytes(path, tmp.read_bytes())
    tmp.unlink()
