"""MoCo v2 pieces: a FIFO queue of past keys as negatives, and the momentum (EMA) key encoder."""
from __future__ import annotations

import copy

import paddle
import paddle.nn as nn
import paddle.nn.functional as F


class MoCoQueue(nn.Layer):
    """A FIFO of ``size`` L2-normalised keys ``(size, dim)``, the negatives of MoCo's InfoNCE.

    The keys and the write pointer are buffers, so they are saved in ``state_dict`` and resume with training.
    The queue starts as random unit vectors drawn from Paddle's RNG (``paddle.seed`` makes it reproducible).
    MoCo v2's default size is 65536. With several data-parallel ranks, enqueue the keys gathered from all ranks
    (e.g. ``gather_with_grad(k).detach()``) so that every rank keeps the same queue.
    """

    def __init__(self, dim: int, size: int = 65536):
        super().__init__()
        if dim < 1:
            raise ValueError(f"dim must be >= 1, got {dim}")
        if size < 1:
            raise ValueError(f"size must be >= 1, got {size}")
        self.dim = dim
        self.size = size
        self.register_buffer("queue", F.normalize(paddle.randn([size, dim], dtype="float32"), axis=1))
        self.register_buffer("ptr", paddle.zeros([1], dtype="int64"))

    @paddle.no_grad()
    def enqueue(self, keys: paddle.Tensor) -> None:
        """Write ``keys`` ``(B, dim)`` (normalised, detached) over the oldest entries, wrapping around the end.

        Any ``B`` works, also one that does not divide ``size``; with ``B > size`` only the last ``size`` keys stay.
        """
        if keys.ndim != 2 or keys.shape[1] != self.dim:
            raise ValueError(f"keys must be (B, {self.dim}), got shape {list(keys.shape)}")
        batch = keys.shape[0]
        if batch == 0:
            return
        start = int(self.ptr.item())
        index = (paddle.arange(start, start + batch, dtype="int64") % self.size)[-self.size:]
        updates = F.normalize(keys.detach().astype(self.queue.dtype), axis=1)[-self.size:]
        self.queue.set_value(paddle.scatter(self.queue, index, updates, overwrite=True))
        self.ptr.set_value(paddle.to_tensor([(start + batch) % self.size], dtype="int64"))

    def negatives(self) -> paddle.Tensor:
        """The queued keys ``(size, dim)``: a detached copy, so a later :meth:`enqueue` cannot change a
        tensor that the current loss still needs for its backward pass."""
        return self.queue.clone().detach()


@paddle.no_grad()
def momentum_update(online: nn.Layer, target: nn.Layer, momentum: float = 0.999) -> None:
    """In place, for every parameter: ``target = momentum * target + (1 - momentum) * online``.

    Only parameters move; buffers (e.g. BatchNorm statistics) of ``target`` are its own. Both layers must have
    the same parameter names and shapes (``target`` is usually :func:`copy_and_freeze` of ``online``).
    MoCo's default momentum is 0.999.
    """
    if not 0.0 <= momentum <= 1.0:
        raise ValueError(f"momentum must be in [0, 1], got {momentum}")
    online_params = dict(online.named_parameters())
    target_params = dict(target.named_parameters())
    if online_params.keys() != target_params.keys():
        missing = sorted(online_params.keys() - target_params.keys())
        extra = sorted(target_params.keys() - online_params.keys())
        raise ValueError(f"online and target layers have different parameters: missing in target {missing}, "
                         f"only in target {extra}")
    for name, param in online_params.items():
        if list(param.shape) != list(target_params[name].shape):
            raise ValueError(f"parameter {name!r} has shape {list(param.shape)} in online but "
                             f"{list(target_params[name].shape)} in target")
    for name, param in online_params.items():
        target_param = target_params[name]
        target_param.set_value(momentum * target_param + (1.0 - momentum) * param.astype(target_param.dtype))


def copy_and_freeze(online: nn.Layer) -> nn.Layer:
    """A deep copy of ``online`` whose parameters have ``stop_gradient=True``: MoCo's key (target) encoder.

    It starts equal to ``online`` and then follows it only through :func:`momentum_update`.
    """
    target = copy.deepcopy(online)
    for param in target.parameters():
        param.stop_gradient = True
    return target
