"""The one checkpoint format of every training task, written atomically and checked on load.

A checkpoint is a directory:

- ``checkpoint.json``: ``format``, ``kind`` (the task that wrote it: ``text_tagging``, ``image_tagging``,
  ``simcse``, ``simclr``, ``moco``), ``step``, provenance, and the SHA-256 of every other file in it;
- ``config.yaml`` (the resolved config of the run) and ``metrics.json`` (the evaluation that wrote it);
- the task's weights (its *payload*): a tagger's ``model.safetensors`` + ``model_config.json`` + ``labels.json``
  + ``thresholds.json`` (+ ``tokenizer/`` for text); SimCSE's encoder as a PaddleNLP model directory
  (``config.json``, ``model.safetensors``, ``tokenizer.json``) + ``projection.safetensors``; an image
  backbone's ``backbone.safetensors`` + ``backbone.json`` + ``projection.safetensors`` (+ MoCo's
  ``momentum.safetensors``);
- in ``last/`` only: ``optimizer.safetensors`` + ``trainer_state.json`` (:class:`~.state.TrainState`), so a killed
  run resumes exactly.

``tools/eval.py``, ``tools/predict.py`` and ``tools/export_model.py`` read tagger kinds (:func:`load_checkpoint`);
``Model.pretrained`` reads the pretraining kinds. A file changed after writing (or a missing one) is refused by
name. Checkpoints written before ``checkpoint.json`` existed (three formats, one per trainer) still load: their
kind is read from the files they hold, without checksums.

Atomicity (:func:`paddle_tag.utils.io.replace_directory`): everything is written into a hidden sibling folder,
then swapped in with two renames; if a crash falls between them, :func:`resolve_checkpoint` finds the previous
checkpoint in ``.<name>.old``.
"""
from __future__ import annotations

import os
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Optional

import numpy as np
import paddle
import yaml
from safetensors import SafetensorError
from safetensors.numpy import load_file, save_file
from tqdm.auto import tqdm

import paddle_tag
from paddle_tag.config import Config, load_config, save_config
from paddle_tag.data.labels import LabelSet
from paddle_tag.data.tokenizer import TextTokenizer, load_tokenizer
from paddle_tag.engine.optim import flatten_optimizer_state, unflatten_optimizer_state
from paddle_tag.engine.state import TrainState
from paddle_tag.errors import DamagedFileError, ModelLoadError
from paddle_tag.models import Tagger, load_tagger
from paddle_tag.models.backbones import ImageEncoder
from paddle_tag.models.embedder import Embedder
from paddle_tag.models.serialization import load_weights
from paddle_tag.utils.io import atomic_write_json, previous_copy, read_json, replace_directory, sha256_file

MANIFEST = "checkpoint.json"
FORMAT = 1
KINDS = ("text_tagging", "image_tagging", "simcse", "simclr", "moco", "next_item", "two_tower")
TAGGER_KINDS = ("text_tagging", "image_tagging")
TRAINER_STATE = "trainer_state.json"
OPTIMIZER_FILE = "optimizer.safetensors"
BACKBONE_WEIGHTS, BACKBONE_CONFIG = "backbone.safetensors", "backbone.json"
LOAD_ADVICE = "restore the file, or use the run's other checkpoint (best/ or last/)"
RESUME_ADVICE = ("this checkpoint cannot be resumed: restore the file, resume from another checkpoint with "
                 "-o Global.resume=<directory>, or start again with -o Global.resume=false")


@dataclass
class Training:
    """What ``last/`` adds to a checkpoint so the run can go on: the optimizer and the loop state."""

    model: paddle.nn.Layer
    optimizer: paddle.optimizer.Optimizer
    state: TrainState


def save_checkpoint(directory: str | os.PathLike, *, kind: str, config: Config, write_payload: Callable[[Path], None],
                    metrics: dict, step: int, training: Optional[Training] = None) -> Path:
    """Write a complete checkpoint of ``kind`` to ``directory``, replacing any previous one atomically."""
    if kind not in KINDS:
        raise ValueError(f"unknown checkpoint kind {kind!r}; one of {KINDS}")
    directory = Path(directory)
    with replace_directory(directory) as tmp:
        write_payload(tmp)
        save_config(config, tmp / "config.yaml")
        atomic_write_json(tmp / "metrics.json", metrics)
        if training is not None:
            tensors, extra = flatten_optimizer_state(training.optimizer.state_dict(),
                                                     {p.name: n for n, p in training.model.named_parameters()})
            save_file(tensors, str(tmp / OPTIMIZER_FILE))
            atomic_write_json(tmp / TRAINER_STATE, {**training.state.to_json(), "optimizer_extra": extra})
        files = {str(p.relative_to(tmp)): sha256_file(p) for p in sorted(tmp.rglob("*")) if p.is_file()}
        atomic_write_json(tmp / MANIFEST, {
            "format": FORMAT, "kind": kind, "step": step, "paddle_tag_version": paddle_tag.__version__,
            "started_from": config.Model.pretrained or "random init", "train_path": config.Data.train_path,
            "files": files})
    return directory


def resolve_checkpoint(directory: str | os.PathLike) -> Path:
    """The directory to load: ``directory`` itself, or the previous copy a crash mid-swap left behind."""
    directory = Path(directory)
    if directory.is_dir():
        return directory
    old = previous_copy(directory)
    if old.is_dir():
        return old
    raise ModelLoadError(f"checkpoint not found: {directory}")


def checkpoint_kind(directory: str | os.PathLike) -> str:
    """The kind of the checkpoint in ``directory``, after checking every file against its recorded SHA-256."""
    directory = resolve_checkpoint(directory)
    if not (directory / MANIFEST).is_file():
        return _legacy_kind(directory)
    try:
        manifest = read_json(directory / MANIFEST)
        kind, files = manifest["kind"], manifest["files"]
    except (ValueError, KeyError, TypeError) as exc:
        raise ModelLoadError(f"{directory / MANIFEST} is damaged ({exc!r}); the checkpoint cannot be trusted") from None
    if manifest.get("format") != FORMAT or kind not in KINDS:
        raise ModelLoadError(f"{directory}: checkpoint format {manifest.get('format')} / kind {kind!r} is not one "
                             f"this paddle_tag ({paddle_tag.__version__}) reads (format {FORMAT}, kinds {KINDS})")
    for name, digest in files.items():
        path = directory / name
        if not path.is_file():
            raise ModelLoadError(f"{directory}: {name} is missing (the checkpoint lists it)")
        if sha256_file(path) != digest:
            raise ModelLoadError(f"{path} was changed after the checkpoint was written (SHA-256 differs); "
                                 "restore it or train again")
    return kind


def _legacy_kind(directory: Path) -> str:
    """Checkpoints written before ``checkpoint.json``: the tagger, SimCSE and image-pretraining layouts."""
    if (directory / "model_config.json").is_file():
        return "image_tagging" if read_json(directory / "model_config.json").get("modality") == "image" \
            else "text_tagging"
    if (directory / BACKBONE_CONFIG).is_file():
        saved = yaml.safe_load((directory / "config.yaml").read_text(encoding="utf-8")) \
            if (directory / "config.yaml").is_file() else {}
        return "moco" if ((saved or {}).get("Pretrain") or {}).get("method") == "moco" else "simclr"
    if (directory / "config.json").is_file() and (directory / "model.safetensors").is_file():
        return "simcse"
    raise ModelLoadError(f"{directory} is not a paddle_tag checkpoint: no {MANIFEST}, and none of the files of "
                         f"the earlier layouts (model_config.json, backbone.json, config.json + model.safetensors)")


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


@contextmanager
def readable(directory: Path, advice: str) -> Iterator[None]:
    """Turn what a damaged checkpoint raises while it is read (bad JSON, a truncated safetensors file, a key
    missing from a file that has no checksum) into one :class:`ModelLoadError` that ends with ``advice``."""
    try:
        yield
    except DamagedFileError as exc:
        raise ModelLoadError(f"{exc}; {advice}") from None
    except (KeyError, TypeError, ValueError, FileNotFoundError, SafetensorError) as exc:
        raise ModelLoadError(f"{directory}: cannot read the checkpoint ({type(exc).__name__}: {exc}); {advice}") \
            from None


def restore_training(directory: Path, kind: str, model: paddle.nn.Layer, optimizer: paddle.optimizer.Optimizer,
                     restore_weights: Callable[[Path], None]) -> TrainState:
    """Check that ``directory`` is an intact ``kind`` checkpoint with training state; load the weights with the
    task's ``restore_weights``, then ``optimizer``'s state; return the saved :class:`TrainState`."""
    with readable(directory, RESUME_ADVICE):
        saved_kind = checkpoint_kind(directory)
        if saved_kind != kind:
            raise ModelLoadError(f"cannot resume a {kind} run from {directory}: it is a {saved_kind} checkpoint")
        for name in (TRAINER_STATE, OPTIMIZER_FILE):
            if not (directory / name).is_file():
                raise ModelLoadError(f"{directory} has no {name}: it is not a training checkpoint to resume from")
        restore_weights(directory)
        saved = read_json(directory / TRAINER_STATE)
        to_paddle = {name: p.name for name, p in model.named_parameters()}
        try:
            tensors = load_file(str(directory / OPTIMIZER_FILE))
        except SafetensorError as exc:
            raise DamagedFileError(f"{directory / OPTIMIZER_FILE} is damaged ({exc})") from None
        optimizer.set_state_dict(unflatten_optimizer_state(tensors, saved.pop("optimizer_extra", {}), to_paddle))
        return TrainState.from_json(saved)


@dataclass
class Checkpoint:
    """A loaded tagger checkpoint: the model in eval mode and what it needs to turn scores into tags."""

    model: Tagger
    tokenizer: Optional[TextTokenizer]  # None for an image tagger
    labels: LabelSet
    thresholds: Optional[np.ndarray]  # (C,) for multi_label, None for multi_class (argmax)
    config: Config
    directory: Path

    @property
    def task(self) -> str:
        return self.config.Data.task


def load_checkpoint(directory: str | os.PathLike) -> Checkpoint:
    """Load a tagger checkpoint (``text_tagging`` / ``image_tagging``) for evaluation, prediction or export."""
    directory = resolve_checkpoint(directory)
    with readable(directory, LOAD_ADVICE):
        return _load_tagger_checkpoint(directory)


def _load_tagger_checkpoint(directory: Path) -> Checkpoint:
    kind = checkpoint_kind(directory)
    if kind not in TAGGER_KINDS:
        raise ModelLoadError(f"{directory} is a {kind} pretraining checkpoint: it has no tagging head. Fine-tune "
                             f"from it with -o Model.pretrained={directory}, or probe it with tools/eval.py "
                             f"--linear-probe")
    model, _ = load_tagger(directory)
    labels = LabelSet.load(directory / "labels.json")
    if len(labels) != model.num_labels:
        raise ModelLoadError(f"{directory}: labels.json has {len(labels)} labels, the model {model.num_labels}")
    config = load_config(directory / "config.yaml")
    saved = read_json(directory / "thresholds.json")["thresholds"]
    thresholds = None if saved is None else np.array([saved[n] for n in labels.names], dtype="float64")
    tokenizer = load_tokenizer(str(directory / "tokenizer"), None) if kind == "text_tagging" else None
    return Checkpoint(model, tokenizer, labels, thresholds, config, directory)


def checkpoint_embedder(directory: str | os.PathLike, **kwargs) -> Embedder:
    """An :class:`Embedder` over a text tagger checkpoint's encoder, with its own tokenizer (prefix included)."""
    ckpt = load_checkpoint(directory)
    if ckpt.tokenizer is None:
        raise ModelLoadError(f"{ckpt.directory} is an image tagger: it cannot embed texts")
    kwargs.setdefault("pooling", ckpt.model.pooling)
    return Embedder(ckpt.model.encoder, ckpt.tokenizer, **kwargs)


def load_backbone(encoder: ImageEncoder, source: str | os.PathLike) -> None:
    """Load ``encoder``'s weights from a ``simclr`` / ``moco`` checkpoint or a backbone ``.safetensors`` file
    (a pickle-based ``.pdparams`` is refused, with the command that converts a trusted one); the backbone
    names must match."""
    path = Path(source)
    if path.is_file():
        encoder.load_backbone(path)
        return
    path = resolve_checkpoint(path)
    kind = checkpoint_kind(path)
    if kind not in ("simclr", "moco"):
        raise ModelLoadError(f"{path} is a {kind} checkpoint, not an image pretraining one (expected best/ or last/ "
                             f"of a simclr / moco run, or a backbone .safetensors file)")
    saved = read_json(path / BACKBONE_CONFIG)
    if saved.get("backbone") != encoder.name:
        raise ModelLoadError(f"{path} holds a {saved.get('backbone')!r} backbone, but Model.name={encoder.name}")
    load_weights(encoder, path / BACKBONE_WEIGHTS)
