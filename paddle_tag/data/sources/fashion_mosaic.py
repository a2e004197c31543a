"""Multi-label Fashion-MNIST: 2×2 mosaics of four items, tagged with the set of their classes.

Each 56×56 mosaic puts four 28×28 Fashion-MNIST items in its quadrants (row-major: top-left,
top-right, bottom-left, bottom-right); its tags are the Chinese names of the items' classes, 1 to 4
distinct ones. A mosaic is drawn as: the number of distinct tags ``k`` from ``tag_count_probs``
(uniform over 1..4 by default: drawing four items at random would give 1 tag 0.1 % of the time and 4
tags 50 %), ``k`` distinct classes uniformly, the quadrants' classes as those ``k`` plus ``4 - k``
repeats drawn from them, in random order, and for each quadrant the next unused item of its class.

Train and dev mosaics use the Fashion-MNIST *train* items, split per class into two disjoint pools in
proportion to the requested sizes; test mosaics use the *test* items. No item is shared across splits,
and within a split an item is reused only once its class's pool is used up (counted in SOURCE.json).
Outputs in ``out_dir``: ``{train,dev,test}.npz`` (``images`` uint8 ``(N, 56, 56)``, ``labels`` uint8
multi-hot ``(N, 10)``, ``items`` int64 ``(N, 4)``: the quadrants' indices in ``fashion_mnist/<train or
test>.npz``), ``labels.json`` (column order of ``labels``) and ``SOURCE.json``.

The project's readers (:mod:`paddle_tag.data.readers`) read text examples only, so no JSONL index is
written: read the splits with :func:`load_fashion_mosaic`.
"""

from __future__ import annotations

import io
import logging
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from paddle_tag.data.sources import registry
from paddle_tag.data.sources.fashion_mnist import CLASSES, SIZE, load_fashion_mnist, prepare_fashion_mnist
from paddle_tag.errors import ConfigError, DataError
from paddle_tag.utils.io import atomic_write_bytes, atomic_write_json, sha256_file

logger = logging.getLogger(__name__)

GRID = 2
TILES = GRID * GRID
#: Source Fashion-MNIST split of each mosaic split.
SOURCE_SPLIT = {"train": "train", "dev": "train", "test": "test"}
FORMAT_VERSION = 1


def split_pool(labels: np.ndarray, fraction: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Split item indices per class into ``(rest, part)`` with ``round(fraction * n_class)`` in ``part``."""
    rest, part = [], []
    for c in range(len(CLASSES)):
        idx = rng.permutation(np.flatnonzero(labels == c))
        k = int(round(fraction * len(idx)))
        part.append(idx[:k])
        rest.append(idx[k:])
    return np.sort(np.concatenate(rest)), np.sort(np.concatenate(part))


def draw_items(labels: np.ndarray, pool: np.ndarray, n: int, tag_count_probs: Sequence[float],
               rng: np.random.Generator) -> tuple[np.ndarray, int]:
    """Draw ``n`` mosaics from the items ``pool``; return their items ``(n, 4)`` and the reuse count.

    Each class's pool items are used in a random order and reshuffled (reused) only when all were used.
    """
    by_class = [pool[labels[pool] == c] for c in range(len(CLASSES))]
    empty = [CLASSES[c][0] for c, items in enumerate(by_class) if len(items) == 0]
    if empty:
        raise DataError(f"no items of class(es) {', '.join(empty)} in the pool to draw mosaics from")
    queues = [rng.permutation(items) for items in by_class]
    used = [0] * len(CLASSES)
    out = np.empty((n, TILES), dtype=np.int64)
    for i in range(n):
        k = int(rng.choice(TILES, p=tag_count_probs)) + 1
        classes = rng.choice(len(CLASSES), size=k, replace=False)
        quads = rng.permutation(np.concatenate([classes, rng.choice(classes, size=TILES - k)]))
        for q, c in enumerate(quads):
            pos = used[c] % len(by_class[c])
            if pos == 0 and used[c]:
                queues[c] = rng.permutation(by_class[c])
            out[i, q] = queues[c][pos]
            used[c] += 1
    reused = sum(max(0, u - len(items)) for u, items in zip(used, by_class))
    return out, reused


def compose(images: np.ndarray, items: np.ndarray) -> np.ndarray:
    """Mosaics uint8 ``(n, 56, 56)`` of source ``images (N, 28, 28)`` at ``items (n, 4)``, row-major."""
    tiles = images[items]  # (n, 4, 28, 28)
    n = len(items)
    return tiles.reshape(n, GRID, GRID, SIZE, SIZE).transpose(0, 1, 3, 2, 4).reshape(n, GRID * SIZE, GRID * SIZE)


def multi_hot(labels: np.ndarray, items: np.ndarray) -> np.ndarray:
    """Multi-hot uint8 ``(n, 10)``: the classes of each mosaic's four items."""
    out = np.zeros((len(items), len(CLASSES)), dtype=np.uint8)
    np.put_along_axis(out, labels[items], 1, axis=1)
    return out


def load_fashion_mosaic(folder: str | os.PathLike[str], split: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Read ``<folder>/<split>.npz``: images uint8 ``(N, 56, 56)``, labels ``(N, 10)``, items ``(N, 4)``."""
    path = Path(folder) / f"{split}.npz"
    if not path.is_file():
        raise DataError(f"{path} not found; run `python tools/prepare_data.py fashion_mosaic`")
    with np.load(path) as npz:
        return npz["images"], npz["labels"], npz["items"]


def _check(seed: int, sizes: dict[str, int], probs: Sequence[float]) -> list[float]:
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**32:
        raise ConfigError(f"seed must be an integer in [0, 2**32), got {seed!r}")
    for name, n in sizes.items():
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ConfigError(f"{name} (number of mosaics) must be a positive integer, got {n!r}")
    p = [float(x) for x in probs] if isinstance(probs, (list, tuple)) else []
    if len(p) != TILES or min(p) < 0 or abs(sum(p) - 1.0) > 1e-6:
        raise ConfigError(f"tag_count_probs must be {TILES} non-negative numbers (P of 1..{TILES} tags) "
                          f"summing to 1, got {probs!r}")
    return p


def prepare_fashion_mosaic(
    out_dir: str | os.PathLike[str] = "data/fashion_mosaic",
    seed: int = 42,
    train: int = 12_000,
    dev: int = 2_000,
    test: int = 2_000,
    tag_count_probs: Sequence[float] = (0.25, 0.25, 0.25, 0.25),
    cache_dir: str | os.PathLike[str] | None = None,
    force: bool = False,
) -> dict[str, Any]:
    """Prepare Fashion-MNIST next to ``out_dir``, then draw and write the mosaics; return the counts.

    Skips the work when ``out_dir`` holds intact outputs made with the same settings, unless ``force``.
    """
    sizes = {"train": train, "dev": dev, "test": test}
    probs = _check(seed, sizes, tag_count_probs)
    out = Path(out_dir)
    source = out.parent / "fashion_mnist"
    prepare_fashion_mnist(out_dir=source, cache_dir=cache_dir, force=force)
    inputs = {f"{s}.npz": sha256_file(source / f"{s}.npz") for s in ("train", "test")}
    settings = {"seed": seed, "sizes": sizes, "tag_count_probs": probs, "inputs": inputs,
                "format": FORMAT_VERSION}
    skipped = registry.prepared_counts("fashion_mosaic", out, settings, force)
    if skipped is not None:
        return skipped

    data = {s: load_fashion_mnist(source, s) for s in ("train", "test")}
    train_pool, dev_pool = split_pool(data["train"][1], dev / (train + dev), np.random.default_rng([seed, 0]))
    pools = {"train": train_pool, "dev": dev_pool, "test": np.arange(len(data["test"][1]))}
    names = [zh for _, zh in CLASSES]
    outputs: dict[str, str] = {}
    counts: dict[str, Any] = {}
    for k, split in enumerate(registry.SPLITS, start=1):
        images, labels = data[SOURCE_SPLIT[split]]
        items, reused = draw_items(labels, pools[split], sizes[split], probs, np.random.default_rng([seed, k]))
        hot = multi_hot(labels, items)
        buf = io.BytesIO()
        np.savez(buf, images=compose(images, items), labels=hot, items=items)
        atomic_write_bytes(out / f"{split}.npz", buf.getvalue())
        outputs[f"{split}.npz"] = sha256_file(out / f"{split}.npz")
        tags_per = np.bincount(hot.sum(axis=1, dtype=np.int64), minlength=TILES + 1)[1:]
        counts[split] = sizes[split]
        counts[f"{split}_source_pool"] = int(len(pools[split]))
        counts[f"{split}_items_reused"] = int(reused)
        counts[f"{split}_tag_counts"] = {str(t): int(c) for t, c in enumerate(tags_per, start=1)}
        counts[f"{split}_per_tag"] = {name: int(c) for name, c in zip(names, hot.sum(axis=0, dtype=np.int64))}
    atomic_write_json(out / "labels.json", [{"id": i, "name": zh, "name_en": en}
                                            for i, (en, zh) in enumerate(CLASSES)])
    outputs["labels.json"] = sha256_file(out / "labels.json")
    doc = {
        "made_from": {f"fashion_mnist/{name}": digest for name, digest in inputs.items()},
        "steps": [
            f"split the 60,000 Fashion-MNIST train items per class into disjoint pools for train and dev "
            f"mosaics (dev pool fraction {dev}/{train + dev}, numpy default_rng([{seed}, 0])); test mosaics "
            f"use the 10,000 test items",
            f"per split (default_rng([{seed}, 1|2|3]) for train|dev|test): number of distinct tags k ~ "
            f"{probs} over 1..4, k distinct classes uniformly, 4 - k repeats of them, quadrant order "
            f"shuffled, each quadrant the next unused item of its class (reused only when the class's "
            f"pool is used up)",
            "images: 2×2 mosaic uint8 (N, 56, 56), quadrants row-major (TL, TR, BL, BR); labels: uint8 "
            "multi-hot (N, 10) in labels.json order; items: (N, 4) indices into fashion_mnist/"
            "train.npz (train, dev) or test.npz (test)",
        ],
        "settings": settings, "outputs": outputs, "counts": counts,
    }
    atomic_write_json(out / "SOURCE.json", doc)
    logger.info("fashion_mosaic: train %d / dev %d / test %d mosaics", train, dev, test)
    return dict(counts, skipped=False)
