"""Tests of the MoCo queue (FIFO wrap-around, normalisation, checkpointing) and the momentum encoder update."""
from __future__ import annotations

import numpy as np
import paddle
import pytest

from paddle_tag.losses import InfoNCELoss, MoCoQueue, copy_and_freeze, momentum_update

RNG = np.random.RandomState(0)


def unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def batches(count: int, size: int, dim: int) -> list[np.ndarray]:
    return [(RNG.randn(size, dim) * 3).astype("float32") for _ in range(count)]


def test_queue_wraps_around_when_size_is_not_a_multiple_of_batch():
    queue = MoCoQueue(dim=3, size=5)
    initial = queue.queue.numpy().copy()
    b1, b2, b3 = batches(3, 2, 3)
    queue.enqueue(paddle.to_tensor(b1))
    assert int(queue.ptr.item()) == 2
    np.testing.assert_allclose(queue.queue.numpy(), np.concatenate([unit(b1), initial[2:]]), atol=1e-6)
    queue.enqueue(paddle.to_tensor(b2))
    assert int(queue.ptr.item()) == 4
    queue.enqueue(paddle.to_tensor(b3))  # rows 4 and then 0
    assert int(queue.ptr.item()) == 1
    expected = np.stack([unit(b3)[1], unit(b1)[1], unit(b2)[0], unit(b2)[1], unit(b3)[0]])
    np.testing.assert_allclose(queue.queue.numpy(), expected, atol=1e-6)


def test_batch_larger_than_queue_keeps_the_last_keys_in_fifo_order():
    queue = MoCoQueue(dim=2, size=5)
    queue.enqueue(paddle.to_tensor(batches(1, 1, 2)[0]))  # ptr = 1
    keys = batches(1, 7, 2)[0]
    queue.enqueue(paddle.to_tensor(keys))  # writes rows 1, 2, 3, 4, 0, 1, 2
    assert int(queue.ptr.item()) == 3
    np.testing.assert_allclose(queue.queue.numpy(), unit(keys)[[4, 5, 6, 2, 3]], atol=1e-6)


def test_queue_is_normalised_seeded_and_detached():
    paddle.seed(7)
    queue = MoCoQueue(dim=4, size=6)
    paddle.seed(7)
    np.testing.assert_array_equal(MoCoQueue(dim=4, size=6).queue.numpy(), queue.queue.numpy())
    np.testing.assert_allclose(np.linalg.norm(queue.queue.numpy(), axis=1), 1.0, rtol=1e-6)
    keys = paddle.to_tensor(batches(1, 4, 4)[0], stop_gradient=False)
    queue.enqueue(keys * 5)
    np.testing.assert_allclose(np.linalg.norm(queue.queue.numpy(), axis=1), 1.0, rtol=1e-6)
    negatives = queue.negatives()
    assert negatives.shape == [6, 4] and negatives.stop_gradient and queue.queue.stop_gradient


def test_negatives_are_a_snapshot_not_changed_by_a_later_enqueue():
    queue = MoCoQueue(dim=3, size=4)
    before = queue.negatives()
    snapshot = before.numpy().copy()
    queue.enqueue(paddle.to_tensor(batches(1, 3, 3)[0]))
    np.testing.assert_array_equal(before.numpy(), snapshot)
    assert not np.allclose(queue.negatives().numpy(), snapshot)


def test_state_dict_round_trip_keeps_queue_and_pointer(tmp_path):
    paddle.seed(1)
    queue = MoCoQueue(dim=3, size=5)
    for keys in batches(2, 2, 3):
        queue.enqueue(paddle.to_tensor(keys))
    assert set(queue.state_dict()) == {"queue", "ptr"}
    paddle.save(queue.state_dict(), str(tmp_path / "queue.pdparams"))
    paddle.seed(2)
    restored = MoCoQueue(dim=3, size=5)
    assert not np.allclose(restored.queue.numpy(), queue.queue.numpy())
    restored.set_state_dict(paddle.load(str(tmp_path / "queue.pdparams")))
    np.testing.assert_array_equal(restored.queue.numpy(), queue.queue.numpy())
    assert int(restored.ptr.item()) == int(queue.ptr.item()) == 4
    more = paddle.to_tensor(batches(1, 2, 3)[0])
    queue.enqueue(more)
    restored.enqueue(more)
    np.testing.assert_array_equal(restored.queue.numpy(), queue.queue.numpy())


@pytest.mark.parametrize("kwargs, match", [({"dim": 0}, "dim must be"), ({"dim": 3, "size": 0}, "size must be")])
def test_invalid_queue_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        MoCoQueue(**kwargs)


def test_enqueue_wrong_key_shape():
    with pytest.raises(ValueError, match=r"keys must be \(B, 3\)"):
        MoCoQueue(dim=3, size=4).enqueue(paddle.randn([2, 4]))


def test_copy_and_freeze_is_an_independent_frozen_copy():
    online = paddle.nn.Linear(3, 2)
    target = copy_and_freeze(online)
    for (name, p_online), (name_t, p_target) in zip(online.named_parameters(), target.named_parameters()):
        assert name == name_t and not p_online.stop_gradient and p_target.stop_gradient
        np.testing.assert_array_equal(p_online.numpy(), p_target.numpy())
    online.weight.set_value(online.weight.numpy() + 1.0)
    assert not np.allclose(online.weight.numpy(), target.weight.numpy())


def test_momentum_update_is_exact_ema_of_parameters():
    online = paddle.nn.Linear(3, 2)
    target = copy_and_freeze(online)
    online.weight.set_value(RNG.randn(3, 2).astype("float32"))
    online.bias.set_value(RNG.randn(2).astype("float32"))
    before = {name: p.numpy().copy() for name, p in target.named_parameters()}
    online_values = {name: p.numpy().copy() for name, p in online.named_parameters()}
    momentum_update(online, target, momentum=0.9)
    for name, param in target.named_parameters():
        expected = np.float32(0.9) * before[name] + np.float32(0.1) * online_values[name]
        np.testing.assert_allclose(param.numpy(), expected, rtol=1e-6, atol=1e-7)
        assert not np.allclose(param.numpy(), before[name]) and param.stop_gradient
    for name, param in online.named_parameters():  # the online encoder is untouched
        np.testing.assert_array_equal(param.numpy(), online_values[name])
    momentum_update(online, target, momentum=0.0)
    np.testing.assert_array_equal(target.weight.numpy(), online.weight.numpy())


@pytest.mark.parametrize("target, match", [(paddle.nn.Linear(3, 4), "has shape"),
                                           (paddle.nn.Sequential(paddle.nn.Linear(3, 2)), "different parameters")])
def test_momentum_update_rejects_mismatched_layers(target, match):
    with pytest.raises(ValueError, match=match):
        momentum_update(paddle.nn.Linear(3, 2), target)


@pytest.mark.parametrize("momentum", [-0.1, 1.5])
def test_momentum_out_of_range(momentum):
    layer = paddle.nn.Linear(2, 2)
    with pytest.raises(ValueError, match="momentum must be in"):
        momentum_update(layer, copy_and_freeze(layer), momentum)


def test_moco_step_trains_only_the_online_encoder():
    paddle.seed(3)
    online = paddle.nn.Linear(6, 4)
    target = copy_and_freeze(online)
    queue = MoCoQueue(dim=4, size=8)
    x_query, x_key = (paddle.to_tensor(b) for b in batches(2, 3, 6))
    negatives = queue.negatives()
    loss_fn = InfoNCELoss(temperature=0.2)
    key = target(x_key).detach()
    loss = loss_fn(online(x_query), key, negatives)
    queue.enqueue(key)  # before backward, as in MoCo: the loss keeps its own snapshot of the negatives
    loss.backward()
    assert online.weight.grad is not None and np.abs(online.weight.grad.numpy()).max() > 0
    assert target.weight.grad is None
    assert float(loss) == pytest.approx(float(loss_fn(online(x_query), key, negatives)), rel=1e-6)
    np.testing.assert_allclose(queue.queue.numpy()[:3], unit(key.numpy()), atol=1e-6)
