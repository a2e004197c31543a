"""Contrastive losses on L2-normalised embeddings: InfoNCE (SimCSE, MoCo) and NT-Xent (SimCLR).

Both are a softmax cross-entropy over cosine similarities divided by a temperature. With
``gather_distributed=True`` and several data-parallel ranks, the other ranks' embeddings join as extra
negatives (see :func:`paddle_tag.utils.distributed.gather_with_grad`); in a single process that is a no-op.
"""
from __future__ import annotations

import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from paddle_tag.utils.distributed import gather_with_grad, rank_offset


def _check_temperature(temperature: float) -> None:
    if not temperature > 0:  # also rejects NaN
        raise ValueError(f"temperature must be > 0, got {temperature}")


def _check_pair(a: paddle.Tensor, b: paddle.Tensor, names: tuple[str, str]) -> None:
    if a.ndim != 2:
        raise ValueError(f"{names[0]} must be 2-D (B, D), got shape {list(a.shape)}")
    if list(a.shape) != list(b.shape):
        raise ValueError(f"{names[0]} and {names[1]} must have the same (B, D) shape, "
                         f"got {list(a.shape)} and {list(b.shape)}")


class InfoNCELoss(nn.Layer):
    """InfoNCE: each query must pick its own key among all keys (and optional extra negatives).

    ``query`` and ``key`` ``(B, D)`` are L2-normalised; ``logits = q @ k_all.T / temperature`` where ``k_all``
    ``(world_size * B, D)`` are the keys of every rank, then ``negatives`` ``(N, D)`` (normalised too) appended as
    columns: ``(B, world_size * B + N)``. The positive of query ``i`` is key ``i`` of this rank. Returns the
    cross-entropy averaged over the ``B`` queries, a scalar.

    SimCSE: ``key`` is a second dropout view of the same sentences, so gradients reach both. MoCo: ``key`` comes
    from the momentum encoder and is detached by the caller, ``negatives`` is :meth:`MoCoQueue.negatives`.
    The default temperature 0.05 is SimCSE's (MoCo v2 uses 0.2).
    """

    def __init__(self, temperature: float = 0.05, gather_distributed: bool = True):
        super().__init__()
        _check_temperature(temperature)
        self.temperature = temperature
        self.gather_distributed = gather_distributed

    def forward(self, query: paddle.Tensor, key: paddle.Tensor,
                negatives: paddle.Tensor | None = None) -> paddle.Tensor:
        _check_pair(query, key, ("query", "key"))
        if negatives is not None and (negatives.ndim != 2 or negatives.shape[1] != query.shape[1]):
            raise ValueError(f"negatives must be (N, D) with D={query.shape[1]} like query, "
                             f"got shape {list(negatives.shape)}")
        batch = query.shape[0]
        q = F.normalize(query, axis=1)
        k = F.normalize(key, axis=1)
        offset = 0
        if self.gather_distributed:
            k = gather_with_grad(k)
            offset = rank_offset(batch)
        if negatives is not None:
            k = paddle.concat([k, F.normalize(negatives, axis=1)], axis=0)
        logits = paddle.matmul(q, k, transpose_y=True) / self.temperature
        labels = paddle.arange(offset, offset + batch, dtype="int64")
        return F.cross_entropy(logits, labels)


class NTXentLoss(nn.Layer):
    """NT-Xent (SimCLR): two augmented views; each embedding must pick its other view among all others.

    ``view0`` and ``view1`` ``(B, D)`` are L2-normalised and stacked into ``2B`` embeddings (``2 * world_size * B``
    across ranks). Row ``i`` of ``view0`` has ``view1[i]`` as its positive and vice versa; every other embedding
    except itself (its self-similarity is masked out) is a negative: ``2B - 2`` in one process. Returns the
    cross-entropy averaged over both directions (all ``2B`` local rows), a scalar. The default temperature 0.5 is
    SimCLR's.
    """

    def __init__(self, temperature: float = 0.5, gather_distributed: bool = True):
        super().__init__()
        _check_temperature(temperature)
        self.temperature = temperature
        self.gather_distributed = gather_distributed

    def forward(self, view0: paddle.Tensor, view1: paddle.Tensor) -> paddle.Tensor:
        _check_pair(view0, view1, ("view0", "view1"))
        batch = view0.shape[0]
        z0 = F.normalize(view0, axis=1)
        z1 = F.normalize(view1, axis=1)
        local = paddle.concat([z0, z1], axis=0)  # (2B, D)
        offset = 0
        if self.gather_distributed:
            z0, z1 = gather_with_grad(z0), gather_with_grad(z1)
            offset = rank_offset(batch)
        total = z0.shape[0]  # world_size * B
        everyone = paddle.concat([z0, z1], axis=0)  # (2 * total, D)
        logits = paddle.matmul(local, everyone, transpose_y=True) / self.temperature  # (2B, 2 * total)
        rows = paddle.arange(offset, offset + batch, dtype="int64")
        self_cols = paddle.concat([rows, rows + total])
        positive_cols = paddle.concat([rows + total, rows])
        is_self = F.one_hot(self_cols, 2 * total).astype("bool")
        logits = paddle.where(is_self, paddle.full_like(logits, float("-inf")), logits)
        return F.cross_entropy(logits, positive_cols)
