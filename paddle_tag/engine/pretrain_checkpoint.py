"""The pretraining checkpoint: a model directory that ``Model.pretrained`` loads, plus training state.

``<output_dir>/best`` and ``<output_dir>/last`` each hold
``config.json`` + ``model.safetensors`` (the encoder, PaddleNLP ``from_pretrained`` layout, float32),
``tokenizer.json`` (without ``Data.text_prefix``: the fine-tuning config sets its own),
``projection.safetensors`` (the projection head, used only to resume), the pretraining ``config.yaml``,
``metrics.json`` and ``provenance.json``; ``last/`` adds ``optimizer.safetensors`` and
``trainer_state.json``. Written atomically like the tagger checkpoints.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import paddle
from safetensors.numpy import save_file

import paddle_tag
from paddle_tag.config import Config, save_config
from paddle_tag.engine.checkpoint import (
    TRAINER_STATE,
    load_trainer_state,
    resolve_checkpoint,
    save_training_state,
)
from paddle_tag.errors import ModelLoadError
from paddle_tag.models.contrastive import ContrastiveTextModel
from paddle_tag.models.serialization import load_weights, state_to_numpy
from paddle_tag.utils.io import atomic_write_json, replace_directory

ENCODER_WEIGHTS = "model.safetensors"
PROJECTION_WEIGHTS = "projection.safetensors"


def save_pretrain_checkpoint(directory: str | os.PathLike, *, model: ContrastiveTextModel, tokenizer,
                             config: Config, metrics: Optional[dict] = None,
                             optimizer: Optional[paddle.optimizer.Optimizer] = None,
                             trainer_state: Optional[dict] = None) -> Path:
    """Write the encoder as a loadable model directory (+ head, config, metrics, optional training state)."""
    directory = Path(directory)
    with replace_directory(directory) as tmp:
        model.encoder.config.save_pretrained(str(tmp))
        # PaddleNLP from_pretrained reads the "format" metadata of the file
        save_file(state_to_numpy(model.encoder), str(tmp / ENCODER_WEIGHTS), metadata={"format": "np"})
        if model.projection is not None:
            save_file(state_to_numpy(model.projection), str(tmp / PROJECTION_WEIGHTS))
        tokenizer.save(tmp)
        save_config(config, tmp / "config.yaml")
        write_run_records(tmp, model, config, metrics, optimizer, trainer_state,
                          made_by="paddle_tag contrastive pretraining")
    return directory


def write_run_records(directory: Path, model: paddle.nn.Layer, config: Config, metrics: Optional[dict],
                      optimizer: Optional[paddle.optimizer.Optimizer], trainer_state: Optional[dict],
                      **provenance) -> None:
    """``provenance.json``, ``metrics.json`` and, with an optimizer, the training state of a pretraining
    checkpoint (text or image)."""
    atomic_write_json(directory / "provenance.json", {
        **provenance, "method": config.Pretrain.method, "started_from": config.Model.pretrained or "random init",
        "train_path": config.Data.train_path,
        "step": (trainer_state or {}).get("global_step", (metrics or {}).get("step")),
        "paddle_tag_version": paddle_tag.__version__})
    if metrics is not None:
        atomic_write_json(directory / "metrics.json", metrics)
    if optimizer is not None:
        save_training_state(directory, model, optimizer, trainer_state)


def restore_pretraining(directory: str | os.PathLike, model: ContrastiveTextModel,
                        optimizer: paddle.optimizer.Optimizer) -> dict:
    """Load encoder, head and optimizer state from ``last/``; return the saved loop state."""
    directory = resolve_checkpoint(directory)
    if not (directory / TRAINER_STATE).is_file():
        raise ModelLoadError(f"{directory} has no {TRAINER_STATE}: it is not a pretraining checkpoint to resume from")
    load_weights(model.encoder, directory / ENCODER_WEIGHTS)
    if model.projection is not None:
        load_weights(model.projection, directory / PROJECTION_WEIGHTS)
    return load_trainer_state(directory, model, optimizer)
