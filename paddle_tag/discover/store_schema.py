"""The tag database's tables (SQLAlchemy Core), as of the newest schema version in ``store_migrations``.

Portable types only, so the same tables work on SQLite and PostgreSQL: ``Integer``/``String``/``Text``/
``Float``/``Boolean``, ``DateTime(timezone=True)`` (UTC), ``JSON`` (TEXT on SQLite, ``json`` on PostgreSQL) and
``LargeBinary`` (BLOB / ``bytea``).

Centroids are stored as raw little-endian float32 bytes with their ``dim`` next to them, not as JSON lists:
the round trip is bit-exact (what the pipeline wrote is what ``assign`` compares against), a 384-d e5 centroid
is 1.5 KB instead of ~7 KB of decimal text, and decoding is one ``np.frombuffer`` instead of parsing.
``export_json`` is where centroids become readable lists.
"""
from __future__ import annotations

import numpy as np
from sqlalchemy import (JSON, Boolean, Column, DateTime, Float, ForeignKey, Index, Integer, LargeBinary, MetaData,
                        String, Table, Text, UniqueConstraint, text)

metadata = MetaData()

taxonomy_versions = Table(
    "taxonomy_versions", metadata,
    Column("id", Integer, primary_key=True),
    Column("created", DateTime(timezone=True), nullable=False),
    Column("embedder", String(500), nullable=False),
    Column("params", JSON, nullable=False),
    Column("dim", Integer, nullable=False),
    Column("is_current", Boolean, nullable=False, default=False),
    # at most one current version, enforced by the database (a partial unique index on both dialects)
    Index("one_current_version", "is_current", unique=True,
          sqlite_where=text("is_current"), postgresql_where=text("is_current")),
)

tags = Table(
    "tags", metadata,
    Column("id", Integer, primary_key=True),
    Column("version_id", Integer, ForeignKey("taxonomy_versions.id"), nullable=False, index=True),
    Column("key", Integer, nullable=False),
    Column("name", String(200), nullable=False),
    Column("keywords", JSON, nullable=False),            # [[word, weight], ...], best first
    Column("dim", Integer, nullable=False),
    Column("centroid", LargeBinary, nullable=False),     # float32 little-endian, unit length, kept current by assign
    Column("initial_centroid", LargeBinary, nullable=False),  # as discovered: what drift is measured against
    Column("size", Integer, nullable=False),             # items assigned (discovery + incremental assignment)
    Column("created", DateTime(timezone=True), nullable=False),
    Column("updated", DateTime(timezone=True), nullable=False),
    UniqueConstraint("version_id", "key", name="tag_key_per_version"),
)

items = Table(
    "items", metadata,
    Column("item_id", String(255), primary_key=True),
    Column("text", Text, nullable=False),
    Column("first_seen", DateTime(timezone=True), nullable=False),
)

assignments = Table(
    "assignments", metadata,
    Column("version_id", Integer, ForeignKey("taxonomy_versions.id"), primary_key=True),
    Column("item_id", String(255), ForeignKey("items.item_id"), primary_key=True),
    Column("position", Integer, nullable=False),        # order within the version: the taxonomy's list order
    Column("tag_id", Integer, ForeignKey("tags.id"), nullable=True, index=True),  # NULL = unassigned
    Column("score", Float, nullable=False),             # cosine to the tag's centroid when assigned
    Column("source", String(20), nullable=False),       # "discover" | "assign"
    Column("assigned", DateTime(timezone=True), nullable=False),
)

audit = Table(
    "audit", metadata,
    Column("id", Integer, primary_key=True),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("actor", String(100), nullable=False),
    Column("action", String(20), nullable=False),       # "rename" | "merge" | "delete"
    Column("version_id", Integer, nullable=False),      # no foreign keys: the audit outlives what it describes
    Column("tag_key", Integer, nullable=True),
    Column("old", JSON, nullable=True),
    Column("new", JSON, nullable=True),
)

# Multi-label item tags of a version (a data set's own tags: a MovieLens film has several genres), where the
# assignments table holds discovery's one tag per item. Weights are memberships (1 = carries the tag).
item_tags = Table(
    "item_tags", metadata,
    Column("version_id", Integer, ForeignKey("taxonomy_versions.id"), primary_key=True),
    Column("item_id", String(255), ForeignKey("items.item_id"), primary_key=True),
    Column("tag_id", Integer, ForeignKey("tags.id"), primary_key=True, index=True),
    Column("weight", Float, nullable=False),
)

# One set of user tag profiles per taxonomy version and source; writing a set replaces the previous one.
profile_sets = Table(
    "profile_sets", metadata,
    Column("id", Integer, primary_key=True),
    Column("version_id", Integer, ForeignKey("taxonomy_versions.id"), nullable=False),
    Column("source", String(20), nullable=False),       # "history" | "predicted"
    Column("model", String(500), nullable=True),        # the checkpoint that predicted them (+ its sha256)
    Column("params", JSON, nullable=False),             # how they were made (half-life, data, ...)
    Column("created", DateTime(timezone=True), nullable=False),
    UniqueConstraint("version_id", "source", name="one_profile_set_per_source"),
)

# A user's weight on each tag (only weights > 0 are stored; a user's weights sum to at most 1).
user_tag_profiles = Table(
    "user_tag_profiles", metadata,
    Column("set_id", Integer, ForeignKey("profile_sets.id"), primary_key=True),
    Column("user_id", String(255), primary_key=True),
    Column("tag_id", Integer, ForeignKey("tags.id"), primary_key=True, index=True),
    Column("weight", Float, nullable=False),
)

# one row per applied migration (see store_migrations): the database's schema version is the newest row
schema_version = Table(
    "schema_version", metadata,
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("description", String(200), nullable=False),
    Column("applied", DateTime(timezone=True), nullable=False),
)


def centroid_to_bytes(vector: np.ndarray) -> bytes:
    """A (D,) vector as little-endian float32 bytes."""
    return np.ascontiguousarray(vector, dtype="<f4").reshape(-1).tobytes()


def centroid_from_bytes(blob: bytes, dim: int) -> np.ndarray:
    """The (D,) float32 vector :func:`centroid_to_bytes` wrote (a writable copy)."""
    vector = np.frombuffer(blob, dtype="<f4").astype(np.float32)
    if vector.shape[0] != dim:
        raise ValueError(f"centroid has {vector.shape[0]} values, expected {dim}")
    return vector
