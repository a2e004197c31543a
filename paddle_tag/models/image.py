"""Image models on a PaddleClas backbone (:class:`~paddle_tag.models.backbones.ImageEncoder`).

:class:`ImageTagger` is the image counterpart of the text :class:`~paddle_tag.models.tagger.Tagger`
(``forward_features`` → pooled backbone features, ``forward_head`` → logits, the head named
``classifier`` so ``Optimizer.head_lr_scale`` applies, the same label-prior bias); it is saved in a
checkpoint as ``model.safetensors`` + ``model_config.json`` with ``"modality": "image"`` and no tokenizer.
:class:`ContrastiveImageModel` is what SimCLR / MoCo v2 train: backbone + projection head.
"""
from __future__ import annotations

from typing import Any, Optional

import numpy as np
import paddle
import paddle.nn as nn

from paddle_tag.data.images import eval_transform, image_batch
from paddle_tag.models.backbones import ImageEncoder
from paddle_tag.models.tagger import Tagger


class ImageTagger(nn.Layer):
    """Backbone + dropout + linear head. Inputs: float32 images ``(B, 3, S, S)``; output logits ``(B, C)``."""

    modality = "image"

    def __init__(self, encoder: ImageEncoder, num_labels: int, head_dropout: float = 0.1, image_size: int = 32):
        super().__init__()
        if num_labels < 2:
            raise ValueError(f"a tagger needs at least 2 labels, got {num_labels}")
        self.encoder, self.num_labels, self.image_size = encoder, num_labels, image_size
        self.dropout = nn.Dropout(head_dropout)
        self.classifier = nn.Linear(encoder.feature_dim, num_labels)

    def forward_features(self, images: paddle.Tensor) -> paddle.Tensor:
        """Pooled backbone features ``(B, D)``."""
        return self.encoder(images)

    def forward_head(self, features: paddle.Tensor) -> paddle.Tensor:
        """Logits ``(B, C)`` from features ``(B, D)``."""
        return self.classifier(self.dropout(features))

    def forward(self, images: paddle.Tensor) -> paddle.Tensor:
        return self.forward_head(self.forward_features(images))

    # the text tagger's prior initialisation uses only num_labels and classifier: shared as is
    init_head_bias = Tagger.init_head_bias

    def model_config(self) -> dict[str, Any]:
        """What ``model_config.json`` records to rebuild this tagger (see :meth:`from_model_config`)."""
        return {"modality": "image", "backbone": self.encoder.name, "feature_dim": self.encoder.feature_dim,
                "num_labels": self.num_labels, "head_dropout": float(self.dropout.p), "image_size": self.image_size}

    @classmethod
    def from_model_config(cls, meta: dict[str, Any]) -> "ImageTagger":
        """A randomly initialised tagger of the shape ``meta`` describes (weights are loaded by the caller)."""
        return cls(ImageEncoder(meta["backbone"]), int(meta["num_labels"]), float(meta["head_dropout"]),
                   int(meta["image_size"]))


class ContrastiveImageModel(nn.Layer):
    """Backbone + optional projection head: ``forward_features`` ``(B, D)`` is what transfers (and what the
    kNN monitor sees), ``forward`` ``(B, P)`` is what the contrastive loss sees."""

    def __init__(self, encoder: ImageEncoder, projection: Optional[nn.Layer] = None) -> None:
        super().__init__()
        self.encoder, self.projection = encoder, projection

    def forward_features(self, images: paddle.Tensor) -> paddle.Tensor:
        return self.encoder(images)

    def forward(self, images: paddle.Tensor) -> paddle.Tensor:
        features = self.encoder(images)
        return self.projection(features) if self.projection is not None else features


@paddle.no_grad()
def embed_images(model: ContrastiveImageModel, images: np.ndarray, size: int, batch_size: int) -> np.ndarray:
    """Backbone features ``(N, D)`` of uint8 images with the eval transform (model left in its mode)."""
    transform, rng = eval_transform(size), np.random.default_rng(0)  # deterministic: rng unused
    return np.concatenate([model.forward_features(paddle.to_tensor(
        image_batch(images[i:i + batch_size], transform, rng))).astype("float32").numpy()
        for i in range(0, len(images), batch_size)])
