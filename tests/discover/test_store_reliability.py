"""Item ids that collide with what the tag database holds: refused before anything is written, or replaced on
explicit request (``--update``), never silently skipped. The same item sent twice is left alone (a batch can be
re-run after a failure without pulling the centroids twice).

Writers killed mid-transaction and failed writes are covered in ``test_store.py`` (SQLite and PostgreSQL).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from helpers import run_tool

from paddle_tag.discover.assign import AssignParams, assign_new_items
from paddle_tag.discover.store import TagStore
from paddle_tag.discover.taxonomy import Assignment, Item, Tag, Taxonomy
from paddle_tag.errors import DataError, StoreError

D = 8
E = np.eye(D, dtype=np.float32)


def store_with_two_tags(path: Path, embedder: str = "/models/e5", dim: int = D) -> TagStore:
    """体育 (key 0, 3 items) and 财经 (key 1, 2 items) on the first two axes; item "7" is a 体育 item."""
    axes = np.eye(dim, dtype=np.float32)
    items = [Item("7", "皇马客场三比一击败巴萨"), Item("8", "湖人队主场险胜勇士"), Item("9", "中超国安战平申花"),
             Item("10", "央行宣布下调存款准备金率"), Item("11", "沪指收涨券商股领涨")]
    tags = [Tag(0, "体育", [("比赛", 0.4)], axes[0].copy(), 3), Tag(1, "财经", [("股市", 0.5)], axes[1].copy(), 2)]
    assignments = [Assignment(i.item_id, 0 if n < 3 else 1, 0.9) for n, i in enumerate(items)]
    store = TagStore(path)
    store.write_taxonomy(Taxonomy(tags, items, assignments, embedder=embedder, params={"k": 2}))
    return store


def snapshot(store: TagStore) -> dict:
    return {"db": store.export_json(), "texts": store.item_texts(["7", "8", "9", "10", "11", "n1"])}


def test_an_id_stored_with_another_text_is_refused_and_nothing_is_written(tmp_path):
    store = store_with_two_tags(tmp_path / "tags.db")
    before = snapshot(store)
    with pytest.raises(DataError, match=r"1 of 2 item ids are already in the tag database with another text \('7'\)"
                                        r".*--update"):
        assign_new_items(store, [Item("n1", "国足热身赛"), Item("7", "新能源车销量创新高")], E[[0, 1]])
    assert snapshot(store) == before


def test_update_replaces_the_text_and_moves_the_item_to_its_new_tag(tmp_path):
    store = store_with_two_tags(tmp_path / "tags.db")
    centroids = {t.key: t.centroid.copy() for t in store.list_tags()}
    report = assign_new_items(store, [Item("7", "新能源车销量创新高")], E[[1]], AssignParams(threshold=0.5),
                              update=True)
    assert (report.items, report.updated, report.assigned, report.skipped) == (1, 1, 1, 0)
    assert store.item_texts(["7"]) == {"7": "新能源车销量创新高"}
    assert store.assignment_tags(store.current_version().id, ["7"]) == {"7": 1}
    tags = {t.key: t for t in store.list_tags()}
    assert (tags[0].size, tags[1].size) == (2, 3)  # the item left 体育 for 财经
    for key in (0, 1):  # its earlier embedding already moved the centroids once: they stay
        np.testing.assert_array_equal(tags[key].centroid, centroids[key])


def test_the_same_item_again_is_left_alone(tmp_path):
    store = store_with_two_tags(tmp_path / "tags.db")
    first = assign_new_items(store, [Item("n1", "国足热身赛")], E[[0]], AssignParams(threshold=0.5))
    before = snapshot(store)
    again = assign_new_items(store, [Item("n1", "国足热身赛"), Item("7", "皇马客场三比一击败巴萨")], E[[0, 0]],
                             AssignParams(threshold=0.5))
    assert (first.items, again.items, again.skipped) == (1, 0, 2)
    assert snapshot(store) == before


def test_a_new_discovery_whose_ids_collide_with_stored_items_is_refused(tmp_path):
    store = store_with_two_tags(tmp_path / "tags.db")
    before = snapshot(store)
    other_file = Taxonomy([Tag(0, "汽车", [("销量", 1.0)], E[2].copy(), 1)], [Item("7", "新能源车销量创新高")],
                          [Assignment("7", 0, 0.9)], embedder="/models/e5", params={"k": 1})
    with pytest.raises(StoreError, match=r"1 item ids are already stored with another text \('7'\); nothing was "
                                         r"written.*unique \"id\"s"):
        store.write_taxonomy(other_file)
    assert snapshot(store) == before


def test_assign_tool_refuses_a_colliding_id_then_updates_it_on_request(tiny_bert_dir, tmp_path):
    embedder = str(Path(tiny_bert_dir).resolve())
    db = tmp_path / "run" / "tags.db"
    db.parent.mkdir()
    store = store_with_two_tags(db, embedder=embedder, dim=32)
    before = snapshot(store)
    cfg = tmp_path / "discover.yaml"
    cfg.write_text(f"Global:\n  output_dir: {tmp_path / 'run'}\nDiscover:\n  embedder: e5\n  model: {embedder}\n",
                   encoding="utf-8")
    src = tmp_path / "new.jsonl"
    src.write_text(json.dumps({"id": 7, "text": "新能源车销量创新高"}, ensure_ascii=False) + "\n", encoding="utf-8")
    proc = run_tool("assign.py", "-c", str(cfg), "--input", str(src))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert "already in the tag database with another text ('7')" in proc.stderr
    assert snapshot(TagStore(db)) == before
    proc = run_tool("assign.py", "-c", str(cfg), "--input", str(src), "--update", "--threshold", "-1")
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout[proc.stdout.index("{"):])
    assert (report["items"], report["updated"]) == (1, 1)
    reopened = TagStore(db)
    assert reopened.item_texts(["7"]) == {"7": "新能源车销量创新高"}
    assert sum(t.size for t in reopened.list_tags()) == 5  # moved, not counted twice
