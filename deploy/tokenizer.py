"""The export's ``tokenizer.json`` (Hugging Face ``tokenizers``): truncate, pad, report truncation."""
from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from tokenizers import Tokenizer

from deploy import DeployError


@dataclass(frozen=True)
class Encoded:
    """A right-padded batch: ``input_ids`` int64 ``[batch, longest]``, and per text whether its
    token count (special tokens included) exceeded ``max_seq_len`` and was cut."""

    input_ids: np.ndarray
    truncated: list[bool]


class TextTokenizer:
    """Wrap ``tokenizers.Tokenizer.from_file`` with the export's ``max_seq_len`` and ``pad_id``."""

    def __init__(self, path: str | os.PathLike[str], max_seq_len: int, pad_id: int) -> None:
        try:
            self._tok = Tokenizer.from_file(str(path))
        except Exception as exc:  # noqa: BLE001 - tokenizers raises a bare Exception on a bad file
            raise DeployError(f"{path}: cannot load tokenizer: {exc}") from None
        if pad_id >= self._tok.get_vocab_size(with_added_tokens=True):
            raise DeployError(f"{path}: pad_id {pad_id} is outside the vocabulary "
                              f"({self._tok.get_vocab_size(with_added_tokens=True)} tokens)")
        self.max_seq_len = max_seq_len
        self.pad_id = pad_id
        self._tok.no_padding()  # pad to the batch's longest ourselves, with pad_id
        self._tok.enable_truncation(max_length=max_seq_len)

    @property
    def vocab_size(self) -> int:
        """Number of tokens, added tokens included."""
        return self._tok.get_vocab_size(with_added_tokens=True)

    def encode(self, texts: Sequence[str]) -> Encoded:
        """Tokenize ``texts`` (with the tokenizer's own special tokens), truncate, pad to the longest."""
        if not texts:
            return Encoded(np.zeros((0, 0), dtype=np.int64), [])
        encodings = self._tok.encode_batch(list(texts))
        longest = max(len(e.ids) for e in encodings)
        ids = np.full((len(encodings), longest), self.pad_id, dtype=np.int64)
        for row, enc in enumerate(encodings):
            ids[row, :len(enc.ids)] = enc.ids
        # With truncation on, the cut-off tokens end up in ``overflowing``.
        return Encoded(ids, [bool(e.overflowing) for e in encodings])
