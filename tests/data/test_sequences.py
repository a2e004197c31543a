"""Tests of paddle_tag.data.sequences on a hand-written sequence folder."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from paddle_tag.data.sequences import PAD, read_interactions
from paddle_tag.errors import ConfigError, DataError

ITEMS = [
    {"id": "m1", "title": "First", "tags": ["drama", "comedy"]},
    {"id": "m2", "title": "Second", "tags": ["action"]},
    {"id": "m3", "tags": []},
    {"id": "m4", "title": "Fourth", "tags": ["comedy", "action", "drama"]},
]
SEQUENCES = [
    {"user": "u1", "items": ["m1", "m2", "m3", "m4"], "timestamps": [1, 2, 3, 4]},
    {"user": "u2", "items": ["m4", "m1"]},                       # too short for valid/test
    {"user": "u3", "items": ["m2", "m2", "m3"], "timestamps": [5, 5, 6]},
]
USERS = [{"id": "u3", "age": "25", "zip": "02460"}, {"id": "u1", "age": "1", "zip": "48067"}]


def write(path: Path, rows: list) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


@pytest.fixture()
def folder(tmp_path: Path) -> Path:
    write(tmp_path / "items.jsonl", ITEMS)
    write(tmp_path / "sequences.jsonl", SEQUENCES)
    write(tmp_path / "users.jsonl", USERS)
    return tmp_path


def test_indices_padding_and_tags(folder: Path) -> None:
    data = read_interactions(folder)
    assert data.item_ids == [PAD, "m1", "m2", "m3", "m4"] and data.num_items == 4
    assert data.item_index == {"m1": 1, "m2": 2, "m3": 3, "m4": 4}
    assert data.titles == ["", "First", "Second", "", "Fourth"]
    assert data.tag_names == ["action", "comedy", "drama"]
    assert data.item_tags.dtype == np.int64
    assert data.item_tags.tolist() == [[0, 0, 0], [3, 2, 0], [1, 0, 0], [0, 0, 0], [2, 1, 3]]
    assert data.user_ids == ["u1", "u2", "u3"]
    assert data.users == [{"age": "1", "zip": "48067"}, {}, {"age": "25", "zip": "02460"}]
    assert [s.tolist() for s in data.sequences] == [[1, 2, 3, 4], [4, 1], [2, 2, 3]]
    assert all(s.dtype == np.int64 for s in data.sequences)


def test_leave_one_out(folder: Path) -> None:
    data = read_interactions(folder)
    assert [s.tolist() for s in data.leave_one_out("train")] == [[1, 2], [4, 1], [2]]
    users, histories, targets = data.leave_one_out("valid")
    assert users.tolist() == [0, 2] and [h.tolist() for h in histories] == [[1, 2], [2]]
    assert targets.tolist() == [3, 2] and targets.dtype == np.int64 and users.dtype == np.int64
    users, histories, targets = data.leave_one_out("test")
    assert users.tolist() == [0, 2] and [h.tolist() for h in histories] == [[1, 2, 3], [2, 2]]
    assert targets.tolist() == [4, 3]
    with pytest.raises(ValueError):
        histories[0][0] = 9                                          # views of the data stay read-only
    with pytest.raises(ConfigError, match="train, valid, test"):
        data.leave_one_out("dev")  # type: ignore[call-overload]


def test_users_file_is_optional(folder: Path) -> None:
    (folder / "users.jsonl").unlink()
    assert read_interactions(folder).users == [{}, {}, {}]


def test_empty_tags_everywhere_still_gives_a_matrix(tmp_path: Path) -> None:
    write(tmp_path / "items.jsonl", [{"id": "a"}, {"id": "b"}])
    write(tmp_path / "sequences.jsonl", [{"user": "u", "items": ["b", "a"]}])
    data = read_interactions(tmp_path)
    assert data.item_tags.shape == (3, 1) and not data.item_tags.any() and data.tag_names == []
    assert data.leave_one_out("train")[0].tolist() == [2, 1] and len(data.leave_one_out("test")[2]) == 0


@pytest.mark.parametrize("name", ["items.jsonl", "sequences.jsonl"])
def test_missing_file(folder: Path, name: str) -> None:
    (folder / name).unlink()
    with pytest.raises(DataError, match=f"file not found: .*{name}"):
        read_interactions(folder)


def test_invalid_json_names_file_and_line(folder: Path) -> None:
    (folder / "sequences.jsonl").write_text(json.dumps(SEQUENCES[0]) + "\n\n{oops\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"sequences\.jsonl:3: invalid JSON"):
        read_interactions(folder)
    (folder / "sequences.jsonl").write_text("[1, 2]\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"sequences\.jsonl:1: expected a JSON object"):
        read_interactions(folder)


def test_unknown_item_in_sequences(folder: Path) -> None:
    write(folder / "sequences.jsonl", SEQUENCES + [{"user": "u9", "items": ["m1", "m7"]}])
    with pytest.raises(DataError, match=r"sequences\.jsonl:4: item 'm7' is not in .*items\.jsonl"):
        read_interactions(folder)


@pytest.mark.parametrize(("file", "rows", "message"), [
    ("items.jsonl", ITEMS + [{"id": "m2"}], r"items\.jsonl:5: duplicate item id 'm2'"),
    ("items.jsonl", [{"id": PAD}], r"items\.jsonl:1: the item id '<pad>' is reserved"),
    ("items.jsonl", [{"title": "no id"}], r"items\.jsonl:1: 'id' must be a non-empty string"),
    ("items.jsonl", [{"id": "m1", "tags": "drama"}], r"items\.jsonl:1: 'tags' must be a list of strings"),
    ("sequences.jsonl", SEQUENCES + [SEQUENCES[0]], r"sequences\.jsonl:4: duplicate user 'u1'"),
    ("sequences.jsonl", [{"user": "u", "items": []}], r"sequences\.jsonl:1: user 'u' has no items"),
    ("sequences.jsonl", [{"user": "u", "items": ["m1"], "timestamps": [1, 2]}], "as long as 'items'"),
    ("users.jsonl", USERS + USERS[:1], r"users\.jsonl:3: duplicate user id 'u3'"),
])
def test_malformed_rows(folder: Path, file: str, rows: list, message: str) -> None:
    write(folder / file, rows)
    with pytest.raises(DataError, match=message):
        read_interactions(folder)


def test_empty_files(folder: Path) -> None:
    (folder / "sequences.jsonl").write_text("\n", encoding="utf-8")
    with pytest.raises(DataError, match="no users"):
        read_interactions(folder)
    (folder / "items.jsonl").write_text("", encoding="utf-8")
    with pytest.raises(DataError, match="no items"):
        read_interactions(folder)
