"""Full-ranking evaluation of next-item recommenders (Hit@k, NDCG@k, MRR@k), pure numpy.

Every recommender -- learned or not -- is scored by the one evaluator, :func:`evaluate_ranking`: it ranks the
held-out target of each user against ALL items (no sampled negatives, which distort the comparison between
models; Krichene & Rendle, KDD 2020), with the items the user already interacted with masked out (they cannot be
recommended again) but never the target itself.

Ties are not broken by position or by item id (either would reward or punish a model for the item numbering):
the metrics are EXPECTED values under a uniformly random order of the tied items, computed exactly. A scorer that
gives every item the same score therefore gets precisely the random-ranking value, e.g. Hit@10 = 10 / candidates.

Item index 0 is the padding item: it is a column of the score matrix but never a candidate.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
from tqdm.auto import tqdm


def check_item_ids(items: np.ndarray, num_items: int, name: str, allow_padding: bool = False) -> np.ndarray:
    """``items`` as a 1-D int64 array whose values are item indices ``1..num_items`` (``0..`` with padding)."""
    arr = np.asarray(items)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {arr.shape}")
    if arr.size == 0:
        return arr.astype(np.int64)
    if arr.dtype.kind not in "iu":
        raise ValueError(f"{name} must hold integer item indices, got dtype {arr.dtype}")
    low = 0 if allow_padding else 1
    if arr.min() < low or arr.max() > num_items:
        raise ValueError(f"{name} holds item indices outside {low}..{num_items}: min {arr.min()}, max {arr.max()}")
    return arr.astype(np.int64, copy=False)


def target_ranks(
    scores: np.ndarray, targets: np.ndarray, exclude: Sequence[np.ndarray]
) -> tuple[np.ndarray, np.ndarray]:
    """How many candidates beat, and how many tie with, each row's target.

    Args:
        scores: ``(B, N+1)`` scores over all items; column 0 (padding) is never a candidate.
        targets: ``(B,)`` the held-out item of each row, in ``1..N``.
        exclude: ``B`` arrays, the items row ``i`` already interacted with: they are no candidates. The target is a
            candidate even if it appears there (a re-consumed item must stay rankable, or it would score nothing).

    Returns:
        ``(greater, ties)``, each ``(B,)`` int64: the candidates other than the target that score strictly higher
        than it, and those that score exactly the same.

    Raises:
        ValueError: NaN scores (naming the first such row), bad shapes or item indices out of range.
    """
    scores = np.asarray(scores)
    if scores.ndim != 2 or scores.shape[1] < 2:
        raise ValueError(f"scores must have shape (B, N+1) with N >= 1, got {scores.shape}")
    if scores.dtype.kind not in "fiu":
        raise ValueError(f"scores must be numeric, got dtype {scores.dtype}")
    b, num_items = scores.shape[0], scores.shape[1] - 1
    targets = check_item_ids(targets, num_items, "targets")
    if targets.shape[0] != b or len(exclude) != b:
        raise ValueError(f"{b} score rows but {targets.shape[0]} targets and {len(exclude)} exclude lists")
    if scores.dtype.kind == "f":
        nan_rows = np.flatnonzero(np.isnan(scores).any(axis=1))
        if nan_rows.size:
            raise ValueError(f"scores hold NaN in row {nan_rows[0]} ({nan_rows.size} rows in all)")

    # One boolean mask for the whole batch, filled by fancy indexing (no Python loop over items).
    masked = np.zeros(scores.shape, dtype=bool)
    masked[:, 0] = True
    lengths = np.fromiter((len(e) for e in exclude), dtype=np.int64, count=b)
    if lengths.sum():
        cols = check_item_ids(np.concatenate([np.asarray(e).ravel() for e in exclude]), num_items, "exclude", True)
        masked[np.repeat(np.arange(b), lengths), cols] = True
    rows = np.arange(b)
    masked[rows, targets] = False

    target_score = scores[rows, targets][:, None]
    candidate = ~masked
    greater = np.count_nonzero((scores > target_score) & candidate, axis=1)
    ties = np.count_nonzero((scores == target_score) & candidate, axis=1) - 1  # the target equals itself
    return greater.astype(np.int64), ties.astype(np.int64)


def ranking_metrics(greater: np.ndarray, ties: np.ndarray, ks: Sequence[int] = (10, 50)) -> dict[str, float]:
    """Expected Hit@k, NDCG@k and MRR@k, averaged over rows, under a random order of tied items.

    The target's rank ``r`` is uniform on ``{g+1, ..., g+t+1}`` (``g = greater``, ``t = ties``), so for a gain
    ``f`` (1, ``1/log2(r+1)`` or ``1/r``) the expected metric is ``(F(min(g+t+1, k)) - F(min(g, k))) / (t+1)``
    with ``F(n) = f(1) + ... + f(n)``: exact, and vectorised through a table of ``F`` up to ``max(ks)``.

    Returns:
        ``{"hit@k", "ndcg@k", "mrr@k"}`` for every ``k`` in ``ks``, as python floats.

    Raises:
        ValueError: no rows, negative counts, mismatched shapes or a ``k`` below 1.
    """
    greater = np.asarray(greater, dtype=np.int64)
    ties = np.asarray(ties, dtype=np.int64)
    if greater.ndim != 1 or greater.shape != ties.shape:
        raise ValueError(f"greater and ties must be 1-D of one shape, got {greater.shape} and {ties.shape}")
    if greater.size == 0:
        raise ValueError("no rows to average")
    if greater.min() < 0 or ties.min() < 0:
        raise ValueError("greater and ties must be non-negative counts")
    ks = [int(k) for k in ks]
    if not ks or min(ks) < 1:
        raise ValueError(f"ks must be positive integers, got {ks}")

    ranks = np.arange(1, max(ks) + 1, dtype=np.float64)
    gains = {"hit": np.ones_like(ranks), "ndcg": 1.0 / np.log2(ranks + 1.0), "mrr": 1.0 / ranks}
    # prefix[n] = F(n), the summed gain of ranks 1..n; prefix[0] = 0.
    prefix = {name: np.concatenate([[0.0], np.cumsum(g)]) for name, g in gains.items()}
    n_tied = (ties + 1).astype(np.float64)  # the target and the items tied with it
    result: dict[str, float] = {}
    for k in ks:
        lo = np.minimum(greater, k)  # ranks 1..lo are taken by strictly better items
        hi = np.minimum(greater + ties + 1, k)  # the target's possible ranks that still count at k
        for name, table in prefix.items():
            result[f"{name}@{k}"] = float(np.mean((table[hi] - table[lo]) / n_tied))
    return result


def evaluate_ranking(
    score_fn: Callable[[np.ndarray], np.ndarray],
    histories: list[np.ndarray],
    targets: np.ndarray,
    num_items: int,
    ks: Sequence[int] = (10, 50),
    batch_size: int = 256,
    progress: bool = False,
) -> dict[str, float]:
    """Rank every user's target among all items, batch by batch, and average the metrics.

    Args:
        score_fn: called with the indices (into ``histories``) of a batch of users; returns their ``(b, N+1)``
            scores. It knows the users' inputs itself, so a model and a baseline plug in alike.
        histories: per user, the items to mask (already interacted with).
        targets: ``(U,)`` per user, the held-out item, in ``1..N``.
        num_items: ``N``; items are ``1..N`` and score column 0 is padding.
        ks: the cut-offs of the metrics.
        batch_size: users per ``score_fn`` call (bounds the ``(b, N+1)`` score memory).
        progress: show a tqdm bar over users.

    Returns:
        :func:`ranking_metrics` of all users, plus ``"users"``: how many were evaluated.
    """
    targets = check_item_ids(targets, num_items, "targets")
    if len(histories) != targets.shape[0]:
        raise ValueError(f"{len(histories)} histories but {targets.shape[0]} targets")
    if not histories:
        raise ValueError("no users to evaluate")
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    # Only two ints per user are kept; the metrics are computed once at the end, so the batch size cannot
    # change the result.
    greater_parts, ties_parts = [], []
    with tqdm(total=len(histories), desc="ranking", unit="user", disable=not progress) as bar:
        for start in range(0, len(histories), batch_size):
            index = np.arange(start, min(start + batch_size, len(histories)))
            scores = np.asarray(score_fn(index))
            if scores.shape != (index.size, num_items + 1):
                raise ValueError(f"score_fn returned shape {scores.shape}, expected {(index.size, num_items + 1)}")
            try:
                greater, ties = target_ranks(scores, targets[index], [histories[i] for i in index])
            except ValueError as err:  # rows are numbered within the batch: say where the batch starts
                raise ValueError(f"users {start}..{index[-1]} (row i is user {start} + i): {err}") from err
            greater_parts.append(greater)
            ties_parts.append(ties)
            bar.update(index.size)
    result = ranking_metrics(np.concatenate(greater_parts), np.concatenate(ties_parts), ks)
    result["users"] = len(histories)
    return result
