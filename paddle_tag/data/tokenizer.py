"""The one tokenizer definition: a Hugging Face ``tokenizers`` ``tokenizer.json``, used alike by
training, evaluation, export and the deployed runner, so token ids cannot drift between them.

Where it comes from:

- a model directory with ``tokenizer.json`` (imported e5/BERT models, new checkpoints): used as is;
- a directory with only PaddleNLP's ``vocab.txt`` (+ ``tokenizer_config.json``): a WordPiece
  ``tokenizer.json`` giving exactly PaddleNLP's ``ErnieTokenizer`` ids is built from it
  (:mod:`paddle_tag.data.wordpiece`);
- ``Model.vocab_file`` for a random-init model (the 21,128-token Chinese BERT vocab that
  ``tools/prepare_data.py vocab`` extracts from the ``cn-clip`` package): the same WordPiece build.

``Data.text_prefix`` (e5 wants ``"query: "``) becomes the first step of the normaliser, so the saved
``tokenizer.json`` carries it and nobody downstream has to remember it.
"""
from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Optional, Sequence

import numpy as np

from paddle_tag.data.wordpiece import build_tokenizer
from paddle_tag.errors import ConfigError, DataError, ModelLoadError
from paddle_tag.utils.io import atomic_write_text
from paddle_tag.utils.quiet import quiet_paddlenlp

TOKENIZER_FILE = "tokenizer.json"
PAD_TOKENS = ("[PAD]", "<pad>")


class TextTokenizer:
    """A ``tokenizers.Tokenizer`` with its special tokens (``[CLS] … [SEP]`` / ``<s> … </s>``) and pad id."""

    def __init__(self, tok) -> None:
        tok.no_truncation()
        padding = tok.padding
        tok.no_padding()
        self._tok = tok
        self._truncating: dict[tuple[int, int], object] = {}
        pad_id = padding["pad_id"] if padding else None
        if pad_id is None:
            pad_id = next((tok.token_to_id(t) for t in PAD_TOKENS if tok.token_to_id(t) is not None), None)
        if pad_id is None:
            raise ModelLoadError("the tokenizer has no padding token ([PAD] or <pad>)")
        self.pad_token_id = int(pad_id)
        ends = tok.encode("").ids
        if len(ends) != 2:
            raise ModelLoadError(f"the tokenizer must wrap a text in two special tokens, it adds {len(ends)}")
        self.bos_token_id, self.eos_token_id = ends

    @classmethod
    def from_file(cls, path: str | os.PathLike) -> "TextTokenizer":
        from tokenizers import Tokenizer

        try:
            return cls(Tokenizer.from_file(str(path)))
        except ModelLoadError:
            raise
        except Exception as exc:  # tokenizers raises a bare Exception on a malformed file
            raise ModelLoadError(f"{path}: cannot load the tokenizer ({exc})") from None

    def __len__(self) -> int:
        return self._tok.get_vocab_size(with_added_tokens=True)

    @property
    def backend(self):
        """The underlying ``tokenizers.Tokenizer`` (no truncation, no padding)."""
        return self._tok

    def with_prefix(self, prefix: str) -> "TextTokenizer":
        """A copy that prepends ``prefix`` to every text before normalising it."""
        from tokenizers import Tokenizer, normalizers

        if not prefix:
            return self
        tok = Tokenizer.from_str(self._tok.to_str())
        steps = [normalizers.Prepend(prefix)] + ([tok.normalizer] if tok.normalizer is not None else [])
        tok.normalizer = normalizers.Sequence(steps)
        tok.enable_padding(pad_id=self.pad_token_id, pad_token=self.id_to_token(self.pad_token_id))
        return TextTokenizer(tok)

    def encode(self, texts: Sequence[str]) -> list[list[int]]:
        """Ids of each text with its special tokens, not truncated."""
        return [enc.ids for enc in self._tok.encode_batch(list(texts), add_special_tokens=True)]

    def truncating(self, max_seq_len: int, overlap: int = 0):
        """A copy of the ``tokenizers.Tokenizer`` that cuts texts to ``max_seq_len`` tokens and returns the rest
        as overflowing windows sharing ``overlap`` tokens with the previous one (cached per setting)."""
        from tokenizers import Tokenizer

        key = (max_seq_len, overlap)
        if key not in self._truncating:
            tok = Tokenizer.from_str(self._tok.to_str())
            tok.no_padding()
            tok.enable_truncation(max_length=max_seq_len, stride=overlap, strategy="longest_first",
                                  direction="right")
            self._truncating[key] = tok
        return self._truncating[key]

    def tokens(self, text: str) -> list[str]:
        return self._tok.encode(text).tokens

    def token_to_id(self, token: str) -> Optional[int]:
        return self._tok.token_to_id(token)

    def id_to_token(self, index: int) -> Optional[str]:
        return self._tok.id_to_token(index)

    def to_json(self, max_seq_len: Optional[int] = None, overlap: int = 0) -> str:
        """The ``tokenizer.json`` text, recording the pad token and, if given, the truncation length (and the
        overlap of the windows it cuts)."""
        from tokenizers import Tokenizer

        tok = Tokenizer.from_str(self._tok.to_str())
        tok.enable_padding(pad_id=self.pad_token_id, pad_token=self.id_to_token(self.pad_token_id))
        if max_seq_len is not None:
            tok.enable_truncation(max_length=max_seq_len, stride=overlap, strategy="longest_first",
                                  direction="right")
        return tok.to_str(pretty=False)

    def save(self, directory: str | os.PathLike, max_seq_len: Optional[int] = None, overlap: int = 0) -> Path:
        """Write ``tokenizer.json`` into ``directory`` (atomically); return its path."""
        path = Path(directory) / TOKENIZER_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, self.to_json(max_seq_len, overlap))
        return path


def _from_vocab(vocab_file: Path, config_dir: Optional[Path] = None) -> TextTokenizer:

    return TextTokenizer(build_tokenizer(vocab_file, config_dir))


def _from_paddlenlp_name(name: str) -> TextTokenizer:
    quiet_paddlenlp()
    from paddlenlp.transformers import AutoTokenizer

    try:
        paddle_tok = AutoTokenizer.from_pretrained(name)
    except Exception as exc:  # paddlenlp raises OSError/ValueError/HTTP errors by case
        raise ModelLoadError(
            f"cannot load the tokenizer of {name!r}: it is not a local directory and the download failed "
            f"({type(exc).__name__}). Offline, pass Model.pretrained=<local model directory>.") from None
    with tempfile.TemporaryDirectory() as tmp:
        paddle_tok.save_pretrained(tmp)
        return load_tokenizer(tmp, None)


def load_tokenizer(pretrained: Optional[str], vocab_file: Optional[str], text_prefix: str = "") -> TextTokenizer:
    """The tokenizer of a model directory / name, else a WordPiece one from ``vocab_file``."""
    if pretrained:
        directory = Path(pretrained)
        if directory.is_dir():
            if (directory / TOKENIZER_FILE).is_file():
                tok = TextTokenizer.from_file(directory / TOKENIZER_FILE)
            elif (directory / "vocab.txt").is_file():
                tok = _from_vocab(directory / "vocab.txt", directory)
            else:
                raise ModelLoadError(f"{pretrained}: no tokenizer.json or vocab.txt in this model directory")
        else:
            tok = _from_paddlenlp_name(pretrained)
    else:
        if not vocab_file:
            raise ConfigError("a random-init model needs Model.vocab_file (run `python tools/prepare_data.py vocab` "
                              "and use data/vocab/chinese_bert/vocab.txt), or set Model.pretrained")
        if not Path(vocab_file).is_file():
            raise ConfigError(f"Model.vocab_file not found: {vocab_file} (run `python tools/prepare_data.py vocab`)")
        tok = _from_vocab(Path(vocab_file))
    return tok.with_prefix(text_prefix)


@dataclass
class Encoded:
    """Token ids of many texts, unpadded (one list each), and which of them were cut to fit."""

    input_ids: list[list[int]]
    cut: list[bool]

    @property
    def truncated(self) -> int:
        """How many texts were cut."""
        return sum(self.cut)


def encode_texts(tokenizer: TextTokenizer, texts: Sequence[str], max_seq_len: int,
                 on_long_text: Literal["truncate", "error"] = "truncate", where: Sequence[str] = ()) -> Encoded:
    """Tokenize with the closing special tokens, truncating to ``max_seq_len`` tokens (or refusing, if asked)."""
    if max_seq_len < 3:
        raise ConfigError(f"Data.max_seq_len must be at least 3, got {max_seq_len}")
    ids, cut = [], []
    for i, row in enumerate(tokenizer.encode(texts)):
        cut.append(len(row) > max_seq_len)
        if cut[-1]:
            if on_long_text == "error":
                loc = where[i] if i < len(where) else f"text {i}"
                raise DataError(f"{loc}: text is {len(row)} tokens, over Data.max_seq_len={max_seq_len} "
                                "(set Data.on_long_text=truncate to cut it, or windows to read it whole)")
            row = row[: max_seq_len - 1] + [row[-1]]  # keep the closing [SEP] / </s>
        ids.append(row)
    return Encoded(ids, cut)


def pad_batch(rows: Sequence[Sequence[int]], pad_id: int) -> np.ndarray:
    """Right-pad id lists to the longest row: ``(B, T)`` int64."""
    width = max(len(r) for r in rows)
    out = np.full((len(rows), width), pad_id, dtype="int64")
    for i, row in enumerate(rows):
        out[i, : len(row)] = row
    return out


def save_tokenizer(tokenizer: TextTokenizer, directory: str | os.PathLike) -> None:
    """Write ``tokenizer.json`` into ``directory`` (part of the checkpoint contract)."""
    tokenizer.save(directory)
