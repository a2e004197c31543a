"""Nearest-item search at catalogue scale: exact faiss, numpy brute force and the approximate indexes.

    flock /tmp/cpu_heavy.lock python benchmarks/item_search_1m.py --out output/benchmarks/item_search_1m.json
        [--items 1000000] [--dim 64] [--clusters 4000] [--spread 1.0] [--queries 1000] [--k 50] [--threads 2]
        [--ef-search 128 256] [--nprobe 64 128] [--hnsw-m 32] [--ef-construction 80] [--nlist N]

Data: a mixture of ``--clusters`` Gaussians in ``--dim`` dimensions (numpy ``default_rng(--seed)``): centres
N(0, I), each item = a centre picked uniformly at random + ``--spread`` x N(0, I), then L2-normalised. The
queries are ``--queries`` more draws from the same mixture. Uniform random vectors would be a pathological
case (no neighbourhood structure, every approximate index does badly); learned item vectors cluster.

Each method is searched through what serving uses (``deploy.item_index.ItemIndex``; numpy brute force is
``vectors @ q`` + ``argpartition``): build seconds, recall@k against exact faiss (ground truth), batch-1
latency p50 / p99 over ``--latency-queries`` single queries (after 20 warm-up ones), and throughput over all
queries in batches of ``--batch-size``. Search-effort settings (``--ef-search``, ``--nprobe``) share one
build. Memory: 1M x 64 float32 items are 256 MB; faiss holds its own copy, HNSW adds its graph (~2 x M x 4
bytes an item), numpy brute force a (batch, items) float32 score matrix. Prints one Markdown table and
writes it with every figure to ``--out`` (JSON). Runs in the main venv or the deploy venv (numpy + faiss).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path

import faiss
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from deploy.item_index import ItemIndex  # deploy/ is imported from the repository root

# (queries, k, exclude per query or None) -> row ids (B, k)
SearchFn = Callable[[np.ndarray, int, "list[np.ndarray] | None"], np.ndarray]


def gaussian_mixture(count: int, centres: np.ndarray, spread: float, rng: np.random.Generator) -> np.ndarray:
    """``count`` L2-normalised float32 points, each a random centre plus isotropic noise (in chunks: 1M
    float64 draws at once would take 1 GB)."""
    out = np.empty((count, centres.shape[1]), dtype=np.float32)
    for start in range(0, count, 100_000):
        stop = min(count, start + 100_000)
        points = centres[rng.integers(0, len(centres), stop - start)]
        points = points + spread * rng.standard_normal(points.shape)
        out[start:stop] = points / np.linalg.norm(points, axis=1, keepdims=True)
    return out


def numpy_top_k(vectors: np.ndarray) -> SearchFn:
    def search(queries: np.ndarray, k: int, exclude: list[np.ndarray] | None = None) -> np.ndarray:
        scores = queries @ vectors.T
        for row, seen in enumerate(exclude or []):
            scores[row, seen] = -np.inf
        top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        order = np.argsort(-np.take_along_axis(scores, top, axis=1), axis=1)
        return np.take_along_axis(top, order, axis=1)
    return search


def single_query_ms(search: SearchFn, queries: np.ndarray, k: int, exclude: list[np.ndarray] | None) -> np.ndarray:
    for row in range(min(20, len(queries))):  # warm-up
        search(queries[row:row + 1], k, None if exclude is None else exclude[row:row + 1])
    latencies = []
    for row in range(len(queries)):
        started = time.perf_counter()
        search(queries[row:row + 1], k, None if exclude is None else exclude[row:row + 1])
        latencies.append(time.perf_counter() - started)
    return 1000 * np.asarray(latencies)


def measure(search: SearchFn, queries: np.ndarray, truth: np.ndarray, k: int, batch_size: int,
            latency_queries: int, seen: list[np.ndarray]) -> dict:
    started = time.perf_counter()
    found = np.concatenate([search(queries[start:start + batch_size], k, None)
                            for start in range(0, len(queries), batch_size)])
    batch_seconds = time.perf_counter() - started
    recall = float(np.mean([len(np.intersect1d(got, want)) / k for got, want in zip(found, truth)]))
    latencies = single_query_ms(search, queries[:latency_queries], k, None)
    excluding = single_query_ms(search, queries[:len(seen)], k, seen) if seen else np.full(1, np.nan)
    return {"recall": recall, "p50_ms": float(np.percentile(latencies, 50)),
            "p99_ms": float(np.percentile(latencies, 99)), "queries_per_s": len(queries) / batch_seconds,
            "p50_ms_excluding": float(np.percentile(excluding, 50))}


def timed_index(vectors: np.ndarray, **options) -> tuple[ItemIndex, float]:
    started = time.perf_counter()
    index = ItemIndex(vectors, **options)
    return index, time.perf_counter() - started


def index_search(index: ItemIndex) -> SearchFn:
    return lambda queries, k, exclude: index.search(queries, k, exclude)[0]


def table(rows: list[dict], args: argparse.Namespace) -> str:
    header = (f"| method | setting | build s | recall@{args.k} | batch-1 p50 ms | batch-1 p99 ms | "
               f"batch-{args.batch_size} queries/s | batch-1 p50 ms, best {args.exclude} excluded |")
    lines = [header, "|---|---|---:|---:|---:|---:|---:|---:|"]
    for row in rows:
        lines.append(f"| {row['method']} | {row['setting']} | {row['build_s']:.1f} | {row['recall']:.4f} | "
                     f"{row['p50_ms']:.2f} | {row['p99_ms']:.2f} | {row['queries_per_s']:.0f} | "
                     f"{row['p50_ms_excluding']:.2f} |")
    return "\n".join(lines)


def write_json_atomically(path: str, payload: dict) -> None:
    folder = Path(path).resolve().parent
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=folder, delete=False, suffix=".tmp", encoding="utf-8") as handle:
        json.dump(payload, handle, indent=2)
    os.chmod(handle.name, 0o644)  # NamedTemporaryFile makes it owner-only
    os.replace(handle.name, path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--clusters", type=int, default=4000)
    parser.add_argument("--spread", type=float, default=1.0, help="noise scale around each centre (centres ~ N(0, I))")
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--k", type=int, default=50)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--latency-queries", type=int, default=300)
    parser.add_argument("--threads", type=int, default=2, help="faiss OpenMP threads")
    parser.add_argument("--hnsw-m", type=int, default=32)
    parser.add_argument("--ef-construction", type=int, default=80)
    parser.add_argument("--ef-search", type=int, nargs="*", default=[128, 256])
    parser.add_argument("--nlist", type=int, default=None, help="IVF cells; default ItemIndex's, 4 sqrt(items)")
    parser.add_argument("--nprobe", type=int, nargs="*", default=[64, 128])
    parser.add_argument("--exclude", type=int, default=500,
                        help="also time single queries excluding each one's exact best N rows (a worst case of "
                             "seen items: the search must look past all of them); 0 = not measured")
    parser.add_argument("--skip-numpy", action="store_true", help="leave out numpy brute force (slowest)")
    parser.add_argument("--out", default="output/benchmarks/item_search_1m.json")
    args = parser.parse_args()

    rng = np.random.default_rng(args.seed)
    centres = rng.standard_normal((args.clusters, args.dim))
    vectors = gaussian_mixture(args.items, centres, args.spread, rng)
    queries = gaussian_mixture(args.queries, centres, args.spread, rng)
    print(f"{args.items} items, dim {args.dim}, {args.clusters} clusters, spread {args.spread}; "
          f"faiss {faiss.__version__}, numpy {np.__version__}, {args.threads} faiss threads", flush=True)

    rows = []
    exact, build_s = timed_index(vectors, approximate_above=args.items, threads=args.threads)
    truth = exact.search(queries, args.k)[0]
    seen = list(exact.search(queries[:args.latency_queries], args.exclude)[0]) if args.exclude else []
    runs: list[tuple[str, str, float, SearchFn]] = [("faiss exact", "IndexFlatIP", build_s, index_search(exact))]
    if not args.skip_numpy:
        runs.append(("numpy brute force", "matmul + argpartition", 0.0, numpy_top_k(vectors)))
    for method, setting, seconds, search in runs:
        rows.append({"method": method, "setting": setting, "build_s": seconds,
                     **measure(search, queries, truth, args.k, args.batch_size, args.latency_queries, seen)})
        print(table(rows[-1:], args).splitlines()[-1], flush=True)
    del exact, runs

    approximate = [("hnsw", {"hnsw_m": args.hnsw_m, "ef_construction": args.ef_construction},
                    [("ef_search", value) for value in args.ef_search]),
                   ("ivf", {"nlist": args.nlist}, [("nprobe", value) for value in args.nprobe])]
    for kind, options, efforts in approximate:
        index, build_s = timed_index(vectors, approximate_above=1, approximate=kind, threads=args.threads,
                                     **options)
        for name, value in efforts:
            index.tune(**{name: value})
            setting = ", ".join(f"{key}={value}" for key, value in index.settings.items() if key != "kind")
            rows.append({"method": f"faiss {kind}", "setting": setting, "build_s": build_s,
                         **measure(index_search(index), queries, truth, args.k, args.batch_size,
                                   args.latency_queries, seen)})
            print(table(rows[-1:], args).splitlines()[-1], flush=True)
        del index

    text = table(rows, args)
    print(text)
    machine = f"{platform.machine()}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f} at the end"
    write_json_atomically(args.out, {"date": date.today().isoformat(), "machine": machine,
                                     "faiss": faiss.__version__, "numpy": np.__version__,
                                     "args": vars(args), "table": text, "rows": rows})
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
