"""Tests of paddle_tag.losses: values checked against plain numpy formulas."""
from __future__ import annotations

import numpy as np
import paddle
import pytest

from paddle_tag.config.schema import LossConfig
from paddle_tag.errors import ConfigError
from paddle_tag.losses import AsymmetricLoss, BCEWithLogitsLoss, CrossEntropyLoss, FocalLoss, build_loss

RNG = np.random.RandomState(0)
LOGITS = (RNG.randn(6, 5) * 3).astype("float32")
CLASSES = np.array([0, 4, 2, 2, 1, 3], dtype="int64")
MULTI_HOT = (RNG.rand(6, 5) > 0.6).astype("float32")


def log_softmax(x: np.ndarray) -> np.ndarray:
    x = x.astype("float64")
    shifted = x - x.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def value(loss, logits, targets) -> float:
    return float(loss(paddle.to_tensor(logits), paddle.to_tensor(targets)).numpy())


def test_cross_entropy_matches_numpy():
    expected = -log_softmax(LOGITS)[np.arange(len(CLASSES)), CLASSES].mean()
    assert value(CrossEntropyLoss(), LOGITS, CLASSES) == pytest.approx(expected, rel=1e-5)


def test_cross_entropy_perfect_and_uniform():
    assert value(CrossEntropyLoss(), np.zeros((3, 4), "float32"), np.array([0, 1, 3])) == pytest.approx(np.log(4),
                                                                                                         rel=1e-6)
    confident = np.full((2, 3), -30.0, "float32")
    confident[[0, 1], [2, 0]] = 30.0
    assert value(CrossEntropyLoss(), confident, np.array([2, 0])) < 1e-6


@pytest.mark.parametrize("eps", [0.1, 0.3])
def test_label_smoothing_formula(eps):
    logp = log_softmax(LOGITS)
    ce = -logp[np.arange(len(CLASSES)), CLASSES]
    uniform = -logp.mean(axis=1)
    expected = ((1 - eps) * ce + eps * uniform).mean()
    got = value(CrossEntropyLoss(eps), LOGITS, CLASSES)
    assert got == pytest.approx(expected, rel=1e-5)
    assert got != pytest.approx(ce.mean(), rel=1e-3)


def test_label_smoothing_is_differentiable():
    logits = paddle.to_tensor(LOGITS, stop_gradient=False)
    CrossEntropyLoss(0.1)(logits, paddle.to_tensor(CLASSES)).backward()
    probs = np.exp(log_softmax(LOGITS))
    target = np.full_like(probs, 0.1 / 5)
    target[np.arange(len(CLASSES)), CLASSES] += 0.9
    np.testing.assert_allclose(logits.grad.numpy(), (probs - target) / len(CLASSES), atol=1e-6)


@pytest.mark.parametrize("eps", [-0.1, 1.0, 1.5])
def test_invalid_label_smoothing(eps):
    with pytest.raises(ValueError, match="label_smoothing"):
        CrossEntropyLoss(eps)
    with pytest.raises(ValueError, match="label_smoothing"):
        build_loss(LossConfig(name="ce", label_smoothing=eps), "multi_class")


def test_bce_matches_numpy():
    x = LOGITS.astype("float64")
    p = 1 / (1 + np.exp(-x))
    expected = -(MULTI_HOT * np.log(p) + (1 - MULTI_HOT) * np.log(1 - p)).mean()
    assert value(BCEWithLogitsLoss(), LOGITS, MULTI_HOT) == pytest.approx(expected, rel=1e-5)


def test_bce_stable_for_large_logits():
    logits = np.array([[100.0, -100.0]], "float32")
    assert value(BCEWithLogitsLoss(), logits, np.array([[1.0, 0.0]], "float32")) < 1e-6
    assert value(BCEWithLogitsLoss(), logits, np.array([[0.0, 1.0]], "float32")) == pytest.approx(100.0, rel=1e-5)


def test_build_loss_auto_follows_task():
    ce = build_loss(LossConfig(), "multi_class")
    bce = build_loss(LossConfig(), "multi_label")
    assert type(ce) is CrossEntropyLoss and type(bce) is BCEWithLogitsLoss
    assert value(ce, LOGITS, CLASSES) == pytest.approx(value(CrossEntropyLoss(), LOGITS, CLASSES))


def test_build_loss_explicit_and_smoothing_passed():
    assert type(build_loss(LossConfig(name="ce"), "multi_class")) is CrossEntropyLoss
    smoothed = build_loss(LossConfig(name="auto", label_smoothing=0.2), "multi_class")
    assert type(smoothed) is CrossEntropyLoss and smoothed.label_smoothing == 0.2
    assert value(smoothed, LOGITS, CLASSES) == pytest.approx(value(CrossEntropyLoss(0.2), LOGITS, CLASSES))
    asl = build_loss(LossConfig(name="asl", gamma_neg=3.0, gamma_pos=1.0, clip=0.1), "multi_label")
    assert type(asl) is AsymmetricLoss and (asl.gamma_neg, asl.gamma_pos, asl.clip) == (3.0, 1.0, 0.1)
    focal = build_loss(LossConfig(name="focal", gamma=1.5), "multi_label")
    assert type(focal) is FocalLoss and (focal.gamma_neg, focal.gamma_pos, focal.clip) == (1.5, 1.5, 0.0)


@pytest.mark.parametrize("name,task", [("bce", "multi_class"), ("asl", "multi_class"), ("focal", "multi_class"),
                                       ("ce", "multi_label")])
def test_build_loss_refuses_a_loss_of_the_other_task(name, task):
    with pytest.raises(ConfigError, match=rf"Loss.name={name} does not fit Data.task={task}"):
        build_loss(LossConfig(name=name), task)

