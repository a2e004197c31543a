"""The model contrastive text pretraining trains: encoder + pooling + projection head.

``forward_features`` is the pooled embedding that fine-tuning, the kNN monitor and tag discovery use;
``forward`` adds the projection head, which only the contrastive loss sees (SimCLR's finding: the
representation before the head transfers better). The encoder alone is what a pretraining checkpoint
hands on to ``Model.pretrained``.
"""
from __future__ import annotations

from typing import Optional

import paddle
import paddle.nn as nn

from paddle_tag.models.tagger import POOLINGS, encode_pooled


class ContrastiveTextModel(nn.Layer):
    """Encoder + pooling (+ optional :class:`~paddle_tag.models.heads.ProjectionHead`).

    Inputs: ``input_ids`` ``(B, T)`` int64 padded with ``pad_id``. ``forward`` → ``(B, D)`` projected
    embeddings (``D`` = the head's output size, or the encoder's hidden size without a head).
    """

    def __init__(self, encoder: nn.Layer, pad_id: int, pooling: str = "cls",
                 projection: Optional[nn.Layer] = None) -> None:
        super().__init__()
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
        self.encoder, self.pad_id, self.pooling = encoder, pad_id, pooling
        self.projection = projection

    def forward_features(self, input_ids: paddle.Tensor) -> paddle.Tensor:
        """Pooled embedding ``(B, H)``."""
        return encode_pooled(self.encoder, input_ids, self.pad_id, self.pooling)

    def forward(self, input_ids: paddle.Tensor) -> paddle.Tensor:
        features = self.forward_features(input_ids)
        return self.projection(features) if self.projection is not None else features
