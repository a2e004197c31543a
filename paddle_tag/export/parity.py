"""Parity: the Paddle (dygraph) tagger against ONNX Runtime on real labelled samples.

Ids come from the exported ``tokenizer.json`` (what the deployed runner uses) and must equal training's;
both models then see the same padded batches. FP32 must match within ``Export.fp32_atol`` with the same
tags (arg-max for multi-class, the checkpoint's thresholds for multi-label); FP16 / INT8 are reported:
max |logit diff|, whether the tags all agree and the change in the selection metric (macro-F1 multi-class,
micro-F1 multi-label) on the same samples.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Optional, Sequence

import numpy as np
import paddle
from tokenizers import Tokenizer

from paddle_tag.data.labels import LabelSet
from paddle_tag.data.readers import read_examples
from paddle_tag.data.tokenizer import TextTokenizer, encode_texts, pad_batch
from paddle_tag.errors import ConfigError, ParityError
from paddle_tag.metrics import compute_metrics

METRIC = {"multi_class": "macro_f1", "multi_label": "micro_f1"}


@dataclass
class ParityData:
    """The samples parity runs on: texts, their ids (tokenizer.json) and their labels."""

    texts: list[str]
    input_ids: list[list[int]]
    targets: np.ndarray  # (N,) class ids or (N, C) multi-hot


def load_parity_data(path: Optional[str], fmt: str, labels: LabelSet, task: str, limit: int,
                     tokenizer_json: str | os.PathLike, training_tokenizer: TextTokenizer,
                     max_seq_len: int) -> ParityData:
    """The first ``limit`` labelled examples of ``path``, tokenised with the exported ``tokenizer.json``
    loaded as the deployed runner loads it (its own truncation setting).

    Raises :class:`ParityError` if any id sequence differs from training's (``encode_texts``).
    """
    if not path:
        raise ConfigError("export parity needs labelled data: set -o Data.eval_path=<file>")
    if limit <= 0:
        raise ConfigError(f"Export.parity_samples must be positive, got {limit}")
    examples = read_examples(path, fmt)[:limit]
    labels.check_known(examples, "parity")
    texts = [ex.text for ex in examples]
    exported = Tokenizer.from_file(str(tokenizer_json))
    exported.no_padding()
    ids = [enc.ids for enc in exported.encode_batch(texts)]
    reference = encode_texts(training_tokenizer, texts, max_seq_len).input_ids
    differ = [i for i, (a, b) in enumerate(zip(ids, reference)) if a != b]
    if differ:
        first = differ[0]
        raise ParityError(f"the exported tokenizer.json disagrees with training's tokenizer on {len(differ)}/{len(texts)} texts of {path}; "
                          f"first {examples[first].where}: {texts[first]!r}: {ids[first]} vs {reference[first]}")
    return ParityData(texts, ids, labels.encode(examples, task))


def batches(input_ids: Sequence[Sequence[int]], pad_id: int, batch_size: int = 32):
    """Right-padded ``(B, T)`` int64 batches in order."""
    for start in range(0, len(input_ids), batch_size):
        yield pad_batch(input_ids[start:start + batch_size], pad_id)


@paddle.no_grad()
def paddle_logits(model: paddle.nn.Layer, input_ids: Sequence[Sequence[int]], pad_id: int,
                  batch_size: int = 32) -> np.ndarray:
    """Dygraph logits ``(N, C)`` float32 (model in eval mode)."""
    model.eval()
    return np.concatenate([model(paddle.to_tensor(b)).astype("float32").numpy()
                           for b in batches(input_ids, pad_id, batch_size)])


def onnx_logits(sess, input_ids: Sequence[Sequence[int]], pad_id: int, batch_size: int = 32) -> np.ndarray:
    """ONNX Runtime logits ``(N, C)`` float32 on the same batches."""
    name = sess.get_inputs()[0].name
    return np.concatenate([sess.run(None, {name: b})[0].astype("float32")
                           for b in batches(input_ids, pad_id, batch_size)])


def probabilities(logits: np.ndarray, task: str) -> np.ndarray:
    """Softmax (multi-class) or sigmoid (multi-label), in float64."""
    z = logits.astype("float64")
    if task == "multi_class":
        z = np.exp(z - z.max(axis=1, keepdims=True))
        return z / z.sum(axis=1, keepdims=True)
    return 1.0 / (1.0 + np.exp(-z))


def tag_sets(logits: np.ndarray, task: str, thresholds: Optional[np.ndarray]) -> list[frozenset]:
    """Predicted tag ids per row: the arg-max, or every tag at or above its threshold."""
    if task == "multi_class":
        return [frozenset([int(i)]) for i in logits.argmax(axis=1)]
    hits = probabilities(logits, task) >= np.asarray(thresholds)[None, :]
    return [frozenset(np.flatnonzero(row).tolist()) for row in hits]


def compare(reference: np.ndarray, candidate: np.ndarray, task: str, thresholds: Optional[np.ndarray],
            targets: np.ndarray, with_metric: bool = True) -> dict[str, Any]:
    """Parity figures of ``candidate`` logits against ``reference`` (Paddle) logits."""
    same = sum(a == b for a, b in zip(tag_sets(reference, task, thresholds), tag_sets(candidate, task, thresholds)))
    out: dict[str, Any] = {"samples": int(len(reference)),
                           "max_abs_diff": float(np.abs(reference.astype("float64") - candidate).max()),
                           "tags_identical": bool(same == len(reference))}
    if with_metric:
        thr = None if task == "multi_class" else thresholds
        metric = METRIC[task]

        def score(logits: np.ndarray) -> float:
            return float(compute_metrics(task, targets, probabilities(logits, task), thr)[metric])

        out.update({"metric": metric, "metric_dygraph": score(reference), "metric_onnx": score(candidate)})
    return out


def require_fp32(figures: dict[str, Any], atol: float) -> None:
    """Raise :class:`ParityError` with the figures unless FP32 is within ``atol`` with identical tags."""
    if figures["max_abs_diff"] > atol or not figures["tags_identical"]:
        raise ParityError(f"FP32 ONNX does not reproduce the Paddle model on {figures['samples']} samples: "
                          f"max |logit diff| {figures['max_abs_diff']:.3g} (allowed {atol:g}), "
                          f"tags identical: {figures['tags_identical']}; nothing was written")
