"""Build a run from a :class:`Config`: data → tokenizer → labels → model → loss → :class:`Trainer`.

Each step is a plain function call so a reader can follow a config key to the code that uses it.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Sequence

import paddle
from tqdm.auto import tqdm

from paddle_tag.config import Config
from paddle_tag.config.schema import ModelConfig
from paddle_tag.data.dataset import TaggingDataset
from paddle_tag.data.labels import LabelSet
from paddle_tag.data.readers import read_examples
from paddle_tag.data.text_inputs import TextInputSpec
from paddle_tag.data.tokenizer import load_tokenizer
from paddle_tag.engine.feature_cache import feature_cache_dir, window_features
from paddle_tag.engine.head_init import init_head_from_tag_names
from paddle_tag.engine.pretrainer import KnnMonitor, Pretrainer
from paddle_tag.engine.runtime import Runtime, setup_runtime
from paddle_tag.engine.trainer import Trainer
from paddle_tag.errors import ConfigError, ModelLoadError
from paddle_tag.losses import InfoNCELoss, build_loss
from paddle_tag.models import build_encoder, build_model
from paddle_tag.models.contrastive import ContrastiveTextModel
from paddle_tag.models.heads import ProjectionHead
from paddle_tag.models.pretrained import resolve_pretrained


def load_dataset(path: str, config: Config, tokenizer, labels: LabelSet, split: str) -> TaggingDataset:
    """Read, check and tokenize one labelled split (an ``.npz`` image split when ``Data.modality=image``)."""
    if config.Data.modality == "image":
        from paddle_tag.engine.image_builder import load_image_dataset

        return load_image_dataset(path, config, labels, split)
    examples = read_examples(path, config.Data.format)
    labels.check_known(examples, split)
    dataset = TaggingDataset.from_examples(examples, tokenizer, labels, config.Data.task,
                                           TextInputSpec.from_config(config.Data, config.Model))
    report_cut(dataset, split, config)
    return dataset


def report_cut(dataset: TaggingDataset, split: str, config: Config) -> None:
    """Say how many texts of a split the model cannot read whole (none is cut silently)."""
    cut = int(dataset.cut.sum())
    if not cut:
        return
    data, model = config.Data, config.Model
    if data.on_long_text == "windows":
        limit = f"Data.max_windows={data.max_windows} windows of Data.max_seq_len={data.max_seq_len} tokens"
    else:
        limit = f"Data.max_seq_len={data.max_seq_len} tokens (Data.on_long_text=windows reads them whole)"
    if model.wide:
        limit += f", or Model.wide_max_chars={model.wide_max_chars} characters"
    tqdm.write(f"[data] {split}: {cut} of {len(dataset)} texts are longer than {limit}; their ends are not read")


def pretrained_model_config(config: Config, train_texts: Sequence[str], runtime: Runtime | None = None) -> ModelConfig:
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
    main = runtime is None or runtime.is_main
    if main and not is_pruned_from(pruned, model_cfg.pretrained, texts):
        prune_model_dir(model_cfg.pretrained, texts, pruned, corpus_name=str(config.Data.train_path))
    if runtime is not None and runtime.world_size > 1:
        paddle.distributed.barrier()  # the other ranks load what rank 0 wrote
        if not is_pruned_from(pruned, model_cfg.pretrained, texts):
            raise ModelLoadError(f"rank {runtime.rank}: {pruned} is not the pruned copy rank 0 should have written")
    return dataclasses.replace(model_cfg, pretrained=str(pruned))


def check_run_sizes(config: Config, required_paths: Sequence[str]) -> None:
    """The checks every training run shares: data paths present, sizes and counts positive."""
    data = config.Data
    for key in required_paths:
        if not getattr(data, key):
            raise ConfigError(f"Data.{key} is required for training")
    for key in ("batch_size", "eval_batch_size", "max_seq_len"):
        if getattr(data, key) <= 0:
            raise ConfigError(f"Data.{key} must be positive, got {getattr(data, key)}")
    if config.Global.epochs <= 0:
        raise ConfigError(f"Global.epochs must be positive, got {config.Global.epochs}")
    if config.Global.eval_every < -1:
        raise ConfigError(f"Global.eval_every must be >= -1 (-1: only at the end), got {config.Global.eval_every}")
    if config.Global.log_every <= 0:
        raise ConfigError(f"Global.log_every must be positive, got {config.Global.log_every}")


def build_run(config: Config) -> Trainer | Pretrainer:
    """``tools/train.py``'s run: contrastive pretraining when ``Pretrain.method`` is set, else fine-tuning;
    ``Data.modality=image`` builds the image runs of :mod:`.image_builder`."""
    from paddle_tag.engine.image_builder import build_image_run, check_modality

    check_modality(config)
    if config.Data.modality == "image":
        return build_image_run(config)
    return build_pretrainer(config) if config.Pretrain.method else build_trainer(config)


def build_trainer(config: Config) -> Trainer:
    """Everything ``tools/train.py`` needs to fine-tune a tagger, built from the config alone."""
    data = config.Data
    check_run_sizes(config, ("train_path", "eval_path"))
    runtime = setup_runtime(config.Global)
    paddle.seed(config.Global.seed)
    train_examples = read_examples(data.train_path, data.format)
    model_cfg = pretrained_model_config(config, [ex.text for ex in train_examples], runtime)
    tokenizer = load_tokenizer(model_cfg.pretrained, model_cfg.vocab_file, data.text_prefix)
    labels = LabelSet.from_examples(train_examples)
    if len(labels) < 2:
        raise ConfigError(f"{data.train_path}: training needs at least 2 distinct labels, found {labels.names}")
    train_set = TaggingDataset.from_examples(train_examples, tokenizer, labels, data.task,
                                             TextInputSpec.from_config(data, config.Model))
    report_cut(train_set, "train", config)
    eval_set = load_dataset(data.eval_path, config, tokenizer, labels, "eval")
    test_set = load_dataset(data.test_path, config, tokenizer, labels, "test") if data.test_path else None
    if data.max_seq_len > config.Model.max_position and not config.Model.pretrained:
        raise ConfigError(f"Data.max_seq_len={data.max_seq_len} exceeds Model.max_position={config.Model.max_position}")
    model = build_model(model_cfg, len(labels), len(tokenizer), tokenizer.pad_token_id)
    positions = int(model.encoder.config.max_position_embeddings)
    if data.max_seq_len > positions:
        raise ConfigError(f"Data.max_seq_len={data.max_seq_len} exceeds the {positions} positions of the encoder "
                          f"{model_cfg.pretrained}")
    if model.wide is not None and model.wide.use_idf:
        model.wide.fit_idf(train_set.encoded.chars)
    if model_cfg.freeze_encoder:  # embed every window once (or read the cache); only the layers above learn
        cache = feature_cache_dir(model_cfg.feature_cache)
        for split, dataset in (("train", train_set), ("eval", eval_set), ("test", test_set)):
            if dataset is not None:
                dataset.features = window_features(model, dataset, cache, data.eval_batch_size,
                                                   config.Global.progress and runtime.is_main, desc=f"embed {split}")
    prior = model.init_head_bias(train_set.targets, data.task) if model_cfg.head_bias_init == "prior" else None
    if model_cfg.head_init == "tag_names":
        init_head_from_tag_names(model, tokenizer, labels, train_set, prior)
    loss_fn = build_loss(config.Loss, data.task)
    return Trainer(config, runtime, model, loss_fn, tokenizer, labels, train_set, eval_set, test_set)


def text_augment_spec(config: Config, mask_token: str) -> dict:
    """``Pretrain.*`` augmentation probabilities → the spec of :func:`build_text_augment` (only those > 0)."""
    pre = config.Pretrain
    spec: dict[str, dict] = {}
    for name in ("word_deletion", "word_swap", "synonym_replace", "char_mask"):
        p = getattr(pre, name)
        if not 0 <= p <= 1:
            raise ConfigError(f"Pretrain.{name} is a probability in [0, 1], got {p}")
        if p > 0:
            spec[name] = {"p": p}
    if "synonym_replace" in spec:
        if not pre.synonyms_path or not Path(pre.synonyms_path).is_file():
            raise ConfigError(f"Pretrain.synonym_replace needs Pretrain.synonyms_path, a synonym table "
                              f"(python tools/prepare_data.py synonyms); got {pre.synonyms_path!r}")
        spec["synonym_replace"]["synonyms_path"] = pre.synonyms_path
    if "char_mask" in spec:
        spec["char_mask"]["mask"] = mask_token
    return spec


def knn_monitor(config: Config) -> KnnMonitor | None:
    """The kNN monitor of ``Pretrain.knn_*``: single-label texts, bank and queries; None when not set."""
    pre = config.Pretrain
    if not (pre.knn_train_path or pre.knn_eval_path):
        return None
    if not (pre.knn_train_path and pre.knn_eval_path):
        raise ConfigError("the kNN monitor needs both Pretrain.knn_train_path and Pretrain.knn_eval_path")
    bank = read_examples(pre.knn_train_path, config.Data.format)
    queries = read_examples(pre.knn_eval_path, config.Data.format)
    labels = LabelSet.from_examples(bank)
    labels.check_known(queries, "kNN monitor")
    return KnnMonitor([ex.text for ex in bank], labels.encode(bank, "multi_class"), [ex.text for ex in queries],
                      labels.encode(queries, "multi_class"), len(labels), pre.knn_k, pre.knn_temperature)


def build_pretrainer(config: Config) -> Pretrainer:
    """A contrastive pretraining run (``Pretrain.method``) on the unlabeled texts of ``Data.train_path``."""
    from paddle_tag.data.augment import build_text_augment

    check_run_sizes(config, ("train_path",))
    pre = config.Pretrain
    if pre.temperature <= 0:
        raise ConfigError(f"Pretrain.temperature must be positive, got {pre.temperature}")
    if pre.projection_layers < 0 or pre.projection_hidden < 0 or pre.projection_dim < 0:
        raise ConfigError("Pretrain.projection_layers / projection_hidden / projection_dim must be >= 0")
    monitor = knn_monitor(config)
    runtime = setup_runtime(config.Global)
    paddle.seed(config.Global.seed)
    texts = [ex.text for ex in read_examples(config.Data.train_path, config.Data.format, require_labels=False)]
    model_cfg = pretrained_model_config(config, texts, runtime)
    base_tokenizer = load_tokenizer(model_cfg.pretrained, model_cfg.vocab_file)
    mask = next((t for t in ("[MASK]", "<mask>", "[UNK]", "<unk>") if base_tokenizer.token_to_id(t) is not None))
    spec = text_augment_spec(config, mask)
    with paddle.utils.unique_name.guard():
        encoder = build_encoder(model_cfg, len(base_tokenizer), base_tokenizer.pad_token_id)
        hidden = int(encoder.config.hidden_size)
        projection = None
        if pre.projection_layers > 0:  # no BatchNorm: per-rank text batches are small and unevenly long
            projection = ProjectionHead(hidden, pre.projection_hidden or hidden, pre.projection_dim or hidden,
                                        pre.projection_layers, batch_norm=False)
        model = ContrastiveTextModel(encoder, base_tokenizer.pad_token_id, model_cfg.pooling, projection)
    positions = int(encoder.config.max_position_embeddings)
    if config.Data.max_seq_len > positions:
        raise ConfigError(f"Data.max_seq_len={config.Data.max_seq_len} exceeds the {positions} positions "
                          "of the encoder")
    tokenizer = base_tokenizer.with_prefix(config.Data.text_prefix)
    return Pretrainer(config, runtime, model, InfoNCELoss(pre.temperature), tokenizer, base_tokenizer, texts,
                      build_text_augment(spec) if spec else None, monitor)
