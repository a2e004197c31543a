"""Tests of paddle_tag.data.augment.image on real Fashion-MNIST images (prepared from the Debian package)."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import DATA

from paddle_tag.data.augment import (
    ColorJitter,
    GaussianBlur,
    GrayToRGB,
    HorizontalFlip,
    ImageCompose,
    Normalize,
    RandomGrayscale,
    RandomResizedCrop,
    Resize,
    ToCHW,
    ToFloat,
    eval_transform,
    moco_v2_transform,
    simclr_transform,
)
from paddle_tag.data.sources import SUBDIRS, prepare
from paddle_tag.data.sources.fashion_mnist import load_fashion_mnist

N = 6
RANDOM = [RandomResizedCrop(20), HorizontalFlip(1.0), ColorJitter(p=1.0), GaussianBlur(1.0)]


@pytest.fixture(scope="module")
def raw() -> np.ndarray:
    """N real uint8 test images (28, 28), one per class 0..N-1."""
    prepare("fashion_mnist", DATA)
    images, labels = load_fashion_mnist(DATA / SUBDIRS["fashion_mnist"], "test")
    return np.stack([images[np.flatnonzero(labels == c)[0]] for c in range(N)])


@pytest.fixture(scope="module")
def gray(raw) -> list[np.ndarray]:
    return [ToFloat()(img) for img in raw]


@pytest.fixture(scope="module")
def rgb(gray) -> list[np.ndarray]:
    """Tinted 3-channel versions (so saturation, hue and grayscale have something to change)."""
    tint = np.array([1.0, 0.6, 0.2], dtype=np.float32)
    return [GrayToRGB()(img) * tint for img in gray]


def _run(t, imgs, seed=0):
    rng = np.random.default_rng(seed)
    return [t(img, rng) for img in imgs]


def test_to_float(raw) -> None:
    out = ToFloat()(raw[0])
    assert out.shape == (28, 28, 1) and out.dtype == np.float32
    assert np.array_equal(out[..., 0] * 255, raw[0].astype(np.float32)) and out.max() <= 1.0
    with pytest.raises(ValueError, match="uint8 or floating"):
        ToFloat()(raw[0].astype(np.int32))


@pytest.mark.parametrize("t", RANDOM, ids=lambda t: type(t).__name__)
@pytest.mark.parametrize("channels", ["gray", "rgb"])
def test_invariants_determinism_no_inplace(t, channels, request) -> None:
    imgs = request.getfixturevalue(channels)
    before = [img.copy() for img in imgs]
    a, b, c = _run(t, imgs, 0), _run(t, imgs, 0), _run(t, imgs, 1)
    c_in = imgs[0].shape[2]
    for out in a:
        assert out.dtype == np.float32 and out.ndim == 3 and out.shape[2] == c_in
        assert out.min() >= 0.0 and out.max() <= 1.0 + 1e-6
    assert all(np.array_equal(x, y) for x, y in zip(a, b))                  # same seed, same output
    assert all(np.array_equal(x, y) for x, y in zip(imgs, before))          # input untouched
    if not isinstance(t, HorizontalFlip):                                   # flip has no other randomness
        assert any(not np.array_equal(x, y) for x, y in zip(a, c))


@pytest.mark.parametrize("make", [HorizontalFlip, ColorJitter, RandomGrayscale,
                                  lambda p: GaussianBlur(p, sigma=(0.5, 2.0))],  # sigma 0.1: a 1-pixel kernel
                         ids=["flip", "jitter", "grayscale", "blur"])
def test_p0_is_identity_and_p1_changes(make, rgb) -> None:
    assert all(out is img for out, img in zip(_run(make(p=0.0), rgb), rgb))
    assert all(not np.allclose(out, img) for out, img in zip(_run(make(p=1.0), rgb), rgb))


def test_p_decides_with_one_draw_per_call(gray) -> None:
    t, rng = HorizontalFlip(0.5), np.random.default_rng(0)
    flips = [not np.array_equal(t(gray[0], rng), gray[0]) for _ in range(400)]
    assert 150 < sum(flips) < 250
    rng_a, rng_b = np.random.default_rng(5), np.random.default_rng(5)
    HorizontalFlip(0.0)(gray[0], rng_a), HorizontalFlip(1.0)(gray[0], rng_b)
    assert rng_a.random() == rng_b.random()


def test_random_resized_crop(gray) -> None:
    rng = np.random.default_rng(0)
    crop = RandomResizedCrop((24, 20), scale=(0.2, 1.0))
    for _ in range(200):
        top, left, h, w = crop.box(28, 28, rng)
        assert 0 <= top and top + h <= 28 and 0 <= left and left + w <= 28
        assert 0.2 * 784 * 0.8 <= h * w <= 784 and 3 / 4 - 0.1 <= w / h <= 4 / 3 + 0.1
    assert crop(gray[0], rng).shape == (24, 20, 1)
    whole = RandomResizedCrop(40, scale=(1.0, 1.0), ratio=(1.0, 1.0))
    assert np.array_equal(whole(gray[0], rng), Resize(40)(gray[0]))
    assert RandomResizedCrop(8, scale=(1.0, 1.0), ratio=(2.0, 3.0)).box(28, 28, rng) == (7, 0, 14, 28)


def test_flip_and_grayscale(gray, rgb) -> None:
    flipped = HorizontalFlip(1.0)(gray[0], np.random.default_rng(0))
    assert np.array_equal(flipped, gray[0][:, ::-1])
    g = RandomGrayscale(1.0)(rgb[0], np.random.default_rng(0))
    assert g.shape == rgb[0].shape and np.allclose(g[..., 0], g[..., 1]) and np.allclose(g[..., 0], g[..., 2])
    assert RandomGrayscale(1.0)(gray[0], np.random.default_rng(0)) is gray[0]  # already gray


def test_color_jitter_on_gray_uses_only_brightness_and_contrast(gray, rgb) -> None:
    only_sat_hue = ColorJitter(brightness=0.0, contrast=0.0, saturation=0.9, hue=0.5, p=1.0)
    assert all(np.allclose(out, img, atol=1e-6) for out, img in zip(_run(only_sat_hue, gray), gray))
    assert all(not np.allclose(out, img) for out, img in zip(_run(only_sat_hue, rgb), rgb))
    brighter = ColorJitter(brightness=0.5, contrast=0.0, saturation=0.0, hue=0.0, p=1.0)
    factors = set()
    for o, i in zip(_run(brighter, gray), gray):  # brightness alone scales every pixel by one factor
        keep = (i > 0.05) & (o < 1.0)
        ratio = o[keep] / i[keep]
        assert np.allclose(ratio, ratio[0], rtol=1e-5) and 0.5 <= ratio[0] <= 1.5
        factors.add(round(float(ratio[0]), 4))
    assert len(factors) == len(gray)


def test_blur_smooths(gray) -> None:
    def roughness(x):
        return float(np.abs(np.diff(x, axis=0)).sum() + np.abs(np.diff(x, axis=1)).sum())
    out = _run(GaussianBlur(1.0, sigma=(1.0, 2.0)), gray)
    assert all(roughness(o) < roughness(i) for o, i in zip(out, gray))


def test_gray_to_rgb_normalize_to_chw(gray, rgb) -> None:
    x = GrayToRGB()(gray[0])
    assert x.shape == (28, 28, 3) and all(np.array_equal(x[..., k], gray[0][..., 0]) for k in range(3))
    assert GrayToRGB()(rgb[0]) is rgb[0]
    n = Normalize([0.5, 0.25, 0.0], [0.5, 0.25, 1.0])(x)
    assert np.allclose(n[..., 0], (x[..., 0] - 0.5) / 0.5) and np.allclose(n[..., 2], x[..., 2])
    chw = ToCHW()(n)
    assert chw.shape == (3, 28, 28) and chw.flags.c_contiguous and np.array_equal(chw[1], n[..., 1])
    with pytest.raises(ValueError, match="3 means"):
        Normalize([0.1, 0.2, 0.3], 1.0)(gray[0])


@pytest.mark.parametrize("preset", [simclr_transform, moco_v2_transform, eval_transform])
def test_presets_make_backbone_input(preset, raw) -> None:
    t = preset(32)
    a, b = _run(t, raw, 0), _run(t, raw, 0)
    for x, y in zip(a, b):
        assert x.shape == (3, 32, 32) and x.dtype == np.float32 and np.isfinite(x).all()
        assert np.array_equal(x, y) and np.array_equal(x[0], x[2])
    rng = np.random.default_rng(0)
    v1, v2 = t(raw[0], rng), t(raw[0], rng)
    assert np.array_equal(v1, v2) == (preset is eval_transform)  # two random views differ


@pytest.mark.parametrize("make", [
    lambda: HorizontalFlip(p=1.5), lambda: HorizontalFlip(p=-0.1), lambda: HorizontalFlip(p="0.5"),
    lambda: RandomResizedCrop(0), lambda: RandomResizedCrop((8, 8, 8)), lambda: RandomResizedCrop(True),
    lambda: RandomResizedCrop(8, scale=(0.5, 0.2)), lambda: RandomResizedCrop(8, scale=(0.2, 1.5)),
    lambda: RandomResizedCrop(8, scale=(0.0, 0.0)), lambda: RandomResizedCrop(8, ratio=(0.0, 1.0)),
    lambda: ColorJitter(brightness=-0.1), lambda: ColorJitter(hue=0.6), lambda: ColorJitter(contrast=None),
    lambda: GaussianBlur(sigma=(2.0, 1.0)), lambda: GaussianBlur(sigma=(0.0, 1.0)), lambda: GaussianBlur(sigma=1.0),
    lambda: Normalize(0.5, 0.0), lambda: Normalize([], []), lambda: Resize(-3), lambda: ImageCompose("flip"),
])
def test_bad_parameters_raise(make) -> None:
    with pytest.raises(ValueError):
        make()


def test_bad_inputs_raise(raw, gray) -> None:
    with pytest.raises(ValueError, match="ToFloat first"):
        ColorJitter(p=1.0)(raw[0], np.random.default_rng(0))
    with pytest.raises(ValueError, match="1 or 3 channels"):
        GaussianBlur(1.0)(np.zeros((8, 8, 2), np.float32), np.random.default_rng(0))
    with pytest.raises(TypeError, match="Generator"):
        HorizontalFlip()(gray[0], np.random.RandomState(0))
