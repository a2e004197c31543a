"""The image pretraining checkpoint: a backbone directory that ``Model.pretrained`` loads, plus training state.

``<output_dir>/best`` and ``<output_dir>/last`` each hold
``backbone.safetensors`` (the :class:`~paddle_tag.models.backbones.ImageEncoder` state: weights and
BatchNorm statistics, float32) + ``backbone.json`` (``backbone``, ``feature_dim``, ``image_size``),
``projection.safetensors`` (the projection head, used only to resume), the pretraining ``config.yaml``,
``metrics.json`` and ``provenance.json``. ``last/`` adds ``optimizer.safetensors``, ``trainer_state.json``
and, for MoCo, ``momentum.safetensors``: the momentum encoder and head (``encoder.*``, ``projection.*``)
and the queue (``queue.queue``, ``queue.ptr``), so a resumed run continues exactly. Written atomically.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import paddle
from safetensors.numpy import save_file

from paddle_tag.config import Config, save_config
from paddle_tag.engine.checkpoint import (
    TRAINER_STATE,
    load_trainer_state,
    resolve_checkpoint,
)
from paddle_tag.engine.pretrain_checkpoint import write_run_records
from paddle_tag.errors import ModelLoadError
from paddle_tag.models.backbones import ImageEncoder
from paddle_tag.models.image import ContrastiveImageModel
from paddle_tag.models.serialization import load_weights, state_to_numpy
from paddle_tag.utils.io import atomic_write_json, read_json, replace_directory

BACKBONE_WEIGHTS = "backbone.safetensors"
BACKBONE_CONFIG = "backbone.json"
PROJECTION_WEIGHTS = "projection.safetensors"
MOMENTUM_STATE = "momentum.safetensors"


def save_image_pretrain_checkpoint(directory: str | os.PathLike, *, model: ContrastiveImageModel, config: Config,
                                   metrics: Optional[dict] = None, momentum: Optional[paddle.nn.Layer] = None,
                                   optimizer: Optional[paddle.optimizer.Optimizer] = None,
                                   trainer_state: Optional[dict] = None) -> Path:
    """Write the backbone as a ``Model.pretrained`` directory (+ head, config, metrics, optional training state).

    ``momentum``: MoCo's key side (a layer with ``encoder``, ``projection`` and ``queue``), saved with the
    training state only.
    """
    directory = Path(directory)
    encoder = model.encoder
    with replace_directory(directory) as tmp:
        save_file(state_to_numpy(encoder), str(tmp / BACKBONE_WEIGHTS))
        atomic_write_json(tmp / BACKBONE_CONFIG, {"backbone": encoder.name, "feature_dim": encoder.feature_dim,
                                                   "image_size": config.Data.image_size})
        if model.projection is not None:
            save_file(state_to_numpy(model.projection), str(tmp / PROJECTION_WEIGHTS))
        save_config(config, tmp / "config.yaml")
        write_run_records(tmp, model, config, metrics, optimizer, trainer_state,
                          made_by="paddle_tag contrastive image pretraining", backbone=encoder.name)
        if optimizer is not None and momentum is not None:
            save_file(state_to_numpy(momentum), str(tmp / MOMENTUM_STATE))
    return directory


def restore_image_pretraining(directory: str | os.PathLike, model: ContrastiveImageModel,
                              optimizer: paddle.optimizer.Optimizer,
                              momentum: Optional[paddle.nn.Layer] = None) -> dict:
    """Load backbone, head, momentum side and optimizer state from ``last/``; return the saved loop state."""
    directory = resolve_checkpoint(directory)
    if not (directory / TRAINER_STATE).is_file():
        raise ModelLoadError(f"{directory} has no {TRAINER_STATE}: it is not a pretraining checkpoint to resume from")
    load_pretrained_backbone(model.encoder, directory)
    if model.projection is not None:
        load_weights(model.projection, directory / PROJECTION_WEIGHTS)
    if momentum is not None:
        load_weights(momentum, directory / MOMENTUM_STATE)
    return load_trainer_state(directory, model, optimizer)


def load_pretrained_backbone(encoder: ImageEncoder, source: str | os.PathLike) -> None:
    """Load ``encoder``'s weights from a pretraining checkpoint directory (``backbone.json`` +
    ``backbone.safetensors``) or a PaddleClas ``.pdparams`` file; the backbone names must match."""
    path = Path(source)
    if path.is_file() and path.suffix == ".pdparams":
        encoder.load_backbone(path)
        return
    path = resolve_checkpoint(path)
    if not (path / BACKBONE_CONFIG).is_file():
        raise ModelLoadError(f"{path} is not an image pretraining checkpoint: no {BACKBONE_CONFIG} (expected "
                             f"best/ or last/ of a simclr / moco run, or a PaddleClas .pdparams file)")
    saved = read_json(path / BACKBONE_CONFIG)
    if saved.get("backbone") != encoder.name:
        raise ModelLoadError(f"{path} holds a {saved.get('backbone')!r} backbone, but Model.name={encoder.name}")
    load_weights(encoder, path / BACKBONE_WEIGHTS)
