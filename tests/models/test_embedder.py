"""Sentence embeddings (``paddle_tag.models.embedder``) with a tiny random BERT over the real Chinese vocab:
unit rows, the padding mask, long-text windows, pooling, prefixes and the user errors."""
from __future__ import annotations

import numpy as np
import paddle
import pytest
from helpers import read_jsonl

from paddle_tag.errors import DataError, ModelLoadError
from paddle_tag.models.embedder import Embedder


@pytest.fixture(scope="module")
def titles(real_data) -> list[str]:
    return [row["text"] for row in read_jsonl(real_data["thucnews"] / "dev.jsonl")[:40]]


@pytest.fixture(scope="module")
def embedder(tiny_bert_dir) -> Embedder:
    return Embedder.from_pretrained(str(tiny_bert_dir))


def hidden_states(encoder, ids: list[int]) -> np.ndarray:
    """The encoder's last hidden states of one unpadded sequence (no mask needed), ``(T, H)``."""
    with paddle.no_grad():
        sequence, _ = encoder(paddle.to_tensor([ids], dtype="int64"))
    return sequence.numpy()[0].astype(np.float64)


def unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


def test_rows_are_unit_float32(embedder, titles):
    vectors = embedder.embed(titles[:20])
    assert vectors.dtype == np.float32 and vectors.shape == (20, 32)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-6)
    # different titles give different vectors (the model is not degenerate)
    assert np.abs(vectors[0] - vectors[1]).max() > 1e-2
    # no texts: an empty (0, hidden) matrix, not an error
    empty = embedder.embed([])
    assert empty.shape == (0, 32) and empty.dtype == np.float32


def test_mean_pooling_matches_a_hand_computation(embedder, titles):
    ids = embedder.tokenizer.encode([titles[0]])[0]
    expected = unit(hidden_states(embedder.encoder, ids).mean(axis=0))
    np.testing.assert_allclose(embedder.embed([titles[0]])[0], expected, atol=1e-5)


def test_vector_does_not_depend_on_the_rest_of_the_batch(embedder, titles):
    by_length = sorted(titles, key=lambda t: len(embedder.tokenizer.encode([t])[0]))
    short, longer = by_length[0], by_length[-5:]
    alone = embedder.embed([short])[0]
    lengths = [len(ids) for ids in embedder.tokenizer.encode([short, *longer])]
    assert min(lengths[1:]) >= lengths[0] + 5  # the short text really is padded in the shared batch
    assert len(longer) + 1 <= embedder.batch_size  # ... and shares one batch with the longer ones
    among = embedder.embed([*longer[:2], short, *longer[2:]])[2]
    np.testing.assert_allclose(among, alone, atol=1e-5)

    # the check is sensitive: attending to the padding of the same batch moves the short text's vector
    rows = embedder.tokenizer.encode([short, longer[-1]])
    batch = np.full((2, max(map(len, rows))), embedder.tokenizer.pad_token_id, dtype="int64")
    for i, row in enumerate(rows):
        batch[i, :len(row)] = row
    with paddle.no_grad():
        unmasked = embedder.encoder(paddle.to_tensor(batch), attention_mask=paddle.ones(batch.shape))[0]
    unmasked = unmasked.numpy()[0, :len(rows[0])].mean(axis=0)
    assert np.abs(unit(unmasked) - alone).max() > 1e-3


def test_long_text_is_the_count_weighted_mean_of_its_windows(tiny_bert_dir, titles):
    embedder = Embedder.from_pretrained(str(tiny_bert_dir), max_tokens=16)
    assert embedder.max_tokens == 16
    text = "".join(titles[:3])
    ids = embedder.tokenizer.encode([text])[0]
    bos, content, eos = ids[0], ids[1:-1], ids[-1]
    width = 16 - 2
    assert len(content) > 2 * width and len(content) % width  # three or more windows, the last one partial
    chunks = [content[i:i + width] for i in range(0, len(content), width)]
    assert embedder.windows(ids) == [[bos, *c, eos] for c in chunks]

    pooled = [hidden_states(embedder.encoder, [bos, *c, eos]).mean(axis=0) for c in chunks]
    weighted = sum(len(c) * p for c, p in zip(chunks, pooled))
    short = min(titles, key=len)
    assert len(embedder.tokenizer.encode([short])[0]) <= 16
    got = embedder.embed([text, short])  # with a short neighbour in the batch
    np.testing.assert_allclose(got[0], unit(weighted), atol=1e-5)
    # the weighting matters: the plain mean of the windows is a different vector
    assert np.abs(unit(sum(pooled)) - got[0]).max() > 1e-4
    # a text that fits in one window is untouched by the window length
    np.testing.assert_allclose(got[1], Embedder.from_pretrained(str(tiny_bert_dir)).embed([short])[0],
                               atol=1e-5)


def test_cls_pooling_differs_from_mean(tiny_bert_dir, embedder, titles):
    cls = Embedder.from_pretrained(str(tiny_bert_dir), pooling="cls")
    mean_vectors, cls_vectors = embedder.embed(titles[:8]), cls.embed(titles[:8])
    assert np.abs(mean_vectors - cls_vectors).max(axis=1).min() > 1e-2
    np.testing.assert_allclose(np.linalg.norm(cls_vectors, axis=1), 1.0, atol=1e-6)
    ids = cls.tokenizer.encode([titles[0]])[0]
    np.testing.assert_allclose(cls_vectors[0], unit(hidden_states(cls.encoder, ids)[0]), atol=1e-5)
    with pytest.raises(ValueError, match="pooling"):
        Embedder.from_pretrained(str(tiny_bert_dir), pooling="max")


def test_prefix_is_prepended_to_the_text(tiny_bert_dir, embedder, titles):
    prefixed = Embedder.from_pretrained(str(tiny_bert_dir), prefix="query: ")
    with_prefix = prefixed.embed(titles[:6])
    assert np.abs(with_prefix - embedder.embed(titles[:6])).max(axis=1).min() > 1e-3
    np.testing.assert_allclose(with_prefix, embedder.embed(["query: " + t for t in titles[:6]]), atol=1e-6)


def test_user_errors(tiny_bert_dir, embedder, tmp_path):
    with pytest.raises(DataError, match="text 2: empty text"):
        embedder.embed(["新闻标题", ""])
    with pytest.raises(DataError, match="text 1: empty text"):
        embedder.embed([" \t "])
    with pytest.raises(ModelLoadError):
        Embedder.from_pretrained(str(tmp_path / "no_such_model"))
    with pytest.raises(ValueError, match="at least 3"):
        Embedder.from_pretrained(str(tiny_bert_dir), max_tokens=2)
