"""Multi-label image tagging of real Fashion-MNIST 2×2 mosaics: tools/train.py → checkpoint → tools/eval.py,
flip-only training batches, and clear errors for bad image inputs and configs."""
from __future__ import annotations

import contextlib
import io
import json
import runpy
import typing
from pathlib import Path

import numpy as np
import pytest
from helpers import DATA, REPO, npz_subset, with_o
from safetensors.numpy import load_file

from paddle_tag.config import load_config
from paddle_tag.config.schema import IMAGE_BACKBONES, ModelConfig
from paddle_tag.data.images import ImageDataset, read_image_set
from paddle_tag.engine.builder import build_run
from paddle_tag.engine.checkpoint import load_checkpoint
from paddle_tag.engine.predictor import predict_texts
from paddle_tag.errors import ConfigError, DataError
from paddle_tag.models.image import ImageTagger

CONFIG = str(REPO / "configs/image/mosaic_resnet18.yaml")
MOSAIC = DATA / "fashion_mosaic"
STEPS = 6


@pytest.fixture(scope="module")
def mosaics(tmp_path_factory) -> dict[str, Path]:
    """All 12,000 train mosaics (only the batches drawn are used), 96 dev and 96 test mosaics."""
    from paddle_tag.data.sources import prepare

    prepare("fashion_mosaic", DATA)  # also Fashion-MNIST; skipped when up to date
    root = tmp_path_factory.mktemp("mosaic")
    return {"train": MOSAIC / "train.npz", "dev": npz_subset(MOSAIC / "dev.npz", root / "dev.npz", 96),
            "test": npz_subset(MOSAIC / "test.npz", root / "test.npz", 96)}


def tiny(mosaics: dict[str, Path], out: Path, *extra: str) -> list[str]:
    """pplcnet_x0_25 at 32×32, batch 16, 6 steps, evaluated at steps 3 and 6."""
    return ["Model.name=pplcnet_x0_25", "Data.image_size=32", "Data.batch_size=16", "Data.eval_batch_size=96",
            f"Data.train_path={mosaics['train']}", f"Data.eval_path={mosaics['dev']}",
            f"Data.test_path={mosaics['test']}", f"Global.output_dir={out}", f"Global.max_steps={STEPS}",
            "Global.eval_every=3", "Global.log_every=1", "Global.progress=false", "Optimizer.lr=3e-3", *extra]


def run_main(script: str, argv: list[str]) -> str:
    """``tools/<script>``'s ``main`` in this process; returns what it printed."""
    main = runpy.run_path(str(REPO / "tools" / script))["main"]
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        assert main(argv) == 0
    return stdout.getvalue()


@pytest.fixture(scope="module")
def tagger_run(mosaics, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("tagger") / "run"
    printed = run_main("train.py", ["-c", CONFIG, *with_o(tiny(mosaics, out))])
    summary = json.loads(printed.strip().splitlines()[-2])  # the JSON line, then the "outputs in" line
    assert summary["steps"] == STEPS and summary["best_metric"] == "micro_f1"
    return out


def test_train_tool_writes_an_image_checkpoint_with_multilabel_metrics(tagger_run, mosaics):
    out = tagger_run
    metrics = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["task"] == "multi_label" and metrics["steps"] == STEPS
    for split in (metrics["best"], metrics["test"]):
        for key in ("mAP", "micro_f1", "macro_f1"):
            assert 0.0 <= split[key] <= 1.0, key
    assert metrics["best"]["mAP"] > 0.2  # 10 tags, 2.5 per mosaic: chance mAP is about 0.25 - 0.3
    names = [row["name"] for row in json.loads((MOSAIC / "labels.json").read_text(encoding="utf-8"))]
    assert json.loads((out / "labels.json").read_text(encoding="utf-8")) == names
    for name in ("curves.png", "report.txt", "last/optimizer.safetensors", "last/trainer_state.json"):
        assert (out / name).is_file(), name
    best = out / "best"
    assert not (best / "tokenizer").exists()
    meta = json.loads((best / "model_config.json").read_text(encoding="utf-8"))
    assert meta == {"modality": "image", "backbone": "pplcnet_x0_25", "feature_dim": 1280, "num_labels": 10,
                    "head_dropout": 0.1, "image_size": 32}
    ckpt = load_checkpoint(best)
    assert isinstance(ckpt.model, ImageTagger) and ckpt.tokenizer is None and not ckpt.model.training
    assert ckpt.thresholds.shape == (10,) and ckpt.labels.names == names
    losses = [r["loss"] for r in json.loads((out / "last/trainer_state.json").read_text())["history"]["train"]]
    assert len(losses) == STEPS and all(np.isfinite(losses))
    with pytest.raises(ConfigError, match="is an image tagger"):
        predict_texts(ckpt, ["一件衬衫"])


def test_resumed_image_tagger_ends_like_the_uninterrupted_run(tagger_run, mosaics, tmp_path):
    out = tmp_path / "stopped"
    trainer = build_run(load_config(CONFIG, tiny(mosaics, out)))
    train_step = trainer._train_step

    def stop_at_step_4(batch, step):
        if step == 4:  # last/ was written after step 3
            raise KeyboardInterrupt
        return train_step(batch, step)

    trainer._train_step = stop_at_step_4
    with pytest.raises(KeyboardInterrupt):
        trainer.fit()
    result = build_run(load_config(CONFIG, tiny(mosaics, out, "Global.resume=true"))).fit()
    reference = json.loads((tagger_run / "metrics.json").read_text(encoding="utf-8"))
    assert result["best"] == pytest.approx(reference["best"], abs=1e-6)
    for name in ("model.safetensors", "optimizer.safetensors"):
        ref, got = load_file(str(tagger_run / "last" / name)), load_file(str(out / "last" / name))
        assert set(ref) == set(got)
        for key, value in ref.items():
            np.testing.assert_allclose(got[key], value, atol=1e-6, err_msg=f"{name}: {key}")


def test_eval_tool_reports_map_and_f1_with_the_tuned_thresholds(tagger_run, mosaics, tmp_path):
    written = tmp_path / "eval.json"
    printed = run_main("eval.py", ["-o", f"Global.checkpoint={tagger_run / 'best'}", "-o",
                                   f"Data.eval_path={mosaics['test']}", "-o", "Global.progress=false",
                                   "--output", str(written)])
    result = json.loads(printed.strip().splitlines()[-1])
    assert "短靴" in printed  # the per-tag report names the tags
    test = json.loads((tagger_run / "metrics.json").read_text(encoding="utf-8"))["test"]
    for key in ("mAP", "micro_f1", "macro_f1", "loss"):  # same checkpoint, thresholds and mosaics as at training
        assert result[key] == pytest.approx(test[key], abs=1e-9), key
    assert len(json.loads(written.read_text(encoding="utf-8"))["per_class"]) == 10


def test_training_batches_are_flipped_at_random_and_reproducibly(mosaics):
    image_set = read_image_set(mosaics["dev"])
    plain, flipping = ImageDataset(image_set, 32), ImageDataset(image_set, 32, augment=True, seed=42)
    indices = np.arange(16)
    base, batch = plain.batch(indices), flipping.batch(indices)
    assert batch.inputs["images"].shape == (16, 3, 32, 32) and batch.inputs["images"].dtype == np.float32
    np.testing.assert_array_equal(batch.targets, image_set.labels[:16])
    pairs = list(zip(batch.inputs["images"], base.inputs["images"]))
    flipped = [np.allclose(a, b[:, :, ::-1], atol=1e-6) for a, b in pairs]
    same = [np.array_equal(a, b) for a, b in pairs]
    assert all(f or s for f, s in zip(flipped, same)) and 3 <= sum(flipped) <= 13  # p = 0.5, nothing else
    # the same batch, the same flips
    np.testing.assert_array_equal(flipping.batch(indices).inputs["images"], batch.inputs["images"])


# ---------------------------------------------------------------- bad inputs


def write_bad(tmp_path: Path, kind: str) -> Path:
    path = tmp_path / "bad" / "train.npz"
    path.parent.mkdir()
    if kind == "keys":
        np.savez(path, x=np.zeros((4, 28, 28), np.uint8), y=np.zeros(4, np.int64))
    elif kind == "corrupt":
        path.write_bytes(b"PK\x03\x04 this is not a zip archive")
    return path


@pytest.mark.parametrize("kind, error, message", [
    ("keys", DataError, r"needs the arrays 'images' and 'labels', found \['x', 'y'\]"),
    ("corrupt", DataError, r"train\.npz: not a readable \.npz file"),
    ("missing", DataError, r"image set not found: .*train\.npz"),
])
def test_bad_npz_is_refused_clearly(kind, error, message, mosaics, tmp_path):
    out = tmp_path / "run"
    config = load_config(CONFIG, tiny(mosaics, out, f"Data.train_path={write_bad(tmp_path, kind)}"))
    with pytest.raises(error, match=message):
        build_run(config)
    assert not out.exists()


@pytest.mark.parametrize("config, extra, message", [
    (CONFIG, ["Model.name=ernie"], r"Data\.modality=image needs an image backbone as Model\.name .*got ernie"),
    ("configs/text/thucnews_ernie_small.yaml", ["Model.name=resnet18"],
     r"Model\.name=resnet18 is an image backbone but Data\.modality=text"),
    (CONFIG, ["Pretrain.method=simcse"], r"Pretrain\.method=simcse pretrains text; images use simclr or moco"),
    ("configs/text/thucnews_ernie_small.yaml", ["Model.name=ernie", "Pretrain.method=moco"], r"Pretrain\.method=moco pretrains images"),
    (CONFIG, ["Data.image_size=4"], r"Data\.image_size must be >= 8, got 4"),
    (CONFIG, ["Data.task=multi_class"], r"multi-hot \(multi-label\) labels but Data\.task=multi_class; set "
                                        r"Data\.task=multi_label"),
    (CONFIG, ["Pretrain.method=moco", "Pretrain.bn_splits=3"], r"bn_splits=3 must divide Data\.batch_size=16"),
])
def test_mismatched_config_is_refused_before_writing(config, extra, message, mosaics, tmp_path):
    out = tmp_path / "run"
    with pytest.raises(ConfigError, match=message):
        build_run(load_config(REPO / config, tiny(mosaics, out, *extra)))
    assert not out.exists()


def test_eval_split_with_other_classes_is_refused(mosaics, tmp_path):
    dev = npz_subset(MOSAIC / "dev.npz", tmp_path / "renamed/dev.npz", 8)
    names = json.loads((dev.parent / "labels.json").read_text(encoding="utf-8"))
    names[0]["name"] = "毛衣"
    (dev.parent / "labels.json").write_text(json.dumps(names, ensure_ascii=False), encoding="utf-8")
    with pytest.raises(DataError, match=r"the eval images .* have the classes"):
        build_run(load_config(CONFIG, tiny(mosaics, tmp_path / "run", f"Data.eval_path={dev}")))


def test_cli_prints_the_error_without_traceback(mosaics, tmp_path, capsys):
    from paddle_tag.config.cli import run_cli

    main = runpy.run_path(str(REPO / "tools/train.py"))["main"]
    bad = write_bad(tmp_path, "keys")
    with pytest.raises(SystemExit) as exit_info:
        run_cli(main, ["-c", CONFIG, *with_o(tiny(mosaics, tmp_path / "run", f"Data.train_path={bad}"))])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "'images' and 'labels'" in err and "Traceback" not in err


def test_image_backbone_names_agree_with_paddleclas_backbones():
    from paddle_tag.models.backbones import BACKBONES

    assert set(IMAGE_BACKBONES) == set(BACKBONES)
    names = set(typing.get_args(typing.get_type_hints(ModelConfig)["name"]))
    assert names == {"ernie", "bert", *BACKBONES, "sasrec", "gru4rec", "two_tower"}
    with pytest.raises(ConfigError, match=r"Model\.name: 'resnet50' is not allowed"):
        load_config(CONFIG, ["Model.name=resnet50"])
