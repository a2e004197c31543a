"""Tests of paddle_tag.models.window_pooling: masked max / mean / attention over a text's windows."""
from __future__ import annotations

import numpy as np
import paddle
import pytest

from paddle_tag.models.window_pooling import WINDOW_POOLINGS, build_window_pooling

FEATURES = np.array([[[1.0, -5.0], [3.0, -1.0], [100.0, 100.0]],   # third window is padding
                     [[-2.0, 4.0], [0.0, 0.0], [0.0, 0.0]]], "float32")
MASK = np.array([[1, 1, 0], [1, 0, 0]], "float32")


def pool(name, features=FEATURES, mask=MASK) -> np.ndarray:
    paddle.seed(0)
    layer = build_window_pooling(name, features.shape[-1])
    return layer(paddle.to_tensor(features), paddle.to_tensor(mask)).numpy()


def test_max_and_mean_ignore_padding_windows():
    assert pool("max").tolist() == [[3.0, -1.0], [-2.0, 4.0]]
    assert pool("mean").tolist() == [[2.0, -3.0], [-2.0, 4.0]]


def test_attention_is_a_convex_combination_of_the_real_windows():
    out = pool("attention")
    assert np.allclose(out[1], [-2.0, 4.0])  # one window: weight 1
    # the first text's result lies on the segment between its two real windows, far from the padding one
    a, b = FEATURES[0, 0], FEATURES[0, 1]
    t = (out[0] - a) / (b - a)
    assert np.allclose(t[0], t[1]) and 0 < t[0] < 1


@pytest.mark.parametrize("name", sorted(WINDOW_POOLINGS))
def test_one_window_is_the_identity(name):
    features = np.random.RandomState(0).randn(4, 1, 8).astype("float32")
    assert np.allclose(pool(name, features, np.ones((4, 1), "float32")), features[:, 0], atol=1e-6)


def test_attention_learns_which_window_matters():
    paddle.seed(0)
    layer = build_window_pooling("attention", 2)
    optimizer = paddle.optimizer.Adam(0.05, parameters=layer.parameters())
    rng = np.random.RandomState(0)
    for _ in range(200):  # target: the window whose second feature is largest
        feats = rng.randn(16, 4, 2).astype("float32")
        target = feats[np.arange(16), feats[:, :, 1].argmax(axis=1)]
        out = layer(paddle.to_tensor(feats), paddle.ones([16, 4]))
        loss = ((out - paddle.to_tensor(target)) ** 2).mean()
        loss.backward()
        optimizer.step()
        optimizer.clear_grad()
    assert float(loss) < 0.2


def test_unknown_pooling_refused():
    with pytest.raises(ValueError, match="window pooling"):
        build_window_pooling("sum", 4)
