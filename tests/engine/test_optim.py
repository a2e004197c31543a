"""Tests of paddle_tag.engine.optim: the head learning-rate multiplier and config checks."""
from __future__ import annotations

import numpy as np
import paddle
import pytest

from paddle_tag.config.schema import ModelConfig, OptimizerConfig
from paddle_tag.engine.optim import build_optimizer
from paddle_tag.errors import ConfigError
from paddle_tag.models import build_model

TINY = dict(num_layers=2, hidden_size=32, num_heads=2, intermediate_size=64, max_position=64)


def one_step_changes(head_lr_scale: float) -> tuple[float, float]:
    """Median |Δ| of head and of encoder weights after one AdamW step (Adam's first step moves every
    parameter with a gradient by about its learning rate, whatever the gradient's size)."""
    paddle.seed(0)
    model = build_model(ModelConfig(**TINY, dropout=0.0, head_dropout=0.0), 3, 100, 0)
    cfg = OptimizerConfig(lr=1e-3, warmup_ratio=0.0, weight_decay=0.0, max_grad_norm=0.0,
                          head_lr_scale=head_lr_scale)
    optimizer, _ = build_optimizer(cfg, model, total_steps=10)
    before = {n: p.numpy().copy() for n, p in model.named_parameters()}
    logits = model(paddle.to_tensor([[3, 4, 5, 6], [7, 8, 9, 0]]))
    paddle.nn.functional.cross_entropy(logits, paddle.to_tensor([0, 2])).backward()
    optimizer.step()
    delta = {n: np.abs(p.numpy() - before[n]) for n, p in model.named_parameters()}
    head = np.median(delta["classifier.weight"])
    body = np.median(np.concatenate([d.ravel() for n, d in delta.items()
                                     if "encoder" in n and "linear" in n and n.endswith("weight")]))
    return float(head), float(body)


def test_head_lr_scale_multiplies_only_the_head_learning_rate():
    head, body = one_step_changes(10.0)
    assert head == pytest.approx(1e-2, rel=0.1)
    assert body == pytest.approx(1e-3, rel=0.1)
    head1, body1 = one_step_changes(1.0)
    assert head1 == pytest.approx(1e-3, rel=0.1) and body1 == pytest.approx(body, rel=1e-3)


def test_head_lr_scale_must_be_positive():
    model = build_model(ModelConfig(**TINY), 3, 100, 0)
    with pytest.raises(ConfigError, match="head_lr_scale must be positive"):
        build_optimizer(OptimizerConfig(head_lr_scale=0.0), model, total_steps=10)


def wide_step(model, optimizer, chars):
    logits = model(input_ids=paddle.to_tensor([[3, 4, 5, 6], [7, 8, 9, 0]]), char_ids=paddle.to_tensor(chars))
    paddle.nn.functional.binary_cross_entropy_with_logits(logits, paddle.to_tensor([[1.0, 0, 0], [0, 0, 1.0]])
                                                         ).backward()
    optimizer.step()
    optimizer.clear_grad()


def test_wide_table_gets_sgd_that_moves_only_the_rows_read_at_the_summed_loss_rate():
    from paddle_tag.engine.optim import JointOptimizer

    paddle.seed(0)
    model = build_model(ModelConfig(**TINY, wide=True, wide_buckets=512, freeze_encoder=True), 3, 100, 0)
    cfg = OptimizerConfig(lr=1e-2, warmup_ratio=0.0, head_lr_scale=1.0, wide_lr=0.5)
    optimizer, _ = build_optimizer(cfg, model, total_steps=10, loss_cells=2 * 3)
    assert isinstance(optimizer, JointOptimizer)
    dense, lazy = optimizer.parts
    assert isinstance(lazy, paddle.optimizer.SGD)
    def names(part):
        return {p.name for group in part._param_groups for p in group["params"]}

    table = model.wide.table.weight.name
    assert names(lazy) == {table} and table not in names(dense) and names(dense)
    chars = np.array([[0x897F, 0x6E56], [0x957F, 0x6C5F]], "int64")
    ids = set()
    for n in (1, 2, 3):
        buckets, mask = model.wide.ngram_buckets(paddle.to_tensor(np.pad(chars, ((0, 0), (0, 1)))), n)
        ids |= {int(b) for b, m in zip(buckets.numpy().ravel(), mask.numpy().ravel()) if m}
    before = model.wide.table.weight.numpy().copy()
    padded = paddle.to_tensor(np.pad(chars, ((0, 0), (0, 1))))
    logits = model(input_ids=paddle.to_tensor([[3, 4, 5, 6], [7, 8, 9, 0]]), char_ids=padded)
    loss = paddle.nn.functional.binary_cross_entropy_with_logits(logits, paddle.to_tensor([[1.0, 0, 0], [0, 0, 1.0]]))
    loss.backward()
    grad = model.wide.table.weight.grad
    expected = before.copy()
    np.subtract.at(expected, np.array(grad.rows()), 0.5 * 6 * grad.numpy())  # wide_lr × loss_cells × gradient
    optimizer.step()
    after = model.wide.table.weight.numpy()
    np.testing.assert_allclose(after, expected, rtol=1e-5, atol=1e-8)
    moved = set(np.flatnonzero(np.abs(after - before).sum(axis=1)).tolist())
    assert moved == ids  # 7 n-grams of the two texts; the other 505 rows untouched


def test_joint_optimizer_state_round_trip_resumes_the_same_steps():
    def fresh():
        paddle.seed(0)
        model = build_model(ModelConfig(**TINY, wide=True, wide_buckets=256, dropout=0.0, head_dropout=0.0), 3, 100, 0)
        return model, build_optimizer(OptimizerConfig(lr=1e-2, warmup_ratio=0.0), model, total_steps=10)[0]

    chars = np.array([[0x897F, 0x6E56, 0], [0x957F, 0x6C5F, 0x6C34]], "int64")
    model, optimizer = fresh()
    with paddle.utils.unique_name.guard():  # accumulator names as in a fresh process (the fit loop's scope)
        for _ in range(2):
            wide_step(model, optimizer, chars)
        # copies: state_dict() hands out the live tensors, which the next step changes
        state = {k: paddle.to_tensor(v.numpy()) if isinstance(v, paddle.Tensor) else v
                 for k, v in optimizer.state_dict().items()}
        weights = {k: v.numpy().copy() for k, v in model.state_dict().items()}
        wide_step(model, optimizer, chars)
    reference = {k: v.numpy().copy() for k, v in model.state_dict().items()}
    # SGD keeps nothing per row; the AdamW's moments and the schedule are what a resume needs
    assert not any(key.startswith(model.wide.table.weight.name) for key in state)
    assert "LR_Scheduler" in state and any("moment1" in key for key in state)

    resumed, resumed_opt = fresh()
    resumed.set_state_dict({k: paddle.to_tensor(v) for k, v in weights.items()})
    with paddle.utils.unique_name.guard():
        resumed_opt.set_state_dict(state)
        wide_step(resumed, resumed_opt, chars)
    for name, value in resumed.state_dict().items():
        np.testing.assert_allclose(value.numpy(), reference[name], atol=1e-6, err_msg=name)
