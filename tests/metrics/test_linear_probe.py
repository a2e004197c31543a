"""The linear probe: separable classes are read out exactly, unrelated labels at chance, bad input refused."""
from __future__ import annotations

import numpy as np
import pytest

from paddle_tag.metrics.linear_probe import linear_probe


def blobs(n_per_class: int, classes: int, dim: int, seed: int, spread: float = 0.3) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = np.random.default_rng(123).normal(size=(classes, dim))
    labels = np.repeat(np.arange(classes), n_per_class)
    return centres[labels] + spread * rng.normal(size=(len(labels), dim)), labels


def test_separable_classes_are_read_out_exactly():
    x_train, y_train = blobs(40, 5, 16, seed=0)
    x_test, y_test = blobs(20, 5, 16, seed=1)
    result = linear_probe(x_train, y_train, x_test, y_test)
    assert result == {"accuracy": 1.0, "macro_f1": 1.0}


def test_labels_unrelated_to_features_stay_near_chance():
    x_train, _ = blobs(100, 4, 8, seed=0, spread=1.0)
    x_test, _ = blobs(100, 4, 8, seed=1, spread=1.0)
    rng = np.random.default_rng(7)
    result = linear_probe(x_train, rng.integers(0, 4, len(x_train)), x_test, rng.integers(0, 4, len(x_test)))
    assert 0.15 < result["accuracy"] < 0.35


def test_a_linear_read_out_is_what_it_measures():
    # XOR classes: not linearly separable, although a kNN would separate them perfectly
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, size=(400, 2))
    x = x[np.abs(x).min(axis=1) > 0.2]
    y = ((x[:, 0] > 0) ^ (x[:, 1] > 0)).astype(int)
    assert linear_probe(x[:200], y[:200], x[200:], y[200:])["accuracy"] < 0.75


def test_bad_input_is_refused():
    x, y = blobs(5, 2, 4, seed=0)
    with pytest.raises(ValueError, match="same D"):
        linear_probe(x, y, x[:, :3], y)
    with pytest.raises(ValueError, match="labels for"):
        linear_probe(x, y[:-1], x, y)
    with pytest.raises(ValueError, match="at least 2 classes"):
        linear_probe(x, np.zeros(len(x), dtype=int), x, y)
    with pytest.raises(ValueError, match="positive"):
        linear_probe(x, y, x, y, c=0)
