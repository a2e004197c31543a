"""The export's ``tokenizer.json`` (Hugging Face ``tokenizers``): truncate or cut into windows, pad, report
what was not read; and the character codes a wide part reads.

Windows are the ``tokenizers`` library's own: truncation to ``max_seq_len`` with ``stride=overlap`` returns
the rest of a long text as overflowing encodings, each a window with its special tokens — the same call
paddle_tag makes in training (``paddle_tag/data/text_inputs.py``), so both cut the same windows.
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from tokenizers import Tokenizer

from deploy import DeployError


@dataclass(frozen=True)
class Encoded:
    """A right-padded batch: ``input_ids`` int64 ``[batch, longest]`` (or ``[batch, windows, longest]`` when
    texts are read as windows; all-pad windows fill up to the text with most windows), and per text whether
    part of it was not read (cut at ``max_seq_len``, or past ``max_windows`` windows)."""

    input_ids: np.ndarray
    truncated: list[bool]


class TextTokenizer:
    """Wrap ``tokenizers.Tokenizer.from_file`` with the export's ``max_seq_len``, ``pad_id`` and windows."""

    def __init__(self, path: str | os.PathLike[str], max_seq_len: int, pad_id: int, overlap: int | None = None,
                 max_windows: int = 1) -> None:
        try:
            self._tok = Tokenizer.from_file(str(path))
        except Exception as exc:  # noqa: BLE001 - tokenizers raises a bare Exception on a bad file
            raise DeployError(f"{path}: cannot load tokenizer: {exc}") from None
        if pad_id >= self._tok.get_vocab_size(with_added_tokens=True):
            raise DeployError(f"{path}: pad_id {pad_id} is outside the vocabulary "
                              f"({self._tok.get_vocab_size(with_added_tokens=True)} tokens)")
        self.max_seq_len = max_seq_len
        self.pad_id = pad_id
        self.windowed = overlap is not None
        self.max_windows = max_windows if self.windowed else 1
        self._tok.no_padding()  # pad to the batch's longest ourselves, with pad_id
        # the overflow (with the windows' overlap as stride) holds the rest of a long text
        self._tok.enable_truncation(max_length=max_seq_len, stride=overlap or 0)

    @property
    def vocab_size(self) -> int:
        """Number of tokens, added tokens included."""
        return self._tok.get_vocab_size(with_added_tokens=True)

    def windows(self, texts: Sequence[str]) -> tuple[list[list[list[int]]], list[bool]]:
        """Each text's windows' ids (one window unless windowed), and whether any of the text was left out."""
        rows, cut = [], []
        for enc in self._tok.encode_batch(list(texts)):
            pieces = [enc, *enc.overflowing]
            rows.append([piece.ids for piece in pieces[:self.max_windows]])
            cut.append(len(pieces) > self.max_windows)
        return rows, cut

    def encode(self, texts: Sequence[str]) -> Encoded:
        """Tokenize ``texts`` (with the tokenizer's own special tokens), truncate or window, pad to the longest."""
        if not texts:
            shape = (0, 0, 0) if self.windowed else (0, 0)
            return Encoded(np.zeros(shape, dtype=np.int64), [])
        rows, cut = self.windows(texts)
        longest = max(len(w) for row in rows for w in row)
        if self.windowed:
            ids = np.full((len(rows), max(len(r) for r in rows), longest), self.pad_id, dtype=np.int64)
            for i, row in enumerate(rows):
                for j, window in enumerate(row):
                    ids[i, j, :len(window)] = window
        else:
            ids = np.full((len(rows), longest), self.pad_id, dtype=np.int64)
            for i, row in enumerate(rows):
                ids[i, :len(row[0])] = row[0]
        return Encoded(ids, cut)


def char_codes(texts: Sequence[str], max_chars: int, min_len: int = 1) -> tuple[np.ndarray, list[bool]]:
    """int64 ``[batch, longest]`` Unicode code points of each text's first ``max_chars`` characters, 0-padded
    to the longest (at least ``min_len``), and per text whether it was longer than ``max_chars``."""
    width = max([min_len, *(min(len(t), max_chars) for t in texts)])
    out = np.zeros((len(texts), width), dtype=np.int64)
    for i, text in enumerate(texts):
        codes = [ord(c) for c in text[:max_chars]]
        out[i, :len(codes)] = codes
    return out, [len(t) > max_chars for t in texts]
