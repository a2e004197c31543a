"""Incremental assignment: nearest centroid above a threshold, the mini-batch centroid rule, the report and its
re-discovery flag, written to a real SQLite tag database; tools/assign.py end to end with the real e5 encoder."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
from helpers import REPO, run_tool

from paddle_tag.discover.assign import (AssignParams, assign_new_items, minibatch_update, nearest_tags,
                                        read_new_items)
from paddle_tag.discover.store import TagStore
from paddle_tag.discover.taxonomy import Assignment, Item, Tag, Taxonomy
from paddle_tag.errors import ConfigError, DataError, StoreError

D = 8
E = np.eye(D, dtype=np.float32)


def near(axis: int, tilt_axis: int, tilt: float) -> np.ndarray:
    """A unit vector at angle atan(tilt) from axis ``axis`` towards ``tilt_axis``."""
    v = E[axis] + tilt * E[tilt_axis]
    return (v / np.linalg.norm(v)).astype(np.float32)


def store_with_taxonomy(tmp_path, sizes=(10, 4)) -> TagStore:
    """Two tags on the first two axes (体育 with ``sizes[0]`` items, 财经 with ``sizes[1]``)."""
    tags = [Tag(0, "体育", [("比赛", 0.4), ("球队", 0.3)], E[0].copy(), sizes[0]),
            Tag(1, "财经", [("股市", 0.5)], E[1].copy(), sizes[1])]
    items = [Item("d1", "皇马客场三比一击败巴萨"), Item("d2", "央行宣布下调存款准备金率")]
    store = TagStore(tmp_path / "tags.db")
    store.write_taxonomy(Taxonomy(tags, items, [Assignment("d1", 0, 0.9), Assignment("d2", 1, 0.9)],
                                  embedder="/models/e5", params={"k": 2}))
    return store


def test_nearest_tags_by_cosine_above_the_threshold():
    centroids = E[:2]
    rows = np.stack([near(0, 3, 0.2), near(1, 4, 0.5), E[5], near(1, 0, 0.9)])
    labels, scores = nearest_tags(rows, centroids, threshold=0.5)
    assert labels.tolist() == [0, 1, -1, 1]
    np.testing.assert_allclose(scores, [1 / np.sqrt(1.04), 1 / np.sqrt(1.25), 0.0, 1 / np.sqrt(1.81)], rtol=1e-6)
    empty_labels, empty_scores = nearest_tags(rows, np.zeros((0, D), np.float32), 0.5)
    assert empty_labels.tolist() == [-1] * 4 and empty_scores.tolist() == [0.0] * 4


def test_minibatch_update_follows_the_rule_and_leaves_other_tags_alone():
    centroids, sizes = E[:3].copy(), np.array([6, 2, 5])
    rows = np.stack([near(0, 3, 0.5), near(0, 4, 0.5), E[1], E[6]])
    labels = np.array([0, 0, 1, -1])
    new, new_sizes = minibatch_update(centroids, sizes, rows, labels)
    eta = 2 / (6 + 2)
    expected = (1 - eta) * E[0] + eta * rows[:2].mean(axis=0)
    np.testing.assert_allclose(new[0], expected / np.linalg.norm(expected), atol=1e-7)
    assert np.array_equal(new[1], E[1]) and np.array_equal(new[2], centroids[2])  # same direction; untouched
    assert new_sizes.tolist() == [8, 3, 5] and new.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(new, axis=1), 1.0, atol=1e-6)


def test_assign_new_items_writes_assignments_and_moves_centroids(tmp_path):
    store = store_with_taxonomy(tmp_path)
    items = [Item("n1", "湖人队主场险胜勇士"), Item("n2", "中超联赛国安战平申花"), Item("n3", "沪指收涨券商股领涨"),
             Item("n4", "今日天气晴转多云")]
    emb = np.stack([near(0, 2, 0.3), near(0, 3, 0.3), near(1, 2, 0.1), E[7]])
    report = assign_new_items(store, items, emb, AssignParams(threshold=0.5, max_unassigned_share=0.5,
                                                              max_drift=0.05))
    assert (report.items, report.assigned, report.unassigned, report.skipped) == (4, 3, 1, 0)
    assert report.unassigned_share == report.cumulative_unassigned_share == 0.25
    assert {t["name"]: t["received"] for t in report.tags} == {"体育": 2, "财经": 1}
    # the stored centroids moved by the mini-batch rule: η = 2 / (10 + 2) for 体育, 1 / (4 + 1) for 财经
    tags = {t.key: t for t in store.list_tags()}
    sport = (1 - 2 / 12) * E[0] + (2 / 12) * emb[:2].mean(axis=0)
    np.testing.assert_allclose(tags[0].centroid, sport / np.linalg.norm(sport), atol=1e-6)
    assert (tags[0].size, tags[1].size) == (12, 5)
    assert np.array_equal(tags[0].initial_centroid, E[0])  # what drift is measured against stays
    drift = {t["name"]: t["drift_since_discovery"] for t in report.tags}
    assert drift["体育"] == pytest.approx(1 - float(tags[0].centroid @ E[0]), abs=1e-6)
    assert not report.rediscovery_due and report.reasons == []
    back = store.current_taxonomy()
    assert [a.item_id for a in back.assignments] == ["d1", "d2", "n1", "n2", "n3", "n4"]
    assert [a.tag_key for a in back.assignments][2:] == [0, 0, 1, None]
    # the same items again: skipped, nothing moves twice
    again = assign_new_items(store, items, emb, AssignParams(threshold=0.5))
    assert (again.items, again.skipped) == (0, 4)
    assert np.array_equal(store.list_tags()[0].centroid, tags[0].centroid)


def test_rediscovery_is_due_when_too_much_stays_unassigned_or_centroids_drift(tmp_path):
    store = store_with_taxonomy(tmp_path, sizes=(2, 2))
    far = [Item(f"far{i}", f"完全陌生的新话题{i}") for i in range(3)]
    report = assign_new_items(store, far, np.stack([E[5], E[6], E[7]]), AssignParams(threshold=0.5))
    assert report.unassigned_share == 1.0 and report.rediscovery_due
    assert "unassigned share 100.0%" in report.reasons[0]

    store2 = store_with_taxonomy(tmp_path / "b", sizes=(2, 2))
    pulled = [Item(f"p{i}", f"体育新闻{i}") for i in range(6)]  # 6 items at 40° pull a 2-item tag far
    report2 = assign_new_items(store2, pulled, np.stack([near(0, 3, 0.84)] * 6), AssignParams(threshold=0.5))
    assert report2.unassigned == 0 and report2.rediscovery_due
    assert report2.max_drift > 0.05 and "tag 0 (体育) drifted" in report2.reasons[0]
    assert json.loads(report2.to_json())["rediscovery_due"] is True


def test_bad_input(tmp_path):
    store = store_with_taxonomy(tmp_path)
    with pytest.raises(DataError, match="3-d embeddings, the taxonomy 8-d"):
        assign_new_items(store, [Item("x", "新闻")], np.ones((1, 3), np.float32) / np.sqrt(3))
    with pytest.raises(DataError, match="expected embeddings of shape"):
        assign_new_items(store, [Item("x", "新闻"), Item("y", "新闻二")], E[:1])
    with pytest.raises(StoreError, match="no taxonomy"):
        assign_new_items(TagStore(tmp_path / "empty.db"), [Item("x", "新闻")], E[:1])
    with pytest.raises(ValueError, match="threshold"):
        AssignParams(threshold=2.0)
    src = tmp_path / "new.jsonl"
    src.write_text('{"text": "央行降准", "id": 7}\n\n{"text": "  皇马获胜 "}\n', encoding="utf-8")
    items = read_new_items(src)
    assert [i.item_id for i in items][0] == "7" and items[1].item_id.startswith("sha1:") and items[1].text == "皇马获胜"
    src.write_text('{"text": "   "}\n', encoding="utf-8")
    with pytest.raises(DataError, match="new.jsonl:1: empty text"):
        read_new_items(src)
    src.write_text("", encoding="utf-8")
    with pytest.raises(DataError, match="the file is empty"):
        read_new_items(src)


def test_assign_tool_errors(tmp_path):
    """User errors of tools/assign.py (in-process: run_cli turns these into "error: ..." and exit 2)."""
    spec = importlib.util.spec_from_file_location("assign_tool", REPO / "tools" / "assign.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    cfg = tmp_path / "discover.yaml"
    cfg.write_text(f"Global:\n  output_dir: {tmp_path / 'run'}\nDiscover:\n  embedder: tfidf\n", encoding="utf-8")
    src = tmp_path / "new.jsonl"
    src.write_text('{"text": "央行降准"}\n', encoding="utf-8")
    with pytest.raises(StoreError, match="no tag database at"):
        tool.main(["-c", str(cfg), "--input", str(src)])
    TagStore(tmp_path / "run" / "tags.db").write_taxonomy(Taxonomy([], [], [], embedder="tfidf"))
    with pytest.raises(ConfigError, match="needs an encoder embedder"):
        tool.main(["-c", str(cfg), "--input", str(src), "--threshold", "0.2"])
    with pytest.raises(ConfigError, match="threshold"):
        tool.main(["-c", str(cfg), "--input", str(src), "--threshold", "1.5"])
    src.write_text('{"text": ""}\n', encoding="utf-8")
    with pytest.raises(DataError, match="empty text"):
        tool.main(["-c", str(cfg), "--input", str(src)])


def test_assign_tool_end_to_end_with_e5(tmp_path):
    """The real path: e5 embeds the new items, they go to the one tag (threshold -1), the DB and report say so."""
    from paddle_tag.models.pretrained import models_dir, resolve_pretrained

    if not (models_dir() / "multilingual-e5-small").is_dir():
        pytest.skip("multilingual-e5-small is not in the local models cache (make e5)")
    embedder = str(Path(resolve_pretrained("multilingual-e5-small")).resolve())
    db = tmp_path / "run" / "tags.db"
    start = np.full(384, 1 / np.sqrt(384), np.float32)
    TagStore(db).write_taxonomy(Taxonomy([Tag(0, "新闻", [("新闻", 1.0)], start, 5)], [], [], embedder=embedder))
    cfg = tmp_path / "discover.yaml"
    cfg.write_text(f"Global:\n  output_dir: {tmp_path / 'run'}\n", encoding="utf-8")
    src = tmp_path / "new.jsonl"
    src.write_text('{"text": "皇马客场三比一击败巴萨", "id": "a"}\n{"text": "央行宣布下调存款准备金率"}\n',
                   encoding="utf-8")
    proc = run_tool("assign.py", "-c", str(cfg), "--input", str(src), "--threshold", "-1",
                    "--report", str(tmp_path / "report.json"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout[proc.stdout.index("{"):])
    assert (report["items"], report["assigned"], report["tags"][0]["size"]) == (2, 2, 7)
    assert json.loads((tmp_path / "report.json").read_text(encoding="utf-8")) == report
    store = TagStore(db)
    assert [a.item_id for a in store.current_taxonomy().assignments][0] == "a"
    assert not np.array_equal(store.list_tags()[0].centroid, start)
    assert report["params"]["threshold"] == -1.0
