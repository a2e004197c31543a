"""The BERTopic side of ``benchmarks/discover_vs_bertopic.py``; runs in BERTopic's own venv, not paddle_tag's.

    bash benchmarks/bertopic_env.sh     # once: .venv-bertopic (BERTopic without torch)
    .venv-bertopic/bin/python benchmarks/_bertopic_worker.py --embeddings E.npy --texts T.json --out R.json \
        [--seeds 42 43] [--stopwords data/peoples_daily/stopwords.txt] [--warmup] [--threads N]

BERTopic with its defaults — UMAP(n_neighbors=15, n_components=5, min_dist=0.0, metric="cosine"),
hdbscan.HDBSCAN(min_cluster_size=10, metric="euclidean", cluster_selection_method="eom", prediction_data=True),
c-TF-IDF, top 10 words — except for what the comparison needs: the embeddings are passed in (``embeddings=``,
no embedding model), UMAP gets ``random_state`` = the run's seed (BERTopic's default has none, so every run
differs), its CountVectorizer splits Chinese with jieba (the default token pattern takes a whole run of
Han characters as one word) and drops the same stopword list paddle_tag uses, and ``language="multilingual"``:
with the default ``"english"``, BERTopic strips every character outside ``[A-Za-z0-9 ]`` from the documents
before c-TF-IDF — all of the Chinese — and its topics are named by digits (seen in a first smoke run).
The two classes below only time UMAP's and HDBSCAN's ``fit``; they change nothing else (subclasses, so
BERTopic's isinstance checks still hold).

After each fit, ``reduce_outliers(strategy="embeddings")`` (BERTopic's documented remedy for its -1 topic, not
a default) is timed and its topics recorded too. ``--warmup`` first fits once, untimed, on the same data, so
numba's one-time compilation of UMAP / pynndescent / hdbscan is not counted in the timed runs (it is reported
as ``warmup_s``).

Output JSON: ``{"versions", "warmup_s", "runs": [{"seed", "topics", "topics_reduced", "fit_s",
"reduce_outliers_s", "umap_s", "hdbscan_s", "names"}]}`` — ``topics[i]`` is item i's topic, -1 = outlier.
Imports numpy, jieba and BERTopic's own dependencies only (not paddle_tag).
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import time
from importlib.metadata import version

import numpy as np


def make_model(seed: int, stopwords: list[str], timings: dict, threads: int):
    import hdbscan
    import jieba
    from bertopic import BERTopic
    from sklearn.feature_extraction.text import CountVectorizer
    from umap import UMAP

    jieba.setLogLevel(logging.WARNING)

    def timed(base: type, key: str) -> type:
        """``base`` whose ``fit`` adds its wall time to ``timings[key]``."""
        class Timed(base):
            def fit(self, *args, **kwargs):
                started = time.perf_counter()
                try:
                    return super().fit(*args, **kwargs)
                finally:
                    timings[key] = timings.get(key, 0.0) + time.perf_counter() - started
        return Timed

    TimedUMAP, TimedHDBSCAN = timed(UMAP, "umap_s"), timed(hdbscan.HDBSCAN, "hdbscan_s")

    def words(text: str) -> list[str]:
        return [w for w in jieba.lcut(text) if w.strip()]

    # BERTopic's own defaults (bertopic/_bertopic.py, 0.17.4), plus random_state
    umap_model = TimedUMAP(n_neighbors=15, n_components=5, min_dist=0.0, metric="cosine", low_memory=False,
                           random_state=seed)
    extra = {"core_dist_n_jobs": threads} if threads > 0 else {}
    hdbscan_model = TimedHDBSCAN(min_cluster_size=10, metric="euclidean", cluster_selection_method="eom",
                                 prediction_data=True, **extra)
    vectorizer = CountVectorizer(tokenizer=words, token_pattern=None, lowercase=True,
                                 stop_words=stopwords or None)
    # language="multilingual": with the default "english", BERTopic deletes every character outside [A-Za-z0-9 ]
    # before c-TF-IDF (_preprocess_text), i.e. all Chinese, and names topics by digits; the language has no other
    # effect when the embeddings are given (it only picks the default embedding model)
    return BERTopic(language="multilingual", umap_model=umap_model, hdbscan_model=hdbscan_model,
                    vectorizer_model=vectorizer)


def topic_names(model, topics: list[int], top: int = 10) -> list[dict]:
    """The ``top`` largest topics (outliers excluded): id, size, name from the 3 best words, 10 words."""
    sizes = {}
    for t in topics:
        sizes[t] = sizes.get(t, 0) + 1
    out = []
    for t in sorted((t for t in sizes if t >= 0), key=lambda t: (-sizes[t], t))[:top]:
        found = model.get_topic(t) or []
        words = [w for w, _ in found]
        out.append({"topic": int(t), "size": sizes[t], "name": "·".join(words[:3]), "keywords": words[:10]})
    return out


def fit_once(embeddings: np.ndarray, texts: list[str], seed: int, stopwords: list[str], threads: int) -> dict:
    timings: dict = {}
    model = make_model(seed, stopwords, timings, threads)
    started = time.perf_counter()
    topics, _ = model.fit_transform(texts, embeddings=embeddings)
    fit_s = time.perf_counter() - started
    topics = [int(t) for t in topics]
    started = time.perf_counter()
    if any(t < 0 for t in topics) and any(t >= 0 for t in topics):
        reduced = model.reduce_outliers(texts, topics, strategy="embeddings", embeddings=embeddings)
    else:
        reduced = list(topics)
    reduce_s = time.perf_counter() - started
    return {"seed": seed, "topics": topics, "topics_reduced": [int(t) for t in reduced],
            "fit_s": round(fit_s, 3), "reduce_outliers_s": round(reduce_s, 3),
            "umap_s": round(timings.get("umap_s", 0.0), 3), "hdbscan_s": round(timings.get("hdbscan_s", 0.0), 3),
            "names": topic_names(model, topics)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--embeddings", required=True, help="(N, D) float32 .npy, unit rows")
    parser.add_argument("--texts", required=True, help="JSON list of the N texts")
    parser.add_argument("--out", required=True)
    parser.add_argument("--seeds", type=int, nargs="+", default=[42, 43])
    parser.add_argument("--stopwords", default=None, help="one stopword a line (the list paddle_tag uses)")
    parser.add_argument("--warmup", action="store_true", help="one untimed fit first (numba compilation)")
    parser.add_argument("--threads", type=int, default=0, help="hdbscan core_dist_n_jobs; 0 = its default")
    args = parser.parse_args()

    embeddings = np.load(args.embeddings, allow_pickle=False)
    with open(args.texts, encoding="utf-8") as handle:
        texts = json.load(handle)
    if len(texts) != embeddings.shape[0]:
        raise SystemExit(f"{len(texts)} texts for {embeddings.shape[0]} embeddings")
    stopwords = []
    if args.stopwords:
        with open(args.stopwords, encoding="utf-8") as handle:
            stopwords = sorted({w.strip() for w in handle if w.strip()})
    result = {"versions": {p: version(p) for p in ("bertopic", "umap-learn", "hdbscan", "numpy", "scikit-learn",
                                                    "numba", "jieba")},
              "threads_env": {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "NUMBA_NUM_THREADS")},
              "warmup_s": None, "runs": []}
    if args.warmup:
        started = time.perf_counter()
        fit_once(embeddings, texts, args.seeds[0], stopwords, args.threads)
        result["warmup_s"] = round(time.perf_counter() - started, 3)
    for seed in args.seeds:
        run = fit_once(embeddings, texts, seed, stopwords, args.threads)
        outliers = sum(t < 0 for t in run["topics"]) / len(texts)
        print(f"BERTopic seed {seed}: {len(set(run['topics']) - {-1})} topics, {outliers:.1%} outliers, "
              f"fit {run['fit_s']:.1f} s", flush=True)
        result["runs"].append(run)
    with open(args.out, "w", encoding="utf-8") as handle:
        json.dump(result, handle, ensure_ascii=False)


if __name__ == "__main__":
    main()
