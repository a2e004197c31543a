"""``tools/discover.py`` end to end on 300 real titles: files, tag database, pseudo-labels, repeatability, errors."""
from __future__ import annotations

import json

import pytest
from helpers import DATA, read_jsonl, run_tool, with_o, write_subset

from paddle_tag.data.sources import prepare


@pytest.fixture(scope="module")
def titles_file(real_data, tmp_path_factory):
    prepare("peoples_daily", DATA)  # the stopword list the config names (cached)
    return write_subset(real_data["thucnews"] / "train.jsonl", tmp_path_factory.mktemp("items") / "titles.jsonl", 300)


def small(items, out, db) -> list[str]:
    return with_o([f"Data.train_path={items}", f"Global.output_dir={out}", f"Discover.db_url=sqlite:///{db}",
                   "Global.progress=false", "Discover.tfidf_dim=64", "Discover.dim=16", "Discover.k_max=10",
                   "Discover.sample_size=300", "Discover.threads=1"])


def test_discover_writes_files_the_database_and_pseudo_labels_repeatably(titles_file, tmp_path):
    from paddle_tag.discover.store import TagStore

    db = tmp_path / "tags.db"
    pseudo = tmp_path / "pseudo.jsonl"
    first = run_tool("discover.py", "-c", "configs/discover/thucnews_tfidf.yaml",
                     *small(titles_file, tmp_path / "a", db), "--pseudo-labels", str(pseudo))
    assert first.returncode == 0, first.stderr[-3000:]
    summary = json.loads(first.stdout.splitlines()[0])
    assert summary["items"] == 300 and summary["taxonomy_version"] == 1 and 5 <= summary["k"] <= 10
    assert {"nmi", "ari", "purity", "outlier_share"} <= set(summary)

    out = tmp_path / "a"
    taxonomy = json.loads((out / "taxonomy.json").read_text(encoding="utf-8"))
    metrics = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["k"] == taxonomy["k"] == len(taxonomy["tags"]) and metrics["nmi"] == summary["nmi"]
    assert set(metrics["timings_s"]) == {"embed", "reduce", "cluster", "name", "report"}
    assert (out / "report.png").stat().st_size > 10_000 and list((out / "embeddings").glob("*.ids.json"))
    names = [t["name"] for t in taxonomy["tags"]]
    stored = TagStore(f"sqlite:///{db}").current_taxonomy(with_items=False)
    assert [t.name for t in stored.tags] == names and [t.size for t in stored.tags] == [t["size"] for t in
                                                                                           taxonomy["tags"]]
    rows = read_jsonl(pseudo)
    assignments = read_jsonl(out / "assignments.jsonl")
    assert len(rows) == sum(a["tag"] is not None for a in assignments)
    assert all(r["labels"][0] in names and len(r["labels"]) == 1 for r in rows)

    # a second process, another output directory (no cached embeddings): the same tags, keys and assignments;
    # the database gets a new version
    second = run_tool("discover.py", "-c", "configs/discover/thucnews_tfidf.yaml",
                      *small(titles_file, tmp_path / "b", db))
    assert second.returncode == 0, second.stderr[-3000:]
    assert json.loads(second.stdout.splitlines()[0])["taxonomy_version"] == 2
    for name in ("taxonomy.json", "assignments.jsonl"):
        a, b = (tmp_path / d / name for d in ("a", "b"))
        assert a.read_bytes() == b.read_bytes(), name


def test_an_empty_items_file_is_a_one_line_error(tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n", encoding="utf-8")
    proc = run_tool("discover.py", "-c", "configs/discover/thucnews_tfidf.yaml",
                    *small(empty, tmp_path / "out", tmp_path / "tags.db"))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == f"error: {empty}: no items (the file is empty)"
    assert not (tmp_path / "tags.db").exists()
