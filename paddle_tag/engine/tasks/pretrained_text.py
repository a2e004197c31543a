"""Where a text task's encoder starts: ``Model.pretrained`` resolved, optionally with its vocabulary pruned."""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Sequence

import paddle
from tqdm import tqdm

from paddle_tag.config import Config
from paddle_tag.config.schema import ModelConfig
from paddle_tag.engine.checkpoint import MANIFEST, checkpoint_kind
from paddle_tag.engine.runtime import Runtime
from paddle_tag.errors import ConfigError, ModelLoadError
from paddle_tag.models.pretrained import resolve_pretrained
from paddle_tag.weights.pruning import is_pruned_from, prune_model_dir, pruned_dir_summary, pruning_summary


def pretrained_model_config(config: Config, train_texts: Sequence[str], runtime: Runtime) -> ModelConfig:
    """``Model.*`` with ``pretrained`` resolved to a directory (or hub name) and, with ``Model.prune_vocab``,
    replaced by a copy whose vocabulary keeps only the pieces ``train_texts`` use (written once into
    ``<Global.output_dir>/pretrained_pruned``; a resumed run reuses it when source and texts are the same).
    A SimCSE checkpoint is checked against its checksums first."""
    model_cfg = dataclasses.replace(config.Model, pretrained=resolve_pretrained(config.Model.pretrained))
    source = model_cfg.pretrained
    if source and (Path(source) / MANIFEST).is_file() and checkpoint_kind(source) != "simcse":
        raise ModelLoadError(f"Model.pretrained={source} is a {checkpoint_kind(source)} checkpoint; a text encoder "
                             f"starts from a model directory or a simcse run's best/ / last/")
    if not model_cfg.prune_vocab:
        return model_cfg
    if not source or not Path(source).is_dir():
        raise ConfigError("Model.prune_vocab needs Model.pretrained to be a local model directory")
    pruned = Path(config.Global.output_dir) / "pretrained_pruned"
    # the tokenizer puts Data.text_prefix before every text: its pieces (e5: ▁que ry :) must be kept too
    texts = [config.Data.text_prefix + text for text in train_texts]
    if runtime.is_main and not is_pruned_from(pruned, source, texts):
        summary = prune_model_dir(source, texts, pruned, corpus_name=str(config.Data.train_path))
        tqdm.write(f"[prune] {pruning_summary(summary)} → {pruned}")
    elif runtime.is_main:
        tqdm.write(f"[prune] reusing {pruned}: {pruned_dir_summary(pruned)}")
    if runtime.world_size > 1:
        paddle.distributed.barrier()  # the other ranks load what rank 0 wrote
        if not is_pruned_from(pruned, source, texts):
            raise ModelLoadError(f"rank {runtime.rank}: {pruned} is not the pruned copy rank 0 should have written")
    return dataclasses.replace(model_cfg, pretrained=str(pruned))


def check_positions(max_seq_len: int, encoder: paddle.nn.Layer, source: str | None) -> None:
    """``Data.max_seq_len`` must fit the encoder's position table."""
    positions = int(encoder.config.max_position_embeddings)
    if max_seq_len > positions:
        raise ConfigError(f"Data.max_seq_len={max_seq_len} exceeds the {positions} positions of the encoder "
                          f"{source or ''}".rstrip())
