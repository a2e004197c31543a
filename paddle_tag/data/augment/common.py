"""What the text and image augmentations share: the ``rng`` check and running steps in order."""

from __future__ import annotations

from typing import Callable, Iterable, TypeVar

import numpy as np

T = TypeVar("T")


def check_rng(rng: object) -> np.random.Generator:
    """Return ``rng``; raise :class:`TypeError` unless it is a ``numpy.random.Generator``."""
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator (numpy.random.default_rng(seed)), "
                        f"got {type(rng).__name__}")
    return rng


def apply_in_order(steps: Iterable[Callable[[T, np.random.Generator], T]], x: T, rng: np.random.Generator) -> T:
    """Pass ``x`` through every step ``(x, rng) -> x`` in order, all drawing from one ``rng``."""
    check_rng(rng)
    for step in steps:
        x = step(x, rng)
    return x
