"""The tag database (SQLAlchemy 2.x): taxonomy versions, tags, items, assignments, edit audit, user tag profiles.

A SQLite file by default (``sqlite:///output/discover/<name>/tags.db``); a PostgreSQL URL works the same
way (``postgresql://user:password@host/db``, with ``pip install "psycopg[binary]"``; a plain ``postgresql://``
URL uses psycopg 3 when psycopg2 is not installed; see ``store_engine``). The tables are in ``store_schema``,
their versions and migrations in ``store_migrations``: opening a store brings an older database up to date and
refuses a newer one.

Every write is one transaction. :meth:`TagStore.write_taxonomy` inserts a whole version (tags, items,
assignments) and makes it current in the same transaction, so a crash in the middle leaves the previous
version intact and current. Edits (rename / merge / delete, in ``store_edits``) change the current version in
place and write their audit row in the same transaction. Incremental assignment
(:meth:`TagStore.record_assignments`) writes the new items, their assignments and the moved centroids together.
User tag profiles and a data set's own tags (``store_profiles``) are written the same way.

Usage::

    store = TagStore("sqlite:///output/discover/thucnews/tags.db")
    version_id = store.write_taxonomy(taxonomy)
    store.rename_tag("体育", "体育赛事")
    taxonomy = store.current_taxonomy()
"""
from __future__ import annotations

from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator, Optional, Sequence, Union

import numpy as np
from sqlalchemy import Connection, func, insert, select, update
from sqlalchemy.exc import SQLAlchemyError

from paddle_tag.discover import store_edits as edits
from paddle_tag.discover import store_profiles
from paddle_tag.discover import store_schema as s
from paddle_tag.discover.store_edits import TagInfo, VersionInfo
from paddle_tag.discover.store_engine import open_engine, resolve_url
from paddle_tag.discover.store_migrations import migrate
from paddle_tag.discover.taxonomy import Assignment, Item, Taxonomy
from paddle_tag.errors import PaddleTagError, StoreError

TagRef = Union[int, str]  # a tag's key in the current taxonomy, or its name
CHUNK = 5000              # rows per INSERT statement


class TagStore:
    """The tag database at ``url`` (a SQLAlchemy URL, or a path to a SQLite file).

    ``create=False`` refuses a database that does not exist yet (the tag-edit CLI) instead of creating it.
    """

    def __init__(self, url: str | Path, create: bool = True):
        self.engine, self.where = open_engine(url, create)
        self.url = self.engine.url.render_as_string(hide_password=False)
        try:
            self.schema_version = migrate(self.engine, self.where, create=create)
        except SQLAlchemyError as exc:
            raise StoreError(f"{self.where}: cannot open the tag database: {_first_line(exc)}") from None

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> "TagStore":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @contextmanager
    def _transaction(self) -> Iterator[Connection]:
        """One transaction: committed when the block ends, rolled back on any exception (database errors
        become :class:`StoreError`)."""
        try:
            with self.engine.begin() as conn:
                yield conn
        except PaddleTagError:
            raise
        except SQLAlchemyError as exc:
            raise StoreError(f"{self.where}: {_first_line(exc)}") from None

    # ---- versions ------------------------------------------------------------------------------------------
    def write_taxonomy(self, taxonomy: Taxonomy) -> int:
        """Write ``taxonomy`` as a new version and make it current, all in one transaction; return its id."""
        dim = taxonomy.dim
        keys = [tag.key for tag in taxonomy.tags]
        if len(set(keys)) != len(keys):
            raise StoreError(f"taxonomy has duplicate tag keys: {sorted(k for k in set(keys) if keys.count(k) > 1)}")
        now = datetime.now(timezone.utc)
        with self._transaction() as conn:
            version_id = conn.execute(insert(s.taxonomy_versions).values(
                created=now, embedder=taxonomy.embedder, params=taxonomy.params, dim=dim,
                is_current=False)).inserted_primary_key[0]
            tag_ids = {}
            for tag in taxonomy.tags:
                blob = _centroid_blob(tag.centroid, dim, tag.key)
                tag_ids[tag.key] = conn.execute(insert(s.tags).values(
                    version_id=version_id, key=int(tag.key), name=tag.name, keywords=_keywords(tag.keywords),
                    dim=dim, centroid=blob, initial_centroid=blob, size=int(tag.size), created=now,
                    updated=now)).inserted_primary_key[0]
            edits.refuse_changed_texts(conn, taxonomy.items, self.where)
            self._insert_items(conn, taxonomy.items, now)
            self._insert_assignments(conn, version_id, tag_ids, taxonomy.assignments, "discover", now, 0)
            conn.execute(update(s.taxonomy_versions).where(s.taxonomy_versions.c.is_current).values(is_current=False))
            conn.execute(update(s.taxonomy_versions).where(s.taxonomy_versions.c.id == version_id)
                         .values(is_current=True))
        return int(version_id)

    def current_version(self) -> Optional[VersionInfo]:
        with self._transaction() as conn:
            return edits.current_version(conn)

    def versions(self) -> list[VersionInfo]:
        """Every taxonomy version, oldest first."""
        with self._transaction() as conn:
            rows = conn.execute(select(s.taxonomy_versions).order_by(s.taxonomy_versions.c.id)).mappings()
            return [VersionInfo.from_row(row) for row in rows]

    def current_taxonomy(self, with_items: bool = True) -> Optional[Taxonomy]:
        """The current version as a :class:`Taxonomy` (tags by key; items and assignments in the order they
        were written, incremental ones last); None if nothing was written yet. ``with_items=False`` reads
        only the tags."""
        with self._transaction() as conn:
            version = edits.current_version(conn)
            if version is None:
                return None
            infos = edits.tags_of(conn, version.id)
            items, assignments = [], []
            if with_items:
                key_of = {info.id: info.key for info in infos}
                a, i = s.assignments, s.items
                rows = conn.execute(select(i.c.item_id, i.c.text, a.c.tag_id, a.c.score)
                                    .join(i, i.c.item_id == a.c.item_id).where(a.c.version_id == version.id)
                                    .order_by(a.c.position))
                for item_id, text, tag_id, score in rows:
                    items.append(Item(item_id=item_id, text=text))
                    assignments.append(Assignment(item_id=item_id, tag_key=key_of.get(tag_id), score=float(score)))
        return Taxonomy(tags=[info.to_tag() for info in infos], items=items, assignments=assignments,
                        embedder=version.embedder, params=version.params)

    # ---- tags and edits (store_edits does the work inside one transaction each) ---------------------------
    def list_tags(self) -> list[TagInfo]:
        """The current taxonomy's tags, by key."""
        with self._transaction() as conn:
            return edits.tags_of(conn, edits.require_current(conn, self.where).id)

    def show_tag(self, tag: TagRef, samples: int = 5) -> dict[str, Any]:
        """One tag (key or name) as a JSON-able dict, with its ``samples`` best-scoring items."""
        with self._transaction() as conn:
            return edits.show(conn, edits.resolve(conn, tag, self.where), samples)

    def rename_tag(self, tag: TagRef, new_name: str, actor: Optional[str] = None) -> TagInfo:
        with self._transaction() as conn:
            return edits.rename(conn, edits.resolve(conn, tag, self.where), new_name, actor)

    def merge_tags(self, tags: Sequence[TagRef], name: Optional[str] = None, actor: Optional[str] = None) -> TagInfo:
        """Merge ``tags`` into the first one (its key stays); the others' items move to it."""
        with self._transaction() as conn:
            resolved = [edits.resolve(conn, tag, self.where) for tag in tags]
            store_profiles.fold_tags(conn, resolved[0].id, [t.id for t in resolved[1:]])
            return edits.merge(conn, resolved, name, actor)

    def delete_tag(self, tag: TagRef, actor: Optional[str] = None) -> TagInfo:
        """Delete a tag; its items become unassigned."""
        with self._transaction() as conn:
            resolved = edits.resolve(conn, tag, self.where)
            store_profiles.drop_tag(conn, resolved.id)
            return edits.delete(conn, resolved, actor)

    def audit_log(self, limit: Optional[int] = None) -> list[dict[str, Any]]:
        """Audit rows, newest first."""
        with self._transaction() as conn:
            return edits.audit_rows(conn, limit)

    def export_json(self, centroids: bool = True) -> dict[str, Any]:
        """The current taxonomy as a JSON-able dict: the version, its tags (with centroids as lists unless
        ``centroids=False``) and assignment counts."""
        with self._transaction() as conn:
            version = edits.require_current(conn, self.where)
            total, unassigned = edits.assignment_counts(conn, version.id)
            return {"schema_version": self.schema_version, "version": version.to_json(),
                    "tags": [info.to_json(centroid=centroids) for info in edits.tags_of(conn, version.id)],
                    "items": total, "unassigned": unassigned}

    # ---- incremental assignment ----------------------------------------------------------------------------
    def assignment_tags(self, version_id: int, item_ids: Sequence[str]) -> dict[str, Optional[int]]:
        """The tag key (``None``: unassigned) of each of ``item_ids`` that has an assignment in ``version_id``."""
        a, t = s.assignments, s.tags
        found: dict[str, Optional[int]] = {}
        with self._transaction() as conn:
            for start in range(0, len(item_ids), 500):
                chunk = list(item_ids[start:start + 500])
                rows = conn.execute(select(a.c.item_id, t.c.key).select_from(a.outerjoin(t, a.c.tag_id == t.c.id))
                                    .where(a.c.version_id == version_id, a.c.item_id.in_(chunk)))
                found.update({item_id: key for item_id, key in rows})
        return found

    def item_texts(self, item_ids: Sequence[str]) -> dict[str, str]:
        """The stored text of each of ``item_ids`` that is in the items table (any version or profile set)."""
        with self._transaction() as conn:
            return edits.stored_texts(conn, item_ids)

    def assignment_counts(self, version_id: int, source: Optional[str] = None) -> tuple[int, int]:
        """(assigned items, unassigned items) of a version, of one ``source`` ("discover" / "assign") or all."""
        with self._transaction() as conn:
            return edits.assignment_counts(conn, version_id, source)

    def record_assignments(self, version_id: int, items: Sequence[Item], assignments: Sequence[Assignment],
                           centroids: Optional[dict[int, tuple[np.ndarray, int]]] = None,
                           replace_texts: bool = False) -> None:
        """Add new items and their assignments to version ``version_id`` and, when given, set the moved
        centroids and sizes (``{tag key: (centroid, size)}``), all in one transaction. Refused if the version
        is no longer current (a re-discovery finished meanwhile). An item already assigned in this version
        gets its new assignment instead; an item already stored keeps its text unless ``replace_texts``."""
        now = datetime.now(timezone.utc)
        with self._transaction() as conn:
            version = self._require_version_current(conn, version_id)
            tag_ids = {info.key: info.id for info in edits.tags_of(conn, version_id)}
            self._insert_items(conn, items, now)
            for item in items if replace_texts else []:
                conn.execute(update(s.items).where(s.items.c.item_id == str(item.item_id)).values(text=item.text))
            ids = [x.item_id for x in assignments]
            a = s.assignments
            for start in range(0, len(ids), 500):
                conn.execute(a.delete().where(a.c.version_id == version_id, a.c.item_id.in_(ids[start:start + 500])))
            position = conn.execute(select(func.coalesce(func.max(a.c.position), -1))
                                    .where(a.c.version_id == version_id)).scalar() + 1
            self._insert_assignments(conn, version_id, tag_ids, assignments, "assign", now, position)
            if centroids:
                self._set_centroids(conn, version, tag_ids, centroids, now)

    @property
    def profiles(self) -> store_profiles.ProfileStore:
        """A data set's own tags and user tag profiles (``store_profiles``), one transaction per call."""
        return store_profiles.ProfileStore(self._transaction, self._insert_items)

    # ---- helpers -------------------------------------------------------------------------------------------
    def _require_version_current(self, conn: Connection, version_id: int) -> VersionInfo:
        version = edits.current_version(conn)
        if version is None or version.id != version_id:
            raise StoreError(f"{self.where}: taxonomy version {version_id} is no longer the current one "
                             f"(current: {version.id if version else None}); assign again")
        return version

    @staticmethod
    def _set_centroids(conn: Connection, version: VersionInfo, tag_ids: dict[int, int],
                       centroids: dict[int, tuple[np.ndarray, int]], now: datetime) -> None:
        for key, (centroid, size) in centroids.items():
            if key not in tag_ids:
                raise StoreError(f"no tag with key {key} in taxonomy version {version.id}")
            conn.execute(update(s.tags).where(s.tags.c.id == tag_ids[key]).values(
                centroid=_centroid_blob(centroid, version.dim, key), size=int(size), updated=now))

    def _insert_items(self, conn: Connection, items: Sequence[Item], now: datetime) -> None:
        """Insert items not in the table yet (an item keeps the text and date it was first seen with)."""
        rows = list({item.item_id: {"item_id": str(item.item_id), "text": item.text, "first_seen": now}
                     for item in items}.values())
        dialect = conn.dialect.name
        for start in range(0, len(rows), CHUNK):
            chunk = rows[start:start + CHUNK]
            if dialect in ("sqlite", "postgresql"):
                module = __import__(f"sqlalchemy.dialects.{dialect}", fromlist=["insert"])
                conn.execute(module.insert(s.items).on_conflict_do_nothing(index_elements=["item_id"]), chunk)
            else:  # portable fallback: look the ids up first
                known = set(conn.execute(select(s.items.c.item_id).where(
                    s.items.c.item_id.in_([r["item_id"] for r in chunk]))).scalars())
                fresh = [r for r in chunk if r["item_id"] not in known]
                if fresh:
                    conn.execute(insert(s.items), fresh)

    @staticmethod
    def _insert_assignments(conn: Connection, version_id: int, tag_ids: dict[int, int],
                            assignments: Sequence[Assignment], source: str, now: datetime, position: int) -> None:
        rows = []
        for offset, a in enumerate(assignments):
            if a.tag_key is not None and a.tag_key not in tag_ids:
                raise StoreError(f"assignment of item {a.item_id!r} names tag key {a.tag_key}, which is not in "
                                 f"the taxonomy (keys {sorted(tag_ids)})")
            rows.append({"version_id": version_id, "item_id": str(a.item_id), "position": position + offset,
                         "tag_id": None if a.tag_key is None else tag_ids[a.tag_key], "score": float(a.score),
                         "source": source, "assigned": now})
        for start in range(0, len(rows), CHUNK):
            conn.execute(insert(s.assignments), rows[start:start + CHUNK])


def _centroid_blob(centroid: np.ndarray, dim: int, key: int) -> bytes:
    vector = np.asarray(centroid, dtype=np.float32).reshape(-1)
    if vector.shape[0] != dim:
        raise StoreError(f"tag {key}: centroid has {vector.shape[0]} dims, the taxonomy has {dim}")
    if not np.all(np.isfinite(vector)):
        raise StoreError(f"tag {key}: centroid has NaN or infinite values")
    return s.centroid_to_bytes(vector)


def _keywords(keywords: Sequence[tuple[str, float]]) -> list[list]:
    return [[str(word), float(weight)] for word, weight in keywords]


def _first_line(exc: Exception) -> str:
    return str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]


__all__ = ["TagStore", "TagInfo", "VersionInfo", "TagRef", "resolve_url"]
