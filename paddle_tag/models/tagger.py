"""The tagger: a text encoder, a pooling step and a linear classification head.

``forward_features`` gives the pooled embedding (used later by contrastive pretraining and tag
discovery); ``forward_head`` maps it to logits; ``forward`` chains both.
"""
from __future__ import annotations

import numpy as np
import paddle
import paddle.nn as nn

POOLINGS = ("cls", "mean")
HEAD_PREFIX = "classifier."  # parameter-name prefix of the head (the optimizer gives it its own lr)


def encode_pooled(encoder: nn.Layer, input_ids: paddle.Tensor, pad_id: int, pooling: str) -> paddle.Tensor:
    """Run ``encoder`` on ``input_ids`` ``(B, T)`` (padded with ``pad_id``) and pool to ``(B, H)``:
    the first token (``cls``) or the mean over non-pad tokens (``mean``)."""
    mask = (input_ids != pad_id).astype("float32")  # (B, T)
    sequence, _ = encoder(input_ids, attention_mask=mask)
    if pooling == "cls":
        return sequence[:, 0]
    summed = (sequence * mask.unsqueeze(-1)).sum(axis=1)
    return summed / mask.sum(axis=1, keepdim=True).clip(min=1.0)


class Tagger(nn.Layer):
    """Encoder + pooling + dropout + linear head. Inputs: ``input_ids`` ``(B, T)`` int64 padded with ``pad_id``."""

    def __init__(self, encoder: nn.Layer, num_labels: int, pad_id: int, pooling: str = "cls",
                 head_dropout: float = 0.1):
        super().__init__()
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
        if num_labels < 2:
            raise ValueError(f"a tagger needs at least 2 labels, got {num_labels}")
        self.encoder = encoder
        self.pooling = pooling
        self.pad_id = pad_id
        self.num_labels = num_labels
        self.dropout = nn.Dropout(head_dropout)
        self.classifier = nn.Linear(encoder.config.hidden_size, num_labels)

    def forward_features(self, input_ids: paddle.Tensor) -> paddle.Tensor:
        """Pooled embedding ``(B, H)``."""
        return encode_pooled(self.encoder, input_ids, self.pad_id, self.pooling)

    def forward_head(self, features: paddle.Tensor) -> paddle.Tensor:
        """Logits ``(B, C)`` from pooled features ``(B, H)``."""
        return self.classifier(self.dropout(features))

    def forward(self, input_ids: paddle.Tensor) -> paddle.Tensor:
        return self.forward_head(self.forward_features(input_ids))

    def init_head_bias(self, targets: np.ndarray, task: str) -> np.ndarray:
        """Start the head's bias at the label prior of ``targets`` and return it.

        ``targets``: ``(N, C)`` multi-hot for multi-label (bias = log-odds of each label's frequency) or
        ``(N,)`` class ids for multi-class (bias = log-frequency). Frequencies are smoothed by half a count
        so a label absent from ``targets`` gets a finite bias.
        """
        n = len(targets)
        if n == 0:
            raise ValueError("cannot compute label priors from an empty target array")
        if task == "multi_label":
            counts = np.asarray(targets, dtype="float64").sum(axis=0)
        else:
            counts = np.bincount(np.asarray(targets, dtype="int64"), minlength=self.num_labels).astype("float64")
        if counts.shape != (self.num_labels,):
            raise ValueError(f"targets have {counts.shape[0]} labels, the head has {self.num_labels}")
        freq = (counts + 0.5) / (n + 1.0)
        bias = np.log(freq / (1.0 - freq)) if task == "multi_label" else np.log(freq)
        self.classifier.bias.set_value(bias.astype("float32"))
        return bias.astype("float32")
