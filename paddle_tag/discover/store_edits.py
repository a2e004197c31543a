"""Reading tags and editing them (rename / merge / delete + their audit rows), inside a transaction ``TagStore`` opens.

Each function takes an open :class:`~sqlalchemy.Connection` and does not commit: the caller's transaction
makes an edit and its audit row land together or not at all.
"""
from __future__ import annotations

import getpass
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Optional, Sequence, Union

import numpy as np
from sqlalchemy import Connection, func, insert, select, update

from paddle_tag.discover import store_schema as s
from paddle_tag.discover.taxonomy import Item, Tag
from paddle_tag.errors import StoreError

MAX_NAME = 200
ID_CHUNK = 500  # ids per IN (...) clause


def utc(moment: Optional[datetime]) -> Optional[datetime]:
    """A stored timestamp as an aware UTC datetime (SQLite hands them back naive)."""
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=timezone.utc)


@dataclass
class VersionInfo:
    """One taxonomy version's row."""

    id: int
    created: datetime
    embedder: str
    params: dict
    dim: int
    is_current: bool

    @classmethod
    def from_row(cls, row) -> "VersionInfo":
        return cls(id=row["id"], created=utc(row["created"]), embedder=row["embedder"], params=row["params"] or {},
                   dim=row["dim"], is_current=bool(row["is_current"]))

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "created": self.created.isoformat(), "embedder": self.embedder,
                "params": self.params, "dim": self.dim, "is_current": self.is_current}


@dataclass
class TagInfo:
    """A stored tag: the taxonomy's :class:`Tag` fields plus its database id, version and timestamps."""

    id: int
    version_id: int
    key: int
    name: str
    keywords: list[tuple[str, float]]
    centroid: np.ndarray
    initial_centroid: np.ndarray
    size: int
    created: datetime
    updated: datetime

    @classmethod
    def from_row(cls, row) -> "TagInfo":
        return cls(id=row["id"], version_id=row["version_id"], key=row["key"], name=row["name"],
                   keywords=[(str(w), float(x)) for w, x in row["keywords"]],
                   centroid=s.centroid_from_bytes(row["centroid"], row["dim"]),
                   initial_centroid=s.centroid_from_bytes(row["initial_centroid"], row["dim"]),
                   size=row["size"], created=utc(row["created"]), updated=utc(row["updated"]))

    def to_tag(self) -> Tag:
        return Tag(key=self.key, name=self.name, keywords=list(self.keywords), centroid=self.centroid, size=self.size)

    def to_json(self, centroid: bool = False) -> dict[str, Any]:
        out = {"key": self.key, "id": self.id, "name": self.name, "size": self.size,
               "keywords": [[w, x] for w, x in self.keywords], "created": self.created.isoformat(),
               "updated": self.updated.isoformat()}
        if centroid:
            out["centroid"] = [float(x) for x in self.centroid]
        return out


def current_version(conn: Connection) -> Optional[VersionInfo]:
    row = conn.execute(select(s.taxonomy_versions).where(s.taxonomy_versions.c.is_current)).mappings().first()
    return VersionInfo.from_row(row) if row else None


def require_current(conn: Connection, where: str) -> VersionInfo:
    version = current_version(conn)
    if version is None:
        raise StoreError(f"{where}: no taxonomy in the database yet (run tools/discover.py first)")
    return version


def tags_of(conn: Connection, version_id: int) -> list[TagInfo]:
    rows = conn.execute(select(s.tags).where(s.tags.c.version_id == version_id).order_by(s.tags.c.key)).mappings()
    return [TagInfo.from_row(row) for row in rows]


def resolve(conn: Connection, ref: Union[int, str], where: str) -> TagInfo:
    """The current taxonomy's tag with key ``ref`` (an int or a string of digits) or else the name ``ref``."""
    version = require_current(conn, where)
    tags = tags_of(conn, version.id)
    text = str(ref).strip()
    if isinstance(ref, int) or text.lstrip("-").isdigit():
        by_key = [t for t in tags if t.key == int(text)]
        if by_key:
            return by_key[0]
    by_name = [t for t in tags if t.name == text]
    if len(by_name) == 1:
        return by_name[0]
    if by_name:
        raise StoreError(f"{len(by_name)} tags are named {text!r} (keys {[t.key for t in by_name]}); "
                         "give the key instead")
    raise StoreError(f"no tag {text!r} in the current taxonomy (version {version.id}); "
                     "`tools/tags.py list` shows the keys and names")


def show(conn: Connection, tag: TagInfo, samples: int) -> dict[str, Any]:
    a, i = s.assignments, s.items
    rows = conn.execute(select(i.c.item_id, i.c.text, a.c.score).join(i, i.c.item_id == a.c.item_id)
                        .where(a.c.tag_id == tag.id).order_by(a.c.score.desc(), a.c.position).limit(samples))
    out = tag.to_json()
    out["samples"] = [{"item_id": item_id, "text": text, "score": round(float(score), 4)}
                      for item_id, text, score in rows]
    return out


def rename(conn: Connection, tag: TagInfo, new_name: str, actor: Optional[str]) -> TagInfo:
    name = _check_name(new_name)
    now = datetime.now(timezone.utc)
    conn.execute(update(s.tags).where(s.tags.c.id == tag.id).values(name=name, updated=now))
    _audit(conn, actor, "rename", tag, {"name": tag.name}, {"name": name}, now)
    return _reload(conn, tag.id)


def merge(conn: Connection, tags: Sequence[TagInfo], name: Optional[str], actor: Optional[str]) -> TagInfo:
    """Merge into ``tags[0]``: size-weighted centroid (re-normalised) and keyword weights, summed sizes."""
    ids = [t.id for t in tags]
    if len(tags) < 2 or len(set(ids)) != len(ids):
        raise StoreError(f"merge needs two or more different tags, got keys {[t.key for t in tags]}")
    target, others = tags[0], tags[1:]
    weights = np.array([max(t.size, 0) for t in tags], dtype=np.float64)
    weights = weights if weights.sum() > 0 else np.ones(len(tags))
    centroid = _weighted_unit([t.centroid for t in tags], weights)
    initial = _weighted_unit([t.initial_centroid for t in tags], weights)
    keywords = _merge_keywords([t.keywords for t in tags], weights)
    now = datetime.now(timezone.utc)
    other_ids = [t.id for t in others]
    conn.execute(update(s.assignments).where(s.assignments.c.tag_id.in_(other_ids)).values(tag_id=target.id))
    conn.execute(s.tags.delete().where(s.tags.c.id.in_(other_ids)))
    conn.execute(update(s.tags).where(s.tags.c.id == target.id).values(
        name=_check_name(name) if name else target.name, keywords=[[w, x] for w, x in keywords],
        centroid=s.centroid_to_bytes(centroid), initial_centroid=s.centroid_to_bytes(initial),
        size=int(sum(t.size for t in tags)), updated=now))
    merged = _reload(conn, target.id)
    _audit(conn, actor, "merge", target, [t.to_json() for t in tags], merged.to_json(), now)
    return merged


def delete(conn: Connection, tag: TagInfo, actor: Optional[str]) -> TagInfo:
    now = datetime.now(timezone.utc)
    conn.execute(update(s.assignments).where(s.assignments.c.tag_id == tag.id).values(tag_id=None))
    conn.execute(s.tags.delete().where(s.tags.c.id == tag.id))
    _audit(conn, actor, "delete", tag, tag.to_json(), None, now)
    return tag


def audit_rows(conn: Connection, limit: Optional[int]) -> list[dict[str, Any]]:
    query = select(s.audit).order_by(s.audit.c.id.desc())
    if limit:
        query = query.limit(limit)
    return [{**row, "at": utc(row["at"]).isoformat()} for row in conn.execute(query).mappings()]


def assignment_counts(conn: Connection, version_id: int, source: Optional[str] = None) -> tuple[int, int]:
    a = s.assignments
    query = select(func.count(), func.count(a.c.tag_id)).where(a.c.version_id == version_id)
    if source:
        query = query.where(a.c.source == source)
    total, assigned = conn.execute(query).one()
    return int(total), int(total - assigned)


def _reload(conn: Connection, tag_id: int) -> TagInfo:
    return TagInfo.from_row(conn.execute(select(s.tags).where(s.tags.c.id == tag_id)).mappings().one())


def _check_name(name: Optional[str]) -> str:
    name = (name or "").strip()
    if not name:
        raise StoreError("a tag name cannot be empty")
    if len(name) > MAX_NAME:
        raise StoreError(f"a tag name has at most {MAX_NAME} characters, got {len(name)}")
    return name


def _audit(conn: Connection, actor: Optional[str], action: str, tag: TagInfo, old: Any, new: Any,
           now: datetime) -> None:
    conn.execute(insert(s.audit).values(at=now, actor=(actor or _whoami())[:100], action=action,
                                        version_id=tag.version_id, tag_key=tag.key, old=old, new=new))


def _whoami() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no login name (a container without $USER / passwd entry)
        return "unknown"


def _weighted_unit(vectors: Sequence[np.ndarray], weights: np.ndarray) -> np.ndarray:
    total = (np.stack(vectors).astype(np.float64) * weights[:, None]).sum(axis=0)
    norm = np.linalg.norm(total)
    return (total / norm if norm > 0 else total).astype(np.float32)


def _merge_keywords(lists: Sequence[list[tuple[str, float]]], weights: np.ndarray) -> list[tuple[str, float]]:
    """Size-weighted mean weight of each word (absent = 0), best first, as many as the longest list."""
    share = weights / weights.sum()
    scores: dict[str, float] = {}
    for keywords, w in zip(lists, share):
        for word, x in keywords:
            scores[word] = scores.get(word, 0.0) + float(w) * float(x)
    ranked = sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))
    return ranked[:max((len(k) for k in lists), default=0)]


def stored_texts(conn: Connection, item_ids: Sequence[str]) -> dict[str, str]:
    """The stored text of each of ``item_ids`` that is in the items table."""
    found: dict[str, str] = {}
    ids = [str(i) for i in item_ids]
    for start in range(0, len(ids), ID_CHUNK):
        chunk = ids[start:start + ID_CHUNK]
        rows = conn.execute(select(s.items.c.item_id, s.items.c.text).where(s.items.c.item_id.in_(chunk)))
        found.update({item_id: text for item_id, text in rows})
    return found


def refuse_changed_texts(conn: Connection, items: Sequence[Item], where: str) -> None:
    """The items table keeps one text per id: an id stored earlier with another text is an id collision (the
    line-number ids of two different files, say), refused rather than shown later with the wrong text."""
    stored = stored_texts(conn, [item.item_id for item in items])
    changed = [item.item_id for item in items if item.item_id in stored and stored[item.item_id] != item.text]
    if changed:
        shown = ", ".join(repr(i) for i in changed[:5]) + (" ..." if len(changed) > 5 else "")
        raise StoreError(f"{where}: {len(changed)} item ids are already stored with another text ({shown}); nothing "
                         f"was written. Ids without an \"id\" field are line numbers, which collide across files: "
                         f"give the items unique \"id\"s (a URL, a database key)")
