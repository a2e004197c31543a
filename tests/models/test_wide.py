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
    return np.mean([table[bucket(g, layer.buckets)] for g in grams], axis=0)


def random_layer(ngram_max=3, buckets=1000, labels=4, seed=0) -> HashedNgrams:
    paddle.seed(seed)
    layer = HashedNgrams(labels, ngram_max, buckets)
    layer.table.weight.set_value(paddle.randn([buckets, labels]))
    return layer


@pytest.mark.parametrize("ngram_max", [1, 2, 3, 5])
def test_logits_are_the_mean_of_the_ngram_rows(ngram_max):
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
    touched = np.flatnonzero(np.abs(layer.table.weight.grad.numpy()).sum(axis=1))
    rows = {bucket(g, 64) for g in ("西", "湖", "长", "江", "西湖", "长江")}
    assert set(touched.tolist()) <= rows and len(touched) > 0


def test_an_empty_row_gives_zero_logits():
    layer = random_layer()
    out = layer(paddle.to_tensor(np.zeros((1, 3), "int64"))).numpy()
    assert (out == 0).all()


@pytest.mark.parametrize("kwargs", [{"ngram_max": 0}, {"ngram_max": 6}, {"buckets": 1}, {"buckets": 2**31}])
def test_bad_settings_refused(kwargs):
    with pytest.raises(ValueError):
        HashedNgrams(3, **kwargs)
