"""Build a run from a :class:`Config`: data → tokenizer → labels → model → loss → :class:`Trainer`.

Each step is a plain function call so a reader can follow a config key to the code that uses it.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Sequence

import paddle

from paddle_tag.config import Config
from paddle_tag.config.schema import ModelConfig
from paddle_tag.data.dataset import TaggingDataset
from paddle_tag.data.labels import LabelSet
from paddle_tag.data.readers import read_examples
from paddle_tag.data.tokenizer import load_tokenizer
from paddle_tag.engine.runtime import setup_runtime
from paddle_tag.engine.trainer import Trainer
from paddle_tag.errors import ConfigError
from paddle_tag.losses import build_loss
from paddle_tag.models import build_model
from paddle_tag.models.pretrained import resolve_pretrained


def load_dataset(path: str, config: Config, tokenizer, labels: LabelSet, split: str) -> TaggingDataset:
    """Read, check and tokenize one labelled split."""
    examples = read_examples(path, config.Data.format)
    labels.check_known(examples, split)
    return TaggingDataset.from_examples(examples, tokenizer, labels, config.Data.task, config.Data.max_seq_len,
                                        config.Data.on_long_text)


def pretrained_model_config(config: Config, train_texts: Sequence[str]) -> ModelConfig:
    """``Model.*`` with ``pretrained`` resolved to a directory (or hub name) and, with ``Model.prune_vocab``,
    replaced by a copy whose vocabulary keeps only the pieces ``train_texts`` use (written once into
    ``<Global.output_dir>/pretrained_pruned``; a resumed run reuses it when source and texts are the same)."""
    model_cfg = dataclasses.replace(config.Model, pretrained=resolve_pretrained(config.Model.pretrained))
    if not model_cfg.prune_vocab:
        return model_cfg
    if not model_cfg.pretrained or not Path(model_cfg.pretrained).is_dir():
        raise ConfigError("Model.prune_vocab needs Model.pretrained to be a local model directory")
    from paddle_tag.weights.pruning import is_pruned_from, prune_model_dir

    pruned = Path(config.Global.output_dir) / "pretrained_pruned"
    # the tokenizer puts Data.text_prefix before every text: its pieces (e5: ▁que ry :) must be kept too
    texts = [config.Data.text_prefix + text for text in train_texts]
    if not is_pruned_from(pruned, model_cfg.pretrained, texts):
        prune_model_dir(model_cfg.pretrained, texts, pruned, corpus_name=str(config.Data.train_path))
    return dataclasses.replace(model_cfg, pretrained=str(pruned))


def build_trainer(config: Config) -> Trainer:
    """Everything ``tools/train.py`` needs, built from the config alone."""
    data = config.Data
    for key in ("train_path", "eval_path"):
        if not getattr(data, key):
            raise ConfigError(f"Data.{key} is required for training")
    for key in ("batch_size", "eval_batch_size", "max_seq_len"):
        if getattr(data, key) <= 0:
            raise ConfigError(f"Data.{key} must be positive, got {getattr(data, key)}")
    if config.Global.epochs <= 0:
        raise ConfigError(f"Global.epochs must be positive, got {config.Global.epochs}")
    if config.Global.log_every <= 0:
        raise ConfigError(f"Global.log_every must be positive, got {config.Global.log_every}")
    runtime = setup_runtime(config.Global)
    paddle.seed(config.Global.seed)
    train_examples = read_examples(data.train_path, data.format)
    model_cfg = pretrained_model_config(config, [ex.text for ex in train_examples])
    tokenizer = load_tokenizer(model_cfg.pretrained, model_cfg.vocab_file, data.text_prefix)
    labels = LabelSet.from_examples(train_examples)
    if len(labels) < 2:
        raise ConfigError(f"{data.train_path}: training needs at least 2 distinct labels, found {labels.names}")
    train_set = TaggingDataset.from_examples(train_examples, tokenizer, labels, data.task, data.max_seq_len,
                                             data.on_long_text)
    eval_set = load_dataset(data.eval_path, config, tokenizer, labels, "eval")
    test_set = load_dataset(data.test_path, config, tokenizer, labels, "test") if data.test_path else None
    if data.max_seq_len > config.Model.max_position and not config.Model.pretrained:
        raise ConfigError(f"Data.max_seq_len={data.max_seq_len} exceeds Model.max_position={config.Model.max_position}")
    model = build_model(model_cfg, len(labels), len(tokenizer), tokenizer.pad_token_id)
    positions = int(model.encoder.config.max_position_embeddings)
    if data.max_seq_len > positions:
        raise ConfigError(f"Data.max_seq_len={data.max_seq_len} exceeds the {positions} positions of the encoder "
                          f"{model_cfg.pretrained}")
    if model_cfg.head_bias_init == "prior":
        model.init_head_bias(train_set.targets, data.task)
    loss_fn = build_loss(config.Loss, data.task)
    return Trainer(config, runtime, model, loss_fn, tokenizer, labels, train_set, eval_set, test_set)
