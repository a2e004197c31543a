"""Next-item models over behaviour sequences: SASRec (causal self-attention) and GRU4Rec (a GRU).

Both read a user's history as item indices ``(B, L)``, left-padded with 0, and return one hidden state per
position ``(B, L, H)``; the state at position ``t`` scores every item as the one after position ``t`` by a dot
product with :meth:`ItemEmbedding.table` (the same item vectors as the input: shared input and output
embeddings, as SASRec does). An item's vector is its id embedding plus, with ``item_tags``, the mean of its tags'
embeddings, so items with few interactions borrow from the tags they share with others.
"""
from __future__ import annotations

from typing import Any, Optional

import numpy as np
import paddle
import paddle.nn as nn

from paddle_tag.config import SEQUENCE_MODELS

MASKED = -1e4  # additive attention mask: exp() underflows to 0, and it stays finite in float16


class ItemEmbedding(nn.Layer):
    """Item vectors ``(N + 1, H)``: id embedding (+ mean tag embedding); row 0 is the padding item."""

    def __init__(self, num_items: int, hidden: int, item_tags: Optional[np.ndarray] = None) -> None:
        super().__init__()
        self.ids = nn.Embedding(num_items + 1, hidden, padding_idx=0)
        self.tags = None
        if item_tags is not None:  # (N + 1, T) tag ids + 1, 0 = no tag
            self.register_buffer("item_tags", paddle.to_tensor(item_tags.astype("int64")))
            self.tags = nn.Embedding(int(item_tags.max()) + 1, hidden, padding_idx=0)

    def table(self) -> paddle.Tensor:
        vectors = self.ids.weight
        if self.tags is not None:
            present = (self.item_tags > 0).astype(vectors.dtype)
            summed = (self.tags(self.item_tags) * present.unsqueeze(-1)).sum(axis=1)
            vectors = vectors + summed / present.sum(axis=1, keepdim=True).clip(min=1.0)
        return vectors

    def forward(self, items: paddle.Tensor) -> paddle.Tensor:
        return paddle.gather(self.table(), items.reshape([-1])).reshape([*items.shape, -1])


class SASRec(nn.Layer):
    """Self-attentive sequential recommendation (Kang & McAuley 2018): learned positions, pre-norm causal
    Transformer blocks; padded positions are zeroed and never attended to."""

    def __init__(self, num_items: int, max_len: int, hidden: int = 64, layers: int = 2, heads: int = 1,
                 dropout: float = 0.2, item_tags: Optional[np.ndarray] = None) -> None:
        super().__init__()
        self.items = ItemEmbedding(num_items, hidden, item_tags)
        self.positions = nn.Embedding(max_len, hidden)
        self.dropout = nn.Dropout(dropout)
        # a plain list of layers, not nn.TransformerEncoder: importing PaddleNLP patches that class's forward
        self.blocks = nn.LayerList([nn.TransformerEncoderLayer(hidden, heads, hidden, dropout, activation="gelu",
                                                               normalize_before=True) for _ in range(layers)])
        self.norm = nn.LayerNorm(hidden)
        self.max_len, self.hidden = max_len, hidden

    def forward(self, items: paddle.Tensor) -> paddle.Tensor:
        length = items.shape[1]
        keep = (items > 0).astype("float32").unsqueeze(-1)
        x = self.items(items) * self.hidden ** 0.5 + self.positions(paddle.arange(length)).unsqueeze(0)
        x = self.dropout(x) * keep
        causal = paddle.triu(paddle.full([length, length], MASKED), diagonal=1)
        padded_keys = (1.0 - keep.squeeze(-1)).unsqueeze(1).unsqueeze(1) * MASKED  # (B, 1, 1, L)
        mask = causal.unsqueeze(0).unsqueeze(0) + padded_keys
        for block in self.blocks:
            x = block(x, src_mask=mask)
        return self.norm(x) * keep


class GRU4Rec(nn.Layer):
    """GRU4Rec (Hidesi et al. 2016) with full-softmax cross-entropy: a GRU over item (+ tag) embeddings.

    Left padding is zero input; a GRU started from zeros and fed zeros stays near zero, and only the states at
    real positions are scored."""

    def __init__(self, num_items: int, max_len: int, hidden: int = 64, layers: int = 1, heads: int = 1,
                 dropout: float = 0.2, item_tags: Optional[np.ndarray] = None) -> None:
        super().__init__()
        self.items = ItemEmbedding(num_items, hidden, item_tags)
        self.dropout = nn.Dropout(dropout)
        self.gru = nn.GRU(hidden, hidden, num_layers=layers, dropout=dropout if layers > 1 else 0.0)
        self.project = nn.Linear(hidden, hidden)  # GRU states are in (-1, 1); the item table is not
        self.max_len, self.hidden = max_len, hidden

    def forward(self, items: paddle.Tensor) -> paddle.Tensor:
        keep = (items > 0).astype("float32").unsqueeze(-1)
        states, _ = self.gru(self.dropout(self.items(items) * keep))
        return self.project(self.dropout(states)) * keep


#: Model.name → class; the names are config.recommend_schema.SEQUENCE_MODELS (checked at import)
MODELS: dict[str, type[nn.Layer]] = {"sasrec": SASRec, "gru4rec": GRU4Rec}
if tuple(MODELS) != SEQUENCE_MODELS:
    raise ImportError(f"{__name__}.MODELS {tuple(MODELS)} and config SEQUENCE_MODELS {SEQUENCE_MODELS} must agree")


class NextItemModel(nn.Layer):
    """A sequence model and the item table it scores against; ``model_config()`` rebuilds it."""

    def __init__(self, name: str, num_items: int, max_len: int, hidden: int, layers: int, heads: int,
                 dropout: float, item_tags: Optional[np.ndarray] = None) -> None:
        super().__init__()
        self.config = {"name": name, "num_items": num_items, "max_len": max_len, "hidden": hidden,
                       "layers": layers, "heads": heads, "dropout": dropout, "item_tags": item_tags is not None}
        self.net = MODELS[name](num_items, max_len, hidden, layers, heads, dropout, item_tags)

    def forward(self, items: paddle.Tensor) -> paddle.Tensor:
        """Hidden states ``(B, L, H)`` of left-padded histories ``(B, L)``."""
        return self.net(items)

    def item_table(self) -> paddle.Tensor:
        return self.net.items.table()

    def last_state(self, items: paddle.Tensor) -> paddle.Tensor:
        """The user vector ``(B, H)``: the hidden state after the last item (histories are left-padded)."""
        return self.net(items)[:, -1]

    def scores(self, items: paddle.Tensor) -> paddle.Tensor:
        """Scores ``(B, N + 1)`` of every item as the next one; column 0 (padding) is never a candidate."""
        scores = paddle.matmul(self.last_state(items), self.item_table(), transpose_y=True)
        return scores - paddle.nn.functional.one_hot(paddle.zeros([1], "int64"), scores.shape[1]) * 1e9

    def model_config(self) -> dict[str, Any]:
        return dict(self.config)
