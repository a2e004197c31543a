"""``POST /recommend`` of a real server on localhost: batch-1 latency, and throughput at 32 concurrent clients.

    python benchmarks/recommend_serving.py --model-dir output/export/sasrec_ml1m --model-dir output/export/gru4rec_ml1m

For each recommender export, starts ``python -m deploy.serve`` on 127.0.0.1 (the server of
:mod:`benchmarks.server_load`) and sends real histories: the test-split histories of the interaction log
(``--log``; each user's items but the last, as ids, oldest first), k = 10. Three settings per model:
one client at a time (batch 1: the latency of a single request), 32 concurrent clients with the server's
batch size at 1 (no batching), and 32 concurrent clients with dynamic batching (up to 32 histories, 5 ms).
Prints a Markdown table: requests/s, p50 / p99 latency, mean histories per model call, statuses.
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from server_load import mean_batch_size, start_server

REPO = Path(__file__).resolve().parents[1]


def test_histories(log: Path, limit: int) -> list[list[str]]:
    """Every user's items but the last (the test split's histories), as ids; users with >= 3 items."""
    histories = []
    for line in (log / "sequences.jsonl").read_text(encoding="utf-8").splitlines():
        if line.strip():
            items = json.loads(line)["items"]
            if len(items) >= 3:
                histories.append(items[:-1])
    return histories[:limit]


def post(port: int, history: list[str], k: int) -> tuple[int, float]:
    body = json.dumps({"history": history, "k": k}).encode("utf-8")
    started = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    conn.request("POST", "/recommend", body, {"Content-Type": "application/json"})
    response = conn.getresponse()
    response.read()
    conn.close()
    return response.status, time.perf_counter() - started


def drive(port: int, histories: list[list[str]], requests: int, concurrency: int, k: int) -> dict:
    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        results = list(pool.map(lambda i: post(port, histories[i % len(histories)], k), range(requests)))
    seconds = time.perf_counter() - started
    latency = np.array([r[1] for r in results if r[0] == 200]) * 1000
    statuses = [r[0] for r in results]
    return {"requests": requests, "ok": statuses.count(200), "other": len(statuses) - statuses.count(200),
            "req_per_s": requests / seconds,
            "p50_ms": float(np.percentile(latency, 50)) if len(latency) else float("nan"),
            "p99_ms": float(np.percentile(latency, 99)) if len(latency) else float("nan")}


def run_setting(model_dir: str, name: str, histories: list[list[str]], args, concurrency: int, *flags: str) -> dict:
    proc, port = start_server(model_dir, args.threads, *flags)
    try:
        drive(port, histories, min(64, args.requests), concurrency, args.k)  # warm-up
        row = {"model": Path(model_dir).name, "setting": name,
               **drive(port, histories, args.requests, concurrency, args.k), "mean_batch": mean_batch_size(port)}
    finally:
        proc.terminate()
        proc.wait(timeout=60)
    print(json.dumps(row), file=sys.stderr)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-dir", action="append", required=True, help="a recommender export (repeatable)")
    parser.add_argument("--log", default="data/movielens_1m", help="interaction log the histories come from")
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    histories = test_histories(REPO / args.log, 2000)
    rows = []
    for model_dir in args.model_dir:
        rows += [
            run_setting(model_dir, "1 client (batch 1)", histories, args, 1, "--max-batch-size", "1",
                        "--max-wait-ms", "0"),
            run_setting(model_dir, f"{args.concurrency} clients, batch size 1", histories, args, args.concurrency,
                        "--max-batch-size", "1", "--max-wait-ms", "0"),
            run_setting(model_dir, f"{args.concurrency} clients, dynamic batching (≤32, 5 ms)", histories, args,
                        args.concurrency, "--max-batch-size", "32", "--max-wait-ms", "5"),
        ]
    lengths = [len(h) for h in histories]
    print(f"{args.requests} requests per setting, k={args.k}, {len(histories)} real histories of {args.log} "
          f"(median {int(np.median(lengths))} items), {args.threads} ORT threads, {os.cpu_count()} cores\n")
    print("| model | setting | requests/s | p50 ms | p99 ms | mean batch | 200 | other |")
    print("|---|---|---|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['model']} | {row['setting']} | {row['req_per_s']:.1f} | {row['p50_ms']:.1f} | "
              f"{row['p99_ms']:.1f} | {row['mean_batch']:.1f} | {row['ok']} | {row['other']} |")


if __name__ == "__main__":
    main()
