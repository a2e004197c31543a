"""Tests of paddle_tag.data.text_inputs: what of a text the model reads (windows, character codes), with the
real Chinese BERT vocab and real poems."""
from __future__ import annotations

import numpy as np
import pytest
from helpers import read_jsonl

from paddle_tag.config.schema import DataConfig, ModelConfig
from paddle_tag.data.text_inputs import (
    TextInputSpec,
    char_codes,
    encode_for_model,
    model_inputs,
    pad_chars,
    pad_windows,
    window_ids,
)
from paddle_tag.data.tokenizer import encode_texts, load_tokenizer
from paddle_tag.errors import ConfigError

TEXT = "一二三四五六七八九十甲乙丙丁戊己庚辛壬癸子丑"  # 22 characters = 22 tokens with the Chinese BERT vocab


@pytest.fixture(scope="module")
def tokenizer(vocab_file):
    return load_tokenizer(None, vocab_file)


def content(tokenizer, ids):
    return [tokenizer.id_to_token(i) for i in ids[1:-1]]


def test_windows_cover_the_text_with_the_given_overlap(tokenizer):
    windows, capped = window_ids(tokenizer, [TEXT], max_seq_len=10, overlap=3, max_windows=16)
    (pieces,) = windows
    assert not capped[0]
    assert all(len(w) <= 10 and w[0] == tokenizer.bos_token_id and w[-1] == tokenizer.eos_token_id for w in pieces)
    texts = ["".join(content(tokenizer, w)) for w in pieces]
    assert texts == ["一二三四五六七八", "六七八九十甲乙丙", "甲乙丙丁戊己庚辛", "己庚辛壬癸子丑"]
    # consecutive windows share exactly `overlap` tokens; together they hold every token of the text
    for left, right in zip(texts, texts[1:]):
        assert left[-3:] == right[:3]
    assert texts[0] + "".join(t[3:] for t in texts[1:]) == TEXT


def test_windows_capped_and_reported(tokenizer):
    windows, capped = window_ids(tokenizer, [TEXT, "短"], max_seq_len=10, overlap=3, max_windows=2)
    assert [len(w) for w in windows] == [2, 1] and capped.tolist() == [True, False]


def test_a_short_text_is_one_window_equal_to_truncate_mode(tokenizer):
    texts = ["中国", "字"]
    windows, capped = window_ids(tokenizer, texts, max_seq_len=10, overlap=3, max_windows=4)
    assert [w[0] for w in windows] == encode_texts(tokenizer, texts, 10).input_ids and not capped.any()


def test_windows_equal_truncation_for_the_first_window_on_real_poems(tokenizer, real_data):
    texts = [row["text"] for row in read_jsonl(real_data["poetry"] / "dev.jsonl")[:200]]
    windows, _ = window_ids(tokenizer, texts, max_seq_len=32, overlap=8, max_windows=64)
    assert [w[0] for w in windows] == encode_texts(tokenizer, texts, 32).input_ids
    assert sum(len(w) > 1 for w in windows) > 100  # most poems need several windows at 32 tokens
    full = tokenizer.encode(texts)
    for ids, pieces in zip(full, windows):  # nothing lost: the last window ends where the text does
        assert pieces[-1][-2] == ids[-2]


def test_prefix_is_read_once_at_the_start(tokenizer):
    prefixed = tokenizer.with_prefix("标题：")
    windows, _ = window_ids(prefixed, [TEXT], max_seq_len=10, overlap=0, max_windows=8)
    tokens = [content(prefixed, w) for w in windows[0]]
    assert tokens[0][:3] == ["标", "题", "："] and all("标" not in t for t in tokens[1:])


def test_overlap_that_does_not_advance_is_refused(tokenizer):
    with pytest.raises(ConfigError, match="window_overlap"):
        window_ids(tokenizer, [TEXT], max_seq_len=10, overlap=8, max_windows=4)
    with pytest.raises(ConfigError, match=r"Data.window_overlap=8 leaves windows that do not advance"):
        DataConfig(max_seq_len=10, window_overlap=8, on_long_text="windows")
    with pytest.raises(ConfigError, match="max_windows"):
        DataConfig(max_windows=0)


def test_encode_for_model_flags_every_kind_of_cut(tokenizer):
    long = "长" * 50
    spec = TextInputSpec(max_seq_len=10, long_text="windows", window_overlap=2, max_windows=3, wide_max_chars=30,
                         min_chars=3)
    encoded = encode_for_model(tokenizer, ["短句", "一" * 20, long], spec)
    assert [len(w) for w in encoded.windows] == [1, 3, 3]
    assert encoded.cut.tolist() == [False, False, True]  # 20 tokens fit 3 windows of 8 with overlap 2
    assert [len(c) for c in encoded.chars] == [2, 20, 30]
    only_chars = encode_for_model(tokenizer, ["一" * 31], TextInputSpec(max_seq_len=64, wide_max_chars=30))
    assert only_chars.cut.tolist() == [True]  # the tokens fit, the characters past wide_max_chars do not
    plain = encode_for_model(tokenizer, ["短句", long], TextInputSpec(max_seq_len=10))
    assert plain.chars is None and plain.cut.tolist() == [False, True] and [len(w) for w in plain.windows] == [1, 1]


def test_spec_from_config():
    spec = TextInputSpec.from_config(DataConfig(max_seq_len=64, on_long_text="windows", window_overlap=16,
                                                max_windows=5), ModelConfig(wide=True, wide_ngram_max=2))
    assert (spec.windowed, spec.window_overlap, spec.max_windows, spec.min_chars) == (True, 16, 5, 2)
    assert spec.wide_max_chars == ModelConfig().wide_max_chars
    assert TextInputSpec.from_config(DataConfig(), ModelConfig()).wide_max_chars == 0  # no wide part, no chars


def test_char_codes_and_padding():
    assert char_codes("西湖😀a", 10).tolist() == [0x897F, 0x6E56, 0x1F600, 0x61]
    assert char_codes("西湖😀a", 2).tolist() == [0x897F, 0x6E56]
    padded = pad_chars([np.array([5], "int64"), np.array([1, 2], "int64")], min_len=3)
    assert padded.tolist() == [[5, 0, 0], [1, 2, 0]] and padded.dtype == np.int64


def test_pad_windows_fills_missing_windows_with_padding():
    out = pad_windows([[[1, 2, 3]], [[1, 4], [1, 5, 6, 7]]], pad_id=0)
    assert out.shape == (2, 2, 4)
    assert out[0].tolist() == [[1, 2, 3, 0], [0, 0, 0, 0]]
    assert out[1].tolist() == [[1, 4, 0, 0], [1, 5, 6, 7]]


def test_model_inputs_shapes(tokenizer):
    spec = TextInputSpec(max_seq_len=10, long_text="windows", window_overlap=2, max_windows=4, wide_max_chars=100,
                         min_chars=3)
    encoded = encode_for_model(tokenizer, ["短", TEXT], spec)
    inputs = model_inputs(encoded, [0, 1], spec, tokenizer.pad_token_id)
    assert inputs["input_ids"].shape == (2, 4, 10)  # 22 tokens: windows at 0, 6, 12, 18
    assert inputs["char_ids"].shape == (2, 22)
    assert (inputs["input_ids"][0, 1:] == tokenizer.pad_token_id).all()
    plain = TextInputSpec(max_seq_len=10)
    assert set(model_inputs(encode_for_model(tokenizer, ["短"], plain), [0], plain, 0)) == {"input_ids"}
