"""The name step: c-TF-IDF keywords over jieba words on real titles, names, re-ranking, merging clusters."""
from __future__ import annotations

import math

import numpy as np
import pytest
from helpers import DATA, read_jsonl

from paddle_tag.data.sources import prepare
from paddle_tag.discover.cluster import centroids_of
from paddle_tag.discover.embed import l2_normalise
from paddle_tag.discover.name import (CTfidfNamer, ctfidf, is_word, load_stopwords, make_name, merge_similar,
                                      rerank, tokenize)
from paddle_tag.errors import ConfigError


@pytest.fixture(scope="module")
def stopwords() -> frozenset[str]:
    prepare("peoples_daily", DATA)  # cached: a no-op once data/peoples_daily is prepared
    return load_stopwords(DATA / "peoples_daily" / "stopwords.txt")


@pytest.fixture(scope="module")
def labelled(real_data) -> tuple[list[str], np.ndarray, list[str]]:
    """300 real titles clustered by their true class (the perfect clustering), for keyword sanity checks."""
    rows = read_jsonl(real_data["thucnews"] / "train.jsonl")[:300]
    classes = sorted({r["labels"][0] for r in rows})
    return [r["text"] for r in rows], np.array([classes.index(r["labels"][0]) for r in rows]), classes


def test_word_filter_and_tokenizer(stopwords):
    assert {"的", "了", "，"} <= stopwords
    assert is_word("楼盘", 2) and is_word("iPhone", 2)
    assert not is_word("楼", 2) and not is_word("2010", 2) and not is_word("１９９８", 2) and not is_word("——", 2)
    (words,) = tokenize(["北京楼盘5月开盘，均价2万元的房子！"], stopwords, 2)
    assert "楼盘" in words and "开盘" in words and "均价" in words
    assert not any(w in stopwords or w.isdigit() or w in "，！" for w in words)


def test_parallel_tokenizing_gives_the_same_words_in_order(real_data, stopwords):
    texts = [r["text"] for r in read_jsonl(real_data["thucnews"] / "train.jsonl")[:4100]]
    serial = tokenize(texts, stopwords, 2)
    assert tokenize(texts, stopwords, 2, workers=2) == serial  # two forked workers of 2,050 titles each
    assert len(serial) == 4100 and sum(map(len, serial)) > 4100 * 3


def test_ctfidf_follows_the_formula():
    docs = [["苹果", "香蕉"], ["苹果", "橙子"], ["橙子"]]
    weights, vocab = ctfidf(docs, np.array([0, 1, -1]), k=2, min_df=1)
    assert vocab == ["橙子", "苹果", "香蕉"]  # the outlier's words are not counted
    average = 4 / 2  # words per cluster
    expected_0 = [0.0, 0.5 * math.log(1 + average / 2), 0.5 * math.log(1 + average / 1)]
    np.testing.assert_allclose(weights[0], expected_0)
    # min_df drops words found in fewer items
    _, vocab = ctfidf(docs, np.array([0, 1, 1]), k=2, min_df=2)
    assert vocab == ["橙子", "苹果"]


def test_keywords_of_real_classes_are_sane(labelled, stopwords):
    texts, labels, classes = labelled
    centroids = np.eye(len(classes), dtype=np.float32)
    names = CTfidfNamer(top_n=8, min_df=2, label_words=3, stopwords=stopwords).fit(texts, labels, centroids)
    assert len(names) == len(classes)
    by_class = {classes[c]: [w for w, _ in names[c].keywords] for c in range(len(classes))}
    assert set(by_class["房产"]) & {"楼盘", "开盘", "房价", "别墅", "户型", "均价", "地产", "楼市", "平米"}
    assert set(by_class["股票"] + by_class["财经"]) & {"基金", "股票", "市场", "大盘", "投资", "银行"}
    for name in names:
        weights = [x for _, x in name.keywords]
        assert weights == sorted(weights, reverse=True) and all(x > 0 for x in weights)
        assert all(w not in stopwords and len(w) >= 2 for w, _ in name.keywords)
        assert name.name == "·".join(w for w, _ in name.keywords[:len(name.name.split("·"))])
    assert len({n.name for n in names}) == len(names)


def test_names_are_unique():
    taken = {"房产·楼盘"}
    assert make_name([("房产", 1.0), ("楼盘", 0.5), ("开盘", 0.2)], 2, taken, "tag 3") == "房产·楼盘·开盘"
    assert make_name([("房产", 1.0), ("楼盘", 0.5)], 2, taken, "tag 3") == "房产·楼盘 (tag 3)"
    assert make_name([], 2, set(), "tag 4") == "tag 4"


def test_rerank_orders_by_similarity_to_the_centroid_and_keeps_weights():
    table = {"体育": [1.0, 0.0], "比赛": [0.8, 0.6], "新闻": [0.0, 1.0]}

    def embed_words(words):
        return l2_normalise(np.array([table[w] for w in words], dtype=np.float32))

    keywords = [("新闻", 0.9), ("比赛", 0.5), ("体育", 0.4)]
    assert rerank(keywords, np.array([1.0, 0.0]), embed_words, 2) == [("体育", 0.4), ("比赛", 0.5)]


def test_merge_joins_near_duplicate_clusters_transitively():
    rng = np.random.default_rng(0)
    base = l2_normalise(rng.normal(size=(3, 8)))
    twin = l2_normalise((base[0] + 0.01 * rng.normal(size=8))[None, :])
    x = np.vstack([base, twin, base[1:2]])
    labels = np.array([0, 1, 2, 3, 1])
    merged, count = merge_similar(x, labels, threshold=0.99)
    assert count == 1 and merged.tolist() == [0, 1, 2, 0, 1]
    assert merge_similar(x, np.array([0, 1, -1, 2, 1]), threshold=0.99)[0].tolist() == [0, 1, -1, 0, 1]
    unmerged, count = merge_similar(x, labels, threshold=1.01)
    assert count == 0 and unmerged.tolist() == labels.tolist()
    np.testing.assert_allclose(np.linalg.norm(centroids_of(x, merged, 3), axis=1), 1.0, atol=1e-6)


def test_missing_stopword_file_says_how_to_make_it(tmp_path):
    with pytest.raises(ConfigError, match="prepare_data.py peoples_daily"):
        load_stopwords(tmp_path / "none.txt")
    assert load_stopwords(None) == frozenset()
