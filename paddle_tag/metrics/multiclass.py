"""Multi-class metrics (one label per sample) and the per-class report shared with multi-label.

Pure numpy. Conventions follow scikit-learn with ``zero_division=0``: a precision, recall or
F1 whose denominator is zero counts as 0.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np


def _safe_div(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """Element-wise ``num / den`` with 0 where ``den == 0`` (sklearn ``zero_division=0``)."""
    num = np.asarray(num, dtype=np.float64)
    den = np.asarray(den, dtype=np.float64)
    out = np.zeros(np.broadcast(num, den).shape, dtype=np.float64)
    np.divide(num, den, out=out, where=den != 0)
    return out


def prf_from_counts(
    tp: np.ndarray, fp: np.ndarray, fn: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Precision, recall and F1 from counts; each input and output has shape (C,) (or any shape).

    F1 is ``2 tp / (2 tp + fp + fn)``, which equals ``2PR / (P + R)`` whenever ``tp > 0``;
    all three are 0 where their denominator is 0.
    """
    tp = np.asarray(tp, dtype=np.float64)
    fp = np.asarray(fp, dtype=np.float64)
    fn = np.asarray(fn, dtype=np.float64)
    return _safe_div(tp, tp + fp), _safe_div(tp, tp + fn), _safe_div(2 * tp, 2 * tp + fp + fn)


def _check_ids(y: np.ndarray, num_classes: int, name: str) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim != 1:
        raise ValueError(f"{name} must have shape (N,), got {y.shape}")
    if y.size and not np.issubdtype(y.dtype, np.integer):
        if not np.all(np.equal(np.mod(y, 1), 0)):
            raise ValueError(f"{name} must hold integer class ids")
    y = y.astype(np.int64)
    if y.size and (y.min() < 0 or y.max() >= num_classes):
        raise ValueError(f"{name} holds ids outside [0, {num_classes})")
    return y


def confusion_counts(
    y_true: np.ndarray, y_pred: np.ndarray, num_classes: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-class true positives, false positives and false negatives.

    Args:
        y_true: (N,) int class ids in ``[0, num_classes)``.
        y_pred: (N,) int class ids in ``[0, num_classes)``.
        num_classes: C.

    Returns:
        ``(tp, fp, fn)``, each an int64 array of shape (C,).
    """
    y_true = _check_ids(y_true, num_classes, "y_true")
    y_pred = _check_ids(y_pred, num_classes, "y_pred")
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true {y_true.shape} and y_pred {y_pred.shape} differ in shape")
    true_count = np.bincount(y_true, minlength=num_classes)
    pred_count = np.bincount(y_pred, minlength=num_classes)
    tp = np.bincount(y_true[y_true == y_pred], minlength=num_classes)
    return tp, pred_count - tp, true_count - tp


def multiclass_metrics(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> dict:
    """Accuracy and macro precision / recall / F1 for single-label predictions.

    Args:
        y_true: (N,) int true class ids.
        y_pred: (N,) int predicted class ids.
        num_classes: C; ids must lie in ``[0, C)``.

    Returns:
        ``{"accuracy", "macro_f1", "macro_precision", "macro_recall"}`` as python floats.

    Macro averages follow ``sklearn.metrics.f1_score(average="macro", zero_division=0)``
    with its default labels: they are taken over the classes present in
    ``y_true`` ∪ ``y_pred``. A class with neither true nor predicted samples is left out
    (it is not counted as 0); a class that occurs but is never predicted has precision 0,
    one that is predicted but never occurs has recall 0. With N = 0 every value is 0.
    """
    tp, fp, fn = confusion_counts(y_true, y_pred, num_classes)
    n = int(tp.sum() + fn.sum())
    present = (tp + fp + fn) > 0
    p, r, f = prf_from_counts(tp, fp, fn)
    if not present.any():
        return {"accuracy": 0.0, "macro_f1": 0.0, "macro_precision": 0.0, "macro_recall": 0.0}
    return {
        "accuracy": float(tp.sum() / n),
        "macro_f1": float(f[present].mean()),
        "macro_precision": float(p[present].mean()),
        "macro_recall": float(r[present].mean()),
    }


def per_class_table(
    tp: np.ndarray, fp: np.ndarray, fn: np.ndarray, label_names: Sequence[str] | None = None
) -> list[dict]:
    """One row per class: ``{"name", "precision", "recall", "f1", "support"}``.

    Args:
        tp, fp, fn: (C,) counts (from :func:`confusion_counts` or multi-label counts).
        label_names: C names; defaults to ``"0" .. "C-1"``.

    Returns:
        A list of C dicts with python types (``support = tp + fn`` as int), JSON-serialisable.
    """
    tp = np.asarray(tp)
    fp = np.asarray(fp)
    fn = np.asarray(fn)
    if not (tp.shape == fp.shape == fn.shape) or tp.ndim != 1:
        raise ValueError(f"tp, fp, fn must share one (C,) shape, got {tp.shape}, {fp.shape}, {fn.shape}")
    names = [str(i) for i in range(tp.shape[0])] if label_names is None else list(label_names)
    if len(names) != tp.shape[0]:
        raise ValueError(f"{len(names)} label names for {tp.shape[0]} classes")
    p, r, f = prf_from_counts(tp, fp, fn)
    return [
        {
            "name": str(names[i]),
            "precision": float(p[i]),
            "recall": float(r[i]),
            "f1": float(f[i]),
            "support": int(tp[i] + fn[i]),
        }
        for i in range(tp.shape[0])
    ]


def format_report(rows: Sequence[dict], digits: int = 4) -> str:
    """Render :func:`per_class_table` rows as an aligned text table (one line per class)."""
    header = ["name", "precision", "recall", "f1", "support"]
    body = [
        [
            str(row["name"]),
            f"{row['precision']:.{digits}f}",
            f"{row['recall']:.{digits}f}",
            f"{row['f1']:.{digits}f}",
            str(row["support"]),
        ]
        for row in rows
    ]
    widths = [max(len(line[i]) for line in [header, *body]) for i in range(len(header))]

    def fmt(line: list[str]) -> str:
        first = line[0].ljust(widths[0])
        rest = [cell.rjust(width) for cell, width in zip(line[1:], widths[1:])]
        return "  ".join([first, *rest])

    return "\n".join(fmt(line) for line in [header, *body])
