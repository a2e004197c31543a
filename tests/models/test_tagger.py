"""Tests of paddle_tag.models: the tiny real ERNIE tagger, pooling, serialization and pretrained loading."""
from __future__ import annotations

import time

import numpy as np
import paddle
import pytest

from paddle_tag.config.schema import ModelConfig
from paddle_tag.data.tokenizer import load_tokenizer, pad_batch
from paddle_tag.errors import ModelLoadError
from paddle_tag.models import Tagger, build_model, load_tagger, save_tagger
from paddle_tag.models.serialization import (
    MODEL_CONFIG_FILE,
    WEIGHTS_FILE,
    load_weights,
)

# 2 layers, hidden 32 (the conftest TINY_MODEL sizes, copied: conftest is not importable here).
TINY = dict(num_layers=2, hidden_size=32, num_heads=2, intermediate_size=64, max_position=64)
VOCAB = 200
PAD = 0


def tiny_cfg(**extra) -> ModelConfig:
    return ModelConfig(**{**TINY, **extra})


def tiny_model(num_labels: int = 3, seed: int = 0, **extra) -> Tagger:
    paddle.seed(seed)
    model = build_model(tiny_cfg(**extra), num_labels, VOCAB, PAD)
    model.eval()
    return model


def ids(rows, pad_to=None) -> paddle.Tensor:
    arr = pad_batch(rows, PAD)
    if pad_to is not None and pad_to > arr.shape[1]:
        arr = np.pad(arr, ((0, 0), (0, pad_to - arr.shape[1])), constant_values=PAD)
    return paddle.to_tensor(arr)


ROWS = [[1, 17, 42, 99, 2], [1, 5, 2], [1, 150, 151, 152, 153, 154, 2]]


def logits_of(model, rows=ROWS, pad_to=None) -> np.ndarray:
    with paddle.no_grad():
        return model(ids(rows, pad_to)).numpy()


# ---------------------------------------------------------------- forward and pooling


def test_forward_shape_and_features():
    model = tiny_model(num_labels=5)
    out = logits_of(model)
    assert out.shape == (3, 5) and out.dtype == np.float32 and np.isfinite(out).all()
    with paddle.no_grad():
        feats = model.forward_features(ids(ROWS))
    assert tuple(feats.shape) == (3, 32)
    np.testing.assert_allclose(model.forward_head(feats).numpy(), out, atol=1e-6)


def test_train_mode_uses_dropout_eval_is_deterministic():
    model = tiny_model(dropout=0.5, head_dropout=0.5)
    np.testing.assert_array_equal(logits_of(model), logits_of(model))
    model.train()
    paddle.seed(1)
    a = logits_of(model)
    b = logits_of(model)
    assert not np.allclose(a, b)


@pytest.mark.parametrize("pooling", ["cls", "mean"])
def test_padding_invariance(pooling):
    model = tiny_model(pooling=pooling)
    base = logits_of(model)
    padded = logits_of(model, pad_to=20)
    np.testing.assert_allclose(padded, base, atol=1e-5)
    alone = logits_of(model, rows=[ROWS[1]])  # no padding at all for the short row
    np.testing.assert_allclose(alone[0], base[1], atol=1e-5)


def test_cls_and_mean_pooling_work_and_differ():
    model = tiny_model(pooling="cls")
    x = ids(ROWS, pad_to=9)
    mask = (x.numpy() != PAD).astype("float32")
    with paddle.no_grad():
        sequence = model.encoder(x, attention_mask=paddle.to_tensor(mask))[0].numpy()
        cls = model.forward_features(x).numpy()
        model.pooling = "mean"
        mean = model.forward_features(x).numpy()
    np.testing.assert_allclose(cls, sequence[:, 0], atol=1e-6)
    expected_mean = (sequence * mask[..., None]).sum(1) / mask.sum(1, keepdims=True)
    np.testing.assert_allclose(mean, expected_mean, atol=1e-5)
    assert not np.allclose(cls, mean, atol=1e-3)


def test_invalid_pooling_and_labels():
    with pytest.raises(ValueError, match="pooling"):
        build_model(tiny_cfg(pooling="max"), 3, VOCAB, PAD)
    with pytest.raises(ValueError, match="at least 2 labels"):
        build_model(tiny_cfg(), 1, VOCAB, PAD)


def test_hidden_not_divisible_by_heads():
    with pytest.raises(ModelLoadError, match="divisible"):
        build_model(tiny_cfg(num_heads=3), 3, VOCAB, PAD)


def test_parameter_names_identical_across_builds():
    a, b = tiny_model(), tiny_model()
    names_a = [p.name for p in a.parameters()]
    names_b = [p.name for p in b.parameters()]
    assert names_a == names_b
    assert len(set(names_a)) == len(names_a)
    # the optimizer keys its accumulators by these names, so a saved state dict fits a rebuilt model
    opt_a = paddle.optimizer.AdamW(parameters=a.parameters(), learning_rate=1e-3)
    a.train()
    paddle.nn.functional.cross_entropy(a(ids(ROWS)), paddle.to_tensor([0, 1, 2])).backward()
    opt_a.step()
    opt_b = paddle.optimizer.AdamW(parameters=b.parameters(), learning_rate=1e-3)
    state = opt_a.state_dict()
    opt_b.set_state_dict(state)
    assert set(k for k in opt_b.state_dict() if k != "LR_Scheduler") == set(k for k in state if k != "LR_Scheduler")


# ---------------------------------------------------------------- serialization


def test_save_load_round_trip(tmp_path):
    model = tiny_model(num_labels=4, pooling="mean", seed=3)
    save_tagger(model, "ernie", tmp_path)
    assert (tmp_path / WEIGHTS_FILE).is_file() and (tmp_path / MODEL_CONFIG_FILE).is_file()
    assert not list(tmp_path.glob(".*tmp"))
    loaded, meta = load_tagger(tmp_path)
    assert meta["num_labels"] == 4 and meta["pooling"] == "mean" and meta["pad_id"] == PAD
    assert loaded.pooling == "mean" and not loaded.training
    np.testing.assert_array_equal(logits_of(loaded), logits_of(model))
    assert [p.name for p in loaded.parameters()] == [p.name for p in model.parameters()]


def test_load_weights_refuses_other_label_count(tmp_path):
    save_tagger(tiny_model(num_labels=3), "ernie", tmp_path)
    other = tiny_model(num_labels=4, seed=9)
    before = logits_of(other)
    with pytest.raises(ModelLoadError, match=r"classifier\.\w+ has shape.*the model wants"):
        load_weights(other, tmp_path / WEIGHTS_FILE)
    np.testing.assert_array_equal(logits_of(other), before)  # nothing half-loaded


def test_load_weights_refuses_other_architecture(tmp_path):
    save_tagger(tiny_model(), "ernie", tmp_path)
    paddle.seed(0)
    deeper = build_model(tiny_cfg(num_layers=3), 3, VOCAB, PAD)
    with pytest.raises(ModelLoadError, match="missing"):
        load_weights(deeper, tmp_path / WEIGHTS_FILE)


def test_missing_files_raise_model_load_error(tmp_path):
    with pytest.raises(ModelLoadError, match="not found"):
        load_weights(tiny_model(), tmp_path / "none.safetensors")
    with pytest.raises(ModelLoadError, match="not a paddle_tag checkpoint"):
        load_tagger(tmp_path)
    (tmp_path / WEIGHTS_FILE).write_bytes(b"not safetensors")
    with pytest.raises(ModelLoadError):
        load_weights(tiny_model(), tmp_path / WEIGHTS_FILE)


# ---------------------------------------------------------------- pretrained


def test_pretrained_name_offline_fails_fast_with_hint():
    start = time.monotonic()
    with pytest.raises(ModelLoadError) as info:
        build_model(ModelConfig(pretrained="ernie-3.0-medium-zh"), 3, 21128, 0)
    assert time.monotonic() - start < 30
    msg = str(info.value)
    assert "ernie-3.0-medium-zh" in msg and "local model directory" in msg
    with pytest.raises(ModelLoadError, match="local model directory"):
        load_tokenizer("ernie-3.0-medium-zh", None)


def test_pretrained_file_path_refused(tmp_path):
    weights = tmp_path / "model.pdparams"
    weights.write_bytes(b"x")
    with pytest.raises(ModelLoadError, match="is a file"):
        build_model(ModelConfig(pretrained=str(weights)), 3, 21128, 0)


def test_pretrained_empty_dir_fails(tmp_path):
    with pytest.raises(ModelLoadError, match="no config.json"):
        build_model(ModelConfig(pretrained=str(tmp_path)), 3, 21128, 0)
    (tmp_path / "config.json").write_text('{"model_type": "ernie"}', encoding="utf-8")
    with pytest.raises(ModelLoadError, match="no model.safetensors"):
        build_model(ModelConfig(pretrained=str(tmp_path)), 3, 21128, 0)
    with pytest.raises(ModelLoadError, match="no tokenizer.json or vocab.txt"):
        load_tokenizer(str(tmp_path), None)


def test_pretrained_local_directory(tmp_path, vocab_file):
    from paddlenlp.transformers import ErnieConfig, ErnieModel, ErnieTokenizer

    paddle.seed(11)
    encoder = ErnieModel(ErnieConfig(vocab_size=21128, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                     intermediate_size=64, max_position_embeddings=64, pad_token_id=0))
    encoder.save_pretrained(str(tmp_path), safe_serialization=True)
    ErnieTokenizer(vocab_file=vocab_file).save_pretrained(str(tmp_path))

    tokenizer = load_tokenizer(str(tmp_path), None)
    assert len(tokenizer) == 21128
    model = build_model(ModelConfig(pretrained=str(tmp_path), pooling="mean"), 4, len(tokenizer),
                        tokenizer.pad_token_id)
    model.eval()
    key = "embeddings.word_embeddings.weight"
    np.testing.assert_array_equal(model.encoder.state_dict()[key].numpy(), encoder.state_dict()[key].numpy())
    layer = "encoder.layers.1.linear2.weight"
    np.testing.assert_array_equal(model.encoder.state_dict()[layer].numpy(), encoder.state_dict()[layer].numpy())
    rows = tokenizer.encode(["中国队夺冠", "股市"])
    with paddle.no_grad():
        out = model(paddle.to_tensor(pad_batch(rows, tokenizer.pad_token_id)))
    assert tuple(out.shape) == (2, 4)


def test_prior_head_bias_gives_label_frequencies_before_training():
    model = tiny_model(num_labels=3)
    targets = np.zeros((200, 3), dtype="float32")
    targets[:100, 0] = 1  # 50 %
    targets[:10, 1] = 1  # 5 %; label 2 never occurs
    model.init_head_bias(targets, "multi_label")
    model.classifier.weight.set_value(np.zeros_like(model.classifier.weight.numpy()))
    scores = paddle.nn.functional.sigmoid(model(ids([[5, 6, 7]]))).numpy()[0]
    np.testing.assert_allclose(scores[:2], [0.5, 0.05], atol=0.005)
    assert 0 < scores[2] < 0.005  # smoothed: finite, tiny


def test_prior_head_bias_multi_class_is_log_frequency():
    model = tiny_model(num_labels=3)
    bias = model.init_head_bias(np.array([0] * 60 + [1] * 30 + [2] * 10), "multi_class")
    probs = np.exp(bias) / np.exp(bias).sum()
    np.testing.assert_allclose(probs, [0.6, 0.3, 0.1], atol=0.01)


def test_prior_head_bias_rejects_wrong_label_count():
    with pytest.raises(ValueError, match="targets have 4 labels, the head has 3"):
        tiny_model(num_labels=3).init_head_bias(np.zeros((5, 4), dtype="float32"), "multi_label")
