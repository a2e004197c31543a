"""Texts → tags with an exported model: tokenize, run ONNX Runtime, activate, pick tags."""
from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from deploy.manifest import ManifestError, check_session, load_manifest
from deploy.providers import create_session, pick_model
from deploy.tokenizer import TextTokenizer, char_codes

logger = logging.getLogger(__name__)


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax, stable for any finite logits (max subtracted first)."""
    shifted = logits - logits.max(axis=-1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=-1, keepdims=True)


def sigmoid(logits: np.ndarray) -> np.ndarray:
    """Element-wise logistic function without overflow: exp is only taken of non-positive values."""
    e = np.exp(-np.abs(logits))
    return np.where(logits >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


class Predictor:
    """An export directory loaded for inference.

    ``predict(texts)`` returns, per text, ``{"tags": [...], "scores": {label: score}, "truncated":
    bool}``: multi-class tags are the arg-max, multi-label tags every label whose sigmoid score
    reaches its threshold; ``scores`` holds the ``top_k`` highest scores (plus every tag's score),
    highest first.
    """

    def __init__(self, model_dir: str | os.PathLike[str], device: str = "cpu", precision: str = "fp32",
                 threads: int | None = None, *, trt: bool = False, gpu_id: int = 0, top_k: int = 5,
                 max_batch_size: int = 32, trt_cache_dir: str | None = None) -> None:
        if top_k < 1:
            raise ValueError(f"top_k must be >= 1, got {top_k}")
        self.manifest = load_manifest(model_dir)
        self.device = device
        self.precision = precision
        self.top_k = top_k
        self.model_path = pick_model(self.manifest, device, precision)
        windows = self.manifest.windows
        self.tokenizer = TextTokenizer(self.manifest.tokenizer_file, self.manifest.max_seq_len,
                                       self.manifest.pad_id, overlap=windows.overlap if windows else None,
                                       max_windows=windows.max_windows if windows else 1)
        self.session = create_session(self.model_path, device, precision, threads, trt=trt,
                                      gpu_id=gpu_id, max_batch_size=max_batch_size,
                                      max_seq_len=self.manifest.max_seq_len, trt_cache_dir=trt_cache_dir,
                                      manifest=self.manifest)
        check_session(self.manifest, self.session, self.model_path)
        self._output = self.manifest.output.name
        self.labels = list(self.manifest.labels)
        self._thresholds = (np.asarray(self.manifest.thresholds, dtype=np.float32)
                            if self.manifest.thresholds is not None else None)
        # A real run: checks the logits width even when the graph declares it symbolically.
        probe = self.logits(["校验 check"])
        if probe.shape != (1, self.manifest.num_labels):
            raise ManifestError(f"{self.model_path}: output {self._output!r} has shape {list(probe.shape)} "
                                f"for one text, expected [1, {self.manifest.num_labels}] "
                                f"({self.manifest.num_labels} labels)")

    @property
    def providers(self) -> list[str]:
        """The session's active execution providers."""
        return list(self.session.get_providers())

    def logits(self, texts: Sequence[str]) -> np.ndarray:
        """Raw float32 logits ``[len(texts), num_labels]``."""
        return self._run(texts)[0]

    def inputs(self, texts: Sequence[str]) -> tuple[dict[str, np.ndarray], list[bool]]:
        """The model's inputs for ``texts`` (token ids, and code points for a wide part) and, per text, whether
        part of it was not read."""
        encoded = self.tokenizer.encode(texts)
        feed = {self.manifest.inputs[0].name: encoded.input_ids}
        cut = list(encoded.truncated)
        wide = self.manifest.wide
        if wide is not None:
            codes, past = char_codes(texts, wide.max_chars, wide.ngram_max)
            feed[self.manifest.inputs[1].name] = codes
            cut = [a or b for a, b in zip(cut, past)]
        return feed, cut

    def _run(self, texts: Sequence[str]) -> tuple[np.ndarray, list[bool]]:
        if not len(texts):
            return np.zeros((0, len(self.labels)), dtype=np.float32), []
        feed, cut = self.inputs(texts)
        (out,) = self.session.run([self._output], feed)
        return np.asarray(out, dtype=np.float32), cut

    def scores(self, logits: np.ndarray) -> np.ndarray:
        """Softmax (multi-class) or sigmoid (multi-label) of ``logits``, in float64."""
        logits = logits.astype(np.float64)
        return softmax(logits) if self.manifest.task == "multi_class" else sigmoid(logits)

    def predict(self, texts: Sequence[str], batch_size: int | None = None) -> list[dict[str, Any]]:
        """Tag ``texts`` (in chunks of ``batch_size`` if given); one result dict per text, in order."""
        texts = list(texts)
        step = batch_size or max(len(texts), 1)
        results: list[dict[str, Any]] = []
        for start in range(0, len(texts), step):
            logits, truncated = self._run(texts[start:start + step])
            results.extend(self._results(self.scores(logits), truncated))
        return results

    def _results(self, scores: np.ndarray, truncated: list[bool]) -> list[dict[str, Any]]:
        if self.manifest.task == "multi_class":
            hits = np.zeros_like(scores, dtype=bool)
            hits[np.arange(len(scores)), scores.argmax(axis=1)] = True
        else:
            hits = scores >= self._thresholds[None, :]
        out = []
        for row, row_hits, cut in zip(scores, hits, truncated):
            tag_idx = [int(j) for j in np.flatnonzero(row_hits)]  # label order, as paddle_tag's predictor
            shown = [int(j) for j in np.argsort(-row, kind="stable")[:self.top_k]]
            shown += sorted((j for j in tag_idx if j not in shown), key=lambda j: -row[j])
            out.append({"tags": [self.labels[j] for j in tag_idx],
                        "scores": {self.labels[j]: round(float(row[j]), 4) for j in shown},
                        "truncated": bool(cut)})
        return out
