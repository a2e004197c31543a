"""Build the WordPiece tokenizer and turn texts into padded id batches.

A pretrained model directory (or a checkpoint's ``tokenizer/`` folder) brings its own vocab; a
random-init model takes ``Model.vocab_file`` (the 21,128-token Chinese BERT vocab that
``tools/prepare_data.py vocab`` extracts from the ``cn-clip`` package).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Optional, Sequence

import numpy as np

from paddle_tag.errors import ConfigError, DataError, ModelLoadError
from paddle_tag.utils.quiet import quiet_paddlenlp


def load_tokenizer(pretrained: Optional[str], vocab_file: Optional[str]):
    """An ``ErnieTokenizer`` from a model directory / name, else from a vocab file."""
    quiet_paddlenlp()
    from paddlenlp.transformers import ErnieTokenizer

    if pretrained:
        if Path(pretrained).is_dir():
            if not (Path(pretrained) / "vocab.txt").is_file():
                raise ModelLoadError(f"{pretrained}: no vocab.txt in this model directory")
            return ErnieTokenizer.from_pretrained(pretrained)
        try:
            return ErnieTokenizer.from_pretrained(pretrained)
        except Exception as exc:  # paddlenlp raises OSError/ValueError/HTTP errors by case
            raise ModelLoadError(
                f"cannot load the tokenizer of {pretrained!r}: it is not a local directory and the download "
                f"failed ({type(exc).__name__}). Offline, pass Model.pretrained=<local model directory>.") from None
    if not vocab_file:
        raise ConfigError("a random-init model needs Model.vocab_file (run `python tools/prepare_data.py vocab` "
                          "and use data/vocab/chinese_bert/vocab.txt), or set Model.pretrained")
    if not Path(vocab_file).is_file():
        raise ConfigError(f"Model.vocab_file not found: {vocab_file} (run `python tools/prepare_data.py vocab`)")
    return ErnieTokenizer(vocab_file=str(vocab_file))


@dataclass
class Encoded:
    """Token ids of many texts, unpadded (one list each), and how many were cut to fit."""

    input_ids: list[list[int]]
    truncated: int


def encode_texts(tokenizer, texts: Sequence[str], max_seq_len: int,
                 on_long_text: Literal["truncate", "error"] = "truncate", where: Sequence[str] = ()) -> Encoded:
    """Tokenize with ``[CLS] ... [SEP]``, truncating to ``max_seq_len`` tokens (or refusing, if asked)."""
    if max_seq_len < 3:
        raise ConfigError(f"Data.max_seq_len must be at least 3, got {max_seq_len}")
    full = tokenizer(list(texts), truncation=False, return_token_type_ids=False)["input_ids"]
    ids, truncated = [], 0
    for i, row in enumerate(full):
        if len(row) > max_seq_len:
            if on_long_text == "error":
                loc = where[i] if i < len(where) else f"text {i}"
                raise DataError(f"{loc}: text is {len(row)} tokens, over Data.max_seq_len={max_seq_len} "
                                "(set Data.on_long_text=truncate to cut it)")
            row = row[: max_seq_len - 1] + [row[-1]]  # keep the closing [SEP]
            truncated += 1
        ids.append(row)
    return Encoded(ids, truncated)


def pad_batch(rows: Sequence[Sequence[int]], pad_id: int) -> np.ndarray:
    """Right-pad id lists to the longest row: ``(B, T)`` int64."""
    width = max(len(r) for r in rows)
    out = np.full((len(rows), width), pad_id, dtype="int64")
    for i, row in enumerate(rows):
        out[i, : len(row)] = row
    return out


def save_tokenizer(tokenizer, directory: str | os.PathLike) -> None:
    """Write vocab and tokenizer config into ``directory`` (part of the checkpoint contract)."""
    quiet_paddlenlp()
    tokenizer.save_pretrained(str(directory))
