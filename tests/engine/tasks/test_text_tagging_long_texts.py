"""Long texts and long tails through the real tools, with a tiny ERNIE on real poems: windows + the wide part
through train → eval → predict, the frozen-encoder fast path and its feature cache, tag-name head rows."""
from __future__ import annotations

import json

import numpy as np
import paddle
import pytest
from helpers import REPO, read_jsonl, run_tool, tiny_overrides, train_on_two_ranks, with_o
from safetensors.numpy import load_file

from paddle_tag.config import load_config
from paddle_tag.engine import feature_cache
from paddle_tag.engine.builder import build_run
from paddle_tag.engine.checkpoint import load_checkpoint
from paddle_tag.engine.head_init import pooled_features
from paddle_tag.engine.predictor import predict_texts

CONFIG = str(REPO / "configs/text/poetry_ernie_small.yaml")
# texts longer than 32 tokens are read as windows of 32 sharing 8 tokens; a small wide part
LONG_TEXT = ["Data.max_seq_len=32", "Data.on_long_text=windows", "Data.window_overlap=8", "Data.max_windows=6",
             "Model.wide=true", "Model.wide_buckets=4096"]


def poem_overrides(data, out, vocab, *extra, **kwargs) -> list[str]:
    base = tiny_overrides(data, out, vocab, task="multi_label", Data__test_path="null", **kwargs)
    return [o for o in base if not o.startswith("Data.max_seq_len=")] + LONG_TEXT + list(extra)


def test_windows_and_wide_through_the_tools(poetry_small, vocab_file, tmp_path):
    out = tmp_path / "run"
    proc = run_tool("train.py", "-c", CONFIG, *with_o(poem_overrides(poetry_small, out, vocab_file,
                                                                     Global__epochs=3)))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "[data] train:" in proc.stdout + proc.stderr  # texts past 6 windows are reported, not cut silently
    metrics = json.loads((out / "metrics.json").read_text())
    state = json.loads((out / "last/trainer_state.json").read_text())
    losses = [r["loss"] for r in state["history"]["eval"]]
    assert losses[-1] < losses[0]
    assert metrics["best"]["mAP"] > 0.1

    proc = run_tool("eval.py", "-o", f"Global.checkpoint={out / 'best'}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    evaluated = json.loads(proc.stdout.strip().splitlines()[-1])
    for key in ("micro_f1", "macro_f1", "mAP"):
        assert evaluated[key] == pytest.approx(metrics["best"][key], abs=1e-9), key

    poem = read_jsonl(poetry_small["dev"])[0]["text"]
    texts = ["湖", poem, "西湖" * 50_000]
    inputs = tmp_path / "new.jsonl"
    inputs.write_text("".join(json.dumps({"text": t}, ensure_ascii=False) + "\n" for t in texts), encoding="utf-8")
    proc = run_tool("predict.py", "-o", f"Global.checkpoint={out / 'best'}", "--input", str(inputs))
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = [json.loads(line) for line in proc.stdout.strip().splitlines()]
    assert [r["truncated"] for r in rows] == [False, False, True]  # 100,000 characters: past the window cap
    assert all(len(r["scores"]) == 5 for r in rows)


def test_frozen_encoder_trains_only_the_top_and_caches_the_windows(poetry_small, vocab_file, tmp_path, monkeypatch):
    cache = tmp_path / "features"
    overrides = poem_overrides(poetry_small, tmp_path / "frozen", vocab_file, "Model.freeze_encoder=true",
                               f"Model.feature_cache={cache}", "Model.window_pooling=attention",
                               "Optimizer.lr=1e-2", Global__epochs=4)
    trainer = build_run(load_config(CONFIG, overrides))
    encoder_before = {k: v.numpy().copy() for k, v in trainer.model.encoder.state_dict().items()}
    files = sorted(cache.glob("*.safetensors"))
    assert len(files) == 2  # train and eval windows
    saved = load_file(str(files[0]))
    assert saved["features"].shape[1] == 32 and saved["offsets"][0] == 0
    result = trainer.fit()
    state = json.loads((tmp_path / "frozen/last/trainer_state.json").read_text())
    losses = [r["loss"] for r in state["history"]["train"]]
    assert losses[-1] < losses[0]

    best = load_checkpoint(tmp_path / "frozen/best")
    for name, value in best.model.encoder.state_dict().items():
        np.testing.assert_array_equal(value.numpy(), encoder_before[name], err_msg=name)
    # the checkpoint is a whole model: reading the texts through its encoder gives the metrics training
    # computed from the cached features
    proc = run_tool("eval.py", "-o", f"Global.checkpoint={tmp_path / 'frozen/best'}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    evaluated = json.loads(proc.stdout.strip().splitlines()[-1])
    for key in ("micro_f1", "macro_f1", "mAP"):
        assert evaluated[key] == pytest.approx(result["best"][key], abs=1e-6), key

    def no_embedding(*args, **kwargs):
        raise AssertionError("the cached features should have been used")

    monkeypatch.setattr(feature_cache, "embed_windows", no_embedding)
    again = build_run(load_config(CONFIG, overrides))
    for split in (again.task.train_set, again.task.eval_set):
        assert split.features is not None
    other = poem_overrides(poetry_small, tmp_path / "other", vocab_file, "Model.freeze_encoder=true",
                           f"Model.feature_cache={cache}", "Data.window_overlap=4")
    with pytest.raises(AssertionError, match="cached features"):  # other windows: another key
        build_run(load_config(CONFIG, other))


def test_a_corrupt_cache_file_is_embedded_again(poetry_small, vocab_file, tmp_path):
    cache = tmp_path / "features"
    overrides = poem_overrides(poetry_small, tmp_path / "run", vocab_file, "Model.freeze_encoder=true",
                               f"Model.feature_cache={cache}", Global__max_steps=2)
    first = build_run(load_config(CONFIG, overrides)).task.train_set.features.features
    for path in cache.glob("*.safetensors"):
        path.write_bytes(path.read_bytes()[:100])
    second = build_run(load_config(CONFIG, overrides)).task.train_set.features.features
    np.testing.assert_allclose(first, second, atol=1e-6)
    assert all(load_file(str(p))["features"].shape[0] > 0 for p in cache.glob("*.safetensors"))


def test_tag_name_rows_start_standardised_around_the_prior(poetry_small, vocab_file, tmp_path):
    overrides = poem_overrides(poetry_small, tmp_path / "names", vocab_file, "Model.head_init=tag_names",
                               "Model.freeze_encoder=true", f"Model.feature_cache={tmp_path / 'features'}",
                               "Model.wide=false", Global__max_steps=1)
    trainer = build_run(load_config(CONFIG, overrides))
    model, train = trainer.model, trainer.task.train_set
    model.eval()
    features = pooled_features(model, train, np.arange(len(train)))
    with paddle.no_grad():
        logits = features @ model.classifier.weight.numpy().astype("float64") + model.classifier.bias.numpy()
    counts = train.targets.sum(axis=0)
    prior = np.log((counts + 0.5) / (len(train) + 1 - counts - 0.5))
    # a sample of 512 of the 400 training poems is all of them: means and spread are exact here
    assert np.allclose(logits.mean(axis=0), prior, atol=1e-3)
    assert logits.std(axis=0).mean() == pytest.approx(1.0, rel=1e-3)
    weights = model.classifier.weight.numpy().T  # (C, H)
    names = trainer.task.labels.names
    unit = weights / np.linalg.norm(weights, axis=1, keepdims=True)
    cosines = unit @ unit.T - 2 * np.eye(len(names))
    assert cosines.max() < 0.99  # a direction per tag, not one shared direction


def test_tag_name_rows_on_a_fine_tuned_windowed_encoder(poetry_small, vocab_file, tmp_path):
    """Without the frozen cache the same init reads the training texts' windows through the encoder itself."""
    overrides = poem_overrides(poetry_small, tmp_path / "names", vocab_file, "Model.head_init=tag_names",
                               Global__max_steps=1)
    trainer = build_run(load_config(CONFIG, overrides))
    model, train = trainer.model, trainer.task.train_set
    assert train.features is None and int(train.window_counts.max()) > 1  # several windows, read by the encoder
    model.eval()
    features = pooled_features(model, train, np.arange(len(train)))
    with paddle.no_grad():
        logits = features @ model.classifier.weight.numpy().astype("float64") + model.classifier.bias.numpy()
    assert logits.std(axis=0).mean() == pytest.approx(1.0, rel=1e-3)


def test_predict_texts_reports_truncation_and_reads_one_character(poetry_small, vocab_file, tmp_path):
    out = tmp_path / "p"
    build_run(load_config(CONFIG, poem_overrides(poetry_small, out, vocab_file, Global__max_steps=3))).fit()
    ckpt = load_checkpoint(out / "best")
    rows = predict_texts(ckpt, ["月", "月" * 10_000])
    assert [r["truncated"] for r in rows] == [False, True]


def test_two_cpu_ranks_train_windows_and_the_sparse_wide_table_in_step(poetry_small, vocab_file, tmp_path):
    out, logs = tmp_path / "dp", tmp_path / "log"
    # a fast-learning wide table, so that tables out of step would show in the figures
    overrides = poem_overrides(poetry_small, out, vocab_file, "Global.eval_every=0", "Optimizer.wide_lr=30",
                               Global__epochs=2)
    worker_logs = train_on_two_ranks(CONFIG, overrides, logs)
    # each rank evaluates with its own copy of the weights: identical figures mean the sparse n-gram gradients
    # were summed across the ranks like the dense ones
    evals = [[line for line in worker_logs[f"workerlog.{r}"].splitlines() if line.startswith("[eval]")]
             for r in (0, 1)]
    assert len(evals[0]) == 2 and evals[0] == evals[1], evals
    assert json.loads((out / "metrics.json").read_text())["steps"] == 2 * (400 // (16 * 2))


def test_resuming_with_another_bucket_count_is_refused_by_name(poetry_small, vocab_file, tmp_path):
    from paddle_tag.errors import ModelLoadError

    out = tmp_path / "run"
    build_run(load_config(CONFIG, poem_overrides(poetry_small, out, vocab_file, Global__max_steps=2))).fit()
    changed = poem_overrides(poetry_small, out, vocab_file, "Model.wide_buckets=2048", "Global.resume=true",
                             Global__max_steps=4)
    with pytest.raises(ModelLoadError, match=r"wide\.table\.weight has shape \(4096, \d+\), the model wants \(2048"):
        build_run(load_config(CONFIG, changed)).fit()
    # evaluation and prediction rebuild the model from the checkpoint's own model_config.json: no mismatch there
    proc = run_tool("eval.py", "-o", f"Global.checkpoint={out / 'best'}", "-o", "Model.wide_buckets=2048")
    assert proc.returncode == 0, proc.stderr[-2000:]
