"""Cross-rank gathering for contrastive losses: every rank sees the whole global batch as negatives."""
from __future__ import annotations

import paddle
import paddle.distributed as dist


def is_distributed() -> bool:
    """Whether this process is one of several data-parallel ranks with the collective group joined.

    World size and rank come from ``paddle.distributed`` exactly as in :func:`paddle_tag.engine.runtime.setup_runtime`
    (which also calls ``init_parallel_env`` when launched with ``paddle.distributed.launch``); before that call,
    or in a plain single process, everything here is a no-op.
    """
    return dist.get_world_size() > 1 and dist.is_initialized()


def rank_offset(batch_size: int) -> int:
    """Row of this rank's first sample in a tensor from :func:`gather_with_grad`: ``rank * batch_size``.

    0 when not distributed, matching :func:`gather_with_grad` returning its input unchanged.
    """
    if batch_size < 0:
        raise ValueError(f"batch_size must be >= 0, got {batch_size}")
    return dist.get_rank() * batch_size if is_distributed() else 0


class _GatherAllRanks(paddle.autograd.PyLayer):
    """all_gather whose backward sums the gradient over ranks and returns this rank's slice."""

    @staticmethod
    def forward(ctx, x: paddle.Tensor) -> paddle.Tensor:
        shards: list[paddle.Tensor] = []
        dist.all_gather(shards, x)
        ctx.rows = (dist.get_rank() * x.shape[0], (dist.get_rank() + 1) * x.shape[0])
        return paddle.concat(shards, axis=0)

    @staticmethod
    def backward(ctx, grad: paddle.Tensor) -> paddle.Tensor:
        grad = grad.clone()
        dist.all_reduce(grad)  # every rank's loss used this rank's shard: add their gradients
        start, stop = ctx.rows
        return grad[start:stop]


def gather_with_grad(x: paddle.Tensor) -> paddle.Tensor:
    """``x`` ``(B, ...)`` from every rank, concatenated along axis 0 in rank order: ``(world_size * B, ...)``.

    Differentiable across ranks: the gradient reaching this rank's ``x`` is the sum of the gradients of
    every rank's loss with respect to it, so after data-parallel gradient averaging the update equals
    the single-process update on the whole global batch (what SimCLR's and lightly's gather layers do; a
    plain "keep only the local shard's gradient" gather would drop the terms computed on other ranks).
    Every rank must pass the same shape (use ``drop_last=True`` batches). Returns ``x`` when not distributed.
    """
    if not is_distributed():
        return x
    return _GatherAllRanks.apply(x)
