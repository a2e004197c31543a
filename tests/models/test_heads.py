"""Tests of paddle_tag.models.heads: the SimCLR / MoCo v2 projection head."""
from __future__ import annotations

import numpy as np
import paddle
import paddle.nn as nn
import pytest

from paddle_tag.models.heads import Block, ProjectionHead, projection_blocks


def layer_types(head: ProjectionHead) -> list[type]:
    return [type(layer) for layer in head.layers]


@pytest.mark.parametrize("num_layers", [1, 2, 3])
@pytest.mark.parametrize("batch_norm", [True, False])
def test_output_shape_in_train_and_eval(num_layers, batch_norm):
    paddle.seed(0)
    head = ProjectionHead(12, hidden_dim=20, out_dim=6, num_layers=num_layers, batch_norm=batch_norm)
    x = paddle.randn([5, 12])
    head.train()
    assert head(x).shape == [5, 6]
    head.eval()
    out = head(x)
    assert out.shape == [5, 6] and out.dtype == paddle.float32
    np.testing.assert_array_equal(head(x).numpy(), out.numpy())  # eval is deterministic
    assert (head.in_dim, head.out_dim) == (12, 6)


def test_defaults_are_simclr_sizes():
    head = ProjectionHead(32)
    assert head.blocks == [Block(32, 2048, True, True), Block(2048, 128, False, False)]
    assert layer_types(head) == [nn.Linear, nn.BatchNorm1D, nn.ReLU, nn.Linear]


def test_gradients_reach_every_parameter():
    paddle.seed(1)
    head = ProjectionHead(8, hidden_dim=16, out_dim=4, num_layers=3)
    head.train()
    loss = (head(paddle.randn([6, 8])) ** 2).mean()
    loss.backward()
    # paddle lists BatchNorm's running mean / variance as parameters too, with stop_gradient set
    trainable = [p for p in head.parameters() if not p.stop_gradient]
    assert len(trainable) == 3 + 1 + 2 * 2  # 3 weights, 1 output bias, 2 BN (scale, shift) pairs
    for p in trainable:
        assert p.grad is not None, p.name
        assert float(p.grad.abs().sum()) > 0, p.name


def test_one_layer_is_a_single_linear():
    head = ProjectionHead(10, hidden_dim=99, out_dim=3, num_layers=1)
    assert head.blocks == [Block(10, 3, False, False)]
    assert layer_types(head) == [nn.Linear]
    (linear,) = head.layers
    assert linear.weight.shape == [10, 3] and linear.bias is not None
    x = paddle.randn([4, 10])
    np.testing.assert_allclose(head(x).numpy(), (x @ linear.weight + linear.bias).numpy(), rtol=1e-6)
    # batch_norm has nothing to apply to without a hidden layer
    assert layer_types(ProjectionHead(10, out_dim=3, num_layers=1, batch_norm=True)) == [nn.Linear]


def test_batch_norm_present_as_configured():
    with_bn = ProjectionHead(8, hidden_dim=16, out_dim=4, num_layers=3, batch_norm=True)
    assert layer_types(with_bn) == [
        nn.Linear, nn.BatchNorm1D, nn.ReLU, nn.Linear, nn.BatchNorm1D, nn.ReLU, nn.Linear
    ]
    linears = [layer for layer in with_bn.layers if isinstance(layer, nn.Linear)]
    assert [lin.bias is None for lin in linears] == [True, True, False]  # no bias right before BN
    assert [bn._num_features for bn in with_bn.layers if isinstance(bn, nn.BatchNorm1D)] == [16, 16]

    without = ProjectionHead(8, hidden_dim=16, out_dim=4, num_layers=3, batch_norm=False)
    assert layer_types(without) == [nn.Linear, nn.ReLU, nn.Linear, nn.ReLU, nn.Linear]
    assert all(layer.bias is not None for layer in without.layers if isinstance(layer, nn.Linear))
    assert without.blocks == projection_blocks(8, 16, 4, 3, batch_norm=False)
    assert [b.batch_norm for b in without.blocks] == [False, False, False]


def test_batch_norm_normalises_over_the_batch_in_training():
    paddle.seed(2)
    head = ProjectionHead(8, hidden_dim=16, out_dim=4, num_layers=2)
    head.train()
    x = paddle.randn([64, 8]) * 5 + 3
    hidden = head.layers[1](head.layers[0](x)).numpy()  # Linear -> BatchNorm1D, before the ReLU
    np.testing.assert_allclose(hidden.mean(axis=0), 0.0, atol=1e-4)
    np.testing.assert_allclose(hidden.std(axis=0), 1.0, atol=1e-2)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(in_dim=0), "in_dim must be an int >= 1"),
        (dict(in_dim=-3), "in_dim must be an int >= 1"),
        (dict(in_dim=8.0), "in_dim must be an int >= 1"),
        (dict(in_dim=8, hidden_dim=0), "hidden_dim must be an int >= 1"),
        (dict(in_dim=8, out_dim=0), "out_dim must be an int >= 1"),
        (dict(in_dim=8, num_layers=0), "num_layers must be an int >= 1"),
        (dict(in_dim=8, num_layers=True), "num_layers must be an int >= 1"),
    ],
)
def test_bad_arguments_raise(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ProjectionHead(**kwargs)
    with pytest.raises(ValueError, match=message):
        projection_blocks(**kwargs)


def test_numpy_int_dimensions_are_accepted():
    head = ProjectionHead(np.int64(8), hidden_dim=np.int32(16), out_dim=np.int64(4))
    assert head.blocks == [Block(8, 16, True, True), Block(16, 4, False, False)]
    assert all(type(v) is int for block in head.blocks for v in (block.in_dim, block.out_dim))
