"""User tag profiles and a data set's own tags in the tag database, against a real SQLite file (and PostgreSQL when
``PADDLE_TAG_PG_URL`` names a scratch database): registration, memberships, exact round trips, replacement, refusals,
tag edits that carry profiles along, a writer killed mid-write, and a schema-version-1 database brought up to date."""
from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import create_engine, func, insert, inspect, select
from sqlalchemy.exc import IntegrityError

from paddle_tag.discover import store_schema as s
from paddle_tag.discover.store import TagStore
from paddle_tag.discover.store_migrations import SCHEMA_VERSION
from paddle_tag.discover.taxonomy import Assignment, Item, Tag, Taxonomy
from paddle_tag.errors import StoreError

PG_URL = os.environ.get("PADDLE_TAG_PG_URL")  # as in test_store.py
V1_DUMP = Path(__file__).parent / "fixtures" / "tags_schema_v1.sql"
NEW_TABLES = ("item_tags", "profile_sets", "user_tag_profiles")

# a film log's own tags: several per item, one item untagged
FILMS = [Item("Toy Story (1995)", "Toy Story (1995)"), Item("Heat (1995)", "Heat (1995)"),
         Item("Babe (1995)", "Babe (1995)"), Item("Untitled (2000)", "Untitled (2000)")]
GENRES = [["Animation", "Comedy"], ["Action", "Crime", "Thriller"], ["Comedy", "Drama"], []]
PARAMS = {"source": "dataset", "data": "films", "items_sha256": "ab" * 32}


def taxonomy() -> Taxonomy:
    """A discovered taxonomy: three tags, five items (one unassigned)."""
    c = np.eye(3, dtype=np.float32)
    return Taxonomy([Tag(0, "体育", [("比赛", 0.4)], c[0], 2), Tag(1, "财经", [("股市", 0.5)], c[1], 1),
                     Tag(2, "科技", [("手机", 0.6)], c[2], 1)],
                    [Item("1", "湖人队主场险胜勇士"), Item("2", "国安战平申花"), Item("3", "沪指收涨"),
                     Item("4", "折叠屏手机发布"), Item("5", "今日天气晴")],
                    [Assignment("1", 0, 0.9), Assignment("2", 0, 0.8), Assignment("3", 1, 0.9),
                     Assignment("4", 2, 0.9), Assignment("5", None, 0.1)], embedder="tfidf")


def _drop_all(url: str) -> None:
    engine = create_engine(url)
    s.metadata.drop_all(engine)
    engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path) -> str:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'tags.db'}"
        return
    if not PG_URL:
        pytest.skip("set PADDLE_TAG_PG_URL to a scratch PostgreSQL database to run the store tests there too")
    url = PG_URL.replace("postgresql://", "postgresql+psycopg://", 1)
    _drop_all(url)
    yield url
    _drop_all(url)


def count(url: str, table) -> int:
    engine = create_engine(url)
    with engine.connect() as conn:
        n = conn.execute(select(func.count()).select_from(table)).scalar()
    engine.dispose()
    return n


def test_dataset_tags_are_registered_once_and_never_displace_the_current_taxonomy(db_url):
    store = TagStore(db_url)
    discovered = store.write_taxonomy(taxonomy())
    version = store.profiles.register_dataset(FILMS, GENRES, PARAMS)
    assert version != discovered and store.current_version().id == discovered
    assert [(v.id, v.embedder, v.is_current) for v in store.versions()][-1] == (version, "dataset", False)
    again = store.profiles.register_dataset(FILMS, GENRES, {**PARAMS, "data": "moved/films"})  # same sha256
    assert again == version and len(store.versions()) == 2

    ids = [item.item_id for item in FILMS]
    tags, members = store.profiles.item_memberships(version, ids[::-1], allow_untagged=True)
    assert [(t.key, t.name, t.size) for t in tags] == [(0, "Action", 1), (1, "Animation", 1), (2, "Comedy", 2),
                                                        (3, "Crime", 1), (4, "Drama", 1), (5, "Thriller", 1)]
    assert members.tolist() == [[0, 0, 0, 0, 0, 0], [0, 0, 1, 0, 1, 0], [1, 0, 0, 1, 0, 1], [0, 1, 1, 0, 0, 0]]
    with pytest.raises(StoreError, match=r"1 of 4 items are not in taxonomy version .*'Untitled \(2000\)'"):
        store.profiles.item_memberships(version, ids)   # untagged = unknown to the version, unless allowed

    # a discovered version: one-hot from its assignments, the unassigned item known but untagged
    tags, members = store.profiles.item_memberships(discovered, ["4", "5", "1"])
    assert [t.name for t in tags] == ["体育", "财经", "科技"]
    assert members.tolist() == [[0, 0, 1], [0, 0, 0], [1, 0, 0]]
    with pytest.raises(StoreError, match=r"1 of 2 items are not in taxonomy version .*\['99'\]"):
        store.profiles.item_memberships(discovered, ["1", "99"])
    with pytest.raises(StoreError, match="no taxonomy version 42"):
        store.profiles.item_memberships(42, ["1"])


def test_an_item_id_that_means_another_item_is_refused(db_url):
    store = TagStore(db_url)
    store.write_taxonomy(taxonomy())
    films = [Item("1", "Toy Story (1995)"), Item("2", "Jumanji (1995)")]   # MovieLens-100K numbers its films
    with pytest.raises(StoreError, match=r"item id '1' is already in the tag database with another text"):
        store.profiles.register_dataset(films, [["Comedy"], ["Fantasy"]], PARAMS)
    assert len(store.versions()) == 1 and count(db_url, s.tags) == 3
    with pytest.raises(StoreError, match="item id 'x' appears more than once"):
        store.profiles.register_dataset([Item("x", "a"), Item("x", "a")], [["A"], ["B"]], PARAMS)


def test_profiles_round_trip_exactly_and_a_new_set_replaces_the_old(db_url):
    store = TagStore(db_url)
    version = store.profiles.register_dataset(FILMS, GENRES, PARAMS)
    weights = np.array([[1 / 3, 0.0, 2 / 3, 0.0, 0.0, 0.0],
                        [0.1, 0.2, 0.3, 0.15, 0.15, 0.1]])
    store.profiles.write(version, "history", ["u1", "u2"], list(range(6)), weights, params={"half_life": None})
    model = "output/recommend/x/best sha256:00ff"
    store.profiles.write(version, "predicted", ["u1", "u2"], [5, 4, 3, 2, 1, 0], weights, model=model)
    assert count(db_url, s.user_tag_profiles) == 2 * 8   # zeros are not stored

    history = TagStore(db_url).profiles.read(version, "history")  # a fresh connection reads what was committed
    assert history.user_ids == ["u1", "u2"] and np.array_equal(history.weights, weights)
    assert history.params == {"half_life": None} and history.model is None
    assert history.top("u1") == [("Comedy", 2 / 3), ("Action", 1 / 3)]
    predicted = store.profiles.read(version, "predicted", ["u2"])
    assert predicted.model == model and np.array_equal(predicted.weights, weights[1:, ::-1])  # keys reversed

    store.profiles.write(version, "history", ["u3"], [2], np.array([[1.0]]))
    assert store.profiles.read(version, "history").user_ids == ["u3"]
    assert count(db_url, s.profile_sets) == 2 and count(db_url, s.user_tag_profiles) == 8 + 1
    with pytest.raises(StoreError, match=r"1 users have no history profile in taxonomy version \d+ .*'u1'"):
        store.profiles.read(version, "history", ["u3", "u1"])
    with pytest.raises(StoreError, match="no history profile of user 'u9'"):
        store.profiles.read(version, "history").top("u9")


def test_bad_profiles_are_refused_and_change_nothing(db_url):
    store = TagStore(db_url)
    version = store.profiles.register_dataset(FILMS, GENRES, PARAMS)
    store.profiles.write(version, "history", ["u1"], [0, 1], np.array([[0.5, 0.5]]))
    bad = {"source must be one of history, predicted": dict(source="liked"),
           r"tag keys \[7\] are not in taxonomy version": dict(keys=[0, 7]),
           "tag keys repeat": dict(keys=[1, 1]),
           r"expected \(1 users, 2 tags\)": dict(weights=np.ones((2, 2))),
           "finite and non-negative": dict(weights=np.array([[np.nan, 0.0]])),
           "user id 'u2' appears more than once": dict(users=["u2", "u2"], weights=np.ones((2, 2))),
           "user id '' must be a non-empty string": dict(users=[""]),
           "no taxonomy version 42": dict(version=42)}
    for message, change in bad.items():
        args = {"version": version, "source": "history", "users": ["u2"], "keys": [0, 1],
                "weights": np.array([[0.25, 0.75]]), **change}
        with pytest.raises(StoreError, match=message):
            store.profiles.write(args["version"], args["source"], args["users"], args["keys"], args["weights"])
    assert store.profiles.read(version, "history").user_ids == ["u1"]
    with pytest.raises(StoreError, match="no predicted profiles for taxonomy version"):
        store.profiles.read(version, "predicted")
    with pytest.raises(IntegrityError), store.engine.begin() as conn:  # the database itself: one set per source
        conn.execute(insert(s.profile_sets).values(version_id=version, source="history", params={},
                                                   created=store.versions()[0].created))


def test_merging_adds_profile_weights_and_deleting_drops_them(db_url):
    store = TagStore(db_url)
    version = store.write_taxonomy(taxonomy())
    weights = np.array([[0.5, 0.3, 0.2], [0.0, 0.0, 1.0]])
    store.profiles.write(version, "history", ["u1", "u2"], [0, 1, 2], weights)
    store.profiles.write(version, "predicted", ["u1", "u2"], [0, 1, 2], weights[::-1])
    store.merge_tags([1, 2], name="财经科技")
    history = store.profiles.read(version, "history")
    assert [t.name for t in history.tags] == ["体育", "财经科技"]
    assert history.weights == pytest.approx(np.array([[0.5, 0.5], [0.0, 1.0]]))   # sums kept
    assert store.profiles.read(version, "predicted").weights == pytest.approx(np.array([[0.0, 1.0], [0.5, 0.5]]))
    store.delete_tag("体育")
    assert store.profiles.read(version, "history").weights == pytest.approx(np.array([[0.5], [1.0]]))
    assert count(db_url, s.user_tag_profiles) == 4


KILL_MID_WRITE = r"""
import os
import numpy as np
from paddle_tag.discover import store_profiles
from paddle_tag.discover.store import TagStore

store_profiles.CHUNK = 2
real_insert, calls = store_profiles.insert, []
def insert(table):
    if table is store_profiles.s.user_tag_profiles:
        calls.append(table)
        if len(calls) == 2:   # the old set is deleted, the new set and its first rows are written
            os._exit(17)      # the process dies: no rollback, no commit
    return real_insert(table)
store_profiles.insert = insert
store = TagStore({url!r})
store.profiles.write({version}, "history", ["a", "b", "c"], [0, 1], np.full((3, 2), 0.5))
"""


def test_a_writer_killed_mid_write_leaves_the_previous_profiles(db_url):
    store = TagStore(db_url)
    version = store.profiles.register_dataset(FILMS, GENRES, PARAMS)
    store.profiles.write(version, "history", ["u1"], [0, 1], np.array([[0.25, 0.75]]))
    proc = subprocess.run([sys.executable, "-c", KILL_MID_WRITE.format(url=db_url, version=version)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 17, proc.stderr[-2000:]
    back = TagStore(db_url).profiles.read(version, "history")
    assert back.user_ids == ["u1"] and back.weights[0, :2].tolist() == [0.25, 0.75]
    assert count(db_url, s.profile_sets) == 1 and count(db_url, s.user_tag_profiles) == 2


def _schema(url: str) -> dict:
    """Every table's columns, keys, indexes and unique constraints, as the database reports them."""
    engine = create_engine(url)
    found = inspect(engine)
    schema = {table: {"columns": [(c["name"], str(c["type"]), c["nullable"]) for c in found.get_columns(table)],
                      "pk": found.get_pk_constraint(table)["constrained_columns"],
                      "fks": sorted((tuple(f["constrained_columns"]), f["referred_table"])
                                    for f in found.get_foreign_keys(table)),
                      "indexes": sorted((i["name"], tuple(i["column_names"]), bool(i["unique"]))
                                        for i in found.get_indexes(table)),
                      "unique": sorted(u["name"] for u in found.get_unique_constraints(table))}
              for table in sorted(found.get_table_names())}
    engine.dispose()
    return schema


def test_a_schema_version_1_database_is_upgraded_in_place(tmp_path):
    old = tmp_path / "v1.db"
    with sqlite3.connect(old) as conn:  # written by paddle_tag at schema version 1 (see the dump's header)
        conn.executescript(V1_DUMP.read_text(encoding="utf-8"))
    assert not set(NEW_TABLES) & set(inspect(create_engine(f"sqlite:///{old}")).get_table_names())
    store = TagStore(old)
    assert store.schema_version == SCHEMA_VERSION == 2
    versions = create_engine(f"sqlite:///{old}").connect().execute(select(s.schema_version.c.version)).scalars()
    assert list(versions) == [1, 2]
    # what version 1 held is intact, the edit and its audit row included
    assert [t.name for t in store.list_tags()] == ["体育·比赛·球队", "财经·股市·央行", "科技·手机·芯片"]
    assert store.audit_log()[0]["actor"] == "fixture" and store.export_json()["items"] == 7
    # and the upgraded database is the schema a new one is created with
    TagStore(tmp_path / "new.db").close()
    assert _schema(f"sqlite:///{old}") == _schema(f"sqlite:///{tmp_path / 'new.db'}")
    store.profiles.write(store.current_version().id, "history", ["u1"], [2], np.array([[1.0]]))
    assert store.profiles.read(store.current_version().id, "history").top("u1") == [("科技·手机·芯片", 1.0)]


def test_a_version_1_database_is_upgraded_on_every_dialect(db_url):
    engine = create_engine(db_url)
    with engine.begin() as conn:  # the version-1 tables (all but the new ones), stamped 1
        s.metadata.create_all(conn, tables=[t for t in s.metadata.sorted_tables if t.name not in NEW_TABLES])
        conn.execute(insert(s.schema_version).values(version=1, description="created at the newest schema",
                                                     applied=datetime(2024, 1, 1, tzinfo=timezone.utc)))
    engine.dispose()
    store = TagStore(db_url)
    assert store.schema_version == 2 and set(NEW_TABLES) <= set(inspect(store.engine).get_table_names())
    version = store.write_taxonomy(taxonomy())
    store.profiles.write(version, "predicted", ["u1"], [0, 1], np.array([[0.5, 0.5]]), model="m")
    assert store.profiles.read(version, "predicted").model == "m"
