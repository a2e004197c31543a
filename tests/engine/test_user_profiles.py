"""User tag profiles end to end on a real slice of MovieLens-100K and a tiny GRU4Rec trained a few steps: the figures
match a plain-Python recount, the stored profiles are the ones computed, a rerun replaces them on the same dataset
version, a discovered taxonomy's tags work too, and tools/user_profiles.py prints the table and writes the JSON."""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from helpers import DATA, REPO, read_jsonl, run_tool

from paddle_tag.config import load_config
from paddle_tag.data.sequences import read_interactions
from paddle_tag.data.sources import prepare
from paddle_tag.discover import store_schema as s
from paddle_tag.discover.store import TagStore
from paddle_tag.discover.taxonomy import Assignment, Item, Tag, Taxonomy
from paddle_tag.engine.builder import build_run
from paddle_tag.engine.tasks.next_item import load_next_item, score_histories
from paddle_tag.engine.user_profiles import HALF_LIVES, user_profiles
from paddle_tag.errors import ConfigError, StoreError

ML100K = DATA / "movielens_100k"
USERS = 150


@pytest.fixture(scope="module")
def log_dir(tmp_path_factory) -> Path:
    """The first 150 users of MovieLens-100K and the films they rated (with their genres)."""
    prepare("movielens_100k", DATA)
    out = tmp_path_factory.mktemp("ml100k_slice")
    sequences = read_jsonl(ML100K / "sequences.jsonl")[:USERS]
    rated = {item for row in sequences for item in row["items"]}
    items = [row for row in read_jsonl(ML100K / "items.jsonl") if row["id"] in rated]
    for name, rows in (("items.jsonl", items), ("sequences.jsonl", sequences)):
        (out / name).write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return out


@pytest.fixture(scope="module")
def checkpoint(log_dir, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("gru") / "run"
    overrides = [f"Global.output_dir={out}", f"Data.train_path={log_dir}", "Data.max_seq_len=30",
                 "Data.batch_size=32", "Model.name=gru4rec", "Model.hidden_size=32", "Model.num_layers=1",
                 "Global.epochs=2", "Global.progress=false", "Optimizer.lr=5e-3"]
    build_run(load_config(str(REPO / "configs/recommend/gru4rec_ml1m.yaml"), overrides)).fit()
    return out / "best"


def by_count(counts: Counter) -> list[str]:
    """Tags by descending count, ties to the alphabetically first name."""
    return sorted(counts, key=lambda tag: (-counts[tag], tag))


def recount_hit1(rankings: list[list[str]], targets: list[set[str]]) -> float:
    return float(np.mean([bool(ranked) and ranked[0] in tags for ranked, tags in zip(rankings, targets)]))


def history_shares(seq: list[str], genres: dict[str, set[str]], half_life) -> dict[str, float]:
    """Each item's weight (1, or halved every ``half_life`` items back) split evenly over its genres."""
    weights = [1.0 if half_life is None else 0.5 ** ((len(seq) - 1 - pos) / half_life) for pos in range(len(seq))]
    share: Counter = Counter()
    for weight, item in zip(weights, seq):
        for tag in genres[item]:
            share[tag] += weight / len(genres[item]) / sum(weights)
    return dict(share)


def test_figures_match_a_plain_recount_and_the_stored_profiles_are_the_computed_ones(log_dir, checkpoint, tmp_path):
    store = TagStore(tmp_path / "tags.db")
    result = user_profiles(checkpoint, store, log_dir, half_life="auto")
    data = read_interactions(log_dir)
    assert result["tags"] == data.tag_names and result["stored"]["users"] == USERS
    assert set(result["test"]) == {"predicted", "history_profile", "most_frequent_history_tag", "popular_tags"}
    assert result["half_life"] in HALF_LIVES and len(result["valid_half_life_hit@1"]) == len(HALF_LIVES)
    for figures in result["test"].values():
        assert figures["users"] == USERS and 0 <= figures["hit@1"] <= figures["hit@3"] <= 1

    # the baselines, recounted with Counter: most frequent tag, ties to the alphabetically first name
    genres = {row["id"]: set(row.get("tags", [])) for row in read_jsonl(log_dir / "items.jsonl")}
    sequences = [row["items"] for row in read_jsonl(log_dir / "sequences.jsonl")]
    targets = [genres[seq[-1]] for seq in sequences]
    mine = [by_count(Counter(t for item in seq[:-1] for t in genres[item])) for seq in sequences]
    assert result["test"]["most_frequent_history_tag"]["hit@1"] == pytest.approx(recount_hit1(mine, targets))
    pooled = by_count(Counter(t for seq in sequences for item in seq[:-1] for t in genres[item]))
    assert result["test"]["popular_tags"]["hit@1"] == pytest.approx(recount_hit1([pooled] * USERS, targets))

    # stored: the history shares of a user's whole sequence, and the model's masked softmax pushed to genres
    version = result["version_id"]
    history = store.profiles.read(version, "history")
    predicted = store.profiles.read(version, "predicted")
    assert [t.name for t in history.tags] == data.tag_names and history.user_ids == sorted(data.user_ids)
    assert predicted.model.startswith(f"{checkpoint} sha256:") and history.params["half_life"] == result["half_life"]
    user = data.user_ids[7]
    seq = sequences[7]
    expected_history = history_shares(seq, genres, result["half_life"])
    assert dict(history.top(user, k=len(expected_history))) == pytest.approx(expected_history)
    model = load_next_item(checkpoint, data)
    scores = score_histories(model, [data.sequences[7]], model.model_config()["max_len"])[0].astype(np.float64)
    unseen = [i for i in range(1, len(data.item_ids)) if data.item_ids[i] not in set(seq)]
    p = np.exp(scores[unseen] - scores[unseen].max())
    p /= p.sum()
    expected = Counter()
    for prob, i in zip(p, unseen):
        for tag in genres[data.item_ids[i]]:
            expected[tag] += prob / len(genres[data.item_ids[i]])
    row = predicted.weights[predicted.user_ids.index(user)]
    assert dict(zip(data.tag_names, row)) == pytest.approx({t: expected.get(t, 0.0) for t in data.tag_names},
                                                           abs=1e-6)

    # a rerun (another half-life) lands on the same dataset version and replaces both sets
    again = user_profiles(checkpoint, store, log_dir, half_life=3.0)
    assert again["version_id"] == version and len(store.versions()) == 1
    history = store.profiles.read(version, "history")
    assert history.params["half_life"] == 3.0
    assert dict(history.top(user, k=len(expected_history))) == pytest.approx(history_shares(seq, genres, 3.0))
    with store.engine.connect() as conn:
        assert len(conn.execute(s.profile_sets.select()).all()) == 2


def test_a_discovered_taxonomy_of_the_log_items_gives_the_tags(log_dir, checkpoint, tmp_path):
    data = read_interactions(log_dir)
    store = TagStore(tmp_path / "tags.db")
    with pytest.raises(StoreError, match="no taxonomy version 5"):
        user_profiles(checkpoint, store, log_dir, version_id=5)
    # a stand-in for discovery: two tags, an item is "drama" when Drama is among its genres
    drama = {iid for iid, row in zip(data.item_ids[1:], data.item_tags[1:])
             if data.tag_names.index("Drama") + 1 in row}
    tags = [Tag(0, "drama", [], np.array([1.0, 0.0], np.float32), len(drama)),
            Tag(1, "other", [], np.array([0.0, 1.0], np.float32), len(data.item_ids) - 1 - len(drama))]
    items = [Item(i, title) for i, title in zip(data.item_ids[1:], data.titles[1:])]
    version = store.write_taxonomy(Taxonomy(tags, items, [Assignment(i, 0 if i in drama else 1, 1.0)
                                                          for i in data.item_ids[1:]], embedder="tfidf"))
    result = user_profiles(checkpoint, store, log_dir, version_id=version)
    assert result["tags"] == ["drama", "other"] and result["version_id"] == version
    assert result["test"]["predicted"]["hit@1"] >= 0 and "hit@3" not in result["test"]["predicted"]  # K = 2
    weights = store.profiles.read(version, "predicted").weights
    assert weights.sum(axis=1) == pytest.approx(np.ones(USERS))  # every item carries exactly one tag
    partial = store.write_taxonomy(Taxonomy(tags, items[:10], [Assignment(i.item_id, 0, 1.0) for i in items[:10]],
                                            embedder="tfidf"))
    with pytest.raises(StoreError, match=f"{len(items) - 10} of {len(items)} items are not in taxonomy version"):
        user_profiles(checkpoint, store, log_dir, version_id=partial)


def test_the_tool_prints_the_table_writes_the_json_and_explains_bad_input(log_dir, checkpoint, tmp_path):
    db, output = tmp_path / "tags.db", tmp_path / "next_tag.json"
    proc = run_tool("user_profiles.py", "--checkpoint", str(checkpoint), "--data", str(log_dir), "--db", str(db),
                    "--output", str(output))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "most frequent history tags" in proc.stdout and "hit@3" in proc.stdout
    figures = json.loads(output.read_text(encoding="utf-8"))
    assert figures["half_life"] is None and figures["stored"]["users"] == USERS
    assert TagStore(db).profiles.read(figures["version_id"], "history").weights.shape == (USERS, len(figures["tags"]))
    bad = run_tool("user_profiles.py", "--checkpoint", str(checkpoint), "--data", str(tmp_path / "nowhere"),
                   "--db", str(db))
    assert bad.returncode == 2 and "interaction log not found" in bad.stderr
    bad = run_tool("user_profiles.py", "--checkpoint", str(checkpoint), "--half-life", "soon")
    assert bad.returncode == 2 and "expected none, auto or a number" in bad.stderr


def test_bad_half_lives_are_refused(log_dir, checkpoint, tmp_path):
    with pytest.raises(ConfigError, match="half_life must be None, 'auto' or a positive number"):
        user_profiles(checkpoint, TagStore(tmp_path / "tags.db"), log_dir, half_life=-1)
