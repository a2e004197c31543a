"""Asymmetric loss (ASL, Ridnik et al. 2021) for multi-label tagging; focal loss (Lin et al. 2017) is its
symmetric special case.

With many tags and few positives per item, plain BCE is dominated by the mass of easy negatives. ASL
down-weights them twice: a focusing factor ``p^gamma_neg`` (as focal loss) and a probability margin ``clip``
that shifts every negative's probability down (``p_m = max(p - clip, 0)``), so very easy negatives contribute
nothing at all, while positives keep a milder ``(1 - p)^gamma_pos``::

    L = - mean over cells [ y (1 - p)^γ+ log p  +  (1 - y) p_m^γ- log(1 - p_m) ]

``gamma_pos = gamma_neg = γ`` and ``clip = 0`` is focal loss (without its α weighting). The mean over cells
(not the paper's sum) keeps the scale of :class:`~paddle_tag.losses.classification.BCEWithLogitsLoss`, so
learning rates carry over; ``gamma_pos = gamma_neg = clip = 0`` gives exactly BCE.

Shapes: ``logits`` ``(B, C)``, ``targets`` ``(B, C)`` multi-hot float32.
"""
from __future__ import annotations

import paddle
import paddle.nn as nn
import paddle.nn.functional as F

EPS = 1e-8  # floor under the probabilities whose log is taken


class AsymmetricLoss(nn.Layer):
    """ASL with the paper's defaults (``gamma_neg=4, gamma_pos=0, clip=0.05``)."""

    def __init__(self, gamma_neg: float = 4.0, gamma_pos: float = 0.0, clip: float = 0.05):
        super().__init__()
        if gamma_neg < 0 or gamma_pos < 0:
            raise ValueError(f"gamma_neg and gamma_pos must be >= 0, got {gamma_neg}, {gamma_pos}")
        if not 0 <= clip < 1:
            raise ValueError(f"clip must be in [0, 1), got {clip}")
        self.gamma_neg, self.gamma_pos, self.clip = gamma_neg, gamma_pos, clip

    def forward(self, logits: paddle.Tensor, targets: paddle.Tensor) -> paddle.Tensor:
        p = F.sigmoid(logits)
        p_neg = (p - self.clip).clip(min=0.0) if self.clip > 0 else p
        log_pos = F.log_sigmoid(logits)  # log p, exact for very negative logits
        log_neg = paddle.log((1.0 - p_neg).clip(min=EPS))
        pos = targets * log_pos
        neg = (1.0 - targets) * log_neg
        if self.gamma_pos > 0:
            pos = pos * paddle.pow(1.0 - p, self.gamma_pos)
        if self.gamma_neg > 0:
            neg = neg * paddle.pow(p_neg, self.gamma_neg)
        return -(pos + neg).mean()


class FocalLoss(AsymmetricLoss):
    """Sigmoid focal loss: ``(1 - p_t)^gamma`` down-weights the well-classified cells, positive or negative."""

    def __init__(self, gamma: float = 2.0):
        super().__init__(gamma_neg=gamma, gamma_pos=gamma, clip=0.0)
