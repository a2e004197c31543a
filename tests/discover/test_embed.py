"""The embed step: TF-IDF baseline and encoder embeddings, unit float32 rows, and the on-disk cache."""
from __future__ import annotations

import json

import numpy as np
import pytest
from helpers import read_jsonl

from paddle_tag.config import load_config
from paddle_tag.discover.embed import EncoderEmbedder, TfidfEmbedder, embed_texts, embedder_identity, texts_digest
from paddle_tag.errors import ConfigError, DataError


@pytest.fixture(scope="module")
def titles(real_data) -> list[str]:
    return [r["text"] for r in read_jsonl(real_data["thucnews"] / "train.jsonl")[:200]]


def tfidf_config(**extra: str):
    return load_config(None, ["Discover.embedder=tfidf", "Discover.tfidf_dim=48", "Global.progress=false",
                              "Discover.threads=1", *[f"{k.replace('__', '.')}={v}" for k, v in extra.items()]])


def test_tfidf_rows_are_unit_float32_and_repeatable(titles):
    first = embed_texts(tfidf_config(), titles)
    assert first.shape == (200, 48) and first.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(first, axis=1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(first, embed_texts(tfidf_config(), titles))
    # titles about the same thing share characters, so their nearest neighbour is usually of the same class
    sims = first @ first.T
    np.fill_diagonal(sims, -1)
    assert sims.max(axis=1).mean() > 0.5


def test_tfidf_on_too_few_texts_is_a_data_error():
    with pytest.raises(DataError, match="too few"):
        TfidfEmbedder(dim=8).fit_transform(["同"])


def test_cache_is_reused_and_keyed_by_embedder_and_texts(titles, tmp_path):
    ids = [f"item-{i}" for i in range(len(titles))]
    vectors = embed_texts(tfidf_config(), titles, cache_dir=tmp_path, item_ids=ids)
    (npy,) = tmp_path.glob("*.npy")
    index = json.loads(npy.with_name(npy.name[:-4] + ".ids.json").read_text(encoding="utf-8"))
    assert index["item_ids"] == ids and index["texts_sha256"] == texts_digest(titles)
    assert index["identity"] == embedder_identity(tfidf_config()) and index["rows"] == 200
    stamp = npy.stat().st_mtime_ns
    np.testing.assert_array_equal(embed_texts(tfidf_config(), titles, cache_dir=tmp_path, item_ids=ids), vectors)
    assert npy.stat().st_mtime_ns == stamp  # read, not rewritten

    # a cache file whose contents were swapped is not trusted blindly: the index must match the request
    np.save(npy, np.zeros((3, 48), np.float32))
    again = embed_texts(tfidf_config(), titles, cache_dir=tmp_path, item_ids=ids)
    np.testing.assert_array_equal(again, vectors)

    # another embedder setting, other texts or other ids: new cache entries, never the old vectors
    embed_texts(tfidf_config(Discover__tfidf_dim=32), titles, cache_dir=tmp_path, item_ids=ids)
    embed_texts(tfidf_config(), titles[:100], cache_dir=tmp_path)
    assert len(list(tmp_path.glob("*.npy"))) == 3
    assert not list(tmp_path.glob(".*.tmp"))  # atomic writes leave no temp files


def test_bad_texts_and_ids_are_refused(titles):
    with pytest.raises(DataError, match="text 2: empty text"):
        embed_texts(tfidf_config(), ["体育新闻", "  "])
    with pytest.raises(DataError, match="no texts"):
        embed_texts(tfidf_config(), [])
    with pytest.raises(ValueError, match="2 item ids for 3 texts"):
        embed_texts(tfidf_config(), titles[:3], item_ids=["a", "b"])


def test_encoder_embedder_matches_the_embedding_api(tiny_bert_dir, titles):
    from paddle_tag.engine.checkpoint import checkpoint_embedder
    from paddle_tag.models.embedder import Embedder

    config = load_config(None, ["Discover.embedder=e5", f"Discover.model={tiny_bert_dir}", "Global.progress=false",
                                "Data.max_seq_len=64"])
    vectors = embed_texts(config, titles[:24])
    expected = Embedder.from_pretrained(str(tiny_bert_dir), prefix="query: ", pooling="mean").embed(titles[:24])
    assert vectors.shape == (24, 32) and vectors.dtype == np.float32
    np.testing.assert_allclose(vectors, expected, atol=1e-5)
    # word vectors for keyword re-ranking live in the same space
    words = EncoderEmbedder(str(tiny_bert_dir)).embed_words(["房价", "足球"])
    assert words.shape == (2, 32)
    identity = embedder_identity(config)
    assert identity.startswith("e5:") and str(tiny_bert_dir.resolve()) in identity
    other = load_config(None, ["Discover.embedder=e5", f"Discover.model={tiny_bert_dir}", "Discover.prefix=passage: "])
    assert embedder_identity(other) != identity


def test_missing_model_directory_is_a_config_error(tmp_path):
    config = load_config(None, ["Discover.embedder=checkpoint", f"Discover.model={tmp_path / 'nope'}"])
    with pytest.raises(ConfigError, match="no such checkpoint directory"):
        embedder_identity(config)


def test_checkpoint_embedder_uses_the_taggers_encoder(tiny_checkpoint, titles):
    from paddle_tag.engine.checkpoint import checkpoint_embedder
    from paddle_tag.models.embedder import Embedder

    config = load_config(None, ["Discover.embedder=checkpoint", f"Discover.model={tiny_checkpoint}",
                                "Global.progress=false", "Data.max_seq_len=48", "Discover.threads=1"])
    vectors = embed_texts(config, titles[:16])
    np.testing.assert_allclose(vectors, checkpoint_embedder(tiny_checkpoint, max_tokens=48).embed(titles[:16]),
                               atol=1e-5)
    assert embedder_identity(config).startswith(f"checkpoint:{tiny_checkpoint.resolve()}@")
