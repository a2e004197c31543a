"""The two-tower task through the one engine on real MovieLens-100K, with title vectors from a tiny random BERT:
it learns beyond a random ranking, its checkpoint holds everything to rank without the text encoder, tools/eval.py
ranks valid and test beside the baselines, a stopped run resumes to the same numbers, and bad input is refused."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import paddle
import pytest
from helpers import DATA, REPO, run_tool

from paddle_tag.config import load_config
from paddle_tag.data.sequences import read_interactions
from paddle_tag.engine.builder import build_run
from paddle_tag.engine.checkpoint import checkpoint_kind
from paddle_tag.engine.tasks.two_tower import TrainingPairs, load_two_tower, profile_ids, profile_vocab
from paddle_tag.errors import ConfigError, DataError, ModelLoadError

CONFIG = str(REPO / "configs/recommend/two_tower_ml1m.yaml")
ML100K = DATA / "movielens_100k"
RANDOM_HIT10 = 10 / 1682


@pytest.fixture(scope="module", autouse=True)
def movielens():
    from paddle_tag.data.sources import prepare

    prepare("movielens_100k", DATA)


def tiny(out: Path, title_model: Path, *extra: str) -> list[str]:
    """Hidden 32, the last 20 items (2 of them side by side), 2 epochs of 512 examples a batch, 200 fixed users."""
    return [f"Global.output_dir={out}", f"Data.train_path={ML100K}", "Data.max_seq_len=20", "Data.batch_size=512",
            "Model.hidden_size=32", "Global.epochs=2", "Global.progress=false", "Recommend.eval_users=200",
            "Recommend.recent_items=2", f"Recommend.title_model={title_model}",
            f"Model.feature_cache={out.parent / 'cache'}", *extra]


@pytest.fixture(scope="module")
def two_tower_run(tmp_path_factory, tiny_bert_dir) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("two_tower") / "run"
    return out, build_run(load_config(CONFIG, tiny(out, tiny_bert_dir))).fit()


def test_two_tower_learns_and_writes_test_metrics_beside_the_baselines(two_tower_run):
    out, result = two_tower_run
    assert result["kind"] == "two_tower" and result["best_metric"] == "ndcg@10" and result["steps"] == 2 * 190
    assert result["best"]["hit@10"] > 5 * RANDOM_HIT10, result["best"]
    assert set(result["test"]) >= {"hit@10", "ndcg@10", "mrr@10", "hit@50"} and result["test"]["users"] == 200
    assert set(result["baselines"]) == {"most_popular", "item_knn", "markov"}
    assert checkpoint_kind(out / "best") == checkpoint_kind(out / "last") == "two_tower"
    meta = json.loads((out / "best/model_config.json").read_text(encoding="utf-8"))
    assert meta["profile_vocab"]["gender"] == ["F", "M"] and meta["profile_sizes"] == [2, 61, 21]
    assert meta["title_vectors"] == [1683, 32] and meta["item_tags"][0] == 1683 and meta["recent"] == 2


def test_the_checkpoint_ranks_without_the_text_encoder_or_the_data(two_tower_run):
    out, _ = two_tower_run
    model, vocab = load_two_tower(out / "best")  # no data, no tiny BERT: tags and title vectors are in the weights
    data = read_interactions(ML100K)
    np.testing.assert_array_equal(model.items.title_vectors.numpy()[0], 0.0)
    assert model.item_table().shape == [1683, 32]
    history = np.array([[0] * 17 + [1, 50, 100]], dtype="int64")
    profile = profile_ids(data.users[:1], vocab)
    user = model(paddle.to_tensor(history), paddle.to_tensor(profile))
    assert user.shape == [1, 32] and abs(float(paddle.linalg.norm(user)) - 1.0) < 1e-5


def test_eval_tool_ranks_valid_and_test_with_the_baselines(two_tower_run):
    out, result = two_tower_run
    proc = run_tool("eval.py", "-o", f"Global.checkpoint={out / 'best'}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    printed = json.loads(proc.stdout.strip().splitlines()[-1])
    assert printed["test"] == pytest.approx(result["test"])
    assert printed["valid"]["ndcg@10"] == pytest.approx(result["best"]["ndcg@10"])
    assert printed["baselines"]["markov"]["test"] == pytest.approx(result["baselines"]["markov"]["test"])


def test_a_stopped_run_resumes_to_the_same_numbers(two_tower_run, tiny_bert_dir, tmp_path, monkeypatch):
    _, reference = two_tower_run
    out = tmp_path / "cut"
    trainer = build_run(load_config(CONFIG, tiny(out, tiny_bert_dir)))
    original = trainer.task.batch_loss

    def killed_at_step_250(forward, indices, step):
        if step == 250:
            raise KeyboardInterrupt  # last/ holds the end of epoch 1 (step 190)
        return original(forward, indices, step)

    monkeypatch.setattr(trainer.task, "batch_loss", killed_at_step_250)
    with pytest.raises(KeyboardInterrupt):
        trainer.fit()
    result = build_run(load_config(CONFIG, tiny(out, tiny_bert_dir, "Global.resume=true"))).fit()
    assert result["best_step"] == reference["best_step"]
    assert result["best"] == pytest.approx(reference["best"]) and result["test"] == pytest.approx(reference["test"])


def test_ids_only_has_no_tag_or_title_part(tiny_bert_dir, tmp_path):
    out = tmp_path / "ids"
    trainer = build_run(load_config(CONFIG, tiny(out, tiny_bert_dir, "Recommend.item_tags=false",
                                                 "Recommend.title_vectors=false", "Recommend.user_profile=false",
                                                 "Recommend.log_q=false", "Global.max_steps=5")))
    names = set(trainer.task.model.state_dict())
    assert not any(".tags." in n or ".title" in n or "profile." in n for n in names), names
    assert trainer.fit()["steps"] == 5


def test_a_model_is_refused_on_another_item_set(two_tower_run, tmp_path):
    out, _ = two_tower_run
    other = tmp_path / "other"
    other.mkdir()
    for name in ("users.jsonl", "sequences.jsonl"):
        (other / name).write_bytes((ML100K / name).read_bytes())
    rows = (ML100K / "items.jsonl").read_text(encoding="utf-8").splitlines()
    (other / "items.jsonl").write_text("\n".join(rows[1:] + rows[:1]) + "\n", encoding="utf-8")
    with pytest.raises(ModelLoadError, match="not the 1682 items of this interaction log"):
        load_two_tower(out / "best", read_interactions(other))


def test_training_pairs_are_every_next_item_after_its_left_padded_history():
    pairs = TrainingPairs([np.array([5, 6, 7, 8]), np.array([9]), np.array([3, 4])], max_len=2)
    assert len(pairs) == 3 + 0 + 1
    history, targets, users = pairs.batch(np.arange(4))
    np.testing.assert_array_equal(history, [[0, 5], [5, 6], [6, 7], [0, 3]])
    np.testing.assert_array_equal(targets, [6, 7, 8, 4])
    np.testing.assert_array_equal(users, [0, 0, 0, 2])


def test_profile_values_map_to_ids_with_0_for_unknown():
    users = [{"gender": "F", "age": 25}, {"gender": "M"}, {}]
    vocab = profile_vocab(users, ["gender", "age"])
    assert vocab == {"gender": ["F", "M"], "age": ["25"]}
    ids = profile_ids(users + [{"gender": "X", "age": "25"}], vocab)
    np.testing.assert_array_equal(ids, [[1, 1], [2, 0], [0, 0], [0, 1]])
    with pytest.raises(DataError, match="profile field 'zip' is in no user's profile"):
        profile_vocab(users, ["zip"])


def test_two_tower_configs_are_checked(tmp_path):
    with pytest.raises(ConfigError, match="Recommend.temperature must be positive"):
        load_config(CONFIG, ["Recommend.temperature=0"])
    with pytest.raises(ConfigError, match="Recommend.recent_items=30 exceeds"):
        build_run(load_config(CONFIG, [f"Global.output_dir={tmp_path}", f"Data.train_path={ML100K}",
                                       "Data.max_seq_len=20", "Recommend.recent_items=30"]))
    with pytest.raises(ConfigError, match="Recommend.history_input"):
        load_config(CONFIG, ["Recommend.history_input=both"])
