"""Clustering quality against known labels: NMI, ARI (sklearn) and purity.

Used by tag discovery on labelled data (THUCNews titles): the clusters are found without the labels, then
compared with them. Outliers (cluster -1) count as one more cluster of their own for NMI / ARI / purity, so
leaving items unassigned is never rewarded; ``*_assigned`` variants score only the assigned items.
"""
from __future__ import annotations

from typing import Hashable, Sequence

import numpy as np


def purity(labels_true: Sequence[Hashable], labels_pred: Sequence[Hashable]) -> float:
    """Share of items whose cluster's most common true label is their own (1.0 = every cluster pure)."""
    if len(labels_true) != len(labels_pred):
        raise ValueError(f"{len(labels_true)} true labels for {len(labels_pred)} predictions")
    if not len(labels_true):
        raise ValueError("purity of no items")
    _, truth = np.unique(np.asarray(labels_true, dtype=object).astype(str), return_inverse=True)
    _, pred = np.unique(np.asarray(labels_pred, dtype=object).astype(str), return_inverse=True)
    table = np.zeros((pred.max() + 1, truth.max() + 1), dtype=np.int64)
    np.add.at(table, (pred, truth), 1)
    return float(table.max(axis=1).sum() / len(labels_true))


def clustering_metrics(labels_true: Sequence[Hashable], labels_pred: Sequence[int]) -> dict[str, float]:
    """``nmi``, ``ari``, ``purity`` over all items, and the same over assigned items (``labels_pred >= 0``)."""
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

    truth = [str(t) for t in labels_true]
    pred = np.asarray(labels_pred, dtype=np.int64)
    if len(truth) != len(pred):
        raise ValueError(f"{len(truth)} true labels for {len(pred)} predictions")
    out = {"nmi": float(normalized_mutual_info_score(truth, pred)), "ari": float(adjusted_rand_score(truth, pred)),
           "purity": purity(truth, pred)}
    assigned = np.flatnonzero(pred >= 0)
    if 0 < len(assigned) < len(pred):
        sub_true, sub_pred = [truth[i] for i in assigned], pred[assigned]
        out.update(nmi_assigned=float(normalized_mutual_info_score(sub_true, sub_pred)),
                   ari_assigned=float(adjusted_rand_score(sub_true, sub_pred)),
                   purity_assigned=purity(sub_true, sub_pred))
    return {k: round(v, 6) for k, v in out.items()}


def silhouette_from_sums(sims: np.ndarray, labels: np.ndarray, counts: np.ndarray, self_sims: np.ndarray) -> float:
    """Mean silhouette with cosine distance (``1 - x·y``), from each item's dot product with each cluster's sum.

    ``sims`` ``(N, k)``: ``x_i · sum_c``; ``labels`` ``(N,)`` in 0..k-1; ``counts`` ``(k,)`` cluster sizes;
    ``self_sims`` ``(N,)``: ``x_i · x_i``. For unit rows the mean distance from ``x_i`` to the members of ``c``
    is ``1 - x_i·sum_c / n_c`` (itself left out of its own cluster), so this equals sklearn's
    ``silhouette_score(x, labels, metric="cosine")`` in O(N·k) given ``sims``; a singleton's silhouette is 0.
    """
    labels = np.asarray(labels, dtype=np.int64)
    counts = np.asarray(counts, dtype=np.float64)
    rows = np.arange(len(labels))
    own = counts[labels]
    within = (own - 1 - (sims[rows, labels] - self_sims)) / np.maximum(own - 1, 1)
    to_others = np.where(counts > 0, 1 - sims / np.maximum(counts, 1), np.inf)
    to_others[rows, labels] = np.inf
    nearest = to_others.min(axis=1)
    larger = np.maximum(within, nearest)
    scores = np.where((own > 1) & (larger > 0), (nearest - within) / np.where(larger > 0, larger, 1), 0.0)
    return float(scores.mean())


def cosine_silhouette(vectors: np.ndarray, labels: Sequence[int]) -> float:
    """sklearn's ``silhouette_score(vectors, labels, metric="cosine")`` in O(N·k·d) time and O(N·k) memory
    instead of O(N²): rows are L2-normalised (as cosine distance does), then :func:`silhouette_from_sums`."""
    x = np.asarray(vectors, dtype=np.float64)
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    _, labels = np.unique(np.asarray(labels), return_inverse=True)
    if not 2 <= labels.max() + 1 < len(labels):
        raise ValueError(f"a silhouette needs 2 to N-1 clusters; got {labels.max() + 1} for {len(labels)} items")
    k = int(labels.max()) + 1
    sums = np.zeros((k, x.shape[1]))
    np.add.at(sums, labels, x)
    return silhouette_from_sums(x @ sums.T, labels, np.bincount(labels, minlength=k), (x * x).sum(axis=1))
