"""How a text becomes model inputs: the one definition that training, evaluation, prediction and the export's
parity check share (``deploy/`` mirrors it in numpy; tests hold the two equal on real texts).

- **Token windows.** The text is tokenised whole (``tokenizer.json``: special tokens, ``Data.text_prefix``).
  ``truncate`` keeps its first ``max_seq_len`` tokens (``[CLS] … [SEP]``); ``windows`` keeps every window of
  ``max_seq_len`` tokens, each sharing ``window_overlap`` text tokens with the one before — the ``tokenizers``
  library's own overflow (its ``stride``), so ``deploy/`` cuts the same windows with the same library — up to
  ``max_windows`` windows; ``error`` refuses a text that does not fit. Only the first window carries the text
  prefix (e5's ``query: ``): the prefix is part of the text the tokenizer reads, not of each window.
- **Character codes** (models with a wide part): the Unicode code points of the text's first
  ``wide_max_chars`` characters. The n-gram hashing runs inside the model (:mod:`paddle_tag.models.wide`), so
  nothing but ``ord`` happens outside it.

Every text records whether any of it went unread (cut to ``max_seq_len``, past ``max_windows``, or past
``wide_max_chars``), so the caller can report it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np

from paddle_tag.config.schema import DataConfig, ModelConfig
from paddle_tag.data.tokenizer import TextTokenizer, encode_texts, pad_batch
from paddle_tag.errors import ConfigError


@dataclass(frozen=True)
class TextInputSpec:
    """What of a text the model reads (``Data.*`` and ``Model.wide*`` keys)."""

    max_seq_len: int
    long_text: str = "truncate"  # truncate | windows | error
    window_overlap: int = 0
    max_windows: int = 1
    wide_max_chars: int = 0  # 0: the model has no wide part, so no character input
    min_chars: int = 1  # character rows are padded to at least this length (the longest n-gram)

    @classmethod
    def from_config(cls, data: DataConfig, model: ModelConfig) -> "TextInputSpec":
        if data.max_seq_len < 3:
            raise ConfigError(f"Data.max_seq_len must be at least 3, got {data.max_seq_len}")
        return cls(max_seq_len=data.max_seq_len, long_text=data.on_long_text, window_overlap=data.window_overlap,
                   max_windows=data.max_windows, wide_max_chars=model.wide_max_chars if model.wide else 0,
                   min_chars=model.wide_ngram_max)

    @property
    def windowed(self) -> bool:
        return self.long_text == "windows"


@dataclass
class EncodedTexts:
    """Per text: its token windows (one in ``truncate`` mode), its character codes (wide models) and whether
    any of it was not read."""

    windows: list[list[list[int]]]
    chars: Optional[list[np.ndarray]]
    cut: np.ndarray  # (N,) bool

    def __len__(self) -> int:
        return len(self.windows)


def window_ids(tokenizer: TextTokenizer, texts: Sequence[str], max_seq_len: int, overlap: int,
               max_windows: int) -> tuple[list[list[list[int]]], np.ndarray]:
    """Token windows of each text (``tokenizers``' truncation with ``stride=overlap``) and, per text, whether it
    had more than ``max_windows`` windows (the later ones are dropped)."""
    if not 0 <= overlap <= max_seq_len - 3:
        raise ConfigError(f"Data.window_overlap={overlap} must be in 0..Data.max_seq_len - 3 = {max_seq_len - 3}")
    encodings = tokenizer.truncating(max_seq_len, overlap).encode_batch(list(texts), add_special_tokens=True)
    windows, capped = [], np.zeros(len(texts), dtype=bool)
    for i, enc in enumerate(encodings):
        pieces = [enc, *enc.overflowing]
        capped[i] = len(pieces) > max_windows
        windows.append([piece.ids for piece in pieces[:max_windows]])
    return windows, capped


def char_codes(text: str, max_chars: int) -> np.ndarray:
    """int64 Unicode code points of the first ``max_chars`` characters of ``text``."""
    return np.array([ord(c) for c in text[:max_chars]], dtype=np.int64)


def encode_for_model(tokenizer: TextTokenizer, texts: Sequence[str], spec: TextInputSpec,
                     where: Sequence[str] = ()) -> EncodedTexts:
    """Everything the model reads of ``texts`` (see the module docstring)."""
    if spec.windowed:
        windows, cut = window_ids(tokenizer, texts, spec.max_seq_len, spec.window_overlap, spec.max_windows)
    else:
        encoded = encode_texts(tokenizer, texts, spec.max_seq_len, spec.long_text, where)
        windows = [[ids] for ids in encoded.input_ids]
        cut = np.array(encoded.cut, dtype=bool)
    chars = None
    if spec.wide_max_chars:
        chars = [char_codes(text, spec.wide_max_chars) for text in texts]
        cut |= np.array([len(text) > spec.wide_max_chars for text in texts], dtype=bool)
    return EncodedTexts(windows, chars, cut)


def pad_windows(rows: Sequence[Sequence[Sequence[int]]], pad_id: int) -> np.ndarray:
    """``(B, N, T)`` int64: each text's windows, right-padded to the longest window; texts with fewer than N
    windows get all-pad windows (which the model skips)."""
    count = max(len(r) for r in rows)
    width = max(len(w) for r in rows for w in r)
    out = np.full((len(rows), count, width), pad_id, dtype="int64")
    for i, row in enumerate(rows):
        for j, window in enumerate(row):
            out[i, j, : len(window)] = window
    return out


def pad_chars(rows: Sequence[np.ndarray], min_len: int = 1) -> np.ndarray:
    """``(B, L)`` int64 code points, 0-padded to the longest row (at least ``min_len``)."""
    width = max([min_len, *(len(r) for r in rows)])
    out = np.zeros((len(rows), width), dtype="int64")
    for i, row in enumerate(rows):
        out[i, : len(row)] = row
    return out


def model_inputs(encoded: EncodedTexts, indices: Sequence[int], spec: TextInputSpec, pad_id: int) -> dict:
    """The padded numpy inputs of the model for the texts at ``indices``: ``input_ids`` ``(B, T)`` (``truncate``)
    or ``(B, N, T)`` (``windows``), plus ``char_ids`` ``(B, L)`` with a wide part."""
    rows = [encoded.windows[i] for i in indices]
    inputs = {"input_ids": pad_windows(rows, pad_id) if spec.windowed else pad_batch([r[0] for r in rows], pad_id)}
    if encoded.chars is not None:
        inputs["char_ids"] = pad_chars([encoded.chars[i] for i in indices], spec.min_chars)
    return inputs
