"""Tests of the MovieLens source (paddle_tag.data.sources.movielens) on the real ML-100K files in the recbole sdist.

ML-1M (13 MB sdist, 1M ratings) is prepared by ``tools/prepare_data.py movielens_1m``; these tests use ML-100K only.
"""

from __future__ import annotations

import io
import json
import tarfile
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest

from paddle_tag.data.sequences import read_interactions
from paddle_tag.data.sources import PREPARERS, SUBDIRS, prepare
from paddle_tag.data.sources.movielens import ML_1M, ML_100K, check_counts, iter_atomic
from paddle_tag.data.sources.registry import fetch, sha256_file
from paddle_tag.errors import DataError


@pytest.fixture(scope="module")
def ml100k(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("movielens")
    prepare("movielens_100k", root)
    return root / SUBDIRS["movielens_100k"]


def rows_of(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.open(encoding="utf-8")]


def raw_interactions() -> list[tuple[str, str, int]]:
    """(user, item, timestamp) of ml-100k.inter in file order, read independently of the preparer."""
    archive, _ = fetch(ML_100K.artifact)
    with tarfile.open(archive, "r:gz") as tf:
        text = tf.extractfile(ML_100K.member("inter")).read().decode("utf-8")
    lines = text.split("\n")
    assert lines[0] == "user_id:token\titem_id:token\trating:float\ttimestamp:float"
    return [(u, i, int(t)) for u, i, _r, t in (line.split("\t") for line in lines[1:] if line)]


def test_registered() -> None:
    assert PREPARERS["movielens_1m"].__name__ == "prepare_movielens_1m"
    assert PREPARERS["movielens_100k"].__name__ == "prepare_movielens_100k"
    assert SUBDIRS["movielens_1m"] == "movielens_1m" and SUBDIRS["movielens_100k"] == "movielens_100k"
    assert ML_1M.expected == {"interactions": 1_000_209, "users": 6_040, "items": 3_706, "genres": 18}
    assert ML_1M.artifact.sha256 and ML_100K.artifact.sha256


def test_counts_and_provenance(ml100k: Path) -> None:
    source = json.loads((ml100k / "SOURCE.json").read_text(encoding="utf-8"))
    counts = source["counts"]
    assert {k: counts[k] for k in ML_100K.expected} == ML_100K.expected
    items, users, seqs = (rows_of(ml100k / f"{n}.jsonl") for n in ("items", "users", "sequences"))
    assert len(items) == 1682 and len(users) == 943 and len(seqs) == 943
    assert sum(len(s["items"]) for s in seqs) == 100_000
    assert len({t for it in items for t in it["tags"]}) == 19 == len(counts["per_genre"])
    assert [s["user"] for s in seqs] == [u["id"] for u in users]
    archive, _ = fetch(ML_100K.artifact)
    assert source["package"] == "recbole" and source["version"] == "1.2.1"
    assert source["archive_sha256"] == sha256_file(archive) == ML_100K.artifact.sha256
    assert "GroupLens" in source["licence"] and "MIT" in source["licence"]
    for name, digest in source["outputs"].items():
        assert sha256_file(ml100k / name) == digest


def test_sequences_are_the_raw_interactions_stably_sorted(ml100k: Path) -> None:
    raw = raw_interactions()
    by_user: dict[str, list[tuple[str, int]]] = defaultdict(list)
    for user, item, stamp in raw:
        by_user[user].append((item, stamp))
    seqs = {s["user"]: s for s in rows_of(ml100k / "sequences.jsonl")}
    assert set(seqs) == set(by_user)
    for user, events in by_user.items():
        s = seqs[user]
        assert s["timestamps"] == sorted(s["timestamps"]) and all(isinstance(t, int) for t in s["timestamps"])
        assert sorted(zip(s["items"], s["timestamps"])) == sorted(events)
        # same-second interactions keep the file's order
        for stamp in set(s["timestamps"]):
            assert [i for i, t in zip(s["items"], s["timestamps"]) if t == stamp] == \
                   [i for i, t in events if t == stamp]
    # ml-100k.inter lines 2, 13735, 78789: user 196 rated 242, 286, 269 at the same second (not in id order)
    s = seqs["196"]
    assert [i for i, t in zip(s["items"], s["timestamps"]) if t == 881250949] == ["242", "286", "269"]


def test_users_keep_text_fields(ml100k: Path) -> None:
    users = {u["id"]: u for u in rows_of(ml100k / "users.jsonl")}
    assert users["8"] == {"id": "8", "age": "36", "gender": "M", "occupation": "administrator", "zip": "05201"}
    assert sum(u["zip"].startswith("0") for u in users.values()) == 96
    assert all(isinstance(v, str) for u in users.values() for v in u.values())
    assert any(not u["zip"].isdigit() for u in users.values())          # Canadian postal codes such as T8H1N


def test_items_and_tags_aligned(ml100k: Path) -> None:
    data = read_interactions(ml100k)
    items = rows_of(ml100k / "items.jsonl")
    assert data.item_ids[0] == "<pad>" and data.titles[0] == "" and not data.item_tags[0].any()
    assert data.item_ids[1:] == [it["id"] for it in items] and data.num_items == 1682
    assert data.tag_names == sorted(data.tag_names) and len(data.tag_names) == 19
    for k, it in enumerate(items, start=1):
        assert data.item_index[it["id"]] == k and data.titles[k] == it["title"]
        assert [data.tag_names[t - 1] for t in data.item_tags[k] if t] == it["tags"]
    toy = data.item_index["1"]
    assert data.titles[toy] == "Toy Story"
    assert {data.tag_names[t - 1] for t in data.item_tags[toy] if t} == {"Animation", "Children's", "Comedy"}
    assert [data.tag_names[t - 1] for t in data.item_tags[data.item_index["267"]] if t] == ["unknown"]
    assert data.users[data.user_ids.index("8")]["zip"] == "05201"


def test_leave_one_out_on_real_data(ml100k: Path) -> None:
    data = read_interactions(ml100k)
    train = data.leave_one_out("train")
    users, histories, targets = data.leave_one_out("test")
    assert len(users) == 943 and min(len(s) for s in data.sequences) >= 20   # ML-100K: >= 20 ratings a user
    assert sum(len(s) for s in train) == 100_000 - 2 * 943
    assert all(np.array_equal(h, data.sequences[u][:-1]) for u, h in zip(users, histories))
    assert targets.dtype == np.int64 and targets.min() >= 1


def test_skips_when_up_to_date_and_redoes_when_damaged(ml100k: Path) -> None:
    root = ml100k.parent
    assert prepare("movielens_100k", root)["skipped"] is True
    before = (ml100k / "sequences.jsonl").read_bytes()
    (ml100k / "sequences.jsonl").write_text("damaged\n", encoding="utf-8")
    assert prepare("movielens_100k", root)["skipped"] is False
    assert (ml100k / "sequences.jsonl").read_bytes() == before


def test_check_counts_names_the_difference() -> None:
    check_counts(ML_100K, dict(ML_100K.expected))
    with pytest.raises(DataError, match="interactions: expected 100,000, got 99999"):
        check_counts(ML_100K, dict(ML_100K.expected, interactions=99_999))


def make_tar(path: Path, member: str, text: str) -> Path:
    data = text.encode("utf-8")
    with tarfile.open(path, "w:gz") as tf:
        info = tarfile.TarInfo(member)
        info.size = len(data)
        tf.addfile(info, io.BytesIO(data))
    return path


def test_iter_atomic_keeps_text_and_reports_bad_rows(tmp_path: Path) -> None:
    good = make_tar(tmp_path / "good.tar.gz", "x.user",
                    "user_id:token\tage:float\tzip_code:token\r\n1m_1\t01\t02460\r\n\r\n")
    assert list(iter_atomic(good, "x.user", ["zip_code", "user_id"])) == [("x.user:2", ["02460", "1m_1"])]
    with pytest.raises(DataError, match="the header lacks gender"):
        list(iter_atomic(good, "x.user", ["user_id", "gender"]))
    bad = make_tar(tmp_path / "bad.tar.gz", "x.user", "user_id:token\tage:float\n1\t2\n3\n")
    with pytest.raises(DataError, match=r"x\.user:3: expected 2 tab-separated fields, got 1"):
        list(iter_atomic(bad, "x.user", ["user_id"]))
