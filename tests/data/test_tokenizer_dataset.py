"""Tests of paddle_tag.data.tokenizer and paddle_tag.data.dataset with the real Chinese BERT vocab."""
from __future__ import annotations

import numpy as np
import pytest

from paddle_tag.data.dataset import TaggingDataset, epoch_order, iterate
from paddle_tag.data.labels import LabelSet
from paddle_tag.data.readers import Example, read_examples
from paddle_tag.data.text_inputs import TextInputSpec
from paddle_tag.data.tokenizer import encode_texts, load_tokenizer, pad_batch
from paddle_tag.errors import ConfigError, DataError, ModelLoadError

LONG = "今天天气很好，我们一起去公园散步，然后吃午饭。"


@pytest.fixture(scope="module")
def tokenizer(vocab_file):
    return load_tokenizer(None, vocab_file)


# ---------------------------------------------------------------- tokenizer


def test_load_tokenizer_from_vocab(tokenizer):
    assert len(tokenizer) == 21128
    assert tokenizer.pad_token_id == 0
    assert [tokenizer.id_to_token(i) for i in (tokenizer.bos_token_id, tokenizer.eos_token_id)] == ["[CLS]", "[SEP]"]
    ids = tokenizer.encode(["中国"])[0]
    assert [tokenizer.id_to_token(i) for i in ids] == ["[CLS]", "中", "国", "[SEP]"]


def test_text_prefix_is_part_of_the_saved_tokenizer(tokenizer, tmp_path):
    prefixed = tokenizer.with_prefix("标题：")
    assert prefixed.tokens("中国") == ["[CLS]", "标", "题", "：", "中", "国", "[SEP]"]
    assert tokenizer.tokens("中国") == ["[CLS]", "中", "国", "[SEP]"]  # the original is unchanged
    reloaded = load_tokenizer(str(prefixed.save(tmp_path).parent), None)
    assert reloaded.encode(["中国"]) == prefixed.encode(["中国"])
    assert reloaded.pad_token_id == 0


def test_saved_tokenizer_records_truncation(tokenizer, tmp_path):
    from tokenizers import Tokenizer

    exported = Tokenizer.from_file(str(tokenizer.save(tmp_path, max_seq_len=6)))
    assert exported.encode(LONG).ids == encode_texts(tokenizer, [LONG], 6).input_ids[0]


def test_model_directory_without_tokenizer(tmp_path):
    with pytest.raises(ModelLoadError, match="no tokenizer.json or vocab.txt"):
        load_tokenizer(str(tmp_path), None)


def test_load_tokenizer_needs_vocab():
    with pytest.raises(ConfigError, match="prepare_data.py vocab"):
        load_tokenizer(None, None)


def test_load_tokenizer_missing_vocab(tmp_path):
    with pytest.raises(ConfigError, match=r"Model\.vocab_file not found:.*nope\.txt.*prepare_data"):
        load_tokenizer(None, str(tmp_path / "nope.txt"))


def test_encode_truncates_keeping_cls_and_sep(tokenizer):
    texts = [LONG, "短", LONG + LONG]
    enc = encode_texts(tokenizer, texts, max_seq_len=10)
    assert enc.truncated == 2
    assert [len(r) for r in enc.input_ids] == [10, 3, 10]
    for row in enc.input_ids:
        assert row[0] == tokenizer.bos_token_id and row[-1] == tokenizer.eos_token_id
        assert row.count(tokenizer.eos_token_id) == 1
    full = tokenizer.encode([LONG])[0]
    assert enc.input_ids[0][:9] == full[:9]  # the head of the text survives


def test_encode_no_truncation_when_fits(tokenizer):
    enc = encode_texts(tokenizer, ["中国", "体育"], max_seq_len=4)
    assert enc.truncated == 0 and [len(r) for r in enc.input_ids] == [4, 4]


def test_encode_error_mode_names_location(tokenizer):
    with pytest.raises(DataError, match=r"train\.jsonl:5: text is \d+ tokens, over Data\.max_seq_len=8"):
        encode_texts(tokenizer, ["短", LONG], 8, on_long_text="error", where=["train.jsonl:4", "train.jsonl:5"])
    encode_texts(tokenizer, ["短"], 8, on_long_text="error")  # short text is fine


def test_encode_rejects_tiny_max_len(tokenizer):
    with pytest.raises(ConfigError, match="at least 3"):
        encode_texts(tokenizer, ["短"], 2)


def test_pad_batch():
    out = pad_batch([[1, 2, 3], [4], [5, 6]], pad_id=0)
    assert out.dtype == np.int64 and out.shape == (3, 3)
    np.testing.assert_array_equal(out, [[1, 2, 3], [4, 0, 0], [5, 6, 0]])
    np.testing.assert_array_equal(pad_batch([[7]], pad_id=9), [[7]])
    np.testing.assert_array_equal(pad_batch([[1, 2], [3]], pad_id=9), [[1, 2], [3, 9]])


# ---------------------------------------------------------------- epoch_order


def test_epoch_order_deterministic_per_seed_and_epoch():
    a = epoch_order(103, 8, seed=42, epoch=1)
    b = epoch_order(103, 8, seed=42, epoch=1)
    assert len(a) == len(b) == 13
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    c = epoch_order(103, 8, seed=42, epoch=2)
    assert not np.array_equal(np.concatenate(a), np.concatenate(c))


@pytest.mark.parametrize("epoch", [0, 1, 5])
def test_epoch_order_covers_every_index_once(epoch):
    batches = epoch_order(103, 8, seed=7, epoch=epoch)
    flat = np.concatenate(batches)
    assert sorted(flat.tolist()) == list(range(103))
    assert all(len(b) == 8 for b in batches[:-1]) and len(batches[-1]) == 103 % 8


def test_epoch_order_no_shuffle_and_drop_last():
    batches = epoch_order(10, 4, seed=0, epoch=3, shuffle=False)
    assert [b.tolist() for b in batches] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    dropped = epoch_order(10, 4, seed=0, epoch=3, shuffle=False, drop_last=True)
    assert [b.tolist() for b in dropped] == [[0, 1, 2, 3], [4, 5, 6, 7]]


def test_epoch_order_shards_disjoint_equal_counts():
    full = epoch_order(103, 8, seed=3, epoch=0)  # 13 batches
    r0 = epoch_order(103, 8, seed=3, epoch=0, rank=0, world_size=2)
    r1 = epoch_order(103, 8, seed=3, epoch=0, rank=1, world_size=2)
    assert len(r0) == len(r1) == 6
    s0, s1 = set(np.concatenate(r0).tolist()), set(np.concatenate(r1).tolist())
    assert not s0 & s1
    # every rank's batches come from the same global order, every world_size-th batch
    assert all(np.array_equal(x, y) for x, y in zip(r0, full[0::2]))
    assert all(np.array_equal(x, y) for x, y in zip(r1, full[1::2]))


# ---------------------------------------------------------------- TaggingDataset


def test_dataset_from_examples_and_batch(tokenizer):
    examples = [Example("中国队夺冠", ["体育"], "t.jsonl", 1), Example(LONG, ["财经"], "t.jsonl", 2),
                Example("股市", ["财经"], "t.jsonl", 3)]
    labels = LabelSet.from_examples(examples)
    ds = TaggingDataset.from_examples(examples, tokenizer, labels, "multi_class", TextInputSpec(max_seq_len=8))
    assert len(ds) == 3 and ds.cut.tolist() == [False, True, False] and ds.pad_id == tokenizer.pad_token_id
    assert ds.targets.tolist() == [labels.index["体育"], labels.index["财经"], labels.index["财经"]]
    batch = ds.batch(np.array([2, 0]))
    assert batch.inputs["input_ids"].shape == (2, 7)  # "中国队夺冠" = 5 chars + [CLS] + [SEP]
    assert batch.inputs["input_ids"][0].tolist() == tokenizer.encode(["股市"])[0] + [0, 0, 0]
    assert batch.targets.tolist() == [labels.index["财经"], labels.index["体育"]]
    assert batch.indices.tolist() == [2, 0]
    assert [b.indices.tolist() for b in iterate(ds, [np.array([0]), np.array([1]), np.array([2])], skip=1)] == [[1], [2]]


def test_dataset_multi_label_and_unlabeled(tokenizer):
    examples = [Example("西湖", ["写景", "西湖"]), Example("长江", ["长江"])]
    labels = LabelSet.from_examples(examples)
    ds = TaggingDataset.from_examples(examples, tokenizer, labels, "multi_label", TextInputSpec(max_seq_len=16))
    assert ds.targets.shape == (2, 3) and ds.targets.dtype == np.float32
    assert ds.targets.sum(axis=1).tolist() == [2.0, 1.0]
    unlabeled = TaggingDataset.from_examples(examples, tokenizer, None, "multi_label", TextInputSpec(max_seq_len=16))
    assert unlabeled.targets is None and unlabeled.batch(np.array([0, 1])).targets is None


def test_dataset_error_mode_names_example_line(tokenizer):
    examples = [Example("短", ["a"], "train.jsonl", 1), Example(LONG, ["a"], "train.jsonl", 9)]
    with pytest.raises(DataError, match=r"train\.jsonl:9"):
        TaggingDataset.from_examples(examples, tokenizer, LabelSet(["a", "b"]), "multi_class", TextInputSpec(8, "error"))


def test_dataset_real_thucnews(tokenizer, thucnews_small):
    examples = read_examples(thucnews_small["train"])
    labels = LabelSet.from_examples(examples)
    ds = TaggingDataset.from_examples(examples, tokenizer, labels, "multi_class", TextInputSpec(max_seq_len=48))
    assert len(ds) == 400
    rows = [windows[0] for windows in ds.encoded.windows]
    assert all(len(windows) == 1 for windows in ds.encoded.windows)
    assert all(2 < len(r) <= 48 for r in rows)
    unk = tokenizer.token_to_id("[UNK]")
    assert sum(r.count(unk) for r in rows) < 0.02 * sum(len(r) for r in rows)
    batches = epoch_order(len(ds), 16, seed=42, epoch=0)
    first = ds.batch(batches[0])
    assert first.inputs["input_ids"].shape[0] == 16 and first.targets.shape == (16,)
