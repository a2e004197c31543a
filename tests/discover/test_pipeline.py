"""The discovery pipeline on 300 real THUCNews titles: items in, a sorted, named, repeatable taxonomy out."""
from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest
from helpers import DATA, read_jsonl, write_subset

from paddle_tag.config import load_config
from paddle_tag.data.sources import prepare
from paddle_tag.discover.pipeline import (DiscoveryPipeline, database_url, discover, read_items, taxonomy_record,
                                          write_run)
from paddle_tag.errors import ConfigError, DataError


@pytest.fixture(scope="module")
def titles_file(real_data, tmp_path_factory):
    prepare("peoples_daily", DATA)  # the stopword list (cached)
    return write_subset(real_data["thucnews"] / "train.jsonl", tmp_path_factory.mktemp("items") / "titles.jsonl", 300)


def config_for(items, out, *extra: str):
    return load_config(None, [f"Data.train_path={items}", f"Global.output_dir={out}", "Global.progress=false",
                              "Discover.embedder=tfidf", "Discover.tfidf_dim=64", "Discover.dim=16", "Discover.k_min=5",
                              "Discover.k_max=12", "Discover.sample_size=300", "Discover.threads=1", *extra])


@pytest.fixture(scope="module")
def run(titles_file, tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    return out, *discover(config_for(titles_file, out))


def test_taxonomy_is_sorted_keyed_and_consistent(run):
    _, corpus, result = run
    taxonomy = result.taxonomy
    assert len(corpus.items) == 300 and taxonomy.items == corpus.items
    sizes = [t.size for t in taxonomy.tags]
    assert [t.key for t in taxonomy.tags] == list(range(len(sizes))) and 5 <= len(sizes) <= 12
    assert sizes == sorted(sizes, reverse=True)
    keys = [a.tag_key for a in taxonomy.assignments]
    assert sizes == [keys.count(k) for k in range(len(sizes))]
    assert taxonomy.outlier_share() == keys.count(None) / 300 < 0.1
    centroids = np.stack([t.centroid for t in taxonomy.tags])
    np.testing.assert_allclose(np.linalg.norm(centroids, axis=1), 1.0, atol=1e-5)
    for item, a, vector in zip(taxonomy.items, taxonomy.assignments, result.embeddings):
        if a.tag_key is not None:
            assert a.score == pytest.approx(float(vector @ centroids[a.tag_key]), abs=1e-5)
    assert len({t.name for t in taxonomy.tags}) == len(sizes)
    assert all(t.keywords and "·" in t.name for t in taxonomy.tags)
    assert taxonomy.embedder == "tfidf" and taxonomy.params["seed"] == 42 and taxonomy.params["embedder"] == "tfidf"
    assert set(result.info["timings_s"]) == {"embed", "reduce", "cluster", "name"}


@pytest.mark.skipif(importlib.util.find_spec("umap") is None, reason="umap-learn is missing (the test extra has it)")
def test_umap_reduce_finds_several_tags(titles_file, tmp_path):
    # uncentred UMAP output made every centroid cosine ~0.99 and the merge step joined all clusters into one
    _, result = discover(config_for(titles_file, tmp_path, "Discover.reduce=umap", "Discover.dim=5"))
    assert 5 <= len(result.taxonomy.tags) <= 12 and result.info["merged"] == 0


def test_same_config_and_seed_give_the_same_taxonomy(run, titles_file, tmp_path):
    _, _, first = run
    _, second = discover(config_for(titles_file, tmp_path))  # another output dir: embeddings not cached
    assert taxonomy_record(second.taxonomy) == taxonomy_record(first.taxonomy)
    assert second.taxonomy.assignments == first.taxonomy.assignments
    for a, b in zip(first.taxonomy.tags, second.taxonomy.tags):
        np.testing.assert_array_equal(a.centroid, b.centroid)


def test_written_files_and_pseudo_labels(run, tmp_path):
    out, corpus, result = run
    pseudo = tmp_path / "pseudo.jsonl"
    metrics = write_run(config_for(corpus.source, out), corpus, result, pseudo_labels=pseudo)
    for name in ("taxonomy.json", "assignments.jsonl", "metrics.json", "report.png", "report.md", "config.yaml",
                 "centroids.npy"):
        assert (out / name).is_file(), name
    record = json.loads((out / "taxonomy.json").read_text(encoding="utf-8"))
    assert [t["name"] for t in record["tags"]] == [t.name for t in result.taxonomy.tags]
    rows = read_jsonl(out / "assignments.jsonl")
    assert [r["id"] for r in rows] == [str(i) for i in range(1, 301)]  # line numbers when there is no "id"
    # labels are used only for scoring; 300 titles of 10 classes clustered by characters: better than chance
    assert metrics["nmi"] > 0.15 and 0 < metrics["ari"] and metrics["purity"] > 0.3
    assert metrics["k"] == len(result.taxonomy.tags) and metrics["items"] == 300
    names = {t.name for t in result.taxonomy.tags}
    training = read_jsonl(pseudo)
    assert len(training) == sum(a.tag_key is not None for a in result.taxonomy.assignments)
    assert all(set(r) == {"text", "labels"} and len(r["labels"]) == 1 and r["labels"][0] in names for r in training)
    report = (out / "report.md").read_text(encoding="utf-8")
    assert result.taxonomy.tags[0].name in report and "unassigned" in report
    np.testing.assert_array_equal(np.load(out / "centroids.npy")[0], result.taxonomy.tags[0].centroid)


def test_hdbscan_pipeline_reports_its_outliers(titles_file, tmp_path):
    config = config_for(titles_file, tmp_path, "Discover.cluster=hdbscan", "Discover.min_cluster_size=5",
                        "Discover.outlier_threshold=0.99")
    _, result = discover(config)
    assert result.info["clustering"]["method"] == "hdbscan"
    assert result.info["outliers"]["outlier_share"] == pytest.approx(result.taxonomy.outlier_share(), abs=1e-6)


def test_encoder_pipeline_with_keyword_reranking(titles_file, tiny_bert_dir, tmp_path):
    config = load_config(None, [f"Global.output_dir={tmp_path}", "Global.progress=false", "Discover.embedder=e5",
                                f"Discover.model={tiny_bert_dir}", "Data.max_seq_len=64", "Discover.k=4",
                                "Discover.dim=8", "Discover.rerank_keywords=true", "Discover.outlier_threshold=-1",
                                # random weights make every centroid look alike: no merging here
                                "Discover.threads=1", "Discover.merge_threshold=1.0"])
    items = read_items(titles_file).items[:80]
    result = DiscoveryPipeline(config).run(items)
    assert len(result.taxonomy.tags) == 4 and result.embeddings.shape == (80, 32)
    assert result.taxonomy.embedder == str(tiny_bert_dir.resolve())
    assert result.taxonomy.outlier_share() == 0.0


def test_reranking_needs_an_encoder(tmp_path):
    with pytest.raises(ConfigError, match="rerank_keywords needs an encoder"):
        DiscoveryPipeline(config_for("x.jsonl", tmp_path, "Discover.rerank_keywords=true"))


def test_database_url_defaults_to_sqlite_in_the_output_dir(tmp_path):
    assert database_url(config_for("x.jsonl", tmp_path)) == f"sqlite:///{tmp_path.resolve()}/tags.db"
    assert database_url(config_for("x.jsonl", tmp_path, "Discover.db_url=postgresql://h/db")) == "postgresql://h/db"


def test_items_file_errors_and_blank_texts(tmp_path):
    path = tmp_path / "items.jsonl"
    path.write_text('{"id": "a", "text": "房价上涨"}\n{"text": "   "}\n\n{"id": 7, "text": "足球比赛"}\n',
                    encoding="utf-8")
    corpus = read_items(path)
    assert [i.item_id for i in corpus.items] == ["a", "7"] and corpus.skipped_blank == 1
    assert corpus.labels == [None, None]
    cases = {"": "no items (the file is empty)", '{"text": ""}\n': "only 1 blank texts",
             '{"text": "好"}\n{"text": 3}\n': ":2: \"text\" must be a string",
             '{"text": "好"}\nnot json\n': ":2: invalid JSON", '{"title": "好"}\n': ":1: expected a JSON object",
             '{"id": 1, "text": "好"}\n{"id": "1", "text": "坏"}\n': ":2: duplicate item id '1'"}
    for content, message in cases.items():
        path.write_text(content, encoding="utf-8")
        with pytest.raises(DataError) as err:
            read_items(path)
        assert str(path) in str(err.value) and message in str(err.value)
    with pytest.raises(DataError, match="not found"):
        read_items(tmp_path / "missing.jsonl")
    with pytest.raises(ConfigError, match="Data.train_path"):
        discover(load_config(None, [f"Global.output_dir={tmp_path}"]))
