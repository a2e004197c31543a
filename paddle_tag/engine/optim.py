"""AdamW with linear warmup/decay and global-norm clipping, built from ``Optimizer.*``."""
from __future__ import annotations

import paddle

from paddle_tag.config.schema import OptimizerConfig
from paddle_tag.errors import ConfigError
from paddle_tag.models.tagger import HEAD_PREFIXES
from paddle_tag.utils.quiet import quiet_paddlenlp

NO_DECAY = ("bias", "norm")


def build_optimizer(cfg: OptimizerConfig, model: paddle.nn.Layer, total_steps: int):
    """Return ``(optimizer, scheduler)``; biases and LayerNorm weights get no weight decay, and the layers a
    tagger adds on top of its encoder (head, wide part, window pooling) learn at ``lr * head_lr_scale``.
    Frozen parameters (``stop_gradient``, e.g. ``Model.freeze_encoder``) are left out."""
    quiet_paddlenlp()
    from paddlenlp.transformers import LinearDecayWithWarmup

    if cfg.lr <= 0:
        raise ConfigError(f"Optimizer.lr must be positive, got {cfg.lr}")
    if not 0 <= cfg.warmup_ratio < 1:
        raise ConfigError(f"Optimizer.warmup_ratio must be in [0, 1), got {cfg.warmup_ratio}")
    if cfg.head_lr_scale <= 0:
        raise ConfigError(f"Optimizer.head_lr_scale must be positive, got {cfg.head_lr_scale}")
    scheduler = LinearDecayWithWarmup(cfg.lr, max(total_steps, 1), cfg.warmup_ratio)
    decay = {p.name for n, p in model.named_parameters() if not any(key in n for key in NO_DECAY)}
    named = [(n, p) for n, p in model.named_parameters() if not p.stop_gradient]
    head = [p for n, p in named if n.startswith(HEAD_PREFIXES)]
    body = [p for n, p in named if not n.startswith(HEAD_PREFIXES)]
    # a group's "learning_rate" multiplies the scheduled lr
    groups = ([{"params": body}] if body else []) + (
        [{"params": head, "learning_rate": cfg.head_lr_scale}] if head else [])
    optimizers = {"adamw": paddle.optimizer.AdamW}
    optimizer = optimizers[cfg.name](
        learning_rate=scheduler, parameters=groups, weight_decay=cfg.weight_decay,
        beta1=cfg.beta1, beta2=cfg.beta2, epsilon=cfg.epsilon,
        grad_clip=paddle.nn.ClipGradByGlobalNorm(cfg.max_grad_norm) if cfg.max_grad_norm > 0 else None,
        apply_decay_param_fun=lambda name: name in decay)
    return optimizer, scheduler
