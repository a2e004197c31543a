"""Tagged classical poems (multi-label) from the npm package ``chinese-poetry``.

``npm pack chinese-poetry@2.0.1`` gives an 85 MB tarball (MIT, JackeyGao). Only the poems that
carry ``tags`` are used, from ``package/dist/quantangshi/**/*.json`` (Tang and Song shi, in
traditional characters) and ``package/dist/songci/*.json`` (Song ci). :func:`prepare_poetry`
reads them straight from the tarball, converts everything to simplified characters with
OpenCC ``t2s``, merges duplicate poems, keeps tags with at least ``min_tag_count`` poems,
splits 80/10/10 so that every kept tag occurs in train, and writes ``train/dev/test.jsonl``
(``{"text": title + "：" + body, "labels": [...]}``) plus ``SOURCE.json``.
"""

from __future__ import annotations

import json
import logging
import os
import tarfile
from collections import Counter
from pathlib import Path
from typing import Any

from paddle_tag.data.sources import registry
from paddle_tag.errors import ConfigError, DataError
from paddle_tag.utils.io import sha256_file, write_jsonl

logger = logging.getLogger(__name__)

ARTIFACT = registry.Artifact(registry="npm", package="chinese-poetry", version="2.0.1",
                             filename="chinese-poetry-2.0.1.tgz",
                             sha256="25b549e46919c3a0569db6b68ddc96956b04a484ea4518ad2bbd4f137e307e86")
LICENCE = "MIT (c) 2016 JackeyGao, https://github.com/chinese-poetry/chinese-poetry"
PATTERNS = ("package/dist/quantangshi/**/*.json", "package/dist/songci/*.json")
FORMAT_VERSION = 1


def _selected(name: str) -> bool:
    """True for the JSON files matched by :data:`PATTERNS`."""
    if not name.endswith(".json"):
        return False
    if name.startswith("package/dist/quantangshi/"):
        return True
    return name.startswith("package/dist/songci/") and name.count("/") == 3


def _str_list(value: Any) -> list[str]:
    """Return ``value`` as a list of non-empty stripped strings ([] when not a list)."""
    if not isinstance(value, list):
        return []
    return [v.strip() for v in value if isinstance(v, str) and v.strip()]


def read_tagged_poems(archive: str | os.PathLike[str]) -> tuple[list[tuple[str, list[str]]],
                                                                Counter[str]]:
    """Read the tagged poems from the tarball as ``(simplified_text, simplified_tags)``.

    Returns the poems in archive order and a counter with ``files``, ``files_skipped``
    (unparsable JSON or not a list), ``entries`` (dicts read), ``poems`` (entries with
    paragraphs) and ``tagged``. Raises :class:`DataError` if the archive cannot be read.
    """
    try:
        from opencc import OpenCC
    except ImportError:
        raise DataError("poetry needs OpenCC: pip install opencc-python-reimplemented") from None
    cc = OpenCC("t2s")
    stats: Counter[str] = Counter()
    poems: list[tuple[str, list[str]]] = []
    tag_cache: dict[str, str] = {}
    try:
        with tarfile.open(archive, "r:gz") as tf:
            for member in tf:
                if not member.isfile() or not _selected(member.name):
                    continue
                stats["files"] += 1
                fh = tf.extractfile(member)
                try:
                    data = json.loads(fh.read().decode("utf-8")) if fh else None
                except (ValueError, UnicodeDecodeError):
                    data = None
                if not isinstance(data, list):
                    stats["files_skipped"] += 1
                    logger.debug("poetry: skipped %s (not a JSON list)", member.name)
                    continue
                for entry in data:
                    if not isinstance(entry, dict):
                        continue
                    stats["entries"] += 1
                    paragraphs = entry.get("paragraphs")
                    if not paragraphs or not isinstance(paragraphs, list):
                        continue
                    stats["poems"] += 1
                    tags = _str_list(entry.get("tags"))
                    paragraphs = _str_list(paragraphs)
                    if not tags or not paragraphs:
                        continue
                    stats["tagged"] += 1
                    title = entry.get("title") or entry.get("rhythmic") or ""
                    title = title.strip() if isinstance(title, str) else ""
                    text = cc.convert(f"{title}：{''.join(paragraphs)}")
                    for t in tags:
                        if t not in tag_cache:
                            tag_cache[t] = cc.convert(t)
                    poems.append((text, [tag_cache[t] for t in tags]))
    except (OSError, tarfile.TarError, EOFError) as exc:
        raise DataError(f"{archive}: cannot read the chinese-poetry tarball: {exc}") from None
    return poems, stats


def merge_duplicates(poems: list[tuple[str, list[str]]]) -> dict[str, set[str]]:
    """Merge poems with the same text, uniting their tag sets; return ``{text: tags}``."""
    merged: dict[str, set[str]] = {}
    for text, tags in poems:
        merged.setdefault(text, set()).update(tags)
    return merged


def split_by_rarest_tag(
    poems: dict[str, list[str]], tag_count: Counter[str], seed: int
) -> tuple[dict[str, list[str]], int]:
    """Split poem texts 80/10/10, stratified on each poem's rarest tag.

    Afterwards, any tag missing from train gets one of its dev/test poems moved to train.
    Returns ``({split: [text, ...]}, moved)``.
    """
    groups: dict[str, list[str]] = {}
    for text in sorted(poems):
        rarest = min(poems[text], key=lambda t: (tag_count[t], t))
        groups.setdefault(rarest, []).append(text)
    parts = registry.stratified_split(groups, seed)
    moved = 0
    in_train = {t for text in parts["train"] for t in poems[text]}
    for tag in sorted(tag_count):
        if tag in in_train:
            continue
        for name in ("dev", "test"):
            hits = sorted(text for text in parts[name] if tag in poems[text])
            if hits:
                parts[name].remove(hits[0])
                parts["train"].append(hits[0])
                in_train.update(poems[hits[0]])
                moved += 1
                break
    return parts, moved


def prepare_poetry(
    out_dir: str | os.PathLike[str] = "data/poetry",
    seed: int = 42,
    min_tag_count: int = 30,
    cache_dir: str | os.PathLike[str] | None = None,
    force: bool = False,
) -> dict[str, Any]:
    """Fetch, convert, merge, filter, split and write the tagged poems; return the counts.

    Skips the work when ``out_dir`` already holds outputs made with the same settings, unless
    ``force``.
    """
    if not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed < 2**32:
        raise ConfigError(f"seed must be an integer in [0, 2**32), got {seed!r}")
    if not isinstance(min_tag_count, int) or min_tag_count < 1:
        raise ConfigError(f"min_tag_count must be a positive integer, got {min_tag_count!r}")
    out = Path(out_dir)
    settings = {"seed": seed, "min_tag_count": min_tag_count, "split": [0.8, 0.1, 0.1],
                "opencc": "t2s", "archive_sha256": ARTIFACT.sha256, "format": FORMAT_VERSION}
    skipped = registry.prepared_counts("poetry", out, settings, force)
    if skipped is not None:
        return skipped

    archive, digest = registry.fetch(ARTIFACT, cache_dir)
    raw, stats = read_tagged_poems(archive)
    merged = merge_duplicates(raw)
    all_tags = Counter(t for tags in merged.values() for t in tags)
    kept_tags = Counter({t: c for t, c in all_tags.items() if c >= min_tag_count})
    poems = {text: sorted(t for t in tags if t in kept_tags) for text, tags in merged.items()}
    poems = {text: tags for text, tags in poems.items() if tags}
    if not poems:
        raise DataError(f"poetry: no tag has {min_tag_count} or more poems; lower min_tag_count")
    parts, moved = split_by_rarest_tag(poems, kept_tags, seed)

    n_labels = sum(len(t) for t in poems.values())
    counts: dict[str, Any] = {
        **{k: stats[k] for k in ("files", "files_skipped", "entries", "poems", "tagged")},
        "after_dedup": len(merged), "distinct_tags": len(all_tags), "kept_tags": len(kept_tags),
        "poems_kept": len(poems), "mean_tags_per_poem": round(n_labels / len(poems), 3),
        "moved_to_train": moved,
    }
    outputs: dict[str, str] = {}
    for name in registry.SPLITS:
        write_jsonl(out / f"{name}.jsonl",
                    ({"text": text, "labels": poems[text]} for text in parts[name]))
        outputs[f"{name}.jsonl"] = sha256_file(out / f"{name}.jsonl")
        counts[name] = len(parts[name])
    counts["tag_counts"] = dict(sorted(kept_tags.items(), key=lambda kv: (-kv[1], kv[0])))
    registry.write_provenance(
        out / "SOURCE.json", artifact=ARTIFACT, archive_sha256=digest, files_inside=PATTERNS,
        licence=LICENCE, settings=settings, outputs=outputs, counts=counts,
        steps=[
            f"read {stats['files']} JSON files from the tarball, skipped {stats['files_skipped']}"
            " (unparsable or not a list); kept entries with paragraphs and tags",
            "text = title (or rhythmic) + '：' + ''.join(paragraphs); text and tags converted "
            "to simplified with OpenCC t2s",
            f"merged {stats['tagged'] - len(merged)} duplicate poems (same text), uniting tags",
            f"kept {len(kept_tags)} of {len(all_tags)} tags with >= {min_tag_count} poems; "
            "dropped poems left without a tag",
            f"split 80/10/10 stratified on each poem's rarest tag (seed {seed}); moved {moved} "
            "poems to train so every tag occurs in train",
        ],
    )
    logger.info(
        "poetry: %d tagged entries -> %d after dedup -> %d poems, %d tags (>= %d), "
        "%.2f tags/poem; train %d / dev %d / test %d", stats["tagged"], len(merged), len(poems),
        len(kept_tags), min_tag_count, counts["mean_tags_per_poem"], counts["train"],
        counts["dev"], counts["test"])
    return dict(counts, skipped=False)
