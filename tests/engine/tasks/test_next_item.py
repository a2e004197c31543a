"""Next-item models through the one engine on real MovieLens-100K: tiny SASRec / GRU4Rec learn beyond a random
ranking, checkpoints say their kind and item set, tools/eval.py ranks valid and test beside the baselines, a
stopped run resumes to the same numbers, and a model is refused on another item set."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import DATA, REPO, run_tool

from paddle_tag.config import load_config
from paddle_tag.data.sequences import read_interactions
from paddle_tag.engine.builder import build_run
from paddle_tag.engine.checkpoint import checkpoint_kind
from paddle_tag.engine.tasks.next_item import load_next_item
from paddle_tag.errors import ConfigError, ModelLoadError

CONFIG = str(REPO / "configs/recommend/sasrec_ml1m.yaml")
ML100K = DATA / "movielens_100k"
RANDOM_HIT10 = 10 / 1682


@pytest.fixture(scope="module", autouse=True)
def movielens():
    from paddle_tag.data.sources import prepare

    prepare("movielens_100k", DATA)


def tiny(out: Path, *extra: str) -> list[str]:
    """A small SASRec (hidden 32, 1 layer, last 30 items) for 3 epochs, ranked for 200 fixed users."""
    return [f"Global.output_dir={out}", f"Data.train_path={ML100K}", "Data.max_seq_len=30", "Data.batch_size=64",
            "Model.hidden_size=32", "Model.num_layers=1", "Global.epochs=3", "Global.progress=false",
            "Recommend.eval_users=200", "Optimizer.lr=5e-3", *extra]


@pytest.fixture(scope="module")
def sasrec_run(tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("sasrec") / "run"
    return out, build_run(load_config(CONFIG, tiny(out))).fit()


def test_sasrec_learns_and_writes_test_metrics_beside_the_baselines(sasrec_run):
    out, result = sasrec_run
    assert result["kind"] == "next_item" and result["best_metric"] == "ndcg@10" and result["steps"] == 3 * 15
    assert result["best"]["hit@10"] > 3 * RANDOM_HIT10, result["best"]
    assert set(result["test"]) >= {"hit@10", "ndcg@10", "mrr@10", "hit@50"} and result["test"]["users"] == 200
    assert set(result["baselines"]) == {"most_popular", "item_knn", "markov"}
    for scores in result["baselines"].values():
        assert 0 < scores["test"]["hit@10"] <= 1 and scores["valid"]["users"] == 200
    assert checkpoint_kind(out / "best") == checkpoint_kind(out / "last") == "next_item"
    items = json.loads((out / "best/items.json").read_text(encoding="utf-8"))
    assert items["ids"][0] == "<pad>" and len(items["ids"]) == 1683 and len(items["tag_names"]) == 19


def test_eval_tool_ranks_valid_and_test_with_the_baselines(sasrec_run):
    out, result = sasrec_run
    proc = run_tool("eval.py", "-o", f"Global.checkpoint={out / 'best'}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    printed = json.loads(proc.stdout.strip().splitlines()[-1])
    assert printed["test"] == pytest.approx(result["test"])
    assert printed["valid"]["ndcg@10"] == pytest.approx(result["best"]["ndcg@10"])
    for name, scores in result["baselines"].items():
        for part in ("valid", "test"):
            assert printed["baselines"][name][part] == pytest.approx(scores[part]), (name, part)


def test_gru4rec_learns_too(tmp_path):
    result = build_run(load_config(CONFIG, tiny(tmp_path / "gru", "Model.name=gru4rec"))).fit()
    assert result["best"]["hit@10"] > 3 * RANDOM_HIT10, result["best"]


def test_a_stopped_run_resumes_to_the_same_numbers(sasrec_run, tmp_path, monkeypatch):
    _, reference = sasrec_run
    out = tmp_path / "cut"
    trainer = build_run(load_config(CONFIG, tiny(out)))
    original = trainer.task.batch_loss

    def killed_at_step_20(forward, indices, step):
        if step == 20:
            raise KeyboardInterrupt  # last/ holds the end of epoch 1 (step 15)
        return original(forward, indices, step)

    monkeypatch.setattr(trainer.task, "batch_loss", killed_at_step_20)
    with pytest.raises(KeyboardInterrupt):
        trainer.fit()
    result = build_run(load_config(CONFIG, tiny(out, "Global.resume=true"))).fit()
    assert result["best_step"] == reference["best_step"]
    assert result["best"] == pytest.approx(reference["best"]) and result["test"] == pytest.approx(reference["test"])


def test_a_model_is_refused_on_another_item_set(sasrec_run, tmp_path):
    out, _ = sasrec_run
    other = tmp_path / "other"
    other.mkdir()
    for name in ("users.jsonl", "sequences.jsonl"):
        (other / name).write_bytes((ML100K / name).read_bytes())
    rows = (ML100K / "items.jsonl").read_text(encoding="utf-8").splitlines()
    (other / "items.jsonl").write_text("\n".join(rows[1:] + rows[:1]) + "\n", encoding="utf-8")  # same items, new order
    with pytest.raises(ModelLoadError, match="not the 1682 items of this interaction log"):
        load_next_item(out / "best", read_interactions(other))
    data = read_interactions(ML100K)
    scores = load_next_item(out / "best", data)
    assert scores.item_table().shape == [1683, 32]


def test_sequence_configs_are_checked(tmp_path):
    with pytest.raises(ConfigError, match="Model.name=ernie does not read Data.modality=sequence"):
        build_run(load_config(CONFIG, tiny(tmp_path / "x", "Model.name=ernie")))
    with pytest.raises(ConfigError, match="Recommend.eval_users must be >= 0"):
        load_config(CONFIG, ["Recommend.eval_users=-1"])
    with pytest.raises(ConfigError, match="next-item models .* train directly"):
        build_run(load_config(CONFIG, tiny(tmp_path / "y", "Pretrain.method=simcse")))
