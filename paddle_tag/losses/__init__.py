"""Losses, one idea per module; :func:`build_loss` maps ``Loss.name`` to a class."""
from __future__ import annotations

import paddle

from paddle_tag.config.schema import LossConfig
from paddle_tag.errors import ConfigError
from paddle_tag.losses.asymmetric import AsymmetricLoss, FocalLoss
from paddle_tag.losses.classification import BCEWithLogitsLoss, CrossEntropyLoss
from paddle_tag.losses.contrastive import InfoNCELoss, NTXentLoss
from paddle_tag.losses.moco import MoCoQueue, copy_and_freeze, momentum_update

#: Loss.name → how to build it from Loss.*; the sigmoid losses (all but ce) are for multi-label tagging
LOSSES = {
    "ce": lambda cfg: CrossEntropyLoss(cfg.label_smoothing),
    "bce": lambda cfg: BCEWithLogitsLoss(),
    "asl": lambda cfg: AsymmetricLoss(cfg.gamma_neg, cfg.gamma_pos, cfg.clip),
    "focal": lambda cfg: FocalLoss(cfg.gamma),
}
DEFAULT_FOR_TASK = {"multi_class": "ce", "multi_label": "bce"}


def build_loss(cfg: LossConfig, task: str) -> paddle.nn.Layer:
    """The loss named by ``Loss.name``; ``auto`` follows ``Data.task``."""
    name = DEFAULT_FOR_TASK[task] if cfg.name == "auto" else cfg.name
    if (name == "ce") != (task == "multi_class"):
        want = "ce" if task == "multi_class" else "bce, asl or focal"
        raise ConfigError(f"Loss.name={name} does not fit Data.task={task}: use {want} (or auto)")
    return LOSSES[name](cfg)


__all__ = ["AsymmetricLoss", "BCEWithLogitsLoss", "CrossEntropyLoss", "FocalLoss", "InfoNCELoss", "LOSSES",
           "MoCoQueue", "NTXentLoss", "build_loss", "copy_and_freeze", "momentum_update"]
