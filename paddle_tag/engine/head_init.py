"""Head rows initialised from the tag names (``Model.head_init: tag_names``): a zero-shot prior for rare tags.

A tag seen in five training texts gets five gradients' worth of head row; its name, embedded by the same
encoder, already points where texts about it lie. Each row starts as the tag name's embedding, centred on the
mean over all tags (every name shares the text prefix and the encoder's common direction, which says nothing
about which tag fits) and scaled so that the row's scores over the training texts have unit standard
deviation on average; the bias is moved so that each tag's mean score over those texts stays the prior the
bias started at. Before any training a text then ranks highest the tags whose names it is close to.
"""
from __future__ import annotations

from typing import Optional

import numpy as np
import paddle

from paddle_tag.data.dataset import TaggingDataset
from paddle_tag.data.labels import LabelSet
from paddle_tag.data.text_inputs import TextInputSpec
from paddle_tag.engine.evaluator import to_tensors
from paddle_tag.models.tagger import Tagger

SAMPLE = 512  # training texts the scale and the bias shift are measured on


@paddle.no_grad()
def pooled_features(model: Tagger, dataset: TaggingDataset, indices: np.ndarray, batch_size: int = 64) -> np.ndarray:
    """The window-pooled features ``(len(indices), H)`` the head sees (cached window features when attached)."""
    out = []
    for start in range(0, len(indices), batch_size):
        inputs = to_tensors(dataset.batch(indices[start:start + batch_size]).inputs)
        if "window_features" in inputs:
            out.append(model.window_pool(inputs["window_features"], inputs["window_mask"]).numpy())
        else:
            out.append(model.forward_features(inputs["input_ids"]).numpy())
    return np.concatenate(out).astype("float64")


def init_head_from_tag_names(model: Tagger, tokenizer, labels: LabelSet, train_set: TaggingDataset,
                             prior_bias: Optional[np.ndarray], seed: int = 0) -> np.ndarray:
    """Set the head's rows (and shift its bias) from the embeddings of ``labels.names``; return the rows ``(C, H)``."""
    was_training = model.training
    model.eval()
    names = TaggingDataset.from_texts(labels.names, tokenizer, TextInputSpec(max_seq_len=train_set.spec.max_seq_len))
    directions = pooled_features(model, names, np.arange(len(labels)))
    directions -= directions.mean(axis=0, keepdims=True)
    units = directions / np.maximum(np.linalg.norm(directions, axis=1, keepdims=True), 1e-12)
    rng = np.random.default_rng(seed)
    sample = np.sort(rng.permutation(len(train_set))[:SAMPLE])
    features = pooled_features(model, train_set, sample)
    scores = features @ units.T  # (S, C)
    scale = 1.0 / max(float(scores.std(axis=0).mean()), 1e-12)
    model.init_head_rows(units, scale)
    bias = np.zeros(len(labels)) if prior_bias is None else np.asarray(prior_bias, dtype="float64")
    model.classifier.bias.set_value((bias - scale * scores.mean(axis=0)).astype("float32"))
    if was_training:
        model.train()
    return scale * units
