"""Classification metrics in pure numpy, and :func:`compute_metrics`, the single entry point.

Also the kNN monitor of contrastive pretraining (:func:`knn_predict`, :func:`knn_accuracy`).

Every returned value is a python ``float``/``int``/``str`` (or a list of dicts of them), so
results can be written with :func:`json.dump` directly.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from .knn import knn_accuracy, knn_predict
from .multiclass import (
    confusion_counts,
    format_report,
    multiclass_metrics,
    per_class_table,
    prf_from_counts,
)
from .multilabel import (
    DEFAULT_GRID,
    average_precision,
    binarize,
    mean_average_precision,
    multilabel_counts,
    multilabel_metrics,
    tune_thresholds,
)

TASKS = ("multi_class", "multi_label")

__all__ = [
    "DEFAULT_GRID",
    "TASKS",
    "average_precision",
    "binarize",
    "compute_metrics",
    "confusion_counts",
    "format_report",
    "knn_accuracy",
    "knn_predict",
    "mean_average_precision",
    "multiclass_metrics",
    "multilabel_counts",
    "multilabel_metrics",
    "per_class_table",
    "prf_from_counts",
    "tune_thresholds",
]


def compute_metrics(
    task: str,
    y_true: np.ndarray,
    scores: np.ndarray,
    thresholds: np.ndarray | float | None = None,
    label_names: Sequence[str] | None = None,
) -> dict:
    """Metrics for one evaluation set.

    Args:
        task: ``"multi_class"`` or ``"multi_label"``.
        y_true: (N,) int class ids for multi-class; (N, C) multi-hot for multi-label.
        scores: (N, C) probabilities (multi-class predictions are their argmax).
        thresholds: multi-label only: float or (C,); ``None`` means 0.5.
        label_names: C class names for the ``per_class`` rows; defaults to ``"0" .. "C-1"``.

    Returns:
        Flat float metrics (those of :func:`multiclass_metrics` or :func:`multilabel_metrics`)
        plus ``"per_class"``: the list of :func:`per_class_table` rows.

    Raises:
        ValueError: unknown ``task`` or inconsistent shapes.
    """
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; valid tasks: {', '.join(TASKS)}")
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim != 2:
        raise ValueError(f"scores must have shape (N, C), got {scores.shape}")
    num_classes = scores.shape[1]
    if task == "multi_class":
        if thresholds is not None:
            raise ValueError("thresholds apply to multi_label only")
        y_pred = scores.argmax(axis=1) if scores.shape[0] else np.zeros(0, dtype=np.int64)
        result = multiclass_metrics(y_true, y_pred, num_classes)
        tp, fp, fn = confusion_counts(y_true, y_pred, num_classes)
    else:
        thr = 0.5 if thresholds is None else thresholds
        result = multilabel_metrics(y_true, scores, thr)
        tp, fp, fn = multilabel_counts(y_true, binarize(scores, thr))
    result["per_class"] = per_class_table(tp, fp, fn, label_names)
    return result
