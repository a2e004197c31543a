"""Small composable numpy image transforms for contrastive (SimCLR, MoCo v2) and tagging training.

Every transform is called as ``t(img, rng)`` with an explicit ``numpy.random.Generator`` (the same
seed gives the same output) and never changes ``img`` in place. Images are HWC ``float32`` arrays in
[0, 1] with 1 (grayscale) or 3 (RGB) channels; :class:`ToFloat` turns uint8 ``(H, W)`` / ``(H, W, C)``
into that, :class:`Normalize` and :class:`ToCHW` end a pipeline. The random ones with a ``p``
(:class:`HorizontalFlip`, :class:`ColorJitter`, :class:`RandomGrayscale`, :class:`GaussianBlur`)
draw once from ``rng`` to decide whether to apply, whatever ``p`` is, so the stream stays aligned.
:func:`simclr_transform` and :func:`moco_v2_transform` are the papers' view pipelines adapted to
28×28 grayscale Fashion-MNIST; :func:`eval_transform` is the matching deterministic one.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from numbers import Real
from typing import Sequence

import cv2
import numpy as np

from paddle_tag.data.augment.common import apply_in_order, check_rng

__all__ = ["ColorJitter", "FASHION_MNIST_MEAN", "FASHION_MNIST_STD", "GaussianBlur", "GrayToRGB",
           "HorizontalFlip", "ImageCompose", "ImageTransform", "Normalize", "RandomApply",
           "RandomGrayscale", "RandomResizedCrop", "Resize", "ToCHW", "ToFloat", "eval_transform",
           "moco_v2_transform", "simclr_transform"]

#: Pixel mean / std of the 60,000 Fashion-MNIST train images, scaled to [0, 1].
FASHION_MNIST_MEAN, FASHION_MNIST_STD = 0.2860, 0.3530
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)  # ITU-R 601, as PIL's convert("L")


def _number(name: str, value: object, low: float = 0.0, high: float = math.inf) -> float:
    if isinstance(value, bool) or not isinstance(value, Real) or not low <= value <= high:
        raise ValueError(f"{name} must be a number in [{low}, {high}], got {value!r}")
    return float(value)


def _interval(name: str, value: object, low: float, high: float = math.inf) -> tuple[float, float]:
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        raise ValueError(f"{name} must be a pair (min, max), got {value!r}")
    a, b = (_number(name, v, low, high) for v in value)
    if a > b:
        raise ValueError(f"{name} must have min <= max, got {value!r}")
    return a, b


def _size(value: object) -> tuple[int, int]:
    pair = (value, value) if not isinstance(value, (tuple, list)) else tuple(value)
    if len(pair) != 2 or any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in pair):
        raise ValueError(f"size must be a positive int or a pair (height, width) of them, got {value!r}")
    return int(pair[0]), int(pair[1])


def _check_image(img: object) -> np.ndarray:
    if not isinstance(img, np.ndarray) or img.dtype != np.float32 or img.ndim != 3 or img.shape[2] not in (1, 3):
        what = f"{img.dtype} {img.shape}" if isinstance(img, np.ndarray) else type(img).__name__
        raise ValueError(f"image must be a float32 HWC array with 1 or 3 channels (use ToFloat first), got {what}")
    return img


def _gray(img: np.ndarray) -> np.ndarray:
    """``(H, W, 1)`` luma of a 3-channel image (the image itself if it has one channel)."""
    return img if img.shape[2] == 1 else (img @ _LUMA)[..., None]


def _resize(img: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    out = cv2.resize(img, (hw[1], hw[0]), interpolation=cv2.INTER_LINEAR)
    return out.reshape(hw[0], hw[1], img.shape[2])  # cv2 drops a single channel axis


class ImageTransform(ABC):
    """Base class: ``t(img, rng) -> img`` on float32 HWC images; ``rng`` is unused by deterministic ones."""

    @abstractmethod
    def __call__(self, img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Return the transformed image (a new array, or ``img`` itself when unchanged)."""

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({args})"


class RandomApply(ImageTransform):
    """Base class of the transforms applied with probability ``p`` (one ``rng`` draw per call)."""

    def __init__(self, p: float) -> None:
        self.p = _number("p", p, 0.0, 1.0)

    def __call__(self, img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        _check_image(img)
        if check_rng(rng).random() >= self.p:
            return img
        return self.apply(img, rng)

    @abstractmethod
    def apply(self, img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Transform ``img`` (always; ``p`` is handled by ``__call__``)."""


class ToFloat(ImageTransform):
    """uint8 ``(H, W)`` or ``(H, W, C)`` -> float32 ``(H, W, C)`` in [0, 1] (float input: cast only)."""

    def __call__(self, img: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
        if not isinstance(img, np.ndarray) or img.ndim not in (2, 3):
            raise ValueError(f"image must be a (H, W) or (H, W, C) array, got {getattr(img, 'shape', img)!r}")
        img = img[..., None] if img.ndim == 2 else img
        if img.dtype == np.uint8:
            return img.astype(np.float32) / np.float32(255.0)
        if np.issubdtype(img.dtype, np.floating):
            return img.astype(np.float32)
        raise ValueError(f"image dtype must be uint8 or floating, got {img.dtype}")


class RandomResizedCrop(ImageTransform):
    """Crop a random area fraction in ``scale`` and aspect ratio in ``ratio``, resize to ``size``.

    torchvision's algorithm: up to 10 tries of area ~ U(scale) · H·W, log-aspect ~ U(log ratio);
    else a centre crop clamped to ``ratio``. Resized with ``cv2.INTER_LINEAR``. Always applied.
    Shapes: ``(H, W, C)`` -> ``(size, size, C)``.
    """

    def __init__(self, size: int | tuple[int, int], scale: tuple[float, float] = (0.2, 1.0),
                 ratio: tuple[float, float] = (3 / 4, 4 / 3)) -> None:
        self.size = _size(size)
        self.scale = _interval("scale", scale, 0.0, 1.0)
        self.ratio = _interval("ratio", ratio, 1e-6)
        if self.scale[1] <= 0:
            raise ValueError(f"scale must allow a positive area, got {scale!r}")

    def box(self, height: int, width: int, rng: np.random.Generator) -> tuple[int, int, int, int]:
        """A crop ``(top, left, h, w)`` of a ``height × width`` image."""
        area, log_r = height * width, np.log(self.ratio)
        for _ in range(10):
            target = area * rng.uniform(*self.scale)
            aspect = math.exp(rng.uniform(*log_r))
            w, h = round(math.sqrt(target * aspect)), round(math.sqrt(target / aspect))
            if 0 < w <= width and 0 < h <= height:
                return int(rng.integers(0, height - h + 1)), int(rng.integers(0, width - w + 1)), h, w
        aspect, (lo, hi) = width / height, self.ratio
        if aspect < lo:
            w, h = width, min(height, round(width / lo))
        elif aspect > hi:
            w, h = min(width, round(height * hi)), height
        else:
            w, h = width, height
        return (height - h) // 2, (width - w) // 2, h, w

    def __call__(self, img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        _check_image(img)
        top, left, h, w = self.box(img.shape[0], img.shape[1], check_rng(rng))
        return _resize(img[top:top + h, left:left + w], self.size)


class Resize(ImageTransform):
    """Resize to ``size`` with ``cv2.INTER_LINEAR`` (deterministic). ``(H, W, C) -> (h, w, C)``."""

    def __init__(self, size: int | tuple[int, int]) -> None:
        self.size = _size(size)

    def __call__(self, img: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
        return _resize(_check_image(img), self.size)


class HorizontalFlip(RandomApply):
    """Mirror left-right with probability ``p``."""

    def __init__(self, p: float = 0.5) -> None:
        super().__init__(p)

    def apply(self, img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return np.ascontiguousarray(img[:, ::-1])


class ColorJitter(RandomApply):
    """Random brightness, contrast, saturation and hue, in a random order, with probability ``p``.

    Factors as torchvision: brightness / contrast / saturation ~ U(max(0, 1 - x), 1 + x), hue shift
    ~ U(-hue, hue) of a full turn. Brightness scales the pixels, contrast blends with the mean gray
    level, saturation with the grayscale image, hue rotates the HSV hue; results are clipped to [0, 1].
    On one channel saturation and hue are a no-op (a gray image has none), though their factors are
    still drawn, so the ``rng`` stream does not depend on the channel count.
    """

    def __init__(self, brightness: float = 0.4, contrast: float = 0.4, saturation: float = 0.4,
                 hue: float = 0.1, p: float = 0.8) -> None:
        super().__init__(p)
        self.brightness = _number("brightness", brightness)
        self.contrast = _number("contrast", contrast)
        self.saturation = _number("saturation", saturation)
        self.hue = _number("hue", hue, 0.0, 0.5)

    def apply(self, img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        factors = [rng.uniform(max(0.0, 1 - x), 1 + x) for x in (self.brightness, self.contrast, self.saturation)]
        shift = rng.uniform(-self.hue, self.hue)
        out = img
        for op in rng.permutation(4):
            if op == 0:
                out = out * np.float32(factors[0])
            elif op == 1:
                mean = _gray(out).mean(dtype=np.float32)
                out = (out - mean) * np.float32(factors[1]) + mean
            elif op == 2 and out.shape[2] == 3:
                out = (out - _gray(out)) * np.float32(factors[2]) + _gray(out)
            elif op == 3 and out.shape[2] == 3 and shift != 0:
                hsv = cv2.cvtColor(np.clip(out, 0, 1).astype(np.float32), cv2.COLOR_RGB2HSV)
                hsv[..., 0] = (hsv[..., 0] + np.float32(360.0 * shift)) % np.float32(360.0)
                out = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
            out = np.clip(out, 0.0, 1.0).astype(np.float32)
        return out


class RandomGrayscale(RandomApply):
    """With probability ``p``, replace the 3 channels by their luma (0.299 R + 0.587 G + 0.114 B).

    The channel count is kept; on a 1-channel image it is a no-op (already gray).
    """

    def __init__(self, p: float = 0.2) -> None:
        super().__init__(p)

    def apply(self, img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return img if img.shape[2] == 1 else np.repeat(_gray(img), 3, axis=2).astype(np.float32)


class GaussianBlur(RandomApply):
    """With probability ``p``, blur with a Gaussian of ``sigma`` ~ U(sigma) pixels.

    The kernel covers ±4 sigma (``cv2.GaussianBlur`` with ksize 0 on float32); borders reflect (101).
    """

    def __init__(self, p: float = 0.5, sigma: tuple[float, float] = (0.1, 2.0)) -> None:
        super().__init__(p)
        self.sigma = _interval("sigma", sigma, 1e-3)

    def apply(self, img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        s = float(rng.uniform(*self.sigma))
        return cv2.GaussianBlur(img, (0, 0), sigmaX=s, sigmaY=s).reshape(img.shape)


class GrayToRGB(ImageTransform):
    """Replicate one channel into three ``(H, W, 1) -> (H, W, 3)`` (PaddleClas backbones take 3);
    a 3-channel image is returned unchanged."""

    def __call__(self, img: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
        return img if _check_image(img).shape[2] == 3 else np.repeat(img, 3, axis=2)


class Normalize(ImageTransform):
    """``(img - mean) / std`` per channel; ``mean``/``std`` a number or one per channel (std > 0)."""

    def __init__(self, mean: float | Sequence[float], std: float | Sequence[float]) -> None:
        self.mean = [_number("mean", m, -math.inf) for m in np.atleast_1d(np.asarray(mean, dtype=object))]
        self.std = [_number("std", s, 1e-12) for s in np.atleast_1d(np.asarray(std, dtype=object))]
        if not self.mean or not self.std:
            raise ValueError(f"mean and std must not be empty, got {mean!r}, {std!r}")

    def __call__(self, img: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
        c = _check_image(img).shape[2]
        if {len(self.mean), len(self.std)} - {1, c}:
            raise ValueError(f"Normalize has {len(self.mean)} means and {len(self.std)} stds for a "
                             f"{c}-channel image")
        return ((img - np.float32(self.mean)) / np.float32(self.std)).astype(np.float32)


class ToCHW(ImageTransform):
    """HWC -> CHW (contiguous float32), the layout of Paddle's conv layers. Ends a pipeline."""

    def __call__(self, img: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
        return np.ascontiguousarray(_check_image(img).transpose(2, 0, 1))


class ImageCompose(ImageTransform):
    """Apply transforms in order, all drawing from one ``rng``; an empty list is the identity."""

    def __init__(self, transforms: Sequence[ImageTransform]) -> None:
        if not isinstance(transforms, (list, tuple)) or not all(callable(t) for t in transforms):
            raise ValueError(f"transforms must be a list of callables (img, rng) -> img, got {transforms!r}")
        self.transforms = list(transforms)

    def __call__(self, img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return apply_in_order(self.transforms, img, rng)

    def __len__(self) -> int:
        return len(self.transforms)


def _tail(mean: float, std: float) -> list[ImageTransform]:
    return [GrayToRGB(), Normalize([mean] * 3, [std] * 3), ToCHW()]


def simclr_transform(size: int = 32, mean: float = FASHION_MNIST_MEAN,
                     std: float = FASHION_MNIST_STD) -> ImageCompose:
    """SimCLR's view (Chen et al. 2020, CIFAR-10 settings) for 28×28 grayscale: uint8 -> ``(3, size, size)``.

    ToFloat; RandomResizedCrop straight from 28×28 to ``size``×``size`` (bilinear) with scale
    (0.2, 1) instead of (0.08, 1), which would leave 8×8 pixels of an item; flip p=0.5; color jitter
    strength 0.5 (0.4, 0.4, 0.4, 0.1) p=0.8; grayscale p=0.2; no blur (the paper drops it on 32×32
    CIFAR); then the channel replicated to 3 and normalized with the Fashion-MNIST mean/std. On
    grayscale input only brightness and contrast act (saturation, hue and grayscale are no-ops).
    """
    return ImageCompose([ToFloat(), RandomResizedCrop(size, scale=(0.2, 1.0)), HorizontalFlip(0.5),
                         ColorJitter(0.4, 0.4, 0.4, 0.1, p=0.8), RandomGrayscale(0.2), *_tail(mean, std)])


def moco_v2_transform(size: int = 32, mean: float = FASHION_MNIST_MEAN,
                      std: float = FASHION_MNIST_STD) -> ImageCompose:
    """MoCo v2's view (Chen et al. 2020, "aug+") for 28×28 grayscale: uint8 -> ``(3, size, size)``.

    As :func:`simclr_transform` (crop scale (0.2, 1) as in MoCo v2 itself), with MoCo v2's jitter
    (0.4, 0.4, 0.4, 0.1) p=0.8, grayscale p=0.2, and Gaussian blur p=0.5 whose sigma range
    (0.1, 2.0) at 224 px is scaled to ``size`` (e.g. (0.014, 0.29) at 32 px; at least 0.01).
    """
    k = size / 224
    sigma = (max(0.01, 0.1 * k), max(0.01, 2.0 * k))
    return ImageCompose([ToFloat(), RandomResizedCrop(size, scale=(0.2, 1.0)), HorizontalFlip(0.5),
                         ColorJitter(0.4, 0.4, 0.4, 0.1, p=0.8), RandomGrayscale(0.2),
                         GaussianBlur(0.5, sigma=sigma), *_tail(mean, std)])


def eval_transform(size: int = 32, mean: float = FASHION_MNIST_MEAN,
                   std: float = FASHION_MNIST_STD) -> ImageCompose:
    """The deterministic counterpart: ToFloat, Resize to ``size`` (bilinear), GrayToRGB, Normalize, ToCHW."""
    return ImageCompose([ToFloat(), Resize(size), *_tail(mean, std)])
