"""Tests of paddle_tag.models.wide: the hashed character n-gram part, against a plain-Python reference."""
from __future__ import annotations

import numpy as np
import paddle
import pytest

from paddle_tag.models.wide import MULTIPLIERS, PRIME, HashedNgrams

TEXTS = ["西湖春色", "a", "長江dz😀!!", "庐山庐山"]


def codes(texts, min_len=3) -> np.ndarray:
    out = np.zeros((len(texts), max(min_len, *(len(t) for t in texts))), "int64")
    for i, text in enumerate(texts):
        out[i, :len(text)] = [ord(c) for c in text]
    return out


def bucket(gram: str, buckets: int) -> int:
    multipliers, offset = MULTIPLIERS[len(gram)]
    return (sum(ord(c) * m for c, m in zip(gram, multipliers)) + offset) % PRIME % buckets


def reference(layer: HashedNgrams, text: str) -> np.ndarray:
    table = layer.table.weight.numpy()
    grams = [text[i:i + n] for n in range(1, layer.ngram_max + 1) for i in range(len(text) - n + 1)]
    return np.sum([table[bucket(g, layer.buckets)] for g in grams], axis=0) / np.sqrt(len(grams))


def random_layer(ngram_max=3, buckets=1000, labels=4, seed=0) -> HashedNgrams:
    paddle.seed(seed)
    layer = HashedNgrams(labels, ngram_max, buckets)
    layer.table.weight.set_value(paddle.randn([buckets, labels]))
    return layer


@pytest.mark.parametrize("ngram_max", [1, 2, 3, 5])
def test_logits_are_the_ngram_rows_summed_over_the_root_of_their_count(ngram_max):
    layer = random_layer(ngram_max)
    got = layer(paddle.to_tensor(codes(TEXTS, ngram_max))).numpy()
    want = np.stack([reference(layer, t) for t in TEXTS])
    assert np.abs(got - want).max() < 1e-5


def test_bucket_ids_match_the_plain_integer_formula():
    layer = random_layer(buckets=997)
    ids, mask = layer.ngram_buckets(paddle.to_tensor(codes(["長江dz😀"])), 3)
    assert mask.numpy().tolist() == [[1, 1, 1]]
    assert ids.numpy()[0].tolist() == [bucket(g, 997) for g in ("長江d", "江dz", "dz😀")]


def test_padding_is_not_read_and_repeats_count():
    layer = random_layer()
    short = layer(paddle.to_tensor(codes(["西湖"], 3))).numpy()
    padded = layer(paddle.to_tensor(np.pad(codes(["西湖"], 3), ((0, 0), (0, 20))))).numpy()
    assert np.abs(short - padded).max() < 1e-6  # trailing zeros add no n-gram
    twice = layer(paddle.to_tensor(codes(["西湖西湖"]))).numpy()
    assert np.abs(twice - reference(layer, "西湖西湖")).max() < 1e-5


def test_new_layer_adds_nothing_and_learns_from_gradients():
    layer = HashedNgrams(3, 2, 64)
    x = paddle.to_tensor(codes(["西湖", "长江"], 2))
    assert (layer(x).numpy() == 0).all()
    loss = (layer(x) * paddle.to_tensor([[1.0, 0, 0], [0, 1.0, 0]])).sum()
    loss.backward()
    grad = layer.table.weight.grad  # sparse: one entry per n-gram looked up, nothing for the other rows
    assert grad.is_selected_rows()
    rows = {bucket(g, 64) for g in ("西", "湖", "长", "江", "西湖", "长江")}
    assert set(grad.rows()) == rows and np.abs(grad.numpy()).sum() > 0


def test_an_empty_row_gives_zero_logits():
    layer = random_layer()
    out = layer(paddle.to_tensor(np.zeros((1, 3), "int64"))).numpy()
    assert (out == 0).all()


@pytest.mark.parametrize("kwargs", [{"ngram_max": 0}, {"ngram_max": 6}, {"buckets": 1}, {"buckets": 2**31}])
def test_bad_settings_refused(kwargs):
    with pytest.raises(ValueError):
        HashedNgrams(3, **kwargs)


def test_idf_counts_documents_per_bucket_and_weighs_the_bag():
    paddle.seed(0)
    layer = HashedNgrams(4, 2, 997, idf=True)
    layer.table.weight.set_value(paddle.randn([997, 4]))
    train = ["西湖西湖", "西湖", "长江"]
    idf = layer.fit_idf([np.array([ord(c) for c in t], "int64") for t in train])
    df = {}
    for text in train:
        for gram in {text[i:i + n] for n in (1, 2) for i in range(len(text) - n + 1)}:
            df[bucket(gram, 997)] = df.get(bucket(gram, 997), 0) + 1
    for b, count in df.items():
        assert idf[b] == pytest.approx(np.log(4 / (1 + count)) + 1, rel=1e-6)
    assert idf[[b for b in range(997) if b not in df][0]] == pytest.approx(np.log(4) + 1, rel=1e-6)
    # the bag: rows weighted by idf, over the l2 norm of the weights (repeats count each time)
    text = "西湖西"
    grams = [text[i:i + n] for n in (1, 2) for i in range(len(text) - n + 1)]
    weights = np.array([idf[bucket(g, 997)] for g in grams])
    table = layer.table.weight.numpy()
    want = (weights[:, None] * np.stack([table[bucket(g, 997)] for g in grams])).sum(axis=0) / np.linalg.norm(weights)
    got = layer(paddle.to_tensor(codes([text], 2))).numpy()[0]
    assert np.abs(got - want).max() < 1e-5
    assert HashedNgrams(4, 2, 997).config()["idf"] is False
    with pytest.raises(ValueError, match="without idf"):
        HashedNgrams(4, 2, 997).fit_idf([np.array([1], "int64")])
