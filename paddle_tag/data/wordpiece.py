"""A Hugging Face ``tokenizers`` WordPiece tokenizer that gives exactly PaddleNLP's ``ErnieTokenizer`` ids.

Training and the deployed runner tokenise with the Rust ``tokenizers`` library, not PaddleNLP. The pipeline
mirrors PaddleNLP's ``BasicTokenizer`` + ``WordpieceTokenizer`` step by step:

- vocabulary read like PaddleNLP's ``load_vocabulary``: lines split on ``"\\n"`` only (token 343 of the
  Chinese BERT vocab is U+2028, which ``str.splitlines()`` would break), a repeated token keeps its last
  line number;
- normaliser: drop what PaddleNLP's ``_clean_text`` drops (NUL, U+FFFD, every category C* character but
  tab/newline/CR), ``BertNormalizer`` (whitespace → space, lower-case as the checkpoint's
  ``tokenizer_config.json`` says), then, when accents are stripped, NFD and drop every Mn mark;
- pre-tokeniser: ``BertPreTokenizer`` (whitespace, punctuation) then a ``Split`` that isolates every
  character PaddleNLP's ``_run_split_on_punc`` / ``_tokenize_chinese_chars`` cuts off: punctuation and
  *symbols* (Unicode P* and S*, plus the few code points of PaddleNLP's ``_is_symbol``) and CJK
  ideographs. Without it ``￥1`` becomes ``['￥', '##1']`` instead of PaddleNLP's ``['￥', '1']``;
- WordPiece with ``[UNK]``, ``##`` continuation and ``max_input_chars_per_word=100``;
- ``[CLS] $A [SEP]``; truncation is added where the file is saved for a given ``max_seq_len``.

The character classes are computed from the Unicode tables of the Python that runs the export (the
ones PaddleNLP uses), because the Rust library's own tables are of another Unicode version: written
out as explicit code-point ranges, the two libraries cannot disagree on a category. Special tokens
written literally in a text (``[SEP]``) are matched as special tokens, as PaddleNLP does.
"""
from __future__ import annotations

import functools
import json
import os
import unicodedata
from pathlib import Path
from typing import Any, Optional

from paddle_tag.errors import ModelLoadError

SUPPORTED_CLASSES = ("ErnieTokenizer", "BertTokenizer")
SPECIAL_TOKENS = ("unk_token", "sep_token", "pad_token", "cls_token", "mask_token")
DEFAULT_SPECIALS = {"unk_token": "[UNK]", "sep_token": "[SEP]", "pad_token": "[PAD]", "cls_token": "[CLS]",
                    "mask_token": "[MASK]"}
# PaddleNLP's _is_symbol(): category S*, plus these code points.
EXTRA_SYMBOLS = frozenset("\u00ad\u00b2\u00ba\u3007\u00b5\u00d8\u014b\u01b1")
# PaddleNLP's BasicTokenizer._is_chinese_char ranges (Hugging Face starts Extension E at U+2B920).
CJK_RANGES = ((0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x20000, 0x2A6DF), (0x2A700, 0x2B73F), (0x2B740, 0x2B81F),
              (0x2B820, 0x2CEAF), (0xF900, 0xFAFF), (0x2F800, 0x2FA1F))
MAX_INPUT_CHARS_PER_WORD = 100


def read_vocab(path: str | os.PathLike) -> dict[str, int]:
    """``{token: id}`` exactly as PaddleNLP's ``load_vocabulary`` reads ``vocab.txt``."""
    vocab: dict[str, int] = {}
    with open(path, encoding="utf-8") as handle:  # universal newlines; iteration splits on "\n" only
        for index, line in enumerate(handle):
            vocab[line.rstrip("\n")] = index
    return vocab


def read_tokenizer_config(tokenizer_dir: str | os.PathLike) -> dict[str, Any]:
    """The PaddleNLP ``tokenizer_config.json`` of a checkpoint (``{}`` if absent)."""
    path = Path(tokenizer_dir) / "tokenizer_config.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def regex_class(points: list[int]) -> str:
    """A regex character class (Oniguruma syntax) of sorted code points, as ranges."""
    parts: list[list[int]] = []
    for cp in points:
        if parts and cp == parts[-1][1] + 1:
            parts[-1][1] = cp
        else:
            parts.append([cp, cp])
    return "[" + "".join(f"\\x{{{a:X}}}" if a == b else f"\\x{{{a:X}}}-\\x{{{b:X}}}" for a, b in parts) + "]"


@functools.lru_cache(maxsize=None)
def paddle_char_classes(chinese_chars: bool = True) -> dict[str, str]:
    """The classes PaddleNLP's BasicTokenizer decides with ``unicodedata``, as regex classes:
    ``removed`` (``_clean_text``), ``marks`` (Mn, dropped when stripping accents) and ``isolated``
    (``_is_punctuation`` / ``_is_symbol`` and, with ``chinese_chars``, ``_is_chinese_char``)."""
    removed, marks, isolated = [], [], []
    for cp in range(0x110000):
        if 0xD800 <= cp <= 0xDFFF:  # surrogates cannot occur in a valid string
            continue
        ch = chr(cp)
        cat = unicodedata.category(ch)
        if cp in (0, 0xFFFD) or (cat[0] == "C" and ch not in "\t\n\r"):
            removed.append(cp)
        if cat == "Mn":
            marks.append(cp)
        ascii_punct = 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126
        if ascii_punct or cat[0] in "PS" or ch in EXTRA_SYMBOLS:
            isolated.append(cp)
    if chinese_chars:
        isolated = sorted(set(isolated).union(*(range(lo, hi + 1) for lo, hi in CJK_RANGES)))
    return {"removed": regex_class(removed), "marks": regex_class(marks), "isolated": regex_class(isolated)}


def build_tokenizer(vocab_file: str | os.PathLike, config_dir: Optional[str | os.PathLike] = None):
    """A ``tokenizers.Tokenizer`` giving the ids of PaddleNLP's tokenizer for ``vocab_file``, configured by
    the ``tokenizer_config.json`` in ``config_dir`` (an ``ErnieTokenizer`` with lower-casing if none)."""
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

    vocab_path = Path(vocab_file)
    if not vocab_path.is_file():
        raise ModelLoadError(f"vocabulary not found: {vocab_path}")
    config = read_tokenizer_config(config_dir) if config_dir is not None else {}
    cls_name = config.get("tokenizer_class", "ErnieTokenizer")
    if cls_name not in SUPPORTED_CLASSES:
        raise ModelLoadError(f"{config_dir}: tokenizer_class {cls_name!r} cannot be turned into a tokenizer.json "
                             f"(supported: {', '.join(SUPPORTED_CLASSES)})")
    lowercase = bool(config.get("do_lower_case", True))
    bert = cls_name == "BertTokenizer"  # ErnieTokenizer builds BasicTokenizer(do_lower_case) only
    strip_accents = config.get("strip_accents") if bert else None
    strip = strip_accents if strip_accents is not None else lowercase
    chinese_chars = bool(config.get("tokenize_chinese_chars", True)) if bert else True
    specials = {key: str(config.get(key) or DEFAULT_SPECIALS[key]) for key in SPECIAL_TOKENS}
    vocab = read_vocab(vocab_path)
    missing = [tok for tok in specials.values() if tok not in vocab]
    if missing:
        raise ModelLoadError(f"{vocab_path}: special tokens {missing} are not in the vocabulary")
    classes = paddle_char_classes(chinese_chars)

    tok = Tokenizer(models.WordPiece(vocab=vocab, unk_token=specials["unk_token"],
                                     max_input_chars_per_word=MAX_INPUT_CHARS_PER_WORD))
    # PaddleNLP's order: drop control characters, lower-case, then NFD and drop the Mn marks (by *its*
    # Unicode tables: U+1734 is Mc in Python 3.11's, Mn in the Rust library's).
    steps = [normalizers.Replace(Regex(classes["removed"]), ""),
             normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=False, strip_accents=False,
                                        lowercase=lowercase)]
    if strip:
        steps += [normalizers.NFD(), normalizers.Replace(Regex(classes["marks"]), "")]
    tok.normalizer = normalizers.Sequence(steps)
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.BertPreTokenizer(),
        pre_tokenizers.Split(Regex(classes["isolated"]), behavior="isolated"),
    ])
    cls, sep = specials["cls_token"], specials["sep_token"]
    tok.post_processor = processors.TemplateProcessing(single=f"{cls} $A {sep}",
                                                       special_tokens=[(cls, vocab[cls]), (sep, vocab[sep])])
    tok.decoder = decoders.WordPiece(prefix="##")
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in dict.fromkeys(specials.values())])
    tok.enable_padding(pad_id=vocab[specials["pad_token"]], pad_token=specials["pad_token"])
    return tok
