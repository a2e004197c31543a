"""Training curves as a PNG next to the run's outputs."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from paddle_tag.utils.io import atomic_write_bytes  # noqa: E402

DEFAULT_METRICS = ("accuracy", "macro_f1", "micro_f1", "mAP")
# series that lie on top of each other (accuracy and macro-F1 of a balanced multi-class set) must all show:
# each gets its own marker, line style and marker size, the first ones hollow and larger than the next
STYLES = (("o", "-", 10), ("s", "--", 7), ("^", "-.", 5), ("D", ":", 3), ("v", "-", 3), ("x", "--", 6))


def metric_limits(values: Sequence[float], min_span: float = 0.02) -> tuple[float, float]:
    """y-limits that fit ``values`` with a margin (a 0–1 axis flattens 0.891 → 0.897 into one line); at least
    ``min_span`` wide, and inside [0, 1] when every value is."""
    lo, hi = min(values), max(values)
    pad = max((hi - lo) * 0.15, (min_span - (hi - lo)) / 2, 1e-3)
    lo, hi = lo - pad, hi + pad
    if 0 <= min(values) and max(values) <= 1:  # keep the window's width, shifted inside [0, 1]
        lo, hi = (max(lo - max(hi - 1, 0), 0.0), min(hi + max(-lo, 0), 1.0))
    return lo, hi


def curves_figure(history: dict, metric_keys: tuple[str, ...] = ()) -> Figure:
    """Train loss and learning rate against step (left), eval metrics against step (right)."""
    train, evals = history.get("train", []), history.get("eval", [])
    fig, (ax_loss, ax_metric) = plt.subplots(1, 2, figsize=(11, 4))
    handles = []
    if train:
        steps = [r["step"] for r in train]
        handles += ax_loss.plot(steps, [r["loss"] for r in train], label="train loss", color="C0")
        ax_lr = ax_loss.twinx()
        handles += ax_lr.plot(steps, [r["lr"] for r in train], color="C7", alpha=0.6, linestyle="--",
                              label="learning rate (right axis)")
        ax_lr.set_ylabel("learning rate")
        ax_lr.ticklabel_format(axis="y", style="sci", scilimits=(-2, 3))
        ax_lr.set_ylim(bottom=0)
    values = []
    if evals:
        if "loss" in evals[0]:
            handles += ax_loss.plot([r["step"] for r in evals], [r["loss"] for r in evals], "o-", color="C3",
                                    label="eval loss")
        wanted = metric_keys or DEFAULT_METRICS
        keys = tuple(k for k in wanted if k in evals[0] and k != "loss")  # eval loss is on the left
        for i, key in enumerate(keys):
            marker, line, size = STYLES[i % len(STYLES)]
            series = [float(r[key]) for r in evals if key in r]
            values += series
            ax_metric.plot([r["step"] for r in evals if key in r], series, marker=marker, linestyle=line,
                           markersize=size, markerfacecolor="none" if i < 2 else None, color=f"C{i + 1}",
                           label=f"{key} (last {series[-1]:.3f})")
    ax_loss.set_xlabel("step")
    ax_loss.set_ylabel("loss")
    if handles:
        ax_loss.legend(handles=handles, loc="upper right")
    ax_loss.set_title("training loss and learning rate")
    ax_metric.set_xlabel("step")
    ax_metric.set_ylabel("metric")
    if values:
        ax_metric.set_ylim(*metric_limits(values))
        ax_metric.legend(loc="best")
    ax_metric.set_title("eval metrics")
    ax_metric.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def plot_curves(history: dict, path: str | os.PathLike, metric_keys: tuple[str, ...] = ()) -> None:
    """Write :func:`curves_figure` to ``path`` (PNG), atomically."""
    fig = curves_figure(history, metric_keys)
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    atomic_write_bytes(path, tmp.read_bytes())
    tmp.unlink()
