"""Window pooling: the features of a text's windows ``(B, N, H)`` → one feature vector per text ``(B, H)``.

A long text is read as up to ``N`` windows (:mod:`paddle_tag.data.text_inputs`); ``mask`` ``(B, N)`` is 1 for a
text's real windows and 0 for the all-pad windows that fill a batch up to its longest text. With one window
every pooling is the identity.

- ``max``: element-wise max over the windows — a tag cue found in any window survives, whatever the length;
- ``mean``: the average of the windows;
- ``attention``: a learned score per window, ``v · tanh(W f + b)``, softmax over the text's windows, weighted sum
  (Yang et al. 2016's attention pooling, at window level).

:data:`WINDOW_POOLINGS` maps ``Model.window_pooling`` to the class.
"""
from __future__ import annotations

import paddle
import paddle.nn as nn
import paddle.nn.functional as F

MASKED = -1e4  # added to the scores / features of padding windows (finite: fp16-safe, exports cleanly)


class MaxPooling(nn.Layer):
    """Element-wise max over a text's windows."""

    def forward(self, features: paddle.Tensor, mask: paddle.Tensor) -> paddle.Tensor:
        return (features + (1.0 - mask.unsqueeze(-1)) * MASKED).max(axis=1)


class MeanPooling(nn.Layer):
    """Average of a text's windows."""

    def forward(self, features: paddle.Tensor, mask: paddle.Tensor) -> paddle.Tensor:
        weights = mask.unsqueeze(-1)
        return (features * weights).sum(axis=1) / weights.sum(axis=1).clip(min=1.0)


class AttentionPooling(nn.Layer):
    """Softmax-weighted sum of a text's windows; the weights come from a one-hidden-layer scorer."""

    def __init__(self, hidden_size: int):
        super().__init__()
        self.project = nn.Linear(hidden_size, hidden_size)
        self.score = nn.Linear(hidden_size, 1, bias_attr=False)

    def forward(self, features: paddle.Tensor, mask: paddle.Tensor) -> paddle.Tensor:
        scores = self.score(paddle.tanh(self.project(features))).squeeze(-1)  # (B, N)
        weights = F.softmax(scores + (1.0 - mask) * MASKED, axis=-1)
        return (features * weights.unsqueeze(-1)).sum(axis=1)


WINDOW_POOLINGS = {"max": MaxPooling, "mean": MeanPooling, "attention": AttentionPooling}


def build_window_pooling(name: str, hidden_size: int) -> nn.Layer:
    """The pooling ``Model.window_pooling`` names."""
    if name not in WINDOW_POOLINGS:
        raise ValueError(f"window pooling must be one of {sorted(WINDOW_POOLINGS)}, got {name!r}")
    return AttentionPooling(hidden_size) if name == "attention" else WINDOW_POOLINGS[name]()
