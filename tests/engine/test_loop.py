"""Tests of paddle_tag.engine.loop: when evaluation happens, resuming mid-epoch, the optimizer step guard."""
from __future__ import annotations

import numpy as np
import paddle
import pytest

from paddle_tag.config.schema import GlobalConfig
from paddle_tag.engine.loop import new_state, optimizer_step, run_epochs


def run(state: dict, total_steps: int, batches_per_epoch: int = 4, **global_keys) -> tuple[list, list]:
    """Run the loop with steps that record what they saw; return (trained (epoch, batch) pairs, eval steps)."""
    cfg = GlobalConfig(progress=False, log_every=2, **global_keys)
    trained, evaluated = [], []

    def batches(epoch: int) -> list[np.ndarray]:
        return [np.array([epoch, b]) for b in range(batches_per_epoch)]

    def step(indices: np.ndarray, global_step: int) -> float:
        trained.append(tuple(int(i) for i in indices))
        return float(global_step)

    def evaluate(at: int) -> None:
        evaluated.append(at)
        state["history"]["eval"].append({"step": at})

    run_epochs(state, cfg, total_steps, batches_for_epoch=batches, train_step=step, evaluate=evaluate,
               current_lr=lambda: 0.1)
    return trained, evaluated


@pytest.mark.parametrize("eval_every, expected", [(0, [4, 8, 10]), (3, [3, 4, 6, 8, 9, 10]), (-1, [10])])
def test_evaluation_points(eval_every, expected):
    _, evaluated = run(new_state(), total_steps=10, epochs=3, eval_every=eval_every)
    assert evaluated == expected


def test_resume_mid_epoch_trains_exactly_the_remaining_batches():
    full, _ = run(new_state(), total_steps=8, epochs=2)
    state = new_state()
    first, _ = run(state, total_steps=3, epochs=2)  # as if killed after step 3
    assert state["global_step"] == 3 and state["batch_in_epoch"] == 3
    rest, _ = run(state, total_steps=8, epochs=2)
    assert first + rest == full
    assert state["epoch"] == 2 and state["global_step"] == 8


def test_train_history_logs_mean_loss_and_lr():
    state = new_state()
    run(state, total_steps=5, epochs=2)
    assert [r["step"] for r in state["history"]["train"]] == [2, 4, 5]
    assert [r["loss"] for r in state["history"]["train"]] == [0.5, 2.5, 4.0]
    assert all(r["lr"] == 0.1 for r in state["history"]["train"])


def test_optimizer_step_refuses_a_non_finite_loss_before_touching_weights():
    layer = paddle.nn.Linear(2, 1)
    optimizer = paddle.optimizer.SGD(learning_rate=0.1, parameters=layer.parameters())
    scheduler = paddle.optimizer.lr.LinearWarmup(0.1, 2, 0.0, 0.1)
    before = layer.weight.numpy().copy()
    loss = (layer(paddle.to_tensor([[1.0, 2.0]])) * float("nan")).sum()
    with pytest.raises(FloatingPointError, match="loss is nan at step 7"):
        optimizer_step(loss, optimizer, scheduler, None, 7)
    np.testing.assert_array_equal(layer.weight.numpy(), before)
