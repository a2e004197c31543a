"""Tests of InfoNCE and NT-Xent: hand-computed values, independent numpy formulas, gradients, validation."""
from __future__ import annotations

import math

import numpy as np
import paddle
import pytest

from paddle_tag.losses import InfoNCELoss, NTXentLoss

RNG = np.random.RandomState(0)
QUERY = RNG.randn(5, 4).astype("float32")
KEY = (QUERY + 0.5 * RNG.randn(5, 4)).astype("float32")
EXTRA = RNG.randn(7, 4).astype("float32")


def unit(x: np.ndarray) -> np.ndarray:
    x = x.astype("float64")
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def log_softmax(x: np.ndarray) -> np.ndarray:
    shifted = x - x.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def value(loss, *arrays) -> float:
    return float(loss(*[paddle.to_tensor(a) for a in arrays]).numpy())


def test_infonce_hand_computed():
    # unit query rows (0.6, 0.8), (1, 0); unit key rows (0, 1), (1, 0): cosines [[0.8, 0.6], [0, 1]].
    # temperature 0.5 gives logits [[1.6, 1.2], [0, 2]]; -log softmax at the diagonal is log(1 + e^-(pos - neg)).
    query = np.array([[3.0, 4.0], [2.0, 0.0]], "float32")
    key = np.array([[0.0, 2.0], [5.0, 0.0]], "float32")
    expected = (math.log(1 + math.exp(-0.4)) + math.log(1 + math.exp(-2.0))) / 2
    assert value(InfoNCELoss(temperature=0.5), query, key) == pytest.approx(expected, rel=1e-6)


def test_infonce_matches_numpy_log_softmax():
    logits = unit(QUERY) @ unit(KEY).T / 0.1
    expected = -np.diag(log_softmax(logits)).mean()
    assert value(InfoNCELoss(temperature=0.1), QUERY, KEY) == pytest.approx(expected, rel=1e-5)
    # a single process has nothing to gather: the flag changes nothing
    assert value(InfoNCELoss(0.1, gather_distributed=False), QUERY, KEY) == pytest.approx(expected, rel=1e-5)


def test_infonce_perfect_alignment_with_orthogonal_negatives():
    aligned = (np.eye(4) * [1.0, 2.0, 3.0, 4.0]).astype("float32")  # scale does not matter after normalising
    assert value(InfoNCELoss(temperature=0.01), aligned, aligned) < 1e-6
    # at temperature 1 the negatives still take mass: log(1 + 3 / e)
    assert value(InfoNCELoss(temperature=1.0), aligned, aligned) == pytest.approx(math.log(1 + 3 / math.e), rel=1e-5)


def test_infonce_gradient_reaches_query_and_key_and_matches_finite_differences():
    arrays = [QUERY.astype("float64"), KEY.astype("float64")]
    tensors = [paddle.to_tensor(a, stop_gradient=False) for a in arrays]
    loss_fn = InfoNCELoss(temperature=0.2)
    loss_fn(*tensors).backward()
    for which, tensor in enumerate(tensors):  # query, then key
        grad = tensor.grad.numpy()
        assert np.abs(grad).min() > 0
        numeric = np.zeros_like(grad)
        for idx in np.ndindex(*grad.shape):
            plus, minus = list(arrays), list(arrays)
            plus[which], minus[which] = arrays[which].copy(), arrays[which].copy()
            plus[which][idx] += 1e-6
            minus[which][idx] -= 1e-6
            numeric[idx] = (value(loss_fn, *plus) - value(loss_fn, *minus)) / 2e-6
        np.testing.assert_allclose(grad, numeric, rtol=1e-5, atol=1e-8)


def test_infonce_detached_key_gets_no_gradient():
    query = paddle.to_tensor(QUERY, stop_gradient=False)
    key = paddle.to_tensor(KEY, stop_gradient=False)
    InfoNCELoss()(query, key.detach()).backward()
    assert query.grad is not None and key.grad is None


def test_extra_negatives_increase_the_loss_and_match_numpy():
    loss_fn = InfoNCELoss(temperature=0.2)
    logits = unit(QUERY) @ np.concatenate([unit(KEY), unit(EXTRA)]).T / 0.2
    expected = -np.diag(log_softmax(logits)[:, :5]).mean()
    with_extra = value(loss_fn, QUERY, KEY, EXTRA)
    assert with_extra == pytest.approx(expected, rel=1e-5)
    assert with_extra > value(loss_fn, QUERY, KEY) + 1e-3


def ntxent_numpy(view0: np.ndarray, view1: np.ndarray, temperature: float) -> float:
    """Row by row: -log(exp(s_pos) / sum over every other embedding exp(s))."""
    z = np.concatenate([unit(view0), unit(view1)])
    n = len(view0)
    losses = []
    for i in range(2 * n):
        sims = z @ z[i] / temperature
        positive = (i + n) % (2 * n)
        others = [j for j in range(2 * n) if j != i]
        losses.append(-sims[positive] + math.log(sum(math.exp(sims[j]) for j in others)))
    return float(np.mean(losses))


@pytest.mark.parametrize("temperature", [0.5, 0.1])
def test_ntxent_matches_independent_numpy(temperature):
    view0, view1 = RNG.randn(6, 8).astype("float32"), RNG.randn(6, 8).astype("float32")
    expected = ntxent_numpy(view0, view1, temperature)
    got = value(NTXentLoss(temperature), view0, view1)
    assert got == pytest.approx(expected, rel=1e-5)
    assert value(NTXentLoss(temperature), view1, view0) == pytest.approx(got, rel=1e-6)  # symmetric


def test_ntxent_gradients_finite_and_single_pair_has_no_negatives():
    view0 = paddle.to_tensor(QUERY, stop_gradient=False)
    view1 = paddle.to_tensor(KEY, stop_gradient=False)
    NTXentLoss()(view0, view1).backward()
    for grad in (view0.grad.numpy(), view1.grad.numpy()):
        assert np.isfinite(grad).all() and np.abs(grad).max() > 0
    # B = 1: each embedding's only candidate is its positive (self is masked), so the loss is exactly 0
    assert value(NTXentLoss(), QUERY[:1], KEY[:1]) == pytest.approx(0.0, abs=1e-7)


@pytest.mark.parametrize("cls", [InfoNCELoss, NTXentLoss])
@pytest.mark.parametrize("temperature", [0.0, -0.1, float("nan")])
def test_invalid_temperature(cls, temperature):
    with pytest.raises(ValueError, match="temperature must be > 0"):
        cls(temperature=temperature)


@pytest.mark.parametrize("cls", [InfoNCELoss, NTXentLoss])
@pytest.mark.parametrize("shape0, shape1", [((4, 3), (4, 2)), ((4, 3), (3, 3))])
def test_mismatched_shapes(cls, shape0, shape1):
    with pytest.raises(ValueError, match="must have the same"):
        cls()(paddle.randn(shape0), paddle.randn(shape1))


@pytest.mark.parametrize("cls", [InfoNCELoss, NTXentLoss])
def test_non_matrix_input(cls):
    with pytest.raises(ValueError, match=r"must be 2-D \(B, D\)"):
        cls()(paddle.randn([4]), paddle.randn([4]))


def test_negatives_with_wrong_dim():
    with pytest.raises(ValueError, match="negatives must be"):
        InfoNCELoss()(paddle.randn([4, 3]), paddle.randn([4, 3]), paddle.randn([6, 2]))
