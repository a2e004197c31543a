"""Linear probe: a multinomial logistic regression trained on frozen features, scored on held-out features.

The standard read-out of a self-supervised encoder next to the kNN monitor: kNN asks whether neighbours
share a class, the probe whether classes are linearly separable. Features are L2-normalised and
standardised with the train split's statistics; the regression is scikit-learn's L-BFGS, deterministic.
"""
from __future__ import annotations

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score


def linear_probe(train_features: np.ndarray, train_labels: np.ndarray, test_features: np.ndarray,
                 test_labels: np.ndarray, c: float = 1.0, max_iter: int = 1000) -> dict[str, float]:
    """Fit on ``(N, D)`` train features with ``(N,)`` class ids; ``accuracy`` and ``macro_f1`` on the test set.

    Raises:
        ValueError: features of different widths, label counts that do not match, fewer than 2 classes,
            or a non-positive ``c``.
    """
    x_train, x_test = (np.asarray(x, dtype=np.float64) for x in (train_features, test_features))
    y_train, y_test = np.asarray(train_labels), np.asarray(test_labels)
    if x_train.ndim != 2 or x_test.ndim != 2 or x_train.shape[1] != x_test.shape[1]:
        raise ValueError(f"features must be (N, D) with the same D, got {x_train.shape} and {x_test.shape}")
    if len(y_train) != len(x_train) or len(y_test) != len(x_test):
        raise ValueError(f"{len(y_train)} / {len(y_test)} labels for {len(x_train)} / {len(x_test)} feature rows")
    if len(np.unique(y_train)) < 2:
        raise ValueError("a linear probe needs at least 2 classes in the train split")
    if c <= 0:
        raise ValueError(f"c must be positive, got {c}")
    x_train, x_test = (x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12) for x in (x_train, x_test))
    mean, std = x_train.mean(axis=0), x_train.std(axis=0) + 1e-6
    classifier = LogisticRegression(C=c, max_iter=max_iter)
    classifier.fit((x_train - mean) / std, y_train)
    predicted = classifier.predict((x_test - mean) / std)
    return {"accuracy": float((predicted == y_test).mean()),
            "macro_f1": float(f1_score(y_test, predicted, average="macro", zero_division=0))}
