"""The label set: tag names ↔ class ids, read from the training data and saved with the model."""
from __future__ import annotations

import os
from collections import Counter
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from paddle_tag.data.readers import Example
from paddle_tag.errors import DataError, ModelLoadError
from paddle_tag.utils.io import atomic_write_json, read_json

TASKS = ("multi_class", "multi_label")


class LabelSet:
    """An ordered list of tag names; ids are positions in the list."""

    def __init__(self, names: Sequence[str]):
        if len(set(names)) != len(names):
            raise ValueError("label names must be unique")
        self.names = list(names)
        self.index = {name: i for i, name in enumerate(self.names)}

    def __len__(self) -> int:
        return len(self.names)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, LabelSet) and self.names == other.names

    @classmethod
    def from_examples(cls, examples: Iterable[Example]) -> "LabelSet":
        """Every label seen, sorted, so ids do not depend on line order."""
        counts = Counter(label for ex in examples for label in ex.labels)
        return cls(sorted(counts))

    def check_known(self, examples: Sequence[Example], split: str = "eval") -> None:
        """Raise :class:`DataError` naming each label the training data never had, with its first line."""
        unseen: dict[str, str] = {}
        for ex in examples:
            for label in ex.labels:
                if label not in self.index and label not in unseen:
                    unseen[label] = ex.where
        if unseen:
            listed = "; ".join(f"{label!r} (first at {where})" for label, where in list(unseen.items())[:10])
            raise DataError(f"the {split} data has {len(unseen)} label(s) that training never saw: {listed}")

    def encode(self, examples: Sequence[Example], task: str) -> np.ndarray:
        """Class ids ``(N,)`` int64 for ``multi_class``; multi-hot ``(N, C)`` float32 for ``multi_label``."""
        if task == "multi_class":
            for ex in examples:
                if len(ex.labels) != 1:
                    raise DataError(f"{ex.where}: Data.task=multi_class needs exactly one label, got {ex.labels}; "
                                    "use Data.task=multi_label for several tags per item")
            return np.array([self.index[ex.labels[0]] for ex in examples], dtype="int64")
        if task == "multi_label":
            hot = np.zeros((len(examples), len(self)), dtype="float32")
            for row, ex in enumerate(examples):
                hot[row, [self.index[label] for label in ex.labels]] = 1.0
            return hot
        raise ValueError(f"unknown task {task!r}; expected one of {TASKS}")

    def save(self, path: str | os.PathLike) -> None:
        atomic_write_json(path, self.names)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "LabelSet":
        path = Path(path)
        if not path.is_file():
            raise ModelLoadError(f"label list not found: {path}")
        names = read_json(path)
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise ModelLoadError(f"{path}: expected a JSON list of tag names")
        return cls(names)
