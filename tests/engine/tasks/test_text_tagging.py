"""End to end on real data with a tiny ERNIE: train → eval → predict, multi-class and multi-label."""
from __future__ import annotations

import json

import numpy as np
import pytest
from helpers import REPO, predict_with_tool, read_jsonl, run_tool, tiny_overrides, with_o

from paddle_tag.config import load_config
from paddle_tag.engine.builder import build_run
from paddle_tag.engine.checkpoint import load_checkpoint
from paddle_tag.engine.predictor import predict_texts
from paddle_tag.errors import ModelLoadError
from paddle_tag.metrics import DEFAULT_GRID

CONFIG = str(REPO / "configs/text/thucnews_ernie_small.yaml")


def test_multiclass_train_eval_predict_tools(thucnews_small, vocab_file, tmp_path):
    out = tmp_path / "run"
    overrides = tiny_overrides(thucnews_small, out, vocab_file, Global__epochs=4, Data__test_path="null")
    proc = run_tool("train.py", "-c", CONFIG, *with_o(overrides))
    assert proc.returncode == 0, proc.stderr[-3000:]
    for name in ("metrics.json", "curves.png", "report.txt", "config.yaml", "labels.json", "best/model.safetensors",
                 "last/optimizer.safetensors", "last/trainer_state.json", "best/tokenizer/tokenizer.json"):
        assert (out / name).exists(), name
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["steps"] == 4 * 25  # 400 titles / batch 16
    best = metrics["best"]
    assert set(best) >= {"accuracy", "macro_f1", "loss"}
    assert best["accuracy"] > 0.2, best  # 10 balanced classes: chance is 0.1
    state = json.loads((out / "last/trainer_state.json").read_text())
    losses = [r["loss"] for r in state["history"]["train"]]
    assert losses[-1] < losses[0]

    proc = run_tool("eval.py", "-o", f"Global.checkpoint={out / 'best'}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    evaluated = json.loads(proc.stdout.strip().splitlines()[-1])
    assert abs(evaluated["accuracy"] - best["accuracy"]) < 1e-9
    assert abs(evaluated["macro_f1"] - best["macro_f1"]) < 1e-9

    texts = [row["text"] for row in read_jsonl(thucnews_small["dev"])[:5]]
    for row in predict_with_tool(out / "best", texts, out / "labels.json"):
        assert row["tags"][0] == max(row["scores"], key=row["scores"].get)


def test_multilabel_poems_thresholds_and_metrics(poetry_small, vocab_file, tmp_path):
    out = tmp_path / "poems"
    config = load_config(CONFIG, tiny_overrides(poetry_small, out, vocab_file, task="multi_label",
                                                 Global__epochs=3, Data__test_path="null", Data__max_seq_len=64))
    result = build_run(config).fit()
    best = result["best"]
    for key in ("micro_f1", "macro_f1", "samples_f1", "mAP", "micro_f1@0.5"):
        assert 0.0 <= best[key] <= 1.0, key
    assert result["best_metric"] == "micro_f1"
    # tuned thresholds are at least as good as 0.5 on the set they were tuned on
    assert best["micro_f1"] >= best["micro_f1@0.5"] - 1e-9
    ckpt = load_checkpoint(out / "best")
    assert ckpt.thresholds is not None and len(ckpt.thresholds) == len(ckpt.labels)
    assert np.isin(np.round(ckpt.thresholds, 2), np.round(DEFAULT_GRID, 2)).all()
    rows = predict_texts(ckpt, [r["text"] for r in read_jsonl(poetry_small["dev"])[:8]])
    for row in rows:
        for tag in row["tags"]:
            assert tag in ckpt.labels.names
            assert row["scores"].get(tag, 1.0) >= ckpt.thresholds[ckpt.labels.index[tag]]


def test_max_steps_stops_early_and_resume_true_without_checkpoint_starts_fresh(thucnews_small, vocab_file, tmp_path):
    out = tmp_path / "smoke"
    config = load_config(CONFIG, tiny_overrides(thucnews_small, out, vocab_file, Global__max_steps=7,
                                                Global__resume="true", Data__test_path="null"))
    result = build_run(config).fit()
    assert result["steps"] == 7
    assert json.loads((out / "last/trainer_state.json").read_text())["global_step"] == 7


def test_resume_refuses_a_checkpoint_with_another_label_set(thucnews_small, vocab_file, tmp_path):
    out = tmp_path / "labels_changed"
    first = load_config(CONFIG, tiny_overrides(thucnews_small, out, vocab_file, Global__max_steps=3,
                                               Data__test_path="null"))
    build_run(first).fit()
    rows = [r for r in read_jsonl(thucnews_small["train"]) if r["labels"][0] in ("体育", "财经")]
    fewer = {"train": tmp_path / "two_labels.jsonl", "dev": thucnews_small["dev"]}  # the data changed
    fewer["train"].write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    again = load_config(CONFIG, tiny_overrides(fewer, out, vocab_file, Global__max_steps=6, Global__resume="true",
                                               Data__test_path="null", Data__eval_path=tmp_path / "two_labels.jsonl"))
    with pytest.raises(ModelLoadError, match="label set differs"):
        build_run(again).fit()
