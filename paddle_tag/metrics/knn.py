"""Weighted k-nearest-neighbour classification: the monitor of contrastive pretraining.

After each pretraining epoch the frozen embeddings of a labelled train set form a memory bank; every
query is classified by a vote of its ``k`` most cosine-similar train samples, each weighted by
``exp(similarity / temperature)`` (the InstDisc / MoCo / SimCLR kNN monitor). Pure numpy.

Queries are processed ``batch_size`` at a time, so the full ``(M, N)`` similarity matrix is never
built; peak extra memory is about ``2 * batch_size * N`` floats. The computation runs in the
features' floating dtype (float32 stays float32, float64 stays float64; anything else becomes float64).

Ties are broken deterministically: among train samples with equal similarity the lower train index
is a neighbour first, and among classes with equal vote the lower class id wins.
"""

from __future__ import annotations

import numpy as np

from .multiclass import _check_ids

_EPS = 1e-12  # norms below this count as zero: the vector is left as zeros (similarity 0 to everything)


def _check_features(x: np.ndarray, name: str) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim != 2:
        raise ValueError(f"{name} must have shape (N, D), got {x.shape}")
    if x.shape[0] == 0 or x.shape[1] == 0:
        raise ValueError(f"{name} is empty: shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{name} holds NaN or infinite values")
    return x


def _l2_normalize(x: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Rows of ``x`` ``(N, D)`` scaled to unit L2 norm, as ``dtype``; zero rows stay zero."""
    x = x.astype(dtype, copy=True)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    x /= np.maximum(norms, _EPS)
    return x


def _top_k(sim: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` largest entries of each row of ``sim`` ``(B, N)``, ties to the lower column.

    Returns:
        ``(cols, vals)``, each ``(B, k)``: column indices (ascending within a row) and their values.
    """
    b, n = sim.shape
    kth = np.partition(sim, n - k, axis=1)[:, n - k]  # (B,) k-th largest value of each row
    rows, cols = np.nonzero(sim >= kth[:, None])  # row-major, columns ascending within a row
    vals = sim[rows, cols]
    # Every row has >= k hits; rows with more have surplus ties at the k-th value: keep the first ones.
    tie = vals == kth[rows]
    need = k - np.bincount(rows[~tie], minlength=b)  # ties to keep per row (>= 1)
    tie_at = np.flatnonzero(tie)
    tie_rows = rows[tie_at]
    rank = np.arange(tie_at.size) - np.searchsorted(tie_rows, tie_rows, side="left")  # 0-based, in row
    keep = ~tie
    keep[tie_at[rank < need[tie_rows]]] = True
    return cols[keep].reshape(b, k), vals[keep].reshape(b, k)


def knn_predict(train_features: np.ndarray, train_labels: np.ndarray, query_features: np.ndarray,
                num_classes: int, k: int = 20, temperature: float = 0.07, batch_size: int = 1024) -> np.ndarray:
    """Predict the class of each query by a similarity-weighted vote of its ``k`` nearest train samples.

    Features are L2-normalised, similarity is the cosine, and neighbour ``j`` of a query adds
    ``exp(sim_j / temperature)`` to the score of its class; the prediction is the top-scoring class.
    (Weights are computed relative to the query's most similar neighbour, which leaves the vote
    unchanged and avoids overflow at small temperatures.) A large ``temperature`` approaches a plain
    majority vote; ``temperature=float("inf")`` is exactly one.

    Args:
        train_features: (N, D) train (memory bank) embeddings; need not be normalised.
        train_labels: (N,) int class ids in ``[0, num_classes)``.
        query_features: (M, D) embeddings to classify.
        num_classes: C.
        k: neighbours per query; values above N are clipped to N.
        temperature: > 0; the softness of the similarity weighting.
        batch_size: queries per similarity block; the result does not depend on it (up to
            floating-point rounding of the matrix product, which can only matter for similarities
            equal to within a few ulps).

    Returns:
        (M,) int64 predicted class ids. Ties: see the module docstring.

    Raises:
        ValueError: empty or non-finite features, mismatched shapes, labels out of range,
            or non-positive ``num_classes`` / ``k`` / ``temperature`` / ``batch_size``.
    """
    train = _check_features(train_features, "train_features")
    query = _check_features(query_features, "query_features")
    if train.shape[1] != query.shape[1]:
        raise ValueError(
            f"train_features have dimension {train.shape[1]}, query_features {query.shape[1]}"
        )
    if not isinstance(num_classes, (int, np.integer)) or num_classes < 1:
        raise ValueError(f"num_classes must be an int >= 1, got {num_classes!r}")
    labels = _check_ids(train_labels, int(num_classes), "train_labels")
    if labels.shape[0] != train.shape[0]:
        raise ValueError(f"{labels.shape[0]} train_labels for {train.shape[0]} train_features")
    if not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be an int >= 1, got {k!r}")
    if not temperature > 0:  # also rejects NaN
        raise ValueError(f"temperature must be > 0, got {temperature!r}")
    if not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"batch_size must be an int >= 1, got {batch_size!r}")

    num_classes = int(num_classes)
    k = min(int(k), train.shape[0])
    dtype = np.result_type(train.dtype, query.dtype, np.float32)
    bank_t = _l2_normalize(train, dtype).T  # (D, N)
    preds = np.empty(query.shape[0], dtype=np.int64)
    for start in range(0, query.shape[0], batch_size):
        q = _l2_normalize(query[start:start + batch_size], dtype)  # (B, D)
        b = q.shape[0]
        cols, sims = _top_k(q @ bank_t, k)  # (B, k) each
        weights = np.exp((sims - sims.max(axis=1, keepdims=True)) / temperature)  # (B, k), max 1
        slots = np.arange(b)[:, None] * num_classes + labels[cols]  # (B, k) row-major (query, class)
        votes = np.bincount(slots.ravel(), weights=weights.ravel().astype(np.float64),
                            minlength=b * num_classes).reshape(b, num_classes)
        preds[start:start + b] = votes.argmax(axis=1)  # first maximum: the lower class id
    return preds


def knn_accuracy(train_features: np.ndarray, train_labels: np.ndarray, query_features: np.ndarray,
                 query_labels: np.ndarray, num_classes: int, k: int = 20, temperature: float = 0.07,
                 batch_size: int = 1024) -> float:
    """Top-1 accuracy of :func:`knn_predict` on labelled queries.

    Args:
        train_features: (N, D) train (memory bank) embeddings.
        train_labels: (N,) int class ids in ``[0, num_classes)``.
        query_features: (M, D) embeddings to classify.
        query_labels: (M,) int true class ids in ``[0, num_classes)``.
        num_classes: C.
        k, temperature, batch_size: as in :func:`knn_predict` (``k`` above N is clipped).

    Returns:
        The fraction of queries whose prediction equals their label, as a python float.

    Raises:
        ValueError: as :func:`knn_predict`, or ``query_labels`` of the wrong length or out of range.
    """
    query = _check_features(query_features, "query_features")
    if not isinstance(num_classes, (int, np.integer)) or num_classes < 1:
        raise ValueError(f"num_classes must be an int >= 1, got {num_classes!r}")
    y_true = _check_ids(query_labels, int(num_classes), "query_labels")
    if y_true.shape[0] != query.shape[0]:
        raise ValueError(f"{y_true.shape[0]} query_labels for {query.shape[0]} query_features")
    y_pred = knn_predict(train_features, train_labels, query, num_classes, k, temperature, batch_size)
    return float(np.mean(y_pred == y_true))
