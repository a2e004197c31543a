"""Tag discovery, paddle_tag vs BERTopic, side by side in one run on the same embeddings (issue 7).

    bash benchmarks/bertopic_env.sh                                   # once: BERTopic's own venv, no torch
    python tools/discover.py -c configs/discover/thucnews_e5.yaml     # once: caches the e5 embeddings
    python benchmarks/discover_vs_bertopic.py [--seeds 42 43] [--threads N] [--limit N] [--cache-dir DIR]
        [-c configs/discover/thucnews_e5.yaml] [-o Section.key=value ...]
    python benchmarks/discover_vs_bertopic.py --limit 2000 --threads 1          # smoke test

Both sides get the same L2-normalised multilingual-e5-small embeddings of the 8,000 THUCNews train titles,
through ``embed_texts`` with the cache of ``tools/discover.py`` (``<Global.output_dir>/embeddings``, or
``--cache-dir``; missing or stale ones are computed, which takes minutes). Embedding is not timed. Timed,
per run, is everything from the embeddings to named topics:

* **paddle_tag**: ``DiscoveryPipeline.run`` exactly as ``tools/discover.py`` runs it from a warm embedding cache —
  PCA 32 → spherical k-means on faiss with k chosen by silhouette on a sample (5..30) → merge / outliers →
  c-TF-IDF names over jieba words. The embeddings go into a benchmark cache with the pipeline's own
  ``embed_with`` and a stand-in embed step that returns them, so the pipeline is used as it is; the time is the
  run's wall time less its embed step (reading that cache).
* **BERTopic** (``benchmarks/_bertopic_worker.py`` in ``.venv-bertopic``): ``fit_transform(texts,
  embeddings=...)`` with its default UMAP → hdbscan → c-TF-IDF, UMAP seeded, a jieba tokenizer and
  ``language="multilingual"`` (the default "english" deletes all Chinese before c-TF-IDF); and the same
  plus ``reduce_outliers(strategy="embeddings")``, BERTopic's remedy for its -1 topic, as a third row.

Each method runs once per ``--seeds`` value (``Global.seed`` / UMAP's ``random_state``); before the timed runs
each side fits once untimed on the same data (numba's compilation for BERTopic, jieba's dictionary for both;
``--no-warmup`` to count them), which favours BERTopic. Reported per method, averaged over the seeds: topics
found, outlier share (BERTopic's topic -1; paddle_tag's unassigned items), NMI and ARI against the THUCNews
labels (``paddle_tag.metrics.clustering``; outliers count as one more cluster, and the assigned-only NMI is
kept too), stability (NMI and ARI between the first two seeds' assignments) and the time, with BERTopic's time
over paddle_tag's. Issue 7's goal: ≥ 10× faster, NMI equal or better, outliers < 10 %.

Rows are merged by (items, method) into ``output/bench/discover_vs_bertopic.json`` (with the per-seed figures
and the largest topics' names); the table printed is of all rows there. ``--limit N`` keeps the first N items
(smoke tests). Threads: both sides use their libraries' defaults (all cores) unless ``--threads N``, which sets
``Discover.threads`` and, for BERTopic, OMP / OpenBLAS / MKL / numba threads and hdbscan's ``core_dist_n_jobs``
(use it on a machine busy with something else: spinning BLAS threads there slow both sides down erratically).
UMAP runs on one thread either way: a ``random_state`` makes it single-threaded.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from statistics import mean
from typing import Sequence

import numpy as np

from paddle_tag.config import load_config
from paddle_tag.discover.embed import embed_texts, embed_with
from paddle_tag.discover.pipeline import DiscoveryPipeline, read_items
from paddle_tag.metrics.clustering import clustering_metrics
from paddle_tag.utils.io import atomic_write_json

CONFIG = "configs/discover/thucnews_e5.yaml"
RESULTS = Path("output/bench/discover_vs_bertopic.json")
WORK = Path("output/bench/discover_vs_bertopic")
BERTOPIC_PYTHON = ".venv-bertopic/bin/python"
PADDLE = "paddle_tag (PCA → faiss k-means, auto k → c-TF-IDF)"
BERTOPIC = "BERTopic (UMAP → HDBSCAN → c-TF-IDF, defaults)"
BERTOPIC_REDUCED = "BERTopic + reduce_outliers(embeddings)"
METHODS = [PADDLE, BERTOPIC, BERTOPIC_REDUCED]


class GivenEmbeddings:
    """An embed step that returns vectors computed elsewhere (the ``fit_transform(texts, progress)`` protocol of
    the pipeline's embedders), so given embeddings enter the pipeline through its own cache code."""

    def __init__(self, vectors: np.ndarray) -> None:
        self.vectors = vectors

    def fit_transform(self, texts: Sequence[str], progress: bool = False) -> np.ndarray:
        if len(texts) != len(self.vectors):
            raise ValueError(f"{len(texts)} texts for {len(self.vectors)} given embeddings")
        return self.vectors


def timing_choose_k(log: dict) -> None:
    """Time the automatic k search (``cluster.choose_k``, looked up at call time) into ``log["k_search"]``."""
    import paddle_tag.discover.cluster as cluster

    original = cluster.choose_k

    def timed(*args, **kwargs):
        started = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            log["k_search"] = log.get("k_search", 0.0) + time.perf_counter() - started

    cluster.choose_k = timed


K_SEARCH: dict = {}


def run_paddle_tag(config, items, cache_dir: Path) -> dict:
    """One ``DiscoveryPipeline.run`` from the warm cache: labels, time without the embed step, names."""
    pipeline = DiscoveryPipeline(config)
    K_SEARCH.clear()
    started = time.perf_counter()
    result = pipeline.run(items, cache_dir=cache_dir)
    wall = time.perf_counter() - started
    timings = {**result.info["timings_s"], "k_search (in cluster)": round(K_SEARCH.get("k_search", 0.0), 3)}
    names = [{"topic": t.key, "size": t.size, "name": t.name, "keywords": [w for w, _ in t.keywords]}
             for t in result.taxonomy.tags[:10]]
    return {"seed": config.Global.seed, "topics": result.labels.tolist(), "time_s": round(wall - timings["embed"], 3),
            "timings_s": timings, "k": result.info["k"], "names": names}


def score(truth: list[str], runs: list[dict], key: str, time_key: str) -> dict:
    """Averages over the runs (and per seed) of topics, outliers, NMI / ARI vs ``truth``; stability of runs 0, 1."""
    per_seed = []
    for run in runs:
        labels = np.asarray(run[key], dtype=np.int64)
        metrics = clustering_metrics(truth, labels)
        per_seed.append({"seed": run["seed"], "topics": int(len(set(labels[labels >= 0].tolist()))),
                         "outlier_share": round(float((labels < 0).mean()), 4), "nmi": metrics["nmi"],
                         "ari": metrics["ari"], "nmi_assigned": metrics.get("nmi_assigned", metrics["nmi"]),
                         "time_s": round(float(time_key(run)), 3)})
    row = {k: round(mean(s[k] for s in per_seed), 4) for k in ("outlier_share", "nmi", "ari", "nmi_assigned")}
    row["topics"] = [s["topics"] for s in per_seed]
    row["time_s"] = round(mean(s["time_s"] for s in per_seed), 2)
    if len(runs) >= 2:  # NMI between two runs' assignments (outliers as one more cluster), 1.0 = identical
        between = clustering_metrics([str(t) for t in runs[0][key]], np.asarray(runs[1][key], dtype=np.int64))
        row["stability_nmi"], row["stability_ari"] = round(between["nmi"], 4), round(between["ari"], 4)
    row["per_seed"] = per_seed
    return row


def bertopic_env(threads: int) -> dict:
    env = dict(os.environ)
    if threads > 0:
        for key in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
            env[key] = str(threads)
    return env


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-c", "--config", default=CONFIG)
    parser.add_argument("-o", "--override", action="append", default=[], help="config override Section.key=value")
    parser.add_argument("--cache-dir", help="embedding cache to read / fill (default <Global.output_dir>/embeddings)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[42, 43])
    parser.add_argument("--limit", type=int, default=0, help="only the first N items (smoke tests)")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads for both sides; 0 = library defaults")
    parser.add_argument("--no-warmup", action="store_true", help="count one-time costs (numba JIT) in run 1")
    parser.add_argument("--bertopic-python", default=BERTOPIC_PYTHON)
    args = parser.parse_args()
    if not Path(args.bertopic_python).is_file():
        sys.exit(f"{args.bertopic_python} not found: run `bash benchmarks/bertopic_env.sh` first")
    overrides = list(args.override) + ([f"Discover.threads={args.threads}"] if args.threads else [])
    config = load_config(args.config, overrides)
    corpus = read_items(config.Data.train_path)
    if any(label is None for label in corpus.labels):
        sys.exit(f"{config.Data.train_path}: every item needs a label to score NMI / ARI")
    texts, ids = [it.text for it in corpus.items], [it.item_id for it in corpus.items]
    cache_dir = Path(args.cache_dir or Path(config.Global.output_dir) / "embeddings")
    embeddings = embed_texts(config, texts, cache_dir, ids)  # all items: a subset would miss the cache
    n = min(args.limit, len(texts)) if args.limit else len(texts)
    items, texts, truth, embeddings = corpus.items[:n], texts[:n], [str(x) for x in corpus.labels[:n]], embeddings[:n]
    print(f"{n} items, embeddings {embeddings.shape} from {cache_dir}", file=sys.stderr)

    WORK.mkdir(parents=True, exist_ok=True)
    bench_cache = WORK / "embeddings"
    embed_with(GivenEmbeddings(embeddings), config, texts, bench_cache, ids[:n])  # the pipeline's cache entry
    np.save(WORK / "embeddings.npy", embeddings, allow_pickle=False)  # the worker's copy
    (WORK / "texts.json").write_text(json.dumps(texts, ensure_ascii=False), encoding="utf-8")

    # BERTopic first, in its own venv and process
    command = [args.bertopic_python, "benchmarks/_bertopic_worker.py", "--embeddings", str(WORK / "embeddings.npy"),
               "--texts", str(WORK / "texts.json"), "--out", str(WORK / "bertopic.json"),
               "--seeds", *map(str, args.seeds), "--threads", str(args.threads)]
    if config.Discover.stopwords_path:
        command += ["--stopwords", config.Discover.stopwords_path]
    if not args.no_warmup:
        command.append("--warmup")
    subprocess.run(command, check=True, env=bertopic_env(args.threads))
    bertopic = json.loads((WORK / "bertopic.json").read_text(encoding="utf-8"))

    # paddle_tag, in this process
    timing_choose_k(K_SEARCH)
    warmup_s = None
    if not args.no_warmup:
        started = time.perf_counter()
        run_paddle_tag(load_config(args.config, overrides + [f"Global.seed={args.seeds[0]}"]), items, bench_cache)
        warmup_s = round(time.perf_counter() - started, 3)
    paddle_runs = []
    for seed in args.seeds:
        run = run_paddle_tag(load_config(args.config, overrides + [f"Global.seed={seed}"]), items, bench_cache)
        print(f"paddle_tag seed {seed}: k={run['k']}, {run['time_s']:.1f} s {run['timings_s']}", file=sys.stderr)
        paddle_runs.append(run)

    common = {"items": n, "dataset": Path(config.Data.train_path).parent.name, "seeds": args.seeds,
              "threads": args.threads or "default", "cpus": os.cpu_count(), "date": time.strftime("%Y-%m-%d")}
    new_rows = [
        {**common, "method": PADDLE, **score(truth, paddle_runs, "topics", lambda r: r["time_s"]),
         "warmup_s": warmup_s, "steps_s": [r["timings_s"] for r in paddle_runs], "names": paddle_runs[0]["names"]},
        {**common, "method": BERTOPIC, **score(truth, bertopic["runs"], "topics", lambda r: r["fit_s"]),
         "warmup_s": bertopic["warmup_s"], "versions": bertopic["versions"],
         "steps_s": [{"umap": r["umap_s"], "hdbscan": r["hdbscan_s"], "fit": r["fit_s"]} for r in bertopic["runs"]],
         "names": bertopic["runs"][0]["names"]},
        {**common, "method": BERTOPIC_REDUCED,
         **score(truth, bertopic["runs"], "topics_reduced", lambda r: r["fit_s"] + r["reduce_outliers_s"]),
         "versions": bertopic["versions"]},
    ]
    rows = json.loads(RESULTS.read_text(encoding="utf-8"))["rows"] if RESULTS.is_file() else []
    keys = {(r["items"], r["method"]) for r in new_rows}
    rows = [r for r in rows if (r["items"], r["method"]) not in keys] + new_rows
    atomic_write_json(RESULTS, {"rows": rows})
    print_table(rows)
    print_k_search(new_rows[0])
    print_names(new_rows[:2])


def print_table(rows: list[dict]) -> None:
    """All rows, largest item count first; the last column is the row's time over paddle_tag's (same items)."""
    rows = sorted(rows, key=lambda r: (-r["items"], METHODS.index(r["method"]) if r["method"] in METHODS else 9))
    base = {r["items"]: r for r in rows if r["method"] == PADDLE}
    print("| items | method | topics | outliers | NMI | ARI | NMI (assigned) | stability NMI / ARI | "
          "time (cluster + name) | time / paddle_tag |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        ratio = f"{r['time_s'] / base[r['items']]['time_s']:.1f}×" if r["items"] in base else "–"
        stable = f"{r['stability_nmi']:.3f} / {r['stability_ari']:.3f}" if "stability_nmi" in r else "–"
        print(f"| {r['items']:,} | {r['method']} | {', '.join(map(str, r['topics']))} | {r['outlier_share']:.1%} | "
              f"{r['nmi']:.3f} | {r['ari']:.3f} | {r['nmi_assigned']:.3f} | {stable} | {r['time_s']:.1f} s | "
              f"{ratio} |")
    for items, p in base.items():
        for r in rows:
            if r["items"] == items and r["method"] == BERTOPIC:
                print(f"\n{items:,} items — goal (issue 7): ≥ 10× faster: {r['time_s'] / p['time_s']:.1f}× "
                      f"({'met' if r['time_s'] >= 10 * p['time_s'] else 'not met'}); NMI equal or better: "
                      f"{p['nmi']:.3f} vs {r['nmi']:.3f} ({'met' if p['nmi'] >= r['nmi'] else 'not met'}); "
                      f"outliers < 10 %: {p['outlier_share']:.1%} "
                      f"({'met' if p['outlier_share'] < 0.10 else 'not met'}; BERTopic {r['outlier_share']:.1%})")


def print_k_search(row: dict) -> None:
    """How much of paddle_tag's time the automatic choice of k took (it is a fixed cost: a capped sample)."""
    searched = [s.get("k_search (in cluster)", 0.0) for s in row["steps_s"]]
    print(f"\npaddle_tag's automatic k search took {mean(searched):.1f} s of its {row['time_s']:.1f} s "
          f"(-o Discover.k=N skips it)")


def print_names(rows: list[dict]) -> None:
    """The largest topics' names (first seed) of this run, for keyword sanity."""
    for r in rows:
        print(f"\n{r['method']}, largest topics (first seed):")
        print("  " + "; ".join(f"{t['name']} ({t['size']})" for t in r["names"]))


if __name__ == "__main__":
    os.chdir(Path(__file__).resolve().parents[1])
    main()
