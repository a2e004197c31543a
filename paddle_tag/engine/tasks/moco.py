"""MoCo v2: queries from the online backbone + head (2-layer MLP without BatchNorm), keys from the momentum copy.

The momentum copy is an EMA of the online weights with ``Pretrain.momentum``, updated before the keys are
computed; InfoNCE scores each query against the key of the same image and the ``Pretrain.queue_size`` queued keys
of earlier batches; then the keys are enqueued. Shuffle-BN on one device: queries and keys are each run in
``Pretrain.bn_splits`` sub-batches with their own BatchNorm statistics, the keys after a random permutation of the
batch (undone afterwards), so a query and its key are normalised with the same statistics only with probability
``1 / bn_splits``, as with that many GPUs — the "SplitBatchNorm + shuffle" of MoCo's single-GPU CIFAR demo, done
by splitting the forward pass instead of replacing the BatchNorm layers. ``last/`` adds ``momentum.safetensors``
(key encoder, head and queue) so a resumed run continues exactly.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Optional

import numpy as np
import paddle
import paddle.nn as nn
import paddle.nn.functional as F
from safetensors.numpy import save_file

from paddle_tag.config import Config
from paddle_tag.data.augment.image import moco_v2_transform
from paddle_tag.data.images import ImageSet
from paddle_tag.engine.runtime import Runtime
from paddle_tag.engine.tasks.image_contrastive import ImageContrastive, ImageKnnMonitor, contrastive_image_model
from paddle_tag.losses import InfoNCELoss
from paddle_tag.losses.moco import MoCoQueue, copy_and_freeze, momentum_update
from paddle_tag.models.image import ContrastiveImageModel
from paddle_tag.models.serialization import load_weights, state_to_numpy

MOMENTUM_STATE = "momentum.safetensors"


class MoCoKeys(nn.Layer):
    """MoCo's key side: a frozen copy of the online backbone + head (``encoder.*``, ``projection.*``, moved only
    by :func:`momentum_update`) and the :class:`MoCoQueue` of negatives (``queue.*``)."""

    def __init__(self, online: ContrastiveImageModel, queue_size: int, dim: int) -> None:
        super().__init__()
        key = copy_and_freeze(online)
        self.encoder, self.projection = key.encoder, key.projection
        self.queue = MoCoQueue(dim, queue_size)

    def forward(self, images: paddle.Tensor) -> paddle.Tensor:
        features = self.encoder(images)
        return self.projection(features) if self.projection is not None else features


class MoCo(ImageContrastive):
    kind = "moco"

    @classmethod
    def from_config(cls, config: Config, runtime: Runtime) -> "MoCo":
        images, monitor = cls.read_data(config)
        model = contrastive_image_model(config, batch_norm_head=False)  # MoCo v2's head has no BatchNorm
        dim = model.projection.out_dim if model.projection is not None else model.encoder.feature_dim
        return cls(config, runtime, model, images, moco_v2_transform(config.Data.image_size),
                   InfoNCELoss(config.Pretrain.temperature), monitor, MoCoKeys(model, config.Pretrain.queue_size, dim))

    def __init__(self, config: Config, runtime: Runtime, model: ContrastiveImageModel, images: ImageSet,
                 transform: Callable, loss_fn: paddle.nn.Layer, monitor: Optional[ImageKnnMonitor],
                 keys: MoCoKeys) -> None:
        super().__init__(config, runtime, model, images, transform, loss_fn, monitor)
        self.keys = keys

    def on_fit_start(self, out: Path) -> None:
        self.model.train()
        self.keys.train()  # keys are computed with batch statistics, as the online side

    def batch_loss(self, forward: paddle.nn.Layer, indices: np.ndarray, step: int) -> paddle.Tensor:
        queries, keys_in = paddle.to_tensor(self.views(indices, step)).chunk(2, axis=0)
        splits, pre = self.config.Pretrain.bn_splits, self.config.Pretrain
        with self.runtime.autocast():
            q = paddle.concat([forward(part) for part in paddle.split(queries, splits)])
        with paddle.no_grad():
            momentum_update(self.model, self.keys, pre.momentum)
            perm = np.random.default_rng([self.config.Global.seed, step, 1]).permutation(keys_in.shape[0])
            shuffled = paddle.gather(keys_in, paddle.to_tensor(perm))
            with self.runtime.autocast():
                k = paddle.concat([self.keys(part) for part in paddle.split(shuffled, splits)])
            k = paddle.gather(k, paddle.to_tensor(np.argsort(perm))).astype("float32")  # back to batch order
        loss = self.loss_fn(q.astype("float32"), k, negatives=self.keys.queue.negatives())
        self.keys.queue.enqueue(F.normalize(k, axis=1))
        return loss

    def write_weights(self, directory: Path, training: bool) -> None:
        super().write_weights(directory, training)
        if training:
            save_file(state_to_numpy(self.keys), str(directory / MOMENTUM_STATE))

    def restore_weights(self, directory: Path) -> None:
        super().restore_weights(directory)
        load_weights(self.keys, directory / MOMENTUM_STATE)
