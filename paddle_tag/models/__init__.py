"""Models: encoders (PaddleNLP), the tagger (encoder + pooling + head), and their (de)serialisation."""
from __future__ import annotations

import paddle

from paddle_tag.config.schema import ModelConfig
from paddle_tag.models.encoders import ENCODERS, build_encoder
from paddle_tag.models.serialization import load_tagger, save_tagger
from paddle_tag.models.tagger import Tagger
from paddle_tag.models.wide import HashedNgrams


def build_model(cfg: ModelConfig, num_labels: int, vocab_size: int, pad_id: int) -> Tagger:
    """The tagger described by ``Model.*``. Parameter names are reset per build, so optimizer state keys
    match across processes and rebuilds."""
    with paddle.utils.unique_name.guard():
        encoder = build_encoder(cfg, vocab_size, pad_id)
        wide = HashedNgrams(num_labels, cfg.wide_ngram_max, cfg.wide_buckets, cfg.wide_idf) if cfg.wide else None
        tagger = Tagger(encoder, num_labels, pad_id, cfg.pooling, cfg.head_dropout, cfg.window_pooling, wide)
    if cfg.freeze_encoder:
        tagger.freeze_encoder()
    return tagger


__all__ = ["ENCODERS", "Tagger", "build_encoder", "build_model", "load_tagger", "save_tagger"]
