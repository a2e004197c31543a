"""The name step of tag discovery: keywords and a short name for each cluster, and merging near-duplicates.

Keywords are class-based TF-IDF (c-TF-IDF, as in BERTopic) over ``jieba`` words: all of a cluster's items are
one document; a word's weight in cluster c is ``tf(t, c) × log(1 + A / f(t))``, with ``tf`` the word's share of
the cluster's words, ``A`` the mean number of words per cluster and ``f(t)`` the word's count over all
clusters — frequent in this cluster, rare in the others. Words in the stopword list, shorter than
``Discover.min_word_len``, made only of digits / punctuation / symbols, or found in fewer than
``Discover.min_df`` items are never keywords. jieba, not character n-grams, because a tag name made of
words (``房产·楼盘·开盘``) is what a person reads.

With an encoder embedder, ``Discover.rerank_keywords`` orders the c-TF-IDF candidates (3 × top_keywords) by
the cosine of each word's embedding to the cluster centroid (KeyBERT-style); weights stay c-TF-IDF's.
:func:`merge_similar` joins clusters whose centroids are at least ``Discover.merge_threshold`` similar.
"""
from __future__ import annotations

import logging
import multiprocessing
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np

from paddle_tag.discover.cluster import centroids_of, compact_labels
from paddle_tag.errors import ConfigError

logger = logging.getLogger(__name__)

NAME_SEPARATOR = "·"
PARALLEL_MIN_TEXTS = 2000  # fewer texts per worker and forking costs more than it saves
WordEmbedder = Callable[[Sequence[str]], np.ndarray]  # words → (len(words), D) unit rows


def load_stopwords(path: Optional[str | Path]) -> frozenset[str]:
    """One stopword a line (UTF-8); ``None`` = no list. A missing file says how to make it."""
    if path is None:
        return frozenset()
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"Discover.stopwords_path={path}: no such file; make it with "
                          "`python tools/prepare_data.py peoples_daily` (or set it to null)")
    return frozenset(w.strip() for w in path.read_text(encoding="utf-8").splitlines() if w.strip())


def is_word(token: str, min_len: int) -> bool:
    """A candidate keyword: long enough, and not only digits, punctuation, symbols or spaces (any width)."""
    token = token.strip()
    # str.isalpha is exactly Unicode's letter categories (L*), Han included (Lo)
    return len(token) >= min_len and any(ch.isalpha() for ch in token)


def _tokenize_serial(texts: Sequence[str], stopwords: frozenset[str], min_len: int) -> list[list[str]]:
    import jieba

    out = []
    for text in texts:
        words = [w.strip().lower() for w in jieba.lcut(text)]
        out.append([w for w in words if is_word(w, min_len) and w not in stopwords])
    return out


def tokenize(texts: Sequence[str], stopwords: frozenset[str], min_len: int, workers: int = 1) -> list[list[str]]:
    """jieba words of each text (precise mode, deterministic), filtered by :func:`is_word` and ``stopwords``.

    ``workers > 1`` splits the texts into that many runs of consecutive texts, tokenised by forked processes
    (jieba is pure Python, so threads would not help), and joins them in order: the same words as one process.
    Below ``PARALLEL_MIN_TEXTS`` texts, or where ``fork`` is missing, one process does it all.
    """
    import jieba

    jieba.setLogLevel(logging.WARNING)  # "Building prefix dict ..." on every run is noise
    jieba.initialize()  # before forking, so the workers inherit the dictionary instead of each loading it
    workers = min(workers, len(texts) // PARALLEL_MIN_TEXTS + 1)
    if workers <= 1 or "fork" not in multiprocessing.get_all_start_methods():
        return _tokenize_serial(texts, stopwords, min_len)
    bounds = np.linspace(0, len(texts), workers + 1).astype(int)
    runs = [(list(texts[a:b]), stopwords, min_len) for a, b in zip(bounds[:-1], bounds[1:])]
    pool = multiprocessing.get_context("fork").Pool(workers)
    try:
        parts = pool.starmap(_tokenize_serial, runs)
    finally:
        # close + join lets the workers exit; terminate (the context manager's exit) would SIGTERM them, and
        # the signal handler Paddle installs prints a fatal-error report for each
        pool.close()
        pool.join()
    return [doc for part in parts for doc in part]


@dataclass
class ClusterName:
    """A cluster's name and keywords ``[(word, c-TF-IDF weight), ...]`` best first."""

    name: str
    keywords: list[tuple[str, float]]


def ctfidf(docs: list[list[str]], labels: np.ndarray, k: int, min_df: int) -> tuple[np.ndarray, list[str]]:
    """``(k, V)`` c-TF-IDF weights over the vocabulary of words in >= ``min_df`` items, and that vocabulary.

    Outliers (label -1) are left out: their words would blur every cluster's profile.
    """
    from scipy import sparse
    from sklearn.feature_extraction.text import CountVectorizer

    keep = np.flatnonzero(labels >= 0)
    if not any(docs[i] for i in keep):  # no keyword survived the filters anywhere
        return np.zeros((k, 0)), []
    vectorizer = CountVectorizer(analyzer=lambda words: words, min_df=1)
    counts = vectorizer.fit_transform([docs[i] for i in keep])  # (items, V)
    vocab = vectorizer.get_feature_names_out()
    df = np.asarray((counts > 0).sum(axis=0)).ravel()
    columns = np.flatnonzero(df >= min_df)
    counts, vocab = counts[:, columns], [str(w) for w in vocab[columns]]
    if not vocab:
        return np.zeros((k, 0)), []
    member = sparse.csr_matrix((np.ones(len(keep)), (labels[keep], np.arange(len(keep)))), shape=(k, len(keep)))
    per_cluster = np.asarray((member @ counts).todense(), dtype=np.float64)  # (k, V) word counts per cluster
    tf = per_cluster / np.maximum(per_cluster.sum(axis=1, keepdims=True), 1.0)
    average_words = per_cluster.sum() / k
    idf = np.log(1.0 + average_words / np.maximum(per_cluster.sum(axis=0), 1.0))
    return tf * idf[None, :], vocab


def top_keywords(weights: np.ndarray, vocab: list[str], n: int) -> list[list[tuple[str, float]]]:
    """Each cluster's ``n`` best words with positive weight; ties broken by the word, so order is stable."""
    out = []
    for row in weights:
        ranked = sorted((-w, vocab[j]) for j, w in enumerate(row) if w > 0)[:n]
        out.append([(word, float(-neg)) for neg, word in ranked])
    return out


def rerank(keywords: list[tuple[str, float]], centroid: np.ndarray, embed_words: WordEmbedder,
           n: int) -> list[tuple[str, float]]:
    """The ``n`` candidates whose embeddings are closest (cosine) to ``centroid``; ties keep c-TF-IDF order."""
    if not keywords:
        return keywords
    vectors = embed_words([w for w, _ in keywords])
    sims = vectors @ centroid
    order = sorted(range(len(keywords)), key=lambda i: (-round(float(sims[i]), 6), i))
    return [keywords[i] for i in order[:n]]


def make_name(keywords: list[tuple[str, float]], words: int, taken: set[str], fallback: str) -> str:
    """``kw1·kw2·kw3``; when another tag has that name, one more keyword, then ``fallback`` (unique names)."""
    names = [w for w, _ in keywords]
    for count in range(min(words, len(names)), len(names) + 1):
        candidate = NAME_SEPARATOR.join(names[:count])
        if candidate and candidate not in taken:
            return candidate
    base = NAME_SEPARATOR.join(names[:words])
    return f"{base} ({fallback})" if base else fallback


class CTfidfNamer:
    """Names clusters from their items' words (see the module docstring).

    ``fit(texts, labels, centroids, embed_words=None)`` → one :class:`ClusterName` per cluster 0..k-1.
    """

    def __init__(self, top_n: int = 10, min_df: int = 2, label_words: int = 3, min_word_len: int = 2,
                 stopwords: frozenset[str] = frozenset(), rerank_keywords: bool = False, workers: int = 1) -> None:
        self.top_n, self.min_df, self.label_words, self.min_word_len = top_n, min_df, label_words, min_word_len
        self.stopwords, self.rerank_keywords, self.workers = stopwords, rerank_keywords, workers

    def fit(self, texts: Sequence[str], labels: np.ndarray, centroids: np.ndarray,
            embed_words: Optional[WordEmbedder] = None) -> list[ClusterName]:
        k = centroids.shape[0]
        docs = tokenize(texts, self.stopwords, self.min_word_len, self.workers)
        weights, vocab = ctfidf(docs, labels, k, self.min_df)
        reranking = self.rerank_keywords and embed_words is not None
        candidates = top_keywords(weights, vocab, self.top_n * 3 if reranking else self.top_n)
        names, taken = [], set()
        for c, words in enumerate(candidates):
            if reranking:
                words = rerank(words, centroids[c], embed_words, self.top_n)
            name = make_name(words, self.label_words, taken, fallback=f"tag {c}")
            taken.add(name)
            names.append(ClusterName(name, words))
        return names


def build_namer(config) -> CTfidfNamer:
    d = config.Discover
    workers = d.threads or len(os.sched_getaffinity(0))  # jieba workers: one per core Discover.threads allows
    return CTfidfNamer(d.top_keywords, d.min_df, d.label_words, d.min_word_len, load_stopwords(d.stopwords_path),
                       d.rerank_keywords, workers)


def merge_similar(vectors: np.ndarray, labels: np.ndarray, threshold: float) -> tuple[np.ndarray, int]:
    """Join clusters whose unit centroids have cosine >= ``threshold`` (transitively); returns labels, merges.

    ``vectors``: the unit rows the clusters were found in (the pipeline passes the reduced, centred ones:
    in e5's raw space every pair of centroids is above 0.95 cosine, and everything would merge).

    A merged cluster takes the smallest label of its group and labels stay compact (0..k'-1, -1 kept), so the
    result depends only on the input labels — no order-dependent greedy pass.
    """
    labels = compact_labels(np.asarray(labels, dtype=np.int64))
    k = int(labels.max()) + 1
    if k < 2 or threshold > 1.0:
        return labels, 0
    centroids = centroids_of(vectors, labels, k)
    sims = centroids @ centroids.T
    parent = list(range(k))

    def root(i: int) -> int:
        while parent[i] != i:
            i = parent[i]
        return i

    for a, b in zip(*np.nonzero(np.triu(sims >= threshold, 1))):
        ra, rb = root(int(a)), root(int(b))
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    mapping = np.array([root(i) for i in range(k)], dtype=np.int64)
    merged = np.where(labels >= 0, mapping[np.maximum(labels, 0)], -1)
    return compact_labels(merged), k - len(set(mapping.tolist()))
