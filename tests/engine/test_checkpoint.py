"""Atomic checkpoints: a crash while writing leaves the previous checkpoint whole and loadable."""
from __future__ import annotations

import os

import numpy as np
import paddle
import pytest

from helpers import TINY_MODEL
from paddle_tag.config import load_config
from paddle_tag.data.labels import LabelSet
from paddle_tag.data.tokenizer import load_tokenizer
from paddle_tag.engine import checkpoint as ckpt_mod
from paddle_tag.engine.checkpoint import load_checkpoint, resolve_checkpoint, save_checkpoint
from paddle_tag.errors import ModelLoadError
from paddle_tag.models import build_model

IDS = paddle.to_tensor([[101, 2608, 4495, 102, 0], [101, 791, 1921, 1921, 102]])


@pytest.fixture()
def parts(vocab_file):
    config = load_config(None, [*TINY_MODEL, f"Model.vocab_file={vocab_file}", "Data.task=multi_label"])
    tokenizer = load_tokenizer(None, vocab_file)
    labels = LabelSet(["西湖", "送别", "边塞"])
    model = build_model(config.Model, len(labels), len(tokenizer), tokenizer.pad_token_id)
    model.eval()
    return dict(model=model, tokenizer=tokenizer, labels=labels, thresholds=np.array([0.3, 0.5, 0.7]),
                config=config)


def logits(model) -> np.ndarray:
    model.eval()
    return model(IDS).numpy()


def bump_weights(model) -> None:
    with paddle.no_grad():
        model.classifier.bias.set_value(model.classifier.bias + 1.0)


def test_round_trip_restores_model_labels_thresholds(parts, tmp_path):
    save_checkpoint(tmp_path / "ckpt", **parts, metrics={"micro_f1": 0.5})
    loaded = load_checkpoint(tmp_path / "ckpt")
    np.testing.assert_allclose(logits(loaded.model), logits(parts["model"]), atol=1e-6)
    assert loaded.labels == parts["labels"]
    np.testing.assert_allclose(loaded.thresholds, [0.3, 0.5, 0.7])
    assert loaded.task == "multi_label"
    assert len(loaded.tokenizer) == len(parts["tokenizer"])


def test_crash_mid_write_keeps_previous_checkpoint(parts, tmp_path, monkeypatch):
    target = tmp_path / "last"
    save_checkpoint(target, **parts)
    before = logits(parts["model"])
    bump_weights(parts["model"])

    def crash(*args, **kwargs):
        raise RuntimeError("simulated crash while writing")

    monkeypatch.setattr(ckpt_mod, "save_tokenizer", crash)
    with pytest.raises(RuntimeError, match="simulated crash"):
        save_checkpoint(target, **parts)
    np.testing.assert_allclose(logits(load_checkpoint(target).model), before, atol=1e-6)

    monkeypatch.undo()  # the next save succeeds and replaces it
    save_checkpoint(target, **parts)
    np.testing.assert_allclose(logits(load_checkpoint(target).model), logits(parts["model"]), atol=1e-6)
    assert not logits(load_checkpoint(target).model) == pytest.approx(before)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last"]


def test_crash_between_the_two_renames_falls_back_to_old_copy(parts, tmp_path):
    target = tmp_path / "last"
    save_checkpoint(target, **parts)
    expected = logits(parts["model"])
    os.replace(target, tmp_path / ".last.old")  # the state a kill between the renames leaves
    assert resolve_checkpoint(target) == tmp_path / ".last.old"
    np.testing.assert_allclose(logits(load_checkpoint(target).model), expected, atol=1e-6)
    save_checkpoint(target, **parts)
    assert resolve_checkpoint(target) == target
    assert not (tmp_path / ".last.old").exists()


def test_missing_checkpoint_and_label_mismatch_are_clear_errors(parts, tmp_path):
    with pytest.raises(ModelLoadError, match="checkpoint not found"):
        load_checkpoint(tmp_path / "nowhere")
    save_checkpoint(tmp_path / "ckpt", **parts)
    (tmp_path / "ckpt/labels.json").write_text('["a", "b"]', encoding="utf-8")
    with pytest.raises(ModelLoadError, match="labels.json has 2 labels, the model 3"):
        load_checkpoint(tmp_path / "ckpt")


def test_optimizer_state_survives_renamed_parameters_and_nested_master_weights():
    from paddle_tag.engine.checkpoint import flatten_optimizer_state, unflatten_optimizer_state

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
