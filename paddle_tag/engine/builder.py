"""Build a run from a :class:`Config`: data → tokenizer → labels → model → loss → :class:`Trainer`.

Each step is a plain function call so a reader can follow a config key to the code that uses it.
"""
from __future__ import annotations

import paddle

from paddle_tag.config import Config
from paddle_tag.data.dataset import TaggingDataset
from paddle_tag.data.labels import LabelSet
from paddle_tag.data.readers import read_examples
from paddle_tag.data.tokenizer import load_tokenizer
from paddle_tag.engine.runtime import setup_runtime
from paddle_tag.engine.trainer import Trainer
from paddle_tag.errors import ConfigError
from paddle_tag.losses import build_loss
from paddle_tag.models import build_model


def load_dataset(path: str, config: Config, tokenizer, labels: LabelSet, split: str) -> TaggingDataset:
    """Read, check and tokenize one labelled split."""
    examples = read_examples(path, config.Data.format)
    labels.check_known(examples, split)
    return TaggingDataset.from_examples(examples, tokenizer, labels, config.Data.task, config.Data.max_seq_len,
                                        config.Data.on_long_text)


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
    tokenizer = load_tokenizer(config.Model.pretrained, config.Model.vocab_file)
    train_examples = read_examples(data.train_path, data.format)
    labels = LabelSet.from_examples(train_examples)
    if len(labels) < 2:
        raise ConfigError(f"{data.train_path}: training needs at least 2 distinct labels, found {labels.names}")
    train_set = TaggingDataset.from_examples(train_examples, tokenizer, labels, data.task, data.max_seq_len,
                                             data.on_long_text)
    eval_set = load_dataset(data.eval_path, config, tokenizer, labels, "eval")
    test_set = load_dataset(data.test_path, config, tokenizer, labels, "test") if data.test_path else None
    if data.max_seq_len > config.Model.max_position and not config.Model.pretrained:
        raise ConfigError(f"Data.max_seq_len={data.max_seq_len} exceeds Model.max_position={config.Model.max_position}")
    model = build_model(config.Model, len(labels), len(tokenizer), tokenizer.pad_token_id)
    loss_fn = build_loss(config.Loss, data.task)
    return Trainer(config, runtime, model, loss_fn, tokenizer, labels, train_set, eval_set, test_set)
