"""The one checkpoint format: atomic writes, checksums, kinds, and the three layouts from before it."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import paddle
import pytest
from helpers import REPO, TINY_MODEL
from safetensors.numpy import load_file, save_file

from paddle_tag.config import load_config
from paddle_tag.data.labels import LabelSet
from paddle_tag.data.tokenizer import load_tokenizer
from paddle_tag.engine.builder import build_run
from paddle_tag.engine.checkpoint import (
    checkpoint_kind,
    load_backbone,
    load_checkpoint,
    resolve_checkpoint,
    save_checkpoint,
)
from paddle_tag.engine.optim import flatten_optimizer_state, unflatten_optimizer_state
from paddle_tag.engine.tasks import tagging
from paddle_tag.engine.tasks.tagging import write_tagger
from paddle_tag.errors import ModelLoadError
from paddle_tag.models import build_model
from paddle_tag.models.backbones import ImageEncoder

IDS = paddle.to_tensor([[101, 2608, 4495, 102, 0], [101, 791, 1921, 1921, 102]])
LEGACY_FILES = Path(__file__).parent / "fixtures" / "checkpoints_before_format_1"


@pytest.fixture(scope="module")
def legacy(tmp_path_factory) -> Path:
    """The three layouts written before ``checkpoint.json``: their config, label and JSON files as the old trainers
    wrote them (kept in fixtures/), their weights made here with the exact tensor names and shapes those trainers
    saved (``weights_layout.json``), so no model file is kept in git."""
    root = tmp_path_factory.mktemp("legacy") / "checkpoints"
    shutil.copytree(LEGACY_FILES, root, ignore=shutil.ignore_patterns("weights_layout.json"))
    rng = np.random.default_rng(0)
    for name, spec in json.loads((LEGACY_FILES / "weights_layout.json").read_text(encoding="utf-8")).items():
        tensors = {key: rng.normal(0.0, 0.1, shape).astype(np.float32) for key, (shape, _) in spec["tensors"].items()}
        tensors = {key: (np.abs(v) + 1.0 if key.endswith("_variance") else v) for key, v in tensors.items()}
        save_file(tensors, str(root / name), metadata=spec["metadata"])
    return root


@pytest.fixture()
def parts(vocab_file):
    config = load_config(None, [*TINY_MODEL, f"Model.vocab_file={vocab_file}", "Data.task=multi_label"])
    tokenizer = load_tokenizer(None, vocab_file)
    labels = LabelSet(["西湖", "送别", "边塞"])
    model = build_model(config.Model, len(labels), len(tokenizer), tokenizer.pad_token_id)
    model.eval()
    return dict(model=model, tokenizer=tokenizer, labels=labels, thresholds=np.array([0.3, 0.5, 0.7]),
                config=config)


def save(directory: Path, parts: dict, metrics: dict | None = None) -> Path:
    return save_checkpoint(directory, kind="text_tagging", config=parts["config"], metrics=metrics or {}, step=3,
                           write_payload=lambda d: write_tagger(d, parts["model"], parts["config"], parts["tokenizer"],
                                                                parts["labels"], parts["thresholds"]))


def logits(model) -> np.ndarray:
    model.eval()
    return model(IDS).numpy()


def bump_weights(model) -> None:
    with paddle.no_grad():
        model.classifier.bias.set_value(model.classifier.bias + 1.0)


def test_round_trip_restores_model_labels_thresholds(parts, tmp_path):
    save(tmp_path / "ckpt", parts, {"micro_f1": 0.5})
    loaded = load_checkpoint(tmp_path / "ckpt")
    np.testing.assert_allclose(logits(loaded.model), logits(parts["model"]), atol=1e-6)
    assert loaded.labels == parts["labels"]
    np.testing.assert_allclose(loaded.thresholds, [0.3, 0.5, 0.7])
    assert loaded.task == "multi_label"
    assert len(loaded.tokenizer) == len(parts["tokenizer"])


def test_crash_mid_write_keeps_previous_checkpoint(parts, tmp_path, monkeypatch):
    target = tmp_path / "last"
    save(target, parts)
    before = logits(parts["model"])
    bump_weights(parts["model"])

    def crash(*args, **kwargs):
        raise RuntimeError("simulated crash while writing")

    monkeypatch.setattr(tagging, "save_tagger", crash)
    with pytest.raises(RuntimeError, match="simulated crash"):
        save(target, parts)
    np.testing.assert_allclose(logits(load_checkpoint(target).model), before, atol=1e-6)

    monkeypatch.undo()  # the next save succeeds and replaces it
    save(target, parts)
    np.testing.assert_allclose(logits(load_checkpoint(target).model), logits(parts["model"]), atol=1e-6)
    assert not logits(load_checkpoint(target).model) == pytest.approx(before)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last"]


def test_crash_between_the_two_renames_falls_back_to_old_copy(parts, tmp_path):
    target = tmp_path / "last"
    save(target, parts)
    expected = logits(parts["model"])
    os.replace(target, tmp_path / ".last.old")  # the state a kill between the renames leaves
    assert resolve_checkpoint(target) == tmp_path / ".last.old"
    np.testing.assert_allclose(logits(load_checkpoint(target).model), expected, atol=1e-6)
    save(target, parts)
    assert resolve_checkpoint(target) == target
    assert not (tmp_path / ".last.old").exists()


def test_missing_checkpoint_and_label_mismatch_are_clear_errors(parts, tmp_path):
    with pytest.raises(ModelLoadError, match="checkpoint not found"):
        load_checkpoint(tmp_path / "nowhere")
    save(tmp_path / "ckpt", parts)
    (tmp_path / "ckpt/labels.json").write_text('["a", "b"]', encoding="utf-8")
    with pytest.raises(ModelLoadError, match="labels.json was changed after the checkpoint was written"):
        load_checkpoint(tmp_path / "ckpt")


def test_optimizer_state_survives_renamed_parameters_and_nested_master_weights():
    moment = paddle.to_tensor([[1.0, 2.0]])
    master = paddle.to_tensor([0.5, 0.25])
    state = {"linear_3.w_0_moment1_0": moment, "linear_3.w_0_beta1_pow_acc_0": paddle.to_tensor([0.9]),
             "linear_31.b_0_moment1_0": paddle.to_tensor([3.0]),
             "master_weights": {"linear_3.w_0": master}, "LR_Scheduler": {"last_epoch": 7, "last_lr": 1e-4}}
    tensors, extra = flatten_optimizer_state(state, {"linear_3.w_0": "classifier.weight",
                                                     "linear_31.b_0": "encoder.bias"})
    assert set(tensors) == {"classifier.weight|moment1_0", "classifier.weight|beta1_pow_acc_0",
                            "encoder.bias|moment1_0", "master_weights/classifier.weight|"}
    assert extra == {"LR_Scheduler": {"last_epoch": 7, "last_lr": 1e-4}}
    # a rebuild in another process may number its layers differently
    restored = unflatten_optimizer_state(tensors, extra, {"classifier.weight": "linear_0.w_0",
                                                          "encoder.bias": "linear_9.b_0"})
    np.testing.assert_array_equal(restored["linear_0.w_0_moment1_0"].numpy(), moment.numpy())
    np.testing.assert_array_equal(restored["linear_9.b_0_moment1_0"].numpy(), [3.0])
    np.testing.assert_array_equal(restored["master_weights"]["linear_0.w_0"].numpy(), master.numpy())
    assert restored["LR_Scheduler"]["last_epoch"] == 7


def test_manifest_records_kind_step_and_a_checksum_of_every_file(parts, tmp_path):
    directory = save(tmp_path / "ckpt", parts)
    manifest = json.loads((directory / "checkpoint.json").read_text(encoding="utf-8"))
    assert manifest["format"] == 1 and manifest["kind"] == "text_tagging" and manifest["step"] == 3
    on_disk = {str(p.relative_to(directory)) for p in directory.rglob("*") if p.is_file()} - {"checkpoint.json"}
    assert set(manifest["files"]) == on_disk
    assert {"model.safetensors", "tokenizer/tokenizer.json", "config.yaml", "metrics.json"} <= on_disk
    assert checkpoint_kind(directory) == "text_tagging"


@pytest.mark.parametrize("damage", ["flip a byte", "truncate", "delete"])
def test_a_tampered_or_missing_file_is_refused_by_name(parts, tmp_path, damage):
    directory = save(tmp_path / "ckpt", parts)
    weights = directory / "model.safetensors"
    if damage == "flip a byte":
        data = bytearray(weights.read_bytes())
        data[len(data) // 2] ^= 0xFF
        weights.write_bytes(bytes(data))
    elif damage == "truncate":
        weights.write_bytes(weights.read_bytes()[:100])
    else:
        weights.unlink()
    expected = "model.safetensors is missing" if damage == "delete" else "model.safetensors was changed"
    with pytest.raises(ModelLoadError, match=expected):
        load_checkpoint(directory)


def test_a_damaged_manifest_or_unknown_kind_is_refused(parts, tmp_path):
    directory = save(tmp_path / "ckpt", parts)
    manifest = json.loads((directory / "checkpoint.json").read_text(encoding="utf-8"))
    (directory / "checkpoint.json").write_text(json.dumps({**manifest, "kind": "gan"}), encoding="utf-8")
    with pytest.raises(ModelLoadError, match="kind 'gan' is not one"):
        load_checkpoint(directory)
    (directory / "checkpoint.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(ModelLoadError, match="checkpoint.json is damaged"):
        load_checkpoint(directory)


def test_a_pretraining_checkpoint_is_not_loaded_as_a_tagger(legacy):
    with pytest.raises(ModelLoadError, match="is a simcse pretraining checkpoint: it has no tagging head"):
        load_checkpoint(legacy / "simcse")


# ------------------------------------------------- checkpoints written before checkpoint.json (one per old trainer)

def test_old_tagger_checkpoint_loads_and_predicts(legacy):
    assert checkpoint_kind(legacy / "text_tagging") == "text_tagging"
    ckpt = load_checkpoint(legacy / "text_tagging")
    assert ckpt.tokenizer is not None and len(ckpt.labels) == 10 and ckpt.task == "multi_class"
    ids = paddle.to_tensor([ckpt.tokenizer.encode(["北京时间"])[0]])
    assert ckpt.model(ids).shape == [1, 10]


def test_old_simcse_checkpoint_starts_a_fine_tuning_run(legacy, thucnews_small, tmp_path):
    assert checkpoint_kind(legacy / "simcse") == "simcse"
    config = load_config(REPO / "configs/text/thucnews_ernie_small.yaml", [
        f"Model.pretrained={legacy / 'simcse'}", "Model.pooling=mean", f"Data.train_path={thucnews_small['train']}",
        f"Data.eval_path={thucnews_small['dev']}", "Data.test_path=null", "Data.max_seq_len=24",
        f"Global.output_dir={tmp_path / 'run'}", "Global.progress=false"])
    task = build_run(config).task
    saved = load_file(str(legacy / "simcse" / "model.safetensors"))
    loaded = {name: p.numpy() for name, p in task.model.encoder.state_dict().items()}
    assert saved.keys() <= loaded.keys() and all(np.array_equal(saved[k], loaded[k]) for k in saved)


def test_old_image_pretraining_checkpoint_loads_its_backbone(legacy, tmp_path):
    assert checkpoint_kind(legacy / "simclr") == "simclr"
    encoder = ImageEncoder("pplcnet_x0_25")
    load_backbone(encoder, legacy / "simclr")
    saved = load_file(str(legacy / "simclr" / "backbone.safetensors"))
    assert all(np.array_equal(v, encoder.state_dict()[k].numpy()) for k, v in saved.items())
    shutil.copytree(legacy / "simclr", tmp_path / "other")
    with pytest.raises(ModelLoadError, match="holds a 'pplcnet_x0_25' backbone, but Model.name=resnet18"):
        load_backbone(ImageEncoder("resnet18"), tmp_path / "other")
    os.remove(tmp_path / "other" / "backbone.json")
    with pytest.raises(ModelLoadError, match="not a paddle_tag checkpoint"):
        load_backbone(ImageEncoder("pplcnet_x0_25"), tmp_path / "other")


def test_a_tagger_checkpoint_is_not_a_text_encoder_to_start_from(tiny_checkpoint, thucnews_small, tmp_path):
    config = load_config(REPO / "configs/text/thucnews_ernie_small.yaml", [
        f"Model.pretrained={tiny_checkpoint}", f"Data.train_path={thucnews_small['train']}",
        f"Data.eval_path={thucnews_small['dev']}", "Data.test_path=null", f"Global.output_dir={tmp_path / 'run'}"])
    with pytest.raises(ModelLoadError, match="is a text_tagging checkpoint; a text encoder starts from"):
        build_run(config)
