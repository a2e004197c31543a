"""Checks that span config sections; each section's own ranges are checked by its ``__post_init__``.

:func:`validate` needs the whole :class:`Config` (one section alone cannot tell whether ``Model.name`` fits
``Data.modality``), so the loader does not call it: the code that uses a config calls it once, with
``training=True`` before a training run, for the checks that only matter when data is read and a model learns.
"""
from __future__ import annotations

from pathlib import Path

from paddle_tag.config.recommend_schema import TWO_TOWER_MODELS
from paddle_tag.config.schema import (
    IMAGE_BACKBONES,
    IMAGE_METHODS,
    SEQUENCE_MODELS,
    TEXT_ENCODERS,
    TEXT_METHODS,
    Config,
)
from paddle_tag.errors import ConfigError


def validate(config: Config, *, training: bool = False) -> None:
    """Raise :class:`~paddle_tag.errors.ConfigError` when sections disagree; ``training`` adds the checks of a
    ``tools/train.py`` run (data paths present, augmentation and kNN files, batch sizes of contrastive runs)."""
    check_modality(config)
    model = config.Model
    # a random-init encoder gets Model.max_position position embeddings; a pretrained one brings its own
    # (checked against its checkpoint when it is loaded)
    if config.Data.modality == "text" and not model.pretrained and config.Data.max_seq_len > model.max_position:
        raise ConfigError(f"Data.max_seq_len={config.Data.max_seq_len} exceeds Model.max_position={model.max_position}")
    if model.name in TWO_TOWER_MODELS and config.Recommend.recent_items > config.Data.max_seq_len:
        raise ConfigError(f"Recommend.recent_items={config.Recommend.recent_items} exceeds the history the model reads "
                          f"(Data.max_seq_len={config.Data.max_seq_len})")
    if training:
        check_training(config)


def check_modality(config: Config) -> None:
    """``Data.modality``, ``Model.name`` and ``Pretrain.method`` must agree: text encoders and SimCSE for text,
    PaddleClas backbones and SimCLR / MoCo for images, next-item models (no pretraining) for sequences."""
    name, method, modality = config.Model.name, config.Pretrain.method, config.Data.modality
    names = {"text": TEXT_ENCODERS, "image": IMAGE_BACKBONES, "sequence": SEQUENCE_MODELS + TWO_TOWER_MODELS}
    if modality == "text" and name in IMAGE_BACKBONES:
        raise ConfigError(f"Model.name={name} is an image backbone but Data.modality=text: set Data.modality=image "
                          f"(with .npz data paths) or a text encoder ({', '.join(TEXT_ENCODERS)})")
    if modality == "image" and name not in IMAGE_BACKBONES:
        raise ConfigError(f"Data.modality=image needs an image backbone as Model.name "
                          f"({', '.join(IMAGE_BACKBONES)}), got {name}")
    if name not in names[modality]:
        raise ConfigError(f"Model.name={name} does not read Data.modality={modality}; choose from "
                          f"{', '.join(names[modality])}")
    if modality != "image" and method in IMAGE_METHODS:
        raise ConfigError(f"Pretrain.method={method} pretrains images (Data.modality=image); text uses "
                          f"{' or '.join(TEXT_METHODS)}")
    if modality == "image" and method in TEXT_METHODS:
        raise ConfigError(f"Pretrain.method={method} pretrains text; images use {' or '.join(IMAGE_METHODS)}")
    if modality == "sequence" and method:
        raise ConfigError(f"Pretrain.method={method}: next-item models (Data.modality=sequence) train directly; "
                          "set Pretrain.method=null")


def check_training(config: Config) -> None:
    """What a training run needs beyond the sections' ranges; files are only checked for presence here."""
    data, pre, model = config.Data, config.Pretrain, config.Model
    # pretraining is unsupervised: it selects best/ by the kNN monitor (if any), not by an eval split
    # next-item models split the one interaction log themselves (leave-one-out)
    for key in ("train_path",) if pre.method or data.modality == "sequence" else ("train_path", "eval_path"):
        if not getattr(data, key):
            raise ConfigError(f"Data.{key} is required for training")
    # the engine checks that Model.pretrained resolves to a local directory (image backbones have no vocabulary)
    if data.modality == "text" and model.prune_vocab and not model.pretrained:
        raise ConfigError("Model.prune_vocab needs Model.pretrained to be a local model directory")
    if not pre.method:  # the rest are Pretrain.* keys, unused by fine-tuning
        return
    if pre.method in TEXT_METHODS and pre.synonym_replace > 0:
        if not pre.synonyms_path or not Path(pre.synonyms_path).is_file():
            raise ConfigError(f"Pretrain.synonym_replace needs Pretrain.synonyms_path, a synonym table "
                              f"(python tools/prepare_data.py synonyms); got {pre.synonyms_path!r}")
    if bool(pre.knn_train_path) != bool(pre.knn_eval_path):
        raise ConfigError("the kNN monitor needs both Pretrain.knn_train_path and Pretrain.knn_eval_path")
    if pre.method in IMAGE_METHODS:
        check_image_pretraining(config)


def check_image_pretraining(config: Config) -> None:
    """SimCLR / MoCo: in-batch negatives and BatchNorm need at least 2 images per batch (per BN sub-batch)."""
    pre, batch = config.Pretrain, config.Data.batch_size
    if batch < 2:
        raise ConfigError(f"contrastive pretraining needs Data.batch_size >= 2 (negatives, BatchNorm), got {batch}")
    if config.Global.amp == "O2":
        raise ConfigError("image pretraining supports Global.amp O1 or null, not O2")
    if pre.method == "moco" and (pre.bn_splits < 1 or batch % pre.bn_splits or batch // pre.bn_splits < 2):
        raise ConfigError(f"Pretrain.bn_splits={pre.bn_splits} must divide Data.batch_size={batch} into "
                          f"sub-batches of at least 2 images")
