"""tools/tags.py against a real SQLite file: list / show / rename / merge / delete / export / audit, and user errors
(exit 2, one line, no traceback). A few runs go through a subprocess, the rest call the script's ``main`` in-process
(the same click group and error handling, without paying for a Python start each time)."""
from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest
from helpers import REPO, run_tool

from paddle_tag.discover.store import TagStore
from paddle_tag.discover.taxonomy import Assignment, Item, Tag, Taxonomy

_spec = importlib.util.spec_from_file_location("tags_tool", REPO / "tools" / "tags.py")
tags_tool = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(tags_tool)


def unit(*values: float) -> np.ndarray:
    v = np.asarray(values, dtype=np.float32)
    return v / np.linalg.norm(v)


@pytest.fixture
def run_dir(tmp_path):
    """A discovery output directory with tags.db holding three tags and five real headlines."""
    tags = [Tag(0, "体育·比赛", [("比赛", 0.42), ("球队", 0.3)], unit(1, 0.1, 0, 0), 2),
            Tag(1, "财经·股市", [("股市", 0.5), ("央行", 0.2)], unit(0, 1, 0.2, 0), 2),
            Tag(2, "足球·联赛", [("联赛", 0.6)], unit(0.9, 0, 0, 0.4), 1)]
    items = [Item("1", "皇马客场三比一击败巴萨"), Item("2", "湖人队主场险胜勇士"), Item("3", "央行宣布下调存款准备金率"),
             Item("4", "沪指收涨 券商股领涨"), Item("5", "中超联赛第五轮 国安战平申花")]
    assignments = [Assignment("1", 0, 0.9), Assignment("2", 0, 0.7), Assignment("3", 1, 0.95),
                   Assignment("4", 1, 0.8), Assignment("5", 2, 0.85)]
    run = tmp_path / "discover" / "news"
    TagStore(run / "tags.db").write_taxonomy(Taxonomy(tags, items, assignments, embedder="/models/e5"))
    return run


def cli(capsys, *args: str) -> tuple[int, str, str]:
    code = tags_tool.main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def assert_user_error(code: int, err: str, fragment: str) -> None:
    assert code == 2, err
    assert "Traceback" not in err and err.startswith("error: ") and err.count("\n") == 1, err
    assert fragment in err, err


def test_list_and_rename_through_the_script(run_dir):
    proc = run_tool("tags.py", "--run", str(run_dir), "list")
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("taxonomy version 1 ") and "3 tags" in lines[0]
    assert lines[1].split() == ["0", "2", "体育·比赛", "[比赛", "球队]"]
    proc = run_tool("tags.py", "--db", f"sqlite:///{run_dir / 'tags.db'}", "--user", "编辑甲", "rename", "1", "财经")
    assert proc.returncode == 0 and "财经·股市 → 财经" in proc.stdout, proc.stderr[-2000:]
    store = TagStore(run_dir / "tags.db")
    assert store.list_tags()[1].name == "财经"
    assert store.audit_log()[0] | {"at": None} == {"id": 1, "at": None, "actor": "编辑甲", "action": "rename",
                                                    "version_id": 1, "tag_key": 1, "old": {"name": "财经·股市"},
                                                    "new": {"name": "财经"}}


def test_a_user_error_through_the_script(run_dir):
    proc = run_tool("tags.py", "--run", str(run_dir), "show", "娱乐")
    assert_user_error(proc.returncode, proc.stderr, "no tag '娱乐' in the current taxonomy")


def test_show_merge_delete_export_audit(run_dir, capsys, tmp_path):
    db = str(run_dir / "tags.db")
    code, out, _ = cli(capsys, "--db", db, "show", "体育·比赛", "--samples", "1", "--json")
    shown = json.loads(out)
    assert code == 0 and shown["keywords"] == [["比赛", 0.42], ["球队", 0.3]]
    assert shown["samples"] == [{"item_id": "1", "text": "皇马客场三比一击败巴萨", "score": 0.9}]
    code, out, _ = cli(capsys, "--db", db, "show", "0")
    assert code == 0 and "keywords: 比赛 0.420, 球队 0.300" in out and "0.700  湖人队主场险胜勇士" in out

    code, out, _ = cli(capsys, "--db", db, "merge", "0", "足球·联赛", "--name", "体育")
    assert code == 0 and "→ [0] 体育 (3 items)" in out
    code, out, _ = cli(capsys, "--db", db, "delete", "财经·股市")
    assert code == 0 and "deleted [1] 财经·股市; its 2 items are unassigned" in out
    code, out, _ = cli(capsys, "--db", db, "list", "--json")
    assert code == 0 and [(t["key"], t["name"], t["size"]) for t in json.loads(out)] == [(0, "体育", 3)]

    target = tmp_path / "taxonomy.json"
    code, out, _ = cli(capsys, "--db", db, "export", "--output", str(target))
    data = json.loads(target.read_text(encoding="utf-8"))
    assert code == 0 and "1 tags →" in out
    assert (data["items"], data["unassigned"]) == (5, 2) and len(data["tags"][0]["centroid"]) == 4
    code, out, _ = cli(capsys, "--db", db, "export", "--no-centroids")
    assert code == 0 and "centroid" not in json.loads(out)["tags"][0]

    code, out, _ = cli(capsys, "--db", db, "audit")
    rows = [json.loads(line) for line in out.splitlines()]
    assert [r["action"] for r in rows] == ["delete", "merge"] and rows[1]["new"]["name"] == "体育"


def test_bad_arguments(run_dir, capsys, tmp_path):
    db = str(run_dir / "tags.db")
    assert_user_error(*cli(capsys, "--db", str(tmp_path / "nothing.db"), "list")[::2], "no tag database at")
    assert not (tmp_path / "nothing.db").exists()
    assert_user_error(*cli(capsys, "list")[::2], "--db URL|PATH or --run")
    assert_user_error(*cli(capsys, "--db", db, "merge", "0")[::2], "at least two tags")
    assert_user_error(*cli(capsys, "--db", db, "merge", "0", "7")[::2], "no tag '7'")
    assert_user_error(*cli(capsys, "--db", db, "rename", "0", "  ")[::2], "cannot be empty")
    assert_user_error(*cli(capsys, "--db", db, "frobnicate")[::2], "No such command")
    assert_user_error(*cli(capsys, "--db", "mysql+nosuchdriver://u@h/db", "list")[::2], "no driver")
    assert TagStore(db).audit_log() == []  # nothing above changed the database
