"""The training curves: a metric panel scaled to its data, a labelled learning-rate axis, overlapping series visible."""
from __future__ import annotations

import matplotlib.pyplot as plt
import pytest

from paddle_tag.engine.plots import curves_figure, metric_limits, plot_curves

# a short run as the demo makes it: two evaluation points, accuracy equal to macro-F1 (balanced classes)
HISTORY = {
    "train": [{"step": s, "loss": 2.3 / (1 + s / 50), "lr": 1e-4 * min(1, s / 25) * (1 - s / 250)}
              for s in range(0, 250, 20)],
    "eval": [{"step": 125, "loss": 0.40, "accuracy": 0.891, "macro_f1": 0.891},
             {"step": 250, "loss": 0.35, "accuracy": 0.897, "macro_f1": 0.897}],
}


def test_metric_axis_fits_the_data():
    fig = curves_figure(HISTORY)
    try:
        ax_metric = fig.axes[1]
        lo, hi = ax_metric.get_ylim()
        assert 0.85 < lo < 0.891 and 0.897 < hi < 0.95  # not 0-1: the change from 0.891 to 0.897 is visible
        assert ax_metric.get_ylabel() == "metric"
    finally:
        plt.close(fig)


def test_learning_rate_axis_is_labelled():
    fig = curves_figure(HISTORY)
    try:
        ax_lr = fig.axes[2]  # the twin of the loss panel
        assert ax_lr.get_ylabel() == "learning rate"
        labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
        assert labels == ["train loss", "learning rate (right axis)", "eval loss"]
    finally:
        plt.close(fig)


def test_overlapping_series_are_told_apart():
    fig = curves_figure(HISTORY)
    try:
        lines = fig.axes[1].get_lines()
        assert len(lines) == 2
        assert lines[0].get_marker() != lines[1].get_marker()
        assert lines[0].get_markersize() > lines[1].get_markersize()  # the one below shows around the one on top
        assert lines[0].get_linestyle() != lines[1].get_linestyle()
        assert [t.get_text() for t in fig.axes[1].get_legend().get_texts()] == [
            "accuracy (last 0.897)", "macro_f1 (last 0.897)"]
    finally:
        plt.close(fig)


@pytest.mark.parametrize("values, inside", [([0.5], (0.49, 0.51)), ([0.0, 1.0], (0.0, 1.0)), ([0.99, 0.995], (0.98, 1.0))])
def test_metric_limits(values, inside):
    lo, hi = metric_limits(values)
    assert lo <= min(values) and hi >= max(values) and hi - lo >= 0.02 - 1e-9
    assert inside[0] <= lo and hi <= inside[1]


def test_png_is_written_without_leftovers(tmp_path):
    plot_curves(HISTORY, tmp_path / "curves.png")
    plot_curves({"train": [], "eval": []}, tmp_path / "empty.png")  # nothing to draw yet: still a valid file
    assert sorted(p.name for p in tmp_path.iterdir()) == ["curves.png", "empty.png"]
    assert (tmp_path / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
