"""deploy.serve under load on localhost: dynamic batching vs batch size 1, and behaviour at overload.

    python benchmarks/server_load.py --model-dir output/export/thucnews [--requests 400 --concurrency 32]

Starts the real server (``python -m deploy.serve``) as a subprocess on 127.0.0.1 for each setting, drives
it with a bounded number of requests from a thread pool (one text per request, real THUCNews titles),
and prints requests/s and latency percentiles side by side. The overload run gives the server a tiny
queue and a burst far above it: every request must come back (200 or 503), none lost or hung.
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def start_server(model_dir: str, threads: int, *flags: str) -> tuple[subprocess.Popen, int]:
    cmd = [sys.executable, "-m", "deploy.serve", "--model-dir", model_dir, "--device", "cpu", "--host", "127.0.0.1",
           "--port", "0", "--threads", str(threads), "--log-level", "warning", *flags]
    proc = subprocess.Popen(cmd, cwd=REPO, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    deadline = time.time() + 120
    while time.time() < deadline:
        line = proc.stderr.readline()
        match = re.search(r"listening on http://[\d.]+:(\d+)", line)
        if match:
            port = int(match.group(1))
            wait_ready(port)
            return proc, port
        if proc.poll() is not None:
            raise RuntimeError(f"server exited: {proc.stderr.read()[-2000:]}")
    proc.kill()
    raise RuntimeError("server did not start in 120 s")


def wait_ready(port: int) -> None:
    for _ in range(600):
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("GET", "/ready")
            if conn.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError("server never became ready")


def post(port: int, texts: list[str]) -> tuple[int, float]:
    body = json.dumps({"texts": texts}, ensure_ascii=False).encode("utf-8")
    started = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    conn.request("POST", "/predict", body, {"Content-Type": "application/json"})
    response = conn.getresponse()
    response.read()
    conn.close()
    return response.status, time.perf_counter() - started


def drive(port: int, texts: list[str], requests: int, concurrency: int) -> dict:
    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        results = list(pool.map(lambda i: post(port, [texts[i % len(texts)]]), range(requests)))
    seconds = time.perf_counter() - started
    latency = np.array([r[1] for r in results if r[0] == 200]) * 1000
    statuses = [r[0] for r in results]
    return {"requests": requests, "ok": statuses.count(200), "503": statuses.count(503),
            "other": len(statuses) - statuses.count(200) - statuses.count(503), "req_per_s": requests / seconds,
            "p50_ms": float(np.percentile(latency, 50)) if len(latency) else float("nan"),
            "p99_ms": float(np.percentile(latency, 99)) if len(latency) else float("nan")}


def mean_batch_size(port: int) -> float:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", "/metrics")
    text = conn.getresponse().read().decode()
    total = re.search(r"^\w*batch_size_sum (\S+)$", text, re.M)
    count = re.search(r"^\w*batch_size_count (\S+)$", text, re.M)
    return float(total.group(1)) / float(count.group(1)) if total and count and float(count.group(1)) else float("nan")


def run_setting(name: str, model_dir: str, texts: list[str], args, *flags: str) -> dict:
    proc, port = start_server(model_dir, args.threads, *flags)
    try:
        drive(port, texts, min(64, args.requests), args.concurrency)  # warm-up
        row = {"setting": name, **drive(port, texts, args.requests, args.concurrency),
               "mean_batch": mean_batch_size(port)}
    finally:
        proc.terminate()
        proc.wait(timeout=60)
    print(json.dumps(row), file=sys.stderr)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-dir", required=True)
    parser.add_argument("--texts", default="data/thucnews/test.jsonl")
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    texts = [json.loads(line)["text"] for line in Path(REPO / args.texts).read_text(encoding="utf-8").splitlines()]
    rows = [run_setting("batch size 1", args.model_dir, texts, args, "--max-batch-size", "1", "--max-wait-ms", "0"),
            run_setting("dynamic batching (≤32, 5 ms)", args.model_dir, texts, args, "--max-batch-size", "32",
                        "--max-wait-ms", "5")]
    overload = run_setting("overload: queue 8, burst of 64 at once", args.model_dir, texts,
                           argparse.Namespace(**{**vars(args), "requests": 256, "concurrency": 64}),
                           "--max-batch-size", "4", "--max-queue", "8", "--max-texts", "8")
    base = rows[0]["req_per_s"]
    print(f"model: {args.model_dir}, {args.concurrency} concurrent clients, {args.requests} requests of one text, "
          f"{args.threads} ORT threads\n")
    print("| setting | requests/s | vs batch 1 | p50 ms | p99 ms | mean batch | 200 | 503 | other |")
    print("|---|---|---|---|---|---|---|---|---|")
    for row in [*rows, overload]:
        print(f"| {row['setting']} | {row['req_per_s']:.1f} | {row['req_per_s'] / base:.2f}× | {row['p50_ms']:.1f} | "
              f"{row['p99_ms']:.1f} | {row['mean_batch']:.1f} | {row['ok']} | {row['503']} | {row['other']} |")


if __name__ == "__main__":
    main()
