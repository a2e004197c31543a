"""User tag profiles and multi-label item tags in the tag database: ``store.profiles`` (:class:`ProfileStore`) of a
:class:`~paddle_tag.discover.store.TagStore`, whose methods each run one of the store's transactions; the functions
below do the work inside it and do not commit.

A profile set (``profile_sets``) is one taxonomy version's profiles from one source -- ``"history"`` (the tags of
what users consumed) or ``"predicted"`` (a next-item model's distribution pushed to tags, with the checkpoint
recorded) -- and its rows (``user_tag_profiles``) hold each user's weight on the version's tag rows. Writing a
set deletes the previous set of that version and source in the same transaction, so readers see the old profiles
or the new ones, never a mix.

Tags that come with a data set rather than from discovery (MovieLens genres) are registered as a taxonomy version
of their own (:func:`register_dataset`): ``embedder = "dataset"``, no centroids (``dim = 0``), never made current
(``tools/assign.py`` extends the current, discovered taxonomy and has nothing to extend here), and the items'
several tags each in ``item_tags`` (``assignments`` holds one tag per item). The same items file (by sha256) maps
to the same version, so profiles of several models land on the same tag rows.

Tag edits keep profiles consistent: merging tags adds their weights into the kept tag (:func:`fold_tags`), and a
deleted tag's weights go with it (:func:`drop_tag`).
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable, ContextManager, Optional, Sequence

import numpy as np
from sqlalchemy import Connection, insert, select

from paddle_tag.discover import store_schema as s
from paddle_tag.discover.store_edits import TagInfo, tags_of, utc
from paddle_tag.discover.taxonomy import Item
from paddle_tag.errors import StoreError

SOURCES = ("history", "predicted")
DATASET = "dataset"  # the embedder of a version whose tags came with the data
MAX_ID = 255         # users.user_id / items.item_id column width
CHUNK = 5000


@dataclass
class UserProfiles:
    """One profile set read back: ``weights[u, t]`` is user ``user_ids[u]``'s weight on ``tags[t]`` (by key)."""

    version_id: int
    source: str
    user_ids: list[str]
    tags: list[TagInfo]
    weights: np.ndarray
    model: Optional[str] = None
    params: dict[str, Any] = field(default_factory=dict)
    created: Optional[datetime] = None

    def top(self, user_id: str, k: int = 3) -> list[tuple[str, float]]:
        """The user's ``k`` heaviest tags as ``(name, weight)``, ties by tag key."""
        if user_id not in self.user_ids:
            raise StoreError(f"no {self.source} profile of user {user_id!r} in taxonomy version {self.version_id}")
        row = self.weights[self.user_ids.index(user_id)]
        order = np.argsort(-row, kind="stable")[:k]
        return [(self.tags[t].name, float(row[t])) for t in order if row[t] > 0]


class ProfileStore:
    """The profile half of a :class:`~paddle_tag.discover.store.TagStore` (``store.profiles``): each method is one
    transaction of the store."""

    def __init__(self, transaction: Callable[[], ContextManager[Connection]],
                 insert_items: Callable[[Connection, Sequence[Item], datetime], None]) -> None:
        self._transaction, self._insert_items = transaction, insert_items

    def register_dataset(self, items: Sequence[Item], item_tags: Sequence[Sequence[str]],
                         params: dict[str, Any]) -> int:
        """See :func:`register_dataset`."""
        with self._transaction() as conn:
            return register_dataset(conn, items, item_tags, params, _now(), self._insert_items)

    def item_memberships(self, version_id: int, item_ids: Sequence[str],
                         allow_untagged: bool = False) -> tuple[list[TagInfo], np.ndarray]:
        """See :func:`item_memberships`."""
        with self._transaction() as conn:
            return item_memberships(conn, version_id, item_ids, allow_untagged)

    def write(self, version_id: int, source: str, user_ids: Sequence[str], tag_keys: Sequence[int],
              weights: np.ndarray, model: Optional[str] = None, params: Optional[dict[str, Any]] = None) -> int:
        """See :func:`write_profiles`."""
        with self._transaction() as conn:
            return write_profiles(conn, version_id, source, user_ids, tag_keys, weights, model, params or {}, _now())

    def read(self, version_id: int, source: str, user_ids: Optional[Sequence[str]] = None) -> UserProfiles:
        """See :func:`read_profiles`."""
        with self._transaction() as conn:
            return read_profiles(conn, version_id, source, user_ids)


def require_version(conn: Connection, version_id: int) -> None:
    found = conn.execute(select(s.taxonomy_versions.c.id).where(s.taxonomy_versions.c.id == version_id)).first()
    if found is None:
        raise StoreError(f"no taxonomy version {version_id} in the tag database")


def register_dataset(conn: Connection, items: Sequence[Item], item_tags: Sequence[Sequence[str]],
                     params: dict[str, Any], now: datetime,
                     insert_items: Callable[[Connection, Sequence[Item], datetime], None]) -> int:
    """The id of the dataset version whose ``params["items_sha256"]`` matches, else a new one written now.

    ``item_tags[i]`` are the tag names of ``items[i]``; tag keys follow the sorted names. An item id already in
    the database with another text is refused: ids are global, and one id must mean one item.
    """
    if "items_sha256" not in params:
        raise StoreError("a dataset version needs params['items_sha256'] (what identifies the data)")
    if len(items) != len(item_tags):
        raise StoreError(f"{len(items)} items but {len(item_tags)} tag lists")
    versions = conn.execute(select(s.taxonomy_versions.c.id, s.taxonomy_versions.c.params)
                            .where(s.taxonomy_versions.c.embedder == DATASET).order_by(s.taxonomy_versions.c.id))
    for version_id, stored in versions:
        if (stored or {}).get("items_sha256") == params["items_sha256"]:
            return int(version_id)
    _check_item_texts(conn, items)
    names = sorted({name for tags in item_tags for name in tags})
    if not names:
        raise StoreError("the data set's items carry no tags")
    sizes = {name: 0 for name in names}
    for tags in item_tags:
        for name in set(tags):
            sizes[name] += 1
    version_id = conn.execute(insert(s.taxonomy_versions).values(
        created=now, embedder=DATASET, params=params, dim=0, is_current=False)).inserted_primary_key[0]
    tag_ids = {}
    for key, name in enumerate(names):
        tag_ids[name] = conn.execute(insert(s.tags).values(
            version_id=version_id, key=key, name=name, keywords=[], dim=0, centroid=b"", initial_centroid=b"",
            size=sizes[name], created=now, updated=now)).inserted_primary_key[0]
    insert_items(conn, items, now)
    rows = [{"version_id": version_id, "item_id": item.item_id, "tag_id": tag_ids[name], "weight": 1.0}
            for item, tags in zip(items, item_tags) for name in dict.fromkeys(tags)]
    for start in range(0, len(rows), CHUNK):
        conn.execute(insert(s.item_tags), rows[start:start + CHUNK])
    return int(version_id)


def item_memberships(conn: Connection, version_id: int, item_ids: Sequence[str],
                     allow_untagged: bool = False) -> tuple[list[TagInfo], np.ndarray]:
    """The version's tags (by key) and ``(len(item_ids), K)`` memberships: its ``item_tags`` weights, or 1 for an
    item's assigned tag (``assignments``, a discovered taxonomy).

    An item the version does not know (no row in either table) is refused, unless ``allow_untagged`` (then its
    row is 0): a log whose items are not the taxonomy's items would otherwise score silently as untagged.
    """
    require_version(conn, version_id)
    tags = tags_of(conn, version_id)
    column = {info.id: k for k, info in enumerate(tags)}
    row_of = {item_id: r for r, item_id in enumerate(item_ids)}
    m = np.zeros((len(item_ids), len(tags)))
    known = np.zeros(len(item_ids), dtype=bool)
    multi = select(s.item_tags.c.item_id, s.item_tags.c.tag_id, s.item_tags.c.weight).where(
        s.item_tags.c.version_id == version_id)
    single = select(s.assignments.c.item_id, s.assignments.c.tag_id).where(s.assignments.c.version_id == version_id)
    for item_id, tag_id, weight in conn.execute(multi):
        if item_id in row_of:
            m[row_of[item_id], column[tag_id]] = weight
            known[row_of[item_id]] = True
    for item_id, tag_id in conn.execute(single):
        if item_id in row_of:
            known[row_of[item_id]] = True
            if tag_id is not None:
                m[row_of[item_id], column[tag_id]] = 1.0
    if not allow_untagged and not known.all():
        missing = [item_ids[r] for r in np.flatnonzero(~known)]
        raise StoreError(f"{len(missing)} of {len(item_ids)} items are not in taxonomy version {version_id} "
                         f"(e.g. {missing[:3]}): its items must be the interaction log's items")
    return tags, m


def write_profiles(conn: Connection, version_id: int, source: str, user_ids: Sequence[str],
                   tag_keys: Sequence[int], weights: np.ndarray, model: Optional[str], params: dict[str, Any],
                   now: datetime) -> int:
    """Replace the ``source`` profiles of version ``version_id`` with ``weights[u, j]`` = user ``user_ids[u]``'s
    weight on the tag with key ``tag_keys[j]`` (weights of 0 are not stored); return the new set's id."""
    if source not in SOURCES:
        raise StoreError(f"profile source must be one of {', '.join(SOURCES)}, got {source!r}")
    weights = np.asarray(weights, dtype=np.float64)
    if weights.shape != (len(user_ids), len(tag_keys)):
        raise StoreError(f"weights have shape {weights.shape}, expected ({len(user_ids)} users, {len(tag_keys)} tags)")
    if not np.all(np.isfinite(weights)) or (weights < 0).any():
        raise StoreError("profile weights must be finite and non-negative")
    _check_ids(user_ids, "user")
    if len(set(tag_keys)) != len(tag_keys):
        raise StoreError(f"tag keys repeat: {sorted({k for k in tag_keys if list(tag_keys).count(k) > 1})}")
    require_version(conn, version_id)
    tag_id = {info.key: info.id for info in tags_of(conn, version_id)}
    unknown = [k for k in tag_keys if k not in tag_id]
    if unknown:
        raise StoreError(f"tag keys {unknown[:5]} are not in taxonomy version {version_id} "
                         f"(keys {sorted(tag_id)})")
    sets = s.profile_sets
    old = conn.execute(select(sets.c.id).where(sets.c.version_id == version_id, sets.c.source == source)).scalars()
    for set_id in list(old):
        conn.execute(s.user_tag_profiles.delete().where(s.user_tag_profiles.c.set_id == set_id))
        conn.execute(sets.delete().where(sets.c.id == set_id))
    set_id = conn.execute(insert(sets).values(version_id=version_id, source=source, model=model, params=params,
                                              created=now)).inserted_primary_key[0]
    users, columns = np.nonzero(weights)
    rows = [{"set_id": set_id, "user_id": str(user_ids[u]), "tag_id": tag_id[tag_keys[j]], "weight": float(w)}
            for u, j, w in zip(users, columns, weights[users, columns])]
    for start in range(0, len(rows), CHUNK):
        conn.execute(insert(s.user_tag_profiles), rows[start:start + CHUNK])
    return int(set_id)


def read_profiles(conn: Connection, version_id: int, source: str,
                  user_ids: Optional[Sequence[str]] = None) -> UserProfiles:
    """The ``source`` profiles of version ``version_id``: every user in it, or exactly ``user_ids`` (a user with no
    stored weight is refused by name)."""
    sets = s.profile_sets
    found = conn.execute(select(sets).where(sets.c.version_id == version_id, sets.c.source == source)).mappings()
    header = found.first()
    if header is None:
        raise StoreError(f"no {source} profiles for taxonomy version {version_id} "
                         "(tools/user_profiles.py writes them)")
    tags = tags_of(conn, version_id)
    column = {info.id: k for k, info in enumerate(tags)}
    p = s.user_tag_profiles
    query = select(p.c.user_id, p.c.tag_id, p.c.weight).where(p.c.set_id == header["id"]).order_by(p.c.user_id)
    # a few users are looked up by key (the primary key's index), not by reading the whole set
    chunks = [None] if user_ids is None else [list(user_ids)[i:i + 500] for i in range(0, len(user_ids), 500)]
    weights: dict[str, np.ndarray] = defaultdict(lambda: np.zeros(len(tags)))
    for chunk in chunks:
        for user_id, tag_id, weight in conn.execute(query if chunk is None else query.where(p.c.user_id.in_(chunk))):
            weights[user_id][column[tag_id]] = weight
    wanted = list(weights) if user_ids is None else list(user_ids)
    unknown = [u for u in wanted if u not in weights]
    if unknown:
        raise StoreError(f"{len(unknown)} users have no {source} profile in taxonomy version {version_id} "
                         f"(e.g. {unknown[:3]})")
    matrix = np.stack([weights[u] for u in wanted]) if wanted else np.zeros((0, len(tags)))
    return UserProfiles(version_id=version_id, source=source, user_ids=wanted, tags=tags, weights=matrix,
                        model=header["model"], params=header["params"] or {}, created=utc(header["created"]))


def fold_tags(conn: Connection, target_id: int, other_ids: Sequence[int]) -> None:
    """Before ``other_ids`` merge into ``target_id``: their profile and item-tag weights add into the target's."""
    others = [t for t in other_ids if t != target_id]
    if not others:
        return
    for table, owner in ((s.user_tag_profiles, ("set_id", "user_id")), (s.item_tags, ("version_id", "item_id"))):
        keys = [table.c[name] for name in owner]
        summed: dict[tuple, float] = defaultdict(float)
        for *key, weight in conn.execute(select(*keys, table.c.weight).where(table.c.tag_id.in_([target_id, *others]))):
            summed[tuple(key)] += weight
        conn.execute(table.delete().where(table.c.tag_id.in_([target_id, *others])))
        rows = [{**dict(zip(owner, key)), "tag_id": target_id, "weight": weight} for key, weight in summed.items()]
        for start in range(0, len(rows), CHUNK):
            conn.execute(insert(table), rows[start:start + CHUNK])


def drop_tag(conn: Connection, tag_id: int) -> None:
    """Before a tag is deleted: its profile and item-tag weights go with it."""
    conn.execute(s.user_tag_profiles.delete().where(s.user_tag_profiles.c.tag_id == tag_id))
    conn.execute(s.item_tags.delete().where(s.item_tags.c.tag_id == tag_id))


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _check_ids(ids: Sequence[str], what: str) -> None:
    bad = next((i for i in ids if not isinstance(i, str) or not i or len(i) > MAX_ID), None)
    if bad is not None:
        raise StoreError(f"{what} id {bad!r} must be a non-empty string of at most {MAX_ID} characters")
    seen: set[str] = set()
    for i in ids:
        if i in seen:
            raise StoreError(f"{what} id {i!r} appears more than once")
        seen.add(i)


def _check_item_texts(conn: Connection, items: Sequence[Item]) -> None:
    _check_ids([item.item_id for item in items], "item")
    text_of = {item.item_id: item.text for item in items}
    ids = list(text_of)
    for start in range(0, len(ids), 500):
        stored = conn.execute(select(s.items.c.item_id, s.items.c.text)
                              .where(s.items.c.item_id.in_(ids[start:start + 500])))
        for item_id, text in stored:
            if text != text_of[item_id]:
                raise StoreError(f"item id {item_id!r} is already in the tag database with another text "
                                 f"({text[:40]!r}, not {text_of[item_id][:40]!r}): one id must mean one item")
