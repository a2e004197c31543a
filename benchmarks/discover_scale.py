"""Tag discovery at scale: wall time and peak memory of clustering + naming for 100k and 1M items on 2 CPU cores.

    python tools/discover.py -c configs/discover/thucnews_e5.yaml     # once: the real e5 embeddings (cached)
    python benchmarks/discover_scale.py [--sizes 100000 1000000] [--threads N] [--cache-dir DIR]
        [-c configs/discover/thucnews_e5.yaml] [-o Section.key=value ...]
    python benchmarks/discover_scale.py --sizes 2000 --reference-limit 2000 --threads 1    # smoke test

**The data is synthetic, built around real data.** The reference is the real run: the multilingual-e5-small
embeddings of the 8,000 THUCNews train titles (from ``tools/discover.py``'s cache, or ``--cache-dir``), clustered
by the pipeline (measured too, as the first row). For each of its tags c, with members X_c, the synthetic items
are drawn from a Gaussian with X_c's mean and full covariance (the SVD of X_c minus its mean, so the spread and
its shape per direction are the measured ones), then L2-normalised; tag sizes keep the real tags' proportions;
each synthetic item's text is a real title of the same tag, drawn with replacement (so jieba and c-TF-IDF see
real Chinese titles, repeated). Each item carries its source tag as its label, so the run also reports how well
the pipeline recovers the clusters it was given (NMI). The mean cosine of items to their tag's centroid, real vs
synthetic, is kept with each row to show the spread matches. Data are generated once per size (fixed
``--data-seed``) into ``output/bench/discover_scale/<size>/``: ``items.jsonl`` plus the embeddings written into
that folder's embedding cache by the pipeline's own ``embed_with`` (1M items: 1.5 GB, and about 12 GB of memory
while generating, before any measurement).

**Measured**, in a fresh subprocess per size: ``read_items`` then ``DiscoveryPipeline.run`` from the warm cache,
exactly as ``tools/discover.py`` runs it (the report and output files are not included). The time is the run's wall
time less its embed step (loading the cached embeddings, reported apart); the module functions of the steps are
wrapped with timers to show where it goes — the automatic k search (``choose_k``: one k-means with ``k_max``
clusters and its Ward levels, all on a fixed-seed sample of ``Discover.sample_size`` items, so its cost should not
grow with N), the final k-means on all items, merge, outliers, jieba, c-TF-IDF. Peak memory is the child's
``ru_maxrss`` from ``os.wait4`` (resident memory, so faiss's and LAPACK's allocations count, unlike tracemalloc),
with the peak reached after each step and the resident memory before the run (the Python libraries, the items and
their texts) beside it. Threads: the libraries' defaults (2 cores here) unless ``--threads N``
(``Discover.threads``); on a machine that is busy with something else use ``--threads 1`` — there, spinning BLAS
threads made a 2,000 × 384 PCA take 65 s instead of 5. The final k-means is cheap at any N: faiss trains it on at
most 256 items per centroid (its ``max_points_per_centroid``) and then only assigns all N. Goal (issue 7): 1M items
in under 5 minutes. Rows are merged by (items, data) into ``output/bench/discover_scale.json``; the table printed is
of all rows there.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

CONFIG = "configs/discover/thucnews_e5.yaml"
RESULTS = Path("output/bench/discover_scale.json")
WORK = Path("output/bench/discover_scale")
K_SEARCH = "k search (on the sample)"
GENERATOR_VERSION = 1  # bump when the generator changes, so older synthetic sets are remade


def maxrss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def rss_mb() -> float:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def load(args, extra: list[str] = ()):
    from paddle_tag.config import load_config

    overrides = list(args.override) + ([f"Discover.threads={args.threads}"] if args.threads else []) + list(extra)
    return load_config(args.config, overrides)


# ------------------------------------------------------------------------------------------------ the measured child
class CacheOnly:
    """Stands in for the embed step in a measured run: the embeddings must come from the cache; a miss would
    otherwise start the e5 encoder on a million synthetic titles."""

    def fit_transform(self, texts, progress=False):
        raise RuntimeError("embedding cache miss: delete the size's folder under output/bench/discover_scale "
                           "to generate its data again")


def measure(args) -> None:
    """One pipeline run on ``--items`` from the cache ``--cache``; writes ``<dir>/result.json`` + ``labels.npy``."""
    out = Path(args.measure)
    config = load(args, [f"Data.train_path={args.items}"])
    import paddle_tag.discover.cluster as cluster
    import paddle_tag.discover.name as name
    import paddle_tag.discover.pipeline as pipeline_module
    from paddle_tag.discover.pipeline import DiscoveryPipeline, read_items
    from paddle_tag.metrics.clustering import clustering_metrics

    steps: dict[str, dict] = {}

    def timed(owner, attr: str, label: str) -> None:
        original = getattr(owner, attr)

        def wrapper(*a, **kw):
            started = time.perf_counter()
            try:
                return original(*a, **kw)
            finally:
                step = steps.setdefault(label, {"s": 0.0})
                step["s"] = round(step["s"] + time.perf_counter() - started, 3)
                step["peak_mb_after"] = round(maxrss_mb())

        setattr(owner, attr, wrapper)

    rss_imports = rss_mb()
    corpus = read_items(args.items)
    rss_items = rss_mb()
    pipeline = DiscoveryPipeline(config)
    pipeline.embedder = CacheOnly()
    timed(pipeline_module, "embed_with", "load cached embeddings")
    timed(pipeline.reducer, "fit_transform", "reduce (PCA)")
    timed(cluster, "choose_k", K_SEARCH)
    timed(cluster, "spherical_kmeans", "final k-means (all items)")
    timed(pipeline_module, "merge_similar", "merge")
    timed(pipeline_module, "resolve_outliers", "outliers + centroids")
    timed(name, "tokenize", "jieba")
    timed(name, "ctfidf", "c-TF-IDF")
    started = time.perf_counter()
    result = pipeline.run(corpus.items, cache_dir=Path(args.cache))
    wall = time.perf_counter() - started
    peak_run = maxrss_mb()
    timings = result.info["timings_s"]
    record = {"items": len(corpus.items), "k": result.info["k"], "wall_s": round(wall, 3),
              "time_s": round(wall - timings["embed"], 3), "timings_s": timings, "steps": steps,
              "k_search_sample": result.info["clustering"].get("sample"),
              "k_candidates": len(result.info["clustering"].get("silhouette", {})),
              "outlier_share": result.info["outliers"]["outlier_share"],
              "rss_mb_imports": round(rss_imports), "rss_mb_items_read": round(rss_items),
              "peak_mb_self": round(peak_run), "embeddings_mb": round(result.embeddings.nbytes / 2**20),
              "threads": config.Discover.threads, "names": [t.name for t in result.taxonomy.tags]}
    if all(label is not None for label in corpus.labels):
        record["vs_labels"] = clustering_metrics(corpus.labels, result.labels)
    np.save(out / "labels.npy", result.labels, allow_pickle=False)
    (out / "result.json").write_text(json.dumps(record, ensure_ascii=False, indent=1), encoding="utf-8")


# ------------------------------------------------------------------------------------------------- the generator child
def generate(args) -> None:
    """Synthetic items around the reference run's tags (see the module docstring) into ``--generate``'s folder."""
    from paddle_tag.discover.embed import embed_texts, embed_with, l2_normalise
    from paddle_tag.discover.pipeline import read_items
    from discover_vs_bertopic import GivenEmbeddings

    out, size = Path(args.generate), args.size
    config = load(args)
    corpus = read_items(config.Data.train_path)
    texts = [it.text for it in corpus.items]
    real = embed_texts(config, texts, Path(args.cache_dir), [it.item_id for it in corpus.items])
    labels = np.load(args.reference_labels, allow_pickle=False)  # the reference run's tags of the first N items
    real, texts = real[:len(labels)], texts[:len(labels)]
    keep = np.flatnonzero(labels >= 0)
    k = int(labels.max()) + 1
    rng = np.random.default_rng(args.data_seed)
    counts = rng.multinomial(size, np.bincount(labels[keep], minlength=k) / len(keep))
    positions = rng.permutation(size)  # tags interleaved, as in a real crawl
    vectors = np.empty((size, real.shape[1]), dtype=np.float32)
    source = np.empty(size, dtype=np.int64)
    chosen_text = np.empty(size, dtype=np.int64)
    spread, start = [], 0
    for c in range(k):
        members = np.flatnonzero(labels == c)
        x = real[members].astype(np.float64)
        mean = x.mean(axis=0)
        _, s, vt = np.linalg.svd(x - mean, full_matrices=False)  # covariance = vt.T diag(s² / (n-1)) vt
        scale = s / np.sqrt(max(len(members) - 1, 1))
        rows = positions[start:start + counts[c]]
        start += counts[c]
        for chunk in np.array_split(np.arange(len(rows)), max(1, len(rows) // 50_000)):
            z = rng.standard_normal((len(chunk), len(s)))
            vectors[rows[chunk]] = l2_normalise(mean + (z * scale) @ vt)
        source[rows] = c
        chosen_text[rows] = members[rng.integers(0, len(members), len(rows))]
        centroid = mean / np.linalg.norm(mean)
        spread.append({"tag": c, "real_items": int(len(members)), "synthetic_items": int(len(rows)),
                       "real_mean_cos": round(float((real[members] @ centroid).mean()), 4),
                       "synthetic_mean_cos": round(float((vectors[rows[:20_000]] @ centroid).mean()), 4)})
    ids = [f"s{i}" for i in range(size)]
    syn_texts = [texts[j] for j in chosen_text]
    with (out / "items.jsonl").open("w", encoding="utf-8") as handle:
        for i in range(size):
            handle.write(json.dumps({"id": ids[i], "text": syn_texts[i], "labels": [f"tag{source[i]}"]},
                                    ensure_ascii=False) + "\n")
    embed_with(GivenEmbeddings(vectors), config, syn_texts, out / "embeddings", ids)  # the pipeline's cache entry
    weights = np.array([s["real_items"] for s in spread], dtype=np.float64)
    summary = {"real_mean_cos": round(float(np.average([s["real_mean_cos"] for s in spread], weights=weights)), 4),
               "synthetic_mean_cos": round(float(np.average([s["synthetic_mean_cos"] for s in spread],
                                                            weights=weights)), 4)}
    (out / "generated.json").write_text(json.dumps({"key": args.key, "size": size, "spread": summary,
                                                    "per_tag": spread}, indent=1), encoding="utf-8")


# ------------------------------------------------------------------------------------------------------- the parent
def child(args, mode: list[str]) -> tuple[int, float]:
    """Run this script as a child with ``mode`` flags; its exit status and peak resident memory (MiB)."""
    command = [sys.executable, __file__, "-c", args.config, "--cache-dir", args.cache_dir_resolved,
               *[x for o in args.override for x in ("-o", o)], *mode]
    if args.threads:
        command += ["--threads", str(args.threads)]
    process = subprocess.Popen(command)
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    return process.returncode, usage.ru_maxrss / 1024


def run_size(args, label: str, size: int, items: Path, cache: Path, out: Path) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    (out / "result.json").unlink(missing_ok=True)
    print(f"measuring {label} ...", file=sys.stderr, flush=True)
    code, peak = child(args, ["--_measure", str(out), "--items", str(items), "--cache", str(cache)])
    if code != 0 or not (out / "result.json").is_file():
        why = f"killed by signal {-code} (out of memory?)" if code < 0 else f"exit status {code}"
        return {"items": size, "data": label, "failed": why, "peak_mb": round(peak)}
    record = json.loads((out / "result.json").read_text(encoding="utf-8"))
    return {"data": label, **record, "peak_mb": round(peak)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-c", "--config", default=CONFIG)
    parser.add_argument("-o", "--override", action="append", default=[], help="config override Section.key=value")
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--cache-dir", help="the real run's embedding cache (default <Global.output_dir>/embeddings)")
    parser.add_argument("--threads", type=int, default=0, help="Discover.threads; 0 = library defaults (all cores)")
    parser.add_argument("--data-seed", type=int, default=0)
    parser.add_argument("--reference-limit", type=int, default=0,
                        help="cluster only the first N real items as the reference (smoke tests)")
    parser.add_argument("--_measure", dest="measure", help=argparse.SUPPRESS)
    parser.add_argument("--_generate", dest="generate", help=argparse.SUPPRESS)
    parser.add_argument("--items", help=argparse.SUPPRESS)
    parser.add_argument("--cache", help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--reference-labels", help=argparse.SUPPRESS)
    parser.add_argument("--key", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        return measure(args)
    if args.generate:
        return generate(args)

    from paddle_tag.discover.embed import embed_texts
    from paddle_tag.discover.pipeline import read_items
    from paddle_tag.utils.io import atomic_write_json

    config = load(args)
    args.cache_dir_resolved = str(Path(args.cache_dir or Path(config.Global.output_dir) / "embeddings"))
    corpus = read_items(config.Data.train_path)
    real = embed_texts(config, [it.text for it in corpus.items], Path(args.cache_dir_resolved),
                       [it.item_id for it in corpus.items])  # the real embeddings in the cache (computed if missing)

    real_label = f"real ({Path(config.Data.train_path).parent.name} train)"
    reference_items, reference_cache = Path(config.Data.train_path), Path(args.cache_dir_resolved)
    n_real = len(corpus.items)
    if args.reference_limit and args.reference_limit < n_real:  # smoke tests: the first N real items
        from discover_vs_bertopic import GivenEmbeddings
        from paddle_tag.discover.embed import embed_with

        n_real = args.reference_limit
        reference_items, reference_cache = WORK / "reference" / "items.jsonl", WORK / "reference" / "embeddings"
        reference_items.parent.mkdir(parents=True, exist_ok=True)
        with Path(config.Data.train_path).open(encoding="utf-8") as source:
            lines = [line for line in source if line.strip()][:n_real]
        reference_items.write_text("".join(lines), encoding="utf-8")
        subset = read_items(reference_items).items
        embed_with(GivenEmbeddings(real[:n_real]), config, [it.text for it in subset], reference_cache,
                   [it.item_id for it in subset])
        real_label += f", first {n_real:,}"
    reference = run_size(args, real_label, n_real, reference_items, reference_cache, WORK / "reference")
    if "failed" in reference:
        sys.exit(f"the reference run on the real items failed: {reference['failed']}")
    new_rows = [reference]
    labels_path = WORK / "reference" / "labels.npy"
    labels_sha = hashlib.sha256(labels_path.read_bytes()).hexdigest()[:16]
    for size in args.sizes:
        folder = WORK / str(size)
        key = f"v{GENERATOR_VERSION}:seed={args.data_seed}:labels={labels_sha}"
        marker = folder / "generated.json"
        if not (marker.is_file() and json.loads(marker.read_text(encoding="utf-8")).get("key") == key):
            folder.mkdir(parents=True, exist_ok=True)
            marker.unlink(missing_ok=True)
            print(f"generating {size:,} synthetic items ...", file=sys.stderr, flush=True)
            started = time.perf_counter()
            code, peak = child(args, ["--_generate", str(folder), "--size", str(size), "--data-seed",
                                      str(args.data_seed), "--reference-labels", str(labels_path), "--key", key])
            if code != 0:
                sys.exit(f"generating {size} items failed (exit status {code})")
            print(f"  generated in {time.perf_counter() - started:.0f} s, peak {peak:,.0f} MiB", file=sys.stderr)
        generated = json.loads(marker.read_text(encoding="utf-8"))
        row = run_size(args, "synthetic around the real tags", size, folder / "items.jsonl", folder / "embeddings",
                       folder / "run")
        row["spread"] = generated["spread"]
        new_rows.append(row)
    stamp = {"cpus": os.cpu_count(), "date": time.strftime("%Y-%m-%d")}
    new_rows = [{**stamp, **r} for r in new_rows]
    rows = json.loads(RESULTS.read_text(encoding="utf-8"))["rows"] if RESULTS.is_file() else []
    keys = {(r["items"], r["data"]) for r in new_rows}
    rows = [r for r in rows if (r["items"], r["data"]) not in keys] + new_rows
    atomic_write_json(RESULTS, {"rows": rows})
    print_table(rows)


def print_table(rows: list[dict]) -> None:
    rows = sorted(rows, key=lambda r: (r["items"], r["data"]))
    print("| items | data | k | NMI vs labels | time (cluster + name) | k search | reduce (PCA) | outliers + "
          "centroids | jieba | load embeddings | peak memory | before the run | under 5 min |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        if "failed" in r:
            print(f"| {r['items']:,} | {r['data']} | failed: {r['failed']} | | | | | | | | "
                  f"{r['peak_mb']:,} MiB | | no |")
            continue
        steps = r["steps"]

        def s(label: str) -> str:
            return f"{steps[label]['s']:.1f} s" if label in steps else "–"

        nmi = f"{r['vs_labels']['nmi']:.3f}" if "vs_labels" in r else "–"
        print(f"| {r['items']:,} | {r['data']} | {r['k']} | {nmi} | {r['time_s']:.1f} s | "
              f"{s(K_SEARCH)} (sample {r['k_search_sample']}) | {s('reduce (PCA)')} | "
              f"{s('outliers + centroids')} | {s('jieba')} | {r['timings_s']['embed']:.1f} s | {r['peak_mb']:,} MiB | "
              f"{r['rss_mb_items_read']:,} MiB | {'yes' if r['time_s'] < 300 else 'no'} |")
    print("\nNMI vs labels: the THUCNews classes for the real items, the source tags for the synthetic ones. Peak "
          "memory: the run's process (ru_maxrss), embeddings loaded included; before the run: libraries + items.")


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))  # discover_vs_bertopic's GivenEmbeddings
    os.chdir(Path(__file__).resolve().parents[1])
    main()
