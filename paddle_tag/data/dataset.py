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
from paddle_tag.data.tokenizer import encode_texts, pad_batch


@dataclass
class Batch:
    """Model inputs and targets of one batch (numpy; the trainer moves them to the device)."""

    input_ids: np.ndarray  # (B, T) int64, right-padded
    targets: Optional[np.ndarray]  # (B,) int64 class ids or (B, C) float32 multi-hot; None when unlabeled
    indices: np.ndarray  # (B,) positions in the dataset


class TaggingDataset:
    """Token ids and targets of a list of examples."""

    def __init__(self, input_ids: list[list[int]], targets: Optional[np.ndarray], pad_id: int,
                 truncated: int = 0):
        if targets is not None and len(targets) != len(input_ids):
            raise ValueError("input_ids and targets differ in length")
        self.input_ids = input_ids
        self.targets = targets
        self.pad_id = pad_id
        self.truncated = truncated

    @classmethod
    def from_examples(cls, examples: Sequence[Example], tokenizer, labels: Optional[LabelSet], task: str,
                      max_seq_len: int, on_long_text: str = "truncate") -> "TaggingDataset":
        """Tokenize ``examples``; encode their labels when a label set is given."""
        encoded = encode_texts(tokenizer, [ex.text for ex in examples], max_seq_len, on_long_text,
                               where=[ex.where for ex in examples])
        targets = labels.encode(examples, task) if labels is not None else None
        return cls(encoded.input_ids, targets, tokenizer.pad_token_id, encoded.truncated)

    def __len__(self) -> int:
        return len(self.input_ids)

    def batch(self, indices: np.ndarray) -> Batch:
        rows = [self.input_ids[i] for i in indices]
        targets = self.targets[indices] if self.targets is not None else None
        return Batch(pad_batch(rows, self.pad_id), targets, indices)


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


def iterate(dataset: TaggingDataset, batches: Sequence[np.ndarray], skip: int = 0) -> Iterator[Batch]:
    """Yield :class:`Batch` objects for ``batches``, skipping the first ``skip`` (resume mid-epoch)."""
    for indices in batches[skip:]:
        yield dataset.batch(indices)
