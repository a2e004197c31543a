"""Losses, one idea per module; :func:`build_loss` maps ``Loss.name`` to a class."""
from __future__ import annotations

import paddle

from paddle_tag.config.schema import LossConfig
from paddle_tag.losses.classification import BCEWithLogitsLoss, CrossEntropyLoss
from paddle_tag.losses.contrastive import InfoNCELoss, NTXentLoss
from paddle_tag.losses.moco import MoCoQueue, copy_and_freeze, momentum_update

LOSSES = {"ce": CrossEntropyLoss, "bce": BCEWithLogitsLoss}
DEFAULT_FOR_TASK = {"multi_class": "ce", "multi_label": "bce"}


def build_loss(cfg: LossConfig, task: str) -> paddle.nn.Layer:
    """The loss named by ``Loss.name``; ``auto`` follows ``Data.task``."""
    name = DEFAULT_FOR_TASK[task] if cfg.name == "auto" else cfg.name
    if name == "ce":
        return CrossEntropyLoss(cfg.label_smoothing)
    return LOSSES[name]()


__all__ = ["BCEWithLogitsLoss", "CrossEntropyLoss", "InfoNCELoss", "LOSSES", "MoCoQueue", "NTXentLoss", "build_loss",
           "copy_and_freeze", "momentum_update"]
