"""The tagger: a text encoder read window by window, window pooling, a linear head, and an optional wide part.

``forward_features`` gives the pooled embedding of each text (used by contrastive pretraining and tag
discovery); ``forward_head`` maps it (and, with a wide part, the text's characters) to logits; ``forward``
chains both. Inputs (keyword arguments, see :class:`paddle_tag.data.dataset.Batch`):

- ``input_ids`` ``(B, T)``: one window per text (``Data.on_long_text: truncate``), or ``(B, N, T)``: up to ``N``
  windows per text (``windows``; all-pad windows fill a batch up to its longest text and are skipped);
- ``char_ids`` ``(B, L)``: the texts' Unicode code points, for the wide part (:mod:`paddle_tag.models.wide`);
- ``window_features`` ``(B, N, H)`` + ``window_mask`` ``(B, N)``: a frozen encoder's pooled windows, read from
  a cache in place of ``input_ids`` (``Model.freeze_encoder``).
"""
from __future__ import annotations

from typing import Optional

import numpy as np
import paddle
import paddle.nn as nn

from paddle_tag.models.wide import HashedNgrams
from paddle_tag.models.window_pooling import build_window_pooling

POOLINGS = ("cls", "mean")
# parameter-name prefixes of the layers a tagger adds on top of its encoder: they start from nothing, so the
# optimizer gives them their own learning rate (Optimizer.head_lr_scale)
HEAD_PREFIXES = ("classifier.", "wide.", "window_pool.")


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
    """Encoder + pooling + window pooling + dropout + linear head (+ wide part)."""

    def __init__(self, encoder: nn.Layer, num_labels: int, pad_id: int, pooling: str = "cls",
                 head_dropout: float = 0.1, window_pooling: str = "max", wide: Optional[HashedNgrams] = None):
        super().__init__()
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
        if num_labels < 2:
            raise ValueError(f"a tagger needs at least 2 labels, got {num_labels}")
        if wide is not None and wide.num_labels != num_labels:
            raise ValueError(f"the wide part has {wide.num_labels} labels, the tagger {num_labels}")
        self.encoder = encoder
        self.pooling = pooling
        self.pad_id = pad_id
        self.num_labels = num_labels
        hidden = int(encoder.config.hidden_size)
        self.window_pooling = window_pooling
        self.window_pool = build_window_pooling(window_pooling, hidden)
        self.dropout = nn.Dropout(head_dropout)
        self.classifier = nn.Linear(hidden, num_labels)
        self.wide = wide

    def encode_windows(self, input_ids: paddle.Tensor) -> tuple[paddle.Tensor, paddle.Tensor]:
        """Pooled features ``(B, N, H)`` of the windows ``(B, N, T)`` and their mask ``(B, N)``. Only the real
        windows go through the encoder: all-pad ones are gathered out and come back as zeros."""
        shape = paddle.shape(input_ids)  # dynamic dims: the exported graph takes any batch, window count, length
        flat = input_ids.reshape([-1, shape[2]])
        present = (flat != self.pad_id).astype("int64").sum(axis=1) > 0  # (B*N,)
        real = paddle.nonzero(present).flatten()
        pooled = encode_pooled(self.encoder, paddle.gather(flat, real), self.pad_id, self.pooling)
        hidden = int(self.encoder.config.hidden_size)
        features = paddle.scatter(paddle.zeros([paddle.shape(flat)[0], hidden], dtype=pooled.dtype), real, pooled)
        return features.reshape([shape[0], shape[1], hidden]), present.astype("float32").reshape([shape[0], shape[1]])

    def forward_features(self, input_ids: paddle.Tensor) -> paddle.Tensor:
        """Pooled embedding ``(B, H)`` of one window ``(B, T)`` or of up to N windows ``(B, N, T)`` per text."""
        if input_ids.ndim == 2:
            return encode_pooled(self.encoder, input_ids, self.pad_id, self.pooling)
        return self.window_pool(*self.encode_windows(input_ids))

    def forward_head(self, features: paddle.Tensor, char_ids: Optional[paddle.Tensor] = None) -> paddle.Tensor:
        """Logits ``(B, C)`` from pooled features ``(B, H)`` (plus the wide part's, from ``char_ids``)."""
        logits = self.classifier(self.dropout(features))
        if self.wide is not None:
            if char_ids is None:
                raise ValueError("this tagger has a wide part: pass char_ids (the texts' code points)")
            logits = logits + self.wide(char_ids).astype(logits.dtype)
        return logits

    def forward(self, input_ids: Optional[paddle.Tensor] = None, char_ids: Optional[paddle.Tensor] = None,
                window_features: Optional[paddle.Tensor] = None,
                window_mask: Optional[paddle.Tensor] = None) -> paddle.Tensor:
        if window_features is not None:
            features = self.window_pool(window_features, window_mask)
        else:
            features = self.forward_features(input_ids)
        return self.forward_head(features, char_ids)

    def freeze_encoder(self) -> None:
        """Stop training the encoder (its parameters get no gradient; the optimizer leaves them out)."""
        for param in self.encoder.parameters():
            param.stop_gradient = True

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

    def init_head_rows(self, directions: np.ndarray, scale: float) -> None:
        """Start the head's weight rows at ``scale`` × the unit ``directions`` ``(C, H)`` (e.g. the tag names'
        embeddings): before any training, a text scores high on the tags whose direction its features share."""
        directions = np.asarray(directions, dtype="float64")
        if directions.shape != (self.num_labels, self.classifier.weight.shape[0]):
            raise ValueError(f"directions must be ({self.num_labels}, {self.classifier.weight.shape[0]}), "
                             f"got {directions.shape}")
        unit = directions / np.maximum(np.linalg.norm(directions, axis=1, keepdims=True), 1e-12)
        self.classifier.weight.set_value((scale * unit.T).astype("float32"))  # Linear stores (H, C)
