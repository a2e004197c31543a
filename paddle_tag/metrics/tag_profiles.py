"""A user's interest in tag space, and how well it foresees the tags of the next item; pure numpy.

Tags enter as an item-by-tag membership matrix ``m`` (``(N + 1, K)``, row 0 the padding item, ``m[i, t] > 0``
when item ``i`` carries tag ``t``). :func:`tag_shares` turns it into shares ``w(i, t) = m(i, t) / sum_t m(i, t)``:
an item with three tags gives each of them 1/3, so every tagged item counts once in total, whatever its number of
tags (an untagged item counts 0 and its mass is simply absent).

Both profiles are the expected tag shares of one item drawn from a distribution over items:

- **history**: an item drawn from the user's history (uniformly, or with a recency half-life: the item ``a``
  steps before the last one weighs ``0.5 ** (a / half_life)``), :func:`history_profiles`;
- **predicted**: an item drawn from the model's next-item distribution, the softmax of its scores with the padding
  item and the user's history masked (what the ranking protocol masks too: a seen item is not recommended),
  pushed to tags: ``p(t) = sum_i p(i) w(i, t)``, :func:`next_item_distribution` then ``@ shares``.

Ranking tags (:func:`top_tags`) breaks ties by the lower tag index; weights are rounded to 12 decimals first, so
equal rational sums computed in a different order (1/3 + 1/6 vs 1/2) tie instead of differing in the last bit.
:func:`next_tag_hits` scores a ranking against the tags of each user's held-out item.
"""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

#: weights are compared after rounding to this many decimals (see the module doc)
TIE_DECIMALS = 12


def tag_shares(memberships: np.ndarray) -> np.ndarray:
    """``(N + 1, K)`` float64 rows that sum to 1 over an item's tags (0 for untagged items and the padding row).

    Raises:
        ValueError: not 2-D, negative or non-finite memberships.
    """
    m = np.asarray(memberships, dtype=np.float64)
    if m.ndim != 2:
        raise ValueError(f"memberships must be (items, tags), got shape {m.shape}")
    if not np.all(np.isfinite(m)) or (m < 0).any():
        raise ValueError("memberships must be finite and non-negative")
    totals = m.sum(axis=1, keepdims=True)
    return np.divide(m, totals, out=np.zeros_like(m), where=totals > 0)


def recency_weights(length: int, half_life: Optional[float]) -> np.ndarray:
    """``(length,)`` weights of a history's positions, oldest first: all 1, or halving every ``half_life`` steps
    back from the last item."""
    if half_life is None:
        return np.ones(length)
    if not half_life > 0:
        raise ValueError(f"half_life must be positive (or None for uniform weights), got {half_life}")
    age = np.arange(length - 1, -1, -1, dtype=np.float64)
    return 0.5 ** (age / half_life)


def history_profiles(histories: Sequence[np.ndarray], shares: np.ndarray,
                     half_life: Optional[float] = None) -> np.ndarray:
    """``(U, K)``: per user, the (recency-)weighted mean of the tag shares of their history items.

    A row sums to the weighted fraction of tagged items (1 when all are tagged); an empty history gives zeros.
    """
    out = np.zeros((len(histories), shares.shape[1]))
    for row, items in enumerate(histories):
        if len(items):
            weights = recency_weights(len(items), half_life)
            out[row] = weights @ shares[np.asarray(items)] / weights.sum()
    return out


def tag_counts(histories: Sequence[np.ndarray], memberships: np.ndarray) -> np.ndarray:
    """``(U, K)`` int64: per user, how many history items carry each tag (an item counts 1 for every tag it has)."""
    carries = (np.asarray(memberships) > 0).astype(np.int64)
    out = np.zeros((len(histories), carries.shape[1]), dtype=np.int64)
    for row, items in enumerate(histories):
        out[row] = carries[np.asarray(items, dtype=np.int64)].sum(axis=0)
    return out


def next_item_distribution(scores: np.ndarray, histories: Sequence[np.ndarray]) -> np.ndarray:
    """``(B, N + 1)`` softmax of ``scores`` over the items each user has not seen (padding and history get 0).

    Raises:
        ValueError: bad shapes, non-finite scores, or a user who has seen every item.
    """
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim != 2 or scores.shape[0] != len(histories):
        raise ValueError(f"scores must be (B, N+1) with B = {len(histories)} histories, got {scores.shape}")
    if not np.all(np.isfinite(scores)):
        raise ValueError("scores must be finite")
    allowed = np.ones(scores.shape, dtype=bool)
    allowed[:, 0] = False
    lengths = np.fromiter((len(h) for h in histories), dtype=np.int64, count=len(histories))
    if lengths.sum():
        allowed[np.repeat(np.arange(len(histories)), lengths), np.concatenate([np.asarray(h) for h in histories])] = 0
    empty = np.flatnonzero(~allowed.any(axis=1))
    if empty.size:
        raise ValueError(f"row {empty[0]} has seen every item: no next item to predict")
    shifted = np.where(allowed, scores - np.max(np.where(allowed, scores, -np.inf), axis=1, keepdims=True), -np.inf)
    p = np.exp(shifted)
    return p / p.sum(axis=1, keepdims=True)


def top_tags(weights: np.ndarray, k: int) -> np.ndarray:
    """``(U, k)`` tag indices by descending weight; ties (to :data:`TIE_DECIMALS`) go to the lower index."""
    weights = np.asarray(weights, dtype=np.float64)
    if weights.ndim != 2 or not 1 <= k <= weights.shape[1]:
        raise ValueError(f"need (U, K) weights and 1 <= k <= K, got shape {weights.shape} and k={k}")
    return np.argsort(-np.round(weights, TIE_DECIMALS), axis=1, kind="stable")[:, :k]


def next_tag_hits(ranked: np.ndarray, target_memberships: np.ndarray, ks: Sequence[int] = (1, 3)) -> dict[str, float]:
    """Hit@k: the share of users for whom one of their ``k`` first ranked tags is a tag of their held-out item.

    Args:
        ranked: ``(U, >= max(ks))`` tag indices, best first (:func:`top_tags`).
        target_memberships: ``(U, K)`` the membership rows of each user's held-out item. Users whose item has no
            tag cannot be hit and are left out of the average (counted in ``"untagged_targets"``).

    Returns:
        ``{"hit@k": ..., "users": scored users, "untagged_targets": left out}``.
    """
    ranked = np.asarray(ranked)
    carries = np.asarray(target_memberships) > 0
    if ranked.ndim != 2 or carries.ndim != 2 or ranked.shape[0] != carries.shape[0]:
        raise ValueError(f"ranked {ranked.shape} and target_memberships {carries.shape} must be (U, ...) alike")
    if max(ks) > ranked.shape[1]:
        raise ValueError(f"ks go up to {max(ks)} but only {ranked.shape[1]} ranked tags per user")
    tagged = carries.any(axis=1)
    if not tagged.any():
        raise ValueError("no user's held-out item has a tag")
    hit = np.take_along_axis(carries, ranked, axis=1)[tagged]
    result = {f"hit@{k}": float(hit[:, :k].any(axis=1).mean()) for k in ks}
    result.update(users=int(tagged.sum()), untagged_targets=int((~tagged).sum()))
    return result
