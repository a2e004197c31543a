"""Tests of the tagger reading texts as windows, from cached window features, and with a wide part."""
from __future__ import annotations

import json

import numpy as np
import paddle
import pytest

from paddle_tag.config.schema import ModelConfig
from paddle_tag.models import build_model, load_tagger, save_tagger
from paddle_tag.models.serialization import MODEL_CONFIG_FILE
from paddle_tag.models.tagger import HEAD_PREFIXES

TINY = dict(num_layers=2, hidden_size=32, num_heads=2, intermediate_size=64, max_position=64)
VOCAB, PAD = 200, 0
# 3 texts: one window, three windows, two windows (padded up to three)
WINDOWS = [[[1, 17, 42, 2]], [[1, 5, 6, 7, 2], [1, 7, 8, 2], [1, 9, 2]], [[1, 150, 151, 2], [1, 152, 2]]]
CHARS = np.array([[0x897F, 0x6E56, 0, 0], [0x957F, 0x6C5F, 0x6C34, 0x6D41], [0x5E90, 0, 0, 0]], "int64")


def tiny(num_labels=4, seed=0, **extra):
    paddle.seed(seed)
    model = build_model(ModelConfig(**{**TINY, **extra}), num_labels, VOCAB, PAD)
    model.eval()
    return model


def windows_tensor(rows=WINDOWS) -> paddle.Tensor:
    out = np.full((len(rows), max(len(r) for r in rows), max(len(w) for r in rows for w in r)), PAD, "int64")
    for i, row in enumerate(rows):
        for j, window in enumerate(row):
            out[i, j, :len(window)] = window
    return paddle.to_tensor(out)


@paddle.no_grad()
def window_by_window(model, rows=WINDOWS) -> list[np.ndarray]:
    """Each text's windows encoded one at a time through the 2-D path (no batching across windows)."""
    return [np.concatenate([model.forward_features(paddle.to_tensor([w])).numpy() for w in row]) for row in rows]


@pytest.mark.parametrize("pooling", ["max", "mean"])
def test_windows_equal_encoding_each_window_alone(pooling):
    model = tiny(window_pooling=pooling, pooling="mean")
    with paddle.no_grad():
        pooled = model.forward_features(windows_tensor()).numpy()
        features, mask = model.encode_windows(windows_tensor())
    singles = window_by_window(model)
    reduce = np.max if pooling == "max" else np.mean
    assert np.allclose(pooled, np.stack([reduce(s, axis=0) for s in singles]), atol=1e-5)
    assert mask.numpy().tolist() == [[1, 0, 0], [1, 1, 1], [1, 1, 0]]
    assert (features.numpy()[0, 1:] == 0).all()  # padding windows are never encoded


def test_one_window_text_scores_the_same_as_truncate_mode():
    model = tiny()
    with paddle.no_grad():
        flat = model(input_ids=paddle.to_tensor([[1, 17, 42, 2]])).numpy()
        windowed = model(input_ids=paddle.to_tensor([[[1, 17, 42, 2]]])).numpy()
    assert np.allclose(flat, windowed, atol=1e-6)


@pytest.mark.parametrize("pooling", ["max", "attention"])
def test_cached_window_features_give_the_same_logits(pooling):
    model = tiny(window_pooling=pooling, wide=True, wide_buckets=512)
    with paddle.no_grad():
        model.wide.table.weight.set_value(paddle.randn([512, 4]))
        direct = model(input_ids=windows_tensor(), char_ids=paddle.to_tensor(CHARS)).numpy()
        features, mask = model.encode_windows(windows_tensor())
        cached = model(window_features=features, window_mask=mask, char_ids=paddle.to_tensor(CHARS)).numpy()
    assert np.allclose(direct, cached, atol=1e-5)


def test_wide_part_adds_to_the_head_and_needs_the_characters():
    model = tiny(wide=True, wide_buckets=512, wide_ngram_max=3)
    with paddle.no_grad():
        before = model(input_ids=windows_tensor(), char_ids=paddle.to_tensor(CHARS)).numpy()
        model.wide.table.weight.set_value(paddle.full([512, 4], 0.5))
        after = model(input_ids=windows_tensor(), char_ids=paddle.to_tensor(CHARS)).numpy()
    # every n-gram row is 0.5: a text with n n-grams gets 0.5 * n / sqrt(n); 2, 4 and 1 characters here
    grams = np.array([2 + 1, 4 + 3 + 2, 1])
    assert np.allclose(after - before, (0.5 * np.sqrt(grams))[:, None], atol=1e-5)
    with pytest.raises(ValueError, match="char_ids"):
        model(input_ids=windows_tensor())


def test_frozen_encoder_only_trains_the_layers_on_top():
    model = tiny(freeze_encoder=True, wide=True, wide_buckets=64, window_pooling="attention")
    trainable = {n for n, p in model.named_parameters() if not p.stop_gradient}
    assert trainable and all(n.startswith(HEAD_PREFIXES) for n in trainable)
    assert {n.split(".")[0] for n in trainable} == {"classifier", "wide", "window_pool"}


def test_save_load_round_trip_with_windows_and_wide(tmp_path):
    model = tiny(window_pooling="attention", wide=True, wide_buckets=256, wide_ngram_max=2)
    with paddle.no_grad():
        model.wide.table.weight.set_value(paddle.randn([256, 4]))
    save_tagger(model, "ernie", tmp_path)
    meta = json.loads((tmp_path / MODEL_CONFIG_FILE).read_text())
    assert meta["window_pooling"] == "attention" and meta["wide"] == {"ngram_max": 2, "buckets": 256, "idf": False}
    loaded, _ = load_tagger(tmp_path)
    args = dict(input_ids=windows_tensor(), char_ids=paddle.to_tensor(CHARS))
    with paddle.no_grad():
        assert np.allclose(model(**args).numpy(), loaded(**args).numpy(), atol=1e-6)


def test_idf_buffer_is_saved_and_loaded_with_the_weights(tmp_path):
    model = tiny(wide=True, wide_buckets=256, wide_idf=True)
    model.wide.fit_idf([CHARS[0][CHARS[0] > 0], CHARS[1]])
    save_tagger(model, "ernie", tmp_path)
    loaded, meta = load_tagger(tmp_path)
    assert meta["wide"]["idf"] is True
    np.testing.assert_array_equal(loaded.wide.idf.numpy(), model.wide.idf.numpy())
    assert loaded.wide.idf.numpy().max() > 1.0  # counted, not the initial ones


def test_checkpoint_from_before_windows_loads_as_one_window_no_wide(tmp_path):
    model = tiny()
    save_tagger(model, "ernie", tmp_path)
    meta = json.loads((tmp_path / MODEL_CONFIG_FILE).read_text())
    for key in ("window_pooling", "wide"):
        meta.pop(key)
    (tmp_path / MODEL_CONFIG_FILE).write_text(json.dumps(meta))
    loaded, _ = load_tagger(tmp_path)
    assert loaded.wide is None and loaded.window_pooling == "max"
    with paddle.no_grad():
        x = paddle.to_tensor([[1, 17, 42, 2]])
        assert np.allclose(model(input_ids=x).numpy(), loaded(input_ids=x).numpy(), atol=1e-6)


def test_windows_train_end_to_end_with_gradients_through_the_encoder():
    model = tiny(wide=True, wide_buckets=64)
    model.train()
    logits = model(input_ids=windows_tensor(), char_ids=paddle.to_tensor(CHARS))
    logits.sum().backward()
    grads = {n: p.grad for n, p in model.named_parameters()}
    assert grads["encoder.embeddings.word_embeddings.weight"] is not None
    table = grads["wide.table.weight"]  # sparse: the rows looked up, not the whole table
    assert table.is_selected_rows() and np.abs(table.numpy()).sum() > 0
