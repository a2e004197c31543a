"""Encoded tagging data and a deterministic, resumable, shardable batch order.

The order of epoch ``e`` is a permutation drawn from ``seed + e``, so a resumed run can skip the
batches it already trained on and see exactly the batches an uninterrupted run would. With data
parallel training each rank takes every ``world_size``-th batch of the same order.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Optional, Sequence

import numpy as np

from paddle_tag.data.labels import LabelSet
from paddle_tag.data.readers import Example
from paddle_tag.data.text_inputs import EncodedTexts, TextInputSpec, encode_for_model, model_inputs, pad_chars


@dataclass
class Batch:
    """Model inputs and targets of one batch (numpy; the trainer moves them to the device).

    ``inputs`` are the model's keyword arguments: ``input_ids`` ``(B, T)`` or windows ``(B, N, T)`` and, with a
    wide part, ``char_ids`` ``(B, L)``; a frozen encoder's cached ``window_features`` ``(B, N, H)`` and
    ``window_mask`` ``(B, N)`` in place of ``input_ids``; ``images`` ``(B, 3, S, S)`` for image taggers.
    """

    inputs: dict[str, np.ndarray]
    targets: Optional[np.ndarray]  # (B,) int64 class ids or (B, C) float32 multi-hot; None when unlabeled
    indices: np.ndarray  # (B,) positions in the dataset


@dataclass
class WindowFeatures:
    """Pooled encoder features of every window of a dataset: text ``i`` owns rows ``offsets[i]:offsets[i+1]``."""

    features: np.ndarray  # (W, H) float32
    offsets: np.ndarray  # (N + 1,) int64, offsets[0] = 0, offsets[-1] = W

    def batch(self, indices: Sequence[int]) -> dict[str, np.ndarray]:
        """``window_features`` ``(B, N, H)`` (zeros past a text's last window) and ``window_mask`` ``(B, N)``."""
        counts = [int(self.offsets[i + 1] - self.offsets[i]) for i in indices]
        out = np.zeros((len(counts), max(counts), self.features.shape[1]), dtype="float32")
        mask = np.zeros((len(counts), max(counts)), dtype="float32")
        for row, (i, n) in enumerate(zip(indices, counts)):
            out[row, :n] = self.features[self.offsets[i]: self.offsets[i + 1]]
            mask[row, :n] = 1.0
        return {"window_features": out, "window_mask": mask}


class TaggingDataset:
    """What the model reads of a list of texts (token windows, character codes) and their targets."""

    def __init__(self, encoded: EncodedTexts, targets: Optional[np.ndarray], pad_id: int, spec: TextInputSpec):
        if targets is not None and len(targets) != len(encoded):
            raise ValueError("texts and targets differ in length")
        self.encoded, self.targets, self.pad_id, self.spec = encoded, targets, pad_id, spec
        self.features: Optional[WindowFeatures] = None  # set by a frozen-encoder run (engine/feature_cache)

    @classmethod
    def from_texts(cls, texts: Sequence[str], tokenizer, spec: TextInputSpec, targets: Optional[np.ndarray] = None,
                   where: Sequence[str] = ()) -> "TaggingDataset":
        return cls(encode_for_model(tokenizer, texts, spec, where), targets, tokenizer.pad_token_id, spec)

    @classmethod
    def from_examples(cls, examples: Sequence[Example], tokenizer, labels: Optional[LabelSet], task: str,
                      spec: TextInputSpec) -> "TaggingDataset":
        """Tokenize ``examples``; encode their labels when a label set is given."""
        targets = labels.encode(examples, task) if labels is not None else None
        return cls.from_texts([ex.text for ex in examples], tokenizer, spec, targets, [ex.where for ex in examples])

    def __len__(self) -> int:
        return len(self.encoded)

    @property
    def cut(self) -> np.ndarray:
        """(N,) bool: the texts of which part was not read (see :mod:`paddle_tag.data.text_inputs`)."""
        return self.encoded.cut

    @property
    def window_counts(self) -> np.ndarray:
        return np.array([len(w) for w in self.encoded.windows], dtype="int64")

    def batch(self, indices: np.ndarray) -> Batch:
        indices = np.asarray(indices, dtype="int64")
        if self.features is not None:
            inputs = self.features.batch(indices)
            if self.encoded.chars is not None:
                inputs["char_ids"] = pad_chars([self.encoded.chars[i] for i in indices], self.spec.min_chars)
        else:
            inputs = model_inputs(self.encoded, indices, self.spec, self.pad_id)
        targets = self.targets[indices] if self.targets is not None else None
        return Batch(inputs, targets, indices)


def epoch_order(size: int, batch_size: int, seed: int, epoch: int, shuffle: bool = True,
                rank: int = 0, world_size: int = 1, drop_last: bool = False) -> list[np.ndarray]:
    """The index batches of one epoch for one rank (same seed+epoch → same batches)."""
    order = np.random.RandomState(seed + epoch).permutation(size) if shuffle else np.arange(size)
    batches = [order[i: i + batch_size] for i in range(0, size, batch_size)]
    if drop_last and batches and len(batches[-1]) < batch_size:
        batches.pop()
    if world_size > 1:  # equal batch counts on every rank, so collective ops stay in step
        usable = len(batches) - len(batches) % world_size
        batches = batches[rank:usable:world_size]
    return batches


def iterate(dataset, batches: Sequence[np.ndarray], skip: int = 0) -> Iterator[Batch]:
    """Yield :class:`Batch` objects for ``batches``, skipping the first ``skip`` (resume mid-epoch)."""
    for indices in batches[skip:]:
        yield dataset.batch(indices)
