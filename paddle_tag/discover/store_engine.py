"""Connecting to the tag database: a URL or a SQLite path → a SQLAlchemy engine that behaves the same on SQLite
and PostgreSQL (transactions opened by SQLAlchemy, foreign keys enforced, JSON written as UTF-8 text).

PostgreSQL needs a driver: ``pip install "psycopg[binary]"`` (psycopg 3). A plain ``postgresql://`` URL uses it
when psycopg2 is not installed; ``postgresql+psycopg://`` / ``postgresql+psycopg2://`` choose explicitly.
"""
from __future__ import annotations

import importlib.util
import json
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError

from paddle_tag.errors import StoreError


def resolve_url(db: str | Path) -> str:
    """A database URL as given, or ``sqlite:///<path>`` for a path to a SQLite file."""
    db = str(db)
    return db if "://" in db else f"sqlite:///{db}"


def open_engine(db: str | Path, create: bool) -> tuple[Engine, str]:
    """The engine for ``db`` and how to name it in messages (its URL without the password).

    ``create=False``: a SQLite file that does not exist is an error (and is not created as a side effect).
    """
    try:
        url = make_url(resolve_url(db))
    except ArgumentError:
        raise StoreError(f"not a database URL or path: {db}") from None
    where = url.render_as_string(hide_password=True)
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
        path = Path(url.database)
        if not path.exists() and not create:
            raise StoreError(f"no tag database at {path} (run tools/discover.py first, or pass --db)")
        if create:
            path.parent.mkdir(parents=True, exist_ok=True)
    if url.drivername == "postgresql" and not _importable("psycopg2") and _importable("psycopg"):
        url = url.set(drivername="postgresql+psycopg")
    try:
        engine = create_engine(url, json_serializer=_dumps)
    except (NoSuchModuleError, ImportError) as exc:
        raise StoreError(f"{where}: no driver for this database ({exc}); for PostgreSQL: "
                         "pip install \"psycopg[binary]\"") from None
    if engine.dialect.name == "sqlite":
        _sqlite_transactions(engine)
    return engine, where


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (Path, datetime)):
        return str(value)
    raise TypeError(f"not JSON-serialisable: {type(value).__name__}")


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=_json_default)


def _sqlite_transactions(engine) -> None:
    """Let SQLAlchemy, not the sqlite3 module, open transactions (so DDL and reads are transactional too),
    and enforce foreign keys as PostgreSQL does."""
    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection, _record) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(conn) -> None:
        conn.exec_driver_sql("BEGIN")


def _importable(module: str) -> bool:
    return importlib.util.find_spec(module) is not None
