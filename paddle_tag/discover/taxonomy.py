"""The taxonomy a discovery run produces: what the pipeline hands to the tag store, and what assignment reads.

The one contract between ``paddle_tag.discover``'s pipeline steps (embed → reduce → cluster → name) and its
database (``store``): the pipeline builds a :class:`Taxonomy`, the store writes it in one transaction as a
new taxonomy version, and ``assign`` reads the current version back as a :class:`Taxonomy`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np


@dataclass
class Tag:
    """One discovered tag: a cluster of items, named by its keywords.

    ``key`` is the tag's index within its taxonomy (0 .. n-1, largest cluster first, ties by centroid order),
    stable for the same config and seed; the store gives each tag its own database id as well.
    """

    key: int
    name: str
    keywords: list[tuple[str, float]]  # (word, c-TF-IDF weight), best first
    centroid: np.ndarray               # (D,) float32, unit length, in the embedding space items are compared in
    size: int                          # items assigned to the tag by the run


@dataclass
class Item:
    """A piece of content: ``item_id`` is the JSONL ``id`` field when present, else the line's position."""

    item_id: str
    text: str


@dataclass
class Assignment:
    """An item's tag (``tag_key`` None = outlier / unassigned) and its cosine similarity to that tag's centroid."""

    item_id: str
    tag_key: Optional[int]
    score: float


@dataclass
class Taxonomy:
    """Tags, the items they were found in and their assignments, and how they were made."""

    tags: list[Tag]
    items: list[Item]
    assignments: list[Assignment]
    embedder: str                            # what embedded the items: a model directory, or "tfidf"
    params: dict[str, Any] = field(default_factory=dict)  # the resolved Discover.* config of the run

    @property
    def dim(self) -> int:
        return int(self.tags[0].centroid.shape[0]) if self.tags else 0

    def outlier_share(self) -> float:
        """The fraction of items left unassigned."""
        if not self.assignments:
            return 0.0
        return sum(a.tag_key is None for a in self.assignments) / len(self.assignments)
