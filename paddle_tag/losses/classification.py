"""Classification losses for tagging: softmax cross-entropy (one tag) and sigmoid BCE (many tags)."""
from __future__ import annotations

import paddle
import paddle.nn as nn
import paddle.nn.functional as F


class CrossEntropyLoss(nn.Layer):
    """Multi-class loss. ``logits`` ``(B, C)``, ``targets`` ``(B,)`` int64 class ids."""

    def __init__(self, label_smoothing: float = 0.0):
        super().__init__()
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing}")
        self.label_smoothing = label_smoothing

    def forward(self, logits: paddle.Tensor, targets: paddle.Tensor) -> paddle.Tensor:
        return F.cross_entropy(logits, targets, label_smoothing=self.label_smoothing)


class BCEWithLogitsLoss(nn.Layer):
    """Multi-label loss. ``logits`` ``(B, C)``, ``targets`` ``(B, C)`` multi-hot float32; mean over all cells."""

    def forward(self, logits: paddle.Tensor, targets: paddle.Tensor) -> paddle.Tensor:
        return F.binary_cross_entropy_with_logits(logits, targets)
