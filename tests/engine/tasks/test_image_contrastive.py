"""Contrastive image pretraining (SimCLR, MoCo v2) on real Fashion-MNIST, through the configs of configs/image/.

The loss falls (on a fixed probe batch with fixed views, and in the training log), MoCo's queue advances
and its momentum encoder trails the online one by exactly the EMA, the kNN monitor reports top-1 and picks
``best/``, a stopped run resumed from ``last/`` ends with the same weights (MoCo: momentum encoder and queue
too), and ``best/`` hands exactly its backbone to an image fine-tuning run.

Learning is shown with ResNet18 at 32×32, batch 16: the tiny backbones (pplcnet_x0_25,
mobilenetv3_small_x0_35) do learn to tell un-augmented images apart within 20 steps, but not yet the crop
invariance SimCLR's views ask for (their loss stays at log(2B - 1)); everything else uses pplcnet_x0_25.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import paddle
import pytest
from helpers import DATA, REPO, npz_subset, run_tool
from safetensors.numpy import load_file

from paddle_tag.config import load_config
from paddle_tag.engine.builder import build_run
from paddle_tag.engine.checkpoint import load_backbone
from paddle_tag.errors import ModelLoadError

CONFIGS = {m: str(REPO / f"configs/image/{m}_resnet18_fashion.yaml") for m in ("simclr", "moco")}
MOSAIC_CONFIG = str(REPO / "configs/image/mosaic_resnet18.yaml")
FASHION, MOSAIC = DATA / "fashion_mnist", DATA / "fashion_mosaic"
BATCH, STEPS, QUEUE = 16, 12, 32


@pytest.fixture(scope="module", autouse=True)
def fashion_data():
    from paddle_tag.data.sources import prepare

    prepare("fashion_mosaic", DATA)  # also Fashion-MNIST; skipped when up to date


def overrides(out: Path, *extra: str) -> list[str]:
    """A short CPU run: batch 16, 12 steps, kNN on 120 bank / 120 query images at steps 6 and 12."""
    return [f"Global.output_dir={out}", f"Data.batch_size={BATCH}", "Data.eval_batch_size=100",
            f"Global.max_steps={STEPS}", "Global.eval_every=6", "Global.log_every=1", "Global.progress=false",
            "Optimizer.warmup_ratio=0.05", "Pretrain.knn_max_items=120", f"Pretrain.queue_size={QUEUE}",
            "Pretrain.bn_splits=2", *extra]


def probe_loss(pretrainer, views: paddle.Tensor) -> float:
    """The run's own contrastive loss on fixed views (in-batch negatives only), BatchNorm in train mode."""
    first, second = views.chunk(2)
    with paddle.no_grad():
        if pretrainer.task.kind == "simclr":
            return float(pretrainer.task.loss_fn(pretrainer.model(first), pretrainer.model(second)))
        return float(pretrainer.task.loss_fn(pretrainer.model(first), pretrainer.task.keys(second)))


def learning_run(method: str, out: Path, *extra: str) -> tuple[object, float, float]:
    pretrainer = build_run(load_config(CONFIGS[method], overrides(out, *extra)))
    probe = paddle.to_tensor(pretrainer.task.views(np.arange(32), 10**6))  # a step the run never takes
    pretrainer.model.train()
    if pretrainer.task.kind == "moco":
        pretrainer.task.keys.train()
    before = probe_loss(pretrainer, probe)
    pretrainer.fit()
    pretrainer.model.train()
    return pretrainer, before, probe_loss(pretrainer, probe)


@pytest.fixture(scope="module")
def simclr_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("simclr") / "run"
    return (out, *learning_run("simclr", out, "Optimizer.lr=1e-3"))


@pytest.fixture(scope="module")
def moco_run(tmp_path_factory):
    # momentum 0.9: over 12 steps the key encoder must follow the online one (0.99 is for thousands of steps)
    out = tmp_path_factory.mktemp("moco") / "run"
    return (out, *learning_run("moco", out, "Optimizer.lr=3e-3", "Pretrain.momentum=0.9"))


def losses(pretrainer) -> list[float]:
    return [r["loss"] for r in pretrainer.state.history["train"]]


# ---------------------------------------------------------------- 1. the loss falls


def test_simclr_lowers_its_loss(simclr_run):
    _, pretrainer, before, after = simclr_run
    assert after < before - 0.1, (before, after)
    train = losses(pretrainer)
    assert len(train) == STEPS
    assert np.mean(train[-4:]) < np.mean(train[:3]) - 0.1, train
    assert np.mean(train[-4:]) < math.log(2 * BATCH - 1), train  # below an encoder that tells nothing apart


def test_moco_lowers_its_loss(moco_run):
    _, pretrainer, before, after = moco_run
    assert after < before - 0.1, (before, after)
    # the first steps see the random initial queue; once it holds real keys, the loss is below chance
    train = losses(pretrainer)
    assert np.mean(train[-4:]) < math.log(BATCH + QUEUE) - 0.2, train


# ---------------------------------------------------------------- 2. MoCo's queue and momentum encoder


def trainable(layer) -> dict[str, np.ndarray]:
    return {n: p.numpy().copy() for n, p in layer.named_parameters() if not p.stop_gradient}


def test_moco_queue_advances_and_momentum_encoder_follows_by_ema(tmp_path):
    config = load_config(CONFIGS["moco"], overrides(tmp_path / "run", "Model.name=pplcnet_x0_25", "Data.batch_size=8",
                                                    "Pretrain.momentum=0.9", "Pretrain.queue_size=20"))
    pretrainer = build_run(config)
    model, keys = pretrainer.model, pretrainer.task.keys
    model.train()
    keys.train()
    online = trainable(model)
    names = list(online)
    key_params = dict(keys.named_parameters())
    assert all(key_params[n].stop_gradient for n in names)  # the optimizer never moves the key side
    np.testing.assert_array_equal(key_params[names[0]].numpy(), online[names[0]])  # starts as a copy
    initial_queue = keys.queue.queue.numpy().copy()
    batches = pretrainer._epoch_batches(0)
    for step in range(3):
        key_before, online_before = {n: key_params[n].numpy().copy() for n in names}, trainable(model)
        pretrainer._train_step(batches[step], step)
        # keys first move toward the online weights of before the optimizer step: k = m k + (1 - m) q
        for n in names:
            np.testing.assert_allclose(key_params[n].numpy(), 0.9 * key_before[n] + 0.1 * online_before[n],
                                       rtol=1e-5, atol=1e-6, err_msg=n)
        gap_before = sum(np.sum((key_before[n] - online_before[n]) ** 2) for n in names)
        gap_after = sum(np.sum((key_params[n].numpy() - online_before[n]) ** 2) for n in names)
        if step > 0:
            assert gap_after == pytest.approx(0.81 * gap_before, rel=1e-3)  # (m)^2 of the squared distance
        assert int(keys.queue.ptr.item()) == (step + 1) * 8 % 20
    online_now = trainable(model)
    assert any(not np.allclose(key_params[n].numpy(), online_now[n]) for n in names)  # differs after steps
    queue = keys.queue.queue.numpy()
    # 24 keys written into 20 slots: rows 0-3 twice, all rows changed, each a unit vector
    assert not np.isclose(queue, initial_queue).all(axis=1).any()
    np.testing.assert_allclose(np.linalg.norm(queue, axis=1), 1.0, atol=1e-5)


# ---------------------------------------------------------------- 3. kNN monitor, best/ and last/


@pytest.mark.parametrize("run", ["simclr_run", "moco_run"])
def test_knn_monitor_reports_top1_and_selects_best(run, request):
    out, pretrainer, _, _ = request.getfixturevalue(run)
    metrics = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    evals = pretrainer.state.history["eval"]
    assert [e["step"] for e in evals] == [6, 12]
    scores = [e["knn_top1"] for e in evals]
    assert all(0.25 < s <= 1.0 for s in scores), scores  # 10 balanced classes: chance is 0.1
    assert metrics["best"]["knn_top1"] == max(scores) and metrics["best_step"] == evals[int(np.argmax(scores))]["step"]
    assert metrics["samples_per_s"] > 0 and metrics["backbone"] == "resnet18"
    expected = {"backbone.safetensors", "backbone.json", "projection.safetensors", "config.yaml", "metrics.json",
                "checkpoint.json"}
    assert {p.name for p in (out / "best").iterdir()} == expected
    last = expected | {"optimizer.safetensors", "trainer_state.json"}
    assert {p.name for p in (out / "last").iterdir()} == (last | {"momentum.safetensors"} if "moco" in run else last)
    assert (out / "curves.png").stat().st_size > 0
    # best/ holds the weights that scored the best kNN: re-embed with them
    load_backbone(pretrainer.model.encoder, out / "best")
    assert pretrainer.task.monitor.accuracy(pretrainer.model, 100) == pytest.approx(max(scores), abs=1e-9)


# ---------------------------------------------------------------- 4. resume after a stop


@pytest.mark.parametrize("method", ["moco", "simclr"])
def test_resume_after_stop_matches_uninterrupted_run(method, tmp_path):
    tiny = ["Model.name=pplcnet_x0_25", "Data.batch_size=8", "Global.max_steps=6", "Global.eval_every=3",
            "Pretrain.knn_max_items=50"]
    whole = tmp_path / "whole"
    build_run(load_config(CONFIGS[method], overrides(whole, *tiny))).fit()

    stopped = tmp_path / "stopped"
    config = load_config(CONFIGS[method], overrides(stopped, *tiny))
    victim = build_run(config)
    train_step = victim._train_step

    def stop_at_step_4(indices, step):
        if step == 4:  # last/ was written after step 3; step 4 is lost with the process
            raise KeyboardInterrupt
        return train_step(indices, step)

    victim._train_step = stop_at_step_4
    with pytest.raises(KeyboardInterrupt):
        victim.fit()
    del victim
    resumed = build_run(load_config(CONFIGS[method], overrides(stopped, *tiny, "Global.resume=true")))
    result = resumed.fit()
    assert result["steps"] == 6
    reference = json.loads((whole / "metrics.json").read_text(encoding="utf-8"))
    assert result["best"] == pytest.approx(reference["best"], abs=1e-6)
    files = ["backbone.safetensors", "projection.safetensors", "optimizer.safetensors"]
    files += ["momentum.safetensors"] if method == "moco" else []
    for name in files:
        ref, got = load_file(str(whole / "last" / name)), load_file(str(stopped / "last" / name))
        assert set(ref) == set(got), name
        for key, value in ref.items():
            np.testing.assert_allclose(got[key], value, atol=1e-6, err_msg=f"{name}: {key}")


# ---------------------------------------------------------------- 5. hand-off to image fine-tuning


def test_best_backbone_is_what_image_finetuning_starts_from(simclr_run, tmp_path):
    out = simclr_run[0]
    dev = npz_subset(MOSAIC / "dev.npz", tmp_path / "mosaic/dev.npz", 64)
    finetune = ["Data.image_size=32", f"Data.eval_path={dev}", "Data.test_path=null", "Data.batch_size=16",
                "Global.max_steps=1", "Global.progress=false", f"Global.output_dir={tmp_path / 'ft'}"]
    trainer = build_run(load_config(MOSAIC_CONFIG, finetune + [f"Model.pretrained={out / 'best'}"]))
    saved = load_file(str(out / "best/backbone.safetensors"))
    got = {name: t.numpy() for name, t in trainer.model.encoder.state_dict().items()}
    assert set(got) == set(saved)
    for name, value in saved.items():
        np.testing.assert_array_equal(got[name], value, err_msg=name)
    fresh = build_run(load_config(MOSAIC_CONFIG, finetune))
    assert not np.array_equal(fresh.model.encoder.state_dict()["net.stem.0.conv.weight"].numpy(),
                              saved["net.stem.0.conv.weight"])  # a random init would not pass the check above
    assert trainer.fit()["steps"] == 1  # and it fine-tunes from there

    with pytest.raises(ModelLoadError, match=r"holds a 'resnet18' backbone, but Model.name=pplcnet_x0_25"):
        build_run(load_config(MOSAIC_CONFIG, finetune + [f"Model.pretrained={out / 'best'}",
                                                         "Model.name=pplcnet_x0_25"]))
    with pytest.raises(ModelLoadError, match="is not a paddle_tag checkpoint"):
        build_run(load_config(MOSAIC_CONFIG, finetune + [f"Model.pretrained={tmp_path}"]))


def test_eval_tool_probes_the_pretrained_backbone(simclr_run, tmp_path):
    """tools/eval.py --linear-probe reads the run's config.yaml, embeds with the best/ backbone, and its kNN
    figure is the monitor's own on the same bank and queries."""
    out = simclr_run[0]
    report = tmp_path / "probe.json"
    proc = run_tool("eval.py", "--linear-probe", "-o", f"Global.checkpoint={out / 'best'}", "--max-items", "120",
                    "--output", str(report))
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(report.read_text(encoding="utf-8"))
    assert result["train_items"] == result["eval_items"] == 120
    assert 0.3 < result["linear_probe_accuracy"] <= 1.0  # 10 classes: chance is 0.1
    best = json.loads((out / "metrics.json").read_text(encoding="utf-8"))["best"]
    assert result["knn_top1"] == pytest.approx(best["knn_top1"], abs=1e-6)

    proc = run_tool("eval.py", "--linear-probe", "-o", f"Global.checkpoint={out / 'best'}",
                    "-o", "Pretrain.knn_eval_path=null")
    assert proc.returncode == 2 and "needs labelled data" in proc.stderr
