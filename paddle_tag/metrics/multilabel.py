"""Multi-label metrics (any number of labels per sample), average precision and threshold tuning.

Pure numpy; definitions follow scikit-learn with ``zero_division=0``. A label is predicted
when its score is ``>=`` its threshold.
"""

from __future__ import annotations

import numpy as np

from .multiclass import _safe_div, prf_from_counts

#: Default grid for :func:`tune_thresholds`: 0.05, 0.10, ..., 0.95, rounded so 0.5 is exact.
DEFAULT_GRID = np.round(np.linspace(0.05, 0.95, 19), 2)


def _check_pair(y_true: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y_true = np.asarray(y_true)
    scores = np.asarray(scores, dtype=np.float64)
    if y_true.ndim != 2 or y_true.shape != scores.shape:
        raise ValueError(f"y_true and scores must share one (N, C) shape, got {y_true.shape}, {scores.shape}")
    if y_true.size and not np.isin(y_true, (0, 1)).all():
        raise ValueError("y_true must be multi-hot (only 0 and 1)")
    return y_true.astype(bool), scores


def binarize(scores: np.ndarray, thresholds: np.ndarray | float = 0.5) -> np.ndarray:
    """(N, C) bool predictions ``scores >= thresholds``; thresholds is a float or (C,)."""
    scores = np.asarray(scores, dtype=np.float64)
    thr = np.asarray(thresholds, dtype=np.float64)
    if thr.ndim not in (0, 1) or (thr.ndim == 1 and thr.shape[0] != scores.shape[-1]):
        raise ValueError(f"thresholds must be a float or shape ({scores.shape[-1]},), got {thr.shape}")
    return scores >= thr


def multilabel_counts(y_true: np.ndarray, y_pred: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-class ``(tp, fp, fn)``, each (C,) int64, from (N, C) 0/1 arrays ``y_true``, ``y_pred``."""
    y_true = np.asarray(y_true).astype(bool)
    y_pred = np.asarray(y_pred).astype(bool)
    tp = (y_true & y_pred).sum(axis=0)
    return tp, (~y_true & y_pred).sum(axis=0), (y_true & ~y_pred).sum(axis=0)


def average_precision(y_true_col: np.ndarray, score_col: np.ndarray) -> float:
    """Average precision of one class, as ``sklearn.metrics.average_precision_score``.

    ``AP = sum_n (R_n - R_{n-1}) P_n`` over the distinct score values taken as thresholds in
    decreasing order (``R_0 = 0``); tied scores form one threshold, so they enter together.

    Args:
        y_true_col: (N,) 0/1 relevance.
        score_col: (N,) scores, higher = more likely positive.

    Returns:
        The AP as a python float; 0.0 when the column has no positive (as sklearn returns).
    """
    y = np.asarray(y_true_col).astype(bool).ravel()
    s = np.asarray(score_col, dtype=np.float64).ravel()
    if y.shape != s.shape:
        raise ValueError(f"y_true_col {y.shape} and score_col {s.shape} differ in shape")
    n_pos = int(y.sum())
    if n_pos == 0:
        return 0.0
    order = np.argsort(-s, kind="mergesort")
    s, y = s[order], y[order]
    # last index of each run of equal scores
    ends = np.r_[np.flatnonzero(np.diff(s)), s.size - 1]
    tps = np.cumsum(y)[ends]
    precision = tps / (ends + 1)
    recall = tps / n_pos
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def mean_average_precision(y_true: np.ndarray, scores: np.ndarray) -> float:
    """Mean AP over the classes with at least one positive; (N, C) inputs; 0.0 if none has one."""
    y, s = _check_pair(y_true, scores)
    cols = np.flatnonzero(y.any(axis=0))
    if cols.size == 0:
        return 0.0
    return float(np.mean([average_precision(y[:, c], s[:, c]) for c in cols]))


def multilabel_metrics(
    y_true: np.ndarray, scores: np.ndarray, thresholds: np.ndarray | float = 0.5
) -> dict:
    """Threshold-based and ranking metrics for multi-label predictions.

    Args:
        y_true: (N, C) multi-hot {0, 1}.
        scores: (N, C) probabilities.
        thresholds: float or (C,); label c is predicted when ``scores[:, c] >= thresholds[c]``.

    Returns:
        Python floats ``micro_f1``, ``micro_precision``, ``micro_recall`` (pooled counts),
        ``macro_f1`` (mean over all C classes; a class with no true and no predicted label
        counts 0, as sklearn ``average="macro", zero_division=0`` on indicator arrays),
        ``samples_f1`` (mean per-sample F1; a sample with no true and no predicted label
        counts 0, as sklearn ``average="samples", zero_division=0``) and ``mAP``
        (see :func:`mean_average_precision`).
    """
    y, s = _check_pair(y_true, scores)
    pred = binarize(s, thresholds)
    tp, fp, fn = multilabel_counts(y, pred)
    micro_p, micro_r, micro_f = prf_from_counts(tp.sum(), fp.sum(), fn.sum())
    _, _, class_f = prf_from_counts(tp, fp, fn)
    s_tp = (y & pred).sum(axis=1)
    sample_f = _safe_div(2 * s_tp, y.sum(axis=1) + pred.sum(axis=1))
    return {
        "micro_f1": float(micro_f),
        "macro_f1": float(class_f.mean()) if class_f.size else 0.0,
        "samples_f1": float(sample_f.mean()) if sample_f.size else 0.0,
        "mAP": mean_average_precision(y, s),
        "micro_precision": float(micro_p),
        "micro_recall": float(micro_r),
    }


def tune_thresholds(
    y_true: np.ndarray, scores: np.ndarray, grid: np.ndarray = DEFAULT_GRID
) -> np.ndarray:
    """Per-class threshold from ``grid`` that maximises that class's F1 on the given data.

    Args:
        y_true: (N, C) multi-hot {0, 1}.
        scores: (N, C) probabilities.
        grid: (G,) candidate thresholds (default 0.05, 0.10, ..., 0.95).

    Returns:
        (C,) float64 thresholds. Among thresholds with equal best F1 the one closest to 0.5
        wins (an exact tie in distance goes to the smaller one); a class with no positive
        keeps 0.5. Vectorised over samples and classes; loops only over the G grid values.
    """
    y, s = _check_pair(y_true, scores)
    grid = np.asarray(grid, dtype=np.float64).ravel()
    if grid.size == 0:
        raise ValueError("grid must not be empty")
    n_pos = y.sum(axis=0)  # (C,)
    tp = np.empty((grid.size, y.shape[1]), dtype=np.int64)
    n_pred = np.empty_like(tp)
    for g, t in enumerate(grid):
        pred = s >= t
        tp[g] = (pred & y).sum(axis=0)
        n_pred[g] = pred.sum(axis=0)
    f1 = _safe_div(2 * tp, n_pred + n_pos[None, :])  # (G, C)
    best = f1 == f1.max(axis=0, keepdims=True)
    dist = np.round(np.abs(grid - 0.5), 12)[:, None]
    order = np.lexsort((np.broadcast_to(grid[:, None], best.shape), np.where(best, dist, np.inf)), axis=0)
    chosen = grid[order[0]]
    return np.where(n_pos > 0, chosen, 0.5).astype(np.float64)
