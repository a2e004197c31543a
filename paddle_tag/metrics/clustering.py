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
