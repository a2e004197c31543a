"""Image sets stored as ``.npz`` (Fashion-MNIST, 2×2 Fashion-MNIST mosaics) and batches of them.

An ``.npz`` image set holds ``images`` uint8 ``(N, H, W)`` (grayscale; 28×28 items or 56×56 mosaics) and,
when labelled, ``labels``: class ids ``(N,)`` (single label) or a 0/1 multi-hot ``(N, C)`` (multi-label);
``python tools/prepare_data.py fashion_mnist fashion_mosaic`` writes them. The class names come from the
``labels.json`` next to the file (``[{"id": 0, "name": ...}, ...]``, or a plain list of names); without one
they are the ids as strings.

:class:`ImageDataset` gives the text :class:`~paddle_tag.data.dataset.TaggingDataset`'s interface
(``len``, ``targets``, ``batch(indices)``) so the tagger :class:`~paddle_tag.engine.trainer.Trainer` and
:func:`~paddle_tag.engine.evaluator.evaluate` train and score images unchanged: the
:class:`~paddle_tag.data.dataset.Batch` it returns carries the float32 images ``(B, 3, S, S)`` in the
field named ``input_ids``.
"""
from __future__ import annotations

import json
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from paddle_tag.config.schema import MIN_IMAGE_SIZE  # defined with Data.image_size, whose range it is
from paddle_tag.data.augment.image import (
    FASHION_MNIST_MEAN,
    FASHION_MNIST_STD,
    GrayToRGB,
    HorizontalFlip,
    ImageCompose,
    ImageTransform,
    Normalize,
    Resize,
    ToCHW,
    ToFloat,
    eval_transform,
)
from paddle_tag.data.dataset import Batch
from paddle_tag.errors import DataError


@dataclass
class ImageSet:
    """Images uint8 ``(N, H, W)``, labels (``(N,)`` int64 ids, ``(N, C)`` float32 multi-hot, or None), names."""

    images: np.ndarray
    labels: Optional[np.ndarray]
    label_names: list[str]
    path: str

    @property
    def task(self) -> Optional[str]:
        """``multi_class`` for class ids, ``multi_label`` for multi-hot rows, None when unlabelled."""
        if self.labels is None:
            return None
        return "multi_class" if self.labels.ndim == 1 else "multi_label"

    def __len__(self) -> int:
        return len(self.images)

    def subset(self, max_items: int, seed: int = 0) -> "ImageSet":
        """At most ``max_items`` images drawn without replacement with ``seed``, in file order (0 = all)."""
        if max_items <= 0 or max_items >= len(self):
            return self
        keep = np.sort(np.random.default_rng(seed).choice(len(self), max_items, replace=False))
        labels = None if self.labels is None else self.labels[keep]
        return ImageSet(self.images[keep], labels, self.label_names, self.path)


def _saved_names(path: Path) -> Optional[list[str]]:
    """The class names of ``labels.json`` next to ``path``, or None when there is none."""
    names_file = path.parent / "labels.json"
    if not names_file.is_file():
        return None
    try:
        raw = json.loads(names_file.read_text(encoding="utf-8"))
        names = [row["name"] if isinstance(row, dict) else row for row in raw]
    except (ValueError, KeyError, TypeError) as exc:
        raise DataError(f"{names_file}: expected a list of names or of {{'id', 'name'}} objects ({exc})") from None
    if not all(isinstance(n, str) for n in names) or len(set(names)) != len(names):
        raise DataError(f"{names_file}: class names must be distinct strings")
    return names


def read_image_set(path: str | os.PathLike, require_labels: bool = True) -> ImageSet:
    """Read and check an ``.npz`` image set; :class:`DataError` names the file and what is wrong."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"image set not found: {path} (python tools/prepare_data.py fashion_mnist fashion_mosaic)")
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {key: npz[key] for key in npz.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise DataError(f"{path}: not a readable .npz file ({type(exc).__name__}: {exc})") from None
    if "images" not in arrays or (require_labels and "labels" not in arrays):
        need = "'images' and 'labels'" if require_labels else "'images'"
        raise DataError(f"{path}: an image set needs the arrays {need}, found {sorted(arrays)}")
    images = arrays["images"]
    if images.dtype != np.uint8 or images.ndim != 3 or min(images.shape) == 0:
        raise DataError(f"{path}: 'images' must be uint8 (N, H, W) grayscale with N, H, W > 0, "
                        f"got {images.dtype} {images.shape}")
    labels = arrays.get("labels")
    if labels is None:
        return ImageSet(images, None, [], str(path))
    if len(labels) != len(images) or labels.ndim not in (1, 2) or not np.issubdtype(labels.dtype, np.integer):
        raise DataError(f"{path}: 'labels' must be integer class ids (N,) or a 0/1 multi-hot (N, C) for the "
                        f"{len(images)} images, got {labels.dtype} {labels.shape}")
    names = _saved_names(path)
    if labels.ndim == 1:
        names = names or [str(i) for i in range(int(labels.max()) + 1)]
        if labels.min() < 0 or labels.max() >= len(names):
            raise DataError(f"{path}: class ids must be in [0, {len(names)}) (the classes of labels.json), "
                            f"got [{labels.min()}, {labels.max()}]")
        return ImageSet(images, labels.astype("int64"), names, str(path))
    names = names or [str(i) for i in range(labels.shape[1])]
    if len(names) != labels.shape[1]:
        raise DataError(f"{path}: {labels.shape[1]} label columns but labels.json names {len(names)} classes")
    if not np.isin(labels, (0, 1)).all():
        raise DataError(f"{path}: a multi-hot 'labels' array may hold only 0 and 1")
    return ImageSet(images, labels.astype("float32"), names, str(path))


def check_image_size(size: int) -> int:
    if isinstance(size, bool) or not isinstance(size, int) or size < MIN_IMAGE_SIZE:
        raise DataError(f"image size must be an int >= {MIN_IMAGE_SIZE}, got {size!r}")
    return size


def flip_transform(size: int) -> ImageCompose:
    """Tagger training: :func:`eval_transform` plus a horizontal flip with p=0.5 (a mosaic keeps its tags)."""
    return ImageCompose([ToFloat(), Resize(size), HorizontalFlip(0.5), GrayToRGB(),
                         Normalize([FASHION_MNIST_MEAN] * 3, [FASHION_MNIST_STD] * 3), ToCHW()])


def image_batch(images: Sequence[np.ndarray], transform: ImageTransform, rng: np.random.Generator) -> np.ndarray:
    """float32 ``(B, 3, S, S)``: ``transform`` (an augment preset) applied to each image in turn, all drawing
    from ``rng``."""
    return np.stack([transform(img, rng) for img in images]).astype("float32", copy=False)


class ImageDataset:
    """An :class:`ImageSet` as the Trainer's dataset: ``batch(indices).inputs["images"]`` are float32 images
    ``(B, 3, S, S)``.

    With ``augment`` the images are flipped at random (:func:`flip_transform`); the flips are drawn from an
    RNG seeded by ``(seed, indices)``, so a batch is the same in a resumed run (the Trainer's batch order
    depends only on seed and epoch). Without it the deterministic :func:`eval_transform` is used.
    """

    def __init__(self, image_set: ImageSet, size: int, augment: bool = False, seed: int = 0) -> None:
        self.images, self.targets = image_set.images, image_set.labels
        self.size, self.augment, self.seed = check_image_size(size), augment, seed
        self.transform = flip_transform(size) if augment else eval_transform(size)

    def __len__(self) -> int:
        return len(self.images)

    def batch(self, indices: np.ndarray) -> Batch:
        indices = np.asarray(indices, dtype="int64")
        rng = np.random.default_rng([self.seed, len(indices), *indices.tolist()])
        images = image_batch(self.images[indices], self.transform, rng)
        targets = self.targets[indices] if self.targets is not None else None
        return Batch({"images": images}, targets, indices)
