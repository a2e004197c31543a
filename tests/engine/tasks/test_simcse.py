"""Contrastive pretraining (unsupervised SimCSE) on real THUCNews titles with a tiny ERNIE, end to end.

The loss falls, the kNN monitor picks ``best/``, ``best/`` hands its encoder (and a tokenizer without
``Data.text_prefix``) to a fine-tuning run, a run killed with SIGKILL and resumed ends like an
uninterrupted one, augmentations make the two views, bad ``Pretrain.*`` keys fail clearly, and two
data-parallel CPU ranks train with only rank 0 writing.

The tiny model uses mean pooling: from random init, CLS pooling of a 2-layer ERNIE does not learn
(its InfoNCE loss sits at log(batch size), every text embedded alike), mean pooling learns in a few steps.
"""
from __future__ import annotations

import contextlib
import io
import json
import math
import os
import runpy
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from helpers import REPO, TINY_MODEL, read_jsonl, tiny_overrides, train_on_two_ranks, with_o
from safetensors.numpy import load_file

from paddle_tag.config import load_config
from paddle_tag.data.tokenizer import TextTokenizer, load_tokenizer
from paddle_tag.engine.builder import build_run
from paddle_tag.engine.tasks.simcse import KnnMonitor
from paddle_tag.errors import ConfigError
from paddle_tag.models.contrastive import ContrastiveTextModel
from paddle_tag.models.encoders import encoder_from_pretrained

CONFIG = str(REPO / "configs/pretrain/simcse_ernie_small.yaml")
TAGGER_CONFIG = str(REPO / "configs/text/thucnews_ernie_small.yaml")
BATCH, TEXTS, EPOCHS, EVAL_EVERY = 16, 400, 1, 5
STEPS = EPOCHS * (TEXTS // BATCH)  # 25


@pytest.fixture(scope="module")
def corpus(thucnews_small, tmp_path_factory) -> dict[str, Path]:
    """The unlabeled corpus (the 400 THUCNews train titles with their labels dropped) and the labelled
    titles of the kNN monitor (bank: those 400, queries: 100 dev titles)."""
    unlabeled = tmp_path_factory.mktemp("unlabeled") / "titles.jsonl"
    rows = read_jsonl(thucnews_small["train"])
    assert len(rows) == TEXTS
    unlabeled.write_text("".join(json.dumps({"text": r["text"]}, ensure_ascii=False) + "\n" for r in rows),
                         encoding="utf-8")
    return {"texts": unlabeled, "bank": thucnews_small["train"], "queries": thucnews_small["dev"]}


def pretrain_overrides(corpus: dict[str, Path], out: Path, vocab: str, *extra: str) -> list[str]:
    """``-o`` overrides of the SimCSE config for a quick real run of the tiny ERNIE (mean pooling)."""
    return [*TINY_MODEL, "Model.pooling=mean", f"Model.vocab_file={vocab}", f"Data.train_path={corpus['texts']}",
            f"Pretrain.knn_train_path={corpus['bank']}", f"Pretrain.knn_eval_path={corpus['queries']}",
            f"Global.output_dir={out}", "Global.progress=false", "Data.max_seq_len=48", f"Data.batch_size={BATCH}",
            "Optimizer.lr=1e-3", "Optimizer.warmup_ratio=0.05", f"Global.epochs={EPOCHS}",
            f"Global.eval_every={EVAL_EVERY}", "Global.log_every=1", *extra]


def train_cmd(overrides: list[str]) -> list[str]:
    return [sys.executable, str(REPO / "tools/train.py"), "-c", CONFIG, *with_o(overrides)]


@pytest.fixture(scope="module")
def simcse_run(corpus, vocab_file, tmp_path_factory) -> Path:
    """``tools/train.py`` on the SimCSE config: 25 steps, kNN evaluation every 5 (word deletion 0.1 as configured).

    Its ``main`` runs in this process (the command line's code path without another Paddle import)."""
    out = tmp_path_factory.mktemp("simcse") / "run"
    main = runpy.run_path(str(REPO / "tools/train.py"))["main"]
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        assert main(["-c", CONFIG, *with_o(pretrain_overrides(corpus, out, vocab_file))]) == 0
    summary = json.loads(stdout.getvalue().strip().splitlines()[-2])  # the JSON line, then the "outputs in" line
    assert summary["kind"] == "simcse" and summary["steps"] == STEPS
    return out


def state_of(out: Path) -> dict:
    return json.loads((out / "last/trainer_state.json").read_text(encoding="utf-8"))


# ---------------------------------------------------------------- 1. the loss falls


def test_simcse_steps_lower_the_infonce_loss(simcse_run):
    losses = [r["loss"] for r in state_of(simcse_run)["history"]["train"]]
    assert len(losses) == STEPS  # Global.log_every=1
    first, last = float(np.mean(losses[:3])), float(np.mean(losses[-5:]))
    assert last < 0.25 * first, (first, last)
    # far below log(B), where an encoder that embeds every text alike (collapse) leaves the loss
    assert last < 0.25 * math.log(BATCH), losses


# ---------------------------------------------------------------- 2. the kNN monitor selects best/


def saved_knn(directory: Path, config) -> float:
    """kNN top-1 of the encoder saved in ``directory`` (loaded as ``Model.pretrained`` would load it)."""
    encoder = encoder_from_pretrained("ernie", str(directory))
    tokenizer = TextTokenizer.from_file(directory / "tokenizer.json")
    model = ContrastiveTextModel(encoder, tokenizer.pad_token_id, "mean")
    monitor = KnnMonitor.from_config(config)
    return monitor.accuracy(model, tokenizer, config.Data.max_seq_len, config.Data.eval_batch_size)


def test_knn_monitor_reports_knn_top1_and_picks_best(simcse_run):
    metrics = json.loads((simcse_run / "metrics.json").read_text(encoding="utf-8"))
    evals = state_of(simcse_run)["history"]["eval"]
    assert [e["step"] for e in evals] == list(range(EVAL_EVERY, STEPS + 1, EVAL_EVERY))
    scores = [e["knn_top1"] for e in evals]
    assert all(0.0 <= s <= 1.0 for s in scores)
    assert max(scores) > 0.15, scores  # 10 balanced classes: chance is 0.1
    # best/ is the first evaluation with the highest kNN top-1
    best = int(np.argmax(scores))
    assert metrics["best_step"] == evals[best]["step"]
    assert metrics["best"]["knn_top1"] == scores[best]
    best_saved = json.loads((simcse_run / "best/metrics.json").read_text(encoding="utf-8"))
    assert best_saved == metrics["best"]
    assert json.loads((simcse_run / "best/checkpoint.json").read_text(encoding="utf-8"))["step"] == metrics["best_step"]
    # and the weights in best/ and last/ are the ones that scored those numbers
    config = load_config(simcse_run / "config.yaml")
    assert saved_knn(simcse_run / "best", config) == pytest.approx(scores[best], abs=1e-9)
    assert saved_knn(simcse_run / "last", config) == pytest.approx(scores[-1], abs=1e-9)


# ---------------------------------------------------------------- 3. hand-off to fine-tuning


def test_best_is_the_encoder_a_finetuning_run_starts_from(simcse_run, thucnews_small, vocab_file, tmp_path):
    best = simcse_run / "best"
    for name in ("config.json", "model.safetensors", "tokenizer.json", "projection.safetensors", "config.yaml"):
        assert (best / name).is_file(), name
    config = load_config(TAGGER_CONFIG, tiny_overrides(thucnews_small, tmp_path / "ft", vocab_file,
                                                       Model__pretrained=best, Data__test_path="null",
                                                       Model__pooling="mean", Global__max_steps=3))
    trainer = build_run(config)
    saved = load_file(str(best / "model.safetensors"))
    got = {name: t.numpy() for name, t in trainer.model.encoder.state_dict().items()}
    assert set(got) == set(saved)
    for name, value in saved.items():
        np.testing.assert_array_equal(got[name], value, err_msg=name)
    text = read_jsonl(thucnews_small["dev"])[0]["text"]
    assert trainer.task.tokenizer.encode([text]) == TextTokenizer.from_file(best / "tokenizer.json").encode([text])
    result = trainer.fit()  # and it fine-tunes from there
    assert result["steps"] == 3 and 0.0 <= result["best"]["accuracy"] <= 1.0


def test_text_prefix_is_used_in_pretraining_but_not_saved(corpus, tiny_bert_dir, thucnews_small, vocab_file,
                                                           tmp_path):
    prefix = "query: "
    text = read_jsonl(thucnews_small["dev"])[0]["text"]
    base = load_tokenizer(str(tiny_bert_dir), None)
    with_prefix = base.encode([prefix + text])[0]
    without = base.encode([text])[0]
    assert with_prefix != without

    out = tmp_path / "pre"
    config = load_config(CONFIG, pretrain_overrides(
        corpus, out, vocab_file, "Model.name=bert", f"Model.pretrained={tiny_bert_dir}", f"Data.text_prefix={prefix}",
        "Global.max_steps=2", "Pretrain.knn_train_path=null", "Pretrain.knn_eval_path=null",
        "Pretrain.word_deletion=0"))
    pretrainer = build_run(config)
    assert pretrainer.task.tokenizer.encode([text])[0] == with_prefix
    first_view = pretrainer.task.views(np.arange(BATCH), 0)[0]
    own = pretrainer.task.tokenizer.encode([pretrainer.task.texts[0]])[0]
    assert first_view[:len(own)].tolist() == own  # training sees the prefix
    assert pretrainer.fit()["steps"] == 2
    saved = TextTokenizer.from_file(out / "best/tokenizer.json")
    assert saved.encode([text])[0] == without  # the checkpoint's tokenizer has no prefix of its own

    # fine-tuning with the prefix puts it in front exactly once
    ft = load_config(TAGGER_CONFIG, tiny_overrides(thucnews_small, tmp_path / "ft", vocab_file,
                                                   Model__name="bert", Model__pretrained=out / "best",
                                                   Data__text_prefix=prefix, Data__test_path="null"))
    trainer = build_run(ft)
    assert trainer.task.tokenizer.encode([text])[0] == with_prefix


# ---------------------------------------------------------------- 4. resume after a kill


def test_resume_after_sigkill_matches_uninterrupted_run(simcse_run, corpus, vocab_file, tmp_path, capsys):
    killed = tmp_path / "killed"
    overrides = pretrain_overrides(corpus, killed, vocab_file)
    victim = subprocess.Popen(train_cmd(overrides), cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300

    def saved_step() -> int:
        try:
            return json.loads((killed / "last/trainer_state.json").read_text())["global_step"]
        except (FileNotFoundError, json.JSONDecodeError, KeyError):
            return 0

    while saved_step() < 2 * EVAL_EVERY and victim.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    if victim.poll() is not None:
        pytest.fail("pretraining finished before it could be killed; make the run longer")
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait()
    step_at_kill = saved_step()
    assert 2 * EVAL_EVERY <= step_at_kill < STEPS

    result = build_run(load_config(CONFIG, overrides + ["Global.resume=true"])).fit()
    assert "[resume] from" in capsys.readouterr().out
    reference = json.loads((simcse_run / "metrics.json").read_text(encoding="utf-8"))
    assert result["steps"] == reference["steps"] == STEPS
    assert result["best_step"] == reference["best_step"]
    for key, value in reference["best"].items():
        assert result["best"][key] == pytest.approx(value, abs=1e-6), key
    ref_state, got_state = state_of(simcse_run), state_of(killed)
    for part in ("train", "eval"):
        assert len(got_state["history"][part]) == len(ref_state["history"][part])
        for ref, got in zip(ref_state["history"][part], got_state["history"][part]):
            assert got == pytest.approx(ref, abs=1e-6), (part, ref["step"])
    for folder, name in [("last", "model.safetensors"), ("last", "projection.safetensors"),
                         ("last", "optimizer.safetensors"), ("best", "model.safetensors")]:
        ref_w, got_w = load_file(str(simcse_run / folder / name)), load_file(str(killed / folder / name))
        assert set(got_w) == set(ref_w)
        for key, value in ref_w.items():
            np.testing.assert_allclose(got_w[key], value, atol=1e-6, err_msg=f"{folder}/{name}: {key}")


# ---------------------------------------------------------------- 5. augmentations make the views


def build_views(corpus, vocab_file, out: Path, *extra: str):
    config = load_config(CONFIG, pretrain_overrides(corpus, out, vocab_file, "Pretrain.knn_train_path=null",
                                                    "Pretrain.knn_eval_path=null", *extra))
    return build_run(config)


def real_lengths(ids: np.ndarray, pad_id: int) -> np.ndarray:
    return (ids != pad_id).sum(axis=1)


def test_views_follow_the_augmentations_and_are_deterministic(corpus, vocab_file, tmp_path):
    batch = np.arange(BATCH)
    plain = build_views(corpus, vocab_file, tmp_path / "plain", *[f"Pretrain.{k}=0" for k in
                                                                  ("word_deletion", "word_swap", "char_mask")])
    assert plain.task.augment is None
    views = plain.task.views(batch, 7)
    assert views.shape[0] == 2 * BATCH
    np.testing.assert_array_equal(views[:BATCH], views[BATCH:])  # only dropout will tell them apart
    pad = plain.task.tokenizer.pad_token_id
    originals = real_lengths(views[:BATCH], pad)

    deleting = build_views(corpus, vocab_file, tmp_path / "del", "Pretrain.word_deletion=1.0")
    views = deleting.task.views(batch, 7)
    first, second = views[:BATCH], views[BATCH:]
    assert (real_lengths(first, pad) <= originals).all() and (real_lengths(second, pad) <= originals).all()
    assert (real_lengths(first, pad) < originals).any()  # words were deleted
    differ = [not np.array_equal(a, b) for a, b in zip(first, second)]
    assert sum(differ) >= BATCH // 2, differ  # the two views of a text differ

    # same seed and step: the same views, whatever was drawn before and in a freshly built run
    np.testing.assert_array_equal(deleting.task.views(batch, 7), views)
    deleting.task.views(batch, 3)
    np.testing.assert_array_equal(deleting.task.views(batch, 7), views)
    again = build_views(corpus, vocab_file, tmp_path / "again", "Pretrain.word_deletion=1.0")
    np.testing.assert_array_equal(again.task.views(batch, 7), views)
    assert not np.array_equal(deleting.task.views(batch, 8), views)  # another step, other views
    reseeded = build_views(corpus, vocab_file, tmp_path / "seed", "Pretrain.word_deletion=1.0", "Global.seed=7")
    assert not np.array_equal(reseeded.task.views(batch, 7), views)


# ---------------------------------------------------------------- 6. bad configs


@pytest.mark.parametrize("extra, message", [
    (["Pretrain.synonym_replace=0.5"], r"Pretrain\.synonym_replace needs Pretrain\.synonyms_path"),
    (["Pretrain.synonym_replace=0.5", "Pretrain.synonyms_path=missing/synonyms.tsv"],
     r"needs Pretrain\.synonyms_path.*missing/synonyms\.tsv"),
    (["Pretrain.char_mask=1.5"], r"Pretrain\.char_mask is a probability in \[0, 1\], got 1\.5"),
    (["Pretrain.word_deletion=-0.1"], r"Pretrain\.word_deletion is a probability in \[0, 1\], got -0\.1"),
    (["Pretrain.knn_eval_path=null"], r"needs both Pretrain\.knn_train_path and Pretrain\.knn_eval_path"),
    (["Pretrain.temperature=0"], r"Pretrain\.temperature must be positive, got 0"),
])
def test_bad_pretrain_config_is_refused_before_writing_anything(extra, message, corpus, vocab_file, tmp_path):
    out = tmp_path / "run"
    with pytest.raises(ConfigError, match=message):  # range checks fire on load, the others when the run is built
        build_run(load_config(CONFIG, pretrain_overrides(corpus, out, vocab_file, *extra)))
    assert not out.exists()


def test_misspelled_pretrain_key_suggests_the_right_one(corpus, vocab_file, tmp_path):
    with pytest.raises(ConfigError, match=r"unknown key Pretrain\.temprature.*did you mean Pretrain\.temperature\?"):
        load_config(CONFIG, pretrain_overrides(corpus, tmp_path / "run", vocab_file, "Pretrain.temprature=0.1"))


# ---------------------------------------------------------------- 7. two data-parallel CPU ranks


def test_two_cpu_ranks_pretrain_and_only_rank0_writes(corpus, vocab_file, tmp_path):
    out, logs = tmp_path / "dp", tmp_path / "log"
    epochs = 2
    overrides = pretrain_overrides(corpus, out, vocab_file, f"Global.epochs={epochs}", "Global.eval_every=0",
                                   "Global.log_every=4", "Pretrain.word_deletion=0")  # no jieba start-up per rank
    worker_logs = train_on_two_ranks(CONFIG, overrides, logs)
    metrics = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["steps"] == epochs * (TEXTS // (BATCH * 2))  # every step takes a batch on each rank
    assert metrics["best_step"] in (TEXTS // (BATCH * 2), metrics["steps"])  # evaluated at each epoch's end
    expected = {"config.yaml", "metrics.json", "curves.png"}
    for folder in ("best", "last"):
        expected |= {f"{folder}/{name}" for name in ("config.json", "config.yaml", "metrics.json", "model.safetensors",
                                                     "projection.safetensors", "checkpoint.json", "tokenizer.json")}
    expected |= {"last/optimizer.safetensors", "last/trainer_state.json"}
    written = {str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()}
    assert written == expected  # no temporary or previous copies, nothing from rank 1
    assert {p.name for p in out.iterdir()} == {"config.yaml", "metrics.json", "curves.png", "best", "last"}
    # rank 1 evaluated too, and its weights (hence its kNN scores) match rank 0's
    evals = [[line for line in worker_logs[f"workerlog.{r}"].splitlines() if line.startswith("[eval]")]
             for r in (0, 1)]
    assert len(evals[0]) == epochs and evals[0] == evals[1], evals
