"""Turn texts into tags with a loaded checkpoint."""
from __future__ import annotations

from typing import Sequence

import numpy as np

from paddle_tag.data.dataset import TaggingDataset
from paddle_tag.data.text_inputs import TextInputSpec
from paddle_tag.engine.checkpoint import Checkpoint
from paddle_tag.engine.evaluator import predict_scores
from paddle_tag.errors import ConfigError, DataError


def scores_to_tags(scores: np.ndarray, labels: Sequence[str], task: str, thresholds) -> list[list[str]]:
    """Multi-class: the arg-max tag. Multi-label: every tag whose score clears its threshold."""
    if task == "multi_class":
        return [[labels[int(i)]] for i in scores.argmax(axis=1)]
    hits = scores >= np.asarray(thresholds)[None, :]
    return [[labels[j] for j in np.flatnonzero(row)] for row in hits]


def predict_texts(checkpoint: Checkpoint, texts: Sequence[str], batch_size: int = 64,
                  top_k: int = 5) -> list[dict]:
    """``[{"text", "tags", "scores", "truncated"}]`` per text; ``scores`` holds the ``top_k`` highest tag scores,
    ``truncated`` says that part of the text was not read (cut to ``Data.max_seq_len``, past ``Data.max_windows``
    windows, or past ``Model.wide_max_chars``)."""
    if checkpoint.tokenizer is None:
        raise ConfigError(f"{checkpoint.directory} is an image tagger: it has no tokenizer to tag texts "
                          f"(score images with tools/eval.py)")
    for i, text in enumerate(texts):
        if not isinstance(text, str) or not text.strip():
            raise DataError(f"text {i + 1}: empty text")
    spec = TextInputSpec.from_config(checkpoint.config.Data, checkpoint.config.Model)
    dataset = TaggingDataset.from_texts(texts, checkpoint.tokenizer, spec)
    scores = predict_scores(checkpoint.model, dataset, checkpoint.task, batch_size)
    names = checkpoint.labels.names
    tags = scores_to_tags(scores, names, checkpoint.task, checkpoint.thresholds)
    results = []
    for text, row, row_tags, cut in zip(texts, scores, tags, dataset.cut):
        top = np.argsort(-row)[:top_k]
        results.append({"text": text, "tags": row_tags, "scores": {names[j]: round(float(row[j]), 4) for j in top},
                        "truncated": bool(cut)})
    return results
