"""Parity: the Paddle (dygraph) tagger against ONNX Runtime on real labelled samples.

Token ids (every window of a text read as windows) come from the exported ``tokenizer.json`` as the deployed
runner loads it and must equal training's; both models then see the same padded batches (with a wide part,
the same character codes too). FP32 must match within ``Export.fp32_atol`` with the same
tags (arg-max for multi-class, the checkpoint's thresholds for multi-label); FP16 / INT8 are reported:
max |logit diff|, whether the tags all agree and the change in the selection metric (macro-F1 multi-class,
micro-F1 multi-label) on the same samples.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Iterator, Optional, Sequence

import numpy as np
import paddle
from tokenizers import Tokenizer

from paddle_tag.data.labels import LabelSet
from paddle_tag.data.readers import read_examples
from paddle_tag.data.text_inputs import EncodedTexts, TextInputSpec, encode_for_model, model_inputs
from paddle_tag.data.tokenizer import TextTokenizer
from paddle_tag.errors import ConfigError, ParityError
from paddle_tag.metrics import compute_metrics

METRIC = {"multi_class": "macro_f1", "multi_label": "micro_f1"}


@dataclass
class ParityData:
    """The samples parity runs on: texts, what the model reads of them, and their labels."""

    texts: list[str]
    encoded: EncodedTexts
    targets: np.ndarray  # (N,) class ids or (N, C) multi-hot
    spec: TextInputSpec
    pad_id: int

    @property
    def input_ids(self) -> list[list[list[int]]]:
        """Each text's token windows (one in ``truncate`` mode)."""
        return self.encoded.windows

    @property
    def multi_window(self) -> int:
        """How many samples span several windows (the cases windowed parity is about)."""
        return sum(len(w) > 1 for w in self.encoded.windows)

    def batches(self, batch_size: int = 32) -> Iterator[dict[str, np.ndarray]]:
        """The model's padded inputs, ``batch_size`` samples at a time, in order."""
        for start in range(0, len(self.texts), batch_size):
            yield model_inputs(self.encoded, range(start, min(start + batch_size, len(self.texts))), self.spec,
                               self.pad_id)


def exported_windows(tokenizer_json: str | os.PathLike, texts: Sequence[str],
                     spec: TextInputSpec) -> list[list[list[int]]]:
    """The token windows ``deploy/`` reads: the exported ``tokenizer.json`` loaded from its file, truncating to
    ``max_seq_len`` (with the windows' overlap as ``stride``) as ``deploy/tokenizer.py`` sets it."""
    exported = Tokenizer.from_file(str(tokenizer_json))
    exported.no_padding()
    exported.enable_truncation(max_length=spec.max_seq_len, stride=spec.window_overlap if spec.windowed else 0)
    keep = spec.max_windows if spec.windowed else 1
    return [[piece.ids for piece in [enc, *enc.overflowing][:keep]] for enc in exported.encode_batch(list(texts))]


def load_parity_data(path: Optional[str], fmt: str, labels: LabelSet, task: str, limit: int,
                     tokenizer_json: str | os.PathLike, training_tokenizer: TextTokenizer,
                     spec: TextInputSpec) -> ParityData:
    """The first ``limit`` labelled examples of ``path``, read as training reads them; the windows the
    exported ``tokenizer.json`` gives (:func:`exported_windows`) must be the same.

    Raises :class:`ParityError` if any text's token ids differ between the two.
    """
    if not path:
        raise ConfigError("export parity needs labelled data: set -o Data.eval_path=<file>")
    if limit <= 0:
        raise ConfigError(f"Export.parity_samples must be positive, got {limit}")
    examples = read_examples(path, fmt)[:limit]
    labels.check_known(examples, "parity")
    texts = [ex.text for ex in examples]
    encoded = encode_for_model(training_tokenizer, texts, spec)
    exported = exported_windows(tokenizer_json, texts, spec)
    differ = [i for i, (a, b) in enumerate(zip(exported, encoded.windows)) if a != b]
    if differ:
        first = differ[0]
        raise ParityError(f"the exported tokenizer.json disagrees with training's tokenizer on {len(differ)}/"
                          f"{len(texts)} texts of {path}; first {examples[first].where}: {texts[first]!r}: "
                          f"{exported[first]} vs {encoded.windows[first]}")
    return ParityData(texts, encoded, labels.encode(examples, task), spec, training_tokenizer.pad_token_id)


@paddle.no_grad()
def paddle_logits(model: paddle.nn.Layer, data: ParityData, batch_size: int = 32) -> np.ndarray:
    """Dygraph logits ``(N, C)`` float32 (model in eval mode)."""
    model.eval()
    return np.concatenate([model(**{k: paddle.to_tensor(v) for k, v in inputs.items()}).astype("float32").numpy()
                           for inputs in data.batches(batch_size)])


def onnx_logits(sess, data: ParityData, batch_size: int = 32) -> np.ndarray:
    """ONNX Runtime logits ``(N, C)`` float32 on the same batches."""
    return np.concatenate([sess.run(None, inputs)[0].astype("float32") for inputs in data.batches(batch_size)])


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
                           "tags_identical": bool(same == len(reference)),
                           "tags_agreement": round(same / max(len(reference), 1), 6)}
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
