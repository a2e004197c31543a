"""Read-outs of a frozen pretrained encoder on labelled data: weighted kNN top-1 and a linear probe.

``tools/eval.py --linear-probe`` and the pretraining benchmarks call :func:`probe_encoder`. The encoder is
the ``best/`` (or ``last/``) of a pretraining run: an image backbone (``backbone.json``) when
``Data.modality`` is ``image``, else a text encoder directory, embedded as the kNN monitor does.
``checkpoint=None`` probes a randomly initialised image backbone (seeded with ``Global.seed``): the baseline
that pretraining has to beat.
"""
from __future__ import annotations

from typing import Optional

import numpy as np
import paddle

from paddle_tag.config import Config
from paddle_tag.data.images import read_image_set
from paddle_tag.data.labels import LabelSet
from paddle_tag.data.readers import read_examples
from paddle_tag.engine.checkpoint import load_backbone
from paddle_tag.errors import ConfigError, DataError
from paddle_tag.metrics.knn import knn_accuracy
from paddle_tag.metrics.linear_probe import linear_probe
from paddle_tag.models.backbones import ImageEncoder
from paddle_tag.models.embedder import Embedder
from paddle_tag.models.image import ContrastiveImageModel, embed_images


def _image_features(config: Config, checkpoint: Optional[str], paths: tuple[str, str],
                    max_items: int) -> tuple[list[np.ndarray], list[np.ndarray], int]:
    paddle.seed(config.Global.seed)
    with paddle.utils.unique_name.guard():
        encoder = ImageEncoder(config.Model.name)
    if checkpoint:
        load_backbone(encoder, checkpoint)
    model = ContrastiveImageModel(encoder)
    model.eval()
    sets = [read_image_set(p).subset(max_items, seed) for seed, p in enumerate(paths)]
    for image_set in sets:
        if image_set.task != "multi_class":
            raise DataError(f"{image_set.path}: probing needs single-label images (class ids)")
    if sets[0].label_names != sets[1].label_names:
        raise DataError(f"{sets[0].path} and {sets[1].path} name different classes")
    with paddle.no_grad():
        features = [embed_images(model, s.images, config.Data.image_size, config.Data.eval_batch_size) for s in sets]
    return features, [s.labels for s in sets], len(sets[0].label_names)


def _text_features(config: Config, checkpoint: Optional[str], paths: tuple[str, str],
                   max_items: int) -> tuple[list[np.ndarray], list[np.ndarray], int]:
    if not checkpoint:
        raise ConfigError("probing a text encoder needs -o Global.checkpoint=<a pretraining run's best/ or last/>")
    embedder = Embedder.from_pretrained(checkpoint, pooling=config.Model.pooling, prefix=config.Data.text_prefix,
                                        max_tokens=config.Data.max_seq_len, batch_size=config.Data.eval_batch_size)
    splits = []
    for seed, path in enumerate(paths):
        examples = read_examples(path)
        if 0 < max_items < len(examples):
            keep = np.sort(np.random.default_rng(seed).choice(len(examples), max_items, replace=False))
            examples = [examples[i] for i in keep]
        splits.append(examples)
    labels = LabelSet.from_examples(splits[0])
    labels.check_known(splits[1])
    features = [embedder.embed([e.text for e in split], progress=config.Global.progress) for split in splits]
    return features, [labels.encode(split, "multi_class") for split in splits], len(labels)


def probe_encoder(config: Config, checkpoint: Optional[str], train_path: str, eval_path: str,
                  max_items: int = 0) -> dict:
    """kNN top-1 (``Pretrain.knn_k`` / ``knn_temperature``) and linear-probe accuracy / macro-F1 of the frozen
    encoder: fitted on ``train_path``, scored on ``eval_path`` (each capped at ``max_items``, 0 = all)."""
    extract = _image_features if config.Data.modality == "image" else _text_features
    (x_train, x_eval), (y_train, y_eval), num_classes = extract(config, checkpoint, (train_path, eval_path), max_items)
    knn = knn_accuracy(x_train, y_train, x_eval, y_eval, num_classes, k=config.Pretrain.knn_k,
                       temperature=config.Pretrain.knn_temperature)
    probe = linear_probe(x_train, y_train, x_eval, y_eval)
    return {"checkpoint": checkpoint, "train": train_path, "eval": eval_path, "train_items": len(y_train),
            "eval_items": len(y_eval), "knn_top1": knn, "linear_probe_accuracy": probe["accuracy"],
            "linear_probe_macro_f1": probe["macro_f1"]}
