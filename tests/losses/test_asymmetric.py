"""Tests of the asymmetric (ASL) and focal losses: values against the paper's formula in numpy, the BCE
special case, what the focusing and the margin do to easy negatives, and gradients through Paddle."""
from __future__ import annotations

import numpy as np
import paddle
import pytest

from paddle_tag.losses import AsymmetricLoss, BCEWithLogitsLoss, FocalLoss

RNG = np.random.RandomState(1)
LOGITS = (RNG.randn(8, 6) * 3).astype("float32")
TARGETS = (RNG.rand(8, 6) > 0.7).astype("float32")


def asl_numpy(logits, targets, gamma_neg, gamma_pos, clip):
    """Ridnik et al. 2021, eq. 8 (mean over cells instead of the sum)."""
    p = 1.0 / (1.0 + np.exp(-logits.astype("float64")))
    p_m = np.maximum(p - clip, 0.0)
    pos = targets * (1 - p) ** gamma_pos * np.log(np.maximum(p, 1e-8))
    neg = (1 - targets) * p_m ** gamma_neg * np.log(np.maximum(1 - p_m, 1e-8))
    return float(-(pos + neg).mean())


def value(loss, logits, targets) -> float:
    return float(loss(paddle.to_tensor(logits), paddle.to_tensor(targets)).numpy())


@pytest.mark.parametrize("gamma_neg,gamma_pos,clip", [(4.0, 0.0, 0.05), (2.0, 1.0, 0.0), (0.0, 0.0, 0.2)])
def test_asl_matches_the_formula(gamma_neg, gamma_pos, clip):
    got = value(AsymmetricLoss(gamma_neg, gamma_pos, clip), LOGITS, TARGETS)
    assert got == pytest.approx(asl_numpy(LOGITS, TARGETS, gamma_neg, gamma_pos, clip), rel=1e-5)


def test_no_focusing_and_no_margin_is_bce():
    assert value(AsymmetricLoss(0.0, 0.0, 0.0), LOGITS, TARGETS) == pytest.approx(
        value(BCEWithLogitsLoss(), LOGITS, TARGETS), rel=1e-5)


def test_focal_is_symmetric_focusing_without_margin():
    assert value(FocalLoss(2.0), LOGITS, TARGETS) == pytest.approx(asl_numpy(LOGITS, TARGETS, 2.0, 2.0, 0.0), rel=1e-5)


def test_easy_negatives_count_less_than_under_bce_and_nothing_below_the_margin():
    easy_negative = np.array([[-3.0]], "float32")  # p = 0.047 < clip 0.05: shifted to 0
    zero = np.zeros((1, 1), "float32")
    assert value(AsymmetricLoss(4.0, 0.0, 0.05), easy_negative, zero) == 0.0
    assert value(BCEWithLogitsLoss(), easy_negative, zero) > 0.04
    hard_negative = np.array([[2.0]], "float32")
    # a confident mistake is still punished, if less than by BCE
    assert 0.1 < value(AsymmetricLoss(), hard_negative, zero) < value(BCEWithLogitsLoss(), hard_negative, zero)


def test_positive_loss_unchanged_with_gamma_pos_zero():
    logits, ones = np.array([[-1.0, 0.5, 3.0]], "float32"), np.ones((1, 3), "float32")
    assert value(AsymmetricLoss(4.0, 0.0, 0.05), logits, ones) == pytest.approx(
        value(BCEWithLogitsLoss(), logits, ones), rel=1e-6)


def test_gradients_flow_and_are_finite_at_extreme_logits():
    logits = paddle.to_tensor(np.array([[-60.0, 3.0, 60.0, -0.01]], "float32"), stop_gradient=False)
    targets = paddle.to_tensor(np.array([[1.0, 0.0, 0.0, 0.0]], "float32"))
    loss = AsymmetricLoss()(logits, targets)
    loss.backward()
    grad = logits.grad.numpy()
    assert np.isfinite(loss.numpy()).all() and np.isfinite(grad).all()
    assert grad[0, 0] < 0 and grad[0, 1] > 0  # push the missed positive up, the confident negative down
    # the margin bounds a negative's loss (log(clip)), so a saturated one stops pulling: ASL's rejection of
    # possibly mislabelled negatives, not a numerical accident
    assert abs(grad[0, 2]) < 1e-6


@pytest.mark.parametrize("kwargs", [{"gamma_neg": -1.0}, {"gamma_pos": -0.5}, {"clip": 1.0}, {"clip": -0.1}])
def test_bad_settings_refused(kwargs):
    with pytest.raises(ValueError):
        AsymmetricLoss(**kwargs)
