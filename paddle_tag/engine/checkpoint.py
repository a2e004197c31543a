"""The checkpoint directory contract, written atomically.

A checkpoint holds everything needed to rebuild the tagger and predict, without the original config
file or data: ``model.safetensors`` + ``model_config.json``, ``tokenizer/`` (text only), ``labels.json``,
``thresholds.json``, the resolved ``config.yaml`` and ``metrics.json``. A training checkpoint adds
``optimizer.safetensors`` + ``trainer_state.json`` (step, epoch, position in the epoch, LR schedule,
best metric, history) so a killed run resumes exactly.

Atomicity (:func:`paddle_tag.utils.io.replace_directory`): everything is written into a hidden sibling
folder, then swapped in with two renames; if a crash falls between them, :func:`resolve_checkpoint`
finds the previous checkpoint in ``.<name>.old``.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np
import paddle
from safetensors.numpy import load_file, save_file
from tqdm.auto import tqdm

from paddle_tag.config import Config, load_config, save_config
from paddle_tag.data.labels import LabelSet
from paddle_tag.data.tokenizer import TextTokenizer, load_tokenizer, save_tokenizer
from paddle_tag.errors import ModelLoadError
from paddle_tag.models import Tagger, load_tagger, save_tagger
from paddle_tag.models.serialization import load_weights
from paddle_tag.utils.io import atomic_write_json, previous_copy, read_json, replace_directory

TRAINER_STATE = "trainer_state.json"
OPTIMIZER_FILE = "optimizer.safetensors"


@dataclass
class Checkpoint:
    """A loaded checkpoint: the model in eval mode and what it needs to turn scores into tags."""

    model: Tagger
    tokenizer: Optional[TextTokenizer]  # None for an image tagger (model_config.json "modality": "image")
    labels: LabelSet
    thresholds: Optional[np.ndarray]  # (C,) for multi_label, None for multi_class (argmax)
    config: Config
    directory: Path

    @property
    def task(self) -> str:
        return self.config.Data.task


def save_checkpoint(directory: str | os.PathLike, *, model: Tagger, tokenizer, labels: LabelSet,
                    thresholds: Optional[np.ndarray], config: Config, metrics: Optional[dict] = None,
                    optimizer: Optional[paddle.optimizer.Optimizer] = None,
                    trainer_state: Optional[dict] = None) -> Path:
    """Write a complete checkpoint to ``directory``, replacing any previous one atomically."""
    directory = Path(directory)
    with replace_directory(directory) as tmp:
        save_tagger(model, config.Model.name, tmp)
        if tokenizer is not None:  # image taggers have none
            save_tokenizer(tokenizer, tmp / "tokenizer")
        labels.save(tmp / "labels.json")
        per_label = None if thresholds is None else {n: float(t) for n, t in zip(labels.names, thresholds)}
        atomic_write_json(tmp / "thresholds.json", {"task": config.Data.task, "thresholds": per_label})
        save_config(config, tmp / "config.yaml")
        if metrics is not None:
            atomic_write_json(tmp / "metrics.json", metrics)
        if optimizer is not None:
            save_training_state(tmp, model, optimizer, trainer_state)
    return directory


def save_training_state(directory: Path, model: paddle.nn.Layer, optimizer: paddle.optimizer.Optimizer,
                        trainer_state: Optional[dict]) -> None:
    """Write what resuming needs besides the weights: ``optimizer.safetensors`` + ``trainer_state.json``."""
    tensors, extra = optimizer_state(optimizer, model)
    save_file(tensors, str(directory / OPTIMIZER_FILE))
    atomic_write_json(directory / TRAINER_STATE, {**(trainer_state or {}), "optimizer_extra": extra})


def resolve_checkpoint(directory: str | os.PathLike) -> Path:
    """The directory to load: ``directory`` itself, or the previous copy a crash mid-swap left behind."""
    directory = Path(directory)
    if directory.is_dir():
        return directory
    old = previous_copy(directory)
    if old.is_dir():
        return old
    raise ModelLoadError(f"checkpoint not found: {directory}")


def resume_checkpoint(resume: bool | str, output_dir: Path) -> Optional[Path]:
    """The checkpoint ``Global.resume`` points at: ``<output_dir>/last`` for ``true`` (None, with a note, when
    there is none yet), the given path for a string (which must exist), None for ``false``."""
    if resume is False:
        return None
    path = output_dir / "last" if resume is True else Path(resume)
    try:
        return resolve_checkpoint(path)
    except ModelLoadError:
        if resume is True:
            tqdm.write(f"[resume] no checkpoint at {path}; starting from scratch")
            return None
        raise


def load_checkpoint(directory: str | os.PathLike) -> Checkpoint:
    """Load a checkpoint for evaluation or prediction."""
    directory = resolve_checkpoint(directory)
    model, meta = load_tagger(directory)
    labels = LabelSet.load(directory / "labels.json")
    if len(labels) != model.num_labels:
        raise ModelLoadError(f"{directory}: labels.json has {len(labels)} labels, the model {model.num_labels}")
    config = load_config(directory / "config.yaml")
    saved = read_json(directory / "thresholds.json")["thresholds"]
    thresholds = None if saved is None else np.array([saved[n] for n in labels.names], dtype="float64")
    tokenizer = None if meta.get("modality") == "image" else load_tokenizer(str(directory / "tokenizer"), None)
    return Checkpoint(model, tokenizer, labels, thresholds, config, directory)


def optimizer_state(optimizer: paddle.optimizer.Optimizer, model: paddle.nn.Layer) -> tuple[dict, dict]:
    """Optimizer state as (tensors for safetensors, JSON-able extras), keyed by structured parameter names.

    Paddle keys accumulators by generated parameter names (``linear_3.w_0_moment1_0``) that depend on build
    order; structured names (``classifier.weight|moment1_0``) survive any rebuild. Nested tensor dicts
    (``master_weights`` under AMP O2) are flattened as ``master_weights/<name>``.
    """
    return flatten_optimizer_state(optimizer.state_dict(), {p.name: n for n, p in model.named_parameters()})


def flatten_optimizer_state(state: dict, to_structured: dict[str, str]) -> tuple[dict, dict]:
    """See :func:`optimizer_state`; ``to_structured`` maps Paddle parameter names to structured names."""
    def rename(key: str) -> str:
        if key in to_structured:
            return f"{to_structured[key]}|"
        param = max((p for p in to_structured if key.startswith(p + "_")), key=len, default=None)
        if param is None:
            raise RuntimeError(f"optimizer state {key!r} belongs to no model parameter")
        return f"{to_structured[param]}|{key[len(param) + 1:]}"

    tensors, extra = {}, {}
    for key, value in state.items():
        if isinstance(value, paddle.Tensor):
            tensors[rename(key)] = np.ascontiguousarray(value.numpy())
        elif isinstance(value, dict) and any(isinstance(v, paddle.Tensor) for v in value.values()):
            for sub, tensor in value.items():
                tensors[f"{key}/{rename(sub)}"] = np.ascontiguousarray(tensor.numpy())
        else:
            extra[key] = value
    return tensors, extra


def unflatten_optimizer_state(tensors: dict[str, np.ndarray], extra: dict, to_paddle: dict[str, str]) -> dict:
    """Inverse of :func:`flatten_optimizer_state`; ``to_paddle`` maps structured names to Paddle names."""
    state: dict[str, Any] = dict(extra)
    for key, value in tensors.items():
        group, _, key = key.rpartition("/")
        structured, suffix = key.split("|", 1)
        name = to_paddle[structured] + (f"_{suffix}" if suffix else "")
        target = state.setdefault(group, {}) if group else state
        target[name] = paddle.to_tensor(value)
    return state


def restore_training(directory: str | os.PathLike, model: Tagger,
                     optimizer: paddle.optimizer.Optimizer) -> dict:
    """Load weights and optimizer state from a training checkpoint; return its trainer state."""
    directory = resolve_checkpoint(directory)
    if not (directory / TRAINER_STATE).is_file():
        raise ModelLoadError(f"{directory} has no {TRAINER_STATE}: it is not a training checkpoint to resume from")
    load_weights(model, directory / "model.safetensors")
    return load_trainer_state(directory, model, optimizer)


def load_trainer_state(directory: Path, model: paddle.nn.Layer, optimizer: paddle.optimizer.Optimizer) -> dict:
    """Restore ``optimizer`` from ``directory/optimizer.safetensors``; return ``trainer_state.json``."""
    state = read_json(directory / TRAINER_STATE)
    to_paddle = {name: p.name for name, p in model.named_parameters()}
    tensors = load_file(str(directory / OPTIMIZER_FILE))
    optimizer.set_state_dict(unflatten_optimizer_state(tensors, state.pop("optimizer_extra", {}), to_paddle))
    return state
