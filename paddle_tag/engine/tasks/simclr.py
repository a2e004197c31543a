"""SimCLR: both views of a batch go through backbone + projection head (2-layer MLP with BatchNorm) in *one*
forward pass of ``2B`` images, then NT-Xent (``2B - 2`` negatives per view).

One pass is the single-device form of SimCLR's global BatchNorm: the statistics are those of all ``2B`` views, so
a positive pair cannot be told apart by its own sub-batch's statistics.
"""
from __future__ import annotations

import numpy as np
import paddle

from paddle_tag.config import Config
from paddle_tag.data.augment.image import simclr_transform
from paddle_tag.engine.runtime import Runtime
from paddle_tag.engine.tasks.image_contrastive import ImageContrastive, contrastive_image_model
from paddle_tag.losses import NTXentLoss


class SimCLR(ImageContrastive):
    kind = "simclr"

    @classmethod
    def from_config(cls, config: Config, runtime: Runtime) -> "SimCLR":
        images, monitor = cls.read_data(config)
        model = contrastive_image_model(config, batch_norm_head=True)
        return cls(config, runtime, model, images, simclr_transform(config.Data.image_size),
                   NTXentLoss(config.Pretrain.temperature), monitor)

    def batch_loss(self, forward: paddle.nn.Layer, indices: np.ndarray, step: int) -> paddle.Tensor:
        views = paddle.to_tensor(self.views(indices, step))
        with self.runtime.autocast():
            projections = forward(views)  # one pass over both views: BatchNorm sees all 2B
        first, second = projections.astype("float32").chunk(2, axis=0)
        return self.loss_fn(first, second)
