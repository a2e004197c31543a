"""Tag-aware two-tower retrieval: a user tower and an item tower whose L2-normalised vectors meet in a dot product.

Item tower: an item's vector is its id embedding, plus (``item_tags``) the mean embedding of its tags, plus
(``title_vectors``) a linear projection of a FROZEN text vector of its title; then L2-normalised. The tags and the
title let items with few interactions borrow from what they share with others.

User tower (:class:`UserTower`, tensors in, tensors out, so it exports to ONNX alone): the last ``max_len`` history
items ``(B, L)`` (left-padded with 0), read either through the user tower's own item embeddings or through the item
tower's vectors, pooled (a masked mean, or a mean weighted by learned per-position weights), plus the vectors of the
``recent`` last items side by side (first-order transitions, which carry MovieLens), plus an embedding of each
categorical profile field ``(B, F)`` (index 0 = unknown or missing) -> a two-layer MLP -> L2-normalised ``(B, H)``.

``score(user, item) = dot / temperature``. :func:`in_batch_softmax_loss` trains both towers with in-batch negatives
and the log-Q correction of Yi et al. (RecSys 2019).
"""
from __future__ import annotations

from typing import Any, Literal, Optional

import numpy as np
import paddle
import paddle.nn as nn
import paddle.nn.functional as F

HISTORY_INPUTS = ("own", "items")
POOLINGS = ("mean", "position")
MASKED = -1e9  # logit of an excluded in-batch column (exp underflows to exactly 0 in float32)


def l2_normalise(x: paddle.Tensor) -> paddle.Tensor:
    return x / paddle.linalg.norm(x, axis=-1, keepdim=True).clip(min=1e-12)


class ItemTower(nn.Layer):
    """Item vectors before normalisation ``(N + 1, H)``; row 0 is the padding item.

    ``item_tags``: ``(N + 1, T)`` tag ids + 1 (0 = none); ``title_vectors``: ``(N + 1, D)`` float32 (row 0 and
    items without a title all 0). Both are buffers, saved with the weights, so a checkpoint rebuilds the tower
    without the data or the text encoder; the title vectors get no gradient.
    """

    def __init__(self, num_items: int, hidden: int, item_tags: Optional[np.ndarray] = None,
                 title_vectors: Optional[np.ndarray] = None) -> None:
        super().__init__()
        self.ids = nn.Embedding(num_items + 1, hidden, padding_idx=0)
        self.tags = self.title = None
        if item_tags is not None:
            self.register_buffer("item_tags", paddle.to_tensor(np.asarray(item_tags, dtype="int64")))
            self.tags = nn.Embedding(int(item_tags.max()) + 1, hidden, padding_idx=0)
        if title_vectors is not None:
            if title_vectors.shape[0] != num_items + 1:
                raise ValueError(f"title_vectors has {title_vectors.shape[0]} rows, expected {num_items + 1}")
            self.register_buffer("title_vectors", paddle.to_tensor(np.asarray(title_vectors, dtype="float32")))
            self.title = nn.Linear(title_vectors.shape[1], hidden)

    def vectors(self, items: paddle.Tensor) -> paddle.Tensor:
        """Unnormalised vectors ``(K, H)`` of the item ids ``(K,)``, computed for those items only."""
        vectors = self.ids(items)
        if self.tags is not None:
            tags = paddle.gather(self.item_tags, items)  # (K, T)
            present = (tags > 0).astype(vectors.dtype)
            summed = paddle.matmul(present.unsqueeze(1), self.tags(tags)).squeeze(1)  # the present tags' sum
            vectors = vectors + summed / present.sum(axis=1, keepdim=True).clip(min=1.0)
        if self.title is not None:
            vectors = vectors + self.title(paddle.gather(self.title_vectors, items).detach())
        return vectors

    def table(self) -> paddle.Tensor:
        return self.vectors(paddle.arange(self.ids.weight.shape[0], dtype="int64"))

    def forward(self, items: paddle.Tensor) -> paddle.Tensor:
        """Unnormalised vectors of ``items`` (any shape) -> ``(*items.shape, H)``: each item's own parts when
        there are fewer ids than items (a batch's positives), else gathered from the whole table (histories)."""
        flat = items.reshape([-1])
        if flat.shape[0] is not None and 0 <= flat.shape[0] <= self.ids.weight.shape[0]:
            return self.vectors(flat).reshape([*items.shape, -1])
        return paddle.gather(self.table(), flat).reshape([*items.shape, -1])


class UserTower(nn.Layer):
    """``forward(history (B, L) int64, profile (B, F) int64) -> (B, H)`` unit vectors.

    ``history_items`` maps item ids ``(B, L)`` to ``(B, L, H)``: an own ``nn.Embedding`` or the :class:`ItemTower`.
    ``profile_sizes[f]`` is the number of known values of field ``f`` (its embedding has one more row: 0 = unknown).
    """

    def __init__(self, history_items: nn.Layer, hidden: int, max_len: int, profile_sizes: list[int],
                 pooling: Literal["mean", "position"] = "mean", recent: int = 0, dropout: float = 0.1) -> None:
        super().__init__()
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
        if not 0 <= recent <= max_len:
            raise ValueError(f"recent must be in 0..max_len={max_len}, got {recent}")
        self.history_items, self.pooling, self.recent, self.max_len = history_items, pooling, recent, max_len
        # zeros: the position-weighted pooling starts as the plain mean
        self.position_logits = self.create_parameter([max_len], default_initializer=nn.initializer.Constant(0.0)) \
            if pooling == "position" else None
        self.profile = nn.LayerList([nn.Embedding(size + 1, hidden) for size in profile_sizes])
        width = hidden * (1 + recent + len(profile_sizes))
        self.mlp = nn.Sequential(nn.Linear(width, hidden * 2), nn.GELU(), nn.Dropout(dropout),
                                 nn.Linear(hidden * 2, hidden))

    def forward(self, history: paddle.Tensor, profile: paddle.Tensor) -> paddle.Tensor:
        vectors = self.history_items(history)  # (B, L, H)
        keep = (history > 0).astype(vectors.dtype)
        if self.position_logits is not None:
            length = history.shape[1]
            logits = self.position_logits[self.max_len - length:].unsqueeze(0) + (1.0 - keep) * MASKED
            weights = F.softmax(logits, axis=-1) * keep  # an empty history: all weights 0, not NaN
        else:
            weights = keep / keep.sum(axis=1, keepdim=True).clip(min=1.0)
        parts = [paddle.matmul(weights.unsqueeze(1), vectors).squeeze(1)]  # one batched matmul: the weighted sum
        if self.recent:  # left-padded: the last ``recent`` positions are the newest items (0 vectors if fewer)
            parts.append((vectors[:, -self.recent:] * keep[:, -self.recent:].unsqueeze(-1)).flatten(1))
        parts.extend(embed(profile[:, f]) for f, embed in enumerate(self.profile))
        return l2_normalise(self.mlp(paddle.concat(parts, axis=-1)))


class TwoTowerModel(nn.Layer):
    """A :class:`UserTower` (``self.user_tower``) and an :class:`ItemTower` (``self.items``); ``model_config()``
    (with the buffers' shapes) rebuilds it from a checkpoint."""

    def __init__(self, num_items: int, max_len: int, hidden: int, profile_sizes: list[int],
                 temperature: float = 0.05, history_input: str = "own", pooling: str = "mean", recent: int = 0,
                 dropout: float = 0.1, item_tags: Optional[np.ndarray] = None,
                 title_vectors: Optional[np.ndarray] = None) -> None:
        super().__init__()
        if history_input not in HISTORY_INPUTS:
            raise ValueError(f"history_input must be one of {HISTORY_INPUTS}, got {history_input!r}")
        if temperature <= 0:
            raise ValueError(f"temperature must be positive, got {temperature}")
        self.config = {"name": "two_tower", "num_items": num_items, "max_len": max_len, "hidden": hidden,
                       "profile_sizes": list(profile_sizes), "temperature": temperature,
                       "history_input": history_input, "pooling": pooling, "recent": recent, "dropout": dropout,
                       "item_tags": None if item_tags is None else list(item_tags.shape),
                       "num_tags": None if item_tags is None else int(item_tags.max()),
                       "title_vectors": None if title_vectors is None else list(title_vectors.shape)}
        self.temperature = temperature
        self.items = ItemTower(num_items, hidden, item_tags, title_vectors)
        # "items": the user tower reads the history through the item tower itself (shared weights)
        history_items = self.items if history_input == "items" else nn.Embedding(num_items + 1, hidden, padding_idx=0)
        self.user_tower = UserTower(history_items, hidden, max_len, profile_sizes, pooling, recent, dropout)

    @classmethod
    def from_model_config(cls, meta: dict[str, Any]) -> "TwoTowerModel":
        """An untrained model of the saved shapes (the buffers are placeholders until the weights are loaded)."""
        tags = None
        if meta["item_tags"]:
            tags = np.zeros(meta["item_tags"], dtype="int64")
            tags[-1, -1] = meta["num_tags"]  # sizes the tag embedding as the saved one
        titles = np.zeros(meta["title_vectors"], dtype="float32") if meta["title_vectors"] else None
        return cls(meta["num_items"], meta["max_len"], meta["hidden"], meta["profile_sizes"], meta["temperature"],
                   meta["history_input"], meta["pooling"], meta["recent"], meta["dropout"], tags, titles)

    def forward(self, history: paddle.Tensor, profile: paddle.Tensor) -> paddle.Tensor:
        """User vectors ``(B, H)`` of left-padded histories ``(B, L)`` and profile ids ``(B, F)``."""
        return self.user_tower(history, profile)

    def item_vectors(self, items: paddle.Tensor) -> paddle.Tensor:
        """Unit vectors ``(B, H)`` of the items ``(B,)``."""
        return l2_normalise(self.items.vectors(items))

    def item_table(self) -> paddle.Tensor:
        """Unit vectors ``(N + 1, H)`` of every item (row 0, the padding item, is never a candidate)."""
        return l2_normalise(self.items.table())

    def scores(self, history: paddle.Tensor, profile: paddle.Tensor) -> paddle.Tensor:
        """``(B, N + 1)``: user·item / temperature for every item; column 0 (padding) is pushed to the bottom."""
        scores = paddle.matmul(self.user_tower(history, profile), self.item_table(), transpose_y=True)
        scores = scores / self.temperature
        return scores - F.one_hot(paddle.zeros([1], "int64"), scores.shape[1]) * 1e9

    def model_config(self) -> dict[str, Any]:
        return dict(self.config)


def in_batch_softmax_loss(users: paddle.Tensor, items: paddle.Tensor, targets: paddle.Tensor, temperature: float,
                          log_q: Optional[paddle.Tensor] = None) -> paddle.Tensor:
    """Softmax cross-entropy of each row's own positive against the other rows' positives.

    Args:
        users: ``(B, H)`` user vectors; items: ``(B, H)`` the vectors of each row's positive item.
        targets: ``(B,)`` the positive item ids: a column whose item equals the row's own positive is not a
            negative there (a duplicated positive would otherwise be pushed away from the user who chose it).
        log_q: ``(B,)`` log sampling probability of each column's item (its share of the training targets):
            subtracted from every logit of that column, so that popular items, which are more often in-batch
            negatives, are not pushed down beyond what a full softmax would do (the log-Q correction).

    Returns:
        the mean loss over the rows (a scalar).
    """
    logits = paddle.matmul(users, items, transpose_y=True).astype("float32") / temperature
    if log_q is not None:
        logits = logits - log_q.astype("float32").unsqueeze(0)
    same = targets.unsqueeze(1) == targets.unsqueeze(0)
    other = paddle.logical_and(same, paddle.eye(targets.shape[0]) == 0)
    logits = paddle.where(other, paddle.full_like(logits, MASKED), logits)
    return F.cross_entropy(logits, paddle.arange(targets.shape[0], dtype="int64"))
