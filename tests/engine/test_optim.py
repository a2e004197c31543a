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
