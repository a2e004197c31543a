"""The tag database against a real SQLite file (and PostgreSQL when ``PADDLE_TAG_PG_URL`` names a scratch database):
round trips, versions, transactional writes (a failing write and a killed writer), audited edits, schema versions."""
from __future__ import annotations

import os
import subprocess
import sys
from datetime import datetime, timezone

import numpy as np
import pytest
from sqlalchemy import create_engine, func, inspect, select, text, update
from sqlalchemy.exc import IntegrityError

from paddle_tag.discover import store_schema as s
from paddle_tag.discover.store import TagStore
from paddle_tag.discover.store_migrations import SCHEMA_VERSION, Migration, migrate
from paddle_tag.discover.taxonomy import Assignment, Item, Tag, Taxonomy
from paddle_tag.errors import StoreError

PG_URL = os.environ.get("PADDLE_TAG_PG_URL")  # e.g. postgresql://postgres@127.0.0.1:55432/paddle_tag_test


def unit(*values: float) -> np.ndarray:
    v = np.asarray(values, dtype=np.float32)
    return v / np.linalg.norm(v)


def sample_taxonomy(seed: int = 0) -> Taxonomy:
    """Three tags with irrational-looking float32 centroids (exactness matters) and six real headlines."""
    rng = np.random.default_rng(seed)
    c = rng.normal(size=(3, 8)).astype(np.float32)
    c /= np.linalg.norm(c, axis=1, keepdims=True)
    tags = [Tag(0, "体育·比赛·球队", [("比赛", 0.42), ("球队", 0.31), ("联赛", 0.2)], c[0], 3),
            Tag(1, "财经·股市·央行", [("股市", 0.5), ("央行", 0.25)], c[1], 2),
            Tag(2, "科技·手机", [("手机", 0.61), ("芯片", 0.12)], c[2], 1)]
    items = [Item("1", "皇马客场三比一击败巴萨 继续领跑西甲积分榜"), Item("2", "湖人队主场险胜勇士"),
             Item("3", "中超联赛第五轮 国安战平申花"), Item("4", "央行宣布下调存款准备金率0.5个百分点"),
             Item("5", "沪指收涨1.2% 券商股领涨"), Item("6", "新款折叠屏手机发布 搭载自研芯片"),
             Item("7", "今日天气晴转多云")]
    assignments = [Assignment("1", 0, 0.91), Assignment("2", 0, 0.83), Assignment("3", 0, 0.77),
                   Assignment("4", 1, 0.88), Assignment("5", 1, 0.8), Assignment("6", 2, 0.9),
                   Assignment("7", None, 0.12)]
    return Taxonomy(tags, items, assignments, embedder="/models/multilingual-e5-small",
                    params={"k": 3, "reduce": "pca", "seed": seed, "备注": "测试"})


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


def test_round_trip_is_exact(db_url):
    tax = sample_taxonomy()
    with TagStore(db_url) as store:
        assert store.current_taxonomy() is None
        store.write_taxonomy(tax)
    back = TagStore(db_url).current_taxonomy()  # a fresh connection reads what was committed
    assert [(t.key, t.name, t.keywords, t.size) for t in back.tags] == [(t.key, t.name, t.keywords, t.size)
                                                                         for t in tax.tags]
    for mine, theirs in zip(tax.tags, back.tags):
        assert theirs.centroid.dtype == np.float32 and np.array_equal(theirs.centroid, mine.centroid)
    assert back.items == tax.items and back.assignments == tax.assignments
    assert (back.embedder, back.params) == (tax.embedder, tax.params)
    assert back.outlier_share() == pytest.approx(1 / 7)


def test_a_new_version_becomes_current_and_only_one_is(db_url):
    store = TagStore(db_url)
    first = store.write_taxonomy(sample_taxonomy(0))
    second_tax = sample_taxonomy(1)
    second_tax.tags[0].name = "足球"
    second = store.write_taxonomy(second_tax)
    assert second > first
    assert [(v.id, v.is_current) for v in store.versions()] == [(first, False), (second, True)]
    assert store.current_taxonomy().tags[0].name == "足球"
    assert [t.name for t in store.list_tags()] == ["足球", "财经·股市·央行", "科技·手机"]
    # items are shared across versions: inserted once, first text kept
    assert count(db_url, s.items) == 7
    # the database itself refuses a second current version
    with pytest.raises(IntegrityError), store.engine.begin() as conn:
        conn.execute(update(s.taxonomy_versions).where(s.taxonomy_versions.c.id == first).values(is_current=True))


def test_a_failing_write_leaves_the_previous_taxonomy_current(db_url):
    store = TagStore(db_url)
    first = store.write_taxonomy(sample_taxonomy(0))
    bad = sample_taxonomy(1)
    bad.items.append(Item("8", "全新条目不会留下"))
    bad.assignments.append(Assignment("8", 9, 0.5))  # tag key 9 does not exist: fails after tags and items
    with pytest.raises(StoreError, match="tag key 9"):
        store.write_taxonomy(bad)
    assert store.current_version().id == first and len(store.versions()) == 1
    assert count(db_url, s.tags) == 3 and count(db_url, s.items) == 7 and count(db_url, s.assignments) == 7
    back = store.current_taxonomy()
    assert np.array_equal(back.tags[1].centroid, sample_taxonomy(0).tags[1].centroid)


KILL_MID_WRITE = r"""
import os, sys
sys.path.insert(0, {tests!r})
from paddle_tag.discover.store import TagStore
from test_store import sample_taxonomy

original = TagStore._insert_assignments
def die_after_half(conn, version_id, tag_ids, assignments, *args):
    original(conn, version_id, tag_ids, assignments[:3], *args)   # tags, items and some assignments written
    os._exit(17)                                                   # the process dies, no rollback, no commit
TagStore._insert_assignments = staticmethod(die_after_half)
TagStore({url!r}).write_taxonomy(sample_taxonomy(1))
"""


def test_a_writer_killed_mid_write_leaves_the_previous_taxonomy_intact(db_url, tmp_path):
    store = TagStore(db_url)
    first = store.write_taxonomy(sample_taxonomy(0))
    before = store.export_json()
    script = KILL_MID_WRITE.format(tests=os.path.dirname(__file__), url=db_url)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 17, proc.stderr[-2000:]
    reopened = TagStore(db_url)
    assert reopened.current_version().id == first and len(reopened.versions()) == 1
    assert reopened.export_json() == before
    assert count(db_url, s.tags) == 3 and count(db_url, s.assignments) == 7
    assert reopened.write_taxonomy(sample_taxonomy(2)) > first  # and the database still takes writes


def test_edits_change_the_current_version_and_are_audited(db_url):
    store = TagStore(db_url)
    store.write_taxonomy(sample_taxonomy())
    tax = sample_taxonomy()
    renamed = store.rename_tag("体育·比赛·球队", "体育", actor="编辑小王")
    assert renamed.key == 0 and renamed.name == "体育" and renamed.updated >= renamed.created
    merged = store.merge_tags([1, "科技·手机"], name="财经科技", actor="编辑小王")
    expected = 2 * tax.tags[1].centroid.astype(np.float64) + 1 * tax.tags[2].centroid
    assert merged.key == 1 and merged.size == 3
    np.testing.assert_allclose(merged.centroid, expected / np.linalg.norm(expected), atol=1e-6)
    # keyword weights: size-weighted means (2/3, 1/3), as many as the longer list
    assert [w for w, _ in merged.keywords] == ["股市", "手机"]
    assert [x for _, x in merged.keywords] == pytest.approx([0.5 * 2 / 3, 0.61 / 3])
    deleted = store.delete_tag("0")
    assert deleted.name == "体育"
    back = store.current_taxonomy()
    assert [(t.key, t.name) for t in back.tags] == [(1, "财经科技")]
    by_item = {a.item_id: a.tag_key for a in back.assignments}
    assert by_item == {"1": None, "2": None, "3": None, "4": 1, "5": 1, "6": 1, "7": None}
    rows = store.audit_log()
    assert [r["action"] for r in rows] == ["delete", "merge", "rename"]
    assert rows[2]["actor"] == "编辑小王" and rows[2]["old"] == {"name": "体育·比赛·球队"} and rows[2]["new"] == {"name": "体育"}
    assert [t["key"] for t in rows[1]["old"]] == [1, 2] and rows[1]["new"]["name"] == "财经科技"
    assert rows[0]["old"]["name"] == "体育" and rows[0]["new"] is None and rows[0]["actor"]
    assert datetime.fromisoformat(rows[0]["at"]) <= datetime.now(timezone.utc)


def test_bad_edits_change_nothing(db_url):
    store = TagStore(db_url)
    store.write_taxonomy(sample_taxonomy())
    with pytest.raises(StoreError, match="no tag '娱乐'"):
        store.rename_tag("娱乐", "明星")
    with pytest.raises(StoreError, match="cannot be empty"):
        store.rename_tag(0, "   ")
    with pytest.raises(StoreError, match="two or more different"):
        store.merge_tags([0, "体育·比赛·球队"])
    store.rename_tag(2, "财经·股市·央行")
    with pytest.raises(StoreError, match="2 tags are named"):
        store.show_tag("财经·股市·央行")
    assert len(store.audit_log()) == 1
    assert store.show_tag(1, samples=1)["samples"] == [{"item_id": "4", "text": "央行宣布下调存款准备金率0.5个百分点",
                                                        "score": 0.88}]


def test_export_json(db_url):
    store = TagStore(db_url)
    with pytest.raises(StoreError, match="no taxonomy"):
        store.export_json()
    version = store.write_taxonomy(sample_taxonomy())
    data = store.export_json()
    assert data["version"]["id"] == version and data["schema_version"] == SCHEMA_VERSION
    assert (data["items"], data["unassigned"]) == (7, 1)
    assert data["tags"][0]["name"] == "体育·比赛·球队" and data["tags"][0]["keywords"][0] == ["比赛", 0.42]
    assert np.array_equal(np.asarray(data["tags"][2]["centroid"], np.float32), sample_taxonomy().tags[2].centroid)
    assert "centroid" not in store.export_json(centroids=False)["tags"][0]


def test_schema_versions_migrate_forward_and_refuse_newer(db_url):
    TagStore(db_url).write_taxonomy(sample_taxonomy())
    engine = create_engine(db_url)
    add_note = Migration(SCHEMA_VERSION + 1, "tags.note",
                         lambda conn: conn.execute(text("ALTER TABLE tags ADD COLUMN note VARCHAR(100)")))
    assert migrate(engine, "test db", migrations=[add_note]) == SCHEMA_VERSION + 1
    assert "note" in [c["name"] for c in inspect(engine).get_columns("tags")]
    engine.dispose()
    # this code knows only SCHEMA_VERSION: the upgraded database is refused, clearly
    with pytest.raises(StoreError, match=f"schema version {SCHEMA_VERSION + 1} is newer than this paddle_tag"):
        TagStore(db_url)


def test_opening_missing_or_foreign_databases(tmp_path):
    with pytest.raises(StoreError, match="no tag database at"):
        TagStore(tmp_path / "missing.db", create=False)
    assert not (tmp_path / "missing.db").exists()
    foreign = tmp_path / "foreign.db"
    engine = create_engine(f"sqlite:///{foreign}")
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE tags (x INTEGER)"))
    engine.dispose()
    with pytest.raises(StoreError, match="not a paddle_tag tag database"):
        TagStore(foreign)
    with pytest.raises(StoreError, match="no driver"):
        TagStore("nosuchdialect://x/y")
    empty = tmp_path / "empty.db"
    TagStore(empty).close()  # a new database: created at the newest schema, stamped
    engine = create_engine(f"sqlite:///{empty}")
    with engine.connect() as conn:
        assert conn.execute(select(s.schema_version.c.version)).scalars().all() == [SCHEMA_VERSION]
    engine.dispose()


def test_stale_version_writes_are_refused(db_url):
    store = TagStore(db_url)
    old = store.write_taxonomy(sample_taxonomy(0))
    store.write_taxonomy(sample_taxonomy(1))
    with pytest.raises(StoreError, match="no longer the current one"):
        store.record_assignments(old, [Item("9", "新条目")], [Assignment("9", 0, 0.9)])
    assert count(db_url, s.items) == 7
